"""Removing task containers after the response, without making the client wait.

Removals run in the order they were asked for, in batches of up to ``batch_size`` at
once, and each batch gives way to task starts for at most ``max_defer_s`` after its
oldest removal was asked for (``ecs.deferral``): a removal is at most that plus the
engine's own delete time late, whatever the load. The batch is what a quiet gap after a
burst finds waiting: the engine deletes those side by side (its deletes are mostly
unmounting and unlinking, which overlap well) instead of one round trip after another,
so the node is back to no leftover containers sooner.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

import stamina
import structlog

from ecs.deferral import MAX_DEFER_S, Quiet, give_way_to_starts
from ecs.docker import DockerClient
from ecs.exceptions import EngineApiError, EngineUnreachable

log = structlog.get_logger(__name__)

REMOVAL_BATCH = 4  # ECS's default slot count: a burst's worth of deletes at once


class ContainerRemover:
    """Removes containers in the background and can wait until every removal is done."""

    def __init__(
        self,
        docker: DockerClient,
        on_stage: Callable[[str, float], None] = lambda _stage, _seconds: None,
        *,
        quiet: Quiet | None = None,
        max_defer_s: float = MAX_DEFER_S,
        batch_size: int = REMOVAL_BATCH,
    ) -> None:
        self._docker = docker
        self._on_stage = on_stage
        self._quiet = quiet
        self._max_defer_s = max_defer_s
        self._batch_size = batch_size
        # (container id, monotonic time its removal was asked for)
        self._queue: collections.deque[tuple[str, float]] = collections.deque()
        self._worker: asyncio.Task[None] | None = None
        self._owned: set[str] = set()

    def track(self, container_id: str) -> None:
        """Mark a container as owned by a request, so the janitor leaves it alone."""
        self._owned.add(container_id)

    def owns(self, container_id: str) -> bool:
        """True while a request works on the container or its removal is pending."""
        return container_id in self._owned

    def remove_later(self, container_id: str) -> None:
        """Schedule a forced removal; safe to call from a cancelled task's ``finally``."""
        self._queue.append((container_id, time.monotonic()))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def drain(self) -> None:
        """Wait for every scheduled removal (used at shutdown and by tests)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    async def _work(self) -> None:
        while self._queue:
            oldest_asked_at = self._queue[0][1]
            await give_way_to_starts(self._quiet, oldest_asked_at, self._max_defer_s)
            count = min(self._batch_size, len(self._queue))
            batch = [self._queue.popleft()[0] for _ in range(count)]
            # _remove never raises: one failed delete does not cut its batch short.
            await asyncio.gather(*(self._remove(container_id) for container_id in batch))

    async def _remove(self, container_id: str) -> None:
        started = time.perf_counter()
        try:
            await self._remove_with_retries(container_id)
            self._on_stage("delete", time.perf_counter() - started)
        except Exception as exc:  # the janitor reaps what is left; never crash here
            log.warning("container_remove_failed", container=container_id[:12], error=str(exc))
        else:
            log.debug("container_removed", container=container_id[:12])
        finally:
            self._owned.discard(container_id)

    @stamina.retry(on=(EngineUnreachable, EngineApiError), attempts=4, timeout=30.0)
    async def _remove_with_retries(self, container_id: str) -> None:
        await self._docker.remove(container_id)
