# edgeloop: two commands on a fresh Debian 12 / Ubuntu 22.04+ machine.
#   make bench   set everything up, then run `python -m bench` on the embedded defaults
#   make test    set everything up, then run ruff, mypy and the whole pytest suite
# A second run only redoes what changed (stamp files under .venv/).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,bench,numba,video,cloud
# Debian packages the project needs: libturbojpeg (JPEG), tjbench (the JPEG reference in bench),
# mosquitto (the real broker the MQTT tests start on free ports), Prometheus (the server the
# metrics tests scrape with, and promtool) and its Pushgateway.
DEB_PACKAGES := libturbojpeg0-dev libjpeg-turbo-progs mosquitto prometheus prometheus-pushgateway
NATIVE_SOURCES := $(wildcard native/*.pyx native/include/*.pxd native/src/*.c native/src/*.h) setup.py

.PHONY: all setup test bench lint typecheck pytest native clean

all: test

setup: $(VENV)/.native.stamp

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.debian.stamp: Makefile | $(BIN)/python
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; \
	  else echo "edgeloop needs Debian packages:$$missing. Run: sudo apt-get install -y$$missing" >&2; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi
	@touch $@

$(VENV)/.python.stamp: pyproject.toml setup.py $(VENV)/.debian.stamp
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel "Cython>=3.0.10"
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[$(EXTRAS)]"
	@touch $@

$(VENV)/.native.stamp: $(VENV)/.python.stamp $(NATIVE_SOURCES)
	$(BIN)/python setup.py -q build_ext --inplace
	@touch $@

native: $(VENV)/.native.stamp

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf build native/*.so native/_*.c $(VENV)/.native.stamp
