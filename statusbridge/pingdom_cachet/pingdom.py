"""Pingdom API client (3.1 Bearer token; 2.0 Basic + App-Key as a legacy mode).

Every field of every answer is treated as optional. ``/results`` answers newest first
and silently caps ``limit`` at 1000, so :meth:`PingdomClient.results` pages by
shrinking the time window (and by ``offset`` only when one second holds a full page).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from statusbridge.config import PingdomSettings
from statusbridge.exceptions import PingdomError
from statusbridge.pingdom_cachet.quota import QuotaPacer, Sleep
from statusbridge.pingdom_cachet.retries import send
from statusbridge.pingdom_cachet.uptime import Result

log = structlog.get_logger(__name__)

PAGE_LIMIT = 1000
MAX_OFFSET = 43200
_MAX_429_RETRIES = 3


@dataclass(frozen=True, slots=True)
class Check:
    """A Pingdom check as listed by ``GET /checks`` (only the fields statusbridge uses)."""

    id: int
    resolution_min: int | None = None
    name: str = ""
    status: str = ""


class PingdomClient:
    """Reads checks and raw results; the HTTP client is injected."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: PingdomSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        pacer: QuotaPacer | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        self._base = settings.base_url.rstrip("/")
        self.pacer = pacer or QuotaPacer(
            sleep=sleep,
            reserve=settings.rate_limit_reserve,
            max_wait_s=settings.max_rate_limit_wait_s,
        )

    def _auth(self) -> tuple[dict[str, str], httpx.BasicAuth | None]:
        settings = self._settings
        if settings.api_version == "3.1":
            assert settings.token is not None  # guaranteed by PingdomSettings
            return {"Authorization": f"Bearer {settings.token.get_secret_value()}"}, None
        assert settings.username is not None
        assert settings.password is not None
        assert settings.app_key is not None
        headers = {"App-Key": settings.app_key.get_secret_value()}
        if settings.account_email:
            headers["Account-Email"] = settings.account_email
        return headers, httpx.BasicAuth(settings.username, settings.password.get_secret_value())

    async def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        headers, auth = self._auth()
        headers["Accept"] = "application/json"
        limit = "unknown"
        for attempt in range(_MAX_429_RETRIES + 1):
            await self.pacer.before_request()
            response = await send(
                self._http,
                "GET",
                f"{self._base}{path}",
                params=dict(params or {}),
                headers=headers,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self._settings.timeout_s,
                retry=self._settings.retry,
                error=PingdomError,
            )
            if response.status_code == 429:
                if attempt == _MAX_429_RETRIES:
                    break
                limit = await self.pacer.after_429(response.headers, attempt)
                continue
            self.pacer.observe(response.headers)
            if response.is_error:
                raise PingdomError(_error_message(response), status=response.status_code)
            try:
                return response.json()
            except ValueError as exc:
                raise PingdomError(
                    f"{path}: answer is not JSON", status=response.status_code
                ) from exc
        raise PingdomError(
            f"{path}: still answered 429 after {_MAX_429_RETRIES} waits (limit hit: {limit})",
            status=429,
        )

    async def checks(self) -> list[Check]:
        """Every check of the account (one call holds up to 25000)."""
        body = await self._get("/checks")
        return [c for c in (_check(raw) for raw in _list(body, "checks")) if c is not None]

    async def check(self, check_id: int) -> Check:
        """One check's details (its ``resolution`` in particular)."""
        body = await self._get(f"/checks/{check_id}")
        raw = body.get("check") if isinstance(body, dict) else None
        check = _check(raw) if isinstance(raw, dict) else None
        if check is None:
            raise PingdomError(f"/checks/{check_id}: answer holds no check", status=200)
        return check

    async def results(self, check_id: int, start: int, end: int) -> list[Result]:
        """Every raw result with ``start <= time < end``, deduped, oldest first."""
        found: dict[tuple[int | None, int], Result] = {}
        to, offset = end, 0
        while to >= start:
            params = {"from": start, "to": to, "limit": PAGE_LIMIT, "offset": offset}
            body = await self._get(f"/results/{check_id}", params)
            if not isinstance(_dict(body).get("results"), list):
                # Read as "no results", this would commit empty buckets: points lost for good.
                raise PingdomError(f"/results/{check_id}: answer holds no results list", status=200)
            page = [parse_result(raw) for raw in _list(body)]
            parsed = [r for r in page if r is not None]
            for result in parsed:
                found[(result.probe_id, result.time)] = result
            if len(page) < PAGE_LIMIT:
                break
            oldest = min((r.time for r in parsed), default=to)
            if oldest < to:
                # Newest-first page was full: ask again for what is older (inclusive).
                to, offset = oldest, 0
            elif offset + PAGE_LIMIT <= MAX_OFFSET:
                offset += PAGE_LIMIT
            else:
                raise PingdomError(f"/results/{check_id}: over {MAX_OFFSET} results at {to}")
        kept = (r for r in found.values() if start <= r.time < end)
        return sorted(kept, key=lambda r: (r.time, r.probe_id or 0))


def _error_message(response: httpx.Response) -> str:
    # Pingdom's error body: {"error": {"statuscode", "statusdesc", "errormessage"}}.
    try:
        error = _dict(_dict(response.json()).get("error"))
    except ValueError:
        error = {}
    parts = [str(error[key]) for key in ("statusdesc", "errormessage") if error.get(key)]
    return ": ".join(parts) or response.reason_phrase or "error"


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(body: object, key: str = "results") -> list[dict[str, Any]]:
    items = _dict(body).get(key)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check(raw: dict[str, Any]) -> Check | None:
    check_id = _int(raw.get("id"))
    if check_id is None:
        return None
    name, status = raw.get("name"), raw.get("status")
    return Check(
        id=check_id,
        resolution_min=_int(raw.get("resolution")),
        name=name if isinstance(name, str) else "",
        status=status if isinstance(status, str) else "",
    )


def parse_result(raw: dict[str, Any]) -> Result | None:
    """One raw result of ``/results`` (None without a ``time``); every field optional."""
    time = _int(raw.get("time"))
    if time is None:
        return None
    status = raw.get("status")
    rt = raw.get("responsetime")
    return Result(
        time=time,
        status=status if isinstance(status, str) else "unknown",
        probe_id=_int(raw.get("probeid")),
        response_time_ms=float(rt) if isinstance(rt, int | float) and rt > 0 else None,
    )
