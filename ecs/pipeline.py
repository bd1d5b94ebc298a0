"""The task pipeline: pull → create → start → wait (kill at the timeout) → logs → inspect.

The container is removed after the answer is ready, in the background, and on every
path after create — failure and cancellation (a client hanging up) included.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from ecs.deferral import StartTracker, StartWindow
from ecs.demux import LogDemuxer
from ecs.docker import DockerClient
from ecs.exceptions import (
    EngineError,
    EngineNotFound,
    EngineUnreachable,
    FieldProblem,
    ImageNotFound,
    InvalidRequest,
    PooledContainerGone,
)
from ecs.hijack import HijackedStream
from ecs.imageref import ImageReference
from ecs.pulls import ImagePuller
from ecs.registry_auth import Credentials
from ecs.removal import ContainerRemover
from ecs.sandbox import ContainerPolicy, ContainerRequest, container_config, container_labels
from ecs.task_input import InputFile, input_archive

log = structlog.get_logger(__name__)

KILLED_EXIT_CODE = 137
# How long the engine may take to report a killed container stopped, and to close the
# output stream of a container that stopped.
_KILL_GRACE_S = 10.0

StageObserver = Callable[[str, float], None]


def _ignore_stage(stage: str, seconds: float) -> None:
    """Default observer: stage timings go nowhere."""


@dataclass(frozen=True)
class TaskSpec:
    """One task, validated and with every default filled in."""

    image: ImageReference
    cmd: list[str]
    env: Mapping[str, str]
    timeout_s: float
    memory_mb: int
    cpus: float
    pids: int
    credentials: Credentials | None = None
    stdin: bytes | None = None  # None: an empty, closed stdin
    files: tuple[InputFile, ...] = ()
    workdir: str | None = None


@dataclass(frozen=True)
class TaskOutcome:
    """What the container did."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    oom_killed: bool
    stdout_truncated: bool
    stderr_truncated: bool
    duration_ms: int


class Pooled(Protocol):
    """A warm pool's container, taken for one task."""

    @property
    def container_id(self) -> str:
        """The container's id."""


class WarmTasks(Protocol):
    """The warm path (``ecs.warm_run``): a pooled container for an image, and a task in it."""

    def take(self, image: ImageReference) -> Pooled | None:
        """An idle container of ``image`` for one task, or None (take the cold path)."""

    async def run(self, container: Pooled, spec: TaskSpec, task_id: str) -> TaskOutcome:
        """Run ``spec`` in ``container``; the caller removes it afterwards.

        ``PooledContainerGone`` means it had stopped and nothing ran: run the task cold.
        """


def new_task_id() -> str:
    """A random id naming the task's container and its log lines."""
    return uuid.uuid4().hex


def container_name(task_id: str) -> str:
    """The name of the container that runs task ``task_id``."""
    return f"ecs-{task_id}"


class TaskRunner:
    """Runs one task at a time per call; share one instance across requests."""

    def __init__(
        self,
        docker: DockerClient,
        puller: ImagePuller,
        remover: ContainerRemover,
        policy: ContainerPolicy,
        *,
        instance_id: str,
        output_cap_bytes: int,
        on_stage: StageObserver = _ignore_stage,
        warm: WarmTasks | None = None,
    ) -> None:
        self._docker = docker
        self._warm = warm
        self._puller = puller
        self._remover = remover
        self.policy = policy  # refitted once the engine is known (Runtime.connect_engine)
        self._instance_id = instance_id
        self._output_cap = output_cap_bytes
        self._on_stage = on_stage
        self.starts = StartTracker()  # background engine work gives way to starts

    async def run(self, spec: TaskSpec, task_id: str) -> TaskOutcome:
        """Run ``spec`` to completion and return its outcome."""
        pooled = self._warm.take(spec.image) if self._warm is not None else None
        if pooled is not None:
            try:
                return await self._run_warm(pooled, spec, task_id)
            except PooledContainerGone as gone:  # nothing ran: the task goes cold
                log.warning("pooled_container_gone", error=gone.message)
        # Create first: asking the engine whether it has the image before every create
        # costs a round trip; a create that finds no image says so (404), and then we pull.
        with self._stage("pull"):
            pulled = await self._puller.pull_first(spec.image, spec.credentials)
        window = self.starts.begin()
        try:
            return await self._run_cold(spec, task_id, pulled, window)
        finally:
            window.close()

    async def _run_warm(self, pooled: Pooled, spec: TaskSpec, task_id: str) -> TaskOutcome:
        assert self._warm is not None
        self._remover.track(pooled.container_id)
        # A warm task is starting until its exec ended: the exec is the start, and a short
        # task's whole time.
        window = self.starts.begin()
        try:
            with self._stage("exec"):
                return await self._warm.run(pooled, spec, task_id)
        finally:
            window.close()
            self._remover.remove_later(pooled.container_id)

    async def _run_cold(
        self, spec: TaskSpec, task_id: str, pulled: bool, window: StartWindow
    ) -> TaskOutcome:
        try:
            with self._stage("create"):
                container_id = await self._create(spec, task_id)
        except asyncio.CancelledError:
            # Cancelled (a DELETE, a client hanging up) while the create was on its way:
            # the engine may have made the container all the same, and its id never came
            # back. Remove it by its name; a 404 means it was never made.
            self._remover.remove_later(container_name(task_id))
            raise
        except EngineNotFound as exc:
            if pulled:  # pulled a moment ago and still missing: nothing more to try
                raise _not_found(spec, exc) from exc
            with self._stage("pull"):
                await self._puller.pull_missing(spec.image, spec.credentials)
            try:
                with self._stage("create"):
                    container_id = await self._create(spec, task_id)
            except EngineNotFound as again:
                raise _not_found(spec, again) from again
        self._remover.track(container_id)
        try:
            if spec.files:
                with self._stage("files"):
                    await self._write_files(container_id, spec.files)
            return await self._run_created(container_id, spec, window)
        finally:
            self._remover.remove_later(container_id)

    async def _write_files(self, container_id: str, files: tuple[InputFile, ...]) -> None:
        try:
            await self._docker.put_archive(container_id, "/", input_archive(files, time.time()))
        except EngineError as exc:
            if exc.engine_status is None or not 400 <= exc.engine_status < 500:
                raise
            # The image has something in the way (a directory where a file should go).
            problem = FieldProblem("files_not_written", f"files: {exc.message}", "files")
            raise InvalidRequest([problem]) from exc

    async def _create(self, spec: TaskSpec, task_id: str) -> str:
        request = ContainerRequest(
            image=spec.image.familiar,
            cmd=spec.cmd,
            env=spec.env,
            memory_mb=spec.memory_mb,
            cpus=spec.cpus,
            pids=spec.pids,
            workdir=spec.workdir,
            stdin=spec.stdin is not None,
        )
        deadline = int(time.time() + spec.timeout_s)
        labels = container_labels(self._instance_id, task_id, deadline)
        config = container_config(request, self.policy, labels)
        return await self._docker.create_container(container_name(task_id), config)

    async def _run_created(
        self, container_id: str, spec: TaskSpec, window: StartWindow
    ) -> TaskOutcome:
        demuxer = LogDemuxer(self._output_cap)
        async with contextlib.AsyncExitStack() as attached:
            output = await attached.enter_async_context(self._docker.attach(container_id))
            collector = asyncio.create_task(_collect(output, demuxer))
            feeder: asyncio.Task[None] | None = None
            try:
                stdin = None
                if spec.stdin is not None:
                    stdin = await attached.enter_async_context(
                        self._docker.attach_stdin(container_id)
                    )
                with self._stage("start"):
                    await self._docker.start(container_id)
                window.close()
                if stdin is not None and spec.stdin is not None:
                    feeder = asyncio.create_task(_feed(stdin, spec.stdin))
                with self._stage("run"):
                    timed_out = await self._wait(container_id, spec.timeout_s)
                with self._stage("logs"):
                    # The engine closes the attached stream once the container has stopped.
                    async with asyncio.timeout(_KILL_GRACE_S):
                        await collector
            finally:
                collector.cancel()
                if feeder is not None:
                    feeder.cancel()
        info = await self._docker.inspect(container_id)
        state = info.get("State", {})
        exit_code = KILLED_EXIT_CODE if timed_out else int(state.get("ExitCode", -1))
        return TaskOutcome(
            exit_code=exit_code,
            stdout=bytes(demuxer.stdout.data),
            stderr=bytes(demuxer.stderr.data),
            timed_out=timed_out,
            oom_killed=bool(state.get("OOMKilled", False)),
            stdout_truncated=demuxer.stdout.truncated,
            stderr_truncated=demuxer.stderr.truncated,
            duration_ms=_run_time_ms(state),
        )

    async def _wait(self, container_id: str, timeout_s: float) -> bool:
        """Wait for the container to stop; kill it at the timeout. True if it was killed."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._docker.wait(container_id)
        except TimeoutError:
            log.debug("task_timed_out", container=container_id[:12], timeout_s=timeout_s)
            await self._docker.kill(container_id)
            async with asyncio.timeout(_KILL_GRACE_S):
                await self._docker.wait(container_id)
            return True
        return False

    def _stage(self, name: str) -> _StageTimer:
        return _StageTimer(name, self._on_stage)


class _StageTimer:
    """Times a ``with`` block and reports it to the stage observer, failed or not."""

    def __init__(self, name: str, observer: StageObserver) -> None:
        self._name = name
        self._observer = observer
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        seconds = time.perf_counter() - self._started
        log.debug("task_stage", stage=self._name, ms=round(seconds * 1000, 2))
        self._observer(self._name, seconds)


async def _collect(output: AsyncIterator[bytes], demuxer: LogDemuxer) -> None:
    """Read the whole stream: the demuxer drops what is over the cap, but the container
    must never block on a full pipe, so reading goes on to the end."""
    async for chunk in output:
        demuxer.feed(chunk)
    demuxer.close()


async def _feed(stdin: HijackedStream, data: bytes) -> None:
    """Write the task's stdin, then hang up: the task reads end-of-file.

    A task that exits without reading it all breaks the stream; that is its choice.
    """
    with contextlib.suppress(EngineUnreachable):
        await stdin.write(data)
    await stdin.close()


def _not_found(spec: TaskSpec, error: EngineNotFound) -> ImageNotFound:
    return ImageNotFound(f"image {spec.image.familiar} not found: {error.message}")


def _run_time_ms(state: Mapping[str, object]) -> int:
    started = parse_engine_time(str(state.get("StartedAt", "")))
    finished = parse_engine_time(str(state.get("FinishedAt", "")))
    if started is None or finished is None or finished < started:
        return 0
    return int((finished - started).total_seconds() * 1000)


def parse_engine_time(text: str) -> datetime | None:
    """The engine's RFC 3339 times carry nanoseconds, which ``fromisoformat`` refuses."""
    if not text or text.startswith("0001-"):
        return None
    head, _, fraction = text.rstrip("Z").partition(".")
    fraction = (fraction + "000000")[:6]
    try:
        return datetime.fromisoformat(f"{head}.{fraction}+00:00")
    except ValueError:
        return None
