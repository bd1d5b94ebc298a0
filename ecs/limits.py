"""Per-key limits as the request path sees them: one node's, or the whole cluster's.

``KeyLimits`` is what the auth middleware, the sync task path and the task service call;
``LocalLimits`` keeps them in this process (``ecs.ratelimit.KeyLimiter``), and
``ecs.cluster_limits.ClusterLimits`` keeps them in Redis for every node at once, falling
back to the local ones while Redis is away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from ecs.ratelimit import KeyLimiter


class KeyLimits(Protocol):
    """A request rate per key (token bucket) and a number of running tasks per key."""

    async def take(self, key: str) -> None:
        """Spend one request token of ``key``, or raise RateLimited with the wait."""

    async def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` has a token, or None if it has one now (spends nothing)."""

    def admit_task(self, key: str) -> AbstractAsyncContextManager[None]:
        """Spend a token and hold a task place of ``key`` for the block; RateLimited if not."""

    def waiting_task(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold a task place of ``key`` for the block, waiting while it has none free."""


class LocalLimits:
    """``KeyLimits`` of this process alone."""

    def __init__(self, limiter: KeyLimiter) -> None:
        self._limiter = limiter

    async def take(self, key: str) -> None:
        """Spend a token here."""
        self._limiter.take(key)

    async def retry_after(self, key: str) -> int | None:
        """This process's bucket's wait."""
        return self._limiter.retry_after(key)

    @asynccontextmanager
    async def admit_task(self, key: str) -> AsyncIterator[None]:
        """A token, then a task place, both of this process."""
        self._limiter.take(key)
        with self._limiter.task(key):
            yield

    def waiting_task(self, key: str) -> AbstractAsyncContextManager[None]:
        """Wait here for a task place."""
        return self._limiter.waiting_task(key)
