"""Health: quick checks nothing external; comprehensive asks the engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from ecs.docker import MIN_API_VERSION, DockerClient, format_api_version, parse_api_version
from ecs.exceptions import EngineError

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


async def check_health(docker: DockerClient, *, quick: bool) -> HealthReport:
    """Quick: always green. Comprehensive: the engine answers with an API version ECS speaks."""
    if quick:
        return HealthReport(green=True)
    reachable, version_ok, version, error = False, False, None, None
    try:
        info = await docker.version()
        reachable = True
        version = str(info.get("ApiVersion", ""))
        version_ok = parse_api_version(version) >= MIN_API_VERSION
    except EngineError as exc:
        error = exc.message
    except ValueError:
        error = f"engine reported an unreadable API version {version!r}"
    engine: dict[str, object] = {
        "status": _color(reachable and version_ok),
        "details": {"connectivity": _color(reachable), "apiVersion": _color(version_ok)},
        "apiVersion": version,
        "minimumApiVersion": format_api_version(MIN_API_VERSION),
    }
    if error:
        engine["error"] = error
    return HealthReport(green=reachable and version_ok, details={"engine": engine})
