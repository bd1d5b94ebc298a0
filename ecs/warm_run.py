"""A task in a warm pool's container: its limits, its files, its command by ``exec``.

The same contract as the cold path (``ecs.pipeline``): the task's limits (an ``update``
when they differ from the pool's), its files and workdir, its command after the image's
entrypoint with its environment and stdin, the output through the same demultiplexer
and caps, a kill of the whole container at the timeout (exit 137), and an OOM seen
from the engine's ``oom`` event — the exec'd process is not the container's first, so
``State.OOMKilled`` would not say. The caller removes the container afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

import structlog

from ecs.config import Settings
from ecs.deferral import Quiet
from ecs.demux import LogDemuxer
from ecs.docker import DockerClient
from ecs.exceptions import (
    ConfigError,
    EcsError,
    EngineConflict,
    EngineError,
    EngineNotFound,
    EngineUnreachable,
    FieldProblem,
    InvalidRequest,
    PooledContainerGone,
)
from ecs.hijack import HijackedStream
from ecs.image_policy import ImageAllowlist
from ecs.imageref import ImageReference, InvalidReference, parse_image_reference
from ecs.metrics import EcsMetrics
from ecs.pipeline import KILLED_EXIT_CODE, Pooled, TaskOutcome, TaskSpec, container_name
from ecs.pulls import ImagePuller
from ecs.removal import ContainerRemover
from ecs.sandbox import ContainerPolicy, resource_limits
from ecs.task_input import InputFile, input_archive
from ecs.warm_pool import PooledContainer, PoolShape, WarmPool

log = structlog.get_logger(__name__)

_EXEC_FAILED = 126  # what the engine answers for an exec it could not start
_EXEC_FAILURE = b"OCI runtime exec failed"
# How long the engine may take to end a killed container's exec stream.
_KILL_GRACE_S = 10.0


async def run_in_pooled(
    docker: DockerClient,
    container: PooledContainer,
    spec: TaskSpec,
    policy: ContainerPolicy,
    *,
    task_id: str,
    output_cap_bytes: int,
) -> TaskOutcome:
    """Run ``spec`` in ``container`` (taken from its pool, never given back).

    Raises ``PooledContainerGone`` when the container turns out to have stopped before
    the command could start in it; nothing ran, and the caller runs the task cold.
    """
    container_id = container.container_id
    try:
        exec_id = await _prepare_exec(docker, container, spec, policy)
    except (EngineConflict, EngineNotFound) as exc:  # not running, or gone: nothing ran
        raise PooledContainerGone(f"pooled container {container_id[:12]}: {exc}") from exc
    # Its task's name, so the container reads as the task's from now on; only now, so a
    # stopped one keeps its pool name and the task's cold container can take the task's.
    # The rename goes on beside the exec and is awaited after it: waiting for it before
    # the exec starts cost ~6 ms (the engine writes the container's config to disk).
    renamed = asyncio.ensure_future(
        docker.call_json(
            "POST", f"/containers/{container_id}/rename", params={"name": container_name(task_id)}
        )
    )
    try:
        return await _run_exec(docker, container_id, spec, exec_id, output_cap_bytes)
    finally:
        try:
            await renamed
        except EcsError as exc:  # only its name: the task itself ran, or failed on its own
            log.warning("pooled_container_not_renamed", container=container_id[:12], error=str(exc))


async def _run_exec(
    docker: DockerClient,
    container_id: str,
    spec: TaskSpec,
    exec_id: str,
    output_cap_bytes: int,
) -> TaskOutcome:
    demuxer = LogDemuxer(output_cap_bytes)
    started = time.time()
    began = time.perf_counter()
    timed_out = False
    start = {"Detach": False, "Tty": False}
    async with docker.hijack(f"/exec/{exec_id}/start", body=start) as stream:
        feeder = None
        if spec.stdin is not None:
            feeder = asyncio.create_task(_feed(stream, spec.stdin))
        try:
            try:
                async with asyncio.timeout(spec.timeout_s):
                    await _collect(stream, demuxer)
            except TimeoutError:
                timed_out = True
                await docker.kill(container_id)
                async with asyncio.timeout(_KILL_GRACE_S):
                    await _collect(stream, demuxer)
        finally:
            if feeder is not None:
                feeder.cancel()
    duration_ms = int((time.perf_counter() - began) * 1000)
    answer = await docker.call_json("GET", f"/exec/{exec_id}/json")
    exit_code = KILLED_EXIT_CODE if timed_out else int(answer.get("ExitCode") or 0)
    if exit_code == _EXEC_FAILED and demuxer.stdout.data.startswith(_EXEC_FAILURE):
        # The command never ran, and the engine said so on stdout: say it as the cold
        # path's init does, on stderr, with a shell's exit code.
        failure = bytes(demuxer.stdout.data).replace(b"\r\n", b"\n")
        demuxer.stdout.data.clear()
        demuxer.stderr.append(failure)
        exit_code = _exec_failure_exit_code(failure)
    killed = not timed_out and exit_code == KILLED_EXIT_CODE
    oom = killed and await _oom_since(docker, container_id, started)
    return TaskOutcome(
        exit_code=exit_code,
        stdout=bytes(demuxer.stdout.data),
        stderr=bytes(demuxer.stderr.data),
        timed_out=timed_out,
        oom_killed=oom,
        stdout_truncated=demuxer.stdout.truncated,
        stderr_truncated=demuxer.stderr.truncated,
        duration_ms=duration_ms,
    )


async def _prepare_exec(
    docker: DockerClient, container: PooledContainer, spec: TaskSpec, policy: ContainerPolicy
) -> str:
    """The task's limits and files in the container, and its exec created: its id."""
    path = f"/containers/{container.container_id}"
    wanted = (spec.memory_mb, spec.cpus, spec.pids)
    if wanted != (container.memory_mb, container.cpus, container.pids):
        limits = resource_limits(spec.memory_mb, spec.cpus, spec.pids, policy)
        await docker.call_json("POST", f"{path}/update", body=limits)
    # The cold path's engine makes the workdir; an exec does not.
    directories = [spec.workdir] if spec.workdir is not None else []
    if spec.files or directories:
        await _write_files(docker, container.container_id, spec.files, directories)
    exec_config = {
        "Cmd": [*container.entrypoint, *spec.cmd],
        "Env": [f"{key}={value}" for key, value in spec.env.items()],
        "AttachStdin": spec.stdin is not None,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
    }
    if spec.workdir is not None:
        exec_config["WorkingDir"] = spec.workdir
    created = await docker.call_json("POST", f"{path}/exec", body=exec_config)
    return str(created["Id"])


async def _write_files(
    docker: DockerClient,
    container_id: str,
    files: tuple[InputFile, ...],
    directories: list[str],
) -> None:
    archive = input_archive(files, time.time(), directories_too=directories)
    try:
        await docker.put_archive(container_id, "/", archive)
    except EngineError as exc:
        if exc.engine_status is None or not 400 <= exc.engine_status < 500:
            raise
        problem = FieldProblem("files_not_written", f"files: {exc.message}", "files")
        raise InvalidRequest([problem]) from exc


async def _feed(stream: HijackedStream, data: bytes) -> None:
    """The task's stdin, then a half-close: it reads end-of-file, its output goes on."""
    with contextlib.suppress(EngineUnreachable):
        await stream.write(data)
    stream.close_write()


async def _collect(stream: HijackedStream, demuxer: LogDemuxer) -> None:
    while chunk := await stream.read():
        demuxer.feed(chunk)


def _exec_failure_exit_code(text: bytes) -> int:
    """As a shell or an init answers a command it cannot start: 127 missing, 126 not runnable."""
    return 127 if b"no such file or directory" in text.lower() else 126


async def _oom_since(docker: DockerClient, container_id: str, since: float) -> bool:
    """Did the engine report an OOM kill in this container since ``since``?"""
    filters = json.dumps({"container": [container_id], "event": ["oom"]})
    # Fractional seconds: an `until` in the future would hold the answer until then.
    params = {"since": f"{since - 1:.9f}", "until": f"{time.time():.9f}", "filters": filters}
    answer = await docker.events(params)
    return any(event.get("Action") == "oom" for event in answer)


class WarmPath:
    """``WarmTasks`` over the configured pools, one per image."""

    def __init__(
        self,
        docker: DockerClient,
        pools: list[WarmPool],
        policy: Callable[[], ContainerPolicy],
        *,
        output_cap_bytes: int,
        metrics: EcsMetrics,
    ) -> None:
        self._docker = docker
        self._pools = {pool.shape.image.familiar: pool for pool in pools}
        self._policy = policy
        self._output_cap = output_cap_bytes
        self._metrics = metrics
        metrics.track_pools(
            lambda: sum(pool.shape.size for pool in pools),
            lambda: sum(pool.idle for pool in pools),
        )

    def take(self, image: ImageReference) -> PooledContainer | None:
        """An idle container of ``image``, if it has a pool and the pool has one."""
        pool = self._pools.get(image.familiar)
        if pool is None:
            return None
        container = pool.take()
        if container is None:
            self._metrics.pool_taken(hit=False)
        return container

    async def run(self, container: Pooled, spec: TaskSpec, task_id: str) -> TaskOutcome:
        """The task in ``container``; its pool refills once it ended.

        A hit counts once the command could start in it; a container found stopped
        (``PooledContainerGone``, raised to the caller, which runs the task cold) is a miss.
        """
        assert isinstance(container, PooledContainer)
        pool = self._pools[spec.image.familiar]
        hit = True
        try:
            return await run_in_pooled(
                self._docker,
                container,
                spec,
                self._policy(),
                task_id=task_id,
                output_cap_bytes=self._output_cap,
            )
        except PooledContainerGone:
            hit = False
            pool.container_died()
            raise
        finally:
            self._metrics.pool_taken(hit=hit)
            pool.refill()

    def owns(self, container_id: str) -> bool:
        """An idle container of some pool (the janitor leaves it alone)."""
        return any(pool.owns(container_id) for pool in self._pools.values())

    async def start(self) -> None:
        """Start every pool."""
        for pool in self._pools.values():
            await pool.start()

    async def close(self) -> None:
        """Stop every pool and remove its idle containers."""
        for pool in self._pools.values():
            await pool.close()


def build_warm_path(
    settings: Settings,
    docker: DockerClient,
    puller: ImagePuller,
    remover: ContainerRemover,
    allowlist: ImageAllowlist,
    policy: Callable[[], ContainerPolicy],
    metrics: EcsMetrics,
    quiet: Quiet | None = None,
) -> WarmPath | None:
    """The warm pools of ``warm_pools``, checked like a task's image; None without any.

    Their refills give way to task starts (``quiet``), as removals do."""
    pools = []
    for index, pool in enumerate(settings.warm_pools):
        key = f"warm_pools[{index}].image"
        try:
            image = parse_image_reference(pool.image)
            allowlist.check(image)
        except (InvalidReference, EcsError) as exc:
            raise ConfigError(f"{key}: {exc}") from exc
        limits = settings.limits
        shape = PoolShape(
            image=image,
            size=pool.size,
            idle_cmd=tuple(pool.idle_cmd),
            memory_mb=limits.default_memory_mb,
            cpus=limits.default_cpus,
            pids=limits.default_pids,
            max_idle_s=pool.max_idle_s,
        )
        pools.append(
            WarmPool(
                docker,
                puller,
                shape,
                policy,
                remover,
                instance_id=settings.instance_id,
                on_refill=metrics.pool_refilled,
                quiet=quiet,
            )
        )
    if not pools:
        return None
    return WarmPath(
        docker, pools, policy, output_cap_bytes=settings.output_cap_bytes, metrics=metrics
    )
