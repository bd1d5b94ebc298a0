"""Admission control: a bounded number of running tasks and a bounded queue before them.

Sync requests and async tasks share both: a place in the queue is reserved when the
task is accepted (so a full queue is a 503 before anything is stored), and held until a
slot frees.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ecs.exceptions import Overloaded


class SlotReservation:
    """A place in the queue: ``hold()`` waits for a slot; ``release()`` gives the place up."""

    def __init__(self, slots: TaskSlots) -> None:
        self._slots = slots
        self._waiting = True

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Wait for a slot (leaving the queue) and hold it for the block."""
        slots = self._slots
        try:
            await slots._semaphore.acquire()
        finally:
            self.release()
        slots._running += 1
        try:
            yield
        finally:
            slots._running -= 1
            slots._semaphore.release()

    def release(self) -> None:
        """Leave the queue without running (idempotent)."""
        if self._waiting:
            self._waiting = False
            self._slots._waiting -= 1


class TaskSlots:
    """At most ``running`` tasks at once; at most ``queued`` more wait; the rest get 503."""

    def __init__(self, running: int, queued: int, retry_after_s: int) -> None:
        self._capacity = running
        self._max_queued = queued
        self._retry_after_s = retry_after_s
        self._semaphore = asyncio.Semaphore(running)
        self._waiting = 0
        self._running = 0

    @property
    def running(self) -> int:
        """Tasks holding a slot now."""
        return self._running

    @property
    def free(self) -> int:
        """Slots nobody holds or waits for now."""
        return self._capacity - self._running - self._waiting

    @property
    def queued(self) -> int:
        """Tasks waiting for a slot now."""
        return self._waiting

    def reserve(self, *, force: bool = False) -> SlotReservation:
        """Take a queue place now, or raise Overloaded; ``force``: a task accepted before."""
        full = self._waiting + self._running >= self._capacity + self._max_queued
        if full and not force:
            raise Overloaded(
                f"all {self._capacity} task slots and {self._max_queued} queue places are "
                "taken; retry later",
                retry_after_s=self._retry_after_s,
            )
        self._waiting += 1
        return SlotReservation(self)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the duration of the block, waiting in the queue if need be."""
        async with self.reserve().hold():
            yield
