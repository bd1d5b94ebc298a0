"""Admission control: a bounded number of running tasks and a bounded queue before them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ecs.exceptions import Overloaded


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
    def queued(self) -> int:
        """Tasks waiting for a slot now."""
        return self._waiting

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the duration of the block, waiting in the queue if need be."""
        if self._semaphore.locked() and self._waiting >= self._max_queued:
            raise Overloaded(
                f"all {self._capacity} task slots and {self._max_queued} queue places are "
                "taken; retry later",
                retry_after_s=self._retry_after_s,
            )
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            self._semaphore.release()
