"""Background engine work that gives way to task starts, for a bounded time.

Removing a finished task's container and making a warm pool's next container are engine
work like a start, and on a busy node one running beside a task's start slows that
start. So both wait until the node is quiet — no task has been starting for ``QUIET_S``
(a cold task from its create to its start, a warm one until its exec ended) — but only
until ``max_defer_s`` after the work was *asked for*: under steady load some task is
always starting, and an unbounded wait would let the backlog (live containers, an empty
pool) grow for ever. The quiet gap, rather than the first instant with no start, keeps
the work out of the next task of a client that sends its tasks back to back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

# Returns once the node is quiet, or after the given seconds (``StartTracker.quiet``).
Quiet = Callable[[float], Awaitable[None]]
MAX_DEFER_S = 1.0
QUIET_S = 0.1


class StartTracker:
    """Counts the tasks that are starting; tells background work when the node is quiet."""

    def __init__(self, quiet_s: float = QUIET_S) -> None:
        self._quiet_s = quiet_s
        self._starting = 0
        self._none_starting = asyncio.Event()
        self._none_starting.set()
        self._last_start_ended = float("-inf")  # monotonic

    def begin(self) -> StartWindow:
        """A task starts now; close the window it returns when it has started."""
        self._starting += 1
        self._none_starting.clear()
        return StartWindow(self)

    def _end(self) -> None:
        self._starting -= 1
        if not self._starting:
            self._last_start_ended = time.monotonic()
            self._none_starting.set()

    async def quiet(self, timeout_s: float) -> None:
        """Return once no task has been starting for ``quiet_s``, or after ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while True:
                    await self._none_starting.wait()
                    left_s = self._last_start_ended + self._quiet_s - time.monotonic()
                    if left_s <= 0:
                        return
                    await asyncio.sleep(max(left_s, 0.0))


class StartWindow:
    """One task starting, until ``close`` (idempotent: safe in every ``finally``)."""

    def __init__(self, tracker: StartTracker) -> None:
        self._tracker = tracker
        self._open = True

    def close(self) -> None:
        """Started (or failed on the way): leave the window, once."""
        if self._open:
            self._open = False
            self._tracker._end()


async def give_way_to_starts(
    quiet: Quiet | None, asked_at: float, max_defer_s: float = MAX_DEFER_S
) -> None:
    """Wait for a quiet node, until ``max_defer_s`` after ``asked_at`` (monotonic)."""
    left_s = asked_at + max_defer_s - time.monotonic()
    if quiet is not None and left_s > 0:
        await quiet(left_s)
