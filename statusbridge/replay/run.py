"""Replaying a recorded day through the Pingdom → Cachet job, nothing sent anywhere.

:func:`replay` steps a clock through the recording one check interval at a time and
runs :func:`~statusbridge.pingdom_cachet.sync.sync_check` at each step, with the real
Pingdom client reading the recording (:class:`~.recording.ReplayTransport`), the real
Cachet client writing to a :class:`~.memory.MemoryCachet` that prints each point,
status change and incident, and the state in memory. Then it draws the chart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from statusbridge.config import CachetSettings, CheckSettings, PingdomSettings
from statusbridge.pingdom_cachet.cachet import CachetClient, Component, Metric
from statusbridge.pingdom_cachet.pingdom import PingdomClient
from statusbridge.pingdom_cachet.state import StateFile
from statusbridge.pingdom_cachet.sync import SyncContext, sync_check
from statusbridge.replay.memory import MemoryCachet, Written
from statusbridge.replay.plot import draw
from statusbridge.replay.recording import Recording, ReplayTransport, load_recording

# The check a replay runs when the config has none: a component and two 5-minute metrics.
DEFAULT_CHECK = CheckSettings(
    pingdom_check_id=1,
    name="Website",
    cachet_component_id=1,
    response_time_metric_id=1,
    uptime_metric_id=2,
    interval_s=60,
    incidents=True,
    backfill_hours=1,
)
DEFAULT_THRESHOLD_MIN = 5
_UNUSED_URL = "http://replay.invalid"  # nothing is sent: the transports answer in memory
_UNUSED_TOKEN = SecretStr("replay")  # the replay transport reads no token


@dataclass(frozen=True)
class ReplayReport:
    """What a replay wrote, and where its chart went (or why it did not)."""

    results: int
    points: int
    status_changes: int
    incidents: int
    chart: str


async def _nothing(_seconds: float) -> None:
    """The replay never waits."""


@contextmanager
def _quiet() -> Iterator[None]:
    # A day is over a thousand sync runs: their info lines would drown the replay's own.
    logger = logging.getLogger("statusbridge.pingdom_cachet")
    level = logger.level
    logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(level)


async def replay(
    path: Path,
    *,
    check: CheckSettings | None = None,
    png: Path,
    emit: Callable[[str], None] = print,
) -> ReplayReport:
    """Replay the recording at ``path`` through ``check`` (default :data:`DEFAULT_CHECK`)."""
    recording = load_recording(path)
    check = check or DEFAULT_CHECK
    now = [float(recording.start)]
    cachet_api = _memory_cachet(check, clock=lambda: now[0], emit=emit)
    transport = ReplayTransport(recording, lambda: now[0], name=check.label)
    async with httpx.AsyncClient(transport=transport) as http:
        pingdom = PingdomClient(
            http, PingdomSettings(base_url=_UNUSED_URL, token=_UNUSED_TOKEN), sleep=_nothing
        )
        cachet = CachetClient(
            http, CachetSettings(base_url=_UNUSED_URL), sleep=_nothing, api=cachet_api
        )
        with StateFile(Path(":memory:")) as state, _quiet():
            context = SyncContext(pingdom, cachet, state, clock=lambda: now[0])
            for step in _steps(recording, check):
                now[0] = step
                await sync_check(check, context)
    written = cachet_api.written
    reason = draw(
        written,
        png,
        uptime_id=check.uptime_metric_id or 0,
        response_id=check.response_time_metric_id or 0,
        title=f"statusbridge replay of {path.name}: {check.label}",
    )
    return ReplayReport(
        results=len(recording.results),
        points=sum(len(series) for series in written.points.values()),
        status_changes=len(written.statuses),
        incidents=sum(kind == "opened" for _, kind in written.incidents),
        chart=str(png) if reason is None else f"not drawn: {reason}",
    )


def _memory_cachet(
    check: CheckSettings, *, clock: Callable[[], float], emit: Callable[[str], None]
) -> MemoryCachet:
    metrics = {}
    for metric_id, name, suffix in (
        (check.response_time_metric_id, f"{check.label} response time", "ms"),
        (check.uptime_metric_id, f"{check.label} uptime", "%"),
    ):
        if metric_id is not None:
            metrics[metric_id] = Metric(metric_id, name, DEFAULT_THRESHOLD_MIN, suffix)
    component = Component(check.cachet_component_id or 1, check.label, 1, True)
    return MemoryCachet(component=component, metrics=metrics, clock=clock, emit=emit)


def _steps(recording: Recording, check: CheckSettings) -> Iterator[float]:
    """The clock of each run: from the first result to past the last complete bucket."""
    step = max(60.0, check.interval_s)
    last = recording.end + DEFAULT_THRESHOLD_MIN * 60 + check.settle_s + step
    at = float(recording.start) + step
    while at <= last:
        yield at
        at += step


__all__ = ["ReplayReport", "Written", "replay"]
