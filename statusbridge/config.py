"""statusbridge configuration: defaults in plain sight, then a TOML file, then
``STATUSBRIDGE_<SECTION>__<KEY>`` variables (the same precedence as ``ecs.config``).

The value is built once in ``main()`` with :func:`load_config` and passed down. Every
section except the top level is optional: no ``[[checks]]`` means no Pingdom → Cachet
jobs, no ``[[ecs_targets]]`` means no forwarding job, no SignalFx token means the
forwarder runs dry. A bad value stops start-up with a message naming the key and its
variable (see :func:`describe_validation_error`).
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from statusbridge.exceptions import ConfigError

PINGDOM_DEFAULT_URLS = {
    "3.1": "https://api.pingdom.com/api/3.1",
    "2.0": "https://api.pingdom.com/api/2.0",
}
_SECRET_KEYS = frozenset({"token", "password", "app_key"})
_INCIDENT_FIELDS = frozenset({"component", "check_id", "check_name", "since", "until"})


class _Section(BaseModel):
    # A typo in a key must fail start-up instead of being silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(_Section):
    """Per-call retry budget for 5xx answers and timeouts (exponential backoff, jitter)."""

    attempts: int = Field(default=5, ge=1, le=50)
    timeout_s: float = Field(default=60.0, gt=0)
    wait_initial_s: float = Field(default=0.5, gt=0)
    wait_max_s: float = Field(default=10.0, gt=0)


class PingdomSettings(_Section):
    """``[pingdom]``: API 3.1 with a Bearer token, or legacy 2.0 with Basic + App-Key."""

    api_version: Literal["3.1", "2.0"] = "3.1"
    base_url: str = ""
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    app_key: SecretStr | None = None
    account_email: str | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    retry: RetrySettings = RetrySettings()
    # Below this many remaining requests in a quota window, requests are spread out.
    rate_limit_reserve: int = Field(default=20, ge=0)
    # A quota reset further away than this is reported as an error instead of awaited.
    max_rate_limit_wait_s: float = Field(default=900.0, gt=0)
    # Pingdom keeps raw results for about a month; older windows are logged as gaps.
    retention_days: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _check_auth(self) -> PingdomSettings:
        if not self.base_url:
            object.__setattr__(self, "base_url", PINGDOM_DEFAULT_URLS[self.api_version])
        _check_url(self.base_url)
        if self.api_version == "3.1" and self.token is None:
            raise ValueError("api_version 3.1 needs token")
        if self.api_version == "2.0":
            missing = [
                key for key in ("username", "password", "app_key") if getattr(self, key) is None
            ]
            if missing:
                raise ValueError(f"api_version 2.0 needs {', '.join(missing)}")
        return self


class CachetSettings(_Section):
    """``[cachet]``: a Cachet API base URL and token: 2.3/2.4 (``…/api/v1``, the
    ``X-Cachet-Token``) or 3 (``…/api``, a Sanctum token).

    ``api_version`` picks the API; ``auto`` probes it once per start with reads only.
    ``timezone`` is the server's ``APP_TIMEZONE``, which Cachet 3 answers in.
    """

    base_url: str
    token: SecretStr | None = None
    api_version: Literal["auto", "2.3", "2.4", "3"] = "auto"
    timezone: str = "UTC"
    timeout_s: float = Field(default=30.0, gt=0)
    retry: RetrySettings = RetrySettings()

    @model_validator(mode="after")
    def _check_base_url(self) -> CachetSettings:
        _check_url(self.base_url)
        try:
            ZoneInfo(self.timezone)
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone") from exc
        return self


class SignalFxSettings(_Section):
    """``[signalfx]``: ingest endpoint, token (absent → dry run) and static dimensions."""

    ingest_endpoint: str = "https://ingest.us1.signalfx.com"
    token: SecretStr | None = None
    dimensions: dict[str, str] = Field(default_factory=dict)
    # Datapoints wait this long for an ingest outage to end; older ones are dropped, counted.
    buffer_s: float = Field(default=600.0, gt=0)


class CheckSettings(_Section):
    """``[[checks]]``: one Pingdom check shown on the Cachet status page."""

    pingdom_check_id: int = Field(gt=0)
    name: str | None = None
    cachet_component_id: int | None = Field(default=None, gt=0)
    response_time_metric_id: int | None = Field(default=None, gt=0)
    uptime_metric_id: int | None = Field(default=None, gt=0)
    interval_s: float = Field(default=60.0, ge=1)
    down_after: int = Field(default=2, ge=1)
    up_after: int = Field(default=1, ge=1)
    incidents: bool = False
    # Incidents mail subscribers (when opened, and when resolved where Cachet mails then).
    notify: bool = True
    # Component status changes mail subscribers; off by default, so a flapping check does
    # not mail the world (Cachet 2.3 mails anyway; Cachet 3 never does).
    notify_on_status_change: bool = False
    # Where a first run (no state yet) starts.
    backfill_hours: float = Field(default=24.0, gt=0)
    # A bucket counts as complete this long after its end, for late Pingdom results.
    settle_s: int = Field(default=60, ge=0)
    # Minutes between tests; None reads it from Pingdom's check (falls back to 1).
    resolution_min: int | None = Field(default=None, ge=1)
    incident_name: str = "{component} is down"
    incident_message: str = (
        "Monitoring reports {component} as down since {since} UTC. We are investigating."
    )
    resolved_message: str = "{component} is back up since {until} UTC."

    @model_validator(mode="after")
    def _check_templates(self) -> CheckSettings:
        for key in ("incident_name", "incident_message", "resolved_message"):
            template = getattr(self, key)
            fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
            unknown = fields - _INCIDENT_FIELDS
            if unknown:
                raise ValueError(
                    f"{key} uses unknown field(s) {sorted(unknown)}; "
                    f"allowed: {sorted(_INCIDENT_FIELDS)}"
                )
        return self

    @property
    def label(self) -> str:
        """A short name for logs: the configured name or the Pingdom check id."""
        return self.name or str(self.pingdom_check_id)


class EcsTargetSettings(_Section):
    """``[[ecs_targets]]``: one ECS node whose ``/metrics`` are forwarded to SignalFx."""

    url: str
    interval_s: float = Field(default=10.0, ge=1)
    # The ``node`` dimension; None derives it from the URL's host and port.
    name: str | None = None

    @model_validator(mode="after")
    def _check_url(self) -> EcsTargetSettings:
        _check_url(self.url)
        return self


class HttpSettings(_Section):
    """``[http]``: the daemon's own /health and /metrics endpoint."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)


class Config(BaseSettings):
    """The whole statusbridge configuration."""

    model_config = SettingsConfigDict(
        env_prefix="STATUSBRIDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    state_path: Path = Path("statusbridge.sqlite3")
    log_level: str = Field("info", pattern=r"^(?i:debug|info|warning|error|critical)$")
    # auto: console lines on a terminal, JSON lines otherwise (as ECS's log_format).
    log_format: str = Field("auto", pattern=r"^(auto|json|console)$")
    # Deprecated: true means log_format = "json", false "console"; log_format wins.
    log_json: bool | None = None
    # Pingdom → Cachet syncs running at the same time, across all checks.
    max_concurrent_syncs: int = Field(default=8, ge=1)
    pingdom: PingdomSettings | None = None
    cachet: CachetSettings | None = None
    signalfx: SignalFxSettings = SignalFxSettings()
    checks: list[CheckSettings] = Field(default_factory=list)
    ecs_targets: list[EcsTargetSettings] = Field(default_factory=list)
    http: HttpSettings = HttpSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file (model_config["toml_file"], set by load_config) ranks below the
        # environment, so one variable can override a deployed file.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    @model_validator(mode="after")
    def _apply_log_json(self) -> Config:
        if self.log_json is not None and "log_format" not in self.model_fields_set:
            object.__setattr__(self, "log_format", "json" if self.log_json else "console")
        return self

    @model_validator(mode="after")
    def _check_sections(self) -> Config:
        if self.checks and self.pingdom is None:
            raise ValueError("[[checks]] need a [pingdom] section")
        if self.checks and self.cachet is None:
            raise ValueError("[[checks]] need a [cachet] section")
        ids = [check.pingdom_check_id for check in self.checks]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"pingdom_check_id listed twice in [[checks]]: {duplicates}")
        return self


def _check_url(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")


def load_config(path: Path | None) -> Config:
    """Build the configuration from defaults, the TOML file at ``path`` (None: none) and
    the environment, and validate everything.

    Raises :class:`ConfigError` whose message names the file and each bad key.
    """
    config_class: type[Config] = Config
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"cannot read config file {path}: no such file")
        config_class = type(
            "FileConfig",
            (Config,),
            {"model_config": SettingsConfigDict(**{**Config.model_config, "toml_file": path})},
        )
    try:
        return config_class()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path or "environment"))) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except ValueError as exc:  # a TOML syntax error surfaces as ValueError
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One entry per bad key, named as in the TOML file, with its STATUSBRIDGE_ variable.

    ``key (env STATUSBRIDGE_SECTION__KEY): message``, as ``ecs.config`` words it; a key
    inside a list (``checks[0].interval_s``) names the list's variable, which takes the
    whole list as JSON. Values are shown, except those of secret keys.
    """
    entries = []
    for error in exc.errors():
        loc = error["loc"]
        key = _dotted(loc) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        shown = ""
        is_secret = any(part in _SECRET_KEYS for part in loc if isinstance(part, str))
        # An unknown key may be a misspelt secret: its value is not shown either.
        unknown = error["type"] == "extra_forbidden"
        if (
            "input" in error
            and not (is_secret or unknown)
            and not isinstance(error["input"], dict | list)
        ):
            shown = f" (got {error['input']!r})"
        entries.append(f"{key} (env {env_variable(loc)}): {message}{shown}")
    return f"invalid configuration ({source}): " + "; ".join(entries)


def env_variable(loc: tuple[int | str, ...]) -> str:
    """The environment variable that sets the key at ``loc`` (its list's, inside a list)."""
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            break
        parts.append(part)
    return "STATUSBRIDGE_" + "__".join(parts).upper() if parts else "STATUSBRIDGE_*"


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out
