"""The Pingdom client against the in-process Pingdom fake."""

from __future__ import annotations

import httpx
import pytest
from fake_pingdom import FakePingdom
from structlog.testing import capture_logs

from statusbridge.config import PingdomSettings
from statusbridge.exceptions import PingdomError, QuotaExhausted
from statusbridge.pingdom_cachet.pingdom import PingdomClient
from statusbridge.pingdom_cachet.quota import QuotaPacer, parse_quota

T0 = 1_700_000_000


class Sleeps:
    """Records requested sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def client(http: httpx.AsyncClient, settings: PingdomSettings, sleeps: Sleeps) -> PingdomClient:
    return PingdomClient(http, settings, sleep=sleeps)


async def test_results_page_through_the_1000_cap(
    pingdom_fake: FakePingdom, pingdom_settings: PingdomSettings, http: httpx.AsyncClient
) -> None:
    """2500 results in one window come back complete, deduped and oldest first."""
    pingdom_fake.add_check(7)
    pingdom_fake.add_results(
        7,
        [
            {"probeid": 1 + i % 3, "time": T0 + 10 * i, "status": "up", "responsetime": 100 + i}
            for i in range(2500)
        ],
    )
    results = await client(http, pingdom_settings, Sleeps()).results(7, T0, T0 + 25_000)
    assert len(results) == 2500
    assert [r.time for r in results] == sorted(r.time for r in results)
    requests = pingdom_fake.result_requests()
    assert len(requests) >= 3
    assert all(r.query["limit"] == "1000" for r in requests)


async def test_results_window_is_half_open_and_fields_are_optional(
    pingdom_fake: FakePingdom, pingdom_settings: PingdomSettings, http: httpx.AsyncClient
) -> None:
    """Down results without responsetime and results without probe parse; `end` is excluded."""
    pingdom_fake.add_check(7)
    pingdom_fake.add_results(
        7,
        [
            {"probeid": 68, "time": T0, "status": "down", "statusdesc": "Timeout (> 30s)"},
            {"time": T0 + 60},
            {"probeid": 68, "time": T0 + 120, "status": "up", "responsetime": 321},
            {"status": "up"},
        ],
    )
    results = await client(http, pingdom_settings, Sleeps()).results(7, T0, T0 + 120)
    assert [(r.time, r.status, r.probe_id, r.response_time_ms) for r in results] == [
        (T0, "down", 68, None),
        (T0 + 60, "unknown", None, None),
    ]


async def test_legacy_2_0_uses_basic_auth_and_app_key(http: httpx.AsyncClient) -> None:
    """API 2.0 sends Basic credentials and App-Key (and Account-Email when set)."""
    with FakePingdom(api_version="2.0") as fake:
        fake.add_check(5)
        user, password = fake.basic
        settings = PingdomSettings(
            api_version="2.0",
            base_url=fake.base_url,
            username=user,
            password=password,
            app_key=fake.app_key,
            account_email="team@example.com",
        )
        checks = await client(http, settings, Sleeps()).checks()
        assert [c.id for c in checks] == [5]
        assert fake.requests[-1].headers["account-email"] == "team@example.com"


async def test_error_body_is_surfaced(pingdom_fake: FakePingdom, http: httpx.AsyncClient) -> None:
    """A 401 raises PingdomError carrying Pingdom's statusdesc and errormessage."""
    settings = PingdomSettings(base_url=pingdom_fake.base_url, token="wrong")
    with pytest.raises(PingdomError, match="Invalid email and/or password") as caught:
        await client(http, settings, Sleeps()).checks()
    assert caught.value.status == 401


async def test_429_waits_for_the_reset_then_retries(
    pingdom_fake: FakePingdom, pingdom_settings: PingdomSettings, http: httpx.AsyncClient
) -> None:
    """A 429 sleeps until the short window resets, then the request goes through."""
    pingdom_fake.add_check(7)
    pingdom_fake.short_reset_s = 42
    pingdom_fake.fail_next = [429]
    sleeps = Sleeps()
    pingdom = client(http, pingdom_settings, sleeps)
    # The fake resets its quota when the (injected) sleep is over.
    original = sleeps.__call__

    async def sleep_and_reset(seconds: float) -> None:
        await original(seconds)
        pingdom_fake.short_remaining = 100

    pingdom.pacer = QuotaPacer(sleep=sleep_and_reset)
    checks = await pingdom.checks()
    assert [c.id for c in checks] == [7]
    assert sleeps.calls == [pytest.approx(42.0, abs=0.5)]


async def test_quota_far_away_raises_quota_exhausted(
    pingdom_fake: FakePingdom, pingdom_settings: PingdomSettings, http: httpx.AsyncClient
) -> None:
    """When the spent window resets later than we are willing to wait, QuotaExhausted is raised."""
    pingdom_fake.short_remaining = 0
    pingdom_fake.short_reset_s = 3000
    with pytest.raises(QuotaExhausted) as caught:
        await client(http, pingdom_settings, Sleeps()).checks()
    assert caught.value.reset_after_s == pytest.approx(3000, abs=1)


async def test_low_quota_spreads_requests(
    pingdom_fake: FakePingdom, pingdom_settings: PingdomSettings, http: httpx.AsyncClient
) -> None:
    """Below the reserve, each request waits the window's rest divided by what remains."""
    pingdom_fake.add_check(7)
    pingdom_fake.short_remaining = 10
    pingdom_fake.short_reset_s = 600
    sleeps = Sleeps()
    pingdom = client(http, pingdom_settings, sleeps)
    await pingdom.checks()
    assert sleeps.calls == []
    await pingdom.checks()
    assert len(sleeps.calls) == 1
    assert sleeps.calls[0] == pytest.approx(600 / 10, rel=0.05)


async def test_5xx_is_retried(
    pingdom_fake: FakePingdom, pingdom_settings: PingdomSettings, http: httpx.AsyncClient
) -> None:
    """Two 503 answers are retried and the third attempt succeeds."""
    pingdom_fake.add_check(7)
    pingdom_fake.fail_next = [503, 503]
    assert [c.id for c in await client(http, pingdom_settings, Sleeps()).checks()] == [7]


async def test_unreachable_pingdom_is_a_pingdom_error(http: httpx.AsyncClient) -> None:
    """A refused connection becomes PingdomError with no status, after the retries."""
    with FakePingdom() as fake:
        url = fake.base_url
    settings = PingdomSettings(base_url=url, token="t")
    with pytest.raises(PingdomError) as caught:
        await client(http, settings, Sleeps()).checks()
    assert caught.value.status is None


def test_quota_header_parsing() -> None:
    """Req-Limit values parse; malformed ones are ignored rather than trusted."""
    quota = parse_quota("Remaining: 394 Time until reset: 3589", 0.0)
    assert quota is not None
    assert (quota.remaining, quota.reset_s) == (394, 3589)
    assert parse_quota("invalid", 0.0) is None
    assert parse_quota(None, 0.0) is None


async def test_a_proxys_429_backs_off_briefly_and_names_the_limit(
    pingdom_fake: FakePingdom, pingdom_settings: PingdomSettings, http: httpx.AsyncClient
) -> None:
    """A 429 with no spent quota (a proxy) waits seconds, not Pingdom's reset, and retries."""
    pingdom_fake.add_check(7)
    pingdom_fake.proxy_429_next = 2
    pingdom_fake.proxy_retry_after = None
    sleeps = Sleeps()
    with capture_logs() as logs:
        checks = await client(http, pingdom_settings, sleeps).checks()
    assert [c.id for c in checks] == [7]
    assert sleeps.calls == [1.0, 2.0]
    limits = [e["limit"] for e in logs if e["event"] == "pingdom_rate_limited"]
    assert limits == ["none spent (a proxy in front of Pingdom?)"] * 2


async def test_a_proxy_that_keeps_refusing_fails_with_what_was_hit(
    pingdom_fake: FakePingdom, pingdom_settings: PingdomSettings, http: httpx.AsyncClient
) -> None:
    """After its bounded waits (Retry-After honoured, capped) the 429 fails, naming the limit."""
    pingdom_fake.add_check(7)
    sleeps = Sleeps()
    pingdom = client(http, pingdom_settings, sleeps)
    # A first answer reports plenty of quota left, as Pingdom would; then the proxy refuses.
    await pingdom.checks()
    pingdom_fake.proxy_429_next = 10
    pingdom_fake.proxy_retry_after = "3600"
    with pytest.raises(PingdomError, match="a proxy in front of Pingdom") as caught:
        await pingdom.checks()
    assert caught.value.status == 429
    assert not isinstance(caught.value, QuotaExhausted)
    assert sleeps.calls == [30.0, 30.0, 30.0]
