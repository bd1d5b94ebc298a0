"""The sans-IO conversion of Prometheus exposition text into SignalFx datapoints."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statusbridge.exceptions import InvalidExpositionError
from statusbridge.forwarding.prometheus import (
    Buckets,
    HistogramBaseline,
    bucket_deltas,
    convert,
    histogram_quantile,
    metric_name,
)
from statusbridge.forwarding.signalfx import Datapoint, MetricType

INF = math.inf
T0 = 1_700_000_000_000


def histogram_text(
    buckets: dict[str, float], count: float, total: float, name: str = "ecs_x_seconds"
) -> str:
    """A one-series histogram exposition with ``stage="run"``."""
    lines = [f"# TYPE {name} histogram"]
    lines += [f'{name}_bucket{{le="{le}",stage="run"}} {value}' for le, value in buckets.items()]
    lines += [f'{name}_count{{stage="run"}} {count}', f'{name}_sum{{stage="run"}} {total}']
    return "\n".join(lines) + "\n"


def by_name(points: list[Datapoint]) -> dict[str, Datapoint]:
    """Index datapoints by metric name (each name once in these tests)."""
    out = {point.metric: point for point in points}
    assert len(out) == len(points), "a metric name appears twice"
    return out


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("ecs_http_requests", "ecs.http.requests"),
        ("ecs_http_request_duration_seconds", "ecs.http.request.duration.seconds"),
        ("ecs_tasks_in_flight", "ecs.tasks.in.flight"),
        ("process_cpu_seconds", "ecs.process.cpu.seconds"),
    ],
)
def test_metric_name(family: str, expected: str) -> None:
    """Family names lose the ``ecs_`` prefix, gain ``ecs.`` and turn ``_`` into ``.``."""
    assert metric_name(family) == expected


def test_counter_becomes_cumulative_counter_with_label_dimensions() -> None:
    """A counter is a cumulative counter named without ``_total``, labels as dimensions."""
    text = (
        "# TYPE ecs_http_requests_total counter\n"
        'ecs_http_requests_total{method="GET",route="/v1.1/_noop",status="200"} 7.0\n'
        "# TYPE ecs_http_requests_created gauge\n"
        'ecs_http_requests_created{method="GET",route="/v1.1/_noop",status="200"} 1.7e9\n'
    )
    points = convert(text, timestamp_ms=T0, dimensions={"node": "n1"}, baseline={}).datapoints
    assert points == [
        Datapoint(
            "ecs.http.requests",
            MetricType.CUMULATIVE_COUNTER,
            7,
            T0,
            {"method": "GET", "route": "/v1.1/_noop", "status": "200", "node": "n1"},
        )
    ]
    assert isinstance(points[0].value, int)


def test_gauge_becomes_gauge_and_untyped_too() -> None:
    """Gauges and untyped samples are float gauges; ``*_created`` of a gauge name is kept."""
    text = (
        "# TYPE ecs_tasks_in_flight gauge\necs_tasks_in_flight 3\n"
        "# TYPE ecs_boot_created gauge\necs_boot_created 12\n"
        "ecs_mystery 1.5\n"
    )
    points = by_name(convert(text, timestamp_ms=T0, dimensions={}, baseline={}).datapoints)
    assert points["ecs.tasks.in.flight"] == Datapoint(
        "ecs.tasks.in.flight", MetricType.GAUGE, 3.0, T0, {}
    )
    assert points["ecs.boot.created"].value == 12.0
    assert points["ecs.mystery"].metric_type is MetricType.GAUGE


def test_extra_dimensions_win_and_empty_labels_are_dropped() -> None:
    """Configured dimensions override a same-named label; an empty label value is absent."""
    text = '# TYPE ecs_q gauge\necs_q{node="label-node",kind=""} 1\n'
    (point,) = convert(
        text, timestamp_ms=T0, dimensions={"node": "n1", "environment": "prod"}, baseline={}
    ).datapoints
    assert point.dimensions == {"node": "n1", "environment": "prod"}


def test_first_histogram_scrape_only_sets_the_baseline() -> None:
    """A histogram's first scrape gives cumulative ``.count``/``.sum`` and no percentiles."""
    text = histogram_text({"0.1": 5, "0.5": 10, "1.0": 20, "+Inf": 20}, 20, 9.5)
    result = convert(text, timestamp_ms=T0, dimensions={}, baseline={})
    points = by_name(result.datapoints)
    assert set(points) == {"ecs.x.seconds.count", "ecs.x.seconds.sum"}
    assert points["ecs.x.seconds.count"].value == 20
    assert points["ecs.x.seconds.count"].metric_type is MetricType.CUMULATIVE_COUNTER
    assert points["ecs.x.seconds.sum"].value == 9.5
    assert points["ecs.x.seconds.sum"].dimensions == {"stage": "run"}
    assert result.baseline == {
        ("ecs_x_seconds", (("stage", "run"),)): ((0.1, 5), (0.5, 10), (1.0, 20), (INF, 20))
    }


def test_percentiles_from_bucket_deltas_on_known_data() -> None:
    """p50/p90/p99 interpolate linearly inside the bucket holding the rank of the deltas."""
    baseline = HistogramBaseline()
    first = histogram_text({"0.1": 5, "0.5": 10, "1.0": 20, "+Inf": 20}, 20, 9.5)
    # Deltas per bucket: 20, 40, 35, 5 → cumulative 20, 60, 95, 100.
    second = histogram_text({"0.1": 25, "0.5": 70, "1.0": 115, "+Inf": 120}, 120, 70.0)
    baseline.convert(first, timestamp_ms=T0, dimensions={})
    points = by_name(baseline.convert(second, timestamp_ms=T0 + 10_000, dimensions={}))
    # rank 50 lies in (0.1, 0.5]: 30 of its 40 → 0.1 + 0.4 * 30/40.
    assert points["ecs.x.seconds.p50"].value == pytest.approx(0.4)
    # rank 90 lies in (0.5, 1]: 30 of its 35 → 0.5 + 0.5 * 30/35.
    assert points["ecs.x.seconds.p90"].value == pytest.approx(0.5 + 0.5 * 30 / 35)
    # rank 99 lies in the +Inf bucket → the highest finite bound.
    assert points["ecs.x.seconds.p99"].value == 1.0
    assert points["ecs.x.seconds.p50"].metric_type is MetricType.GAUGE
    assert points["ecs.x.seconds.p50"].dimensions == {"stage": "run"}
    assert points["ecs.x.seconds.p50"].timestamp_ms == T0 + 10_000
    assert points["ecs.x.seconds.count"].value == 120


def test_no_percentiles_when_nothing_happened() -> None:
    """An unchanged histogram yields count and sum but no percentile gauges."""
    baseline = HistogramBaseline()
    text = histogram_text({"0.1": 5, "0.5": 10, "1.0": 20, "+Inf": 20}, 20, 9.5)
    baseline.convert(text, timestamp_ms=T0, dimensions={})
    points = by_name(baseline.convert(text, timestamp_ms=T0 + 1, dimensions={}))
    assert set(points) == {"ecs.x.seconds.count", "ecs.x.seconds.sum"}


def test_counter_reset_uses_the_new_values_as_the_delta() -> None:
    """After a restart (counts went down) the new cumulative buckets are the delta."""
    baseline = HistogramBaseline()
    before = histogram_text({"0.1": 500, "0.5": 900, "1.0": 1000, "+Inf": 1000}, 1000, 300.0)
    after = histogram_text({"0.1": 0, "0.5": 4, "1.0": 4, "+Inf": 4}, 4, 1.0)
    baseline.convert(before, timestamp_ms=T0, dimensions={})
    points = by_name(baseline.convert(after, timestamp_ms=T0 + 1, dimensions={}))
    # All 4 observations lie in (0.1, 0.5]: p50 at rank 2 → 0.1 + 0.4 * 2/4.
    assert points["ecs.x.seconds.p50"].value == pytest.approx(0.3)
    assert points["ecs.x.seconds.p99"].value == pytest.approx(0.1 + 0.4 * 3.96 / 4)
    assert all(point.value >= 0 for point in points.values())


def test_changed_bucket_bounds_start_a_new_baseline() -> None:
    """When the bucket bounds change there is nothing to diff, so no percentiles."""
    assert bucket_deltas(((0.1, 1), (INF, 2)), ((0.2, 1), (INF, 2))) is None
    assert bucket_deltas(None, ((0.1, 1), (INF, 2))) is None


def test_disappeared_series_are_forgotten() -> None:
    """The baseline only keeps the series present in the latest scrape."""
    baseline = HistogramBaseline()
    baseline.convert(histogram_text({"1.0": 1, "+Inf": 1}, 1, 0.5), timestamp_ms=T0, dimensions={})
    assert len(baseline) == 1
    baseline.convert("# TYPE ecs_q gauge\necs_q 1\n", timestamp_ms=T0, dimensions={})
    assert len(baseline) == 0


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, ((0.1, 80), (0.5, 90), (1.0, 100), (INF, 100)), 0.1 * 50 / 80),
        (0.5, ((-1.0, 10), (0.0, 10), (INF, 10)), -1.0),
        (0.99, ((0.1, 0), (0.5, 0), (INF, 3)), 0.5),
        (0.5, ((0.1, 0), (INF, 0)), None),
        (0.5, ((INF, 5),), None),
    ],
)
def test_histogram_quantile_edge_cases(q: float, buckets: Buckets, expected: float | None) -> None:
    """Interpolation starts at 0, non-positive first bounds and +Inf follow PromQL."""
    assert histogram_quantile(q, buckets) == (
        pytest.approx(expected) if expected is not None else None
    )


def test_non_monotonic_buckets_are_evened_out() -> None:
    """A bucket lower than the one before it counts as equal to it, as in PromQL."""
    # Evened out to 4, 4, 8, 8: rank 6 is 2 of the 4 in (0.5, 1] (not 3 of 5).
    buckets = ((0.1, 4), (0.5, 3), (1.0, 8), (INF, 8))
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.75)


def test_invalid_exposition_raises_our_error() -> None:
    """Text that is not an exposition raises InvalidExpositionError, not a parser error."""
    with pytest.raises(InvalidExpositionError):
        convert("<html>oops</html>\n", timestamp_ms=T0, dimensions={}, baseline={})


def test_summary_becomes_count_sum_and_quantile_gauge() -> None:
    """A summary gives cumulative count/sum and its quantiles as a gauge per quantile."""
    text = '# TYPE ecs_s summary\necs_s{quantile="0.5"} 0.2\necs_s_count 10\necs_s_sum 3.0\n'
    points = convert(text, timestamp_ms=T0, dimensions={}, baseline={}).datapoints
    assert Datapoint("ecs.s", MetricType.GAUGE, 0.2, T0, {"quantile": "0.5"}) in points
    assert Datapoint("ecs.s.count", MetricType.CUMULATIVE_COUNTER, 10, T0, {}) in points
    assert Datapoint("ecs.s.sum", MetricType.CUMULATIVE_COUNTER, 3.0, T0, {}) in points


per_bucket = st.lists(st.integers(min_value=0, max_value=10_000), min_size=4, max_size=4)


def cumulative(bounds: tuple[float, ...], counts: list[int]) -> Buckets:
    """Turn per-bucket counts into Prometheus' cumulative ``le`` buckets."""
    running: list[tuple[float, float]] = []
    total = 0
    for bound, count in zip(bounds, counts, strict=True):
        total += count
        running.append((bound, total))
    return tuple(running)


@given(before=per_bucket, grown=per_bucket, restarted=st.booleans())
def test_deltas_are_never_negative_and_percentiles_stay_in_range(
    before: list[int], grown: list[int], restarted: bool
) -> None:
    """Across growth or a restart, deltas are ≥ 0 and p50 ≤ p90 ≤ p99 within the bounds."""
    bounds = (0.1, 0.5, 1.0, INF)
    previous = cumulative(bounds, before)
    after = grown if restarted else [b + g for b, g in zip(before, grown, strict=True)]
    delta = bucket_deltas(previous, cumulative(bounds, after))
    assert delta is not None
    assert all(count >= 0 for _, count in delta)
    values = [histogram_quantile(q, delta) for q in (0.5, 0.9, 0.99)]
    if delta[-1][1] == 0:
        assert values == [None, None, None]
        return
    numbers = [value for value in values if value is not None]
    assert len(numbers) == 3
    assert numbers == sorted(numbers)
    assert all(0.0 <= value <= 1.0 for value in numbers)


def test_series_new_since_the_last_scrape_counts_from_zero() -> None:
    """A labelled histogram first seen on a target's second scrape gets percentiles at once."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from statusbridge.forwarding.prometheus import HistogramBaseline

    registry = CollectorRegistry()
    histogram = Histogram("ecs_d_seconds", "d", ["route"], buckets=(0.1, 1.0), registry=registry)
    baseline = HistogramBaseline()
    first = baseline.convert(generate_latest(registry).decode(), timestamp_ms=1, dimensions={})
    assert not [dp for dp in first if dp.metric.endswith(".p50")]
    for _ in range(4):
        histogram.labels("/new").observe(0.05)
    second = baseline.convert(generate_latest(registry).decode(), timestamp_ms=2, dimensions={})
    (p50,) = [dp for dp in second if dp.metric == "ecs.d.seconds.p50"]
    assert p50.value == pytest.approx(0.05)  # rank 2 of 4 in (0, 0.1]
