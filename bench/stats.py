"""Load-run figures from raw samples, with no IO: percentiles, per-type tables, time series.

A sample is one request as the load generator saw it: when it started (epoch seconds),
its request type, its latency in milliseconds, its HTTP status and whether it answered
what that type expects. Everything here is a pure function of a list of samples, so the
maths is tested with plain data.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class Sample:
    """One request: start time (epoch s), type, latency (ms), status, as expected or not."""

    started: float
    name: str
    ms: float
    status: int
    ok: bool

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Sample:
        """The inverse of ``asdict``: one line of the locustfile's JSONL output."""
        return cls(
            float(row["started"]),
            str(row["name"]),
            float(row["ms"]),
            int(row["status"]),
            bool(row["ok"]),
        )


@dataclass(frozen=True)
class Summary:
    """The figures of one request type in one run; latencies in milliseconds."""

    name: str
    count: int
    errors: int
    overloaded: int
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    throughput: float  # answered requests per second over the run's span

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields."""
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def span_s(samples: Sequence[Sample]) -> float:
    """Seconds from the first request's start to the last request's answer."""
    if not samples:
        return 0.0
    first = min(s.started for s in samples)
    last = max(s.started + s.ms / 1000 for s in samples)
    return max(last - first, 1e-9)


def summarize(name: str, samples: Sequence[Sample], duration_s: float) -> Summary:
    """One type's figures; ``duration_s`` is the whole run's span, for throughput.

    A 503 is counted as ``overloaded`` (ECS's documented answer to a full queue), not as an
    error; latency percentiles cover every answer, whatever its status.
    """
    ms = [s.ms for s in samples]
    overloaded = sum(1 for s in samples if s.status == 503 and not s.ok)
    errors = sum(1 for s in samples if not s.ok) - overloaded
    figures = {f"p{q}": percentile(ms, q) for q in PERCENTILES}
    return Summary(
        name=name,
        count=len(samples),
        errors=errors,
        overloaded=overloaded,
        min=min(ms) if ms else math.nan,
        max=max(ms) if ms else math.nan,
        throughput=len(samples) / duration_s if duration_s > 0 else 0.0,
        **figures,
    )


def by_type(samples: Iterable[Sample], order: Sequence[str] = ()) -> dict[str, list[Sample]]:
    """Samples grouped by request type; types in ``order`` first, then the rest sorted."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[sample.name].append(sample)
    names = [n for n in order if n in groups] + sorted(n for n in groups if n not in order)
    return {name: groups[name] for name in names}


def summarize_run(samples: Sequence[Sample], order: Sequence[str] = ()) -> list[Summary]:
    """Per-type summaries of one run, then a line for all requests together."""
    duration = span_s(samples)
    rows = [summarize(name, group, duration) for name, group in by_type(samples, order).items()]
    if samples:
        rows.append(summarize("all", samples, duration))
    return rows


def windows(
    samples: Sequence[Sample], width_s: float, q: float = 50
) -> list[tuple[float, float, int]]:
    """(window start relative to the first request, q-th percentile ms, count) per window.

    Windows with no request are left out, so a plot shows gaps as straight lines.
    """
    if not samples:
        return []
    origin = min(s.started for s in samples)
    buckets: dict[int, list[float]] = defaultdict(list)
    for sample in samples:
        buckets[int((sample.started - origin) // width_s)].append(sample.ms)
    return [
        (index * width_s, percentile(values, q), len(values))
        for index, values in sorted(buckets.items())
    ]


def unexplained_5xx(samples: Iterable[Sample]) -> list[Sample]:
    """Every 5xx answer other than the documented 503 of a full task queue.

    Only task requests may be refused with 503 for overload; a 503 from comprehensive
    health means the engine was unreachable, which a soak counts as a failure.
    """
    return [
        s
        for s in samples
        if s.status >= 500 and not (s.status == 503 and s.name.startswith("task"))
    ]
