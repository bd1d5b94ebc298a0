"""An in-process Cachet 2.3 / 2.4 API v1 on 127.0.0.1, following the documented contract.

Point ``created_at`` = ``timestamp`` rounded to the nearest 30 s; a point whose value
equals one created within the metric's threshold of *now* only bumps that point's
``counter``; ``timestamp`` must be an int; lists paginate (``per_page`` 20, newest
points first); validation errors answer 400 with ``errors[].meta.details``; writes need
``X-Cachet-Token``; dates render in the server's zone (UTC+2) unless ``Time-Zone: UTC``;
``POST /incidents/{id}/updates`` is a 404 on 2.3.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tests.statusbridge.fake_server import FakeServer, Request, Response

SERVER_ZONE = timezone(timedelta(hours=2))


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


def not_found() -> Response:
    """Cachet's 404 body."""
    return Response(
        404,
        {
            "errors": [
                {
                    "status": 404,
                    "title": "Not Found",
                    "detail": "The requested resource could not be found.",
                }
            ]
        },
    )


class FakeCachet(FakeServer):
    """Components, metrics, points and incidents in memory; ``now`` is settable."""

    def __init__(self, *, version: str = "2.4", token: str = "cachet-token") -> None:  # noqa: S107 - a fixture token
        super().__init__()
        self.version = version
        self.token = token
        self.now = 1_700_000_000.0
        self.down = False
        self.components: dict[int, dict[str, Any]] = {}
        self.metrics: dict[int, dict[str, Any]] = {}
        self.points: dict[int, list[dict[str, Any]]] = {}
        self.incidents: dict[int, dict[str, Any]] = {}
        self.status_puts: list[tuple[int, int]] = []
        self._next_id = 1

    @property
    def base_url(self) -> str:
        """What goes into ``[cachet] base_url``."""
        return f"{self.url}/api/v1"

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_component(self, component_id: int, name: str = "Website", status: int = 1) -> None:
        """Create a component."""
        self.components[component_id] = {"id": component_id, "name": name, "status": status}

    def add_metric(self, metric_id: int, *, threshold: int = 1, name: str = "m") -> None:
        """Create a metric with the given threshold (minutes)."""
        self.metrics[metric_id] = {
            "id": metric_id,
            "name": name,
            "threshold": threshold,
            "calc_type": 1,
            "default_value": 0,
        }
        self.points.setdefault(metric_id, [])

    def point_rows(self, metric_id: int) -> list[tuple[int, float, int]]:
        """(created_at, value, counter) of every stored point, oldest first."""
        rows = [(p["created_at"], p["value"], p["counter"]) for p in self.points[metric_id]]
        return sorted(rows)

    def _date(self, ts: float, request: Request) -> str:
        zone = UTC if request.headers.get("time-zone") == "UTC" else SERVER_ZONE
        return datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S")

    def _render(self, item: dict[str, Any], request: Request) -> dict[str, Any]:
        out = dict(item)
        for key in ("created_at", "updated_at"):
            if isinstance(out.get(key), int | float):
                out[key] = self._date(out[key], request)
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
        return Response(200, {"meta": meta, "data": [self._render(i, request) for i in chunk]})

    def handle(self, request: Request) -> Response:
        """Route one request."""
        if self.down:
            return Response(503, {"errors": [{"status": 503, "title": "Service Unavailable"}]})
        if request.method != "GET" and request.headers.get("x-cachet-token") != self.token:
            return Response(401, {"errors": [{"status": 401, "title": "Unauthorized"}]})
        parts = request.path.removeprefix("/api/v1").strip("/").split("/")
        body = request.body if isinstance(request.body, dict) else {}
        if parts == ["ping"]:
            return Response(200, {"data": "Pong!"})
        if parts == ["version"]:
            return Response(200, {"meta": {"on_latest": True}, "data": f"{self.version}.0"})
        if parts[0] == "components" and len(parts) == 2:
            return self._component(int(parts[1]), request, body)
        if parts[0] == "metrics" and len(parts) >= 2 and int(parts[1]) in self.metrics:
            metric_id = int(parts[1])
            if len(parts) == 2:
                return Response(200, {"data": self.metrics[metric_id]})
            if parts[2:] == ["points"] and request.method == "GET":
                newest = sorted(
                    self.points[metric_id], key=lambda p: (p["created_at"], p["id"]), reverse=True
                )
                return self._page(newest, request)
            if parts[2:] == ["points"] and request.method == "POST":
                return self._add_point(metric_id, body, request)
        if parts == ["incidents"] and request.method == "POST":
            return self._create_incident(body, request)
        if parts[0] == "incidents" and len(parts) >= 2 and int(parts[1]) in self.incidents:
            return self._incident(int(parts[1]), parts[2:], request, body)
        return not_found()

    def _component(self, component_id: int, request: Request, body: dict[str, Any]) -> Response:
        component = self.components.get(component_id)
        if component is None:
            return not_found()
        if request.method == "PUT":
            status = body.get("status")
            low = 0 if self.version == "2.4" else 1
            if not isinstance(status, int) or not low <= status <= 4:
                return validation_error("The status format is invalid.")
            component["status"] = status
            self.status_puts.append((component_id, status))
        return Response(200, {"data": component})

    def _add_point(self, metric_id: int, body: dict[str, Any], request: Request) -> Response:
        value, ts = body.get("value"), body.get("timestamp", self.now)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return validation_error("The value field is required.")
        if isinstance(ts, str) and ts.isdigit():
            ts = int(ts)
        if not isinstance(ts, int) or isinstance(ts, bool):
            return validation_error("The created at must be an integer.")
        threshold = self.metrics[metric_id]["threshold"]
        # 2.4: same value created within threshold-1 minutes of the start of this minute.
        since = (self.now - self.now % 60) - (threshold - 1) * 60
        for point in self.points[metric_id]:
            if point["value"] == float(value) and point["created_at"] >= since:
                point["counter"] += 1
                return Response(200, {"data": self._render(point, request)})
        created = 30 * math.floor(ts / 30 + 0.5)
        point = {
            "id": self._id(),
            "metric_id": metric_id,
            "value": float(value),
            "counter": 1,
            "created_at": created,
            "updated_at": created,
        }
        self.points[metric_id].append(point)
        return Response(200, {"data": self._render(point, request)})

    def _create_incident(self, body: dict[str, Any], request: Request) -> Response:
        problems = [
            f"The {key} field is required." for key in ("name", "message") if not body.get(key)
        ]
        if not isinstance(body.get("status"), int) or not 0 <= body["status"] <= 4:
            problems.append("The status format is invalid.")
        if problems:
            return validation_error(*problems)
        incident = {
            "id": self._id(),
            "name": body["name"],
            "message": body["message"],
            "status": body["status"],
            "visible": body.get("visible", 1),
            "created_at": self.now,
            "updated_at": self.now,
            "updates": [],
        }
        self.incidents[incident["id"]] = incident
        return Response(200, {"data": self._render(incident, request)})

    def _incident(
        self, incident_id: int, rest: list[str], request: Request, body: dict[str, Any]
    ) -> Response:
        incident = self.incidents[incident_id]
        if rest == ["updates"] and request.method == "POST":
            if self.version != "2.4":
                return not_found()
            if not isinstance(body.get("status"), int) or not body.get("message"):
                return validation_error("The status format is invalid.")
            incident["updates"].append(body)
            incident["status"] = body["status"]
            incident["updated_at"] = self.now
            return Response(200, {"data": {"id": self._id(), **body}})
        if rest:
            return not_found()
        if request.method == "PUT":
            incident.update({k: v for k, v in body.items() if k in ("name", "message", "status")})
            incident["updated_at"] = self.now
        return Response(200, {"data": self._render(incident, request)})
