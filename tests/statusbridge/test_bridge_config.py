"""Loading statusbridge configuration from TOML and STATUSBRIDGE_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from statusbridge.config import load_config
from statusbridge.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """
[pingdom]
token = "pd"

[cachet]
base_url = "http://127.0.0.1:1/api/v1"
token = "ct"

[[checks]]
pingdom_check_id = 1
uptime_metric_id = 2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "statusbridge.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return str(caught.value)


def test_shipped_configs_load() -> None:
    """The example and the local configs in config/ are valid."""
    example = load_config(ROOT / "config" / "statusbridge.example.toml")
    assert example.checks[0].pingdom_check_id == 123456
    assert example.signalfx.dimensions == {"environment": "prod", "service": "ecs"}
    local = load_config(ROOT / "config" / "statusbridge.local.toml")
    assert local.checks == []
    assert local.signalfx.token is None
    assert local.ecs_targets[0].url == "http://127.0.0.1:8448/metrics"


def test_defaults_of_a_minimal_config(tmp_path: Path) -> None:
    """Unset keys take the documented defaults (3.1 URL, 24 h backfill, loopback port)."""
    config = load_config(write(tmp_path, MINIMAL))
    assert config.pingdom is not None
    assert config.pingdom.base_url == "https://api.pingdom.com/api/3.1"
    check = config.checks[0]
    assert (check.interval_s, check.down_after, check.backfill_hours) == (60, 2, 24)
    assert config.http.host == "127.0.0.1"


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    """A bad value in a [[checks]] entry is reported with its full key, variable and file."""
    message = error_for(tmp_path, MINIMAL + "interval_s = -5\n")
    assert "checks[0].interval_s (env STATUSBRIDGE_CHECKS): Input should be" in message
    assert "(got -5)" in message
    assert str(tmp_path) in message


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    """A misspelt key stops start-up instead of being ignored, its value not shown."""
    message = error_for(tmp_path, MINIMAL.replace('token = "pd"', 'tokn = "pd"'))
    assert message.endswith("pingdom.tokn (env STATUSBRIDGE_PINGDOM__TOKN): unknown key")


def test_secrets_are_never_echoed(tmp_path: Path) -> None:
    """A bad secret value is named by key but its value is not printed."""
    message = error_for(tmp_path, MINIMAL.replace('token = "ct"', "token = 987654321"))
    assert "cachet.token" in message
    assert "987654321" not in message


def test_checks_need_pingdom_and_cachet(tmp_path: Path) -> None:
    """[[checks]] without a [pingdom] section is reported naming the section."""
    message = error_for(tmp_path, "[[checks]]\npingdom_check_id = 1\n")
    assert "[pingdom]" in message


def test_legacy_api_needs_its_credentials(tmp_path: Path) -> None:
    """api_version 2.0 without username/password/app_key names the missing keys."""
    message = error_for(tmp_path, '[pingdom]\napi_version = "2.0"\n')
    assert "username, password, app_key" in message


def test_bad_incident_template_is_reported(tmp_path: Path) -> None:
    """A template field statusbridge does not fill is a config error naming the key."""
    message = error_for(tmp_path, MINIMAL + 'incident_name = "{host} down"\n')
    assert "incident_name" in message
    assert "host" in message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    """A TOML syntax error is reported with the file name."""
    message = error_for(tmp_path, "state_path = \n")
    assert "not valid TOML" in message
    assert "statusbridge.toml" in message


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """STATUSBRIDGE_<SECTION>__<KEY> wins over the file and merges into its sections."""
    monkeypatch.setenv("STATUSBRIDGE_CACHET__TOKEN", "from-env")
    monkeypatch.setenv("STATUSBRIDGE_HTTP__PORT", "9999")
    monkeypatch.setenv("STATUSBRIDGE_STATE_PATH", "/var/lib/statusbridge/state.sqlite3")
    config = load_config(write(tmp_path, MINIMAL))
    assert config.cachet is not None
    assert config.cachet.token is not None
    assert config.cachet.token.get_secret_value() == "from-env"
    assert config.cachet.base_url == "http://127.0.0.1:1/api/v1"
    assert config.http.port == 9999
    assert config.state_path == Path("/var/lib/statusbridge/state.sqlite3")


def test_bad_environment_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value from the environment is reported with its key."""
    monkeypatch.setenv("STATUSBRIDGE_HTTP__PORT", "not-a-port")
    with pytest.raises(ConfigError, match=r"http\.port \(env STATUSBRIDGE_HTTP__PORT\)"):
        load_config(None)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is reported, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")


def test_file_values_beat_defaults_and_lose_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defaults, then the file, then STATUSBRIDGE_* variables: the precedence of ECS."""
    path = write(tmp_path, 'log_level = "warning"\nlog_format = "console"\n')
    assert (load_config(None).log_level, load_config(None).log_format) == ("info", "auto")
    config = load_config(path)
    assert (config.log_level, config.log_format) == ("warning", "console")
    monkeypatch.setenv("STATUSBRIDGE_LOG_FORMAT", "json")
    assert load_config(path).log_format == "json"


def test_log_settings_are_checked(tmp_path: Path) -> None:
    """log_level and log_format take the values ECS's do, and nothing else."""
    assert load_config(write(tmp_path, 'log_level = "CRITICAL"\n')).log_level == "CRITICAL"
    message = error_for(tmp_path, 'log_format = "xml"\n')
    assert "log_format (env STATUSBRIDGE_LOG_FORMAT): String should match" in message


def test_log_json_is_a_deprecated_spelling_of_log_format(tmp_path: Path) -> None:
    """log_json = true/false still selects JSON/console lines, unless log_format is set."""
    assert load_config(write(tmp_path, "log_json = true\n")).log_format == "json"
    assert load_config(write(tmp_path, "log_json = false\n")).log_format == "console"
    both = write(tmp_path, 'log_json = true\nlog_format = "console"\n')
    assert load_config(both).log_format == "console"
