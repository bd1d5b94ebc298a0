"""Component status hysteresis from the newest results."""

from __future__ import annotations

from statusbridge.pingdom_cachet.status import ComponentStatus, Hysteresis, advance
from statusbridge.pingdom_cachet.uptime import Result

OK = ComponentStatus.OPERATIONAL
SLOW = ComponentStatus.PERFORMANCE_ISSUES
DOWN = ComponentStatus.MAJOR_OUTAGE


def run(statuses: list[str], state: Hysteresis | None = None, **kw: int) -> Hysteresis:
    start = (state.cursor if state else 0) + 60
    results = [Result(start + 60 * i, s, 1) for i, s in enumerate(statuses)]
    return advance(
        state or Hysteresis(), results, down_after=kw.get("down", 2), up_after=kw.get("up", 2)
    )


def test_major_outage_needs_down_after_consecutive_downs() -> None:
    """One down short of down_after is performance issues; the next makes a major outage."""
    assert run(["up", "down"]).status == SLOW
    assert run(["up", "down", "down"]).status == DOWN


def test_unconfirmed_is_performance_issues() -> None:
    """An unconfirmed result marks the component as having performance issues."""
    assert run(["up", "unconfirmed"], up=1).status == SLOW


def test_recovery_needs_up_after_consecutive_ups() -> None:
    """After an outage, one up is not enough with up_after=2; two are."""
    outage = run(["down", "down"])
    assert run(["up"], outage).status == DOWN
    assert run(["up", "up"], outage).status == OK


def test_unknown_and_old_results_change_nothing() -> None:
    """Unknown results and results at or before the cursor leave the status alone."""
    outage = run(["down", "down"])
    assert run(["unknown", "unknown"], outage).status == DOWN
    again = advance(outage, [Result(outage.cursor, "up", 1)], down_after=2, up_after=1)
    assert again == outage


def test_changed_at_is_the_time_of_the_entering_result() -> None:
    """changed_at records when the current status was entered, for incident texts."""
    state = run(["up", "down", "down", "down"])
    assert state.status == DOWN
    assert state.changed_at == 60 + 2 * 60
