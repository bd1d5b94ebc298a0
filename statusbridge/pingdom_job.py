"""Pingdom → Cachet jobs: one per configured check (filled in by the sync step)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
from prometheus_client import CollectorRegistry

from statusbridge.config import Config

if TYPE_CHECKING:
    from statusbridge.jobs import Job


@asynccontextmanager
async def open_pingdom_jobs(
    config: Config,
    *,
    dry_run: bool,
    http_client: httpx.AsyncClient,
    registry: CollectorRegistry,
) -> AsyncIterator[list[Job]]:
    """Yield one job per ``[[checks]]`` entry."""
    yield []
