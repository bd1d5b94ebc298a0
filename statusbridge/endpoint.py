"""The daemon's own tiny HTTP endpoint: ``/health`` and ``/metrics``.

A minimal HTTP/1.0 responder on asyncio streams: it needs no framework, installs no
signal handlers of its own, and binds to 127.0.0.1 unless configured otherwise.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import structlog

from statusbridge.metrics import StatusBridgeMetrics

log = structlog.get_logger(__name__)

_MAX_REQUEST_BYTES = 8192


@dataclass(frozen=True)
class HealthReport:
    """Overall status and what it is made of, as ``ecs.health.HealthReport``."""

    green: bool
    details: dict[str, object]

    def body(self) -> dict[str, object]:
        """The JSON document ECS's health endpoint answers too: status and details."""
        return {"status": "green" if self.green else "red", "details": self.details}


class Endpoint:
    """Serves ``GET /health`` (200 green, 503 red) and ``GET /metrics``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        metrics: StatusBridgeMetrics,
        health: Callable[[], HealthReport],
    ) -> None:
        self._host = host
        self._port = port
        self._metrics = metrics
        self._health = health
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._server is None:
            return self._port
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Bind and start serving in the background."""
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        log.info("endpoint_started", host=self._host, port=self.port)

    async def stop(self) -> None:
        """Stop accepting connections and close the listening socket."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            status, content_type, body = self._respond(head[:_MAX_REQUEST_BYTES])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, content_type, body = HTTPStatus.BAD_REQUEST, "text/plain", b"bad request\n"
        header = (
            f"HTTP/1.0 {status.value} {status.phrase}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        try:
            writer.write(header.encode("ascii") + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _respond(self, head: bytes) -> tuple[HTTPStatus, str, bytes]:
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3:
            return HTTPStatus.BAD_REQUEST, "text/plain", b"bad request\n"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method != b"GET":
            return HTTPStatus.METHOD_NOT_ALLOWED, "text/plain", b"method not allowed\n"
        if target == b"/metrics":
            return HTTPStatus.OK, self._metrics.content_type, self._metrics.exposition()
        if target == b"/health":
            report = self._health()
            status = HTTPStatus.OK if report.green else HTTPStatus.SERVICE_UNAVAILABLE
            return status, "application/json", json.dumps(report.body()).encode() + b"\n"
        return HTTPStatus.NOT_FOUND, "text/plain", b"not found\n"
