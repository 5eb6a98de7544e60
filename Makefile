# edgeloop: two commands on a fresh Debian 12 / Ubuntu 22.04+ machine.
#   make bench   set everything up, then run `python -m bench` on the embedded defaults
#   make test    set everything up, then run ruff, mypy and the whole pytest suite
# A second run only redoes what changed (stamp files under .venv/).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,bench,numba,video,cloud,greengrass
# Debian packages. BASE_DEBS: what building and benchmarking need -- venv, headers and a C
# compiler for the native extensions, libturbojpeg (JPEG), tjbench (the JPEG reference in bench);
# checked before the venv is made. TEST_DEBS: the servers the tests start on free ports of their
# own -- mosquitto (the MQTT tests), Prometheus (scraping, promtool) and its Pushgateway --
# installed only by `make test`, without recommends, and not left enabled at boot: a device being
# benchmarked gets none of them.
BASE_DEBS := python3-venv python3-dev build-essential libturbojpeg0-dev libjpeg-turbo-progs
TEST_DEBS := mosquitto prometheus prometheus-pushgateway
TEST_SERVICES := mosquitto prometheus prometheus-pushgateway
NATIVE_SOURCES := $(wildcard native/*.pyx native/include/*.pxd native/src/*.c native/src/*.h) setup.py

.PHONY: all setup test bench lint typecheck pytest native clean

all: test

setup: $(VENV)/.native.stamp

# $(call install_debs,PACKAGES,APT OPTIONS,SERVICES TO DISABLE): installs the missing ones (as
# root or with passwordless sudo; else says what to run), then disables the services it installed.
define install_debs
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; \
	  else echo "edgeloop needs Debian packages:$$missing. Run: sudo apt-get install -y $(2)$$missing" >&2; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(2) $$missing || exit 1; \
	  for s in $(3); do \
	    case " $$missing " in *" $$s "*) ;; *) continue ;; esac; \
	    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then $$SUDO systemctl disable --now $$s >/dev/null 2>&1 || true; \
	    elif command -v update-rc.d >/dev/null; then $$SUDO update-rc.d -f $$s disable >/dev/null 2>&1 || true; $$SUDO service $$s stop >/dev/null 2>&1 || true; fi; \
	  done; \
	fi
endef

$(VENV)/.debian.stamp: Makefile
	$(call install_debs,$(BASE_DEBS),,)
	@mkdir -p $(VENV) && touch $@

$(VENV)/.test-debian.stamp: Makefile | $(VENV)/.debian.stamp
	$(call install_debs,$(TEST_DEBS),--no-install-recommends,$(TEST_SERVICES))
	@touch $@

$(BIN)/python: | $(VENV)/.debian.stamp
	$(PYTHON) -m venv $(VENV)

$(VENV)/.python.stamp: pyproject.toml setup.py $(VENV)/.debian.stamp | $(BIN)/python
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

pytest: setup $(VENV)/.test-debian.stamp
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf build native/*.so native/_*.c $(VENV)/.native.stamp
