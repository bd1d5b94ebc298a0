"""StartTracker: background engine work waits for a quiet node, never past its bound."""

from __future__ import annotations

import asyncio
import time

from ecs.deferral import StartTracker, give_way_to_starts


async def test_a_node_where_nothing_started_is_quiet_at_once() -> None:
    started = time.monotonic()
    await StartTracker(quiet_s=5).quiet(10)
    assert time.monotonic() - started < 0.1


async def test_quiet_waits_for_the_start_and_then_the_gap() -> None:
    tracker = StartTracker(quiet_s=0.2)
    window = tracker.begin()
    waiting = asyncio.create_task(tracker.quiet(10))
    await asyncio.sleep(0.1)
    assert not waiting.done(), "a task is starting"
    closed = time.monotonic()
    window.close()
    window.close()  # idempotent: a second close must not count another task out
    await waiting
    assert 0.18 <= time.monotonic() - closed < 1.0


async def test_a_start_inside_the_gap_begins_the_gap_again() -> None:
    """A client sending its tasks back to back leaves gaps of milliseconds: no work there."""
    tracker = StartTracker(quiet_s=0.2)
    tracker.begin().close()
    waiting = asyncio.create_task(tracker.quiet(10))
    await asyncio.sleep(0.1)
    tracker.begin().close()
    renewed = time.monotonic()
    await waiting
    assert time.monotonic() - renewed >= 0.18


async def test_a_node_never_quiet_lets_the_work_go_at_its_bound() -> None:
    tracker = StartTracker(quiet_s=0.05)
    tracker.begin()  # never closed: always a task starting
    asked = time.monotonic()
    await give_way_to_starts(tracker.quiet, asked, max_defer_s=0.3)
    assert 0.28 <= time.monotonic() - asked < 1.0


async def test_work_asked_long_ago_does_not_wait_at_all() -> None:
    tracker = StartTracker(quiet_s=5)
    tracker.begin()
    started = time.monotonic()
    await give_way_to_starts(tracker.quiet, started - 2.0, max_defer_s=1.0)
    assert time.monotonic() - started < 0.05
