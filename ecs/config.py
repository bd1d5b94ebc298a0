"""ECS settings: defaults in plain sight, then an optional TOML file, then ``ECS_*`` variables.

Settings are built once in ``main()`` and passed down; nothing reads them at import.
A bad value stops start-up with a message that names the key (see ``load_settings``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ecs.engine_version import ApiVersion
from ecs.exceptions import ConfigError


def default_slots(cores: int | None) -> int:
    """Two task slots per core, at least two."""
    return max(2, 2 * (cores or 1))


class PullPolicy(StrEnum):
    """When to pull an image before running it."""

    DEFAULT = "default"  # Kubernetes: ":latest" always, anything else if not present
    ALWAYS = "always"
    IF_NOT_PRESENT = "if-not-present"
    NEVER = "never"


class OpenEndpoint(StrEnum):
    """Endpoints that may be opened to callers without an API key."""

    HEALTH = "health"
    NOOP = "noop"
    VERSION = "version"
    METRICS = "metrics"
    DOCS = "docs"


class RegistryCredentials(BaseModel):
    """Credentials for one registry host, used when a request brings none."""

    username: str
    password: SecretStr
    email: str | None = None


class LimitSettings(BaseModel):
    """Default and maximum resource limits of a task container."""

    default_memory_mb: int = Field(256, ge=6)
    max_memory_mb: int = Field(2048, ge=6)
    default_cpus: float = Field(1.0, gt=0)
    max_cpus: float = Field(2.0, gt=0)
    default_pids: int = Field(256, gt=0)
    max_pids: int = Field(4096, gt=0)

    @model_validator(mode="after")
    def _defaults_within_maxima(self) -> Self:
        for name in ("memory_mb", "cpus", "pids"):
            if getattr(self, f"default_{name}") > getattr(self, f"max_{name}"):
                raise ValueError(f"default_{name} must not exceed max_{name}")
        return self


class WarmPoolSettings(BaseModel):
    """One warm pool: idle containers of an image, started before their tasks come."""

    image: str = Field(description="image reference with a tag or a digest")
    size: int = Field(ge=1, le=64, description="idle containers kept running")
    idle_cmd: list[str] = Field(
        default_factory=lambda: ["sleep", "2147483647"],
        min_length=1,
        description="the idle containers' command: it must run in the image and do nothing",
    )
    max_idle_s: float = Field(
        3600.0, gt=0, description="an idle container older than this is replaced"
    )


class ClusterSettings(BaseModel):
    """Cluster mode: every node shares limits, tasks and a queue in one Redis."""

    redis_url: str | None = Field(
        None,
        description="redis://host:port/db or rediss:// (TLS); unset: one node, embedded store",
    )
    redis_password: SecretStr | None = Field(None, description="Redis AUTH password")
    node_timeout_s: float = Field(
        30.0, gt=0, description="a node without heartbeat this long is lost; its tasks fail"
    )
    heartbeat_s: float = Field(5.0, gt=0, description="seconds between a node's heartbeats")
    redis_timeout_s: float = Field(
        1.0, gt=0, description="timeout of one Redis call: a slow Redis is an absent one"
    )
    key_prefix: str = Field("ecs", pattern=r"^[A-Za-z0-9._-]{1,32}$")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("must be redis://host:port/db or rediss://host:port/db")
        if parts.password is not None:
            raise ValueError("must not carry a password: set cluster.redis_password instead")
        return value

    @model_validator(mode="after")
    def _heartbeat_within_timeout(self) -> Self:
        if self.heartbeat_s * 2 > self.node_timeout_s:
            raise ValueError("heartbeat_s must be at most half of node_timeout_s")
        return self


class Settings(BaseSettings):
    """Everything ECS can be told; see docs/configuration.md for each key."""

    model_config = SettingsConfigDict(
        env_prefix="ECS_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(8448, ge=0, le=65535)
    instance_id: str = Field(
        default_factory=lambda: os.uname().nodename,
        description="names this ECS in container labels; the janitor only reaps its own",
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
    )
    docker_host: str = "unix:///var/run/docker.sock"
    docker_api_version: str | None = Field(
        None,
        pattern=r"^\d+\.\d+$",
        description="pin the Engine API version instead of negotiating (also DOCKER_API_VERSION)",
    )
    runtime: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="the engine's container runtime for tasks (runc, crun, runsc); engine default",
    )
    engine_connect_timeout_s: float = Field(3.0, gt=0)
    engine_call_timeout_s: float = Field(30.0, gt=0)
    pull_timeout_s: float = Field(300.0, gt=0)

    default_timeout_s: float = Field(60.0, gt=0)
    max_timeout_s: float = Field(600.0, gt=0)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    output_cap_bytes: int = Field(1024 * 1024, gt=0)
    body_cap_bytes: int = Field(64 * 1024, gt=0)
    max_input_bytes: int = Field(
        1024 * 1024, gt=0, description="decoded stdin plus files of one task, in bytes"
    )

    max_concurrent_tasks: int = Field(
        default_factory=lambda: default_slots(os.cpu_count()),
        gt=0,
        description="tasks running at once; default two per core (the engine's starts are "
        "the work, and two per core keeps every core busy without queueing in the engine)",
    )
    max_queued_tasks: int = Field(
        1000, ge=0, description="tasks (sync or async) waiting for a slot; beyond: 503"
    )
    overload_retry_after_s: int = Field(2, gt=0)

    pull_policy: PullPolicy = PullPolicy.DEFAULT
    registries: dict[str, RegistryCredentials] = Field(default_factory=dict)
    docker_config_file: Path | None = Field(
        None, description="a Docker config.json whose `auths` section supplies registry creds"
    )
    image_allowlist: list[str] = Field(
        default_factory=list,
        description="glob patterns on the normalized reference; empty allows every image",
    )

    credentials_file: Path | None = Field(
        None, description="htpasswd file of bcrypt API key hashes; none: loopback only, no auth"
    )
    open_endpoints: list[OpenEndpoint] = Field(
        default_factory=lambda: [OpenEndpoint.HEALTH],
        description="endpoints answered without a key when keys are configured",
    )
    rate_limit_per_s: float = Field(5.0, gt=0, description="requests per second per API key")
    rate_limit_burst: int = Field(10, gt=0, description="requests a key may burst above the rate")
    max_tasks_per_key: int = Field(25, gt=0, description="concurrent tasks per API key")
    failed_auth_per_s: float = Field(
        0.5, gt=0, description="failed API key checks per second per client address"
    )
    failed_auth_burst: int = Field(
        10, gt=0, description="failed API key checks a client address may burst"
    )

    state_path: Path = Field(
        Path("ecs-state.sqlite3"),
        description="SQLite file of async tasks, idempotency keys and pending callbacks",
    )
    task_retention_s: float = Field(
        3600.0, gt=0, description="how long a finished task's document is kept"
    )
    callback_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key signing callbacks; without it callbacks are refused"
    )
    callback_allowlist: list[str] = Field(
        default_factory=list,
        description="hosts callbacks may go to: globs, IP literals, CIDRs; empty refuses all",
    )
    callback_retry_s: float = Field(
        600.0, gt=0, description="how long a failing callback is retried"
    )
    callback_timeout_s: float = Field(10.0, gt=0, description="timeout of one callback POST")

    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    warm_pools: list[WarmPoolSettings] = Field(
        default_factory=list, description="images with idle containers waiting for tasks"
    )

    shutdown_grace_s: int = Field(
        60, ge=0, description="seconds in-flight tasks get to finish after SIGTERM"
    )
    janitor_interval_s: float = Field(60.0, gt=0, description="seconds between janitor passes")
    janitor_margin_s: float = Field(
        30.0, ge=0, description="how long past its deadline a container may live before reaping"
    )

    read_only_rootfs: bool = False
    log_driver: str = "json-file"
    log_options: dict[str, str] = Field(default_factory=dict)

    log_level: str = Field("info", pattern=r"^(?i:debug|info|warning|error|critical)$")
    log_format: str = Field("auto", pattern=r"^(auto|json|console)$")

    @property
    def request_body_cap_bytes(self) -> int:
        """The body cap, grown to fit ``max_input_bytes`` of base64 and the rest of a body."""
        base64_input = 4 * -(-self.max_input_bytes // 3)
        return max(self.body_cap_bytes, base64_input + self.body_cap_bytes)

    @model_validator(mode="after")
    def _timeouts_consistent(self) -> Self:
        if self.default_timeout_s > self.max_timeout_s:
            raise ValueError("default_timeout_s must not exceed max_timeout_s")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file (model_config["toml_file"], set by load_settings) ranks below
        # the environment, so one variable can override a deployed file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def pinned_api_version(settings: Settings, environ: Mapping[str, str]) -> ApiVersion | None:
    """The pinned Engine API version: ``docker_api_version``, else ``DOCKER_API_VERSION``.

    The docker CLI reads ``DOCKER_API_VERSION`` the same way: set, it is used as is.
    """
    text = settings.docker_api_version or environ.get("DOCKER_API_VERSION") or None
    if text is None:
        return None
    try:
        return ApiVersion.parse(text)
    except ValueError as exc:
        raise ConfigError(f"DOCKER_API_VERSION: {exc}") from exc


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, ``config_file`` (TOML), ``ECS_*`` and ``overrides``."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")
    settings_class: type[Settings] = Settings
    if config_file is not None:
        settings_class = type(
            "FileSettings",
            (Settings,),
            {
                "model_config": SettingsConfigDict(
                    **{**Settings.model_config, "toml_file": config_file}
                )
            },
        )
    source = str(config_file) if config_file is not None else "defaults and environment"
    try:
        return settings_class(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from exc
    except ValueError as exc:  # a TOML syntax error surfaces as ValueError
        raise ConfigError(f"invalid configuration ({source}): {exc}") from exc


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One entry per bad key, named as in the TOML file, with its ECS_ variable.

    ``invalid configuration (SOURCE): key (env ECS_SECTION__KEY): message`` — the same
    shape as ``statusbridge.config`` words it.
    """
    entries = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(settings)"
        env = "ECS_" + "__".join(str(part) for part in error["loc"]).upper()
        entries.append(f"{key} (env {env}): {error['msg'].removeprefix('Value error, ')}")
    return f"invalid configuration ({source}): " + "; ".join(entries)
