"""The Pingdom → Cachet use case: :func:`sync_check`, one check, one run.

Results since the watermark → completed buckets → one response-time and one uptime
point per bucket → the watermark moves to the bucket's end only after Cachet accepted
its points (one transaction per bucket). A bucket is marked pending before its push, so
a run after a crash between push and commit first looks for that bucket's points in
Cachet and does not post them twice. Then the component status and incident follow the
newest results (see :mod:`statusbridge.pingdom_cachet.component`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from statusbridge.config import CheckSettings
from statusbridge.exceptions import ConfigError
from statusbridge.metrics import StatusBridgeMetrics
from statusbridge.pingdom_cachet.cachet import CachetClient
from statusbridge.pingdom_cachet.component import CheckInfo, update_component
from statusbridge.pingdom_cachet.pingdom import PingdomClient
from statusbridge.pingdom_cachet.state import StateFile
from statusbridge.pingdom_cachet.uptime import BucketPoints, Result, bucket_start, compute_buckets

log = structlog.get_logger(__name__)

# Results are fetched and buckets pushed in chunks of this many seconds (bounded memory).
CHUNK_S = 6 * 3600
# Check, metric and component details are re-read from the APIs this often.
INFO_TTL_S = 600.0
Progress = Callable[[int], None]


@dataclass
class SyncContext:
    """What every sync run shares: API clients, the state file, clock and limits."""

    pingdom: PingdomClient
    cachet: CachetClient
    state_file: StateFile
    dry_run: bool = False
    clock: Callable[[], float] = time.time
    retention_s: float = 30 * 86400.0
    semaphore: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(8))
    metrics: StatusBridgeMetrics = field(default_factory=StatusBridgeMetrics)
    _info: dict[int, tuple[float, CheckInfo]] = field(default_factory=dict)


@dataclass
class SyncReport:
    """What one run did, for logs, the CLI and tests."""

    check_id: int
    buckets: int = 0
    points_pushed: int = 0
    points_already_present: int = 0
    watermark: int | None = None


async def sync_check(
    check: CheckSettings,
    ctx: SyncContext,
    *,
    backfill_since: int | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """Bring one check's Cachet metrics, component and incident up to date."""
    async with ctx.semaphore:
        return await _sync(check, ctx, backfill_since=backfill_since, progress=progress)


async def _sync(
    check: CheckSettings,
    ctx: SyncContext,
    *,
    backfill_since: int | None,
    progress: Progress | None,
) -> SyncReport:
    check_id = check.pingdom_check_id
    record = ctx.state_file.load(check_id)
    now = ctx.clock()
    info = await check_info(check, ctx)
    report = SyncReport(check_id, watermark=record.watermark)
    latest: list[Result] = []
    fetched_from: int | None = None
    if info.bucket_s:
        size = info.bucket_s
        end = bucket_start(now - check.settle_s, size)
        if backfill_since is not None:
            start = bucket_start(backfill_since, size)
        elif record.watermark is not None:
            start = record.watermark
        else:
            start = bucket_start(end - check.backfill_hours * 3600, size)
        start = _clamp_to_retention(check, ctx, start, now, size)
        # Only a bucket that may have been pushed without its commit needs a lookup, and on
        # a run without a watermark (first run, or a lost state file) every bucket may.
        verify_from = record.pending_bucket
        if backfill_since is not None or record.watermark is None:
            verify_from = start
        present: dict[int, set[int]] = {}
        if verify_from is not None and verify_from < end:
            for metric_id in info.metric_ids:
                present[metric_id] = await ctx.cachet.point_times(metric_id, verify_from)
        chunk = max(size, CHUNK_S - CHUNK_S % size)
        for chunk_start in range(start, end, chunk):
            chunk_end = min(chunk_start + chunk, end)
            last = chunk_end == end
            fetch_from = chunk_start - info.resolution_s
            fetch_to = int(now) + 1 if last else chunk_end + info.resolution_s
            results = await ctx.pingdom.results(check_id, fetch_from, fetch_to)
            if last:
                latest, fetched_from = results, fetch_from
            buckets = compute_buckets(
                results,
                start=chunk_start,
                end=chunk_end,
                size_s=size,
                resolution_s=info.resolution_s,
            )
            for bucket in buckets:
                await _push_bucket(check, ctx, info, bucket, present, report)
                if progress is not None:
                    progress(1)
        if report.watermark is not None:
            ctx.metrics.watermark_moved(str(check_id), now - report.watermark)
    if check.cachet_component_id is not None:
        status_from = _status_window_start(check, record.hysteresis.cursor, info, now)
        if fetched_from is None or fetched_from > status_from:
            latest = await ctx.pingdom.results(check_id, status_from, int(now) + 1)
        await update_component(check, ctx.cachet, ctx.state_file, record, info, latest, ctx.dry_run)
    log.info(
        "check_synced",
        check=check.label,
        buckets=report.buckets,
        pushed=report.points_pushed,
        already_present=report.points_already_present,
        watermark=report.watermark,
        dry_run=ctx.dry_run,
    )
    return report


async def _push_bucket(
    check: CheckSettings,
    ctx: SyncContext,
    info: CheckInfo,
    bucket: BucketPoints,
    present: dict[int, set[int]],
    report: SyncReport,
) -> None:
    check_id = check.pingdom_check_id
    points = [
        (metric_id, value)
        for metric_id, value in (
            (check.response_time_metric_id, bucket.response_time_ms),
            (check.uptime_metric_id, bucket.uptime_pct),
        )
        if metric_id is not None and value is not None
    ]
    report.buckets += 1
    if ctx.dry_run:
        for metric_id, value in points:
            log.info(
                "would_push_point",
                check=check.label,
                metric=metric_id,
                value=value,
                timestamp=bucket.start,
            )
        return
    watermark = bucket.start + info.bucket_s
    if points:
        ctx.state_file.mark_pending(check_id, bucket.start)
    for metric_id, value in points:
        if bucket.start in present.get(metric_id, ()):
            report.points_already_present += 1
            log.info(
                "point_already_present", check=check.label, metric=metric_id, timestamp=bucket.start
            )
            continue
        stored = await ctx.cachet.add_point(metric_id, value, bucket.start)
        report.points_pushed += 1
        ctx.metrics.point_pushed(str(check_id))
        if stored.created_at != bucket.start or stored.counter > 1:
            # Cachet folded the value into another point (same value within threshold).
            log.warning(
                "cachet_merged_point",
                check=check.label,
                metric=metric_id,
                timestamp=bucket.start,
                stored_at=stored.created_at,
                counter=stored.counter,
            )
    # A backfill re-walks old buckets; it never moves the watermark backwards.
    report.watermark = max(watermark, report.watermark or 0)
    ctx.state_file.commit_bucket(check_id, report.watermark)


def _clamp_to_retention(
    check: CheckSettings, ctx: SyncContext, start: int, now: float, size: int
) -> int:
    oldest = bucket_start(now - ctx.retention_s, size) + size
    if start >= oldest:
        return start
    log.warning(
        "pingdom_retention_gap",
        check=check.label,
        skipped_from=start,
        skipped_to=oldest,
        reason="Pingdom no longer keeps raw results this old; these buckets get no points",
    )
    return oldest


def _status_window_start(check: CheckSettings, cursor: int, info: CheckInfo, now: float) -> int:
    # Enough history to fill the hysteresis streaks on a first run, never before the cursor.
    window = (check.down_after + check.up_after + 2) * info.resolution_s
    return max(cursor + 1, int(now) - max(3600, window))


async def check_info(check: CheckSettings, ctx: SyncContext) -> CheckInfo:
    """Resolution, bucket size and component name, cached for ``INFO_TTL_S``."""
    cached = ctx._info.get(check.pingdom_check_id)
    if cached is not None and ctx.clock() - cached[0] < INFO_TTL_S:
        return cached[1]
    resolution_min = check.resolution_min
    if resolution_min is None:
        resolution_min = (await ctx.pingdom.check(check.pingdom_check_id)).resolution_min or 1
    metric_ids = [
        m for m in (check.response_time_metric_id, check.uptime_metric_id) if m is not None
    ]
    thresholds = []
    for metric_id in metric_ids:
        threshold = (await ctx.cachet.metric(metric_id)).threshold
        if threshold is None or threshold <= 0 or 60 % threshold:
            raise ConfigError(
                f"Cachet metric {metric_id} has threshold {threshold}; "
                "it must be a number of minutes that divides 60"
            )
        thresholds.append(threshold)
    if len(set(thresholds)) > 1:
        log.warning("metric_thresholds_differ", check=check.label, thresholds=thresholds)
    component_name = None
    if check.cachet_component_id is not None:
        component_name = (await ctx.cachet.component(check.cachet_component_id)).name
    info = CheckInfo(
        resolution_s=resolution_min * 60,
        bucket_s=math.lcm(*thresholds) * 60 if thresholds else 0,
        metric_ids=metric_ids,
        component_name=component_name or check.label,
    )
    ctx._info[check.pingdom_check_id] = (ctx.clock(), info)
    return info
