"""The Cachet 3 (``cachethq/core``) adapter.

A different API from 2.x (read in ``cachethq/core``, see docs/cachet-versions.md):
``{path}/api/...`` without ``/v1``; Sanctum ``Bearer`` tokens whose abilities guard each
write (403 without); JSON:API bodies (``data.attributes``) with statuses as
``{human, value}`` and dates as ``{human, string}``, the string in the server's
``APP_TIMEZONE`` (``[cachet] timezone``; there is no ``Time-Zone`` header); component
statuses 1–6; ``simplePaginate`` followed through ``links.next``; points in id order
unless ``sort=-created_at``; 201 on create; 422 validation bodies; 300 requests a minute
per token (429s are waited out by :class:`~.http.CachetHttp`).

Its traps, and what this adapter does about them:

- a point is absorbed by the *latest* point when their minutes are less than the
  metric's threshold apart (whatever its value): points go out oldest first, one per
  bucket, and the look-up finds what a crashed run already posted;
- incidents default to hidden and silent: ``visible`` and ``notifications`` are sent;
- component status changes mail nobody (webhooks only), so there is nothing to silence;
- metric ``default_value`` must have one or two decimals: it is left out;
- the first point's answer is checked against ``[cachet] timezone``, so that a wrong
  zone stops the pushing instead of misreading every time (and doubling points).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog
from pydantic import SecretStr

from statusbridge.exceptions import CachetError, CachetTimeZoneError
from statusbridge.pingdom_cachet.cachet.api import (
    INCIDENT_FIXED,
    INCIDENT_INVESTIGATING,
    Component,
    Incident,
    Metric,
    MetricSpec,
    Point,
    StatusMails,
)
from statusbridge.pingdom_cachet.cachet.http import CachetHttp, error_message
from statusbridge.pingdom_cachet.cachet.parsing import (
    as_bool,
    as_dict,
    as_float,
    as_int,
    object_id,
    parse_time,
)

log = structlog.get_logger(__name__)

ROUNDING_S = 30
MAX_PER_PAGE = 100  # Number::clamp(per_page, 1, 100)


def headers(token: SecretStr | None) -> dict[str, str]:
    """The headers of every Cachet 3 request."""
    return {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}


class Cachet3:
    """Cachet 3 through one :class:`CachetHttp`; ``timezone`` is its ``APP_TIMEZONE``."""

    version: Literal["3"] = "3"
    status_mails: StatusMails = "never"

    def __init__(self, http: CachetHttp, timezone: str) -> None:
        self._http = http
        self._timezone = timezone
        self._zone = ZoneInfo(timezone)
        self._time_checked = False
        self._time_error: CachetTimeZoneError | None = None

    async def _paginate(self, path: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        url: str | None = path
        query: dict[str, Any] | None = params
        while url is not None:
            body = as_dict(await self._http.request("GET", url, params=query))
            data = body.get("data")
            for item in data if isinstance(data, list) else []:
                if isinstance(item, dict):
                    yield _attributes(item)
            # links.next carries the query already.
            nxt = as_dict(body.get("links")).get("next")
            url, query = (nxt, None) if isinstance(nxt, str) and nxt else (None, None)

    async def _one(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = as_dict(await self._http.request(method, path, **kwargs))
        return _attributes(as_dict(body.get("data")))

    # -- general -----------------------------------------------------------------------

    async def ping(self) -> None:
        """``GET /ping``."""
        await self._http.request("GET", "/ping")

    async def server_version(self) -> str:
        """``GET /version``: ``{"data": {"version": …}}``, read from a file (no GitHub)."""
        data = as_dict(as_dict(await self._http.request("GET", "/version")).get("data"))
        version = data.get("version")
        return version if isinstance(version, str) else "unknown"

    async def verify_token(self) -> str:
        """``GET /subscribers``: 401 means a bad token; 403 only a missing ability
        (``subscribers.manage``), which statusbridge does not need."""
        response = await self._http.response("GET", "/subscribers", params={"per_page": 1})
        if response.status_code == 403:
            return "token accepted"
        if response.is_error:
            raise CachetError(
                f"GET /subscribers: {error_message(response)}", status=response.status_code
            )
        return "token accepted"

    # -- components and metrics --------------------------------------------------------

    async def component(self, component_id: int) -> Component:
        """``GET /components/{id}``."""
        return _component(await self._one("GET", f"/components/{component_id}"))

    async def components(self) -> AsyncIterator[Component]:
        """``GET /components``: enabled ones, then disabled ones (the list filters them)."""
        for enabled in ("1", "0"):
            params = {"per_page": MAX_PER_PAGE, "filter[enabled]": enabled}
            async for raw in self._paginate("/components", **params):
                yield _component(raw)

    async def set_component_status(
        self, component: Component, status: int, *, notify: bool
    ) -> None:
        """``PUT /components/{id}``; Cachet 3 mails nobody about it, ``enabled`` is kept."""
        await self._http.request("PUT", f"/components/{component.id}", json={"status": status})

    async def metric(self, metric_id: int) -> Metric:
        """``GET /metrics/{id}``."""
        return _metric(await self._one("GET", f"/metrics/{metric_id}"))

    async def metrics(self) -> AsyncIterator[Metric]:
        """``GET /metrics``, every page."""
        async for raw in self._paginate("/metrics", per_page=MAX_PER_PAGE):
            yield _metric(raw)

    async def create_metric(self, spec: MetricSpec) -> Metric:
        """``POST /metrics`` (ability ``metrics.manage``); no ``default_value`` (see above)."""
        body = {
            "name": spec.name,
            "suffix": spec.suffix,
            "description": spec.description,
            "calc_type": 1,
            "display_chart": True,
            "threshold": spec.threshold,
            "places": spec.places,
        }
        return _metric(await self._one("POST", "/metrics", json=body))

    # -- points ------------------------------------------------------------------------

    async def points(self, metric_id: int, *, per_page: int = 100) -> AsyncIterator[Point]:
        """``GET /metrics/{id}/points?sort=-created_at``: newest first."""
        params = {"sort": "-created_at", "per_page": min(per_page, MAX_PER_PAGE)}
        async for raw in self._paginate(f"/metrics/{metric_id}/points", **params):
            yield self._point(raw)

    async def point_times(self, metric_id: int, since: int) -> set[int]:
        """``created_at`` of every point at or after ``since``, newest first until older."""
        found: set[int] = set()
        async for point in self.points(metric_id):
            if point.created_at is None:
                continue
            if point.created_at < since - ROUNDING_S:
                break
            found.add(point.created_at)
        return found

    async def add_point(self, metric_id: int, value: float, timestamp: int) -> Point:
        """``POST /metrics/{id}/points`` (201); the first fresh point checks the zone."""
        if self._time_error is not None:
            raise self._time_error
        body = {"value": value, "timestamp": int(timestamp)}
        point = self._point(await self._one("POST", f"/metrics/{metric_id}/points", json=body))
        if not self._time_checked and point.counter == 1 and point.created_at is not None:
            self._time_checked = True
            shift = point.created_at - int(timestamp)
            if abs(shift) > ROUNDING_S:
                self._time_error = CachetTimeZoneError(
                    f"a point sent for {_utc(int(timestamp))} UTC reads back as "
                    f"{_utc(int(timestamp) + shift)} UTC: Cachet 3 answers in its "
                    f"APP_TIMEZONE, which is not [cachet] timezone = {self._timezone!r} "
                    f"(it is {shift / 3600:+.2g} h from that); set it to the server's "
                    "APP_TIMEZONE. No point is written until statusbridge restarts",
                    shift_s=shift,
                )
                log.error("cachet_time_zone_shift", metric=metric_id, shift_s=shift)
                raise self._time_error
        return point

    def _point(self, raw: dict[str, Any]) -> Point:
        return Point(
            id=object_id(raw),
            value=as_float(raw.get("value")),
            counter=as_int(raw.get("counter")) or 1,
            created_at=parse_time(as_dict(raw.get("created")).get("string"), self._zone),
            updated_at=parse_time(as_dict(raw.get("updated")).get("string"), self._zone),
        )

    # -- incidents ---------------------------------------------------------------------

    async def incident(self, incident_id: int) -> Incident:
        """``GET /incidents/{id}``."""
        return _incident(await self._one("GET", f"/incidents/{incident_id}"))

    async def create_incident(
        self, name: str, message: str, *, notify: bool, component: tuple[int, int] | None
    ) -> Incident:
        """``POST /incidents`` (201): visible, mailing as ``notify`` says."""
        body: dict[str, Any] = {
            "name": name,
            "message": message,
            "status": INCIDENT_INVESTIGATING,
            "visible": True,
            "notifications": notify,
        }
        if component is not None:
            body["component_id"], body["component_status"] = component
        return _incident(await self._one("POST", "/incidents", json=body))

    async def resolve_incident(self, incident: Incident, message: str, *, notify: bool) -> Incident:
        """``POST /incidents/{id}/updates``: it mails only if the incident has
        ``notifications``, which it got from ``notify`` when it was opened."""
        body = {"status": INCIDENT_FIXED, "message": message}
        await self._http.request("POST", f"/incidents/{incident.id}/updates", json=body)
        return await self.incident(incident.id)


def _utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


def _attributes(resource: dict[str, Any]) -> dict[str, Any]:
    """A JSON:API resource's attributes, with its id."""
    attributes = as_dict(resource.get("attributes"))
    if "id" not in attributes and "id" in resource:
        attributes = {**attributes, "id": resource["id"]}
    return attributes


def _value(enum: object) -> int | None:
    """A ``{human, value}`` status (or a bare number)."""
    return as_int(as_dict(enum).get("value")) if isinstance(enum, dict) else as_int(enum)


def _component(raw: dict[str, Any]) -> Component:
    return Component(
        object_id(raw),
        str(raw.get("name", "")),
        _value(raw.get("status")),
        as_bool(raw.get("enabled")),
    )


def _metric(raw: dict[str, Any]) -> Metric:
    return Metric(
        object_id(raw),
        str(raw.get("name", "")),
        as_int(raw.get("threshold")),
        str(raw.get("suffix") or ""),
    )


def _incident(raw: dict[str, Any]) -> Incident:
    updated = as_dict(raw.get("updated")).get("string")
    return Incident(
        id=object_id(raw),
        name=str(raw.get("name", "")),
        status=_value(raw.get("status")),
        updated_at=updated if isinstance(updated, str) else None,
        visible=_value(raw.get("visible")),
        stickied=as_bool(raw.get("stickied")),
    )
