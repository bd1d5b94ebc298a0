"""A Cachet that lives in memory and says what statusbridge writes to it.

:class:`MemoryCachet` implements :class:`~statusbridge.pingdom_cachet.cachet.CachetApi`:
the sync and its component/incident half run against it exactly as against a real
Cachet, and every write becomes one printed line (``point``, ``status``, ``incident``)
and a record that the replay's chart draws from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from statusbridge.pingdom_cachet.cachet import (
    INCIDENT_FIXED,
    INCIDENT_INVESTIGATING,
    Component,
    Incident,
    Metric,
    MetricSpec,
    Point,
)
from statusbridge.pingdom_cachet.cachet.api import StatusMails
from statusbridge.pingdom_cachet.status import ComponentStatus


def when(timestamp: float) -> str:
    """A unix time as the replay prints it."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


@dataclass
class Written:
    """What the replay wrote: points per metric, statuses and incidents over time."""

    points: dict[int, dict[int, float]] = field(default_factory=dict)
    statuses: list[tuple[float, int]] = field(default_factory=list)
    incidents: list[tuple[float, str]] = field(default_factory=list)


class MemoryCachet:
    """One component and two metrics (response time, uptime) in memory."""

    version: Literal["2.4"] = "2.4"
    status_mails: StatusMails = "unless_silent"

    def __init__(
        self,
        *,
        component: Component,
        metrics: dict[int, Metric],
        clock: Callable[[], float],
        emit: Callable[[str], None],
    ) -> None:
        self._component = component
        self._metrics = metrics
        self._clock = clock
        self._emit = emit
        self._incidents: dict[int, Incident] = {}
        self.written = Written(points={metric_id: {} for metric_id in metrics})

    async def ping(self) -> None:
        """Always there."""

    async def server_version(self) -> str:
        """The replay's own."""
        return "replay"

    async def verify_token(self) -> str:
        """No token to verify."""
        return "no token needed"

    async def component(self, component_id: int) -> Component:
        """The one component."""
        return self._component

    async def components(self) -> AsyncIterator[Component]:
        """The one component."""
        yield self._component

    async def set_component_status(
        self, component: Component, status: int, *, notify: bool
    ) -> None:
        """Record and print a status change."""
        before = ComponentStatus(component.status or 1).name.lower().replace("_", " ")
        after = ComponentStatus(status).name.lower().replace("_", " ")
        self._component = Component(component.id, component.name, status, component.enabled)
        self.written.statuses.append((self._clock(), status))
        self._emit(f"status    {when(self._clock())}  {component.name}: {before} → {after}")

    async def metric(self, metric_id: int) -> Metric:
        """One of the two metrics."""
        return self._metrics[metric_id]

    async def metrics(self) -> AsyncIterator[Metric]:
        """Both metrics."""
        for metric in self._metrics.values():
            yield metric

    async def create_metric(self, spec: MetricSpec) -> Metric:
        """Not needed by a replay."""
        raise NotImplementedError("the replay's Cachet has its metrics already")

    async def points(self, metric_id: int, *, per_page: int = 100) -> AsyncIterator[Point]:
        """The metric's points, newest first."""
        for number, (timestamp, value) in enumerate(
            sorted(self.written.points[metric_id].items(), reverse=True)
        ):
            yield Point(number, value, 1, timestamp)

    async def point_times(self, metric_id: int, since: int) -> set[int]:
        """Times of the points at or after ``since``."""
        return {t for t in self.written.points[metric_id] if t >= since}

    async def add_point(self, metric_id: int, value: float, timestamp: int) -> Point:
        """Record and print a point."""
        metric = self._metrics[metric_id]
        self.written.points[metric_id][timestamp] = value
        self._emit(f"point     {when(timestamp)}  {metric.name:<28} {value:>9.2f} {metric.suffix}")
        return Point(len(self.written.points[metric_id]), value, 1, timestamp)

    async def incident(self, incident_id: int) -> Incident:
        """One incident the replay opened."""
        return self._incidents[incident_id]

    async def create_incident(
        self, name: str, message: str, *, notify: bool, component: tuple[int, int] | None
    ) -> Incident:
        """Record and print a new incident."""
        incident = Incident(len(self._incidents) + 1, name, INCIDENT_INVESTIGATING, "0", 1)
        self._incidents[incident.id] = incident
        self.written.incidents.append((self._clock(), "opened"))
        self._emit(f"incident  {when(self._clock())}  opened #{incident.id} {name!r}: {message}")
        return incident

    async def resolve_incident(self, incident: Incident, message: str, *, notify: bool) -> Incident:
        """Record and print a resolution."""
        fixed = Incident(incident.id, incident.name, INCIDENT_FIXED, "0", 1)
        self._incidents[incident.id] = fixed
        self.written.incidents.append((self._clock(), "resolved"))
        self._emit(f"incident  {when(self._clock())}  resolved #{incident.id}: {message}")
        return fixed
