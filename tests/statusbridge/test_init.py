"""`statusbridge init` against the Pingdom fake and the Cachet 2.x and 3 fakes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from fake_cachet import FakeCachet
from fake_cachet3 import FakeCachet3
from fake_pingdom import FakePingdom

from statusbridge.cli import main
from statusbridge.config import load_config
from statusbridge.init import match, words
from statusbridge.pingdom_cachet.cachet import Component, Metric
from statusbridge.pingdom_cachet.pingdom import Check


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """main() configures structlog and logging on captured streams; undo that afterwards."""
    handlers = list(logging.getLogger().handlers)
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = handlers


@pytest.fixture
def pingdom(pingdom_fake: FakePingdom) -> FakePingdom:
    """Three checks: Website (1 min), API (5 min), Docs (paused)."""
    pingdom_fake.add_check(11, resolution=1, name="Website")
    pingdom_fake.add_check(12, resolution=5, name="API")
    pingdom_fake.add_check(13, resolution=1, name="Docs")
    pingdom_fake.checks[13]["status"] = "paused"
    return pingdom_fake


def fill(cachet: FakeCachet | FakeCachet3) -> None:
    """Components for two of the checks and one extra; metrics for the first check."""
    cachet.add_component(1, "Website")
    cachet.add_component(2, "api")
    cachet.add_component(3, "Status page")
    cachet.add_metric(5, name="Website response time")
    cachet.add_metric(6, name="Website uptime")
    cachet.add_metric(7, name="Signups per hour")


def arguments(pingdom: FakePingdom, cachet: FakeCachet | FakeCachet3, *extra: str) -> list[str]:
    """`init` with the URLs and tokens of the fakes."""
    return [
        "init",
        "--pingdom-url",
        pingdom.base_url,
        "--pingdom-token",
        pingdom.token,
        "--cachet-url",
        cachet.base_url,
        "--cachet-token",
        cachet.token,
        *extra,
    ]


def load(path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """The written config, loaded with the tokens from the environment as documented."""
    monkeypatch.setenv("STATUSBRIDGE_PINGDOM__TOKEN", "p")
    monkeypatch.setenv("STATUSBRIDGE_CACHET__TOKEN", "c")
    return load_config(path)


def test_init_matches_by_name_and_says_what_it_could_not(
    pingdom: FakePingdom,
    cachet_fake: FakeCachet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On Cachet 2.4 init prints a loadable config and names what it could not match."""
    fill(cachet_fake)
    assert main(arguments(pingdom, cachet_fake)) == 0
    out, err = capsys.readouterr()
    path = tmp_path / "sb.toml"
    path.write_text(out)
    config = load(path, monkeypatch)
    checks = {c.pingdom_check_id: c for c in config.checks}  # type: ignore[attr-defined]
    assert set(checks) == {11, 12}
    assert (checks[11].cachet_component_id, checks[11].response_time_metric_id) == (1, 5)
    assert checks[11].uptime_metric_id == 6
    assert (checks[12].cachet_component_id, checks[12].uptime_metric_id) == (2, None)
    assert config.cachet.api_version == "2.4"  # type: ignore[attr-defined]
    assert "# Pingdom check 13 'Docs' (paused in Pingdom) matched nothing" in out
    assert "token" not in out.replace("TOKEN", "").replace("token = ", "")
    assert "check 12 'API': no response-time metric, no uptime metric matched" in err
    assert "component 3 'Status page': no Pingdom check matched it" in err
    assert "Cachet metrics" in err  # the progress bar while it pages
    assert [r.method for r in cachet_fake.requests if r.method != "GET"] == []


def test_init_creates_missing_metrics_on_cachet_3(
    pingdom: FakePingdom,
    cachet3_fake: FakeCachet3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--create-missing makes average metrics at each check's resolution; --out writes."""
    fill(cachet3_fake)
    path = tmp_path / "sb.toml"
    assert main(arguments(pingdom, cachet3_fake, "--create-missing", "--out", str(path))) == 0
    err = capsys.readouterr().err
    config = load(path, monkeypatch)
    checks = {c.pingdom_check_id: c for c in config.checks}  # type: ignore[attr-defined]
    assert set(checks) == {11, 12, 13}
    assert checks[11].response_time_metric_id == 5
    created = {
        metric_id: (row["name"], row["threshold"], row["calc_type"], row["suffix"])
        for metric_id, row in cachet3_fake.metrics.items()
        if metric_id not in (5, 6, 7)
    }
    assert created[checks[12].response_time_metric_id] == ("API response time", 5, 1, "ms")
    assert created[checks[12].uptime_metric_id] == ("API uptime", 5, 1, "%")
    assert created[checks[13].uptime_metric_id] == ("Docs uptime", 1, 1, "%")
    assert checks[13].cachet_component_id is None
    assert config.cachet.api_version == "3"  # type: ignore[attr-defined]
    assert 'timezone = "UTC"' in path.read_text()
    assert err.count("created metric") == 4
    assert f"config written to {path}" in err


def test_init_dry_run_creates_nothing(
    pingdom: FakePingdom, cachet_fake: FakeCachet, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --dry-run, --create-missing only says what it would create."""
    fill(cachet_fake)
    assert main(arguments(pingdom, cachet_fake, "--create-missing", "--dry-run")) == 0
    assert capsys.readouterr().err.count("would create metric") == 4
    assert [r.method for r in cachet_fake.requests if r.method != "GET"] == []


def test_init_takes_tokens_from_the_environment(
    pingdom: FakePingdom,
    cachet_fake: FakeCachet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Tokens and the Cachet URL may come from STATUSBRIDGE_*; without them init exits 2."""
    assert main(["init", "--pingdom-url", pingdom.base_url]) == 2
    assert "missing --pingdom-token, --cachet-url, --cachet-token" in capsys.readouterr().err
    monkeypatch.setenv("STATUSBRIDGE_PINGDOM__TOKEN", pingdom.token)
    monkeypatch.setenv("STATUSBRIDGE_CACHET__TOKEN", cachet_fake.token)
    monkeypatch.setenv("STATUSBRIDGE_CACHET__BASE_URL", cachet_fake.base_url)
    assert main(["init", "--pingdom-url", pingdom.base_url]) == 0
    assert "pingdom_check_id = 11" in capsys.readouterr().out


def test_init_fails_cleanly_on_a_refused_token(
    pingdom: FakePingdom, cachet_fake: FakeCachet, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Pingdom token Pingdom refuses ends init with exit 1 and Pingdom's words."""
    args = arguments(pingdom, cachet_fake)
    pingdom.token = "rotated"
    assert main(args) == 1
    assert "Pingdom: HTTP 401" in capsys.readouterr().err


def test_matching_is_by_words_and_refuses_ambiguity() -> None:
    """Names match case- and punctuation-blind; two candidates for one role match neither."""
    assert words("API - EU (prod)") == "api eu prod"
    plans = match(
        [Check(1, name="Shop"), Check(2, name="Blog")],
        [Component(10, "shop", 1), Component(11, "Shop checkout", 1)],
        [
            Metric(20, "Shop latency", 1, "ms"),
            Metric(21, "Shop availability", 1, "%"),
            Metric(22, "Blog uptime", 1, "%"),
            Metric(23, "Blog uptime (old)", 1, "%"),
        ],
    )
    shop, blog = plans
    assert (shop.component, shop.response_time, shop.uptime) == (
        Component(10, "shop", 1),
        Metric(20, "Shop latency", 1, "ms"),
        Metric(21, "Shop availability", 1, "%"),
    )
    assert (blog.component, blog.uptime) == (None, None)
