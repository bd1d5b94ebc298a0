"""Prometheus exposition text → SignalFx datapoints (sans-IO).

:func:`convert` is a pure function of the exposition text, the scrape time, the
dimensions to add and the previous scrape's histogram buckets; :class:`HistogramBaseline`
is the small state object that carries those buckets from one scrape of a target to the
next.

Naming rule: the metric family name (prometheus-client's parser already strips a
counter's ``_total``), with a leading ``ecs_`` removed, prefixed with ``ecs.``, and every
``_`` turned into ``.``. Units stay as a word. So ``ecs_http_requests_total`` →
``ecs.http.requests``, ``ecs_tasks_in_flight`` → ``ecs.tasks.in.flight``,
``ecs_http_request_duration_seconds`` → ``ecs.http.request.duration.seconds.{count,sum,
p50,p90,p99}``, and a family without the prefix such as ``process_cpu_seconds_total``
→ ``ecs.process.cpu.seconds``.

Types:

- counter → cumulative counter (an ``int`` when the value is integral);
- gauge and untyped → gauge (``float``);
- histogram → ``.count`` and ``.sum`` cumulative counters, plus ``.p50``/``.p90``/``.p99``
  gauges estimated from the bucket *deltas* since the previous scrape of the same series,
  by linear interpolation inside the bucket as PromQL's ``histogram_quantile`` does; no
  percentile gauges on the first scrape of a series (it only sets the baseline), when no
  observation happened in between, or when the bucket bounds changed;
- summary → ``.count``/``.sum`` cumulative counters and the quantiles as one gauge with a
  ``quantile`` dimension;
- the ``*_created`` gauges prometheus-client adds next to counters and histograms, and
  any other type, are dropped.

Counter resets (a restarted ECS): cumulative counters are forwarded as they are and
SignalFx treats a decrease of a cumulative counter as a reset. For the percentile
deltas, a series with a bucket that went down (or whose deltas are not cumulative,
which only a restart can cause) is taken as reset and its **new cumulative buckets are
used as the delta** (they are exactly what the new process observed); a delta is never
negative. A restart that leaves every bucket at or above its old count cannot be told
apart from growth.

Dimensions: every label with a non-empty value (empty means absent in Prometheus),
except ``le``; then the extra ``dimensions`` given (node, environment, service…),
which win over a label of the same name. Every datapoint carries the scrape time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from statusbridge.exceptions import InvalidExpositionError
from statusbridge.forwarding.signalfx import Datapoint, MetricType

__all__ = [
    "PERCENTILES",
    "Buckets",
    "Conversion",
    "HistogramBaseline",
    "SeriesKey",
    "convert",
    "histogram_quantile",
    "metric_name",
]

NAMESPACE = "ecs"
PERCENTILES: tuple[tuple[float, str], ...] = ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"))
_COUNTED_TYPES = frozenset({"counter", "histogram", "summary"})

# A histogram series: the family name and its labels without ``le``, sorted.
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
# Cumulative bucket counts by upper bound, sorted by bound, ending with +Inf.
Buckets = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Conversion:
    """What one scrape converts to: datapoints, and the buckets to diff the next one with."""

    datapoints: list[Datapoint]
    baseline: dict[SeriesKey, Buckets]


def metric_name(family: str) -> str:
    """The SignalFx metric name for a Prometheus family name (see the module docstring)."""
    base = family.removeprefix(f"{NAMESPACE}_")
    return f"{NAMESPACE}.{base.replace('_', '.')}"


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """Estimate the ``q`` quantile from cumulative ``buckets``, as PromQL does.

    ``buckets`` are ``(upper_bound, cumulative_count)`` sorted by bound, the last one
    ``+Inf``. The rank ``q * total`` is located in its bucket and interpolated linearly
    between the bucket's bounds (the first bucket starts at 0 unless its bound is ≤ 0);
    a rank in the ``+Inf`` bucket yields the highest finite bound. ``None`` when there
    are no observations or fewer than two buckets.
    """
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return None
    # Counts scraped while observations land can be non-monotonic; PromQL evens that out.
    counts: list[float] = []
    for _, count in buckets:
        counts.append(max(count, counts[-1]) if counts else count)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    index = next((i for i, count in enumerate(counts[:-1]) if count >= rank), len(counts) - 1)
    if index == len(counts) - 1:
        return buckets[-2][0]
    upper = buckets[index][0]
    if index == 0 and upper <= 0:
        return upper
    lower = 0.0
    in_bucket = counts[index]
    if index > 0:
        lower = buckets[index - 1][0]
        in_bucket -= counts[index - 1]
        rank -= counts[index - 1]
    return lower + (upper - lower) * (rank / in_bucket)


def bucket_deltas(previous: Buckets | None, current: Buckets) -> Buckets | None:
    """The observations between two scrapes of one series, or ``None`` for a baseline.

    A first scrape or changed bucket bounds give ``None``. The process restarted when a
    bucket went down, or when the deltas are not cumulative (a lower bucket gained more
    than a higher one, which one process cannot do); then ``current`` is the delta.
    """
    if previous is None or [b for b, _ in previous] != [b for b, _ in current]:
        return None
    delta = tuple(
        (bound, now - before) for (bound, before), (_, now) in zip(previous, current, strict=True)
    )
    counts = [count for _, count in delta]
    if min(counts) < 0 or any(low > high for low, high in itertools.pairwise(counts)):
        return current
    return delta


def convert(
    text: str,
    *,
    timestamp_ms: int,
    dimensions: Mapping[str, str],
    baseline: Mapping[SeriesKey, Buckets],
    target_seen: bool = False,
) -> Conversion:
    """Convert one scrape's exposition ``text`` into datapoints (see the module docstring).

    ``baseline`` holds the previous scrape's buckets per histogram series; the returned
    :class:`Conversion` holds this scrape's, so series that disappeared are forgotten.
    ``target_seen`` says the target was scraped before: a histogram series that is new
    then started from zero since that scrape (prometheus-client creates a labelled series
    on its first observation), so all its observations are the delta.
    Raises :class:`InvalidExpositionError` when the text does not parse.
    """
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, TypeError, IndexError) as exc:
        raise InvalidExpositionError(f"cannot parse the exposition: {exc}") from exc
    counted = {family.name for family in families if family.type in _COUNTED_TYPES}
    out: list[Datapoint] = []
    new_baseline: dict[SeriesKey, Buckets] = {}
    for family in families:
        emit = _Emitter(metric_name(family.name), timestamp_ms, dimensions)
        if family.type == "counter":
            for sample in family.samples:
                if not sample.name.endswith("_created"):
                    out.append(emit.counter("", sample.value, sample.labels))
        elif family.type in ("gauge", "unknown", "untyped"):
            if family.name.endswith("_created") and family.name[: -len("_created")] in counted:
                continue
            out.extend(emit.gauge("", sample.value, sample.labels) for sample in family.samples)
        elif family.type == "summary":
            for sample in family.samples:
                suffix = sample.name.removeprefix(family.name)
                if suffix == "_count":
                    out.append(emit.counter(".count", sample.value, sample.labels))
                elif suffix == "_sum":
                    out.append(emit.total(".sum", sample.value, sample.labels))
                elif suffix == "":
                    out.append(emit.gauge("", sample.value, sample.labels))
        elif family.type == "histogram":
            out.extend(_histogram(family, emit, baseline, new_baseline, target_seen))
    return Conversion(datapoints=out, baseline=new_baseline)


class HistogramBaseline:
    """The state one target's conversions share: its previous histogram buckets."""

    def __init__(self) -> None:
        self._buckets: dict[SeriesKey, Buckets] = {}
        self._scraped = False

    def __len__(self) -> int:
        return len(self._buckets)

    def convert(
        self, text: str, *, timestamp_ms: int, dimensions: Mapping[str, str]
    ) -> list[Datapoint]:
        """Run :func:`convert` against the stored buckets and keep the new ones."""
        result = convert(
            text,
            timestamp_ms=timestamp_ms,
            dimensions=dimensions,
            baseline=self._buckets,
            target_seen=self._scraped,
        )
        self._buckets = result.baseline
        self._scraped = True
        return result.datapoints


@dataclass(frozen=True, slots=True)
class _Emitter:
    """Builds the datapoints of one family: its name, the scrape time, extra dimensions."""

    name: str
    timestamp_ms: int
    extra: Mapping[str, str]

    def counter(self, suffix: str, value: float, labels: Mapping[str, str]) -> Datapoint:
        # Counts travel as ints when whole (the parser gives int or float); NaN stays a
        # float so validation can reject it, and 2**63 is where int64 ends.
        number = float(value)
        whole = number.is_integer() and abs(number) < 2**63
        return self._point(
            suffix, MetricType.CUMULATIVE_COUNTER, int(number) if whole else number, labels
        )

    def total(self, suffix: str, value: float, labels: Mapping[str, str]) -> Datapoint:
        # A sum of durations is a float even when whole, so its type never flips.
        return self._point(suffix, MetricType.CUMULATIVE_COUNTER, float(value), labels)

    def gauge(self, suffix: str, value: float, labels: Mapping[str, str]) -> Datapoint:
        return self._point(suffix, MetricType.GAUGE, float(value), labels)

    def _point(
        self, suffix: str, kind: MetricType, value: int | float, labels: Mapping[str, str]
    ) -> Datapoint:
        dimensions = {key: val for key, val in labels.items() if val and key != "le"}
        dimensions.update(self.extra)
        return Datapoint(self.name + suffix, kind, value, self.timestamp_ms, dimensions)


def _histogram(
    family: Metric,
    emit: _Emitter,
    baseline: Mapping[SeriesKey, Buckets],
    new_baseline: dict[SeriesKey, Buckets],
    target_seen: bool,
) -> list[Datapoint]:
    buckets: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    labels_of: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    out: list[Datapoint] = []
    for sample in family.samples:
        labels = {key: val for key, val in sample.labels.items() if key != "le"}
        series = tuple(sorted(labels.items()))
        labels_of[series] = labels
        suffix = sample.name.removeprefix(family.name)
        if suffix == "_bucket" and "le" in sample.labels:
            buckets.setdefault(series, []).append((float(sample.labels["le"]), sample.value))
        elif suffix == "_count":
            out.append(emit.counter(".count", sample.value, labels))
        elif suffix == "_sum":
            out.append(emit.total(".sum", sample.value, labels))
    for series, raw in buckets.items():
        key: SeriesKey = (family.name, series)
        current: Buckets = tuple(sorted(raw))
        new_baseline[key] = current
        previous = baseline.get(key)
        if previous is None and target_seen:
            previous = tuple((bound, 0.0) for bound, _ in current)
        delta = bucket_deltas(previous, current)
        if delta is None:
            continue
        for q, suffix in PERCENTILES:
            value = histogram_quantile(q, delta)
            if value is not None:
                out.append(emit.gauge(f".{suffix}", value, labels_of[series]))
    return out
