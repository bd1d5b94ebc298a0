"""A task cancelled while the engine is creating its container leaves no container."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ecs.config import PullPolicy
from ecs.docker import DockerClient
from ecs.imageref import parse_image_reference
from ecs.pipeline import TaskRunner, TaskSpec
from ecs.pulls import ImagePuller
from ecs.removal import ContainerRemover
from ecs.sandbox import ContainerPolicy
from tests.ecs.lifecycle_engine import LifecycleEngine

SPEC = TaskSpec(
    image=parse_image_reference("owner/repo:tag"),
    cmd=["true"],
    env={},
    timeout_s=30,
    memory_mb=64,
    cpus=1.0,
    pids=64,
)


async def test_a_cancel_while_the_create_is_on_its_way_removes_the_container() -> None:
    """The engine made the container but its answer (the id) never reached ECS: the
    container is removed by its name, not left for the janitor."""
    engine = LifecycleEngine()
    made = asyncio.Event()

    async def slow_create(request: httpx.Request) -> httpx.Response:
        answer = engine.handle(request)
        if request.url.path.endswith("/containers/create"):
            made.set()
            await asyncio.sleep(30)  # the answer is still on its way at the cancel
        return answer

    async with engine.client(slow_create) as http:
        docker = DockerClient(http)
        remover = ContainerRemover(docker, max_defer_s=0.05)
        runner = TaskRunner(
            docker,
            ImagePuller(docker, PullPolicy.IF_NOT_PRESENT, {}),
            remover,
            ContainerPolicy(),
            instance_id="me",
            output_cap_bytes=1024,
        )
        task = asyncio.create_task(runner.run(SPEC, "t1"))
        await asyncio.wait_for(made.wait(), 5)
        assert len(engine.containers) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await remover.drain()
    assert engine.containers == {}
    assert "DELETE /containers/ecs-t1" in engine.calls
