"""What ECS needs from its engine, checked: a common API version and the task runtime.

Start-up (``ecs serve``, ``ecs check``) refuses an engine that fails the probe, and
comprehensive health reports the same probe, so an engine upgraded or reconfigured under
a running ECS turns health red with the same reason.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ecs.docker import DockerClient
from ecs.engine_version import ApiRange, ApiVersion
from ecs.exceptions import RuntimeMissing

GVISOR_BINARY = "runsc"
PODMAN_COMPONENT = "Podman Engine"


@dataclass(frozen=True)
class EngineReport:
    """The engine as ECS will use it."""

    api_version: ApiVersion
    engine_range: ApiRange
    runtime: str  # the runtime tasks run on: the configured one, or the engine's default
    runtimes: tuple[str, ...]
    gvisor: bool  # the runtime is gVisor's runsc, whose own processes count as the task's
    podman: bool  # Podman's Docker-compatible API rather than dockerd


async def probe_engine(docker: DockerClient, runtime: str | None) -> EngineReport:
    """Check the engine accepts ECS's API version and has ``runtime``; raise EngineError."""
    version = await docker.versioned_version()  # a refused version renegotiates or raises
    podman = _is_podman(version)
    info = await docker.info()
    offered = info.get("Runtimes")
    runtimes = offered if isinstance(offered, dict) else {}
    chosen = runtime or str(info.get("DefaultRuntime") or "runc")
    if podman and runtime is not None:
        # Podman lists runtimes it may not have and runs every container on its own
        # configured one, whatever HostConfig.Runtime says: a task would silently run
        # without the isolation asked for.
        raise RuntimeMissing(
            f"Podman ignores the runtime a container asks for, so runtime {runtime!r} cannot "
            "be honoured: leave ECS's runtime unset and set `runtime` in Podman's containers.conf"
        )
    if runtime is not None and runtime not in runtimes:
        names = ", ".join(sorted(runtimes)) or "none reported"
        raise RuntimeMissing(f"the engine has no runtime {runtime!r} (it has: {names})")
    api_version, engine_range = docker.api_version, docker.engine_range
    # Both are set by the versioned call above, which negotiates first.
    assert api_version is not None
    assert engine_range is not None
    return EngineReport(
        api_version=api_version,
        engine_range=engine_range,
        runtime=chosen,
        runtimes=tuple(sorted(runtimes)),
        gvisor=_is_gvisor(chosen, runtimes.get(chosen)),
        podman=podman,
    )


def _is_podman(version: dict[str, object]) -> bool:
    components = version.get("Components")
    if not isinstance(components, list):
        return False
    return any(isinstance(c, dict) and c.get("Name") == PODMAN_COMPONENT for c in components)


def _is_gvisor(name: str, spec: object) -> bool:
    """A runtime is gVisor when its binary is ``runsc``, whatever the operator named it."""
    path = spec.get("path") if isinstance(spec, dict) else None
    binary = posixpath.basename(str(path)) if path else name
    return binary == GVISOR_BINARY
