"""The Pingdom → Cachet use case: :func:`sync_check`, one check, one run.

A run reads as its phases: plan the window of completed buckets (:func:`plan_window`,
no IO), sync its points, then sync the component. Results since the watermark →
completed buckets → one response-time and one uptime point per bucket → the watermark
moves to the bucket's end only after Cachet accepted its points (one transaction per
bucket). A bucket is marked pending before its push, so a run after a crash between
push and commit first looks for that bucket's points in Cachet and does not post them
twice. Then the component status and incident follow the newest results (see
:mod:`statusbridge.pingdom_cachet.component`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import structlog

from statusbridge.config import CheckSettings
from statusbridge.metrics import StatusBridgeMetrics
from statusbridge.pingdom_cachet.cachet import CachetClient
from statusbridge.pingdom_cachet.check_info import CheckInfo, CheckInfoCache
from statusbridge.pingdom_cachet.component import update_component
from statusbridge.pingdom_cachet.pingdom import PingdomClient
from statusbridge.pingdom_cachet.state import CheckRecord, StateFile
from statusbridge.pingdom_cachet.uptime import (
    BucketPoints,
    Result,
    bucket_start,
    completed_bucket_end,
    compute_buckets,
)

log = structlog.get_logger(__name__)

# Results are fetched and buckets pushed in chunks of this many seconds (bounded memory).
CHUNK_S = 6 * 3600
Progress = Callable[[int], None]


@dataclass
class SyncContext:
    """What every sync run shares: API clients, the state file, clock and limits.

    ``info`` caches each check's :class:`CheckInfo`, read through the same clients.
    """

    pingdom: PingdomClient
    cachet: CachetClient
    state_file: StateFile
    dry_run: bool = False
    clock: Callable[[], float] = time.time
    retention_s: float = 30 * 86400.0
    semaphore: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(8))
    metrics: StatusBridgeMetrics = field(default_factory=StatusBridgeMetrics)
    info: CheckInfoCache = field(init=False)

    def __post_init__(self) -> None:
        self.info = CheckInfoCache(self.pingdom, self.cachet, clock=self.clock)


@dataclass
class SyncReport:
    """What one run did, for logs, the CLI and tests."""

    check_id: int
    buckets: int = 0
    points_pushed: int = 0
    points_already_present: int = 0
    watermark: int | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """The buckets of one run: ``[start, end)`` in steps of ``size_s``.

    ``verify_from`` is where Cachet is first asked for points already there (None: no
    bucket may have been pushed without its commit).
    """

    start: int
    end: int
    size_s: int
    verify_from: int | None

    def chunks(self) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of each chunk of at most :data:`CHUNK_S`, whole buckets each."""
        step = max(self.size_s, CHUNK_S - CHUNK_S % self.size_s)
        for start in range(self.start, self.end, step):
            yield start, min(start + step, self.end)


@dataclass(frozen=True, slots=True)
class Fetched:
    """The newest results a run read, and from when (None: it read none)."""

    results: list[Result] = field(default_factory=list)
    since: int | None = None


async def sync_check(
    check: CheckSettings,
    ctx: SyncContext,
    *,
    backfill_since: int | None = None,
    backfill_until: int | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """Bring one check's Cachet metrics, component and incident up to date; a backfill
    that stops in the past (``backfill_until``) leaves the component alone."""
    async with ctx.semaphore:
        return await _sync(
            check,
            ctx,
            backfill_since=backfill_since,
            backfill_until=backfill_until,
            progress=progress,
        )


async def _sync(
    check: CheckSettings,
    ctx: SyncContext,
    *,
    backfill_since: int | None,
    backfill_until: int | None,
    progress: Progress | None,
) -> SyncReport:
    record = ctx.state_file.load(check.pingdom_check_id)
    now = ctx.clock()
    info = await ctx.info.get(check)
    report = SyncReport(check.pingdom_check_id, watermark=record.watermark)
    newest = Fetched()
    if info.bucket_s:
        window = plan_window(
            check,
            record,
            info.bucket_s,
            now=now,
            retention_s=ctx.retention_s,
            backfill_since=backfill_since,
            backfill_until=backfill_until,
        )
        newest = await _sync_points(check, ctx, info, window, report, now=now, progress=progress)
    if check.cachet_component_id is not None and backfill_until is None:
        await _sync_component(check, ctx, record, info, newest, now=now)
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


def plan_window(
    check: CheckSettings,
    record: CheckRecord,
    size_s: int,
    *,
    now: float,
    retention_s: float,
    backfill_since: int | None = None,
    backfill_until: int | None = None,
) -> Window:
    """The completed buckets to push: from the watermark (or the backfill start, or
    ``backfill_hours`` back on a first run), no older than Pingdom keeps results, up to
    the last completed bucket (or the bucket ``backfill_until`` falls in)."""
    end = completed_bucket_end(now, size_s, check.settle_s)
    if backfill_until is not None:
        end = min(end, bucket_start(backfill_until, size_s))
    if backfill_since is not None:
        start = bucket_start(backfill_since, size_s)
    elif record.watermark is not None:
        start = record.watermark
    else:
        start = bucket_start(end - check.backfill_hours * 3600, size_s)
    start = _clamp_to_retention(check, start, bucket_start(now - retention_s, size_s) + size_s)
    # Only a bucket that may have been pushed without its commit needs a lookup, and on a
    # run without a watermark (first run, or a lost state file) every bucket may.
    verify_from = record.pending_bucket
    if backfill_since is not None or record.watermark is None:
        verify_from = start
    return Window(start, end, size_s, verify_from)


async def _sync_points(
    check: CheckSettings,
    ctx: SyncContext,
    info: CheckInfo,
    window: Window,
    report: SyncReport,
    *,
    now: float,
    progress: Progress | None,
) -> Fetched:
    """Push the window's buckets chunk by chunk; return the newest chunk's results."""
    present = await _points_present(ctx, info, window)
    newest = Fetched()
    for chunk_start, chunk_end in window.chunks():
        last = chunk_end == window.end
        fetch_from = chunk_start - info.resolution_s
        fetch_to = int(now) + 1 if last else chunk_end + info.resolution_s
        results = await ctx.pingdom.results(check.pingdom_check_id, fetch_from, fetch_to)
        if last:
            newest = Fetched(results, fetch_from)
        buckets = compute_buckets(
            results,
            start=chunk_start,
            end=chunk_end,
            size_s=window.size_s,
            resolution_s=info.resolution_s,
        )
        for bucket in buckets:
            await _push_bucket(check, ctx, bucket, window.size_s, present, report)
            if progress is not None:
                progress(1)
    if report.watermark is not None:
        ctx.metrics.watermark_moved(str(check.pingdom_check_id), now - report.watermark)
    return newest


async def _points_present(ctx: SyncContext, info: CheckInfo, window: Window) -> dict[int, set[int]]:
    """Per metric, the times of the points Cachet already holds from ``verify_from`` on."""
    if window.verify_from is None or window.verify_from >= window.end:
        return {}
    return {
        metric_id: await ctx.cachet.point_times(metric_id, window.verify_from)
        for metric_id in info.metric_ids
    }


async def _sync_component(
    check: CheckSettings,
    ctx: SyncContext,
    record: CheckRecord,
    info: CheckInfo,
    newest: Fetched,
    *,
    now: float,
) -> None:
    """Let the component status and incident follow the results since the status cursor."""
    status_from = _status_window_start(check, record.hysteresis.cursor, info, now)
    results = newest.results
    if newest.since is None or newest.since > status_from:
        results = await ctx.pingdom.results(check.pingdom_check_id, status_from, int(now) + 1)
    await update_component(check, ctx.cachet, ctx.state_file, record, info, results, ctx.dry_run)


def _bucket_points(check: CheckSettings, bucket: BucketPoints) -> list[tuple[int, float]]:
    """``(metric id, value)`` of each point the bucket gives this check's metrics."""
    return [
        (metric_id, value)
        for metric_id, value in (
            (check.response_time_metric_id, bucket.response_time_ms),
            (check.uptime_metric_id, bucket.uptime_pct),
        )
        if metric_id is not None and value is not None
    ]


async def _push_bucket(
    check: CheckSettings,
    ctx: SyncContext,
    bucket: BucketPoints,
    size_s: int,
    present: dict[int, set[int]],
    report: SyncReport,
) -> None:
    """Post the bucket's points Cachet lacks, then move the watermark past the bucket."""
    points = _bucket_points(check, bucket)
    report.buckets += 1
    if ctx.dry_run:
        _log_would_push(check, bucket, points)
        return
    check_id = check.pingdom_check_id
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
    report.watermark = max(bucket.start + size_s, report.watermark or 0)
    ctx.state_file.commit_bucket(check_id, report.watermark)


def _log_would_push(
    check: CheckSettings, bucket: BucketPoints, points: list[tuple[int, float]]
) -> None:
    """A dry run's bucket: what would be posted, and nothing written."""
    for metric_id, value in points:
        log.info(
            "would_push_point",
            check=check.label,
            metric=metric_id,
            value=value,
            timestamp=bucket.start,
        )


def _clamp_to_retention(check: CheckSettings, start: int, oldest: int) -> int:
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
