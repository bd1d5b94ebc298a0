"""The daemon life cycle, uvicorn style: ``serve()`` → startup → main loop → shutdown.

The signal handler only sets ``should_exit``; a second signal sets ``force_exit``, which
skips the grace period for running jobs. Shutdown stops the scheduler, waits for running
jobs (up to ``grace_s``), cancels what is left and then calls every job's ``aclose()``.

The daemon schedules anything that follows the :class:`Job` protocol: it runs each job
every ``interval_s`` with ``max_instances=1`` and ``coalesce=True`` (a run never
overlaps itself), records the last success for /health, and calls ``aclose()`` on every
job during graceful shutdown (after running jobs finished or the grace period ran out).
``statusbridge once`` runs every job once and then closes them the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Protocol, runtime_checkable

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from statusbridge.config import Config
from statusbridge.endpoint import Endpoint, HealthReport
from statusbridge.metrics import StatusBridgeMetrics

log = structlog.get_logger(__name__)

_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@runtime_checkable
class Job(Protocol):
    """A periodic unit of work scheduled by the daemon."""

    @property
    def name(self) -> str:
        """Unique job name, e.g. ``pingdom:123456`` or ``forwarding``; used in logs,
        /health and /metrics labels."""
        ...

    @property
    def interval_s(self) -> float:
        """Seconds between the starts of two runs."""
        ...

    async def run_once(self) -> None:
        """Do one cycle; raise to mark the run as failed."""

    async def aclose(self) -> None:
        """Release resources at shutdown (flush and stop clients); called once."""


@runtime_checkable
class HasDependencies(Protocol):
    """A job that relies on an outside service whose trouble /health should show."""

    def dependencies(self) -> dict[str, str | None]:
        """Per dependency, None while it is fine, else what is wrong (turns /health red)."""
        ...


@dataclass
class JobHealth:
    """What /health reports about one job."""

    last_success: float | None = None
    last_error: str | None = None


class Daemon:
    """Schedules ``jobs`` and serves /health and /metrics until told to stop."""

    def __init__(
        self,
        config: Config,
        jobs: Sequence[Job],
        *,
        metrics: StatusBridgeMetrics | None = None,
        grace_s: float = 30.0,
        tick_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.jobs = list(jobs)
        self.metrics = metrics if metrics is not None else StatusBridgeMetrics()
        self.grace_s = grace_s
        self.tick_s = tick_s
        self.should_exit = False
        self.force_exit = False
        self._clock = clock
        self._started_at = clock()
        self._health = {job.name: JobHealth() for job in self.jobs}
        self._running: set[asyncio.Task[object]] = set()
        self._scheduler: AsyncIOScheduler | None = None
        self.endpoint: Endpoint | None = None
        names = [job.name for job in self.jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")

    # -- life cycle -------------------------------------------------------------------

    async def serve(self) -> None:
        """Run until a signal (or ``should_exit``) asks to stop, then shut down cleanly."""
        with self._capture_signals():
            await self.startup()
            try:
                await self.main_loop()
            finally:
                await self.shutdown()

    async def startup(self) -> None:
        """Start the endpoint and schedule every job, first runs immediately."""
        self._started_at = self._clock()
        http = self.config.http
        if http.enabled:
            self.endpoint = Endpoint(http.host, http.port, metrics=self.metrics, health=self.health)
            await self.endpoint.start()
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        for job in self.jobs:
            self._scheduler.add_job(
                self._scheduled_run,
                IntervalTrigger(seconds=job.interval_s, timezone=UTC),
                args=[job],
                id=job.name,
                name=job.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                next_run_time=datetime.now(UTC),
            )
        self._scheduler.start()
        if not self.jobs:
            log.warning("no_jobs", hint="configure [[checks]] or [[ecs_targets]]")
        log.info("daemon_started", jobs=[job.name for job in self.jobs])

    async def main_loop(self) -> None:
        """Idle until asked to exit; the scheduler does the work."""
        # A plain flag, as in uvicorn: handle_exit may run from a signal.signal handler.
        while not self.should_exit:  # noqa: ASYNC110
            await asyncio.sleep(self.tick_s)

    async def shutdown(self) -> None:
        """Stop scheduling, let running jobs finish within the grace period, close jobs."""
        log.info("daemon_stopping", running=len(self._running))
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        deadline = self._clock() + self.grace_s
        while self._running and not self.force_exit and self._clock() < deadline:
            await asyncio.wait(set(self._running), timeout=self.tick_s)
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        await self.close_jobs()
        if self.endpoint is not None:
            await self.endpoint.stop()
        log.info("daemon_stopped")

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Signal handler: first signal asks for a graceful stop, a second forces it."""
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True

    @contextlib.contextmanager
    def _capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        installed = []
        for sig in _HANDLED_SIGNALS:
            try:
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
            except (NotImplementedError, RuntimeError, ValueError):
                # Not the main thread (tests) or no signal support: stop via should_exit.
                continue
            installed.append(sig)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    # -- running jobs -----------------------------------------------------------------

    async def run_job(self, job: Job) -> BaseException | None:
        """Run ``job`` once, record the outcome, and return the error (None on success)."""
        started = self._clock()
        try:
            await job.run_once()
        except asyncio.CancelledError:
            self.metrics.job_cancelled(job.name, self._clock() - started)
            raise
        except Exception as exc:
            self._health[job.name].last_error = str(exc) or type(exc).__name__
            self.metrics.job_failed(job.name, self._clock() - started)
            log.error("job_failed", job=job.name, error=str(exc), error_type=type(exc).__name__)
            return exc
        seconds = self._clock() - started
        self._health[job.name] = JobHealth(last_success=self._clock(), last_error=None)
        self.metrics.job_succeeded(job.name, seconds)
        log.debug("job_succeeded", job=job.name, duration_s=round(seconds, 3))
        return None

    async def run_all_once(self) -> dict[str, BaseException | None]:
        """Run every job once, concurrently; map each job name to its error or None."""
        outcomes = await asyncio.gather(*(self.run_job(job) for job in self.jobs))
        return {job.name: outcome for job, outcome in zip(self.jobs, outcomes, strict=True)}

    async def close_jobs(self) -> None:
        """Call every job's ``aclose()``; one failing close does not skip the others."""
        for job in self.jobs:
            try:
                await job.aclose()
            except Exception as exc:
                log.error("job_close_failed", job=job.name, error=str(exc))

    async def _scheduled_run(self, job: Job) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await self.run_job(job)
        finally:
            if task is not None:
                self._running.discard(task)

    # -- health -----------------------------------------------------------------------

    def health(self) -> HealthReport:
        """Green when every job succeeded recently (3 intervals, at least 60 s) and no
        job's dependency reports a problem (a refused SignalFx token, for one)."""
        now = self._clock()
        green = True
        jobs: dict[str, object] = {}
        dependencies: dict[str, object] = {}
        for job in self.jobs:
            state = self._health[job.name]
            age = None if state.last_success is None else now - state.last_success
            allowed = max(3 * job.interval_s, 60.0)
            waited = age if age is not None else now - self._started_at
            fresh = waited <= allowed
            green = green and fresh
            jobs[job.name] = {
                "status": "green" if fresh else "red",
                "last_success_age_s": None if age is None else round(age, 3),
                "last_error": state.last_error,
                "interval_s": job.interval_s,
            }
            if isinstance(job, HasDependencies):
                for name, problem in job.dependencies().items():
                    green = green and problem is None
                    dependencies[name] = {
                        "status": "green" if problem is None else "red",
                        "error": problem,
                    }
        details: dict[str, object] = {"jobs": jobs}
        if dependencies:
            details["dependencies"] = dependencies
        return HealthReport(green, details)
