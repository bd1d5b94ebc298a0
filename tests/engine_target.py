"""Which engine and runtime the engine tests run against: ``pytest --engine --runtime``.

One suite, one engine per run of it: ``scripts/test-engines`` runs the core subset on
each engine and runtime of the matrix (docs/operations.md, "Engines and runtimes").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class EngineTarget:
    """An engine's socket, as the project's engine scripts start it, and a runtime on it."""

    name: str
    socket: str
    setup: str  # the script that starts it
    runtime: str | None = None
    warm_pool: bool = False  # ECS keeps a warm pool of the test image (issue: warm pools)

    @property
    def docker_host(self) -> str:
        """The ``docker_host`` setting that reaches this engine."""
        return f"unix://{self.socket}"

    @property
    def gvisor(self) -> bool:
        """Tasks run in gVisor's sandbox (its own kernel; see docs/security.md)."""
        return self.runtime == "runsc"

    @property
    def podman(self) -> bool:
        """Podman's Docker-compatible API rather than dockerd."""
        return self.name == "podman"

    def ecs_settings(self) -> dict[str, str]:
        """ECS settings (as keyword overrides) that point ECS at this engine and runtime."""
        settings: dict[str, Any] = {"docker_host": self.docker_host}
        if self.runtime is not None:
            settings["runtime"] = self.runtime
        if self.warm_pool:
            settings["warm_pools"] = [{"image": WARM_IMAGE, "size": 2}]
        return settings

    def ecs_environment(self) -> dict[str, str]:
        """The same settings as ``ECS_*`` variables, for ``ecs`` processes."""
        return {
            f"ECS_{key.upper()}": value if isinstance(value, str) else json.dumps(value)
            for key, value in self.ecs_settings().items()
        }


ENGINES = {
    "docker": EngineTarget("docker", "/var/run/docker.sock", "scripts/engine"),
    "docker-newer": EngineTarget(
        "docker-newer", "/run/ecs-engine/docker-newer.sock", "scripts/engine-newer"
    ),
    "podman": EngineTarget("podman", "/run/ecs-engine/podman.sock", "scripts/engine-podman"),
}
RUNTIMES = ("runc", "crun", "runsc")
WARM_IMAGE = "owner/repo:tag"  # the image most engine tests run
DEFAULT_TARGET = ENGINES["docker"]


def add_engine_options(parser: pytest.Parser) -> None:
    """``--engine`` and ``--runtime``: the engine tests' target."""
    group = parser.getgroup("engine", "the engine the engine tests run against")
    group.addoption("--engine", choices=sorted(ENGINES), default="docker", help="default: docker")
    group.addoption("--runtime", choices=RUNTIMES, default=None, help="default: the engine's")
    group.addoption(
        "--warm-pool",
        action="store_true",
        help=f"ECS servers keep a warm pool of {WARM_IMAGE}: tasks of it run by exec",
    )


def target_of(config: pytest.Config) -> EngineTarget:
    """The target chosen on the command line."""
    base = ENGINES[str(config.getoption("engine"))]
    runtime = config.getoption("runtime")
    warm = bool(config.getoption("warm_pool"))
    return EngineTarget(base.name, base.socket, base.setup, runtime, warm)
