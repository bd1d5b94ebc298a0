"""What statusbridge needs from any Cachet: the :class:`CachetApi` protocol and its values.

Cachet 2.3, 2.4 and 3 differ in paths, auth, bodies, ordering, rounding and who gets
mailed (docs/cachet-versions.md); each adapter (:mod:`.v2`, :mod:`.v3`) hides that behind
this one interface, in the values below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

INCIDENT_INVESTIGATING = 1
INCIDENT_FIXED = 4

ApiVersion = Literal["2.3", "2.4", "3"]
# Who a component status change mails, per version: 2.3 every subscriber on every
# update, 2.4 unless the update is silent, 3 nobody (webhooks only).
StatusMails = Literal["always", "unless_silent", "never"]


@dataclass(frozen=True, slots=True)
class Component:
    """A Cachet component (only the fields statusbridge uses)."""

    id: int
    name: str
    status: int | None
    enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class Metric:
    """A Cachet metric; ``threshold`` is minutes per chart point (divides 60)."""

    id: int
    name: str
    threshold: int | None
    suffix: str = ""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A metric to create: average (``calc_type`` 1) of ``threshold``-minute points."""

    name: str
    suffix: str
    threshold: int
    places: int = 2
    description: str = ""


@dataclass(frozen=True, slots=True)
class Point:
    """A stored metric point; times in unix seconds as Cachet reports them."""

    id: int
    value: float | None
    counter: int
    created_at: int | None
    updated_at: int | None = None


@dataclass(frozen=True, slots=True)
class Incident:
    """A Cachet incident; ``updated_at`` tells whether someone edited it since.

    ``visible`` and ``stickied`` are kept so that an update can send them back (2.x
    resets both when a ``PUT`` leaves them out).
    """

    id: int
    name: str
    status: int | None
    updated_at: str | None
    visible: int | None = None
    stickied: bool | None = None


class CachetApi(Protocol):
    """One Cachet API version, as statusbridge uses it."""

    @property
    def version(self) -> ApiVersion:
        """Which API this is."""
        ...

    @property
    def status_mails(self) -> StatusMails:
        """Who a component status change mails."""
        ...

    async def ping(self) -> None:
        """The API answers."""

    async def server_version(self) -> str:
        """The version the server reports (2.x asks GitHub for this, so it may fail)."""
        ...

    async def verify_token(self) -> str:
        """Raise :class:`~statusbridge.exceptions.CachetError` 401 for a refused token."""
        ...

    async def component(self, component_id: int) -> Component:
        """One component."""
        ...

    def components(self) -> AsyncIterator[Component]:
        """Every component the token can see."""
        ...

    async def set_component_status(
        self, component: Component, status: int, *, notify: bool
    ) -> None:
        """Change the status; mail subscribers only if ``notify`` (where Cachet lets us)."""

    async def metric(self, metric_id: int) -> Metric:
        """One metric."""
        ...

    def metrics(self) -> AsyncIterator[Metric]:
        """Every metric the token can see."""
        ...

    async def create_metric(self, spec: MetricSpec) -> Metric:
        """Create an average metric."""
        ...

    def points(self, metric_id: int, *, per_page: int = 100) -> AsyncIterator[Point]:
        """The metric's points, in the order this version lists them."""
        ...

    async def point_times(self, metric_id: int, since: int) -> set[int]:
        """Times of the points at or after ``since``, each as the bucket start it holds."""
        ...

    async def add_point(self, metric_id: int, value: float, timestamp: int) -> Point:
        """Post one point for the unix time ``timestamp``."""
        ...

    async def incident(self, incident_id: int) -> Incident:
        """One incident."""
        ...

    async def create_incident(
        self, name: str, message: str, *, notify: bool, component: tuple[int, int] | None
    ) -> Incident:
        """Open an incident (Investigating), linked to ``(component id, status)``."""
        ...

    async def resolve_incident(self, incident: Incident, message: str, *, notify: bool) -> Incident:
        """Mark the incident Fixed, keeping what a human set on it."""
        ...
