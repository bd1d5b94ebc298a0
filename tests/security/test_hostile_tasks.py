"""Hostile tasks against the default sandbox, and requests that ask for more than it gives.

tests/integration/test_tasks.py has the basics (capabilities seen from inside, a fetch of
the host's registry, a 16-pid fork loop, a 16 MiB memory hog, a 2 MB output cap, the
sleeper image); these push further, with the server's defaults.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import (  # noqa: F401 - fixtures used here
    OPEN_REGISTRY,
    ecs,
    ecs_server,
    engine,
    no_leaked_containers,
    start_ecs,
)
from tests.integration.ecs_process import EcsProcess
from tests.integration.ecs_server import EcsServer

pytestmark = pytest.mark.engine

IMAGE = "owner/repo:tag"
MIB = 1024 * 1024


def run(client: httpx.Client, script: str, **body: Any) -> httpx.Response:
    """Run ``sh -c script`` in the test image."""
    return client.post(
        "/v1.1/tasks", json={"docker_image": IMAGE, "cmd": ["sh", "-c", script], **body}
    )


def stdout(answer: httpx.Response) -> bytes:
    """The decoded stdout of a 201 answer."""
    assert answer.status_code == 201, answer.text
    return base64.b64decode(answer.json()["stdout"])


def test_task_reaches_neither_ecs_nor_host_loopback_services(
    ecs: httpx.Client,  # noqa: F811
    ecs_server: EcsServer,  # noqa: F811
) -> None:
    """From inside a task, the ECS API, the registry and the engine socket on the host are
    all out of reach: the task's loopback is its own and there is no other interface."""
    port = ecs_server.url.rsplit(":", 1)[1]
    script = (
        f"wget -q -T 2 -O- http://127.0.0.1:{port}/v1.1/_noop && echo REACHED-ECS; "
        f"nc -w 2 {OPEN_REGISTRY.replace(':', ' ')} </dev/null && echo REACHED-REGISTRY; "
        "[ -e /var/run/docker.sock ] && echo HAS-DOCKER-SOCKET; "
        "nslookup example.com >/dev/null 2>&1 && echo RESOLVED; "
        "ls /sys/class/net; echo end"
    )
    output = stdout(run(ecs, script, timeout=30))
    for marker in (b"REACHED-ECS", b"REACHED-REGISTRY", b"HAS-DOCKER-SOCKET", b"RESOLVED"):
        assert marker not in output
    assert output.endswith(b"\nlo\nend\n") or output == b"lo\nend\n"  # lo is the only interface


def test_privileged_operations_fail_as_root_inside(ecs: httpx.Client) -> None:  # noqa: F811
    """Root in the task can mount nothing, make no device, chown nothing, set no clock,
    open no raw socket and gain nothing from a setuid bit."""
    attempts = {
        "mount": "mount -t tmpfs none /mnt",
        # gVisor lets mknod succeed, but the node reaches no host device: read it too.
        "mknod": "mknod /tmp/disk b 8 0 && dd if=/tmp/disk of=/dev/null bs=1 count=1",
        "chown": "touch /tmp/f && chown 1234 /tmp/f",
        # busybox date exits 0 even when the kernel refuses: look at the clock instead.
        "clock": 'date -s 2000-01-01; [ "$(date +%Y)" = 2000 ]',
        "raw-socket": "ping -c 1 -W 1 127.0.0.1",
        "hostname": "hostname pwned",
    }
    script = "; ".join(
        f"( {cmd} ) >/dev/null 2>&1 && echo ALLOWED-{name}" for name, cmd in attempts.items()
    )
    output = stdout(run(ecs, script + "; echo done", timeout=30))
    assert output == b"done\n", output


def test_real_fork_bomb_under_the_default_pids_limit(ecs: httpx.Client) -> None:  # noqa: F811
    """A classic fork bomb with the default limits is contained: the answer comes at the
    timeout, the task is killed, and ECS keeps answering."""
    started = time.monotonic()
    answer = run(ecs, "bomb() { bomb | bomb & }; bomb; sleep 30", timeout=5)
    assert answer.status_code == 201, answer.text
    assert answer.json()["exitCode"] != 0
    assert time.monotonic() - started < 5 + 15
    assert ecs.get("/v1.1/_health", params={"quick": "false"}).status_code == 200


def test_memory_hog_under_the_default_limit_is_oom_killed(ecs: httpx.Client) -> None:  # noqa: F811
    """A task holding 400 MiB under the default 256 MiB limit is OOM-killed and reported."""
    answer = run(ecs, "head -c 400m /dev/zero | tail > /dev/null", timeout=60)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["oomKilled"] is True
    assert body["exitCode"] != 0
    assert body["timedOut"] is False


def test_task_ignoring_sigterm_is_killed_at_the_timeout(ecs: httpx.Client) -> None:  # noqa: F811
    """A task that traps SIGTERM and SIGINT still dies at its timeout (SIGKILL), on time."""
    started = time.monotonic()
    answer = run(ecs, "trap '' TERM INT HUP; echo armed; while :; do sleep 1; done", timeout=2)
    elapsed = time.monotonic() - started
    assert answer.json()["timedOut"] is True
    assert answer.json()["exitCode"] == 137
    assert stdout(answer) == b"armed\n"
    assert elapsed < 2 + 8


def test_sleeper_image_answer_arrives_at_its_timeout(ecs: httpx.Client) -> None:  # noqa: F811
    """The image whose entrypoint sleeps forever is answered about when its timeout ends."""
    started = time.monotonic()
    answer = ecs.post(
        "/v1.1/tasks", json={"docker_image": "owner/sleeper:tag", "cmd": ["1000"], "timeout": 1.5}
    )
    assert answer.json()["timedOut"] is True
    assert 1.5 <= time.monotonic() - started < 1.5 + 8


def test_read_only_root_refuses_writes_outside_tmp(
    start_ecs: Callable[..., EcsServer],  # noqa: F811
) -> None:
    """With read_only_rootfs on, every write outside /tmp fails; /tmp stays writable."""
    server = start_ecs(read_only_rootfs=True)
    script = (
        "for p in /etc/x /bin/x /root/x /x /var/x; do "
        "echo hi > $p 2>/dev/null && echo WROTE-$p; done; "
        "echo ok > /tmp/x && cat /tmp/x"
    )
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert stdout(run(client, script)) == b"ok\n"


def vm_hwm_kib(pid: int) -> int:
    """The peak resident set size of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture
def ecs_process(tmp_path: Path) -> Iterator[EcsProcess]:
    """ECS as its own process, so its memory can be measured."""
    process = EcsProcess(tmp_path / "ecs.log").start()
    yield process
    process.stop()


def test_100_mib_of_stdout_is_capped_without_ecs_memory_growing(
    ecs_process: EcsProcess,
) -> None:
    """100 MiB written to stdout comes back as the first 1 MiB, flagged truncated, while
    ECS's peak memory grows by a few MiB, not by the output's size."""
    assert ecs_process.process is not None
    pid = ecs_process.process.pid
    with httpx.Client(base_url=ecs_process.url, timeout=120) as client:
        warm = run(client, "echo warm")  # imports and pools in place before measuring
        assert warm.status_code == 201
        before = vm_hwm_kib(pid)
        answers: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: answers.append(
                run(client, "head -c 104857600 /dev/zero | tr '\\0' x; echo tail >&2")
            )
        )
        request.start()
        request.join(timeout=120)
    assert answers, "no answer"
    output = stdout(answers[0])
    assert output == b"x" * MIB
    assert answers[0].json()["stdoutTruncated"] is True
    assert base64.b64decode(answers[0].json()["stderr"]) == b"tail\n"
    grown_mib = (vm_hwm_kib(pid) - before) / 1024
    assert grown_mib < 40, f"ECS peak memory grew by {grown_mib:.1f} MiB"


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"network_mode": "host"}, "unknown_field"),
        ({"NetworkMode": "host"}, "unknown_field"),
        ({"privileged": True}, "unknown_field"),
        ({"HostConfig": {"Privileged": True}}, "unknown_field"),
        ({"cap_add": ["SYS_ADMIN"]}, "unknown_field"),
        ({"mounts": [{"source": "/", "target": "/host"}]}, "unknown_field"),
        ({"volumes": ["/:/host"]}, "unknown_field"),
        ({"binds": ["/var/run/docker.sock:/var/run/docker.sock"]}, "unknown_field"),
        ({"user": "0:0"}, "unknown_field"),
        ({"limits": {"memory_mb": 2049}}, "above_maximum"),
        ({"limits": {"cpus": 2.5}}, "above_maximum"),
        ({"limits": {"pids": 4097}}, "above_maximum"),
        ({"limits": {"pids": 0}}, "greater_than"),
        ({"limits": {"memory_mb": -1}}, "greater_than_equal"),
        ({"limits": {"memory_mb": 5}}, "greater_than_equal"),
        ({"limits": {"swap_mb": 1}}, "unknown_field"),
        ({"timeout": 601}, "above_maximum"),
        ({"timeout": 0}, "greater_than"),
        ({"env": {"A=B": "x"}}, "invalid_env"),
    ],
)
def test_requests_for_more_than_the_sandbox_gives_are_400(
    ecs: httpx.Client,  # noqa: F811
    extra: dict[str, Any],
    code: str,
) -> None:
    """Host networking, privileges, capabilities, mounts, another user, limits above the
    maximum or below one: refused with 400 naming the problem, and nothing runs."""
    answer = ecs.post("/v1.1/tasks", json={"docker_image": IMAGE, "cmd": ["true"], **extra})
    assert answer.status_code == 400, answer.text
    assert [error["code"] for error in answer.json()["errors"]] == [code]
