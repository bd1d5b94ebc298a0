"""The jobs the daemon schedules, and the one place that builds them.

Job protocol (what :class:`statusbridge.daemon.Daemon` schedules)::

    class Job(Protocol):
        name: str            # unique, used in logs, /health and /metrics labels
        interval_s: float    # seconds between run starts
        async def run_once(self) -> None: ...   # one cycle; raise on failure
        async def aclose(self) -> None: ...     # called once at shutdown; flush, stop clients

The daemon runs each job every ``interval_s`` with ``max_instances=1`` and
``coalesce=True`` (a run never overlaps itself), records the last success for /health,
and calls ``aclose()`` on every job during graceful shutdown (after running jobs
finished or the grace period ran out). ``statusbridge once`` runs every job once and
then closes them the same way.

Forwarding hook (ECS → SignalFx, owned by ``statusbridge/forwarding.py``)::

    def build_forwarding_job(
        config: Config, *, dry_run: bool, http_client: httpx.AsyncClient,
        registry: prometheus_client.CollectorRegistry,
    ) -> Job | None

It is imported lazily by :func:`open_jobs`; only the keyword arguments its signature
declares are passed. Returning None means "nothing to forward". If the module or the
function is missing, the daemon logs that forwarding is not available and goes on.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, runtime_checkable

import httpx
import structlog
from prometheus_client import CollectorRegistry

from statusbridge.config import Config

log = structlog.get_logger("statusbridge.jobs")


@runtime_checkable
class Job(Protocol):
    """A periodic unit of work scheduled by the daemon."""

    @property
    def name(self) -> str:
        """Unique job name, e.g. ``pingdom:123456`` or ``forwarding``."""
        ...

    @property
    def interval_s(self) -> float:
        """Seconds between the starts of two runs."""
        ...

    async def run_once(self) -> None:
        """Do one cycle; raise to mark the run as failed."""

    async def aclose(self) -> None:
        """Release resources at shutdown (flush and stop clients)."""


@asynccontextmanager
async def open_jobs(
    config: Config,
    *,
    dry_run: bool,
    http_client: httpx.AsyncClient,
    registry: CollectorRegistry,
) -> AsyncIterator[list[Job]]:
    """Build every configured job; shared resources (the state file) close on exit."""
    from statusbridge.pingdom_job import open_pingdom_jobs

    jobs: list[Job] = []
    async with open_pingdom_jobs(
        config, dry_run=dry_run, http_client=http_client, registry=registry
    ) as pingdom_jobs:
        jobs.extend(pingdom_jobs)
        # ---- ECS → SignalFx forwarding hook (statusbridge/forwarding.py) ----
        forwarding = _build_forwarding_job(
            config, dry_run=dry_run, http_client=http_client, registry=registry
        )
        if forwarding is not None:
            jobs.append(forwarding)
        yield jobs


def _build_forwarding_job(config: Config, **kwargs: Any) -> Job | None:
    if not config.ecs_targets:
        return None
    builder = _forwarding_builder()
    if builder is None:
        log.warning("forwarding_unavailable", reason="statusbridge.forwarding is not installed")
        return None
    accepted = inspect.signature(builder).parameters
    job: Job | None = builder(
        config, **{key: value for key, value in kwargs.items() if key in accepted}
    )
    return job


def _forwarding_builder() -> Callable[..., Job | None] | None:
    try:
        module = importlib.import_module("statusbridge.forwarding")
    except ModuleNotFoundError as exc:
        # Only a missing forwarding module is tolerated, not a broken import inside it.
        if exc.name != "statusbridge.forwarding":
            raise
        return None
    builder: Callable[..., Job | None] | None = getattr(module, "build_forwarding_job", None)
    return builder
