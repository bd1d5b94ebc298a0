"""The container a task runs in: its configuration and the security defaults, as data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LABEL_MANAGED = "io.ecs.managed"
LABEL_INSTANCE = "io.ecs.instance"
LABEL_TASK = "io.ecs.task"
LABEL_DEADLINE = "io.ecs.deadline"
LABEL_POOL = "io.ecs.pool"  # a warm pool's container (idle, or taken by one task)

_MIB = 1024 * 1024
# gVisor's runsc (ptrace platform) runs every guest process on host threads of its own and
# keeps ~40 host pids for itself: measured 104 host pids for 8 guest processes, 542 for 64,
# 2057 for 256, and more while forking. The guest's own limit is RLIMIT_NPROC, which
# gVisor's kernel enforces inside the sandbox; the host limit only has to leave it room.
GVISOR_BASE_PIDS = 96
GVISOR_PIDS_PER_PROCESS = 10
# The sandbox's own kernel lives in the task's memory cgroup: under ~16 MiB it is killed
# while starting (measured: 12 MiB fails, 16 MiB starts), so it gets that on top.
GVISOR_MEMORY_OVERHEAD_MB = 16


@dataclass(frozen=True)
class ContainerPolicy:
    """What every task container gets, whatever the request says."""

    read_only_rootfs: bool = False
    log_driver: str = "json-file"
    log_options: Mapping[str, str] = field(default_factory=dict)
    runtime: str | None = None  # the engine's default when None
    gvisor: bool = False  # the runtime is runsc: the pids limit must cover the sandbox too


def resource_limits(
    memory_mb: int, cpus: float, pids: int, policy: ContainerPolicy
) -> dict[str, Any]:
    """The ``HostConfig`` limits of a task (also a container ``update`` body)."""
    overhead_mb = GVISOR_MEMORY_OVERHEAD_MB if policy.gvisor else 0
    memory = (memory_mb + overhead_mb) * _MIB
    return {
        "Memory": memory,
        "MemorySwap": memory,  # equal to Memory: no swap on top of the limit
        "NanoCpus": int(cpus * 1_000_000_000),
        "PidsLimit": host_pids_limit(pids, gvisor=policy.gvisor),
    }


def host_pids_limit(pids: int, *, gvisor: bool) -> int:
    """The engine's ``PidsLimit`` that gives the task ``pids`` processes of its own."""
    return GVISOR_BASE_PIDS + GVISOR_PIDS_PER_PROCESS * pids if gvisor else pids


@dataclass(frozen=True)
class ContainerRequest:
    """What one task asks for, already checked against the server's maxima."""

    image: str
    cmd: list[str]
    env: Mapping[str, str]
    memory_mb: int
    cpus: float
    pids: int
    workdir: str | None = None
    stdin: bool = False  # the task is given stdin: the container keeps it open for one attach


def container_labels(instance_id: str, task_id: str, deadline_epoch_s: int) -> dict[str, str]:
    """Labels that let the janitor find a task container and decide it is overdue."""
    return {
        LABEL_MANAGED: "true",
        LABEL_INSTANCE: instance_id,
        LABEL_TASK: task_id,
        LABEL_DEADLINE: str(deadline_epoch_s),
    }


def container_config(
    request: ContainerRequest, policy: ContainerPolicy, labels: Mapping[str, str]
) -> dict[str, Any]:
    """The ``POST /containers/create`` body: no network, no capabilities, hard limits."""
    host_config: dict[str, Any] = {
        "NetworkMode": "none",
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "Privileged": False,
        "Binds": [],
        "Mounts": [],
        **resource_limits(request.memory_mb, request.cpus, request.pids, policy),
        "Init": True,
        "ReadonlyRootfs": policy.read_only_rootfs,
        "LogConfig": {"Type": policy.log_driver, "Config": dict(policy.log_options)},
        "AutoRemove": False,  # ECS reads the logs first, then removes
        "RestartPolicy": {"Name": "no"},
    }
    if policy.gvisor:
        # Inside gVisor the guest's kernel counts processes against RLIMIT_NPROC; under
        # runc that limit would count every process of the uid on the host, so only here.
        host_config["Ulimits"] = [{"Name": "nproc", "Soft": request.pids, "Hard": request.pids}]
    if policy.runtime is not None:
        host_config["Runtime"] = policy.runtime
    if policy.read_only_rootfs:
        host_config["Tmpfs"] = {"/tmp": "rw,nosuid,nodev,size=64m"}  # noqa: S108
    config: dict[str, Any] = {
        "Image": request.image,
        "Cmd": list(request.cmd),
        "Env": [f"{key}={value}" for key, value in request.env.items()],
        "Labels": dict(labels),
        "Tty": False,
        # StdinOnce: the engine closes the task's stdin when the one attached writer
        # hangs up, which is how the task sees end-of-file.
        "OpenStdin": request.stdin,
        "StdinOnce": request.stdin,
        "AttachStdin": request.stdin,
        "AttachStdout": False,
        "AttachStderr": False,
        "NetworkDisabled": True,
        "HostConfig": host_config,
    }
    if request.workdir is not None:
        config["WorkingDir"] = request.workdir
    return config
