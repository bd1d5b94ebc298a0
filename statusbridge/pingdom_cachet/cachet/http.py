"""One request to a Cachet API: headers, retries, 429 pacing and error mapping.

Every adapter sends through a :class:`CachetHttp`. 5xx answers and timeouts are retried
by :func:`~statusbridge.pingdom_cachet.retries.send`; a 429 (Cachet 3 limits each token
to 300 requests a minute) waits for its ``Retry-After``, a bounded number of times;
any other error answer raises :class:`~statusbridge.exceptions.CachetError` with
Cachet's own words: 2.x ``errors[].meta.details`` or 3's ``{message, errors}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
import structlog

from statusbridge.config import CachetSettings
from statusbridge.exceptions import CachetError
from statusbridge.pingdom_cachet.retries import send

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]
MAX_429_WAITS = 5
MAX_429_WAIT_S = 60.0


class CachetHttp:
    """Sends requests to one Cachet base URL with fixed headers (auth, Accept)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: CachetSettings,
        *,
        headers: Mapping[str, str],
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._settings = settings
        self._headers = {"Accept": "application/json", **headers}
        self._sleep = sleep
        self.base = settings.base_url.rstrip("/")

    async def response(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """The answer, whatever its status (after retries and 429 waits)."""
        for attempt in range(MAX_429_WAITS + 1):
            response = await send(
                self._http,
                method,
                path if path.startswith("http") else f"{self.base}{path}",
                params=dict(params) if params else None,
                json=json,
                headers=self._headers,
                timeout=self._settings.timeout_s,
                retry=self._settings.retry,
                error=CachetError,
            )
            if response.status_code != 429 or attempt == MAX_429_WAITS:
                return response
            wait = _retry_after(response)
            log.warning("cachet_rate_limited", path=httpx.URL(path).path, wait_s=wait)
            await self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """The parsed JSON answer (None for an empty one); error answers raise."""
        response = await self.response(method, path, json=json, params=params)
        where = httpx.URL(path).path
        if response.is_error:
            raise CachetError(
                f"{method} {where}: {error_message(response)}", status=response.status_code
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CachetError(f"{method} {where}: not JSON", status=response.status_code) from exc


def _retry_after(response: httpx.Response) -> float:
    try:
        wait = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        wait = 1.0
    return min(max(wait, 1.0), MAX_429_WAIT_S)


def error_message(response: httpx.Response) -> str:
    """Cachet's explanation of an error answer, from either error body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    parts: list[str] = []
    if isinstance(body, dict):
        # 2.x: {"errors": [{"status", "title", "detail", "meta": {"details": [...]}}]}
        errors = body.get("errors")
        for error in errors if isinstance(errors, list) else []:
            error = error if isinstance(error, dict) else {}
            meta = error.get("meta")
            details = meta.get("details") if isinstance(meta, dict) else None
            if isinstance(details, list) and details:
                parts.extend(str(d) for d in details)
            elif error.get("detail") or error.get("title"):
                parts.append(str(error.get("detail") or error.get("title")))
        # 3: {"message": "...", "errors": {"field": ["..."]}}
        if isinstance(errors, dict):
            for messages in errors.values():
                parts.extend(str(m) for m in messages if isinstance(messages, list))
        elif not parts and isinstance(body.get("message"), str) and body["message"]:
            parts.append(body["message"])
    return "; ".join(parts) or response.reason_phrase or "error"
