"""The parts of a running ECS, built once from settings and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from ecs.cleanup import ContainerRemover
from ecs.config import Settings
from ecs.docker import DockerClient, engine_http_client
from ecs.pulls import ImagePuller
from ecs.registry_auth import Credentials
from ecs.sandbox import ContainerPolicy
from ecs.schemas import TaskResult
from ecs.slots import TaskSlots
from ecs.task_request import TaskLimits, parse_task_request
from ecs.tasks import TaskRunner, new_task_id

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """Engine client, pipeline, admission control and cleanup of one ECS process."""

    settings: Settings
    engine_http: httpx.AsyncClient
    docker: DockerClient
    remover: ContainerRemover
    runner: TaskRunner
    slots: TaskSlots
    limits: TaskLimits

    async def run_task(self, body: Any, log_fields: dict[str, Any]) -> TaskResult:
        """The ``POST /tasks`` use case: check the body, wait for a slot, run, encode."""
        spec = parse_task_request(body, self.limits)
        task_id = new_task_id()
        log_fields.update(image=spec.image.familiar, task=task_id)
        async with self.slots.slot():
            outcome = await self.runner.run(spec, task_id)
        log_fields.update(exit_code=outcome.exit_code, timed_out=outcome.timed_out)
        return TaskResult.from_outcome(outcome)

    async def aclose(self) -> None:
        """Finish pending removals, then close the engine connection."""
        await self.remover.drain()
        await self.engine_http.aclose()


def build_runtime(settings: Settings, engine_http: httpx.AsyncClient | None = None) -> Runtime:
    """Assemble the runtime; ``engine_http`` lets tests hand in their own client."""
    http = engine_http or engine_http_client(
        settings.docker_host,
        connect_timeout_s=settings.engine_connect_timeout_s,
        call_timeout_s=settings.engine_call_timeout_s,
    )
    docker = DockerClient(http, pull_timeout_s=settings.pull_timeout_s)
    configured = {
        host: Credentials(creds.username, creds.password.get_secret_value(), creds.email)
        for host, creds in settings.registries.items()
    }
    puller = ImagePuller(docker, settings.pull_policy, configured)
    remover = ContainerRemover(docker)
    policy = ContainerPolicy(
        read_only_rootfs=settings.read_only_rootfs,
        log_driver=settings.log_driver,
        log_options=settings.log_options,
    )
    runner = TaskRunner(
        docker,
        puller,
        remover,
        policy,
        instance_id=settings.instance_id,
        output_cap_bytes=settings.output_cap_bytes,
    )
    slots = TaskSlots(
        settings.max_concurrent_tasks, settings.max_queued_tasks, settings.overload_retry_after_s
    )
    return Runtime(
        settings=settings,
        engine_http=http,
        docker=docker,
        remover=remover,
        runner=runner,
        slots=slots,
        limits=TaskLimits.from_settings(settings),
    )
