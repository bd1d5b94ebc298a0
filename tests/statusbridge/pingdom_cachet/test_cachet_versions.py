"""The sync against each real Cachet behaviour of docs/cachet-versions.md (items 1–8).

Every test here failed on the client before these behaviours were handled: it ran
against a fake of the version that shows the trap.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_cachet import FakeCachet
from fake_pingdom import FakePingdom
from structlog.testing import capture_logs
from test_sync import COMPONENT, RT, T0, UP, Clock, check_settings, context, minutes

from statusbridge.config import CachetSettings, PingdomSettings
from statusbridge.exceptions import CachetError, CachetTimeZoneError
from statusbridge.pingdom_cachet.cachet import CachetClient
from statusbridge.pingdom_cachet.state import StateFile
from statusbridge.pingdom_cachet.sync import sync_check

CHECK = 7


@pytest.fixture
def pingdom(pingdom_fake: FakePingdom) -> FakePingdom:
    """Pingdom with the check."""
    pingdom_fake.add_check(CHECK, resolution=1)
    return pingdom_fake


def cachet_of(version: str, **kwargs: Any) -> FakeCachet:
    """A Cachet fake of ``version`` with the component and two one-minute metrics."""
    fake = FakeCachet(version=version, **kwargs)
    fake.add_component(COMPONENT, "Website")
    fake.add_metric(RT, threshold=1)
    fake.add_metric(UP, threshold=1)
    return fake


@pytest.fixture
def cachet23() -> Iterator[FakeCachet]:
    """Cachet 2.3."""
    with cachet_of("2.3") as fake:
        yield fake


def settings_for(fake: FakeCachet) -> CachetSettings:
    """[cachet] for ``fake``."""
    return CachetSettings(base_url=fake.base_url, token=fake.token)


def assert_one_point_per_minute(fake: FakeCachet, start: int, end: int) -> None:
    """Each metric holds exactly one point (counter 1) per minute of [start, end)."""
    for metric in (RT, UP):
        rows = fake.point_rows(metric)
        assert [row[0] for row in rows] == list(range(start, end, 60)), metric
        assert {row[2] for row in rows} == {1}


# -- 1 and 4: points on 2.3 are unordered and unrounded --------------------------------


async def test_lost_state_and_backfill_on_2_3_double_no_point(
    pingdom: FakePingdom,
    cachet23: FakeCachet,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    tmp_path: Path,
) -> None:
    """On 2.3 (points listed oldest inserted first) a lost state file or a backfill adds none."""
    pingdom.add_results(CHECK, minutes(T0 - 3 * 3600, 4 * 3600 // 60 + 1))
    clock = Clock(T0 + 3600 + 60, cachet23)
    with StateFile(tmp_path / "a.sqlite3") as state:
        ctx = context(http, pingdom_settings, settings_for(cachet23), state, clock)
        await sync_check(check_settings(incidents=False, backfill_hours=4), ctx)
    with StateFile(tmp_path / "lost.sqlite3") as state:
        ctx = context(http, pingdom_settings, settings_for(cachet23), state, clock)
        lost = await sync_check(check_settings(incidents=False, backfill_hours=1), ctx)
        backfill = await sync_check(
            check_settings(incidents=False), ctx, backfill_since=T0 - 2 * 3600
        )
    assert (lost.points_pushed, lost.points_already_present) == (0, 2 * 60)
    assert (backfill.points_pushed, backfill.points_already_present) == (0, 2 * 3 * 60)
    assert_one_point_per_minute(cachet23, T0 - 3 * 3600, T0 + 3600)


async def test_point_times_on_2_3_are_exact_and_read_to_the_last_page(
    cachet23: FakeCachet, http: httpx.AsyncClient
) -> None:
    """2.3 keeps a point's time as sent; the look-up reads past older pages and matches exactly."""
    cachet = CachetClient(http, settings_for(cachet23))
    assert (await cachet.add_point(RT, 5.0, T0 + 14)).created_at == T0 + 14
    for minute in range(1, 30):  # inserted later, older in time
        await cachet.add_point(RT, float(minute), T0 - 3600 + 60 * minute)
    await cachet.add_point(RT, 99.0, T0 + 60)
    assert await cachet.point_times(RT, T0) == {T0 + 14, T0 + 60}


# -- 2: notification storms ------------------------------------------------------------


def flapping(start: int) -> list[dict[str, Any]]:
    """An hour in which single downs come and go, with one real outage of three minutes."""
    out = []
    for i in range(60):
        status = "down" if i % 4 == 1 or 30 <= i < 33 else "up"
        result: dict[str, Any] = {"probeid": 1, "time": start + 60 * i + 5, "status": status}
        if status == "up":
            result["responsetime"] = 120
        out.append(result)
    return out


@pytest.mark.parametrize("version", ["2.4.1", "2.4"])
@pytest.mark.parametrize("notify", [True, False])
async def test_a_flapping_check_mails_nobody_about_the_component(
    pingdom: FakePingdom,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    state_path: Path,
    version: str,
    notify: bool,
) -> None:
    """Many status changes mail no subscriber; the incident mails once when opened, if notify."""
    pingdom.add_results(CHECK, flapping(T0))
    with cachet_of(version) as cachet:
        clock = Clock(T0 + 600, cachet)
        with StateFile(state_path) as state:
            ctx = context(http, pingdom_settings, settings_for(cachet), state, clock)
            for minute in range(10, 62):
                clock.set(T0 + 60 * minute + 30)
                await sync_check(check_settings(notify=notify), ctx)
        puts = len(cachet.status_puts)
        kinds = [kind for kind, _ in cachet.notifications]
    assert puts >= 20
    assert cachet.component_mails() == 0
    assert kinds.count("incident") == (1 if notify else 0)
    assert kinds.count("incident_update") == (1 if notify else 0)


async def test_status_changes_mail_when_asked(
    pingdom: FakePingdom,
    cachet_fake: FakeCachet,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    cachet_settings: CachetSettings,
    state_path: Path,
) -> None:
    """With notify_on_status_change = true each status change mails subscribers on 2.4."""
    cachet_fake.add_component(COMPONENT, "Website")
    cachet_fake.add_metric(RT)
    cachet_fake.add_metric(UP)
    pingdom.add_results(CHECK, minutes(T0, 58) + minutes(T0 + 58 * 60, 3, "down"))
    clock = Clock(T0 + 3600 + 60, cachet_fake)
    with StateFile(state_path) as state:
        ctx = context(http, pingdom_settings, cachet_settings, state, clock)
        await sync_check(check_settings(notify_on_status_change=True, incidents=False), ctx)
    assert cachet_fake.status_puts == [(COMPONENT, 4)]
    assert cachet_fake.component_mails() == 1


# -- 3: the 2.4 time-zone bug ----------------------------------------------------------


async def test_app_timezone_on_2_4_stops_with_a_clear_error_and_doubles_nothing(
    pingdom: FakePingdom,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    tmp_path: Path,
) -> None:
    """APP_TIMEZONE=Europe/Berlin on 2.4: the first point is taken back and pushing stops."""
    pingdom.add_results(CHECK, minutes(T0, 61))
    with cachet_of("2.4.1", app_timezone="Europe/Berlin") as cachet:
        clock = Clock(T0 + 3600 + 60, cachet)
        for run in range(2):  # a restart (new client, state file kept) stops the same way
            with StateFile(tmp_path / "state.sqlite3") as state:
                ctx = context(http, pingdom_settings, settings_for(cachet), state, clock)
                for _ in range(2):
                    with pytest.raises(CachetTimeZoneError, match="APP_TIMEZONE") as caught:
                        await sync_check(check_settings(incidents=False), ctx)
                    assert caught.value.shift_s == -3600
                    assert state.load(CHECK).watermark is None
            posts = [r for r in cachet.requests if r.method == "POST"]
            assert len(posts) == run + 1  # one probe point per process, then none
        assert cachet.point_rows(RT) == []
        assert cachet.point_rows(UP) == []


# -- 5: 2.3's PUT resets `enabled` -----------------------------------------------------


async def test_a_disabled_component_on_2_3_stays_disabled(
    pingdom: FakePingdom,
    cachet23: FakeCachet,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    state_path: Path,
) -> None:
    """A status change on 2.3 sends the component's `enabled` back, so it stays disabled."""
    cachet23.components[COMPONENT]["enabled"] = False
    pingdom.add_results(CHECK, minutes(T0, 58) + minutes(T0 + 58 * 60, 3, "down"))
    clock = Clock(T0 + 3600 + 60, cachet23)
    with StateFile(state_path) as state:
        ctx = context(http, pingdom_settings, settings_for(cachet23), state, clock)
        await sync_check(check_settings(incidents=False), ctx)
    assert cachet23.status_puts == [(COMPONENT, 4)]
    assert cachet23.components[COMPONENT]["enabled"] is False


# -- 6: the version is read, never guessed from a write's 404 --------------------------


class DeletingCachet(FakeCachet):
    """A 2.4 whose incidents disappear right after they are read (a human deleting one)."""

    delete_after_read: set[int]

    def handle(self, request: Any) -> Any:
        """Answer, then delete an incident that was just read, once."""
        response = super().handle(request)
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and parts[-2:-1] == ["incidents"]:
            incident_id = int(parts[-1])
            if incident_id in self.delete_after_read:
                self.delete_after_read.discard(incident_id)
                del self.incidents[incident_id]
        return response


async def test_a_deleted_incidents_404_does_not_switch_modes(
    pingdom: FakePingdom,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    state_path: Path,
) -> None:
    """/updates answering 404 for a deleted incident leaves 2.4 mode: the next one uses it."""
    with DeletingCachet(version="2.4") as cachet:
        cachet.add_component(COMPONENT)
        cachet.add_metric(RT)
        cachet.add_metric(UP)
        outage = minutes(T0, 58) + minutes(T0 + 58 * 60, 3, "down") + minutes(T0 + 61 * 60, 2)
        pingdom.add_results(CHECK, outage)
        clock = Clock(T0 + 3600 + 60, cachet)
        with StateFile(state_path) as state, capture_logs() as logs:
            ctx = context(http, pingdom_settings, settings_for(cachet), state, clock)
            await sync_check(check_settings(), ctx)
            first = state.load(CHECK).incident_id
            assert first is not None
            cachet.delete_after_read = {first}
            clock.set(T0 + 3600 + 180)
            await sync_check(check_settings(), ctx)  # its /updates answers 404
            assert state.load(CHECK).incident_id is None
            again = minutes(T0 + 63 * 60, 3, "down") + minutes(T0 + 66 * 60, 2)
            pingdom.add_results(CHECK, again)
            clock.set(T0 + 3600 + 5 * 60 + 30)
            await sync_check(check_settings(), ctx)
            second = state.load(CHECK).incident_id
            assert second is not None
            clock.set(T0 + 3600 + 8 * 60 + 30)
            await sync_check(check_settings(), ctx)
        assert cachet.incidents[second]["updates"], "resolved with /updates, still 2.4"
        assert ctx.cachet.api_version == "2.4"
        assert [e["event"] for e in logs].count("cachet_api") == 1
        probes = [r.path for r in cachet.requests if r.path.endswith(("/schedules", "/ping"))]
        assert probes == ["/api/v1/ping", "/api/v1/schedules"]


# -- 8: the incident names its component -----------------------------------------------


@pytest.mark.parametrize("version", ["2.3", "2.4.1", "2.4"])
async def test_incidents_link_their_component_without_mailing_about_it(
    pingdom: FakePingdom,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    state_path: Path,
    version: str,
) -> None:
    """The incident carries component_id; linking it mails nobody about the component."""
    pingdom.add_results(CHECK, minutes(T0, 58) + minutes(T0 + 58 * 60, 3, "down"))
    with cachet_of(version) as cachet:
        clock = Clock(T0 + 3600 + 60, cachet)
        with StateFile(state_path) as state:
            ctx = context(http, pingdom_settings, settings_for(cachet), state, clock)
            await sync_check(check_settings(), ctx)
        [incident] = cachet.incidents.values()
        component_mails = cachet.component_mails()
    assert incident["component_id"] == COMPONENT
    assert cachet.components[COMPONENT]["status"] == 4
    # 2.3 mails on its own status PUT (no silent updates there), never for the link.
    assert component_mails == (1 if version == "2.3" else 0)


@pytest.mark.parametrize(("version", "notify"), [("2.3", True), ("2.4.1", False)])
async def test_resolving_by_put_keeps_visible_and_stickied(
    pingdom: FakePingdom,
    http: httpx.AsyncClient,
    pingdom_settings: PingdomSettings,
    state_path: Path,
    version: str,
    notify: bool,
) -> None:
    """A PUT that resolves an incident sends its visible (and stickied) back as they were."""
    pingdom.add_results(CHECK, minutes(T0, 58) + minutes(T0 + 58 * 60, 3, "down"))
    with cachet_of(version) as cachet:
        clock = Clock(T0 + 3600 + 60, cachet)
        with StateFile(state_path) as state:
            ctx = context(http, pingdom_settings, settings_for(cachet), state, clock)
            await sync_check(check_settings(notify=notify), ctx)
            [incident] = cachet.incidents.values()
            # Set behind the API's back (its updated_at unchanged, so not a human edit).
            incident["visible"] = 0
            if version != "2.3":
                incident["stickied"] = True
            pingdom.add_results(CHECK, minutes(T0 + 61 * 60, 2))
            clock.set(T0 + 3600 + 180)
            await sync_check(check_settings(notify=notify), ctx)
    assert incident["status"] == 4
    assert incident["updates"] == []
    assert incident["visible"] == 0
    assert incident.get("stickied", True) is True
    assert cachet.incident_mails() == (1 if notify else 0)


async def test_version_is_configured_without_a_probe(
    cachet23: FakeCachet, http: httpx.AsyncClient
) -> None:
    """api_version = "2.3" skips the probe; a failed probe raises without picking a version."""
    configured = CachetSettings(base_url=cachet23.base_url, token=cachet23.token, api_version="2.3")
    cachet = CachetClient(http, configured)
    await cachet.component(COMPONENT)
    assert [r.path for r in cachet23.requests] == [f"/api/v1/components/{COMPONENT}"]
    cachet23.down = True
    probing = CachetClient(http, settings_for(cachet23))
    with pytest.raises(CachetError):
        await probing.component(COMPONENT)
    assert probing.api_version is None
