"""statusbridge's one Cachet client, whatever the version behind ``[cachet] base_url``.

:class:`CachetClient` picks its adapter once per process, on first use: the configured
``api_version``, or (``"auto"``) the version :func:`~.detect.detect_version` finds with
reads only, logged as ``cachet_api``. A failed probe fails that run and the next run
probes again. Every method forwards to the adapter (:class:`~.api.CachetApi`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import structlog

from statusbridge.config import CachetSettings
from statusbridge.pingdom_cachet.cachet import v2, v3
from statusbridge.pingdom_cachet.cachet.api import (
    ApiVersion,
    CachetApi,
    Component,
    Incident,
    Metric,
    MetricSpec,
    Point,
)
from statusbridge.pingdom_cachet.cachet.detect import detect_version
from statusbridge.pingdom_cachet.cachet.http import CachetHttp, Sleep

log = structlog.get_logger(__name__)


class CachetClient:
    """Reads and writes components, metric points and incidents; HTTP client injected.

    ``sleep`` is what a 429 waits with (tests pass one that does not wait); ``api`` an
    adapter to use instead of one chosen over HTTP (the replay's in-memory Cachet).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: CachetSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        api: CachetApi | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        self._sleep = sleep
        self._api: CachetApi | None = api
        self._lock = asyncio.Lock()

    @property
    def api_version(self) -> ApiVersion | None:
        """The API version in use, None until the first call."""
        return self._api.version if self._api is not None else None

    async def api(self) -> CachetApi:
        """The adapter for this Cachet, chosen on the first call."""
        if self._api is None:
            async with self._lock:
                if self._api is None:
                    self._api = await self._open()
        return self._api

    async def _open(self) -> CachetApi:
        settings = self._settings
        version: ApiVersion
        how = "configured"
        if settings.api_version == "auto":
            # Both auth headers: the probe does not know yet which one this Cachet reads.
            both = {**v2.headers(settings.token), **v3.headers(settings.token)}
            version = await detect_version(self._transport(both))
            how = "probed"
        else:
            version = settings.api_version
        log.info("cachet_api", version=version, how=how, base_url=settings.base_url)
        if version == "3":
            return v3.Cachet3(self._transport(v3.headers(settings.token)), settings.timezone)
        return v2.Cachet2(self._transport(v2.headers(settings.token)), version)

    def _transport(self, headers: dict[str, str]) -> CachetHttp:
        return CachetHttp(self._http, self._settings, headers=headers, sleep=self._sleep)

    # -- forwarding to the adapter -----------------------------------------------------

    async def ping(self) -> None:
        """The API answers."""
        await (await self.api()).ping()

    async def version(self) -> str:
        """The version the server reports."""
        return await (await self.api()).server_version()

    async def verify_token(self) -> str:
        """Raise a 401 :class:`~statusbridge.exceptions.CachetError` for a refused token."""
        return await (await self.api()).verify_token()

    async def component(self, component_id: int) -> Component:
        """One component."""
        return await (await self.api()).component(component_id)

    async def components(self) -> AsyncIterator[Component]:
        """Every component the token can see."""
        async for component in (await self.api()).components():
            yield component

    async def set_component_status(
        self, component: Component | int, status: int, *, notify: bool = False
    ) -> None:
        """Change a component's status (read first when only its id is given)."""
        api = await self.api()
        if isinstance(component, int):
            component = await api.component(component)
        await api.set_component_status(component, status, notify=notify)

    async def metric(self, metric_id: int) -> Metric:
        """One metric, with its ``threshold`` (bucket minutes)."""
        return await (await self.api()).metric(metric_id)

    async def metrics(self) -> AsyncIterator[Metric]:
        """Every metric the token can see."""
        async for metric in (await self.api()).metrics():
            yield metric

    async def create_metric(self, spec: MetricSpec) -> Metric:
        """Create an average metric."""
        return await (await self.api()).create_metric(spec)

    async def points(self, metric_id: int, *, per_page: int = 100) -> AsyncIterator[Point]:
        """The metric's points, in the order this version lists them."""
        async for point in (await self.api()).points(metric_id, per_page=per_page):
            yield point

    async def point_times(self, metric_id: int, since: int) -> set[int]:
        """Times of the points at or after ``since``."""
        return await (await self.api()).point_times(metric_id, since)

    async def add_point(self, metric_id: int, value: float, timestamp: int) -> Point:
        """Post one point with an int unix ``timestamp``."""
        return await (await self.api()).add_point(metric_id, value, timestamp)

    async def incident(self, incident_id: int) -> Incident:
        """One incident."""
        return await (await self.api()).incident(incident_id)

    async def create_incident(
        self,
        name: str,
        message: str,
        *,
        notify: bool = True,
        component: tuple[int, int] | None = None,
    ) -> Incident:
        """Open an incident (Investigating), linked to ``(component id, status)``."""
        api = await self.api()
        return await api.create_incident(name, message, notify=notify, component=component)

    async def resolve_incident(
        self, incident: Incident | int, message: str, *, notify: bool = True
    ) -> Incident:
        """Mark the incident Fixed (read first when only its id is given)."""
        api = await self.api()
        if isinstance(incident, int):
            incident = await api.incident(incident)
        return await api.resolve_incident(incident, message, notify=notify)
