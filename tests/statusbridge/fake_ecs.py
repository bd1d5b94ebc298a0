"""A stand-in for an ECS node's ``GET /metrics``, for the forwarding tests and benchmark.

:class:`EcsMetrics` is ECS's own ``ecs.metrics.EcsMetrics`` (same registry, names,
labels and buckets as a real node) with a helper to fill it like a busy node, and
:class:`MetricsServer` serves that registry's text exposition from a real HTTP server on
127.0.0.1. Replacing ``server.metrics`` with a fresh :class:`EcsMetrics` simulates a
restarted ECS (every counter back at zero).
"""

from __future__ import annotations

import itertools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ecs.metrics import EcsMetrics as RealEcsMetrics

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


class MetricsServer:
    """Serves ``metrics.text()`` at ``GET /metrics`` on 127.0.0.1 (threaded).

    ``requests`` lists the ``Accept`` header of every scrape.
    """

    def __init__(self, metrics: EcsMetrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else EcsMetrics()
        self.accept_headers: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            # A short poll interval keeps shutdown() (and test teardown) quick.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-ecs",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """The ``/metrics`` URL of this server."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/metrics"

    @property
    def node(self) -> str:
        """The ``host:port`` the forwarder derives the ``node`` dimension from."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.accept_headers.append(self.headers.get("Accept", ""))
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = server.metrics.exposition()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                # Keep test output quiet.
                return

        return Handler

    def __enter__(self) -> MetricsServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
