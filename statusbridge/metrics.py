"""statusbridge's Prometheus metrics, in a registry owned by one object per process.

As ``ecs.metrics.EcsMetrics``: the daemon, the Pingdom → Cachet sync and the forwarding
job all record through the small methods of one :class:`StatusBridgeMetrics`, built in
``main()`` and passed down; ``GET /metrics`` serves its :meth:`exposition`.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

JOB_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class StatusBridgeMetrics:
    """Every metric statusbridge exposes, and the recording methods the code calls."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.job_runs = Counter(
            "statusbridge_job_runs",
            "Job runs by outcome.",
            ["job", "outcome"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "statusbridge_job_duration_seconds",
            "Wall time of one job run.",
            ["job"],
            buckets=JOB_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.job_last_success = Gauge(
            "statusbridge_job_last_success_timestamp_seconds",
            "Unix time of the job's last successful run.",
            ["job"],
            registry=self.registry,
        )
        self.points_pushed = Counter(
            "statusbridge_cachet_points_pushed",
            "Metric points accepted by Cachet.",
            ["check"],
            registry=self.registry,
        )
        self.watermark_lag = Gauge(
            "statusbridge_sync_watermark_lag_seconds",
            "Seconds between now and the end of the last bucket Cachet accepted.",
            ["check"],
            registry=self.registry,
        )
        self.scrapes = Counter(
            "statusbridge_forwarding_scrapes",
            "ECS /metrics scrapes by node and outcome.",
            ["node", "outcome"],
            registry=self.registry,
        )
        self.datapoints = Counter(
            "statusbridge_forwarding_datapoints",
            "Datapoints handed to the SignalFx client (or printed), or rejected by validation.",
            ["outcome"],
            registry=self.registry,
        )
        self.signalfx_client_errors = Counter(
            "statusbridge_signalfx_client_errors",
            "POSTs to SignalFx ingest that failed (their datapoints stay buffered and retried).",
            registry=self.registry,
        )
        self.datapoints_dropped = Counter(
            "statusbridge_datapoints_dropped",
            "Datapoints lost after hand-over: expired (older than the buffer), refused "
            "(a 4xx for the batch itself) or shutdown (still buffered at exit).",
            ["reason"],
            registry=self.registry,
        )
        self.signalfx_buffered = Gauge(
            "statusbridge_signalfx_buffered_datapoints",
            "Datapoints handed over and not yet accepted by SignalFx ingest.",
            registry=self.registry,
        )

    def job_succeeded(self, job: str, seconds: float) -> None:
        """One run of ``job`` that succeeded after ``seconds``."""
        self.job_runs.labels(job, "success").inc()
        self.job_duration.labels(job).observe(seconds)
        self.job_last_success.labels(job).set(time.time())

    def job_failed(self, job: str, seconds: float) -> None:
        """One run of ``job`` that failed after ``seconds``."""
        self.job_runs.labels(job, "failure").inc()
        self.job_duration.labels(job).observe(seconds)

    def job_cancelled(self, job: str, seconds: float) -> None:
        """One run of ``job`` cancelled at shutdown: its time counts, it has no outcome."""
        self.job_duration.labels(job).observe(seconds)

    def point_pushed(self, check: str) -> None:
        """Cachet accepted one metric point of ``check``."""
        self.points_pushed.labels(check).inc()

    def watermark_moved(self, check: str, lag_s: float) -> None:
        """``check``'s watermark now trails the clock by ``lag_s`` seconds."""
        self.watermark_lag.labels(check).set(max(0.0, lag_s))

    def target_scraped(self, node: str, *, ok: bool) -> None:
        """One scrape of an ECS node's /metrics, converted or not."""
        self.scrapes.labels(node, "success" if ok else "failure").inc()

    def datapoints_sent(self, handed_over: int, rejected: int) -> None:
        """One forwarding run's datapoints: handed to the sink, or rejected by validation."""
        self.datapoints.labels("handed_over").inc(handed_over)
        self.datapoints.labels("rejected").inc(rejected)

    def signalfx_posts_failed(self, count: int) -> None:
        """The signalfx client's thread reported ``count`` more failed POSTs."""
        self.signalfx_client_errors.inc(count)

    def datapoints_lost(self, reason: str, count: int) -> None:
        """``count`` more datapoints were dropped after hand-over, for ``reason``."""
        self.datapoints_dropped.labels(reason).inc(count)

    def signalfx_backlog(self, buffered: int) -> None:
        """``buffered`` datapoints are waiting for ingest."""
        self.signalfx_buffered.set(buffered)

    def exposition(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
