"""Sans-IO core: Pingdom results → per-bucket response-time and uptime points.

Uptime follows Pingdom's own time-weighted counting: sort by time, dedupe on
(probe, time); each result covers the time until the next one, capped at the check's
resolution; ``down`` counts as down, ``up`` and ``unconfirmed`` as up, ``unknown`` and
gaps count nowhere. A bucket with no up or down time gets no uptime point (not 100),
and a bucket without an ``up`` result with a response time gets no response-time point.
Buckets are ``size_s`` long, aligned to the epoch; a point's timestamp is its start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

UP_STATUSES = frozenset({"up", "unconfirmed"})


@dataclass(frozen=True, slots=True)
class Result:
    """One raw Pingdom test result; every field but ``time`` may be missing upstream."""

    time: int
    status: str = "unknown"
    probe_id: int | None = None
    response_time_ms: float | None = None


@dataclass(frozen=True, slots=True)
class BucketPoints:
    """What one completed bucket contributes to the Cachet metrics."""

    start: int
    response_time_ms: float | None
    uptime_pct: float | None
    up_s: float
    down_s: float


def normalise(results: Iterable[Result]) -> list[Result]:
    """Dedupe on (probe, time) and sort ascending by time (Pingdom answers newest first)."""
    unique = {(r.probe_id, r.time): r for r in results}
    return sorted(unique.values(), key=lambda r: (r.time, r.probe_id or 0))


def bucket_start(t: float, size_s: int) -> int:
    """Start of the epoch-aligned bucket holding time ``t``."""
    return int(t) - int(t) % size_s


def completed_bucket_end(now: float, size_s: int, settle_s: int) -> int:
    """End (exclusive) of the newest bucket that is complete ``settle_s`` after its end."""
    return bucket_start(now - settle_s, size_s)


def compute_buckets(
    results: Iterable[Result],
    *,
    start: int,
    end: int,
    size_s: int,
    resolution_s: int,
) -> list[BucketPoints]:
    """Points for every bucket in ``[start, end)`` (both aligned to ``size_s``).

    ``results`` should reach back one resolution before ``start`` (a result just
    before a bucket covers its beginning) and may extend past ``end``.
    """
    if start % size_s or end % size_s:
        raise ValueError(f"bucket range [{start}, {end}) is not aligned to {size_s} s")
    ordered = normalise(results)
    count = max(0, (end - start) // size_s)
    up = [0.0] * count
    down = [0.0] * count
    rt_sum = [0.0] * count
    rt_n = [0] * count
    for index, result in enumerate(ordered):
        following = ordered[index + 1].time if index + 1 < len(ordered) else None
        cover_end = result.time + resolution_s
        if following is not None:
            cover_end = min(cover_end, following)
        if result.status == "down":
            _spread(down, result.time, cover_end, start, end, size_s)
        elif result.status in UP_STATUSES:
            _spread(up, result.time, cover_end, start, end, size_s)
        if result.status == "up" and result.response_time_ms and start <= result.time < end:
            slot = (result.time - start) // size_s
            rt_sum[slot] += result.response_time_ms
            rt_n[slot] += 1
    points = []
    for slot in range(count):
        measured = up[slot] + down[slot]
        points.append(
            BucketPoints(
                start=start + slot * size_s,
                response_time_ms=round(rt_sum[slot] / rt_n[slot], 3) if rt_n[slot] else None,
                uptime_pct=round(100.0 * up[slot] / measured, 4) if measured > 0 else None,
                up_s=up[slot],
                down_s=down[slot],
            )
        )
    return points


def _spread(totals: list[float], t0: int, t1: int, start: int, end: int, size_s: int) -> None:
    # Add the covered seconds of [t0, t1) to every bucket they overlap.
    lo, hi = max(t0, start), min(t1, end)
    while lo < hi:
        slot = (lo - start) // size_s
        bucket_end = start + (slot + 1) * size_s
        piece_end = min(hi, bucket_end)
        totals[slot] += piece_end - lo
        lo = piece_end
