"""A stand-in for an ECS node's ``GET /metrics``, for the forwarding tests and benchmark.

:class:`EcsMetrics` is ECS's own ``ecs.metrics.EcsMetrics`` (same registry, names,
labels and buckets as a real node) with a helper to fill it like a busy node, and
:class:`MetricsServer` serves that registry's text exposition from a real HTTP server on
127.0.0.1 (a :class:`FakeServer` answering raw bytes). Replacing ``server.metrics`` with
a fresh :class:`EcsMetrics` simulates a restarted ECS (every counter back at zero).
"""

from __future__ import annotations

import itertools

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ecs.metrics import EcsMetrics as RealEcsMetrics
from tests.statusbridge.fake_server import FakeServer, Request, Response

ROUTES = ("/v1.1/tasks", "/v1.1/_noop", "/v1.1/_version", "/v1.1/_health", "/metrics", "/docs")
STAGES = ("pull", "create", "start", "run", "logs", "delete")
OUTCOMES = ("exited", "timed_out", "oom_killed", "pull_failed", "rejected", "error")
ENGINE_ERRORS = ("timeout", "connection", "not_found", "conflict", "server_error")
STATUSES = ("200", "201", "400", "401", "404", "429", "500", "503")


class EcsMetrics(RealEcsMetrics):
    """ECS's own metrics class (so the fake cannot drift from it), plus test helpers."""

    def text(self) -> str:
        """The text exposition an ECS node would serve right now."""
        return self.exposition().decode()

    def populate(self) -> None:
        """Create every label combination a busy ECS node has (about 300 series)."""
        methods = itertools.cycle(("GET", "POST"))
        for route, status in itertools.product(ROUTES, STATUSES[:4]):
            self.requests.labels(next(methods), route, status).inc(3)
        for index, route in enumerate(ROUTES):
            for step in range(10):
                self.request_duration.labels(route).observe(0.004 * (index + 1) * (step + 1))
        for index, stage in enumerate(STAGES):
            for step in range(10):
                self.stage_duration.labels(stage).observe(0.02 * (index + 1) * (step + 1))
        for outcome in OUTCOMES:
            self.tasks.labels(outcome).inc()
        for kind in ENGINE_ERRORS:
            self.engine_errors.labels(kind).inc(0)
        self.in_flight.set(2)
        self.queued.set(1)
        self.reaped.inc(4)


class MetricsServer(FakeServer):
    """Serves ``metrics.text()`` at ``GET /metrics`` on 127.0.0.1 (threaded).

    ``accept_headers`` lists the ``Accept`` header of every scrape.
    """

    def __init__(self, metrics: EcsMetrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else EcsMetrics()
        super().__init__()

    @property
    def url(self) -> str:
        """The ``/metrics`` URL of this server."""
        return f"{super().url}/metrics"

    @property
    def node(self) -> str:
        """The ``host:port`` the forwarder derives the ``node`` dimension from."""
        return super().url.removeprefix("http://")

    @property
    def accept_headers(self) -> list[str]:
        """The ``Accept`` header of every request so far."""
        with self.lock:
            return [request.headers.get("accept", "") for request in self.requests]

    def handle(self, request: Request) -> Response:
        """The exposition at ``/metrics``, a 404 elsewhere."""
        if request.path != "/metrics":
            return Response(404, b"not found\n", content_type="text/plain")
        return Response(200, self.metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
