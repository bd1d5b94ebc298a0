"""Prometheus metrics of the Pingdom → Cachet sync, on the daemon's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class SyncMetrics:
    """Points pushed and how far each check's watermark trails the clock."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.points = Counter(
            "statusbridge_cachet_points_pushed",
            "Metric points accepted by Cachet.",
            ["check"],
            registry=registry,
        )
        self.lag = Gauge(
            "statusbridge_sync_watermark_lag_seconds",
            "Seconds between now and the end of the last bucket Cachet accepted.",
            ["check"],
            registry=registry,
        )
        self.status_changes = Counter(
            "statusbridge_component_status_changes",
            "Component status PUTs sent to Cachet.",
            ["check"],
            registry=registry,
        )
