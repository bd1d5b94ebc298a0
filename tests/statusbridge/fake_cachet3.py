"""An in-process Cachet 3 API (``cachethq/core``) on 127.0.0.1 that follows its source.

What it keeps from ``cachethq/core`` (routes/api.php, src/Http/Controllers/Api,
src/Data/Requests, src/Actions, src/Http/Resources; see docs/cachet-versions.md):

- paths ``{path}/api/...`` without ``/v1``; reads are open (a wrong token is a guest)
  unless ``api_protected``; writes and ``/subscribers`` need a Sanctum ``Bearer`` token
  (401) holding the route's ability (403);
- JSON:API bodies: ``data.attributes``, statuses as ``{human, value}``, dates as
  ``{human, string}`` with ``string`` in ``app_timezone``;
- ``simplePaginate``: ``per_page`` default 15 clamped to 1–100, ``links.next``;
- component statuses 1–6, incident statuses 0–4; creates answer 201; validation errors
  answer 422 ``{message, errors}``; 300 requests a minute per token (429, ``Retry-After``);
- points in id order unless ``sort=-created_at``; a point's time rounded to 30 s; the
  latest point absorbs a new one whose minute is within ``threshold`` minutes of it
  (``counter + 1``, the new value discarded);
- incidents default to ``visible: false`` and ``notifications: false``; component
  status changes mail nobody; incident creates and updates mail subscribers only with
  ``notifications`` on a guest-visible incident (``notifications`` records them);
- the components list leaves disabled components out unless ``filter[enabled]=0``.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from tests.statusbridge.fake_server import FakeServer, Request, Response

ALL_ABILITIES = frozenset(
    {
        "components.manage",
        "metrics.manage",
        "metric-points.manage",
        "metric-points.delete",
        "incidents.manage",
        "incident-updates.manage",
    }
)
COMPONENT_STATUSES = {
    1: "Operational",
    2: "Performance Issues",
    3: "Partial Outage",
    4: "Major Outage",
    5: "Unknown",
    6: "Under Maintenance",
}
INCIDENT_STATUSES = {0: "Unknown", 1: "Investigating", 2: "Identified", 3: "Watching", 4: "Fixed"}


def message(status: int, text: str) -> Response:
    """Laravel's JSON error body."""
    return Response(status, {"message": text})


def unprocessable(**errors: str) -> Response:
    """Laravel's 422 validation body."""
    first = next(iter(errors.values()))
    extra = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return Response(
        422,
        {
            "message": first + (extra if len(errors) > 1 else ""),
            "errors": {field: [text] for field, text in errors.items()},
        },
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _boolean(value: object) -> bool | None:
    """Laravel's ``boolean`` rule: true, false, 1, 0, "1", "0"."""
    if value in (True, 1, "1"):
        return True
    if value in (False, 0, "0"):
        return False
    return None


class FakeCachet3(FakeServer):
    """Components, metrics, points, incidents and updates in memory; ``now`` settable."""

    def __init__(
        self,
        *,
        token: str = "cachet3-token",  # noqa: S107 - a fixture token
        abilities: frozenset[str] = ALL_ABILITIES,
        app_timezone: str = "UTC",
        path: str = "",
        rate_limit: int = 300,
    ) -> None:
        super().__init__()
        self.tokens: dict[str, frozenset[str]] = {token: abilities}
        self.token = token
        self.app_timezone: tzinfo = ZoneInfo(app_timezone)
        self.path = path.rstrip("/")
        self.api_protected = False
        self.rate_limit = rate_limit
        # The limiter's clock: real time plus what tests add with sleep().
        self.limiter_offset = 0.0
        self._hits: dict[str, list[float]] = {}
        self.now = 1_700_000_000.0
        self.down = False
        self.components: dict[int, dict[str, Any]] = {}
        self.metrics: dict[int, dict[str, Any]] = {}
        self.points: dict[int, list[dict[str, Any]]] = {}
        self.incidents: dict[int, dict[str, Any]] = {}
        self.status_puts: list[tuple[int, int]] = []
        self.notifications: list[tuple[str, int]] = []
        self._next_id = 1

    @property
    def base_url(self) -> str:
        """What goes into ``[cachet] base_url``."""
        return f"{self.url}{self.path}/api"

    async def sleep(self, seconds: float) -> None:
        """A client's sleep that moves the rate limiter's clock instead of waiting."""
        self.limiter_offset += seconds

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
            "link": None,
            "order": 0,
            "status": status,
            "enabled": enabled,
            "component_group_id": None,
            "created_at": self.now,
            "updated_at": self.now,
        }

    def add_metric(
        self, metric_id: int, *, threshold: int = 1, name: str = "m", visible: int = 1
    ) -> None:
        """Create a metric with the given threshold (minutes)."""
        self.metrics[metric_id] = {
            "id": metric_id,
            "name": name,
            "suffix": "",
            "description": "",
            "default_value": 0.0,
            "calc_type": 1,
            "display_chart": True,
            "places": 2,
            "default_view": 1,
            "threshold": threshold,
            "order": 0,
            "visible": visible,
            "created_at": self.now,
            "updated_at": self.now,
        }
        self.points.setdefault(metric_id, [])

    def point_rows(self, metric_id: int) -> list[tuple[int, float, int]]:
        """(created_at, value, counter) of every stored point, oldest first."""
        rows = [(p["created_at"], p["value"], p["counter"]) for p in self.points[metric_id]]
        return sorted(rows)

    def incident_mails(self) -> int:
        """How many incident and incident-update notifications subscribers got."""
        return len(self.notifications)

    # -- rendering ---------------------------------------------------------------------

    def _date(self, ts: float | None) -> dict[str, str | None]:
        if ts is None:
            return {"human": None, "string": None}
        wall = datetime.fromtimestamp(ts, self.app_timezone).strftime("%Y-%m-%d %H:%M:%S")
        return {"human": "1 second ago", "string": wall}

    @staticmethod
    def _resource(kind: str, row: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
        return {"id": str(row["id"]), "type": kind, "attributes": attributes}

    def _component(self, row: dict[str, Any]) -> dict[str, Any]:
        status = {"human": COMPONENT_STATUSES[row["status"]], "value": row["status"]}
        return self._resource(
            "components",
            row,
            {
                "id": row["id"],
                "name": row["name"],
                "description": row["description"],
                "link": row["link"],
                "order": row["order"],
                "status": status,
                "latest_status": status,
                "enabled": row["enabled"],
                "created": self._date(row["created_at"]),
                "updated": self._date(row["updated_at"]),
            },
        )

    def _metric(self, row: dict[str, Any]) -> dict[str, Any]:
        attributes = {k: v for k, v in row.items() if k not in ("created_at", "updated_at")}
        attributes["created"] = self._date(row["created_at"])
        attributes["updated"] = self._date(row["updated_at"])
        return self._resource("metrics", row, attributes)

    def _point(self, row: dict[str, Any]) -> dict[str, Any]:
        return self._resource(
            "metric_points",
            row,
            {
                "id": row["id"],
                "metric_id": row["metric_id"],
                "calculated_value": row["value"] * row["counter"],
                "value": row["value"],
                "counter": row["counter"],
                "created": self._date(row["created_at"]),
                "updated": self._date(row["updated_at"]),
            },
        )

    def _incident(self, row: dict[str, Any]) -> dict[str, Any]:
        return self._resource(
            "incidents",
            row,
            {
                "id": row["id"],
                "guid": f"guid-{row['id']}",
                "name": row["name"],
                "message": row["message"],
                "visible": row["visible"],
                "stickied": row["stickied"],
                "notifications": row["notifications"],
                "status": {"human": INCIDENT_STATUSES[row["status"]], "value": row["status"]},
                "occurred": self._date(row["created_at"]),
                "published": self._date(row["created_at"]),
                "created": self._date(row["created_at"]),
                "updated": self._date(row["updated_at"]),
            },
        )

    def _update(self, row: dict[str, Any]) -> dict[str, Any]:
        return self._resource(
            "updates",
            row,
            {
                "id": row["id"],
                "updateable_id": row["incident_id"],
                "updateable_type": "incident",
                "message": row["message"],
                "status": {"human": INCIDENT_STATUSES[row["status"]], "value": row["status"]},
                "created": self._date(row["created_at"]),
                "updated": self._date(row["created_at"]),
            },
        )

    def _page(self, items: list[dict[str, Any]], request: Request) -> Response:
        try:
            per_page = int(request.query.get("per_page", 15))
        except ValueError:
            per_page = 15
        per_page = min(100, max(1, per_page))
        page = max(1, int(request.query.get("page", 1)))
        start = (page - 1) * per_page
        chunk = items[start : start + per_page]
        more = len(items) > start + per_page
        path = f"{self.url}{request.path}"
        query = {k: v for k, v in request.query.items() if k != "page"}

        def link(number: int) -> str:
            return f"{path}?{urlencode({**query, 'page': number})}"

        return Response(
            200,
            {
                "data": chunk,
                "links": {
                    "first": link(1),
                    "last": None,
                    "prev": link(page - 1) if page > 1 else None,
                    "next": link(page + 1) if more else None,
                },
                "meta": {
                    "current_page": page,
                    "from": start + 1 if chunk else None,
                    "path": path,
                    "per_page": per_page,
                    "to": start + len(chunk) if chunk else None,
                },
            },
        )

    # -- routing -----------------------------------------------------------------------

    def _throttle(self, request: Request, key: str) -> Response | None:
        now = time.monotonic() + self.limiter_offset
        hits = [t for t in self._hits.get(key, []) if now - t < 60]
        if len(hits) >= self.rate_limit:
            retry_after = max(1, math.ceil(60 - (now - hits[0])))
            limited = message(429, "Too Many Attempts.")
            limited.headers = {
                "Retry-After": str(retry_after),
                "X-RateLimit-Limit": str(self.rate_limit),
                "X-RateLimit-Remaining": "0",
            }
            self._hits[key] = hits
            return limited
        hits.append(now)
        self._hits[key] = hits
        return None

    def handle(self, request: Request) -> Response:
        """Route one request as routes/api.php does."""
        if self.down:
            return message(503, "Service Unavailable")
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        abilities = self.tokens.get(token or "")
        limited = self._throttle(request, token if abilities is not None else "guest")
        if limited is not None:
            return limited
        prefix = f"{self.path}/api"
        if not request.path.startswith(prefix + "/"):
            return message(404, f"The route {request.path.lstrip('/')} could not be found.")
        if self.api_protected and abilities is None:
            return message(401, "Unauthenticated.")
        parts = request.path.removeprefix(prefix).strip("/").split("/")
        body = request.body if isinstance(request.body, dict) else {}
        response = self._route(request, parts, body, abilities)
        if response is None:
            return message(404, f"The route {request.path.lstrip('/')} could not be found.")
        response.headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            **(response.headers or {}),
        }
        return response

    def _route(
        self,
        request: Request,
        parts: list[str],
        body: dict[str, Any],
        abilities: frozenset[str] | None,
    ) -> Response | None:
        method = request.method
        writing = method != "GET" or parts == ["subscribers"]
        if writing and abilities is None:
            return message(401, "Unauthenticated.")
        needed = _ability(method, parts)
        if writing and needed is not None and not ({needed, "*"} & (abilities or frozenset())):
            return message(403, "Invalid ability provided.")
        authenticated = abilities is not None
        if method == "GET" and parts == ["ping"]:
            return Response(200, {"data": "Pong!"})
        if method == "GET" and parts == ["version"]:
            return Response(200, {"data": {"version": "3.x-dev"}})
        if method == "GET" and parts == ["status"]:
            return Response(
                200, {"data": {"status": "operational", "message": "All Systems Operational"}}
            )
        if method == "GET" and parts == ["subscribers"]:
            return self._page([], request)
        if method == "GET" and parts == ["component-groups"]:
            return self._page([], request)
        if parts[0] == "components":
            return self._components(parts[1:], request, body, authenticated)
        if parts[0] == "metrics":
            return self._metrics(parts[1:], request, body, authenticated)
        if parts[0] == "incidents":
            return self._incidents(parts[1:], request, body)
        return None

    # -- components --------------------------------------------------------------------

    def _components(
        self, rest: list[str], request: Request, body: dict[str, Any], authenticated: bool
    ) -> Response | None:
        if not rest and request.method == "GET":
            wanted = _boolean(request.query.get("filter[enabled]", "1"))
            rows = [
                c
                for c in sorted(self.components.values(), key=lambda c: c["id"])
                if (authenticated or c["enabled"]) and c["enabled"] == wanted
            ]
            return self._page([self._component(c) for c in rows], request)
        if len(rest) != 1 or not rest[0].isdigit():
            return None
        row = self.components.get(int(rest[0]))
        if row is None or (request.method == "GET" and not (authenticated or row["enabled"])):
            return message(404, f"No query results for model [Cachet\\Models\\Component] {rest[0]}")
        if request.method == "PUT":
            status = body.get("status")
            if status is not None and status not in COMPONENT_STATUSES:
                return unprocessable(status="The selected status is invalid.")
            if "enabled" in body and _boolean(body["enabled"]) is None:
                return unprocessable(enabled="The enabled field must be true or false.")
            if status is not None:
                row["status"] = status
                self.status_puts.append((row["id"], status))
            if "enabled" in body:
                row["enabled"] = _boolean(body["enabled"])
            for key in ("name", "description", "link", "order"):
                if body.get(key) is not None:
                    row[key] = body[key]
            row["updated_at"] = self.now
        elif request.method != "GET":
            return None
        return Response(200, {"data": self._component(row)})

    # -- metrics and points ------------------------------------------------------------

    def _visible_metric(self, metric_id: str, authenticated: bool) -> dict[str, Any] | None:
        row = self.metrics.get(int(metric_id)) if metric_id.isdigit() else None
        if row is None or row["visible"] == 2 or (row["visible"] == 0 and not authenticated):
            return None
        return row

    def _metrics(
        self, rest: list[str], request: Request, body: dict[str, Any], authenticated: bool
    ) -> Response | None:
        method = request.method
        if not rest:
            if method == "GET":
                rows = [
                    m
                    for m in self.metrics.values()
                    if self._visible_metric(str(m["id"]), authenticated)
                ]
                rows.sort(key=lambda m: (m["created_at"], m["id"]), reverse=True)
                return self._page([self._metric(m) for m in rows], request)
            return self._create_metric(body) if method == "POST" else None
        metric = self._visible_metric(rest[0], authenticated)
        if metric is None:
            return message(404, "Not Found")
        if rest[1:] == [] and method == "GET":
            return Response(200, {"data": self._metric(metric)})
        if rest[1:] == ["points"] and method == "GET":
            rows = list(self.points[metric["id"]])
            sort = request.query.get("sort", "id")
            key = sort.lstrip("-")
            if key not in ("id", "value", "created_at"):
                return message(400, f"Requested sort(s) `{sort}` is not allowed.")
            rows.sort(key=lambda p: (p[key], p["id"]), reverse=sort.startswith("-"))
            return self._page([self._point(p) for p in rows], request)
        if rest[1:] == ["points"] and method == "POST":
            return self._add_point(metric, body)
        if len(rest) == 3 and rest[1] == "points" and method == "DELETE":
            before = len(self.points[metric["id"]])
            self.points[metric["id"]] = [
                p for p in self.points[metric["id"]] if str(p["id"]) != rest[2]
            ]
            if len(self.points[metric["id"]]) == before:
                return message(404, "Not Found")
            return Response(204)
        return None

    def _create_metric(self, body: dict[str, Any]) -> Response:
        problems = {
            key: f"The {key} field is required." for key in ("name", "suffix") if not body.get(key)
        }
        if "default_value" in body:
            # 'decimal:1,2' checks the number as PHP prints it: 0 and 0.0 both fail.
            text = str(body["default_value"])
            if "." not in text or not 1 <= len(text.split(".")[1]) <= 2:
                problems["default_value"] = "The default value field must have 1-2 decimal places."
        threshold = body.get("threshold", 5)
        if not _is_int(threshold) or not 0 <= threshold <= 60 or (threshold and 60 % threshold):
            problems["threshold"] = "The threshold must be a factor of 60."
        if body.get("calc_type") not in (None, 0, 1):
            problems["calc_type"] = "The selected calc type is invalid."
        if problems:
            return unprocessable(**problems)
        metric_id = self._id()
        self.add_metric(metric_id, threshold=threshold, name=body["name"])
        self.metrics[metric_id].update(
            suffix=body["suffix"],
            calc_type=body.get("calc_type", 0) or 0,
            places=body.get("places", 2),
        )
        return Response(201, {"data": self._metric(self.metrics[metric_id])})

    def _timestamp(self, value: object) -> float | None:
        """FlexibleDateTimeCast: a unix int/float, or a date string (app zone if bare)."""
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return float(value)
        if not isinstance(value, str) or value.strip().isdigit():
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self.app_timezone)
        return parsed.timestamp()

    def _add_point(self, metric: dict[str, Any], body: dict[str, Any]) -> Response:
        value = body.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return unprocessable(value="The value field is required.")
        ts: float | None = None
        if body.get("timestamp") is not None:
            ts = self._timestamp(body["timestamp"])
            if ts is None:
                return unprocessable(timestamp="The timestamp must be a date or Unix timestamp.")
        when = ts if ts is not None else self.now
        points = self.points[metric["id"]]
        latest = max(points, key=lambda p: p["created_at"], default=None)
        if latest is not None:
            # withinThreshold: start-of-minutes less than `threshold` minutes apart.
            apart = abs(int(latest["created_at"]) // 60 - int(when) // 60)
            if apart < int(metric["threshold"]):
                latest["counter"] += 1
                latest["updated_at"] = self.now
                return Response(201, {"data": self._point(latest)})
        row = {
            "id": self._id(),
            "metric_id": metric["id"],
            "value": float(value),
            "counter": 1,
            "created_at": int(30 * round(when / 30)),
            "updated_at": self.now,
        }
        points.append(row)
        return Response(201, {"data": self._point(row)})

    # -- incidents ---------------------------------------------------------------------

    def _incidents(
        self, rest: list[str], request: Request, body: dict[str, Any]
    ) -> Response | None:
        method = request.method
        if not rest:
            return self._create_incident(body) if method == "POST" else None
        row = self.incidents.get(int(rest[0])) if rest[0].isdigit() else None
        if row is None:
            return message(404, f"No query results for model [Cachet\\Models\\Incident] {rest[0]}")
        if rest[1:] == ["updates"]:
            if method == "GET":
                return self._page([self._update(u) for u in row["updates"]], request)
            return self._add_update(row, body) if method == "POST" else None
        if rest[1:]:
            return None
        if method == "PUT":
            status = body.get("status")
            if status is not None and status not in INCIDENT_STATUSES:
                return unprocessable(status="The selected status is invalid.")
            for key in ("name", "message", "stickied", "notifications"):
                if body.get(key) is not None:
                    row[key] = body[key]
            if status is not None:
                row["status"] = status
            if body.get("visible") is not None:
                row["visible"] = int(bool(body["visible"]))
            row["updated_at"] = self.now
        elif method != "GET":
            return None
        return Response(200, {"data": self._incident(row)})

    def _create_incident(self, body: dict[str, Any]) -> Response:
        problems: dict[str, str] = {}
        if not body.get("name"):
            problems["name"] = "The name field is required."
        if body.get("status") not in INCIDENT_STATUSES:
            problems["status"] = "The status field is required."
        if not body.get("message") and not body.get("template"):
            problems["message"] = "The message field is required when template is not present."
        component_id = body.get("component_id")
        if component_id is not None and component_id not in self.components:
            problems["component_id"] = "The selected component id is invalid."
        if component_id is not None and body.get("component_status") not in COMPONENT_STATUSES:
            problems["component_status"] = "The selected component status is invalid."
        for key in ("visible", "stickied", "notifications"):
            if key in body and _boolean(body[key]) is None:
                problems[key] = f"The {key} field must be true or false."
        if problems:
            return unprocessable(**problems)
        row: dict[str, Any] = {
            "id": self._id(),
            "name": body["name"],
            "message": body.get("message", ""),
            "status": body["status"],
            # CreateIncidentRequestData: visible and notifications default to false.
            "visible": int(bool(_boolean(body.get("visible", False)))),
            "stickied": bool(_boolean(body.get("stickied", False))),
            "notifications": bool(_boolean(body.get("notifications", False))),
            "components": {component_id: body["component_status"]} if component_id else {},
            "created_at": self.now,
            "updated_at": self.now,
            "updates": [],
        }
        self.incidents[row["id"]] = row
        if row["notifications"] and row["visible"] == 1:
            self.notifications.append(("incident", row["id"]))
        return Response(201, {"data": self._incident(row)})

    def _add_update(self, incident: dict[str, Any], body: dict[str, Any]) -> Response:
        problems: dict[str, str] = {}
        if body.get("status") not in INCIDENT_STATUSES:
            problems["status"] = "The status field is required."
        if not isinstance(body.get("message"), str) or not body["message"]:
            problems["message"] = "The message field is required."
        if problems:
            return unprocessable(**problems)
        update = {
            "id": self._id(),
            "incident_id": incident["id"],
            "status": body["status"],
            "message": body["message"],
            "created_at": self.now,
        }
        incident["updates"].append(update)
        incident["status"] = body["status"]  # SyncIncidentStatus
        incident["updated_at"] = self.now
        if incident["notifications"] and incident["visible"] == 1:
            self.notifications.append(("incident_update", incident["id"]))
        return Response(201, {"data": self._update(update)})


def _ability(method: str, parts: list[str]) -> str | None:
    """The Sanctum ability a write route guards."""
    if parts == ["subscribers"]:
        return "subscribers.manage"
    if parts[0] == "components":
        return "components.manage"
    if parts[0] == "metrics" and len(parts) >= 3 and parts[2] == "points":
        return "metric-points.delete" if method == "DELETE" else "metric-points.manage"
    if parts[0] == "metrics":
        return "metrics.manage"
    if parts[0] == "incidents" and len(parts) >= 3 and parts[2] == "updates":
        return "incident-updates.manage"
    if parts[0] == "incidents":
        return "incidents.manage"
    return None
