"""Uptime and response-time buckets computed against hand-worked windows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from statusbridge.pingdom_cachet.uptime import (
    Result,
    bucket_start,
    completed_bucket_end,
    compute_buckets,
)

T0 = 1_700_000_100  # a multiple of 300
FIVE_MIN = 300


def one_bucket(results: list[Result], resolution_s: int = 60) -> tuple[float | None, float | None]:
    [bucket] = compute_buckets(
        results, start=T0, end=T0 + FIVE_MIN, size_s=FIVE_MIN, resolution_s=resolution_s
    )
    return bucket.uptime_pct, bucket.response_time_ms


def test_unconfirmed_counts_up_unknown_counts_nowhere() -> None:
    """up 60 s + unconfirmed 60 s + up 60 s against down 60 s is 75 %; unknown is left out."""
    results = [
        Result(T0, "up", 1, 200),
        Result(T0 + 60, "down", 1),
        Result(T0 + 120, "up", 1, 400),
        Result(T0 + 180, "unconfirmed", 1, 9000),
        Result(T0 + 240, "unknown", 1),
    ]
    assert one_bucket(results) == (75.0, 300.0)


def test_gap_counts_nowhere_and_coverage_is_capped_at_resolution() -> None:
    """A result covers at most one resolution; the silent 3 minutes between are no data."""
    results = [Result(T0, "up", 1, 100), Result(T0 + 240, "down", 1)]
    assert one_bucket(results) == (50.0, 100.0)


def test_result_before_the_bucket_covers_its_start() -> None:
    """A down 30 s before the bucket covers its first 30 s; the next up covers 60 s."""
    results = [Result(T0 - 30, "down", 1), Result(T0 + 30, "up", 1, 120)]
    uptime, rt = one_bucket(results)
    assert uptime == round(100 * 60 / 90, 4)
    assert rt == 120.0


def test_longer_resolution_covers_longer() -> None:
    """With a 5-minute resolution one up result covers the whole bucket."""
    assert one_bucket([Result(T0, "up", 1, 80)], resolution_s=300) == (100.0, 80.0)


def test_no_up_or_down_time_means_no_points() -> None:
    """Only unknown results (or none) give neither an uptime nor a response-time point."""
    assert one_bucket([Result(T0, "unknown", 1)]) == (None, None)
    assert one_bucket([]) == (None, None)


def test_down_results_without_response_time_and_zero_times_are_skipped() -> None:
    """Response time is the mean of up results that carry one; down and 0 ms are ignored."""
    results = [
        Result(T0, "up", 1, 300),
        Result(T0 + 60, "down", 1, None),
        Result(T0 + 120, "up", 1, None),
        Result(T0 + 180, "up", 2, 0),
    ]
    assert one_bucket(results)[1] == 300.0


def test_duplicates_on_probe_and_time_count_once() -> None:
    """A result seen twice (overlapping pages) is counted once."""
    twice = [Result(T0, "down", 1), Result(T0, "down", 1), Result(T0 + 60, "up", 1, 10)]
    assert one_bucket(twice)[0] == 50.0


def test_interval_spanning_two_buckets_is_split() -> None:
    """A down result 30 s before a bucket boundary gives 30 s of down to each side."""
    buckets = compute_buckets(
        [Result(T0 + 270, "down", 1)], start=T0, end=T0 + 600, size_s=FIVE_MIN, resolution_s=60
    )
    assert [(b.start, b.down_s, b.uptime_pct) for b in buckets] == [
        (T0, 30.0, 0.0),
        (T0 + 300, 30.0, 0.0),
    ]


def test_bucket_alignment_and_completion() -> None:
    """Buckets are aligned to the epoch and complete only after the settle delay."""
    assert bucket_start(T0 + 299, FIVE_MIN) == T0
    assert completed_bucket_end(T0 + 300 + 59, FIVE_MIN, settle_s=60) == T0
    assert completed_bucket_end(T0 + 300 + 60, FIVE_MIN, settle_s=60) == T0 + 300


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-120, max_value=420),
            st.sampled_from(["up", "down", "unconfirmed", "unknown"]),
            st.integers(min_value=1, max_value=3),
        ),
        max_size=40,
    )
)
def test_uptime_is_a_percentage_of_at_most_the_bucket(raw: list[tuple[int, str, int]]) -> None:
    """For any results, uptime is within 0 to 100 and measured time never exceeds the bucket."""
    results = [Result(T0 + offset, status, probe) for offset, status, probe in raw]
    [bucket] = compute_buckets(results, start=T0, end=T0 + 300, size_s=300, resolution_s=60)
    assert bucket.up_s + bucket.down_s <= 300
    if bucket.uptime_pct is not None:
        assert 0.0 <= bucket.uptime_pct <= 100.0
