"""The Cachet client against the in-process Cachet fake (2.3 and 2.4)."""

from __future__ import annotations

import httpx
import pytest
from fake_cachet import FakeCachet

from statusbridge.config import CachetSettings
from statusbridge.exceptions import CachetError
from statusbridge.pingdom_cachet.cachet import INCIDENT_FIXED, CachetClient

T0 = 1_700_000_040


async def test_point_timestamp_is_an_int_and_rounded_to_30_s(
    cachet_fake: FakeCachet, cachet_settings: CachetSettings, http: httpx.AsyncClient
) -> None:
    """A point is posted with an int timestamp; created_at comes back in UTC, rounded."""
    cachet_fake.add_metric(1)
    cachet = CachetClient(http, cachet_settings)
    point = await cachet.add_point(1, 12.5, T0 + 14)
    assert cachet_fake.requests[-1].body == {"value": 12.5, "timestamp": T0 + 14}
    assert point.created_at == T0
    assert (await cachet.add_point(1, 13.0, T0 + 16)).created_at == T0 + 30


async def test_points_follow_pagination_newest_first(
    cachet_fake: FakeCachet, cachet_settings: CachetSettings, http: httpx.AsyncClient
) -> None:
    """All 45 points come back over several pages, newest first."""
    cachet_fake.add_metric(1)
    cachet = CachetClient(http, cachet_settings)
    for i in range(45):
        await cachet.add_point(1, float(i), T0 + 60 * i)
    times = [p.created_at async for p in cachet.points(1, per_page=20)]
    assert len(times) == 45
    assert times == sorted(times, reverse=True)
    assert sum("/points" in r.path and r.method == "GET" for r in cachet_fake.requests) == 3


async def test_point_times_stop_at_since(
    cachet_fake: FakeCachet, cachet_settings: CachetSettings, http: httpx.AsyncClient
) -> None:
    """point_times lists the timestamps at or after `since` and stops paging past it."""
    cachet_fake.add_metric(1)
    cachet = CachetClient(http, cachet_settings)
    for i in range(10):
        await cachet.add_point(1, float(i), T0 + 60 * i)
    assert await cachet.point_times(1, T0 + 480) == {T0 + 480, T0 + 540}


async def test_validation_errors_are_surfaced(
    cachet_fake: FakeCachet, cachet_settings: CachetSettings, http: httpx.AsyncClient
) -> None:
    """A 400 raises CachetError listing Cachet's meta.details."""
    with pytest.raises(CachetError, match="The name field is required") as caught:
        await CachetClient(http, cachet_settings).create_incident("", "text")
    assert caught.value.status == 400


async def test_writes_without_token_are_refused(
    cachet_fake: FakeCachet, http: httpx.AsyncClient
) -> None:
    """A missing token fails writes with 401 while reads work."""
    cachet_fake.add_component(1)
    cachet = CachetClient(http, CachetSettings(base_url=cachet_fake.base_url))
    assert (await cachet.component(1)).status == 1
    with pytest.raises(CachetError) as caught:
        await cachet.set_component_status(1, 4)
    assert caught.value.status == 401


@pytest.mark.parametrize(("version", "uses_updates"), [("2.4", True), ("2.3", False)])
async def test_resolve_incident_on_2_3_and_2_4(
    http: httpx.AsyncClient, version: str, uses_updates: bool
) -> None:
    """2.4 resolves with POST /updates; 2.3, told apart by a read, with PUT /incidents."""
    with FakeCachet(version=version) as fake:
        cachet = CachetClient(http, CachetSettings(base_url=fake.base_url, token=fake.token))
        incident = await cachet.create_incident("Website is down", "Investigating")
        resolved = await cachet.resolve_incident(incident.id, "Back up")
        assert resolved.status == INCIDENT_FIXED
        assert fake.incidents[incident.id]["status"] == INCIDENT_FIXED
        assert bool(fake.incidents[incident.id]["updates"]) is uses_updates
        assert cachet.api_version == version


async def test_cachet_down_is_a_cachet_error(
    cachet_fake: FakeCachet, cachet_settings: CachetSettings, http: httpx.AsyncClient
) -> None:
    """503 answers are retried and then raised as CachetError with the status."""
    cachet_fake.add_metric(1)
    cachet_fake.down = True
    with pytest.raises(CachetError) as caught:
        await CachetClient(http, cachet_settings).add_point(1, 1.0, T0)
    assert caught.value.status == 503
    assert len(cachet_fake.requests) == 3
