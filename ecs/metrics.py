"""ECS's Prometheus metrics, in a registry owned by the app (no process-global state).

One ECS process serves with one uvicorn worker, so a plain registry is exact; scale out
with more processes or nodes, each scraped on its own ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ecs.exceptions import (
    ImageNotFound,
    Overloaded,
    RegistryUnauthorized,
    RegistryUnreachable,
    RequestRejected,
)

# 5 ms to 10 min: a noop answers in milliseconds, a task may run for its whole timeout.
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
STAGES = ("pull", "create", "files", "start", "run", "logs", "exec", "delete")
OUTCOMES = ("exited", "timed_out", "oom_killed", "pull_failed", "rejected", "error")


class EcsMetrics:
    """Every metric ECS exposes, and the small recording methods the code calls."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ecs_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "ecs_http_request_duration_seconds",
            "HTTP request duration",
            ["route"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.stage_duration = Histogram(
            "ecs_task_stage_duration_seconds",
            "Time spent in each task pipeline stage",
            ["stage"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.tasks = Counter("ecs_tasks", "Tasks by outcome", ["outcome"], registry=self.registry)
        self.in_flight = Gauge(
            "ecs_tasks_in_flight", "Tasks holding a slot", registry=self.registry
        )
        self.queued = Gauge("ecs_tasks_queued", "Tasks waiting for a slot", registry=self.registry)
        self.reaped = Counter(
            "ecs_containers_reaped",
            "Abandoned containers removed by the janitor",
            registry=self.registry,
        )
        self.engine_errors = Counter(
            "ecs_engine_errors",
            "Failed Docker Engine calls by kind",
            ["kind"],
            registry=self.registry,
        )
        self.callbacks = Counter(
            "ecs_callback_attempts",
            "Callback delivery attempts, by the callback's status after the attempt",
            ["status"],
            registry=self.registry,
        )
        for status in ("pending", "delivered", "failed"):
            self.callbacks.labels(status)
        self._cluster_degraded = Gauge(
            "ecs_cluster_degraded",
            "1 while the cluster's Redis is unreachable (local limits, async endpoints 503)",
            registry=self.registry,
        )
        self._cluster_queue = Gauge(
            "ecs_cluster_queue_depth", "Tasks in the cluster's queue", registry=self.registry
        )
        self._cluster_nodes = Gauge(
            "ecs_cluster_nodes_alive", "Nodes with a current heartbeat", registry=self.registry
        )
        self._cluster_claims = Counter(
            "ecs_cluster_claims", "Queued tasks this node claimed", registry=self.registry
        )
        self._cluster_lost = Counter(
            "ecs_cluster_lost_tasks",
            "Tasks this node settled as node_lost for a dead node",
            registry=self.registry,
        )
        self._redis_latency = Histogram(
            "ecs_redis_latency_seconds",
            "Round trip of the heartbeat's PING to Redis",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self._redis_errors = Counter(
            "ecs_redis_errors", "Failed Redis calls", registry=self.registry
        )
        self._pool_size = Gauge(
            "ecs_pool_size", "Idle containers the warm pools keep", registry=self.registry
        )
        self._pool_idle = Gauge(
            "ecs_pool_idle", "Idle containers ready now", registry=self.registry
        )
        self._pool_hits = Counter(
            "ecs_pool_hits", "Tasks that ran in a warm container", registry=self.registry
        )
        self._pool_misses = Counter(
            "ecs_pool_misses",
            "Tasks of a pooled image that found no idle container (cold path)",
            registry=self.registry,
        )
        self._pool_refill = Histogram(
            "ecs_pool_refill_seconds",
            "Making one idle container (create, start, check)",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        for stage in STAGES:
            self.stage_duration.labels(stage)
        for outcome in OUTCOMES:
            self.tasks.labels(outcome)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered HTTP request."""
        self.requests.labels(method, route, str(status)).inc()
        self.request_duration.labels(route).observe(seconds)

    def observe_stage(self, stage: str, seconds: float) -> None:
        """One pipeline stage of one task."""
        self.stage_duration.labels(stage).observe(seconds)

    def task_finished(self, *, timed_out: bool, oom_killed: bool) -> None:
        """A task that ran."""
        outcome = "timed_out" if timed_out else "oom_killed" if oom_killed else "exited"
        self.tasks.labels(outcome).inc()

    def task_failed(self, error: BaseException) -> None:
        """A task that did not run to an outcome."""
        self.tasks.labels(task_failure_outcome(error)).inc()

    def callback_attempted(self, status: str) -> None:
        """One callback delivery attempt; ``status``: pending (will retry), delivered, failed."""
        self.callbacks.labels(status).inc()

    def cluster_degraded(self, degraded: bool) -> None:
        """Redis went away (True) or answers again (False)."""
        self._cluster_degraded.set(1 if degraded else 0)

    def redis_error(self) -> None:
        """One failed Redis call."""
        self._redis_errors.inc()

    def redis_round_trip(self, seconds: float) -> None:
        """One PING to Redis."""
        self._redis_latency.observe(seconds)

    def cluster_seen(
        self, *, queue_depth: int | None = None, nodes_alive: int | None = None
    ) -> None:
        """What the last heartbeat saw of the cluster."""
        if queue_depth is not None:
            self._cluster_queue.set(queue_depth)
        if nodes_alive is not None:
            self._cluster_nodes.set(nodes_alive)

    def task_claimed(self) -> None:
        """This node took a task from the cluster's queue."""
        self._cluster_claims.inc()

    def task_lost(self) -> None:
        """This node settled a dead node's task as node_lost."""
        self._cluster_lost.inc()

    def track_pools(self, size: Callable[[], int], idle: Callable[[], int]) -> None:
        """Read the warm pools' gauges at scrape time."""
        self._pool_size.set_function(size)
        self._pool_idle.set_function(idle)

    def pool_taken(self, hit: bool) -> None:
        """A task for a pooled image found an idle container (hit) or none (miss)."""
        (self._pool_hits if hit else self._pool_misses).inc()

    def pool_refilled(self, seconds: float) -> None:
        """One idle container made."""
        self._pool_refill.observe(seconds)

    def engine_error(self, kind: str) -> None:
        """One failed engine call."""
        self.engine_errors.labels(kind).inc()

    def containers_reaped(self, count: int) -> None:
        """The janitor removed ``count`` containers."""
        self.reaped.inc(count)

    def track_slots(self, running: Callable[[], int], queued: Callable[[], int]) -> None:
        """Read the slot gauges from the admission control at scrape time."""
        self.in_flight.set_function(running)
        self.queued.set_function(queued)

    def exposition(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


def task_failure_outcome(error: BaseException) -> str:
    """The outcome label of a task that failed before it had an exit code."""
    if isinstance(error, ImageNotFound | RegistryUnauthorized | RegistryUnreachable):
        return "pull_failed"
    if isinstance(error, RequestRejected | Overloaded):
        return "rejected"
    return "error"
