"""Cachet 2.3 / 2.4 API v1 client.

``X-Cachet-Token`` auth, JSON bodies, ``Time-Zone: UTC`` on every request so that
``created_at`` strings can be compared with unix times, ``meta.pagination`` followed.
Point timestamps are sent as int unix seconds. ``POST /incidents/{id}/updates`` only
exists in 2.4; a 404 there means 2.3, and the incident is resolved with a PUT instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from statusbridge.config import CachetSettings
from statusbridge.exceptions import CachetError
from statusbridge.pingdom_cachet.retries import send

log = structlog.get_logger(__name__)

INCIDENT_INVESTIGATING = 1
INCIDENT_FIXED = 4


@dataclass(frozen=True, slots=True)
class Component:
    """A Cachet component (only the fields statusbridge uses)."""

    id: int
    name: str
    status: int | None


@dataclass(frozen=True, slots=True)
class Metric:
    """A Cachet metric; ``threshold`` is minutes per chart point (divides 60)."""

    id: int
    name: str
    threshold: int | None


@dataclass(frozen=True, slots=True)
class Point:
    """A stored metric point; ``created_at`` in unix seconds (rounded to 30 s by Cachet)."""

    id: int
    value: float | None
    counter: int
    created_at: int | None


@dataclass(frozen=True, slots=True)
class Incident:
    """A Cachet incident; ``updated_at`` tells whether someone edited it since."""

    id: int
    name: str
    status: int | None
    updated_at: str | None


class CachetClient:
    """Reads and writes components, metric points and incidents; HTTP client injected."""

    def __init__(self, http: httpx.AsyncClient, settings: CachetSettings) -> None:
        self._http = http
        self._settings = settings
        self._base = settings.base_url.rstrip("/")
        self.has_incident_updates: bool | None = None

    async def _request(
        self, method: str, path: str, *, json: Mapping[str, Any] | None = None, **params: Any
    ) -> Any:
        headers = {"Accept": "application/json", "Time-Zone": "UTC"}
        if self._settings.token is not None:
            headers["X-Cachet-Token"] = self._settings.token.get_secret_value()
        response = await send(
            self._http,
            method,
            f"{self._base}{path}",
            params=params or None,
            json=json,
            headers=headers,
            timeout=self._settings.timeout_s,
            retry=self._settings.retry,
            error=CachetError,
        )
        if response.is_error:
            raise CachetError(
                f"{method} {path}: {_error_message(response)}", status=response.status_code
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CachetError(f"{method} {path}: not JSON", status=response.status_code) from exc

    async def _paginate(self, path: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        page = 1
        while True:
            body = _dict(await self._request("GET", path, page=page, **params))
            for item in _items(body):
                yield item
            pagination = _dict(_dict(body.get("meta")).get("pagination"))
            links = _dict(pagination.get("links"))
            current, total = pagination.get("current_page"), pagination.get("total_pages")
            if not links.get("next_page") or (
                isinstance(current, int) and isinstance(total, int) and current >= total
            ):
                return
            page += 1

    async def ping(self) -> None:
        """``GET /ping``: the API answers."""
        await self._request("GET", "/ping")

    async def version(self) -> str | None:
        """The Cachet version string, if the server reports one."""
        data = _dict(await self._request("GET", "/version")).get("data")
        return data if isinstance(data, str) else None

    async def component(self, component_id: int) -> Component:
        """One component."""
        raw = _data(await self._request("GET", f"/components/{component_id}"))
        return Component(_id(raw), str(raw.get("name", "")), _int(raw.get("status")))

    async def set_component_status(self, component_id: int, status: int) -> None:
        """``PUT /components/{id}`` with only the status."""
        await self._request("PUT", f"/components/{component_id}", json={"status": status})

    async def metric(self, metric_id: int) -> Metric:
        """One metric, with its ``threshold`` (bucket minutes)."""
        raw = _data(await self._request("GET", f"/metrics/{metric_id}"))
        return Metric(_id(raw), str(raw.get("name", "")), _int(raw.get("threshold")))

    async def points(self, metric_id: int, *, per_page: int = 100) -> AsyncIterator[Point]:
        """The metric's points, newest first, following pagination."""
        async for raw in self._paginate(f"/metrics/{metric_id}/points", per_page=per_page):
            yield _point(raw)

    async def point_times(self, metric_id: int, since: int) -> set[int]:
        """``created_at`` of every point at or after ``since`` (stops paging past it)."""
        found: set[int] = set()
        async for point in self.points(metric_id):
            if point.created_at is None:
                continue
            # Newest first: once a page reaches older points nothing later can match.
            if point.created_at < since - 30:
                break
            found.add(point.created_at)
        return found

    async def add_point(self, metric_id: int, value: float, timestamp: int) -> Point:
        """``POST /metrics/{id}/points`` with an int unix ``timestamp``."""
        body = {"value": value, "timestamp": int(timestamp)}
        return _point(_data(await self._request("POST", f"/metrics/{metric_id}/points", json=body)))

    async def incident(self, incident_id: int) -> Incident:
        """One incident."""
        return _incident(_data(await self._request("GET", f"/incidents/{incident_id}")))

    async def create_incident(self, name: str, message: str) -> Incident:
        """Open an incident (status Investigating). Component status is set separately."""
        body = {
            "name": name,
            "message": message,
            "status": INCIDENT_INVESTIGATING,
            "visible": 1,
            "notify": True,
        }
        return _incident(_data(await self._request("POST", "/incidents", json=body)))

    async def resolve_incident(self, incident_id: int, message: str) -> Incident:
        """Mark the incident Fixed: ``/updates`` on 2.4, ``PUT /incidents/{id}`` on 2.3."""
        body = {"status": INCIDENT_FIXED, "message": message}
        if self.has_incident_updates is not False:
            try:
                await self._request("POST", f"/incidents/{incident_id}/updates", json=body)
            except CachetError as exc:
                if exc.status != 404:
                    raise
                # No such route: Cachet 2.3. Remember it, and fall back to a PUT.
                self.has_incident_updates = False
            else:
                self.has_incident_updates = True
                return await self.incident(incident_id)
        return _incident(_data(await self._request("PUT", f"/incidents/{incident_id}", json=body)))


def _error_message(response: httpx.Response) -> str:
    # Cachet 2.x: {"errors": [{"status", "title", "detail", "meta": {"details": [...]}}]}.
    try:
        errors = _dict(response.json()).get("errors")
    except ValueError:
        errors = None
    parts: list[str] = []
    for error in errors if isinstance(errors, list) else []:
        error = _dict(error)
        details = _dict(error.get("meta")).get("details")
        if isinstance(details, list) and details:
            parts.extend(str(d) for d in details)
        elif error.get("detail") or error.get("title"):
            parts.append(str(error.get("detail") or error.get("title")))
    return "; ".join(parts) or response.reason_phrase or "error"


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _data(body: object) -> dict[str, Any]:
    return _dict(_dict(body).get("data"))


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    data = body.get("data")
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _id(raw: dict[str, Any]) -> int:
    value = _int(raw.get("id"))
    if value is None:
        raise CachetError("answer holds no object id", status=200)
    return value


def parse_time(value: object) -> int | None:
    """Cachet's ``Y-m-d H:i:s`` (UTC, thanks to the Time-Zone header) → unix seconds."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(parsed.timestamp())


def _point(raw: dict[str, Any]) -> Point:
    return Point(
        id=_id(raw),
        value=_float(raw.get("value")),
        counter=_int(raw.get("counter")) or 1,
        created_at=parse_time(raw.get("created_at")),
    )


def _float(value: object) -> float | None:
    # Cachet renders values as numbers or numeric strings depending on version and driver.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _incident(raw: dict[str, Any]) -> Incident:
    updated = raw.get("updated_at")
    return Incident(
        id=_id(raw),
        name=str(raw.get("name", "")),
        status=_int(raw.get("status")),
        updated_at=updated if isinstance(updated, str) else None,
    )
