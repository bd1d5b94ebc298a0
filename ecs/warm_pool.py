"""Warm pools: idle containers started before the request comes, one task each.

For an image in ``warm_pools``, ECS keeps ``size`` containers of it running an idle
command, created with exactly the task sandbox (no network, no capabilities, limits,
init) and labelled as pooled. A task for that image takes one, runs its command in it
with ``exec`` (``ecs.warm_run``), and the container is removed after the task: one
container, one task, never reused. The pool refills in the background, giving way to
task starts for a bounded time (``ecs.deferral``): making a container beside a warm
task's exec would slow the very task the pool is there to speed up. A task that finds
the pool empty takes the cold path.

An idle container carries a deadline ``max_idle_s`` ahead, after which this pool
replaces it: should this instance die, any janitor reaps its idle containers then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from ecs.deferral import MAX_DEFER_S, Quiet, give_way_to_starts
from ecs.docker import DockerClient
from ecs.exceptions import EcsError
from ecs.imageref import ImageReference
from ecs.pulls import ImagePuller
from ecs.removal import ContainerRemover
from ecs.sandbox import (
    LABEL_POOL,
    ContainerPolicy,
    ContainerRequest,
    container_config,
    container_labels,
)

log = structlog.get_logger(__name__)

_RETRY_AFTER_FAILURE_S = 5.0
_MAX_RETRY_S = 300.0
_STAYS_UP_S = 0.5  # a new pool container must run this long before the pool counts on it


@dataclass(frozen=True)
class PooledContainer:
    """An idle container ready for one task, and what it was made with."""

    container_id: str
    memory_mb: int
    cpus: float
    pids: int
    entrypoint: tuple[str, ...]  # the image's, which exec does not apply by itself


@dataclass(frozen=True)
class PoolShape:
    """What a pool's containers are: image, count, idle command and default limits."""

    image: ImageReference
    size: int
    idle_cmd: Sequence[str]
    memory_mb: int
    cpus: float
    pids: int
    max_idle_s: float


class WarmPool:
    """Keeps ``shape.size`` idle containers of one image running."""

    def __init__(
        self,
        docker: DockerClient,
        puller: ImagePuller,
        shape: PoolShape,
        policy: Callable[[], ContainerPolicy],
        remover: ContainerRemover,
        *,
        instance_id: str,
        on_refill: Callable[[float], None] = lambda _seconds: None,
        quiet: Quiet | None = None,
        max_defer_s: float = MAX_DEFER_S,
        stays_up_s: float = _STAYS_UP_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._docker = docker
        self._puller = puller
        self.shape = shape
        self._policy = policy
        self._remover = remover
        self._instance_id = instance_id
        self._on_refill = on_refill
        self._quiet = quiet
        self._max_defer_s = max_defer_s
        self._stays_up_s = stays_up_s
        self._clock = clock
        self._idle: deque[tuple[PooledContainer, float]] = deque()  # (container, made at)
        self._making = 0
        self._failures = 0  # refills failed in a row: the wait before the next grows
        self._retry_at = float("-inf")  # monotonic: no container is made before it
        self._entrypoint: tuple[str, ...] = ()
        self._wanted = asyncio.Event()
        self._wanted_since: float | None = None  # monotonic: the refill asked for first
        self._filler: asyncio.Task[None] | None = None
        self._owned: set[str] = set()

    @property
    def idle(self) -> int:
        """Idle containers ready now."""
        return len(self._idle)

    def owns(self, container_id: str) -> bool:
        """An idle (or being made) container of this pool: not the janitor's."""
        return container_id in self._owned

    async def start(self) -> None:
        """Learn the image's entrypoint (pulling it if need be), then fill in the background.

        A pool whose image cannot be had logs why and stays empty: its tasks run cold.
        """
        try:
            await self._puller.ensure_present(self.shape.image, None)
            path = f"/images/{self.shape.image.familiar}/json"
            image = await self._docker.call_json("GET", path)
        except EcsError as exc:
            log.error("warm_pool_disabled", image=self.shape.image.familiar, error=exc.message)
            return
        entrypoint = (image.get("Config") or {}).get("Entrypoint") or []
        self._entrypoint = tuple(str(part) for part in entrypoint)
        self._want()
        self._filler = asyncio.create_task(self._fill_forever())

    def take(self) -> PooledContainer | None:
        """An idle container for one task (it is the task's from now on), or None.

        The pool refills when that task ends (``refill``): making a container while the
        task runs would slow the task, which the pool is there to speed up.
        """
        while self._idle:
            container, made = self._idle.popleft()
            if self._clock() - made < self.shape.max_idle_s:
                self._owned.discard(container.container_id)
                return container
            self._discard(container)  # too old: its deadline label is near
            self._want()
        self._want()  # empty: make more
        return None

    def refill(self) -> None:
        """A task of this pool ended: make up the count."""
        self._want()

    def container_died(self) -> None:
        """A taken container had stopped before its task: the next ones wait, as after a
        failed refill, so an idle command that keeps dying does not churn the engine."""
        log.warning("warm_pool_container_died", image=self.shape.image.familiar)
        self._failed()

    def _failed(self) -> None:
        """One more failure in a row: no container is made before the backoff has passed."""
        self._failures += 1
        wait_s = min(_MAX_RETRY_S, _RETRY_AFTER_FAILURE_S * 2 ** (self._failures - 1))
        self._retry_at = time.monotonic() + wait_s

    def _want(self) -> None:
        if self._wanted_since is None:
            self._wanted_since = time.monotonic()
        self._wanted.set()

    async def close(self) -> None:
        """Stop refilling and remove the idle containers."""
        if self._filler is not None:
            self._filler.cancel()
            await asyncio.gather(self._filler, return_exceptions=True)
        while self._idle:
            container, _ = self._idle.popleft()
            self._discard(container)

    async def _fill_forever(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            while len(self._idle) + self._making < self.shape.size:
                backoff_s = self._retry_at - time.monotonic()
                if backoff_s > 0:
                    await asyncio.sleep(backoff_s)
                asked_at = self._wanted_since
                if asked_at is None:  # every wake-up comes through _want; to be safe
                    asked_at = self._wanted_since = time.monotonic()
                await give_way_to_starts(self._quiet, asked_at, self._max_defer_s)
                self._making += 1
                started = time.perf_counter()
                try:
                    container = await self._make()
                except EcsError as exc:
                    image = self.shape.image.familiar
                    log.warning("warm_pool_refill_failed", image=image, error=exc.message)
                    self._failed()
                    self._wanted.set()
                    break
                finally:
                    self._making -= 1
                self._failures = 0
                self._idle.append((container, self._clock()))
                self._on_refill(time.perf_counter() - started)
            else:
                self._wanted_since = None  # full: the next refill is asked for anew

    async def _make(self) -> PooledContainer:
        shape = self.shape
        request = ContainerRequest(
            image=shape.image.familiar,
            cmd=list(shape.idle_cmd),
            env={},
            memory_mb=shape.memory_mb,
            cpus=shape.cpus,
            pids=shape.pids,
        )
        deadline = int(self._clock() + shape.max_idle_s)
        labels = {**container_labels(self._instance_id, f"pool-{uuid.uuid4().hex}", deadline)}
        labels[LABEL_POOL] = "true"
        config = container_config(request, self._policy(), labels)
        # The idle command replaces the entrypoint, which the task's exec puts back.
        config["Entrypoint"] = []
        name = f"ecs-pool-{uuid.uuid4().hex[:16]}"
        container_id = await self._docker.create_container(name, config)
        self._owned.add(container_id)
        try:
            await self._docker.start(container_id)
            # An idle command that cannot run ends within milliseconds, often after the
            # start was answered (the init execs it then): give it that moment to show.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._stays_up_s):
                    code = await self._docker.wait(container_id)
                    raise EcsError(
                        f"pool container of {shape.image.familiar} exited at once (exit "
                        f"{code}): is {list(shape.idle_cmd)} in the image?"
                    )
        except BaseException:
            self._owned.discard(container_id)
            with contextlib.suppress(EcsError):
                await self._docker.remove(container_id)
            raise
        return PooledContainer(
            container_id, shape.memory_mb, shape.cpus, shape.pids, self._entrypoint
        )

    def _discard(self, container: PooledContainer) -> None:
        """Hand an idle container over to the background removal."""
        self._remover.track(container.container_id)
        self._owned.discard(container.container_id)
        self._remover.remove_later(container.container_id)
