"""The janitor: finds ECS containers nobody is working on any more, and removes them.

Every task container is labelled with the ECS instance that made it and its deadline
(start + timeout). A container is reaped when

- its deadline plus a margin has passed and no request of this process still owns it, or
- it belongs to this instance, no request owns it, and it is older than the grace given to
  a container between its creation and its registration (periodic passes), or
- it belongs to this instance and the process has just started (nothing can own it yet:
  it was left by a crash or a ``kill -9``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from enum import Enum

import structlog

from ecs.docker import DockerClient
from ecs.exceptions import EcsError
from ecs.sandbox import LABEL_DEADLINE, LABEL_INSTANCE, LABEL_MANAGED

log = structlog.get_logger(__name__)


class ReapMode(Enum):
    """Which containers a pass may remove."""

    OVERDUE = "overdue"  # only past deadline + margin: safe while any ECS runs
    ORPHANS = "orphans"  # also this instance's unowned containers past the creation grace
    STARTUP = "startup"  # also every container of this instance: nothing owns them yet


class Janitor:
    """Reaps abandoned task containers on demand, at start-up and periodically."""

    def __init__(
        self,
        docker: DockerClient,
        *,
        instance_id: str,
        margin_s: float,
        creation_grace_s: float,
        is_owned: Callable[[str], bool] = lambda _container_id: False,
        on_reaped: Callable[[int], None] = lambda _count: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._docker = docker
        self._instance_id = instance_id
        self._margin_s = margin_s
        self._creation_grace_s = creation_grace_s
        self._is_owned = is_owned
        self._on_reaped = on_reaped
        self._clock = clock

    async def reap_once(self, mode: ReapMode, *, include_owned: bool = False) -> int:
        """One pass; returns how many containers were removed.

        ``include_owned`` is for the very end of a shutdown, when every request is over
        and an owned container can only be one whose request was cut off.
        """
        now = self._clock()
        reaped = 0
        for container in await self._docker.list_containers({LABEL_MANAGED: "true"}):
            container_id = str(container["Id"])
            if not include_owned and self._is_owned(container_id):
                continue
            if not self._abandoned(container, mode, now):
                continue
            try:
                await self._docker.remove(container_id)
            except EcsError as exc:
                log.warning("reap_failed", container=container_id[:12], error=exc.message)
                continue
            reaped += 1
            log.info("container_reaped", container=container_id[:12], mode=mode.value)
        if reaped:
            self._on_reaped(reaped)
        return reaped

    async def run_forever(self, interval_s: float) -> None:
        """Reap orphans every ``interval_s`` until cancelled; a failed pass is only logged."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reap_once(ReapMode.ORPHANS)
            except EcsError as exc:
                log.warning("janitor_pass_failed", error=exc.message)

    def _abandoned(self, container: dict[str, object], mode: ReapMode, now: float) -> bool:
        labels = container.get("Labels") or {}
        assert isinstance(labels, dict)
        try:
            deadline = float(labels.get(LABEL_DEADLINE, 0))
        except (TypeError, ValueError):
            deadline = 0.0  # a label we cannot read: treat the container as overdue
        if now > deadline + self._margin_s:
            return True
        if labels.get(LABEL_INSTANCE) != self._instance_id:
            return False
        if mode is ReapMode.STARTUP:
            return True
        created = container.get("Created", now)
        age = now - float(created) if isinstance(created, int | float) else 0.0
        return mode is ReapMode.ORPHANS and age > self._creation_grace_s
