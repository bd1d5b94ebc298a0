"""POST /v1.1/tasks on the real engine: output, exit codes, timeouts, OOM and registries."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.engine_target import EngineTarget
from tests.integration.conftest import (
    AUTH_REGISTRY,
    OPEN_REGISTRY,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
)

pytestmark = pytest.mark.engine

IMAGE = "owner/repo:tag"  # Docker-Hub-style, served by the local mirror


def run(ecs: httpx.Client, path: str = "/v1.1/tasks", **body: Any) -> httpx.Response:
    """POST a task; ``docker_image`` defaults to the test image."""
    body.setdefault("docker_image", IMAGE)
    return ecs.post(path, json=body)


def decoded(answer: httpx.Response, stream: str) -> bytes:
    """One output stream of a 201 answer, base64-decoded."""
    return base64.b64decode(answer.json()[stream])


@pytest.mark.parametrize("path", ["/v1.1/tasks", "/v1.1/tasks/"])
def test_echo_with_and_without_trailing_slash(ecs: httpx.Client, path: str) -> None:
    """The original acceptance case: echo answers 201, exit 0, stdout as written."""
    answer = run(ecs, path, cmd=["echo", "hello world"])
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["exitCode"] == 0
    assert decoded(answer, "stdout") == b"hello world\n"
    assert body["stderr"] == ""
    assert body["timedOut"] is False
    assert body["oomKilled"] is False
    assert body["stdoutTruncated"] is False
    assert isinstance(body["durationMs"], int)
    assert answer.headers["content-type"] == "application/json"


def test_issue_example_exit_3(ecs: httpx.Client) -> None:
    """The README example: stdout aGkK, stderr b29wcwo=, exit code 3."""
    answer = run(ecs, cmd=["sh", "-c", "echo hi; echo oops >&2; exit 3"])
    assert answer.status_code == 201
    body = answer.json()
    assert (body["exitCode"], body["stdout"], body["stderr"]) == (3, "aGkK", "b29wcwo=")


@pytest.mark.parametrize(("script", "code"), [("exit 0", 0), ("exit 1", 1), ("kill -9 $$", 137)])
def test_exit_codes(ecs: httpx.Client, script: str, code: int) -> None:
    """A non-zero exit is still 201 with the container's exit code."""
    answer = run(ecs, cmd=["sh", "-c", script])
    assert answer.status_code == 201
    assert answer.json()["exitCode"] == code
    assert answer.json()["timedOut"] is False


def test_stdout_and_stderr_are_separate(ecs: httpx.Client) -> None:
    """What goes to each stream comes back in that stream only."""
    answer = run(ecs, cmd=["sh", "-c", "echo 0a1b2c > /dev/stdout && echo 3d4e5f > /dev/stderr"])
    assert decoded(answer, "stdout") == b"0a1b2c\n"
    assert decoded(answer, "stderr") == b"3d4e5f\n"


def test_multi_line_interleaved_output(ecs: httpx.Client) -> None:
    """Hundreds of interleaved lines (many frames) demultiplex exactly, in order per stream."""
    script = "i=0; while [ $i -lt 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done"
    answer = run(ecs, cmd=["sh", "-c", script])
    assert decoded(answer, "stdout") == b"".join(b"out%d\n" % i for i in range(300))
    assert decoded(answer, "stderr") == b"".join(b"err%d\n" % i for i in range(300))


def test_environment_reaches_the_task(ecs: httpx.Client) -> None:
    """`env` entries are set in the container."""
    answer = run(ecs, cmd=["sh", "-c", 'printf "%s" "$GREETING"'], env={"GREETING": "héllo wörld"})
    assert decoded(answer, "stdout") == "héllo wörld".encode()


BINARY_SCRIPT = (
    # All 256 byte values once, then doubled 14 times: 4 MiB of binary output.
    'i=0; while [ $i -lt 256 ]; do printf "\\\\$(printf %03o $i)"; i=$((i+1)); done > /tmp/b; '
    "n=0; while [ $n -lt 14 ]; do cat /tmp/b /tmp/b > /tmp/c; mv /tmp/c /tmp/b; n=$((n+1)); done; "
    "cat /tmp/b"
)


def test_several_mib_of_binary_output(start_ecs: Any) -> None:
    """4 MiB of every byte value come back byte for byte (cap raised to 8 MiB)."""
    server = start_ecs(output_cap_bytes=8 * 1024 * 1024)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        answer = run(client, cmd=["sh", "-c", BINARY_SCRIPT])
    assert answer.status_code == 201
    assert decoded(answer, "stdout") == bytes(range(256)) * (1 << 14)
    assert answer.json()["stdoutTruncated"] is False


def test_output_over_the_cap_is_truncated(ecs: httpx.Client) -> None:
    """Past the 1 MiB default cap the beginning is kept and the flag is set."""
    script = "yes abcdefghijklmnopqrstuvwxyz | head -c 2000000; echo fine >&2"
    answer = run(ecs, cmd=["sh", "-c", script])
    body = answer.json()
    stdout = decoded(answer, "stdout")
    assert len(stdout) == 1024 * 1024
    assert stdout.startswith(b"abcdefghijklmnopqrstuvwxyz\nabcdef")
    assert body["stdoutTruncated"] is True
    assert decoded(answer, "stderr") == b"fine\n"
    assert body["stderrTruncated"] is False


def test_timeout_kills_the_task(ecs: httpx.Client) -> None:
    """A task past its timeout is killed: 201, timedOut, exit 137, output so far kept."""
    answer = run(ecs, cmd=["sh", "-c", "echo started; sleep 60"], timeout=1)
    assert answer.status_code == 201
    body = answer.json()
    assert body["timedOut"] is True
    assert body["exitCode"] == 137
    assert decoded(answer, "stdout") == b"started\n"


def test_entrypoint_that_sleeps_forever_is_killed(ecs: httpx.Client) -> None:
    """An image whose entrypoint ignores the command still stops at the timeout."""
    # The entrypoint is `sleep 100000`; the command only adds more seconds to sleep.
    answer = run(ecs, docker_image="owner/sleeper:tag", cmd=["100000"], timeout=1)
    assert answer.status_code == 201
    assert answer.json()["timedOut"] is True


def test_memory_hog_is_oom_killed(ecs: httpx.Client) -> None:
    """A task over its memory limit is killed by the kernel and reported as OOM, with the
    output it wrote before (under gVisor the whole sandbox is killed: still reported)."""
    hog = "echo before; echo err >&2; sleep 0.5; x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"
    answer = run(ecs, cmd=["sh", "-c", hog], limits={"memory_mb": 32}, timeout=60)
    assert answer.status_code == 201
    body = answer.json()
    assert body["oomKilled"] is True
    assert body["exitCode"] == 137
    assert body["timedOut"] is False
    assert decoded(answer, "stdout") == b"before\n"
    assert decoded(answer, "stderr") == b"err\n"


def test_registry_with_port_in_the_reference(ecs: httpx.Client) -> None:
    """An explicit registry host with a port is pulled from that registry."""
    answer = run(ecs, docker_image=f"{OPEN_REGISTRY}/owner/repo:tag", cmd=["echo", "ok"])
    assert answer.status_code == 201, answer.text
    assert decoded(answer, "stdout") == b"ok\n"


def test_unknown_image_is_404(ecs: httpx.Client) -> None:
    """An image the registry does not have answers 404 with the registry's words."""
    answer = run(ecs, docker_image=f"{OPEN_REGISTRY}/owner/dave_was_here:tag", cmd=["true"])
    assert answer.status_code == 404
    error = answer.json()["errors"][0]
    assert error["code"] == "image_not_found"
    assert "manifest unknown" in error["message"]


PRIVATE = f"{AUTH_REGISTRY}/owner/private:tag"


def test_private_image_with_correct_creds(ecs: httpx.Client, engine: httpx.Client) -> None:
    """The private registry's image is pulled with the request's credentials."""
    engine.delete(f"/images/{PRIVATE}", params={"force": "1"})
    creds = {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}
    answer = run(ecs, docker_image=PRIVATE, cmd=["echo", "private"], creds=creds)
    assert answer.status_code == 201, answer.text
    assert decoded(answer, "stdout") == b"private\n"


@pytest.mark.parametrize(
    "creds",
    [None, {"username": REGISTRY_USER, "password": "wrong", "email": "a@b.c"}],
    ids=["no-creds", "wrong-password"],
)
def test_private_image_refused(
    ecs: httpx.Client, engine: httpx.Client, creds: dict[str, str] | None
) -> None:
    """Missing or wrong credentials answer 403 with the registry's reason."""
    engine.delete(f"/images/{PRIVATE}", params={"force": "1"})
    body: dict[str, Any] = {"docker_image": PRIVATE, "cmd": ["true"]}
    if creds:
        body["creds"] = creds
    answer = ecs.post("/v1.1/tasks", json=body)
    assert answer.status_code == 403, answer.text
    assert answer.json()["errors"][0]["code"] == "registry_unauthorized"


def test_unreachable_registry_is_503(ecs: httpx.Client) -> None:
    """A registry nobody listens on answers 503 with Retry-After and the engine's words."""
    answer = run(ecs, docker_image="127.0.0.1:5999/owner/repo:tag", cmd=["true"])
    assert answer.status_code == 503
    assert answer.headers["retry-after"]
    assert "connection refused" in answer.json()["errors"][0]["message"]


def test_sandbox_defaults_seen_from_inside(ecs: httpx.Client, engine_target: EngineTarget) -> None:
    """Inside the task: no capabilities, no new privileges, only a loopback interface."""
    script = "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status; ls /sys/class/net"
    answer = run(ecs, cmd=["sh", "-c", script])
    lines = decoded(answer, "stdout").decode().split()
    assert lines[lines.index("CapEff:") + 1] == "0000000000000000"
    assert lines[lines.index("CapPrm:") + 1] == "0000000000000000"
    if not engine_target.gvisor:  # gVisor's /proc/self/status has no NoNewPrivs line
        assert lines[lines.index("NoNewPrivs:") + 1] == "1"
    assert lines[-1] == "lo"
    assert "eth0" not in lines


def test_network_access_fails(ecs: httpx.Client) -> None:
    """A task cannot reach the network: connecting to the host's registry fails."""
    answer = run(ecs, cmd=["sh", "-c", f"wget -q -T 2 -O- http://{OPEN_REGISTRY}/v2/"])
    assert answer.json()["exitCode"] != 0


def test_fork_bomb_is_stopped_by_the_pids_limit(ecs: httpx.Client) -> None:
    """Forking past the pids limit fails inside the task instead of hurting the host."""
    script = "i=0; while [ $i -lt 100 ]; do sleep 5 & i=$((i+1)); done 2>&1; echo done"
    answer = run(ecs, cmd=["sh", "-c", script], limits={"pids": 16}, timeout=30)
    assert answer.status_code == 201
    assert b"Resource temporarily unavailable" in decoded(answer, "stdout")


def test_a_command_missing_from_the_image_is_the_tasks_failure(
    ecs: httpx.Client, engine_target: EngineTarget
) -> None:
    """A program the image lacks is the task's failure, as with `docker run`: the init
    process reports it on stderr and exits 127 (Podman's catatonit: 1); nothing is left."""
    answer = run(ecs, cmd=["/no/such/program"])
    assert answer.status_code == 201, answer.text
    assert answer.json()["exitCode"] == (1 if engine_target.podman else 127)
    stderr = decoded(answer, "stderr")
    assert b"no such file or directory" in stderr.lower()
    assert engine_target.podman or b"/no/such/program" in stderr
