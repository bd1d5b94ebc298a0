"""The runtimes scripts/engine registers in Debian's Docker Engine: runc, crun and runsc.

These run on the default engine whatever ``--engine`` says: the runtimes live there.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engine_target import DEFAULT_TARGET
from tests.integration.ecs_server import EcsServer

pytestmark = pytest.mark.engine

CONTAINERD = "/run/docker/containerd/containerd.sock"
REPO = Path(__file__).parents[2]


@pytest.fixture
def default_engine() -> Iterator[httpx.Client]:
    """A client of the default engine, whatever ``--engine`` the run targets."""
    with httpx.Client(
        transport=httpx.HTTPTransport(uds=DEFAULT_TARGET.socket), base_url="http://d", timeout=60
    ) as client:
        try:
            client.get("/_ping").raise_for_status()
        except httpx.HTTPError as exc:
            pytest.fail(f"default engine not reachable ({exc}); run scripts/engine")
        yield client


def run_task(server: EcsServer, script: str, **body: object) -> httpx.Response:
    """POST one task running ``sh -c script``."""
    with httpx.Client(base_url=server.url, timeout=120) as client:
        return client.post(
            "/v1.1/tasks",
            json={"docker_image": "owner/repo:tag", "cmd": ["sh", "-c", script], **body},
        )


@pytest.mark.parametrize("runtime", ["runc", "crun", "runsc"])
def test_each_runtime_runs_tasks(default_engine: httpx.Client, runtime: str) -> None:
    """A task runs on each registered runtime, and the container really used it."""
    server = EcsServer(docker_host=DEFAULT_TARGET.docker_host, runtime=runtime).start()
    try:
        answer = run_task(server, "echo out; echo err >&2; exit 3")
    finally:
        server.stop()
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["exitCode"], body["stdout"], body["stderr"]) == (3, "b3V0Cg==", "ZXJyCg==")
    assert f'"{runtime}"' in default_engine.get("/info").text


def test_gvisor_task_gets_the_processes_it_asked_for(default_engine: httpx.Client) -> None:
    """Under runsc the sandbox's own ~40 host processes do not eat the task's default
    256: forty background processes run, which an untranslated limit would kill."""
    server = EcsServer(docker_host=DEFAULT_TARGET.docker_host, runtime="runsc").start()
    try:
        answer = run_task(server, "for i in $(seq 40); do sleep 2 & done; wait; echo ok")
    finally:
        server.stop()
    assert answer.status_code == 201, answer.text
    assert base64.b64decode(answer.json()["stdout"]) == b"ok\n"
    assert answer.json()["exitCode"] == 0


def containerd_tasks() -> str:
    """The default engine's containerd tasks, as ``ctr`` lists them."""
    return subprocess.run(
        ["ctr", "-a", CONTAINERD, "-n", "moby", "tasks", "ls"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_failed_gvisor_start_leftovers_are_swept(default_engine: httpx.Client) -> None:
    """A runsc start that fails leaves a containerd task the engine no longer shows after
    the container is removed; `scripts/engine sweep` removes it and its processes."""
    create = default_engine.post(
        "/containers/create",
        # Without an init, gVisor itself fails to load a missing program: the start fails.
        json={
            "Image": "local/busybox:1",
            "Cmd": ["/nonexistent"],
            "Labels": {"io.ecs.test": "gvisor-sweep"},
            "HostConfig": {"Runtime": "runsc", "NetworkMode": "none"},
        },
    )
    container_id = create.raise_for_status().json()["Id"]
    start = default_engine.post(f"/containers/{container_id}/start")
    default_engine.delete(f"/containers/{container_id}", params={"force": "1"})
    assert start.status_code >= 400, "the start was expected to fail"
    assert container_id in containerd_tasks(), "the failed start left no task: nothing to test"
    sweep = subprocess.run(
        [str(REPO / "scripts/engine"), "sweep"], capture_output=True, text=True, check=False
    )
    assert sweep.returncode == 0, sweep.stderr
    deadline = time.monotonic() + 10
    while container_id in containerd_tasks() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert container_id not in containerd_tasks()
    shims = subprocess.run(["pgrep", "-f", "--", container_id], capture_output=True, check=False)
    assert shims.returncode == 1, "a shim of the failed container is still running"


def test_gvisor_task_talks_to_its_own_kernel(default_engine: httpx.Client) -> None:
    """Under runsc the task's kernel is gVisor's, not the node's: its release and its
    boot log are gVisor's own."""
    server = EcsServer(docker_host=DEFAULT_TARGET.docker_host, runtime="runsc").start()
    try:
        answer = run_task(server, "uname -r; dmesg | head -1")
    finally:
        server.stop()
    assert answer.status_code == 201, answer.text
    release, boot_line = base64.b64decode(answer.json()["stdout"]).decode().splitlines()[:2]
    assert release != os.uname().release
    assert "gVisor" in boot_line
