"""Cachet 3 end to end: points, status, incidents, crash and restart, backfill, zones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_cachet3 import FakeCachet3
from fake_pingdom import FakePingdom
from structlog.testing import capture_logs
from test_sync import (
    COMPONENT,
    RT,
    T0,
    UP,
    CrashingStateFile,
    check_settings,
    minutes,
)

from statusbridge.config import CachetSettings, PingdomSettings
from statusbridge.exceptions import CachetError, CachetTimeZoneError, StateError
from statusbridge.pingdom_cachet.cachet import CachetClient
from statusbridge.pingdom_cachet.pingdom import PingdomClient
from statusbridge.pingdom_cachet.state import StateFile
from statusbridge.pingdom_cachet.sync import SyncContext, sync_check

CHECK = 7


class Clock:
    """A settable wall clock shared by the sync and the Cachet 3 fake."""

    def __init__(self, now: float, cachet: FakeCachet3) -> None:
        self.cachet = cachet
        self.set(now)

    def set(self, now: float) -> None:
        self.now = now
        self.cachet.now = now

    def __call__(self) -> float:
        return self.now


async def _no_sleep(seconds: float) -> None:
    pass


@pytest.fixture
def cachet3(cachet3_fake: FakeCachet3, pingdom_fake: FakePingdom) -> FakeCachet3:
    """Cachet 3 with a component and two one-minute metrics; Pingdom with the check."""
    pingdom_fake.add_check(CHECK, resolution=1)
    cachet3_fake.add_component(COMPONENT, "Website")
    cachet3_fake.add_metric(RT, threshold=1)
    cachet3_fake.add_metric(UP, threshold=1)
    return cachet3_fake


def settings3(fake: FakeCachet3, **overrides: Any) -> CachetSettings:
    """[cachet] for the fake (base URL without /v1, version probed)."""
    return CachetSettings(**{"base_url": fake.base_url, "token": fake.token, **overrides})


def ctx3(
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet: CachetSettings,
    state: StateFile,
    clock: Clock,
) -> SyncContext:
    """A sync context on Cachet 3 whose 429s move the fake's limiter clock."""
    return SyncContext(
        pingdom=PingdomClient(http, pingdom_settings, sleep=_no_sleep),
        cachet=CachetClient(http, cachet, sleep=clock.cachet.sleep),
        state_file=state,
        clock=clock,
    )


def assert_one_point_per_minute(fake: FakeCachet3, start: int, end: int) -> None:
    """Each metric holds exactly one point (counter 1) per minute of [start, end)."""
    for metric in (RT, UP):
        rows = fake.point_rows(metric)
        assert [row[0] for row in rows] == list(range(start, end, 60)), metric
        assert {row[2] for row in rows} == {1}, metric


async def test_points_status_and_incident_on_cachet_3(
    cachet3: FakeCachet3,
    pingdom_fake: FakePingdom,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    state_path: Path,
) -> None:
    """A probed Cachet 3 gets one point per bucket, status PUTs on change, a linked incident."""
    pingdom_fake.add_results(CHECK, minutes(T0, 58) + minutes(T0 + 58 * 60, 3, "down"))
    clock = Clock(T0 + 3600 + 60, cachet3)
    with StateFile(state_path) as state:
        ctx = ctx3(http, pingdom_settings, settings3(cachet3), state, clock)
        report = await sync_check(check_settings(), ctx)
        assert ctx.cachet.api_version == "3"
        assert report.points_pushed == 58 + 60
        assert cachet3.status_puts == [(COMPONENT, 4)]
        [incident] = cachet3.incidents.values()
        assert (incident["visible"], incident["notifications"]) == (1, True)
        assert incident["components"] == {COMPONENT: 4}
        pingdom_fake.add_results(CHECK, minutes(T0 + 61 * 60, 2))
        clock.set(T0 + 3600 + 180)
        await sync_check(check_settings(), ctx)
        await sync_check(check_settings(), ctx)
    assert cachet3.status_puts == [(COMPONENT, 4), (COMPONENT, 1)]
    assert incident["status"] == 4
    assert [u["status"] for u in incident["updates"]] == [4]
    assert cachet3.notifications == [
        ("incident", incident["id"]),
        ("incident_update", incident["id"]),
    ]
    times = [row[0] for row in cachet3.point_rows(UP)]
    assert times == [T0 + 60 * k for k in range(62)]
    assert {row[2] for row in cachet3.point_rows(UP)} == {1}


async def test_crash_between_push_and_commit_on_cachet_3(
    cachet3: FakeCachet3,
    pingdom_fake: FakePingdom,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    state_path: Path,
) -> None:
    """The bucket Cachet 3 took before the crash is found: no second row, no counter bump."""
    pingdom_fake.add_results(CHECK, minutes(T0, 61))
    clock = Clock(T0 + 3600 + 60, cachet3)
    with CrashingStateFile(state_path, crash_at=10) as state:
        ctx = ctx3(http, pingdom_settings, settings3(cachet3), state, clock)
        with pytest.raises(StateError):
            await sync_check(check_settings(incidents=False), ctx)
    with StateFile(state_path) as state:
        ctx = ctx3(http, pingdom_settings, settings3(cachet3), state, clock)
        report = await sync_check(check_settings(incidents=False), ctx)
    assert report.points_already_present == 2
    assert_one_point_per_minute(cachet3, T0, T0 + 3600)


async def test_lost_state_and_backfill_on_cachet_3(
    cachet3: FakeCachet3,
    pingdom_fake: FakePingdom,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    tmp_path: Path,
) -> None:
    """A lost state file and a repeated backfill add no point to Cachet 3."""
    pingdom_fake.add_results(CHECK, minutes(T0 - 2 * 3600, 3 * 60 + 1))
    clock = Clock(T0 + 3600 + 60, cachet3)
    check = check_settings(incidents=False)
    with StateFile(tmp_path / "a.sqlite3") as state:
        ctx = ctx3(http, pingdom_settings, settings3(cachet3), state, clock)
        await sync_check(check, ctx)
        first = await sync_check(check, ctx, backfill_since=T0 - 2 * 3600)
    with StateFile(tmp_path / "lost.sqlite3") as state:
        ctx = ctx3(http, pingdom_settings, settings3(cachet3), state, clock)
        lost = await sync_check(check, ctx)
        again = await sync_check(check, ctx, backfill_since=T0 - 2 * 3600)
    assert first.points_pushed == 2 * 2 * 60
    assert (lost.points_pushed, again.points_pushed) == (0, 0)
    assert_one_point_per_minute(cachet3, T0 - 2 * 3600, T0 + 3600)


async def test_cachet_3_in_another_time_zone(
    pingdom_fake: FakePingdom,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    tmp_path: Path,
) -> None:
    """With [cachet] timezone naming the server's zone Cachet 3 works; a wrong one stops."""
    pingdom_fake.add_check(CHECK, resolution=1)
    pingdom_fake.add_results(CHECK, minutes(T0, 61))
    with FakeCachet3(app_timezone="Europe/Berlin") as cachet:
        cachet.add_component(COMPONENT)
        cachet.add_metric(RT)
        cachet.add_metric(UP)
        clock = Clock(T0 + 3600 + 60, cachet)
        with StateFile(tmp_path / "wrong.sqlite3") as state:
            ctx = ctx3(http, pingdom_settings, settings3(cachet), state, clock)
            for _ in range(2):
                with pytest.raises(CachetTimeZoneError, match=r"\[cachet\] timezone"):
                    await sync_check(check_settings(incidents=False), ctx)
        assert len(cachet.point_rows(RT)) == 1  # the one point that showed the zone
        berlin = settings3(cachet, timezone="Europe/Berlin")
        for name in ("right.sqlite3", "lost.sqlite3"):
            with StateFile(tmp_path / name) as state:
                ctx = ctx3(http, pingdom_settings, berlin, state, clock)
                await sync_check(check_settings(incidents=False), ctx)
        assert_one_point_per_minute(cachet, T0, T0 + 3600)


async def test_cachet_3_tokens_and_abilities(cachet3: FakeCachet3, http: httpx.AsyncClient) -> None:
    """A token lacking an ability gets Cachet 3's 403; a wrong one fails verify_token."""
    cachet3.tokens["reader"] = frozenset()
    reader = CachetClient(http, settings3(cachet3, token="reader", api_version="3"))
    assert await reader.verify_token() == "token accepted"  # 403: only an ability missing
    with pytest.raises(CachetError, match="Invalid ability provided") as caught:
        await reader.add_point(RT, 1.0, T0)
    assert caught.value.status == 403
    wrong = CachetClient(http, settings3(cachet3, token="wrong", api_version="3"))
    assert (await wrong.component(COMPONENT)).name == "Website"  # reads are open
    with pytest.raises(CachetError) as refused:
        await wrong.verify_token()
    assert refused.value.status == 401


async def test_cachet_3_rate_limit_is_waited_out(
    cachet3: FakeCachet3,
    pingdom_fake: FakePingdom,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    state_path: Path,
) -> None:
    """Past Cachet 3's requests a minute the sync waits Retry-After and loses nothing."""
    cachet3.rate_limit = 40
    pingdom_fake.add_results(CHECK, minutes(T0, 61))
    clock = Clock(T0 + 3600 + 60, cachet3)
    with StateFile(state_path) as state, capture_logs() as logs:
        ctx = ctx3(http, pingdom_settings, settings3(cachet3), state, clock)
        await sync_check(check_settings(incidents=False), ctx)
    assert [e["event"] for e in logs].count("cachet_rate_limited") >= 2
    assert cachet3.limiter_offset >= 60
    assert_one_point_per_minute(cachet3, T0, T0 + 3600)


async def test_cachet_3_creates_metrics_without_the_decimal_trap(
    cachet3: FakeCachet3, http: httpx.AsyncClient
) -> None:
    """A metric created on Cachet 3 leaves default_value out (0 fails `decimal:1,2`)."""
    from statusbridge.pingdom_cachet.cachet import MetricSpec

    client = CachetClient(http, settings3(cachet3))
    metric = await client.create_metric(MetricSpec("Website uptime", "%", threshold=5))
    assert (metric.threshold, metric.suffix) == (5, "%")
    assert cachet3.metrics[metric.id]["calc_type"] == 1
