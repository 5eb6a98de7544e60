"""``python -m core.outbox status``: read beside the owning process, JSON keys as documented,
drops persisted across restarts, a missing or corrupt spool a one-line failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.outbox import Entry, Outbox, OutboxConfig
from core.outbox.__main__ import main
from core.outbox.status import STATUS_SCHEMA, spool_status


def _status(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["status", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_status_of_a_spool_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "outbox.db"
    config = OutboxConfig(path=path, sync="normal", max_bytes=4096)
    with Outbox(config) as box:  # still open: the CLI reads beside its owner
        box.put_many([Entry("cam0", b"x" * 1000, 1), Entry("cam1", b"y" * 1000, 2)])
        box.put_many([Entry("cam0", b"z" * 1000, 1, ("mqtt", "s3"))])
        box.put_many([Entry("cam1", b"w" * 1000, 2)])  # evicts cam0's priority-1 records
        code, out, err = _status(capsys, "--spool", str(path), "--json")
        assert code == 0 and not err
        status = json.loads(out)
        assert set(status) == {
            "schema",
            "spool",
            "records",
            "bytes",
            "oldest_age_s",
            "channels",
            "streams",
            "dropped",
        }
        assert status["schema"] == STATUS_SCHEMA
        assert status["records"] == box.depth() and status["bytes"] == box.stats()["bytes"]
        assert status["streams"] == {"cam0": 2, "cam1": 2}
        evicted = box.counters["evicted"]
        assert status["dropped"] == {"evicted": evicted, "rejected": 0, "expired": 0}
        assert status["dropped"]["evicted"] >= 1
        assert status["oldest_age_s"] >= 0
        code, out, _ = _status(capsys, "--spool", str(path))
        assert code == 0 and "records" in out and "cam1 2" in out
    with Outbox(config) as box:  # drops are totals over the spool's life
        assert box.counters["evicted"] == 0
    assert spool_status(path)["dropped"]["evicted"] == status["dropped"]["evicted"]


def test_empty_spool(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    Outbox(OutboxConfig(path=path)).close()
    status = spool_status(path)
    assert status["records"] == 0 and status["oldest_age_s"] is None and status["streams"] == {}


def test_missing_spool_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _status(capsys, "--spool", str(tmp_path / "nothing.db"))
    assert code == 1 and not out
    assert err.count("\n") == 1 and "no outbox spool" in err and "nothing.db" in err
    assert not (tmp_path / "nothing.db").exists()  # a status query never creates a spool


def test_corrupt_spool_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"not a database" * 300)
    code, out, err = _status(capsys, "--spool", str(path), "--json")
    assert code == 1 and not out
    assert err.count("\n") == 1 and "corrupt" in err
    assert path.read_bytes().startswith(b"not a database")  # reported, left as it was


def test_help_and_bad_usage() -> None:
    run = [sys.executable, "-m", "core.outbox"]
    helped = subprocess.run([*run, "status", "--help"], capture_output=True, text=True, check=False)
    assert helped.returncode == 0 and "--spool" in helped.stdout and "--json" in helped.stdout
    bad = subprocess.run([*run, "stats"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2
