"""Sans-IO core: component status from the newest results, with hysteresis.

``down_after`` consecutive ``down`` results → major outage; any single ``down`` or
``unconfirmed`` short of that → performance issues; ``up`` → operational, but leaving a
degraded status needs ``up_after`` consecutive ``up`` results. ``unknown`` changes
nothing. Results are applied one by one, so a short outage inside one poll is seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import IntEnum

from statusbridge.pingdom_cachet.uptime import Result, normalise


class ComponentStatus(IntEnum):
    """Cachet 2.x component statuses (2.4's 0 "unknown" is never set by us)."""

    OPERATIONAL = 1
    PERFORMANCE_ISSUES = 2
    PARTIAL_OUTAGE = 3
    MAJOR_OUTAGE = 4


@dataclass(frozen=True, slots=True)
class Hysteresis:
    """The component status and the streaks that decide when it changes, kept between polls."""

    status: ComponentStatus | None = None
    down_streak: int = 0
    up_streak: int = 0
    # Time of the newest result already applied; older ones are skipped.
    cursor: int = 0
    # When ``status`` was entered (result time), for incident texts.
    changed_at: int | None = None


def advance(
    memory: Hysteresis, results: Iterable[Result], *, down_after: int, up_after: int
) -> Hysteresis:
    """Apply the results newer than ``memory.cursor``, oldest first."""
    for result in normalise(results):
        if result.time <= memory.cursor:
            continue
        memory = _apply(memory, result, down_after=down_after, up_after=up_after)
    return memory


def _apply(memory: Hysteresis, result: Result, *, down_after: int, up_after: int) -> Hysteresis:
    down, up = memory.down_streak, memory.up_streak
    if result.status == "down":
        down, up = down + 1, 0
    elif result.status == "up":
        down, up = 0, up + 1
    elif result.status == "unconfirmed":
        up = 0
    else:
        return replace(memory, cursor=result.time)
    current = memory.status
    if down >= down_after:
        new = ComponentStatus.MAJOR_OUTAGE
    elif result.status in ("down", "unconfirmed"):
        degraded = current == ComponentStatus.MAJOR_OUTAGE
        new = ComponentStatus.MAJOR_OUTAGE if degraded else ComponentStatus.PERFORMANCE_ISSUES
    elif current not in (None, ComponentStatus.OPERATIONAL) and up < up_after:
        new = current
    else:
        new = ComponentStatus.OPERATIONAL
    changed_at = result.time if new != current else memory.changed_at
    return Hysteresis(new, down, up, result.time, changed_at)
