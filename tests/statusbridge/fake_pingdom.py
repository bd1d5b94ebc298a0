"""An in-process Pingdom API (3.1, and 2.0 auth) on 127.0.0.1, following the documented contract.

``/results`` answers newest first, caps ``limit`` at 1000 and ``offset`` at 43200, and
includes ``from``/``to`` bounds; every answer carries ``Req-Limit-Short`` and
``Req-Limit-Long``; a spent short quota answers 429 with Pingdom's error body. A proxy in
front (Cloudflare, a corporate gateway) can answer 429 on its own: ``proxy_429_next``
such answers come without ``Req-Limit-*`` headers and with ``Retry-After``. Results are
stored as raw dicts so that tests can leave fields out (down results without
``responsetime``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from tests.statusbridge.fake_server import FakeServer, Request, Response


def error(status: int, desc: str, message: str) -> Response:
    """Pingdom's error body."""
    body = {"error": {"statuscode": status, "statusdesc": desc, "errormessage": message}}
    return Response(status, body)


class FakePingdom(FakeServer):
    """Checks and raw results for tests; quotas and failures are settable."""

    def __init__(self, *, token: str = "pd-token", api_version: str = "3.1") -> None:  # noqa: S107 - a fixture token
        super().__init__()
        self.token = token
        self.api_version = api_version
        self.basic = ("ops@example.com", "pd-password")
        self.app_key = "pd-app-key"
        self.checks: dict[int, dict[str, Any]] = {}
        self.results: dict[int, list[dict[str, Any]]] = {}
        self.short_remaining = 10_000
        self.short_reset_s = 3600
        self.long_remaining = 100_000
        self.long_reset_s = 2_592_000
        # Statuses to answer next, before anything else (e.g. [429] or [503, 503]).
        self.fail_next: list[int] = []
        # 429s from a proxy in front of Pingdom: no quota spent, no Req-Limit headers.
        self.proxy_429_next = 0
        self.proxy_retry_after: str | None = "2"

    @property
    def base_url(self) -> str:
        """What goes into ``[pingdom] base_url``."""
        return f"{self.url}/api/{self.api_version}"

    def add_check(self, check_id: int, *, resolution: int = 1, name: str = "web") -> None:
        """Register a check."""
        self.checks[check_id] = {
            "id": check_id,
            "name": name,
            "resolution": resolution,
            "status": "up",
            "type": "http",
        }
        self.results.setdefault(check_id, [])

    def add_results(self, check_id: int, results: Iterable[dict[str, Any]]) -> None:
        """Store raw results (any order, any fields)."""
        with self.lock:
            self.results.setdefault(check_id, []).extend(results)

    def result_requests(self) -> list[Request]:
        """The ``/results`` requests seen so far."""
        return [r for r in self.requests if "/results/" in r.path]

    def _quota_headers(self) -> dict[str, str]:
        return {
            "Req-Limit-Short": f"Remaining: {max(0, self.short_remaining)} "
            f"Time until reset: {self.short_reset_s}",
            "Req-Limit-Long": f"Remaining: {max(0, self.long_remaining)} "
            f"Time until reset: {self.long_reset_s}",
        }

    def _authorised(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if self.api_version == "3.1":
            return auth == f"Bearer {self.token}"
        user, password = self.basic
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        return auth == f"Basic {basic}" and request.headers.get("app-key") == self.app_key

    def handle(self, request: Request) -> Response:
        """Route one request."""
        if self.proxy_429_next > 0:
            self.proxy_429_next -= 1
            headers = {"Retry-After": self.proxy_retry_after} if self.proxy_retry_after else {}
            page = b"<html><body><h1>429 Too Many Requests</h1></body></html>"
            return Response(429, page, headers=headers, content_type="text/html")
        if self.fail_next:
            status = self.fail_next.pop(0)
            if status == 429:
                self.short_remaining = 0
            response = error(
                status,
                "Error",
                "Request limit exceeded, try again later" if status == 429 else "injected failure",
            )
        elif not self._authorised(request):
            response = error(401, "Unauthorized", "Invalid email and/or password")
        elif self.short_remaining <= 0 or self.long_remaining <= 0:
            response = error(429, "Too Many Requests", "Request limit exceeded, try again later")
        else:
            self.short_remaining -= 1
            self.long_remaining -= 1
            response = self._route(request)
        response.headers = {**self._quota_headers(), **(response.headers or {})}
        return response

    def _route(self, request: Request) -> Response:
        prefix = f"/api/{self.api_version}"
        path = request.path.removeprefix(prefix)
        parts = path.strip("/").split("/")
        if parts == ["checks"]:
            return Response(
                200, {"checks": list(self.checks.values()), "counts": {"total": len(self.checks)}}
            )
        if len(parts) == 2 and parts[1].isdigit() and int(parts[1]) in self.checks:
            check_id = int(parts[1])
            if parts[0] == "checks":
                return Response(200, {"check": self.checks[check_id]})
            if parts[0] == "results":
                return self._results(check_id, request.query)
        return error(404, "Not Found", f"no such resource {path}")

    def _results(self, check_id: int, query: dict[str, str]) -> Response:
        to = int(query.get("to", 2**31))
        start = int(query.get("from", to - 86400))
        limit = min(int(query.get("limit", 1000)), 1000)
        offset = int(query.get("offset", 0))
        if offset > 43200:
            return error(400, "Bad Request", "offset: max value is 43200")
        matching = [r for r in self.results.get(check_id, []) if start <= r.get("time", 0) <= to]
        matching.sort(key=lambda r: r.get("time", 0), reverse=True)
        page = matching[offset : offset + limit]
        return Response(200, {"activeprobes": [1, 2, 3], "results": page})
