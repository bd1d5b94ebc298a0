"""The ECS → SignalFx forwarding job: scrape each ECS node's /metrics, convert, send.

One :class:`ForwardingJob` covers every ``[[ecs_targets]]`` entry. It runs every
``interval_s`` (the shortest target interval, 10 s by default); on each run it scrapes
the targets that are due, concurrently, converts each exposition with that target's
:class:`~statusbridge.prometheus.HistogramBaseline`, and hands all datapoints of the run
to the sink in one call. Every scraped target also gets an ``ecs.up`` gauge: 1 when its
scrape and conversion succeeded, 0 (and its error logged) when not; the other targets
still go out. A run fails (for the daemon's /health) only when every target failed.

:mod:`statusbridge.app` builds the job through :func:`build_forwarding_job`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx
import structlog

from statusbridge.config import Config, EcsTargetSettings
from statusbridge.exceptions import (
    ConfigError,
    EcsScrapeError,
    ForwardingError,
    InvalidExpositionError,
)
from statusbridge.forwarding.prometheus import HistogramBaseline
from statusbridge.forwarding.signalfx import (
    Datapoint,
    DatapointSink,
    DryRunSink,
    MetricType,
    SignalFxSink,
)
from statusbridge.metrics import StatusBridgeMetrics

__all__ = [
    "UP_METRIC",
    "ForwardingJob",
    "Target",
    "build_forwarding_job",
    "scrape",
]

UP_METRIC = "ecs.up"
# The text format prometheus-client's parser reads; without it ECS may answer OpenMetrics.
_ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"
_SCRAPE_TIMEOUT_S = 5.0

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """One ECS node to scrape: its /metrics URL, its ``node`` dimension, its interval."""

    url: str
    node: str
    interval_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: EcsTargetSettings) -> Target:
        """Build a target; ``node`` is the configured name or the URL's ``host:port``."""
        return cls(settings.url, settings.name or node_name(settings.url), settings.interval_s)


def node_name(url: str) -> str:
    """The ``host:port`` of ``url`` (port left out when the URL has none)."""
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port}" if parsed.port is not None else parsed.host


async def scrape(client: httpx.AsyncClient, url: str, *, timeout_s: float) -> str:
    """GET ``url`` and return the exposition text; raise :class:`EcsScrapeError` otherwise."""
    try:
        response = await client.get(url, headers={"Accept": _ACCEPT}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise EcsScrapeError(f"{url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code != httpx.codes.OK:
        raise EcsScrapeError(f"{url}: {response.text[:200]}", status=response.status_code)
    return response.text


class ForwardingJob:
    """Scrapes ECS targets and forwards their metrics to a :class:`DatapointSink`.

    ``http_client`` belongs to the caller; ``sink`` is closed by :meth:`aclose`.
    ``clock`` gives the datapoints' wall time and ``monotonic`` decides which targets
    are due; both are injectable for tests.
    """

    name = "forwarding"

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        http_client: httpx.AsyncClient,
        sink: DatapointSink,
        dimensions: Mapping[str, str] | None = None,
        metrics: StatusBridgeMetrics | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not targets:
            raise ValueError("a forwarding job needs at least one target")
        if len(set(targets)) != len(targets):
            # Targets key the histogram baselines; a twin would corrupt both deltas.
            raise ValueError("a forwarding target is listed twice")
        self.targets = tuple(targets)
        self.interval_s = min(target.interval_s for target in self.targets)
        self.sink = sink
        self._http = http_client
        self._static = dict(dimensions or {})
        self._scrape_timeout_s = min(_SCRAPE_TIMEOUT_S, self.interval_s)
        self._clock = clock
        self._monotonic = monotonic
        self._baselines = {target: HistogramBaseline() for target in self.targets}
        self._last_scrape: dict[Target, float] = {}
        self._metrics = metrics if metrics is not None else StatusBridgeMetrics()
        self._client_errors_seen = 0
        self._dropped_seen: dict[str, int] = {}

    async def run_once(self) -> None:
        """Scrape the due targets, convert, and send everything in one hand-over."""
        now = self._monotonic()
        due = [target for target in self.targets if self._is_due(target, now)]
        if not due:
            return
        for target in due:
            self._last_scrape[target] = now
        results = await asyncio.gather(*(self._collect(target) for target in due))
        datapoints = [datapoint for points, _ in results for datapoint in points]
        handed_over = self.sink.send(datapoints)
        self._count(handed_over, len(datapoints) - handed_over)
        failed = [target.node for (_, ok), target in zip(results, due, strict=True) if not ok]
        if len(failed) == len(due):
            raise ForwardingError(f"no ECS target could be scraped: {', '.join(failed)}")

    async def aclose(self) -> None:
        """Flush and stop the sink (its ``stop()`` joins a thread, so off the loop)."""
        await asyncio.to_thread(self.sink.close)
        self._count_sink()

    def dependencies(self) -> dict[str, str | None]:
        """For /health: ``signalfx`` is red while ingest refuses the token (a dry run
        sends nothing, so it has no such dependency)."""
        if isinstance(self.sink, DryRunSink):
            return {}
        return {"signalfx": self.sink.auth_error}

    def _is_due(self, target: Target, now: float) -> bool:
        last = self._last_scrape.get(target)
        # Half a job interval of slack, so scheduler jitter never skips a whole period.
        return last is None or now - last >= target.interval_s - self.interval_s / 2

    async def _collect(self, target: Target) -> tuple[list[Datapoint], bool]:
        extra = {**self._static, "node": target.node}
        try:
            text = await scrape(self._http, target.url, timeout_s=self._scrape_timeout_s)
            timestamp_ms = int(self._clock() * 1000)
            points = self._baselines[target].convert(
                text, timestamp_ms=timestamp_ms, dimensions=extra
            )
        except (EcsScrapeError, InvalidExpositionError) as exc:
            log.warning("forwarding_target_down", node=target.node, url=target.url, error=str(exc))
            self._metrics.target_scraped(target.node, ok=False)
            return [self._up(0, extra)], False
        self._metrics.target_scraped(target.node, ok=True)
        log.debug("forwarding_scraped", node=target.node, datapoints=len(points))
        return [*points, self._up(1, extra, timestamp_ms)], True

    def _up(
        self, value: int, extra: Mapping[str, str], timestamp_ms: int | None = None
    ) -> Datapoint:
        when = timestamp_ms if timestamp_ms is not None else int(self._clock() * 1000)
        return Datapoint(UP_METRIC, MetricType.GAUGE, value, when, dict(extra))

    def _count(self, handed_over: int, rejected: int) -> None:
        self._metrics.datapoints_sent(handed_over, rejected)
        self._count_sink()

    def _count_sink(self) -> None:
        """Record what the sink learnt since the last call: failed POSTs, backlog, drops."""
        errors = self.sink.client_errors
        self._metrics.signalfx_posts_failed(max(0, errors - self._client_errors_seen))
        self._client_errors_seen = errors
        self._metrics.signalfx_backlog(self.sink.buffered)
        for reason, total in self.sink.dropped.items():
            self._metrics.datapoints_lost(reason, total - self._dropped_seen.get(reason, 0))
            self._dropped_seen[reason] = total


def build_sink(config: Config, *, dry_run: bool) -> DatapointSink:
    """A :class:`DryRunSink` when asked to or without a token, else a :class:`SignalFxSink`."""
    settings = config.signalfx
    if dry_run or settings.token is None:
        if not dry_run:
            log.warning("forwarding_dry_run", reason="no [signalfx] token configured")
        return DryRunSink()
    return SignalFxSink(
        token=settings.token, ingest_endpoint=settings.ingest_endpoint, buffer_s=settings.buffer_s
    )


def build_forwarding_job(
    config: Config,
    *,
    dry_run: bool,
    http_client: httpx.AsyncClient,
    metrics: StatusBridgeMetrics | None = None,
) -> ForwardingJob | None:
    """The forwarding job for ``config.ecs_targets``, or ``None`` when there are none.

    Static dimensions come from ``[signalfx] dimensions``. A URL listed twice raises
    :class:`~statusbridge.exceptions.ConfigError`.
    """
    if not config.ecs_targets:
        return None
    urls = [settings.url for settings in config.ecs_targets]
    twice = sorted({url for url in urls if urls.count(url) > 1})
    if twice:
        raise ConfigError(f"ecs_targets: url listed twice: {', '.join(twice)}")
    return ForwardingJob(
        [Target.from_settings(settings) for settings in config.ecs_targets],
        http_client=http_client,
        sink=build_sink(config, dry_run=dry_run),
        dimensions=config.signalfx.dimensions,
        metrics=metrics,
    )
