"""Health: quick checks nothing external; comprehensive probes the engine as start-up does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ecs.docker import DockerClient
from ecs.engine_probe import probe_engine
from ecs.engine_version import ECS_API_RANGE
from ecs.exceptions import (
    EcsError,
    EngineError,
    EngineIncompatible,
    EngineUnreachable,
    RuntimeMissing,
)

_TRUE = {"true", "t", "y", "yes", "1"}
_FALSE = {"false", "f", "n", "no", "0"}


def parse_quick(value: str | None) -> bool | None:
    """The ``quick`` query value as a boolean (default true), or None if it is not one."""
    if value is None:
        return True
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


@dataclass(frozen=True)
class HealthReport:
    """Overall status and, for comprehensive checks, the engine's details."""

    green: bool
    details: dict[str, object] | None = field(default=None)


def _color(ok: bool) -> str:
    return "green" if ok else "red"


class RedisProbe(Protocol):
    """What health needs of the cluster's store: one round trip."""

    async def ping(self) -> float:
        """Seconds a PING takes; raises when Redis does not answer."""


async def check_health(
    docker: DockerClient,
    *,
    quick: bool,
    runtime: str | None = None,
    redis: RedisProbe | None = None,
) -> HealthReport:
    """Quick: always green. Comprehensive: the engine answers a versioned call and has the
    runtime; in cluster mode Redis answers too."""
    if quick:
        return HealthReport(green=True)
    engine_green, engine = await _engine_details(docker, runtime)
    details: dict[str, object] = {"engine": engine}
    green = engine_green
    if redis is not None:
        redis_green, details["redis"] = await _redis_details(redis)
        green = green and redis_green
    return HealthReport(green=green, details=details)


async def _redis_details(redis: RedisProbe) -> tuple[bool, dict[str, object]]:
    try:
        seconds = await redis.ping()
    except EcsError as exc:
        return False, {"status": "red", "error": exc.message}
    return True, {"status": "green", "latencyMs": round(seconds * 1000, 2)}


async def _engine_details(
    docker: DockerClient, runtime: str | None
) -> tuple[bool, dict[str, object]]:
    checks = {"connectivity": False, "apiVersion": False, "runtime": False}
    error: str | None = None
    chosen_runtime = runtime
    try:
        report = await probe_engine(docker, runtime)
        checks = dict.fromkeys(checks, True)
        chosen_runtime = report.runtime
    except EngineUnreachable as exc:
        error = exc.message
    except EngineIncompatible as exc:
        checks["connectivity"] = True
        error = exc.message
    except RuntimeMissing as exc:
        checks["connectivity"] = checks["apiVersion"] = True
        error = exc.message
    except EngineError as exc:
        checks["connectivity"] = True
        error = exc.message
    green = all(checks.values())
    engine: dict[str, object] = {
        "status": _color(green),
        "details": {name: _color(ok) for name, ok in checks.items()},
        "apiVersion": str(docker.api_version) if docker.api_version else None,
        "engineApiVersions": str(docker.engine_range) if docker.engine_range else None,
        "supportedApiVersions": str(ECS_API_RANGE),
        "runtime": chosen_runtime,
    }
    if error:
        engine["error"] = error
    return green, engine
