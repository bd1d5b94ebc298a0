"""sync_check end to end against the Pingdom and Cachet fakes."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_cachet import FakeCachet
from fake_pingdom import FakePingdom

from statusbridge.config import CachetSettings, CheckSettings, PingdomSettings
from statusbridge.exceptions import CachetError, StateError
from statusbridge.pingdom_cachet.cachet import CachetClient
from statusbridge.pingdom_cachet.check_info import CheckInfoCache
from statusbridge.pingdom_cachet.pingdom import PingdomClient
from statusbridge.pingdom_cachet.state import CheckRecord, StateFile
from statusbridge.pingdom_cachet.sync import SyncContext, Window, plan_window, sync_check

T0 = 1_699_999_200  # a whole hour
CHECK = 7
RT, UP, COMPONENT = 1, 2, 1


class Clock:
    """A settable wall clock shared by the sync and the Cachet fake."""

    def __init__(self, now: float, cachet: FakeCachet) -> None:
        self.cachet = cachet
        self.set(now)

    def set(self, now: float) -> None:
        self.now = now
        self.cachet.now = now

    def __call__(self) -> float:
        return self.now


async def _no_sleep(seconds: float) -> None:
    pass


def minutes(start: int, count: int, status: str = "up") -> list[dict[str, Any]]:
    """One result per minute, 5 s into each minute, response time 100 + minute index."""
    out: list[dict[str, Any]] = []
    for i in range(count):
        result: dict[str, Any] = {"probeid": 1, "time": start + 60 * i + 5, "status": status}
        if status == "up":
            result["responsetime"] = 100 + i
        out.append(result)
    return out


@pytest.fixture
def setup(pingdom_fake: FakePingdom, cachet_fake: FakeCachet) -> tuple[FakePingdom, FakeCachet]:
    """One check with a component and two one-minute metrics."""
    pingdom_fake.add_check(CHECK, resolution=1)
    cachet_fake.add_component(COMPONENT, "Website")
    cachet_fake.add_metric(RT, threshold=1)
    cachet_fake.add_metric(UP, threshold=1)
    return pingdom_fake, cachet_fake


def check_settings(**overrides: Any) -> CheckSettings:
    values: dict[str, Any] = {
        "pingdom_check_id": CHECK,
        "cachet_component_id": COMPONENT,
        "response_time_metric_id": RT,
        "uptime_metric_id": UP,
        "down_after": 2,
        "up_after": 1,
        "incidents": True,
        "backfill_hours": 1,
        "settle_s": 60,
    }
    return CheckSettings(**{**values, **overrides})


def context(
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet_settings: CachetSettings,
    state: StateFile,
    clock: Clock,
    **kwargs: Any,
) -> SyncContext:
    return SyncContext(
        pingdom=PingdomClient(http, pingdom_settings, sleep=_no_sleep),
        cachet=CachetClient(http, cachet_settings),
        state_file=state,
        clock=clock,
        **kwargs,
    )


def times(rows: Iterable[tuple[int, float, int]]) -> list[int]:
    return [row[0] for row in rows]


async def test_first_run_pushes_one_point_per_completed_bucket(
    setup: tuple[FakePingdom, FakeCachet],
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet_settings: CachetSettings,
    state_path: Path,
) -> None:
    """An hour of results gives 60 points per metric at bucket starts; a rerun adds none."""
    pingdom, cachet = setup
    pingdom.add_results(CHECK, minutes(T0, 61))
    clock = Clock(T0 + 3600 + 60, cachet)
    with StateFile(state_path) as state:
        ctx = context(http, pingdom_settings, cachet_settings, state, clock)
        report = await sync_check(check_settings(), ctx)
        assert report.points_pushed == 120
        assert state.load(CHECK).watermark == T0 + 3600
        again = await sync_check(check_settings(), ctx)
    assert again.points_pushed == 0
    assert cachet.point_rows(RT) == [(T0 + 60 * k, 100.0 + k, 1) for k in range(60)]
    assert cachet.point_rows(UP) == [(T0 + 60 * k, 100.0, 1) for k in range(60)]
    assert cachet.status_puts == []


class CrashingStateFile(StateFile):
    """A state whose n-th bucket commit fails, like a kill between push and commit."""

    def __init__(self, path: Path, crash_at: int) -> None:
        super().__init__(path)
        self.commits = 0
        self.crash_at = crash_at

    def commit_bucket(self, check_id: int, watermark: int) -> None:
        self.commits += 1
        if self.commits == self.crash_at:
            raise StateError("killed between push and commit")
        super().commit_bucket(check_id, watermark)


async def test_restart_after_crash_between_push_and_commit(
    setup: tuple[FakePingdom, FakeCachet],
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet_settings: CachetSettings,
    state_path: Path,
) -> None:
    """The bucket pushed but not committed is found in Cachet: no duplicate and no gap."""
    pingdom, cachet = setup
    pingdom.add_results(CHECK, minutes(T0, 61))
    clock = Clock(T0 + 3600 + 60, cachet)
    with CrashingStateFile(state_path, crash_at=10) as state:
        ctx = context(http, pingdom_settings, cachet_settings, state, clock)
        with pytest.raises(StateError):
            await sync_check(check_settings(), ctx)
    assert len(cachet.point_rows(RT)) == 10
    with StateFile(state_path) as state:
        assert state.load(CHECK).watermark == T0 + 9 * 60
        ctx = context(http, pingdom_settings, cachet_settings, state, clock)
        report = await sync_check(check_settings(), ctx)
    assert report.points_already_present == 2
    for metric in (RT, UP):
        rows = cachet.point_rows(metric)
        assert times(rows) == [T0 + 60 * k for k in range(60)]
        assert all(counter == 1 for _, _, counter in rows)


async def test_cachet_down_holds_the_watermark_and_backlog_goes_in_order(
    setup: tuple[FakePingdom, FakeCachet],
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet_settings: CachetSettings,
    state_path: Path,
) -> None:
    """While Cachet is down nothing moves; afterwards the backlog is posted oldest first."""
    pingdom, cachet = setup
    pingdom.add_results(CHECK, minutes(T0, 181))
    clock = Clock(T0 + 3600 + 60, cachet)
    with StateFile(state_path) as state:
        ctx = context(http, pingdom_settings, cachet_settings, state, clock)
        await sync_check(check_settings(), ctx)
        cachet.down = True
        clock.set(T0 + 2 * 3600 + 60)
        with pytest.raises(CachetError):
            await sync_check(check_settings(), ctx)
        assert state.load(CHECK).watermark == T0 + 3600
        clock.set(T0 + 3 * 3600 + 60)
        cachet.down = False
        await sync_check(check_settings(), ctx)
        assert state.load(CHECK).watermark == T0 + 3 * 3600
    by_id = sorted(cachet.points[RT], key=lambda p: p["id"])
    assert [p["created_at"] for p in by_id] == [T0 + 60 * k for k in range(180)]


async def test_outage_opens_and_recovery_resolves_an_incident(
    setup: tuple[FakePingdom, FakeCachet],
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet_settings: CachetSettings,
    state_path: Path,
) -> None:
    """Two downs → major outage and an incident; an up → operational and the incident fixed."""
    pingdom, cachet = setup
    pingdom.add_results(CHECK, minutes(T0, 58) + minutes(T0 + 58 * 60, 3, "down"))
    clock = Clock(T0 + 3600 + 60, cachet)
    with StateFile(state_path) as state:
        ctx = context(http, pingdom_settings, cachet_settings, state, clock)
        await sync_check(check_settings(), ctx)
        assert cachet.status_puts == [(COMPONENT, 4)]
        [incident] = cachet.incidents.values()
        assert incident["name"] == "Website is down"
        assert "2023-11-14 22:59 UTC" in incident["message"]
        assert state.load(CHECK).incident_id == incident["id"]
        pingdom.add_results(CHECK, minutes(T0 + 61 * 60, 2))
        clock.set(T0 + 3600 + 180)
        await sync_check(check_settings(), ctx)
        assert state.load(CHECK).incident_id is None
    assert cachet.status_puts == [(COMPONENT, 4), (COMPONENT, 1)]
    assert incident["status"] == 4
    assert incident["updates"][0]["message"].startswith("Website is back up")


async def test_incident_closed_by_a_human_is_left_alone(
    setup: tuple[FakePingdom, FakeCachet],
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet_settings: CachetSettings,
    state_path: Path,
) -> None:
    """An incident someone already fixed gets no update from us when the check recovers."""
    pingdom, cachet = setup
    pingdom.add_results(CHECK, minutes(T0, 58) + minutes(T0 + 58 * 60, 3, "down"))
    clock = Clock(T0 + 3600 + 60, cachet)
    with StateFile(state_path) as state:
        ctx = context(http, pingdom_settings, cachet_settings, state, clock)
        await sync_check(check_settings(), ctx)
        [incident] = cachet.incidents.values()
        incident.update(status=4, updated_at=clock.now + 30, message="Fixed by ops.")
        pingdom.add_results(CHECK, minutes(T0 + 61 * 60, 2))
        clock.set(T0 + 3600 + 180)
        await sync_check(check_settings(), ctx)
        assert state.load(CHECK).incident_id is None
    assert incident["updates"] == []
    assert incident["message"] == "Fixed by ops."
    assert cachet.status_puts[-1] == (COMPONENT, 1)


async def test_hysteresis_keeps_outage_until_up_after_ups(
    setup: tuple[FakePingdom, FakeCachet],
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet_settings: CachetSettings,
    state_path: Path,
) -> None:
    """With up_after=3, two ups after an outage keep the component in major outage."""
    pingdom, cachet = setup
    pingdom.add_results(CHECK, minutes(T0, 55, "down") + minutes(T0 + 55 * 60, 2))
    clock = Clock(T0 + 3600, cachet)
    settings = check_settings(up_after=3, incidents=False)
    with StateFile(state_path) as state:
        ctx = context(http, pingdom_settings, cachet_settings, state, clock)
        await sync_check(settings, ctx)
        assert cachet.status_puts == [(COMPONENT, 4)]
        pingdom.add_results(CHECK, minutes(T0 + 57 * 60, 1))
        clock.set(T0 + 3600 + 120)
        await sync_check(settings, ctx)
    assert cachet.status_puts == [(COMPONENT, 4), (COMPONENT, 1)]


async def test_results_older_than_retention_are_a_logged_gap(
    setup: tuple[FakePingdom, FakeCachet],
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet_settings: CachetSettings,
    state_path: Path,
) -> None:
    """A watermark older than Pingdom keeps results skips ahead instead of failing."""
    pingdom, cachet = setup
    pingdom.add_results(CHECK, minutes(T0, 61))
    clock = Clock(T0 + 3600 + 60, cachet)
    with StateFile(state_path) as state:
        ctx = context(http, pingdom_settings, cachet_settings, state, clock, retention_s=1800)
        await sync_check(check_settings(), ctx)
    assert times(cachet.point_rows(RT))[0] >= T0 + 1800


async def test_dry_run_writes_nothing(
    setup: tuple[FakePingdom, FakeCachet],
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet_settings: CachetSettings,
    state_path: Path,
) -> None:
    """A dry run reads both APIs but neither posts, puts nor moves the watermark."""
    pingdom, cachet = setup
    pingdom.add_results(CHECK, minutes(T0, 58) + minutes(T0 + 58 * 60, 3, "down"))
    clock = Clock(T0 + 3600 + 60, cachet)
    with StateFile(state_path) as state:
        ctx = context(http, pingdom_settings, cachet_settings, state, clock, dry_run=True)
        report = await sync_check(check_settings(), ctx)
        assert state.load(CHECK).watermark is None
    assert report.buckets == 60
    assert [r.method for r in cachet.requests if r.method != "GET"] == []


async def test_a_day_backlog_pages_past_the_1000_cap(
    setup: tuple[FakePingdom, FakeCachet],
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet_settings: CachetSettings,
    state_path: Path,
) -> None:
    """1440 one-minute results of a day all become points with five-minute buckets."""
    pingdom, cachet = setup
    cachet.add_metric(UP, threshold=5)
    pingdom.add_results(CHECK, minutes(T0, 1441))
    clock = Clock(T0 + 86400 + 60, cachet)
    settings = check_settings(backfill_hours=24, response_time_metric_id=None)
    with StateFile(state_path) as state:
        ctx = context(http, pingdom_settings, cachet_settings, state, clock)
        await sync_check(settings, ctx)
    assert times(cachet.point_rows(UP)) == [T0 + 300 * k for k in range(288)]


def test_plan_window_starts_at_watermark_backfill_or_backfill_hours() -> None:
    """The window ends at the newest completed bucket and starts where the run must resume."""
    check = check_settings(backfill_hours=1, settle_s=60)
    now = T0 + 3600 + 90
    plan = functools.partial(plan_window, check, size_s=60, now=now, retention_s=86400)
    first = plan(CheckRecord(CHECK))
    assert (first.start, first.end, first.verify_from) == (T0, T0 + 3600, T0)
    resumed = plan(CheckRecord(CHECK, watermark=T0 + 1800, pending_bucket=T0 + 1800))
    assert (resumed.start, resumed.verify_from) == (T0 + 1800, T0 + 1800)
    assert plan(CheckRecord(CHECK, watermark=T0 + 1800)).verify_from is None
    backfill = plan(CheckRecord(CHECK, watermark=T0 + 1800), backfill_since=T0 - 599)
    assert (backfill.start, backfill.verify_from) == (T0 - 600, T0 - 600)
    assert list(Window(T0, T0 + 9 * 3600, 300, None).chunks()) == [
        (T0, T0 + 6 * 3600),
        (T0 + 6 * 3600, T0 + 9 * 3600),
    ]


async def test_check_info_is_read_once_per_ttl(
    setup: tuple[FakePingdom, FakeCachet],
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet_settings: CachetSettings,
) -> None:
    """Metric thresholds are read from Cachet once, then again only after the TTL."""
    _, cachet = setup
    now = [float(T0)]
    cache = CheckInfoCache(
        PingdomClient(http, pingdom_settings),
        CachetClient(http, cachet_settings),
        clock=lambda: now[0],
        ttl_s=600,
    )
    check = check_settings()
    first = await cache.get(check)
    assert await cache.get(check) is first
    now[0] += 601
    assert await cache.get(check) == first
    reads = [r for r in cachet.requests if r.method == "GET" and r.path == f"/api/v1/metrics/{UP}"]
    assert (len(reads), first.bucket_s, first.component_name) == (2, 60, "Website")
