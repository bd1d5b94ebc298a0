"""The Cachet 2.3 / 2.4 API v1 adapter.

``X-Cachet-Token`` auth, JSON bodies, ``Time-Zone: UTC`` on every request so that
``created_at`` strings can be compared with unix times, ``meta.pagination`` followed,
point timestamps sent as int unix seconds. What differs between 2.3 and 2.4 (read in
their source, docs/cachet-versions.md):

- points: 2.3 lists them in insertion order and keeps times as sent, 2.4 lists them
  newest first, rounded to 30 s — :meth:`Cachet2.point_times` reads all of 2.3's pages
  and stops early on 2.4;
- component ``PUT``: 2.3 mails on every one and resets ``enabled`` unless it is sent
  (so it is), 2.4 mails on a status change unless ``silent``;
- incidents: ``/updates`` exists on 2.4 only and mails whenever the incident is visible;
  ``PUT`` resets ``visible`` (and on 2.4 ``stickied``), so they are sent back.

The first point posted is checked against 2.4's ``APP_TIMEZONE`` bug (see
:class:`~statusbridge.exceptions.CachetTimeZoneError`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

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
from statusbridge.pingdom_cachet.cachet.http import CachetHttp
from statusbridge.pingdom_cachet.cachet.parsing import (
    as_bool,
    as_dict,
    as_float,
    as_int,
    object_id,
    parse_time,
)

log = structlog.get_logger(__name__)

# Cachet 2.4 rounds point times to 30 s; anything further off is a shift.
ROUNDING_S = 30
# 2.3 cannot be asked for an order, so the look-up reads everything, in big pages.
_ALL_PAGES_PER_PAGE = 500


def headers(token: SecretStr | None) -> dict[str, str]:
    """The headers of every 2.x request."""
    out = {"Time-Zone": "UTC"}
    if token is not None:
        out["X-Cachet-Token"] = token.get_secret_value()
    return out


class Cachet2:
    """Cachet 2.3 or 2.4, through one :class:`CachetHttp`."""

    def __init__(self, http: CachetHttp, version: Literal["2.3", "2.4"]) -> None:
        self._http = http
        self.version: Literal["2.3", "2.4"] = version
        self.status_mails: StatusMails = "always" if version == "2.3" else "unless_silent"
        self._time_checked = False
        self._time_error: CachetTimeZoneError | None = None

    async def _paginate(self, path: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        page = 1
        while True:
            body = as_dict(await self._http.request("GET", path, params={**params, "page": page}))
            data = body.get("data")
            for item in data if isinstance(data, list) else []:
                if isinstance(item, dict):
                    yield item
            pagination = as_dict(as_dict(body.get("meta")).get("pagination"))
            current, total = pagination.get("current_page"), pagination.get("total_pages")
            if not as_dict(pagination.get("links")).get("next_page") or (
                isinstance(current, int) and isinstance(total, int) and current >= total
            ):
                return
            page += 1

    async def _data(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return as_dict(as_dict(await self._http.request(method, path, **kwargs)).get("data"))

    # -- general -----------------------------------------------------------------------

    async def ping(self) -> None:
        """``GET /ping``."""
        await self._http.request("GET", "/ping")

    async def server_version(self) -> str:
        """``GET /version`` (the Cachet server asks GitHub for the latest release)."""
        data = as_dict(await self._http.request("GET", "/version")).get("data")
        return data if isinstance(data, str) else "unknown"

    async def verify_token(self) -> str:
        """``GET /subscribers`` needs a valid token on 2.3 and 2.4 (other GETs do not)."""
        await self._http.request("GET", "/subscribers", params={"per_page": 1})
        return "token accepted"

    # -- components and metrics --------------------------------------------------------

    async def component(self, component_id: int) -> Component:
        """``GET /components/{id}``."""
        return _component(await self._data("GET", f"/components/{component_id}"))

    async def components(self) -> AsyncIterator[Component]:
        """``GET /components``, every page."""
        async for raw in self._paginate("/components", per_page=100):
            yield _component(raw)

    async def set_component_status(
        self, component: Component, status: int, *, notify: bool
    ) -> None:
        """``PUT /components/{id}``: silent on 2.4 unless ``notify``; 2.3 always mails."""
        body: dict[str, Any] = {"status": status}
        if self.version == "2.4":
            body["silent"] = not notify
        else:
            # 2.3 sets enabled to true unless it is sent.
            body["enabled"] = component.enabled if component.enabled is not None else True
        await self._http.request("PUT", f"/components/{component.id}", json=body)

    async def metric(self, metric_id: int) -> Metric:
        """``GET /metrics/{id}``."""
        return _metric(await self._data("GET", f"/metrics/{metric_id}"))

    async def metrics(self) -> AsyncIterator[Metric]:
        """``GET /metrics``, every page."""
        async for raw in self._paginate("/metrics", per_page=100):
            yield _metric(raw)

    async def create_metric(self, spec: MetricSpec) -> Metric:
        """``POST /metrics`` (2.4 requires an int ``default_value``)."""
        body = {
            "name": spec.name,
            "suffix": spec.suffix,
            "description": spec.description,
            "default_value": 0,
            "calc_type": 1,
            "display_chart": 1,
            "places": spec.places,
            "default_view": 1,
            "threshold": spec.threshold,
            "visible": 1,
        }
        return _metric(await self._data("POST", "/metrics", json=body))

    # -- points ------------------------------------------------------------------------

    async def points(self, metric_id: int, *, per_page: int = 100) -> AsyncIterator[Point]:
        """``GET /metrics/{id}/points``: newest first on 2.4, insertion order on 2.3."""
        async for raw in self._paginate(f"/metrics/{metric_id}/points", per_page=per_page):
            yield _point(raw)

    async def point_times(self, metric_id: int, since: int) -> set[int]:
        """``created_at`` of every point at or after ``since``.

        2.4 lists newest first, so paging stops at the first point before ``since``
        (less the rounding). 2.3 lists in insertion order, which a backfill or a second
        writer makes unrelated to time, so every page is read; its times are exact.
        """
        found: set[int] = set()
        if self.version == "2.3":
            async for point in self.points(metric_id, per_page=_ALL_PAGES_PER_PAGE):
                if point.created_at is not None and point.created_at >= since:
                    found.add(point.created_at)
            return found
        async for point in self.points(metric_id):
            if point.created_at is None:
                continue
            if point.created_at < since - ROUNDING_S:
                break
            found.add(point.created_at)
        return found

    async def add_point(self, metric_id: int, value: float, timestamp: int) -> Point:
        """``POST /metrics/{id}/points``; the first fresh point is checked for a shift."""
        if self._time_error is not None:
            raise self._time_error
        body = {"value": value, "timestamp": int(timestamp)}
        point = _point(await self._data("POST", f"/metrics/{metric_id}/points", json=body))
        if not self._time_checked and point.counter == 1 and point.created_at is not None:
            self._time_checked = True
            shift = point.created_at - int(timestamp)
            if abs(shift) > ROUNDING_S:
                await self._refuse_shifted(metric_id, point, int(timestamp), shift)
        return point

    async def _refuse_shifted(self, metric_id: int, point: Point, sent: int, shift: int) -> None:
        """Delete the misplaced point and stop every further point write."""
        error = CachetTimeZoneError(
            f"a point sent for {_utc(sent)} UTC is stored at {_utc(sent + shift)} UTC "
            f"({shift / 3600:+.2g} h): Cachet 2.4 shifts point times when its APP_TIMEZONE "
            "is not UTC (cachethq/cachet#2459, #3794), and every point would then be posted "
            "twice; set APP_TIMEZONE=UTC on the Cachet server (the page's own time zone "
            "setting is separate). No point is written until statusbridge restarts",
            shift_s=shift,
        )
        try:
            await self._http.request("DELETE", f"/metrics/{metric_id}/points/{point.id}")
        except CachetError as exc:
            log.warning("cachet_shifted_point_kept", metric=metric_id, error=str(exc))
        self._time_error = error
        log.error("cachet_time_zone_shift", metric=metric_id, shift_s=shift)
        raise error

    # -- incidents ---------------------------------------------------------------------

    async def incident(self, incident_id: int) -> Incident:
        """``GET /incidents/{id}``."""
        return _incident(await self._data("GET", f"/incidents/{incident_id}"))

    async def create_incident(
        self, name: str, message: str, *, notify: bool, component: tuple[int, int] | None
    ) -> Incident:
        """``POST /incidents``, linked to the component at the status it already has."""
        body: dict[str, Any] = {
            "name": name,
            "message": message,
            "status": INCIDENT_INVESTIGATING,
            "visible": 1,
            "notify": notify,
        }
        if component is not None:
            body["component_id"], body["component_status"] = component
        return _incident(await self._data("POST", "/incidents", json=body))

    async def resolve_incident(self, incident: Incident, message: str, *, notify: bool) -> Incident:
        """Fixed: ``/updates`` on 2.4 when it may mail, else a ``PUT`` that keeps fields."""
        if self.version == "2.4" and notify:
            body = {"status": INCIDENT_FIXED, "message": message}
            await self._http.request("POST", f"/incidents/{incident.id}/updates", json=body)
            return await self.incident(incident.id)
        fields: dict[str, Any] = {
            "status": INCIDENT_FIXED,
            "message": message,
            "visible": incident.visible if incident.visible is not None else 1,
            "notify": notify,
        }
        if self.version == "2.4":
            fields["stickied"] = bool(incident.stickied)
        return _incident(await self._data("PUT", f"/incidents/{incident.id}", json=fields))


def _utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


def _component(raw: dict[str, Any]) -> Component:
    return Component(
        object_id(raw),
        str(raw.get("name", "")),
        as_int(raw.get("status")),
        as_bool(raw.get("enabled")),
    )


def _metric(raw: dict[str, Any]) -> Metric:
    return Metric(
        object_id(raw),
        str(raw.get("name", "")),
        as_int(raw.get("threshold")),
        str(raw.get("suffix") or ""),
    )


def _point(raw: dict[str, Any]) -> Point:
    return Point(
        id=object_id(raw),
        value=as_float(raw.get("value")),
        counter=as_int(raw.get("counter")) or 1,
        created_at=parse_time(raw.get("created_at")),
        updated_at=parse_time(raw.get("updated_at")),
    )


def _incident(raw: dict[str, Any]) -> Incident:
    updated = raw.get("updated_at")
    return Incident(
        id=object_id(raw),
        name=str(raw.get("name", "")),
        status=as_int(raw.get("status")),
        updated_at=updated if isinstance(updated, str) else None,
        visible=as_int(raw.get("visible")),
        stickied=as_bool(raw.get("stickied")),
    )
