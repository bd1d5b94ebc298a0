"""Background engine work that gives way to task starts, for a bounded time.

Removing a finished task's container and making a warm pool's next container are engine
work like a start, and on a busy node one running beside a task's start slows that
start. So both wait while a task is starting, but only until ``max_defer_s`` after the
work was *asked for*: under steady load some task is always starting, and an unbounded
wait would let the backlog (live containers, an empty pool) grow for ever.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

# Returns when no task is starting, or after the given seconds (``TaskRunner.starts_done``).
StartsDone = Callable[[float], Awaitable[None]]
MAX_DEFER_S = 1.0


async def give_way_to_starts(
    starts_done: StartsDone | None, asked_at: float, max_defer_s: float = MAX_DEFER_S
) -> None:
    """Wait while tasks are starting, until ``max_defer_s`` after ``asked_at`` (monotonic)."""
    left_s = asked_at + max_defer_s - time.monotonic()
    if starts_done is not None and left_s > 0:
        await starts_done(left_s)
