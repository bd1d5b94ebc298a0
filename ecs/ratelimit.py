"""Per-key limits, as the original nginx front had them: a request rate and concurrent tasks."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from ecs.exceptions import RateLimited


@dataclass
class _Bucket:
    tokens: float
    updated: float


class KeyLimiter:
    """A token bucket per key (``rate`` per second, ``burst`` deep) and a task count per key."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        max_tasks: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._max_tasks = max_tasks
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._tasks: dict[str, int] = {}
        self._freed: asyncio.Condition | None = None  # made on first use, inside the loop

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` has a token again, or None if it has one now."""
        bucket = self._refilled(key, self._clock())
        if bucket.tokens >= 1:
            return None
        return max(math.ceil((1 - bucket.tokens) / self._rate), 1)

    def take(self, key: str) -> None:
        """Spend one request token of ``key`` or raise RateLimited with the wait."""
        wait = self.retry_after(key)
        if wait is not None:
            raise RateLimited(
                f"key {key} is over its rate of {self._rate:g} requests per second",
                retry_after_s=wait,
            )
        self._buckets[key].tokens -= 1
        if len(self._buckets) > 10_000:
            self._forget_full_buckets(self._clock())

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.setdefault(key, _Bucket(tokens=self._burst, updated=now))
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        return bucket

    @contextmanager
    def task(self, key: str) -> Iterator[None]:
        """Count one running task of ``key`` for the block, or raise RateLimited."""
        running = self._tasks.get(key, 0)
        if running >= self._max_tasks:
            raise RateLimited(
                f"key {key} already runs {running} tasks, its maximum", retry_after_s=1
            )
        self._tasks[key] = running + 1
        try:
            yield
        finally:
            self._release(key)
            if self._freed is not None:
                # A sync task's end may let a queued async task of the key run.
                asyncio.get_running_loop().create_task(self._notify())

    @asynccontextmanager
    async def waiting_task(self, key: str) -> AsyncIterator[None]:
        """Count one running task of ``key`` for the block, first waiting while it is at
        its maximum (async tasks queue rather than fail)."""
        if self._freed is None:
            self._freed = asyncio.Condition()
        async with self._freed:
            await self._freed.wait_for(lambda: self._tasks.get(key, 0) < self._max_tasks)
            self._tasks[key] = self._tasks.get(key, 0) + 1
        try:
            yield
        finally:
            self._release(key)
            async with self._freed:
                self._freed.notify_all()

    async def _notify(self) -> None:
        if self._freed is not None:
            async with self._freed:
                self._freed.notify_all()

    def _release(self, key: str) -> None:
        left = self._tasks[key] - 1
        if left:
            self._tasks[key] = left
        else:
            del self._tasks[key]

    def _forget_full_buckets(self, now: float) -> None:
        # A bucket that has refilled completely holds no information; drop it.
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self._rate >= self._burst:
                del self._buckets[key]
