"""The outbox micro suite: its rows, headline keys and fsync policy (figures are not judged here:
performance is the bench's business, not the unit tests')."""

from __future__ import annotations

from bench.micro import MicroOptions, run_suite


def test_outbox_suite_reports_headlines_next_to_bare_sqlite() -> None:
    result = run_suite("outbox", MicroOptions(quick=True))
    case = result["write_ack"]
    names = {(row["name"], row["fsync_policy"]) for row in case["rows"]}
    assert names == {
        (name, sync)
        for name in ("edgeloop outbox", "bare sqlite insert")
        for sync in ("full", "normal")
    }
    assert result["records_per_s"] == case["records_per_s"] > 0
    assert result["ratio_vs_bare_sqlite"] == case["ratio_vs_bare_sqlite"] > 0
    assert result["fsync_policy"] == "full"
    assert all(row["mb_per_s"] > 0 and row["ack_records_per_s"] > 0 for row in case["rows"])


def test_outbox_suite_skips_when_not_asked() -> None:
    assert run_suite("outbox", MicroOptions(quick=True, cases=frozenset({"1080p"}))) == {}
