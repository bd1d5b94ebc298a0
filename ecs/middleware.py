"""ASGI middleware: correlation ids, the request log line, and the body guard.

Written as plain ASGI (not BaseHTTPMiddleware) so request bodies stream through and a
client hanging up is still seen by the endpoint.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecs.error_responses import CORRELATION_HEADER, error_response
from ecs.exceptions import FieldProblem

log = structlog.get_logger("ecs.access")

_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json\s*(?:;\s*charset=utf-?8\s*)?$", re.I)


RequestObserver = Callable[[str, str, int, float], None]


def _ignore_request(method: str, route: str, status: int, seconds: float) -> None:
    """Default observer: request figures go nowhere."""


class _BodyTooLarge(Exception):
    pass


class CorrelationMiddleware:
    """Gives every request a correlation id, logs one line for it, and answers 500 as JSON."""

    def __init__(self, app: ASGIApp, observe: RequestObserver = _ignore_request) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = Headers(scope=scope).get(CORRELATION_HEADER.lower(), "")
        correlation_id = offered if _CLIENT_ID.fullmatch(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[CORRELATION_HEADER] = correlation_id
            await send(message)

        with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                log.exception("request_failed")
                if not response_started:
                    problem = FieldProblem("internal_error", "internal error; see the server log")
                    response = error_response(500, [problem], correlation_id)
                    await response(scope, receive, send_with_id)
            finally:
                # The route template, never the raw path: bounded label values.
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                seconds = time.perf_counter() - started
                self.observe(scope["method"], route, status, seconds)
                log.info(
                    "request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(seconds * 1000, 2),
                    **scope.get("state", {}).get("log_fields", {}),
                )


class BodyGuardMiddleware:
    """Refuses request bodies that are not JSON (415) or larger than the cap (413).

    Only where a body is read (``body_routes``: method and path): anywhere else routing
    answers first, so a wrong method is a 405 whatever its content type.
    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, body_routes: frozenset[tuple[str, str]]
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_routes = body_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) not in self.body_routes:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        correlation_id = scope.get("state", {}).get("correlation_id", "")
        content_type = headers.get("content-type", "")
        if not _JSON_TYPE.match(content_type):
            problem = FieldProblem(
                "unsupported_media_type",
                f"Content-Type must be application/json, not {content_type or 'missing'!r}",
            )
            await error_response(415, [problem], correlation_id)(scope, receive, send)
            return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send, correlation_id)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._too_large(scope, receive, send, correlation_id)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, cid: Any) -> None:
        problem = FieldProblem(
            "body_too_large", f"request body is larger than {self.max_body_bytes} bytes"
        )
        await error_response(413, [problem], str(cid))(scope, receive, send)
