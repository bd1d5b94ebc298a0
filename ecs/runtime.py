"""The parts of a running ECS, built once from settings and shared by every request."""

from __future__ import annotations

import asyncio
import os
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import redis.asyncio as aioredis
import structlog

from ecs.backends import build_backends
from ecs.callback_guard import CallbackPolicy
from ecs.callbacks import CallbackSender
from ecs.cluster import ClusterNode
from ecs.config import Settings, pinned_api_version
from ecs.docker import DockerClient, engine_http_client
from ecs.engine_http import EngineHttp
from ecs.engine_probe import EngineReport, probe_engine
from ecs.exceptions import ConfigError, FieldProblem, InvalidRequest
from ecs.image_policy import ImageAllowlist
from ecs.janitor import Janitor
from ecs.keys import KeyFileError, KeyStore
from ecs.limits import KeyLimits
from ecs.metrics import EcsMetrics
from ecs.pipeline import TaskRunner, TaskSpec, new_task_id
from ecs.pulls import ImagePuller
from ecs.registry_auth import Credentials, load_docker_config_auths
from ecs.removal import ContainerRemover
from ecs.responses import TaskResult
from ecs.sandbox import ContainerPolicy
from ecs.slots import TaskSlots
from ecs.task_body import TaskLimits, parse_task_request
from ecs.task_service import Prepare, TaskService
from ecs.warm_run import WarmPath, build_warm_path

log = structlog.get_logger(__name__)

_SYNC_CALLBACK = FieldProblem(
    "callback_not_allowed",
    "callback_url needs an async request (Prefer: respond-async)",
    "callback_url",
)


@dataclass
class Runtime:
    """Engine client, pipeline, admission control and cleanup of one ECS process."""

    settings: Settings
    engine_http: EngineHttp
    docker: DockerClient
    remover: ContainerRemover
    runner: TaskRunner
    slots: TaskSlots
    limits: TaskLimits
    allowlist: ImageAllowlist
    limiter: KeyLimits
    failed_auth: KeyLimits
    janitor: Janitor
    keys: KeyStore | None
    metrics: EcsMetrics
    tasks: TaskService
    callback_http: httpx.AsyncClient
    prepare: Prepare  # body → checked spec, the same for sync and stored tasks
    cluster: ClusterNode | None = None  # cluster mode's heartbeats, worker and sweeps
    warm: WarmPath | None = None  # the warm pools, if any are configured
    redis: aioredis.Redis | None = None
    active: set[asyncio.Task[Any]] = field(default_factory=set)

    async def run_task(
        self, body: Any, api_key: str | None, log_fields: dict[str, Any]
    ) -> TaskResult:
        """The ``POST /tasks`` use case: check, admit (per key, then per node), run, encode."""
        current = asyncio.current_task()
        if current is not None:
            self.active.add(current)
            current.add_done_callback(self.active.discard)
        try:
            if isinstance(body, dict) and body.get("callback_url") is not None:
                raise InvalidRequest([_SYNC_CALLBACK])
            spec = self.prepare(body)
            task_id = new_task_id()
            log_fields.update(image=spec.image.familiar, task=task_id)
            admission = self.limiter.admit_task(api_key) if api_key else nullcontext()
            async with admission, self.slots.slot():
                outcome = await self.runner.run(spec, task_id)
        except Exception as exc:
            self.metrics.task_failed(exc)
            raise
        self.metrics.task_finished(timed_out=outcome.timed_out, oom_killed=outcome.oom_killed)
        log_fields.update(exit_code=outcome.exit_code, timed_out=outcome.timed_out)
        return TaskResult.from_outcome(outcome)

    async def connect_engine(self) -> EngineReport:
        """Probe the engine (version, runtime) and fit the task sandbox to what it found."""
        report = await probe_engine(self.docker, self.settings.runtime)
        self.runner.policy = replace(self.runner.policy, gvisor=report.gvisor)
        return report

    async def wait_idle(self, timeout_s: float) -> None:
        """Wait (bounded) until no task request is running any more."""
        if self.active:
            await asyncio.wait(set(self.active), timeout=timeout_s)

    async def aclose(self) -> None:
        """Finish pending removals, then close the engine and callback connections."""
        await self.remover.drain()
        await self.engine_http.aclose()
        await self.callback_http.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def configured_credentials(settings: Settings) -> dict[str, Credentials]:
    """Registry credentials from config: ``registries`` wins over the Docker config file."""
    found: dict[str, Credentials] = {}
    if settings.docker_config_file is not None:
        try:
            found.update(load_docker_config_auths(settings.docker_config_file))
        except ValueError as exc:
            raise ConfigError(f"docker_config_file: {exc}") from exc
    for host, creds in settings.registries.items():
        found[host] = Credentials(creds.username, creds.password.get_secret_value(), creds.email)
    return found


def load_keys(settings: Settings) -> KeyStore | None:
    """The API key store, or None when no credentials file is configured."""
    if settings.credentials_file is None:
        return None
    try:
        return KeyStore(settings.credentials_file)
    except KeyFileError as exc:
        raise ConfigError(f"credentials_file: {exc}") from exc


def build_runtime(settings: Settings, engine_http: EngineHttp | None = None) -> Runtime:
    """Assemble the runtime; ``engine_http`` lets tests hand in their own client."""
    http = engine_http or engine_http_client(
        settings.docker_host,
        connect_timeout_s=settings.engine_connect_timeout_s,
        call_timeout_s=settings.engine_call_timeout_s,
    )
    metrics = EcsMetrics()
    docker = DockerClient(
        http,
        pull_timeout_s=settings.pull_timeout_s,
        pinned_api_version=pinned_api_version(settings, os.environ),
        on_error=metrics.engine_error,
    )
    puller = ImagePuller(docker, settings.pull_policy, configured_credentials(settings))
    # Removals and pool refills give way to the tasks that are starting (the runner is
    # made just below).
    remover = ContainerRemover(
        docker,
        on_stage=metrics.observe_stage,
        quiet=lambda timeout_s: runner.starts.quiet(timeout_s),
    )
    policy = ContainerPolicy(
        read_only_rootfs=settings.read_only_rootfs,
        log_driver=settings.log_driver,
        log_options=settings.log_options,
        runtime=settings.runtime,
    )
    allowlist = ImageAllowlist(settings.image_allowlist)
    # The runner's policy is refitted once the engine is known: pools read it then.
    warm = build_warm_path(
        settings,
        docker,
        puller,
        remover,
        allowlist,
        lambda: runner.policy,
        metrics,
        quiet=lambda timeout_s: runner.starts.quiet(timeout_s),
    )
    runner = TaskRunner(
        docker,
        puller,
        remover,
        policy,
        instance_id=settings.instance_id,
        output_cap_bytes=settings.output_cap_bytes,
        on_stage=metrics.observe_stage,
        warm=warm,
    )
    janitor = Janitor(
        docker,
        instance_id=settings.instance_id,
        margin_s=settings.janitor_margin_s,
        # A container is registered as soon as its create call returns.
        creation_grace_s=settings.engine_call_timeout_s,
        is_owned=lambda container_id: (
            remover.owns(container_id) or (warm is not None and warm.owns(container_id))
        ),
        on_reaped=metrics.containers_reaped,
    )
    slots = TaskSlots(
        settings.max_concurrent_tasks, settings.max_queued_tasks, settings.overload_retry_after_s
    )
    metrics.track_slots(lambda: slots.running, lambda: slots.queued)
    backends = build_backends(settings, metrics)
    # Callbacks are client-steered: no redirects, and no proxy taken from the environment.
    callback_http = httpx.AsyncClient(
        timeout=settings.callback_timeout_s, follow_redirects=False, trust_env=False
    )
    callback_policy = CallbackPolicy(settings.callback_allowlist)
    secret = settings.callback_secret
    sender = (
        CallbackSender(callback_http, callback_policy, secret.get_secret_value().encode())
        if secret is not None
        else None
    )
    limits = TaskLimits.from_settings(settings)
    prepare = task_preparer(limits, allowlist)
    tasks = TaskService(
        backends.store,
        runner,
        slots,
        backends.limiter,
        metrics,
        prepare,
        retention_s=settings.task_retention_s,
        callback_policy=callback_policy,
        callbacks=sender,
        callback_retry_s=settings.callback_retry_s,
        shared_queue=backends.redis_store,
    )
    cluster = None
    if backends.redis_store is not None and backends.link is not None:
        cluster = ClusterNode(
            backends.redis_store,
            tasks,
            slots,
            list(backends.cluster_limits),
            backends.link,
            metrics,
            heartbeat_s=settings.cluster.heartbeat_s,
            node_timeout_s=settings.cluster.node_timeout_s,
            redis_timeout_s=settings.cluster.redis_timeout_s,
        )
    return Runtime(
        settings=settings,
        engine_http=http,
        docker=docker,
        remover=remover,
        runner=runner,
        slots=slots,
        limits=limits,
        allowlist=allowlist,
        limiter=backends.limiter,
        failed_auth=backends.failed_auth,
        janitor=janitor,
        keys=load_keys(settings),
        metrics=metrics,
        tasks=tasks,
        callback_http=callback_http,
        prepare=prepare,
        cluster=cluster,
        redis=backends.redis,
        warm=warm,
    )


def task_preparer(limits: TaskLimits, allowlist: ImageAllowlist) -> Prepare:
    """The check of a task body against the server's limits and image policy (400, 403)."""

    def prepare(body: Any) -> TaskSpec:
        spec = parse_task_request(body, limits)
        allowlist.check(spec.image)
        return spec

    return prepare
