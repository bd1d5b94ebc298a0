"""HTTP Basic authentication with API keys, and the per-key request rate, as ASGI middleware.

Runs only when a credentials file is configured. Then every route needs a key except the
configured open endpoints; tasks always need one. Unknown paths need one too, so that an
unauthenticated caller learns nothing about which paths exist.
"""

from __future__ import annotations

import base64
import binascii

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ecs import API_VERSION
from ecs.config import OpenEndpoint
from ecs.errors import error_response
from ecs.exceptions import FieldProblem, RateLimited
from ecs.keys import KeyStore
from ecs.ratelimit import KeyLimiter

OPEN_PATHS: dict[OpenEndpoint, tuple[str, ...]] = {
    OpenEndpoint.HEALTH: (f"/{API_VERSION}/_health",),
    OpenEndpoint.NOOP: (f"/{API_VERSION}/_noop",),
    OpenEndpoint.VERSION: (f"/{API_VERSION}/_version",),
    OpenEndpoint.METRICS: ("/metrics",),
    OpenEndpoint.DOCS: ("/docs", "/docs/oauth2-redirect", "/openapi.json"),
}
CHALLENGE = {"WWW-Authenticate": 'Basic realm="ecs"'}


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``Basic base64(key:secret)`` → (key, secret), or None if it is not that."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, sep, secret = decoded.partition(":")
    return (key, secret) if sep and key else None


class AuthMiddleware:
    """401 without a valid key (JSON, with the Basic challenge), 429 over the key's rate."""

    def __init__(
        self,
        app: ASGIApp,
        keys: KeyStore,
        limiter: KeyLimiter,
        open_endpoints: list[OpenEndpoint],
    ) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter
        self.open_paths = {path for endpoint in open_endpoints for path in OPEN_PATHS[endpoint]}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        correlation_id = str(state.get("correlation_id", ""))
        pair = basic_credentials(Headers(scope=scope).get("authorization", ""))
        if pair is None or not await self.keys.verify(*pair):
            reason = "missing" if pair is None else "invalid"
            problem = FieldProblem(
                "unauthorized", f"{reason} API key: use HTTP Basic with your key and secret"
            )
            await error_response(401, [problem], correlation_id, CHALLENGE)(scope, receive, send)
            return
        key = pair[0]
        state["api_key"] = key
        state.setdefault("log_fields", {})["key"] = key
        try:
            self.limiter.take(key)
        except RateLimited as exc:
            problem = FieldProblem(exc.code, exc.message)
            headers = {"Retry-After": str(exc.retry_after_s)}
            await error_response(429, [problem], correlation_id, headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)
