"""The load runs' figures: percentiles, per-type summaries, windows and 5xx judgement."""

from __future__ import annotations

import math

import pytest

from bench.stats import (
    Sample,
    by_type,
    percentile,
    span_s,
    summarize,
    summarize_run,
    unexplained_5xx,
    windows,
)


def _sample(name: str, ms: float, status: int = 200, ok: bool = True, at: float = 0.0) -> Sample:
    return Sample(started=1000.0 + at, name=name, ms=ms, status=status, ok=ok)


def test_percentile_interpolates_between_closest_ranks() -> None:
    """p50 of 1..4 lies halfway between 2 and 3, and the ends are min and max."""
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 90) == pytest.approx(3.7)


def test_percentile_of_one_value_and_of_none() -> None:
    """A single sample is every percentile; no sample gives NaN rather than an error."""
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_percentile_refuses_a_q_outside_0_to_100() -> None:
    """A percentile of 101 is a caller's mistake, not a number."""
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_summary_counts_503_as_overloaded_not_as_error() -> None:
    """A 503 is ECS's documented full-queue answer; a 500 or a wrong status is an error."""
    samples = [
        _sample("task ok", 100, 201),
        _sample("task ok", 5, 503, ok=False),
        _sample("task ok", 50, 500, ok=False),
        _sample("task ok", 80, 429, ok=False),
    ]
    summary = summarize("task ok", samples, duration_s=2.0)
    assert (summary.count, summary.errors, summary.overloaded) == (4, 2, 1)
    assert (summary.min, summary.max) == (5, 100)
    assert summary.throughput == 2.0


def test_span_runs_from_the_first_start_to_the_last_answer() -> None:
    """The run lasts from the earliest request's start to the latest request's end."""
    samples = [_sample("noop", 500, at=0.0), _sample("noop", 1000, at=1.0)]
    assert span_s(samples) == pytest.approx(2.0)
    assert span_s([]) == 0.0


def test_run_summary_orders_types_and_ends_with_all() -> None:
    """Types named in the order come first, the rest sorted, then one line for everything."""
    samples = [_sample("zeta", 1), _sample("noop", 2), _sample("task ok", 3), _sample("alpha", 4)]
    rows = summarize_run(samples, order=("task ok", "noop"))
    assert [r.name for r in rows] == ["task ok", "noop", "alpha", "zeta", "all"]
    assert rows[-1].count == 4
    assert list(by_type([], ("noop",))) == []


def test_windows_give_a_percentile_per_time_slice_and_skip_empty_ones() -> None:
    """Samples fall into fixed windows from the first start; an empty window is left out."""
    samples = [
        _sample("noop", 1, at=0.0),
        _sample("noop", 3, at=5.0),
        _sample("noop", 10, at=25.0),
    ]
    assert windows(samples, 10.0, q=50) == [(0.0, 2.0, 2), (20.0, 10.0, 1)]
    assert windows([], 10.0) == []


def test_only_task_503s_are_explained() -> None:
    """A task's 503 is the documented overload; any other 5xx, or a health 503, is not."""
    samples = [
        _sample("task ok", 1, 503, ok=False),
        _sample("task image not found", 1, 503, ok=False),
        _sample("health full", 1, 503, ok=False),
        _sample("task ok", 1, 500, ok=False),
        _sample("noop", 1, 200),
    ]
    assert [(s.name, s.status) for s in unexplained_5xx(samples)] == [
        ("health full", 503),
        ("task ok", 500),
    ]


def test_sample_reads_back_the_locustfile_json_line() -> None:
    """A JSON line as the locustfile writes it becomes the same Sample."""
    row = {"started": 1.5, "name": "noop", "ms": 2.25, "status": 200, "ok": True}
    assert Sample.from_json(row) == Sample(1.5, "noop", 2.25, 200, True)
