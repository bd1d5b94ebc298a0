"""An in-process Cachet 2.x API v1 on 127.0.0.1 that follows Cachet's own source.

``version`` picks the code it follows (see docs/cachet-versions.md):

- ``"2.3"``: tag v2.3.18 / branch 2.3. Points in insertion order, times stored as sent
  (not rounded), de-duplication against ``now - threshold``; every component ``PUT``
  mails subscribers and resets ``enabled`` unless it is sent; ``PUT /incidents`` resets
  ``visible``; no ``/incidents/{id}/updates`` and no ``/schedules`` (404).
- ``"2.4.1"`` (the default): tags v2.4.0 / v2.4.1. Points newest first, times rounded to
  30 s, ``APP_TIMEZONE`` bug (``app_timezone``); a status change mails unless
  ``silent``; an incident's ``component_status`` changes the component non-silently;
  ``/updates`` mails whenever the incident is visible; ``PUT /incidents`` resets
  ``visible``, ``stickied`` and ``notify``.
- ``"2.4"``: branch 2.4, as 2.4.1 but an incident's component change is silent.

Everywhere: a wrong token on a ``GET`` is a guest; writes and ``GET /subscribers`` need
``X-Cachet-Token`` (401); lists paginate with ``meta.pagination`` (``per_page`` 20);
validation errors answer 400 with ``errors[].meta.details``; dates render in the
server's zone (UTC+2) unless ``Time-Zone`` says otherwise; ``GET /version`` needs the
server to reach GitHub (``github_reachable``). Mails to subscribers are recorded in
``notifications`` as ``(kind, id)``: ``component``, ``incident``, ``incident_update``.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from tests.statusbridge.fake_server import FakeServer, Request, Response

SERVER_ZONE = timezone(timedelta(hours=2))
VERSION_FILE = {"2.3": "2.3.18", "2.4.1": "2.4.0-dev", "2.4": "2.4.1"}
_INT = re.compile(r"^-?\d+$")


def validation_error(*details: str) -> Response:
    """Cachet 2.x's validation error body."""
    return Response(
        400,
        {
            "errors": [
                {
                    "id": "6f3b",
                    "status": 400,
                    "title": "Bad Request",
                    "detail": "The request cannot be fulfilled due to bad syntax.",
                    "meta": {"details": list(details)},
                }
            ]
        },
    )


def error(status: int, title: str, detail: str) -> Response:
    """Cachet's error body without details."""
    return Response(status, {"errors": [{"status": status, "title": title, "detail": detail}]})


def not_found() -> Response:
    """Cachet's 404 body."""
    return error(404, "Not Found", "The requested resource could not be found.")


def _int(value: object) -> int | None:
    """Laravel's ``int`` rule: an int, or a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT.match(value):
        return int(value)
    return None


def _php_round(value: float) -> int:
    """PHP's round(): halves away from zero."""
    return math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)


class FakeCachet(FakeServer):
    """Components, metrics, points and incidents in memory; ``now`` is settable."""

    def __init__(
        self,
        *,
        version: str = "2.4.1",
        token: str = "cachet-token",  # noqa: S107 - a fixture token
        app_timezone: str = "UTC",
        github_reachable: bool = True,
    ) -> None:
        if version not in VERSION_FILE:
            raise ValueError(f"unknown Cachet version {version!r}")
        super().__init__()
        self.version = version
        self.token = token
        # 2.3 hard-codes app.timezone = UTC; 2.4 reads APP_TIMEZONE.
        self.app_timezone: tzinfo = UTC if version == "2.3" else ZoneInfo(app_timezone)
        self.github_reachable = github_reachable
        self.now = 1_700_000_000.0
        self.down = False
        self.subscribers = [{"id": 1, "email": "reader@example.com", "verified_at": "x"}]
        self.components: dict[int, dict[str, Any]] = {}
        self.metrics: dict[int, dict[str, Any]] = {}
        self.points: dict[int, list[dict[str, Any]]] = {}
        self.incidents: dict[int, dict[str, Any]] = {}
        # (component id, status) of every PUT /components/{id} that carried a status.
        self.status_puts: list[tuple[int, int]] = []
        self.notifications: list[tuple[str, int]] = []
        self._next_id = 1

    @property
    def is_24(self) -> bool:
        """True for the tags and the branch of 2.4."""
        return self.version != "2.3"

    @property
    def base_url(self) -> str:
        """What goes into ``[cachet] base_url``."""
        return f"{self.url}/api/v1"

    def _id(self) -> int:
        # One sequence for every table, skipping the ids tests gave their objects.
        self._next_id += 1
        while any(
            self._next_id in table for table in (self.components, self.metrics, self.incidents)
        ):
            self._next_id += 1
        return self._next_id

    # -- set-up and inspection ---------------------------------------------------------

    def add_component(
        self, component_id: int, name: str = "Website", status: int = 1, *, enabled: bool = True
    ) -> None:
        """Create a component."""
        self.components[component_id] = {
            "id": component_id,
            "name": name,
            "description": "",
            "link": "",
            "status": status,
            "order": 0,
            "group_id": 0,
            "enabled": enabled,
            "created_at": self.now,
            "updated_at": self.now,
        }

    def add_metric(
        self, metric_id: int, *, threshold: int = 1, name: str = "m", suffix: str = ""
    ) -> None:
        """Create a metric with the given threshold (minutes)."""
        self.metrics[metric_id] = {
            "id": metric_id,
            "name": name,
            "suffix": suffix,
            "description": "",
            "threshold": threshold,
            "calc_type": 1,
            "default_value": 0,
            "display_chart": 1,
            "places": 2,
            "default_view": 1,
            "order": 0,
            "visible": 1,
        }
        self.points.setdefault(metric_id, [])

    def point_rows(self, metric_id: int) -> list[tuple[int, float, int]]:
        """(created_at as Cachet shows it, value, counter) of every point, oldest first."""
        rows = [
            (self.read_time(p["created_at"]), p["value"], p["counter"])
            for p in self.points[metric_id]
        ]
        return sorted(rows)

    def read_time(self, stored: int) -> int:
        """The instant Eloquent reads back for a stored UTC wall-clock time.

        The stored string is UTC wall-clock time; Eloquent parses it in ``app.timezone``
        (cachethq/cachet#2459): with anything but UTC the instant shifts.
        """
        wall = datetime.fromtimestamp(stored, UTC).replace(tzinfo=None)
        return int(wall.replace(tzinfo=self.app_timezone).timestamp())

    def component_mails(self) -> int:
        """How many component notifications subscribers got."""
        return sum(kind == "component" for kind, _ in self.notifications)

    def incident_mails(self) -> int:
        """How many incident and incident-update notifications subscribers got."""
        return sum(kind != "component" for kind, _ in self.notifications)

    # -- rendering ---------------------------------------------------------------------

    def _date(self, ts: float, request: Request) -> str:
        header = request.headers.get("time-zone")
        zone: tzinfo = SERVER_ZONE
        if header:
            zone = UTC if header == "UTC" else ZoneInfo(header)
        return datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S")

    def _render(self, item: dict[str, Any], request: Request) -> dict[str, Any]:
        out = {k: v for k, v in item.items() if k != "updates"}
        for key in ("created_at", "updated_at"):
            if isinstance(out.get(key), int | float):
                out[key] = self._date(out[key], request)
        return out

    def _render_point(self, point: dict[str, Any], request: Request) -> dict[str, Any]:
        out = dict(point)
        out["created_at"] = self._date(self.read_time(point["created_at"]), request)
        out["updated_at"] = self._date(point["updated_at"], request)
        out["calculated_value"] = point["value"] * point["counter"]
        return out

    def _page(self, items: list[dict[str, Any]], request: Request) -> Response:
        per_page = int(request.query.get("per_page", 20))
        page = int(request.query.get("page", 1))
        total_pages = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        next_page = f"{self.base_url}{request.path}?page={page + 1}" if page < total_pages else None
        meta = {
            "pagination": {
                "total": len(items),
                "count": len(chunk),
                "per_page": per_page,
                "current_page": page,
                "total_pages": total_pages,
                "links": {"next_page": next_page, "previous_page": None},
            }
        }
        return Response(200, {"meta": meta, "data": chunk})

    # -- routing -----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Route one request as ``app/Http/Routes/ApiRoutes.php`` does."""
        if self.down:
            return error(503, "Service Unavailable", "Down for maintenance.")
        parts = request.path.removeprefix("/api/v1").strip("/").split("/")
        authenticated = request.headers.get("x-cachet-token") == self.token
        needs_token = request.method != "GET" or parts == ["subscribers"]
        if needs_token and not authenticated:
            return error(401, "Unauthorized", "You are not authorized to view this content.")
        body = request.body if isinstance(request.body, dict) else {}
        route = self._route(request, parts, body, authenticated)
        return route if route is not None else not_found()

    def _route(
        self, request: Request, parts: list[str], body: dict[str, Any], authenticated: bool
    ) -> Response | None:
        method, n = request.method, len(parts)
        if method == "GET" and parts == ["ping"]:
            return Response(200, {"data": "Pong!"})
        if method == "GET" and parts == ["version"]:
            return self._version()
        if method == "GET" and parts == ["subscribers"]:
            return self._page(self.subscribers, request)
        if method == "GET" and parts == ["schedules"] and self.is_24:
            return self._page([], request)
        if parts[0] == "components" and n == 1:
            return self._components(request, authenticated) if method == "GET" else None
        if parts[0] == "components" and n == 2:
            return self._component(_int(parts[1]), request, body)
        if parts[0] == "metrics":
            return self._metrics(parts[1:], request, body)
        if parts[0] == "incidents":
            return self._incidents(parts[1:], request, body, authenticated)
        return None

    def _version(self) -> Response:
        if not self.github_reachable:
            # Releases::latest() lets Guzzle's ConnectException through: a 500.
            return error(500, "Internal Server Error", "Houston, We Have A Problem.")
        latest = {"tag_name": "v2.4.1", "prelease": False, "draft": False}
        return Response(
            200,
            {"meta": {"on_latest": False, "latest": latest}, "data": VERSION_FILE[self.version]},
        )

    # -- components --------------------------------------------------------------------

    def _components(self, request: Request, authenticated: bool) -> Response:
        rows = [c for c in self.components.values() if authenticated or c["enabled"]]
        return self._page([self._render(c, request) for c in rows], request)

    def _component(
        self, component_id: int | None, request: Request, body: dict[str, Any]
    ) -> Response | None:
        component = self.components.get(component_id or -1)
        if component is None:
            return not_found()
        if request.method == "PUT":
            problem = self._update_component(component, body)
            if problem is not None:
                return problem
        elif request.method != "GET":
            return None
        return Response(200, {"data": self._render(component, request)})

    def _update_component(self, component: dict[str, Any], body: dict[str, Any]) -> Response | None:
        status = body.get("status")
        if status is not None and _int(status) is None:
            return validation_error("The status must be an integer.")
        if self.is_24:
            # UpdateComponentCommand: status nullable|int|min:0|max:4.
            if status is not None and not 0 <= int(status) <= 4:
                return validation_error("The status may not be greater than 4.")
            enabled = body.get("enabled", component["enabled"])
            self._change_component(component, _int(status), silent=bool(body.get("silent", False)))
            if status is not None:
                self.status_puts.append((component["id"], int(status)))
        else:
            # putComponent: (bool) Binput::get('enabled', true), and every update mails.
            enabled = body.get("enabled", True)
            if status is not None:
                component["status"] = int(status)
                self.status_puts.append((component["id"], int(status)))
            self.notifications.append(("component", component["id"]))
        for key in ("name", "description", "link", "order", "group_id"):
            if body.get(key) is not None:
                component[key] = body[key]
        component["enabled"] = bool(enabled)
        component["updated_at"] = self.now
        return None

    def _change_component(
        self, component: dict[str, Any], status: int | None, *, silent: bool
    ) -> None:
        """2.4's UpdateComponentCommandHandler."""
        if status is None:
            return
        changed = int(component["status"]) != status
        component["status"] = status
        # The event fires only for a truthy status that differs (status 0 never mails).
        if status and changed and not silent:
            self.notifications.append(("component", component["id"]))

    # -- metrics and points ------------------------------------------------------------

    def _metrics(self, rest: list[str], request: Request, body: dict[str, Any]) -> Response | None:
        method = request.method
        if not rest:
            if method == "GET":
                return self._page(list(self.metrics.values()), request)
            return self._create_metric(body) if method == "POST" else None
        metric = self.metrics.get(_int(rest[0]) or -1)
        if metric is None:
            return not_found()
        if rest[1:] == [] and method == "GET":
            return Response(200, {"data": metric})
        if rest[1:] == ["points"] and method == "GET":
            return self._page(
                [self._render_point(p, request) for p in self._ordered(metric["id"])], request
            )
        if rest[1:] == ["points"] and method == "POST":
            return self._add_point(metric, body, request)
        if len(rest) == 3 and rest[1] == "points" and method == "DELETE":
            before = len(self.points[metric["id"]])
            self.points[metric["id"]] = [
                p for p in self.points[metric["id"]] if p["id"] != _int(rest[2])
            ]
            return Response(204) if len(self.points[metric["id"]]) < before else not_found()
        return None

    def _ordered(self, metric_id: int) -> list[dict[str, Any]]:
        points = self.points[metric_id]
        if not self.is_24:
            return list(points)  # a bare hasMany: insertion order
        return sorted(points, key=lambda p: (p["created_at"], p["id"]), reverse=True)

    def _create_metric(self, body: dict[str, Any]) -> Response:
        problems = [
            f"The {key} field is required." for key in ("name", "suffix") if not body.get(key)
        ]
        threshold = _int(body.get("threshold", 5))
        if self.is_24 and _int(body.get("default_value")) is None:
            problems.append("The default value field is required.")
        if threshold is None or threshold <= 0 or 60 % threshold:
            problems.append("Threshold must divide by 60.")
        if problems:
            return validation_error(*problems)
        metric_id = self._id()
        self.add_metric(
            metric_id, threshold=int(threshold or 5), name=body["name"], suffix=body["suffix"]
        )
        self.metrics[metric_id].update(
            calc_type=_int(body.get("calc_type", 0)) or 0,
            places=_int(body.get("places", 2)),
            default_value=_int(body.get("default_value", 0)) or 0,
        )
        return Response(200, {"data": self.metrics[metric_id]})

    def _add_point(
        self, metric: dict[str, Any], body: dict[str, Any], request: Request
    ) -> Response:
        value, ts = body.get("value"), body.get("timestamp")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return validation_error("The value field is required.")
        if ts is not None and _int(ts) is None:
            if self.is_24:
                return validation_error("The created at must be an integer.")
            # 2.3 has no command validation: DateFactory::create('U', …) returns false.
            return error(500, "Internal Server Error", "Houston, We Have A Problem.")
        point = self._find_same_value(metric, float(value))
        if point is None:
            created = int(ts) if ts is not None else int(self.now)
            if self.is_24:
                created = 30 * _php_round(created / 30)
            point = {
                "id": self._id(),
                "metric_id": metric["id"],
                "value": float(value),
                "counter": 0,
                "created_at": created,
                "updated_at": self.now,
            }
            self.points[metric["id"]].append(point)
        point["counter"] += 1
        return Response(200, {"data": self._render_point(point, request)})

    def _find_same_value(self, metric: dict[str, Any], value: float) -> dict[str, Any] | None:
        threshold = int(metric["threshold"])
        if self.is_24:
            # Carbon::now()->subMinutes(threshold - 1)->startOfMinute(), in app.timezone,
            # compared as a wall-clock string with the stored (UTC wall-clock) times.
            now = datetime.fromtimestamp(self.now, self.app_timezone).replace(tzinfo=None)
            buffer = (now - timedelta(minutes=threshold - 1)).replace(second=0, microsecond=0)
        else:
            buffer = datetime.fromtimestamp(self.now - threshold * 60, UTC).replace(tzinfo=None)
        # MetricPoint::where(…)->first(): no ordering, so the first inserted wins.
        for point in self.points[metric["id"]]:
            stored = datetime.fromtimestamp(point["created_at"], UTC).replace(tzinfo=None)
            if point["value"] == value and stored >= buffer:
                return point
        return None

    # -- incidents ---------------------------------------------------------------------

    def _incidents(
        self, rest: list[str], request: Request, body: dict[str, Any], authenticated: bool
    ) -> Response | None:
        method = request.method
        if not rest:
            if method == "GET":
                rows = [i for i in self.incidents.values() if authenticated or i["visible"]]
                return self._page([self._render(i, request) for i in rows], request)
            return self._create_incident(body, request) if method == "POST" else None
        if rest == ["templates"] and self.is_24 and method == "GET":
            return self._page([], request)
        incident = self.incidents.get(_int(rest[0]) or -1)
        if incident is None:
            return not_found()
        if rest[1:] == ["updates"] and self.is_24:
            if method == "GET":
                return self._page(list(reversed(incident["updates"])), request)
            if method == "POST":
                return self._add_update(incident, body)
            return None
        if rest[1:]:
            return None
        if method == "PUT":
            problem = self._update_incident(incident, body)
            if problem is not None:
                return problem
        elif method != "GET":
            return None
        return Response(200, {"data": self._render(incident, request)})

    def _create_incident(self, body: dict[str, Any], request: Request) -> Response:
        problems = [f"The {key} field is required." for key in ("name",) if not body.get(key)]
        status = _int(body.get("status"))
        if status is None or not 0 <= status <= 4:
            problems.append("The status format is invalid.")
        if ("component_id" in body) != ("component_status" in body):
            problems.append("The component id field is required when component status is present.")
        if not body.get("message"):
            problems.append("The message field is required.")  # the Incident model's rule
        component = self.components.get(_int(body.get("component_id")) or -1)
        if body.get("component_id") is not None and component is None and not self.is_24:
            # Component::find($id)->update(...) on null.
            return error(500, "Internal Server Error", "Houston, We Have A Problem.")
        if problems:
            return validation_error(*problems)
        visible = bool(body.get("visible", True))
        incident: dict[str, Any] = {
            "id": self._id(),
            "component_id": body.get("component_id") or 0,
            "name": body["name"],
            "message": body["message"],
            "status": status,
            "visible": int(visible),
            "created_at": self.now,
            "updated_at": self.now,
            "updates": [],
        }
        if self.is_24:
            incident["stickied"] = bool(body.get("stickied", False))
        self.incidents[incident["id"]] = incident
        if component is not None:
            self._incident_component(component, _int(body.get("component_status")))
        if bool(body.get("notify", True)) and visible:
            self.notifications.append(("incident", incident["id"]))
        return Response(200, {"data": self._render(incident, request)})

    def _incident_component(self, component: dict[str, Any], status: int | None) -> None:
        """An incident's component_status, as each version applies it."""
        if not self.is_24:
            # Component::find()->update(['status' => …]): no event, no mail.
            if status is not None:
                component["status"] = status
                self.status_puts.append((component["id"], status))
            return
        # UpdateComponentCommand(…, null, false) on the tags: silent stays null.
        self._change_component(component, status, silent=self.version == "2.4")

    def _update_incident(self, incident: dict[str, Any], body: dict[str, Any]) -> Response | None:
        status = body.get("status")
        if status is not None and (_int(status) is None or not 0 <= int(status) <= 4):
            return validation_error("The status format is invalid.")
        if body.get("component_id") is not None and body.get("component_status") is None:
            return validation_error(
                "The component status field is required when component id is present."
            )
        for key in ("name", "message"):
            if body.get(key) is not None:
                incident[key] = body[key]
        if status is not None:
            incident["status"] = int(status)
        # (bool) Binput::get('visible', true) on both; 2.4 also stickied (false) and notify.
        incident["visible"] = int(bool(body.get("visible", True)))
        if self.is_24:
            incident["stickied"] = bool(body.get("stickied", False))
        incident["updated_at"] = self.now
        component = self.components.get(_int(body.get("component_id")) or -1)
        if component is not None:
            self._incident_component(component, _int(body.get("component_status")))
        return None

    def _add_update(self, incident: dict[str, Any], body: dict[str, Any]) -> Response:
        status = _int(body.get("status"))
        if status is None or not 1 <= status <= 4 or not body.get("message"):
            return validation_error("The status format is invalid.")
        update = {"id": self._id(), "incident_id": incident["id"], **body}
        incident["updates"].append(update)
        # UpdateIncidentCommand with only the status: visible and stickied are kept.
        incident["status"] = status
        incident["updated_at"] = self.now
        if incident["visible"]:
            self.notifications.append(("incident_update", incident["id"]))
        return Response(200, {"data": update})
