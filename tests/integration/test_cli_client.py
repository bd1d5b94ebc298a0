"""`ecs run`, `ecs wait`, `ecs cancel` against a real ECS: output, exit codes, errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecs.keys import generate_keys
from tests.integration.conftest import wait_until
from tests.integration.ecs_process import free_port
from tests.integration.ecs_server import EcsServer, new_instance_id

pytestmark = pytest.mark.engine

IMAGE = "owner/repo:tag"


def ecs(*args: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run the ``ecs`` command line with a clean environment plus ``env``."""
    environment = {"PATH": "/usr/bin:/bin", **env}
    return subprocess.run(
        [sys.executable, "-m", "ecs", *args],
        input=stdin,
        capture_output=True,
        env=environment,
        timeout=120,
        check=False,
    )


def test_exit_code_and_both_streams_pass_through(ecs_server: EcsServer) -> None:
    """The task's stdout and stderr come out raw on ours; its exit code is ours."""
    result = ecs(
        "run", "--url", ecs_server.url, IMAGE, "--", "sh", "-c", "echo out; echo err >&2; exit 7"
    )
    assert (result.returncode, result.stdout, result.stderr) == (7, b"out\n", b"err\n")


def test_binary_stdout_stdin_file_env_and_timeout(ecs_server: EcsServer, tmp_path: Path) -> None:
    """Bytes of every value survive; --stdin-file feeds stdin, --env sets variables,
    --timeout kills at its time (exit 137)."""
    data = bytes(range(256))
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    fed = ecs("run", "--url", ecs_server.url, "--stdin-file", str(source), IMAGE, "--", "cat")
    assert (fed.returncode, fed.stdout) == (0, data)
    piped = ecs(
        "run", "--url", ecs_server.url, "--stdin-file", "-", IMAGE, "--", "cat", stdin=b"hi"
    )
    assert piped.stdout == b"hi"
    env = ecs(
        "run", "--url", ecs_server.url, "--env", "A=1", "--env", "B=two=2",
        IMAGE, "--", "sh", "-c", 'echo "$A $B"',
    )  # fmt: skip
    assert env.stdout == b"1 two=2\n"
    killed = ecs("run", "--url", ecs_server.url, "--timeout", "1", IMAGE, "--", "sleep", "30")
    assert killed.returncode == 137


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["127.0.0.1:5000/owner/nope:tag", "--", "true"], "ECS answered 404: image_not_found"),
        (["no-tag-image", "--", "true"], "ECS answered 400: invalid_image"),
        ([IMAGE], "no command"),
        (["--env", "NOEQUALS", IMAGE, "--", "true"], "--env takes K=V"),
        (["--stdin-file", "/no/such/file", IMAGE, "--", "cat"], "cannot read --stdin-file"),
    ],
)
def test_ecs_refusals_exit_125_with_the_reason(
    ecs_server: EcsServer, args: list[str], fragment: str
) -> None:
    """4xx from ECS and bad command lines exit 125 and say why on stderr."""
    result = ecs("run", "--url", ecs_server.url, *args)
    assert result.returncode == 125
    assert fragment.encode() in result.stderr
    assert result.stdout == b""


def test_an_unreachable_ecs_exits_125(tmp_path: Path) -> None:
    """Nobody listening: 125 and a message naming the URL."""
    result = ecs("run", "--url", "http://127.0.0.1:9", IMAGE, "--", "true")
    assert result.returncode == 125
    assert b"cannot reach ECS at http://127.0.0.1:9" in result.stderr


def test_url_and_key_from_the_environment(start_ecs: Callable[..., Any], tmp_path: Path) -> None:
    """ECS_URL, ECS_KEY and ECS_SECRET stand in for the flags; without a key: 401 → 125."""
    path = tmp_path / "keys.htpasswd"
    (pair,) = generate_keys(1, path, rounds=4)
    server = start_ecs(credentials_file=path)
    good = ecs(
        "run",
        IMAGE,
        "--",
        "echo",
        "ok",
        ECS_URL=server.url,
        ECS_KEY=pair.key,
        ECS_SECRET=pair.secret,
    )
    assert (good.returncode, good.stdout) == (0, b"ok\n")
    refused = ecs("run", IMAGE, "--", "echo", "ok", ECS_URL=server.url)
    assert refused.returncode == 125
    assert b"ECS answered 401: unauthorized" in refused.stderr


def test_detach_then_wait_and_cancel(ecs_server: EcsServer) -> None:
    """--detach prints the id; `wait` passes on its output and exit code; `cancel` ends a
    running one, after which `wait` exits 125."""
    detached = ecs(
        "run", "--url", ecs_server.url, "--detach", IMAGE, "--", "sh", "-c", "echo later; exit 3"
    )
    assert detached.returncode == 0
    task_id = detached.stdout.decode().strip()
    waited = ecs("wait", "--url", ecs_server.url, task_id)
    assert (waited.returncode, waited.stdout) == (3, b"later\n")
    long = ecs("run", "--url", ecs_server.url, "--detach", IMAGE, "--", "sleep", "60")
    long_id = long.stdout.decode().strip()
    cancelled = ecs("cancel", "--url", ecs_server.url, long_id)
    assert cancelled.returncode == 0
    assert cancelled.stdout.decode().strip() == f"{long_id}: cancelled"
    after = ecs("wait", "--url", ecs_server.url, long_id)
    assert after.returncode == 125
    assert b"was cancelled" in after.stderr
    unknown = ecs("wait", "--url", ecs_server.url, "0123456789abcdef")
    assert unknown.returncode == 125
    assert b"task_not_found" in unknown.stderr


def test_serve_flags_win_over_environment_and_file(tmp_path: Path) -> None:
    """--port and --host beat ECS_PORT/ECS_HOST and the file, --log-level beats
    ECS_LOG_LEVEL: ECS answers on the flag's port and logs at the flag's level."""
    config = tmp_path / "ecs.toml"
    config.write_text("port = 1\nhost = '127.0.0.2'\n")
    port = free_port()
    log = tmp_path / "ecs.log"
    environment = {
        "PATH": "/usr/bin:/bin",
        "ECS_PORT": "2",
        "ECS_HOST": "127.0.0.3",
        "ECS_LOG_LEVEL": "error",
        "ECS_LOG_FORMAT": "json",
        "ECS_INSTANCE_ID": new_instance_id(),
        "ECS_STATE_PATH": str(tmp_path / "state.sqlite3"),
    }
    command = [sys.executable, "-m", "ecs", "serve", "--config", str(config)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=out)
    try:
        assert wait_until(lambda: _answers(f"http://127.0.0.1:{port}/v1.1/_noop"), 30), (
            log.read_text()
        )
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert '"engine_connected"' in log.read_text()  # an info line: the flag's level won


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
