"""ECS against the engine this run targets (``pytest --engine``): versions, runtime, health.

Run on every engine of the matrix by scripts/test-engines, beside tests/integration/test_tasks.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ecs.engine_version import ECS_API_RANGE, ApiVersion
from tests.engine_target import EngineTarget
from tests.integration.ecs_process import run_ecs_command

pytestmark = pytest.mark.engine


def engine_versions(engine: httpx.Client) -> tuple[ApiVersion, ApiVersion]:
    """The engine's (MinAPIVersion, ApiVersion), from its unversioned /version."""
    answer = engine.get("http://docker/version").raise_for_status().json()
    return ApiVersion.parse(answer["MinAPIVersion"]), ApiVersion.parse(answer["ApiVersion"])


def test_check_names_the_negotiated_version_and_runtime(
    engine: httpx.Client, engine_target: EngineTarget
) -> None:
    """`ecs check` speaks the highest version both sides serve and names the runtime."""
    low, high = engine_versions(engine)
    result = run_ecs_command("check", **engine_target.ecs_environment())
    assert result.returncode == 0, result.stderr
    chosen = min(high, ECS_API_RANGE.high)
    runtime = engine_target.runtime or "runc"
    assert f"ok (API {chosen} of {low}–{high}, runtime {runtime})" in result.stdout


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_pinned_version_the_engine_refuses_stops_start_up(
    engine: httpx.Client, engine_target: EngineTarget, command: str
) -> None:
    """DOCKER_API_VERSION below what the engine (or ECS) serves: exit 2, both ranges named."""
    low, _ = engine_versions(engine)
    below = ApiVersion(low.major, low.minor - 1)
    result = run_ecs_command(
        command, DOCKER_API_VERSION=str(below), **engine_target.ecs_environment()
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"DOCKER_API_VERSION {below} is outside" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_pinned_version_inside_both_ranges_is_spoken(
    engine: httpx.Client, engine_target: EngineTarget
) -> None:
    """DOCKER_API_VERSION inside both ranges is used as is, like the docker CLI does."""
    low, _ = engine_versions(engine)
    pinned = max(low, ECS_API_RANGE.low)
    result = run_ecs_command(
        "check", DOCKER_API_VERSION=str(pinned), **engine_target.ecs_environment()
    )
    assert result.returncode == 0, result.stderr
    assert f"ok (API {pinned} of" in result.stdout


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_runtime_the_engine_lacks_stops_start_up(
    engine_target: EngineTarget, command: str
) -> None:
    """`runtime` names something the engine does not have: exit 2 with what it has.

    Podman runs every container on its own configured runtime, so any runtime is refused.
    """
    env = {**engine_target.ecs_environment(), "ECS_RUNTIME": "no-such-runtime"}
    result = run_ecs_command(command, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    expected = "Podman ignores" if engine_target.podman else "no runtime 'no-such-runtime'"
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_quick_and_comprehensive_health_are_green(
    engine: httpx.Client, start_ecs: Callable[..., Any]
) -> None:
    """Both healths are green on this engine, and comprehensive names what was negotiated."""
    low, high = engine_versions(engine)
    server = start_ecs()
    with httpx.Client(base_url=server.url) as client:
        quick = client.get("/v1.1/_health")
        full = client.get("/v1.1/_health?quick=false")
    assert quick.status_code == 200
    assert quick.json()["status"] == "green"
    assert full.status_code == 200, full.text
    details = full.json()["details"]["engine"]
    assert details["status"] == "green"
    assert details["apiVersion"] == str(min(high, ECS_API_RANGE.high))
    assert details["engineApiVersions"] == f"{low}–{high}"
