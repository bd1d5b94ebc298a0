"""HTTP Basic authentication with API keys, and the per-key request rate, as ASGI middleware.

Runs only when a credentials file is configured. Then every route needs a key except the
configured open endpoints; tasks always need one. Unknown paths need one too, so that an
unauthenticated caller learns nothing about which paths exist.
"""

from __future__ import annotations

import base64
import binascii
import contextlib

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ecs import API_VERSION
from ecs.config import OpenEndpoint
from ecs.error_responses import error_response
from ecs.exceptions import FieldProblem, RateLimited
from ecs.keys import KeyStore
from ecs.limits import KeyLimits

OPEN_PATHS: dict[OpenEndpoint, tuple[str, ...]] = {
    OpenEndpoint.HEALTH: (f"/{API_VERSION}/_health",),
    OpenEndpoint.NOOP: (f"/{API_VERSION}/_noop",),
    OpenEndpoint.VERSION: (f"/{API_VERSION}/_version",),
    OpenEndpoint.METRICS: ("/metrics",),
    OpenEndpoint.DOCS: ("/docs", "/docs/oauth2-redirect", "/openapi.json"),
}
TASK_PATHS = (f"/{API_VERSION}/tasks", f"/{API_VERSION}/tasks/")
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
    """401 without a valid key (JSON, with the Basic challenge), 429 over the key's rate.

    Each full key check costs a bcrypt hash, so a client address that keeps failing gets
    429 instead of more checks; pairs verified before still pass from the cache.
    """

    def __init__(
        self,
        app: ASGIApp,
        keys: KeyStore,
        limiter: KeyLimits,
        failures: KeyLimits,
        open_endpoints: list[OpenEndpoint],
    ) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter
        self.failures = failures
        self.open_paths = {path for endpoint in open_endpoints for path in OPEN_PATHS[endpoint]}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        correlation_id = str(state.get("correlation_id", ""))
        pair = basic_credentials(Headers(scope=scope).get("authorization", ""))
        if pair is None:
            await _unauthorized("missing", correlation_id)(scope, receive, send)
            return
        refusal = await self._check(pair, scope, correlation_id)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        key = pair[0]
        state["api_key"] = key
        state.setdefault("log_fields", {})["key"] = key
        try:
            # A task submission takes its token with its task place, in one call.
            if not (scope["method"] == "POST" and scope["path"] in TASK_PATHS):
                await self.limiter.take(key)
        except RateLimited as exc:
            problem = FieldProblem(exc.code, exc.message)
            headers = {"Retry-After": str(exc.retry_after_s)}
            await error_response(429, [problem], correlation_id, headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _check(
        self, pair: tuple[str, str], scope: Scope, correlation_id: str
    ) -> JSONResponse | None:
        """None if the pair is good; else a 401, or a 429 for an address that keeps failing."""
        if self.keys.verified_recently(*pair):
            return None
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = await self.failures.retry_after(client)
        if wait is not None:
            problem = FieldProblem(
                "rate_limited", f"too many failed API key checks from {client}; retry later"
            )
            return error_response(429, [problem], correlation_id, {"Retry-After": str(wait)})
        if await self.keys.verify(*pair):
            return None
        with contextlib.suppress(RateLimited):
            await self.failures.take(client)
        return _unauthorized("invalid", correlation_id)


def _unauthorized(reason: str, correlation_id: str) -> JSONResponse:
    problem = FieldProblem(
        "unauthorized", f"{reason} API key: use HTTP Basic with your key and secret"
    )
    return error_response(401, [problem], correlation_id, CHALLENGE)
