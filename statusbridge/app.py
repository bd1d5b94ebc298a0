"""The composition root: the process's one HTTP client and every configured job.

This is the only module that knows both job families; each family builds its own jobs
(:mod:`statusbridge.pingdom_cachet.job`, :mod:`statusbridge.forwarding`) and the daemon only
sees the :class:`~statusbridge.daemon.Job` protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from statusbridge import __version__
from statusbridge.config import Config
from statusbridge.daemon import Job
from statusbridge.forwarding import build_forwarding_job
from statusbridge.metrics import StatusBridgeMetrics
from statusbridge.pingdom_cachet import open_pingdom_jobs


@asynccontextmanager
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    """The one outbound HTTP client of the process; per-API timeouts are set per call."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    headers = {"User-Agent": f"statusbridge/{__version__}"}
    async with httpx.AsyncClient(timeout=30.0, limits=limits, headers=headers) as client:
        yield client


@asynccontextmanager
async def open_jobs(
    config: Config,
    *,
    dry_run: bool,
    http_client: httpx.AsyncClient,
    metrics: StatusBridgeMetrics,
) -> AsyncIterator[list[Job]]:
    """Build every configured job; shared resources (the state file) close on exit."""
    jobs: list[Job] = []
    async with open_pingdom_jobs(
        config, dry_run=dry_run, http_client=http_client, metrics=metrics
    ) as pingdom_jobs:
        jobs.extend(pingdom_jobs)
        forwarding = build_forwarding_job(
            config, dry_run=dry_run, http_client=http_client, metrics=metrics
        )
        if forwarding is not None:
            jobs.append(forwarding)
        yield jobs
