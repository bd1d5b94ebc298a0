"""A warm pool's refills give way to task starts, for a bounded time (ecs.deferral)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from ecs.docker import DockerClient
from ecs.imageref import parse_image_reference
from ecs.pulls import ImagePuller, PullPolicy
from ecs.removal import ContainerRemover
from ecs.sandbox import ContainerPolicy
from ecs.warm_pool import PoolShape, WarmPool
from tests.ecs.lifecycle_engine import LifecycleEngine

SHAPE = PoolShape(
    image=parse_image_reference("owner/repo:tag"),
    size=2,
    idle_cmd=("sleep", "infinity"),
    memory_mb=256,
    cpus=1.0,
    pids=256,
    max_idle_s=3600,
)


class Starts:
    """``StartTracker.quiet`` with a switch: a task is starting while ``busy``."""

    def __init__(self) -> None:
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    @busy.setter
    def busy(self, value: bool) -> None:
        if value:
            self._idle.clear()
        else:
            self._idle.set()

    async def done(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()


def pool_on(engine: LifecycleEngine, starts: Starts, max_defer_s: float) -> WarmPool:
    docker = DockerClient(engine.client())
    return WarmPool(
        docker,
        ImagePuller(docker, PullPolicy.DEFAULT, {}),
        SHAPE,
        lambda: ContainerPolicy(),
        ContainerRemover(docker),
        instance_id="me",
        quiet=starts.done,
        max_defer_s=max_defer_s,
        stays_up_s=0.01,  # the fake's containers run until deleted: no need to watch long
    )


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        # Polls what a caller can see of the pool (its idle count), not an internal event.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def creates(engine: LifecycleEngine) -> int:
    return sum(call == "POST /containers/create" for call in engine.calls)


async def test_a_refill_waits_while_a_task_is_starting_then_makes_up_the_count() -> None:
    engine = LifecycleEngine(keep_running=True)
    starts = Starts()
    pool = pool_on(engine, starts, max_defer_s=60)
    await pool.start()
    await until(lambda: pool.idle == 2)
    starts.busy = True
    assert pool.take() is not None
    pool.refill()
    await asyncio.sleep(0.1)
    assert creates(engine) == 2, "no container is made while a task is starting"
    assert pool.idle == 1
    starts.busy = False
    await until(lambda: pool.idle == 2)
    assert creates(engine) == 3
    await pool.close()


async def test_under_steady_starts_a_refill_is_late_by_the_bound_not_more() -> None:
    """With a task always starting, the pool still refills ``max_defer_s`` after it was
    asked to, for every container it lacks together, not once per container."""
    engine = LifecycleEngine(keep_running=True)
    starts = Starts()
    pool = pool_on(engine, starts, max_defer_s=0.3)
    await pool.start()
    await until(lambda: pool.idle == 2)
    starts.busy = True
    asked = time.monotonic()
    assert pool.take() is not None
    assert pool.take() is not None
    pool.refill()
    pool.refill()
    await until(lambda: pool.idle == 2)
    late_s = time.monotonic() - asked
    assert 0.25 <= late_s < 1.0
    await pool.close()


async def test_an_idle_node_refills_at_once() -> None:
    engine = LifecycleEngine(keep_running=True)
    starts = Starts()
    pool = pool_on(engine, starts, max_defer_s=60)
    await pool.start()
    await until(lambda: pool.idle == 2, timeout_s=1.0)
    assert pool.take() is not None
    pool.refill()
    await until(lambda: pool.idle == 2, timeout_s=1.0)
    await pool.close()
