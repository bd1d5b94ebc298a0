"""Pingdom → Cachet jobs: one per configured check, sharing clients and state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from statusbridge.config import CheckSettings, Config
from statusbridge.metrics import StatusBridgeMetrics
from statusbridge.pingdom_cachet.cachet import CachetClient
from statusbridge.pingdom_cachet.pingdom import PingdomClient
from statusbridge.pingdom_cachet.state import StateFile
from statusbridge.pingdom_cachet.sync import SyncContext, sync_check


@dataclass
class PingdomSyncJob:
    """Scheduler face of :func:`sync_check` for one check."""

    check: CheckSettings
    context: SyncContext

    @property
    def name(self) -> str:
        """``pingdom:<check id>``."""
        return f"pingdom:{self.check.pingdom_check_id}"

    @property
    def interval_s(self) -> float:
        """The check's configured interval."""
        return self.check.interval_s

    async def run_once(self) -> None:
        """One sync of this check."""
        await sync_check(self.check, self.context)

    async def aclose(self) -> None:
        """Nothing of its own to close: clients and the state file belong to the job set."""


@asynccontextmanager
async def open_sync_context(
    config: Config,
    *,
    dry_run: bool,
    http_client: httpx.AsyncClient,
    metrics: StatusBridgeMetrics | None = None,
) -> AsyncIterator[SyncContext]:
    """Clients and the state file for Pingdom → Cachet work; the state file closes on exit."""
    assert config.pingdom is not None
    assert config.cachet is not None
    with StateFile(config.state_path) as state_file:
        yield SyncContext(
            pingdom=PingdomClient(http_client, config.pingdom),
            cachet=CachetClient(http_client, config.cachet),
            state_file=state_file,
            dry_run=dry_run,
            retention_s=config.pingdom.retention_days * 86400,
            semaphore=asyncio.Semaphore(config.max_concurrent_syncs),
            metrics=metrics if metrics is not None else StatusBridgeMetrics(),
        )


@asynccontextmanager
async def open_pingdom_jobs(
    config: Config,
    *,
    dry_run: bool,
    http_client: httpx.AsyncClient,
    metrics: StatusBridgeMetrics,
) -> AsyncIterator[list[PingdomSyncJob]]:
    """Yield one job per ``[[checks]]`` entry (none, and no state file, without checks)."""
    if not config.checks:
        yield []
        return
    async with open_sync_context(
        config, dry_run=dry_run, http_client=http_client, metrics=metrics
    ) as context:
        yield [PingdomSyncJob(check, context) for check in config.checks]
