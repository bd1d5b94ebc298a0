"""Removing task containers after the response, without making the client wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import stamina
import structlog

from ecs.docker import DockerClient
from ecs.exceptions import EngineApiError, EngineUnreachable

log = structlog.get_logger(__name__)


class ContainerRemover:
    """Removes containers in the background and can wait until every removal is done."""

    def __init__(
        self,
        docker: DockerClient,
        on_stage: Callable[[str, float], None] = lambda _stage, _seconds: None,
    ) -> None:
        self._docker = docker
        self._on_stage = on_stage
        self._pending: set[asyncio.Task[None]] = set()
        self._owned: set[str] = set()

    def track(self, container_id: str) -> None:
        """Mark a container as owned by a request, so the janitor leaves it alone."""
        self._owned.add(container_id)

    def owns(self, container_id: str) -> bool:
        """True while a request works on the container or its removal is pending."""
        return container_id in self._owned

    def remove_later(self, container_id: str) -> None:
        """Schedule a forced removal; safe to call from a cancelled task's ``finally``."""
        removal = asyncio.get_running_loop().create_task(self._remove(container_id))
        self._pending.add(removal)
        removal.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for every scheduled removal (used at shutdown and by tests)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

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
