"""One-shot commands besides run/once: ``check`` and ``backfill``."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable

import httpx
from tqdm import tqdm

from statusbridge.config import CheckSettings, Config
from statusbridge.exceptions import StatusBridgeError
from statusbridge.pingdom_cachet.cachet import CachetClient
from statusbridge.pingdom_cachet.cachet.diagnose import diagnose
from statusbridge.pingdom_cachet.job import open_sync_context
from statusbridge.pingdom_cachet.pingdom import PingdomClient
from statusbridge.pingdom_cachet.state import StateFile
from statusbridge.pingdom_cachet.sync import SyncContext, sync_check
from statusbridge.pingdom_cachet.uptime import bucket_start, completed_bucket_end


async def check(config: Config, http: httpx.AsyncClient) -> int:
    """Validate the config and reach every configured API, one line per item (and a
    ``name: warning: …`` line per warning)."""
    print(f"config: ok ({len(config.checks)} checks, {len(config.ecs_targets)} ECS targets)")
    warnings: dict[str, list[str]] = {}
    probes: list[tuple[str, Callable[[], Awaitable[str]]]] = []
    if config.pingdom is not None:
        pingdom = PingdomClient(http, config.pingdom)
        probes.append(("pingdom", lambda: _pingdom(pingdom, config)))
    if config.cachet is not None:
        cachet = CachetClient(http, config.cachet)
        probes.append(
            ("cachet", lambda: _cachet(cachet, config, warnings.setdefault("cachet", [])))
        )
    if config.checks:
        probes.append(("state", lambda: _state(config)))
    for target in config.ecs_targets:
        probes.append((f"ecs {target.url}", functools.partial(_scrape, http, target.url)))
    failed = False
    for name, probe in probes:
        try:
            print(f"{name}: ok ({await probe()})")
        except (StatusBridgeError, httpx.HTTPError) as exc:
            failed = True
            print(f"{name}: FAILED: {exc}")
        for warning in warnings.get(name, []):
            print(f"{name}: warning: {warning}")
    token = config.signalfx.token
    print(f"signalfx: {'token set' if token else 'no token, forwarding runs as a dry run'}")
    return 1 if failed else 0


async def _pingdom(client: PingdomClient, config: Config) -> str:
    visible = {c.id for c in await client.checks()}
    missing = [c.pingdom_check_id for c in config.checks if c.pingdom_check_id not in visible]
    if missing:
        raise StatusBridgeError(f"configured checks not visible with this token: {missing}")
    return f"{len(visible)} checks visible"


async def _cachet(client: CachetClient, config: Config, warnings: list[str]) -> str:
    found = await diagnose(client, config)
    warnings.extend(found.warnings)
    return ", ".join(found.facts)


async def _state(config: Config) -> str:
    with StateFile(config.state_path):
        return str(config.state_path)


async def _scrape(http: httpx.AsyncClient, url: str) -> str:
    response = await http.get(url, timeout=10.0)
    response.raise_for_status()
    return f"HTTP {response.status_code}, {len(response.content)} bytes"


async def backfill(
    config: Config,
    http: httpx.AsyncClient,
    *,
    check_ids: list[int] | None,
    since_s: float,
    until_s: float | None = None,
    dry_run: bool,
) -> int:
    """Push the points of some checks (all, for None) from ``since_s`` seconds ago until
    ``until_s`` seconds ago (now, for None), skipping those Cachet already holds."""
    configured = [c.pingdom_check_id for c in config.checks]
    wanted = configured if check_ids is None else check_ids
    unknown = [check_id for check_id in wanted if check_id not in configured]
    if not wanted:
        print("statusbridge: no [[checks]] configured: nothing to backfill")
        return 2
    if unknown:
        print(f"statusbridge: check(s) {unknown} not configured (configured: {configured})")
        return 2
    if until_s is not None and until_s >= since_s:
        print("statusbridge: --until must be less far back than --since")
        return 2
    async with open_sync_context(config, dry_run=dry_run, http_client=http) as context:
        for item in [c for c in config.checks if c.pingdom_check_id in wanted]:
            await _backfill_one(item, context, since_s, until_s, dry_run)
    return 0


async def _backfill_one(
    item: CheckSettings, context: SyncContext, since_s: float, until_s: float | None, dry_run: bool
) -> None:
    info = await context.info.get(item)
    now = time.time()
    since = int(now - since_s)
    until = int(now - until_s) if until_s is not None else None
    total = 0
    if info.bucket_s:
        end = completed_bucket_end(now, info.bucket_s, item.settle_s)
        if until is not None:
            end = min(end, bucket_start(until, info.bucket_s))
        total = max(0, (end - bucket_start(since, info.bucket_s)) // info.bucket_s)
    check_id = item.pingdom_check_id
    with tqdm(total=total, unit="bucket", desc=f"check {check_id}") as bar:

        def advance(buckets: int) -> None:
            bar.update(buckets)

        report = await sync_check(
            item, context, backfill_since=since, backfill_until=until, progress=advance
        )
    print(
        f"check {check_id}: {report.buckets} buckets, {report.points_pushed} points pushed, "
        f"{report.points_already_present} already present"
        + (" (dry run: nothing written)" if dry_run else "")
    )
