"""One-shot commands besides run/once: ``check`` and ``backfill``."""

from __future__ import annotations

import httpx

from statusbridge.config import Config


async def check(config: Config, http: httpx.AsyncClient) -> int:
    """Validate the config and reach every configured API, reporting each."""
    print("config: ok")
    return 0


async def backfill(
    config: Config, http: httpx.AsyncClient, *, check_id: int, since_s: float, dry_run: bool
) -> int:
    """Push past points for one check, from ``since_s`` seconds ago."""
    raise NotImplementedError
