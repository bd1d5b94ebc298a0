"""The async benchmark's pure parts: summaries and the verdicts in its report."""

from __future__ import annotations

from bench.async_latency import report, summarize


def test_summary_has_count_and_percentiles() -> None:
    """n, median, p90 and p99 of the samples."""
    summary = summarize([float(v) for v in range(1, 101)])
    assert summary["n"] == 100
    assert summary["p50"] == 50.5
    assert round(summary["p99"], 2) == 99.01


def test_report_states_both_targets() -> None:
    """Async over sync and the loaded 202 p99 are compared with their targets."""
    row = {"n": 40.0, "p50": 100.0, "p90": 110.0, "p99": 120.0}
    results = {
        "sync": row,
        "async_end_to_end": {**row, "p50": 104.0},
        "async_submit": {**row, "p50": 2.0},
        "async_submit_under_load": {**row, "p99": 12.0},
        "noop": {**row, "p50": 3.0},
        "noop_under_load": {**row, "p99": 11.0},
    }
    text = report(results)
    assert "**+4.0 ms** (target ≤ +10 ms: met)" in text
    assert "one round trip, 3.00 ms" in text
    assert "**12.0 ms** (target ≤ 10 ms: not met), against 11.0 ms for `_noop`" in text
