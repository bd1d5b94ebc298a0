"""Task input on the real engine: stdin, files and workdir, and their refusals."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.conftest import managed_containers

pytestmark = pytest.mark.engine

IMAGE = "owner/repo:tag"
MIB = 1024 * 1024


def b64(data: bytes) -> str:
    """Base64 text of ``data``."""
    return base64.b64encode(data).decode()


def task(client: httpx.Client, script: str, **body: Any) -> httpx.Response:
    """POST `sh -c script` with the extra body fields."""
    return client.post(
        "/v1.1/tasks", json={"docker_image": IMAGE, "cmd": ["sh", "-c", script], **body}
    )


def out(answer: httpx.Response) -> bytes:
    """Decoded stdout of a 201 answer."""
    assert answer.status_code == 201, answer.text
    return base64.b64decode(answer.json()["stdout"])


def test_several_mib_of_binary_stdin_round_trip(start_ecs: Callable[..., Any]) -> None:
    """Five MiB of random bytes on stdin reach the task whole, then end-of-file."""
    server = start_ecs(max_input_bytes=8 * MIB)
    data = os.urandom(5 * MIB)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        answer = task(client, "cat >/tmp/in; sha256sum </tmp/in; wc -c </tmp/in", stdin=b64(data))
    digest, count = out(answer).decode().split("\n")[:2]
    assert digest.split()[0] == hashlib.sha256(data).hexdigest()
    assert count.strip() == str(len(data))


def test_small_binary_stdin_comes_back_unchanged(ecs: httpx.Client) -> None:
    """Every byte value survives stdin → task → stdout."""
    data = bytes(range(256)) * 4
    assert out(task(ecs, "cat", stdin=b64(data))) == data


def test_a_task_that_never_reads_stdin_still_finishes(start_ecs: Callable[..., Any]) -> None:
    """Megabytes of stdin to a task that ignores it: the task's exit ends the task."""
    server = start_ecs(max_input_bytes=4 * MIB)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = task(client, "echo ignored; exit 4", stdin=b64(b"x" * 3 * MIB))
    assert out(answer) == b"ignored\n"
    assert answer.json()["exitCode"] == 4


def test_without_stdin_the_task_reads_end_of_file(ecs: httpx.Client) -> None:
    """A task given no stdin reads an empty, closed one at once (no hang)."""
    answer = task(ecs, "cat; echo eof", timeout=20)
    assert out(answer) == b"eof\n"
    assert answer.json()["timedOut"] is False


def test_files_with_modes_nested_directories_and_workdir(ecs: httpx.Client) -> None:
    """Files land at their paths with their modes and bytes, parents are made, and the
    task starts in its workdir."""
    files = [
        {"path": "/work/deep/er/run.sh", "content": b64(b"echo ran\n"), "mode": 0o755},
        {"path": "/work/data.bin", "content": b64(b"\x00\x01\xfe\xff")},
        {"path": "/etc/ecs-input", "content": b64(b"secret"), "mode": 0o600},
    ]
    script = (
        "pwd; deep/er/run.sh; stat -c '%a %s' deep/er/run.sh data.bin /etc/ecs-input; "
        "od -An -tx1 data.bin; cat /etc/ecs-input"
    )
    answer = task(ecs, script, files=files, workdir="/work")
    assert out(answer).decode().split("\n") == [
        "/work",
        "ran",
        "755 9",
        "644 4",
        "600 6",
        " 00 01 fe ff",
        "secret",
    ]


@pytest.mark.parametrize(
    ("extra", "code", "field"),
    [
        ({"files": [{"path": "/a/../etc/x", "content": "aGk="}]}, "invalid_path", "files[0].path"),
        ({"files": [{"path": "/", "content": "aGk="}]}, "invalid_path", "files[0].path"),
        ({"files": [{"path": "x", "content": "aGk="}]}, "invalid_path", "files[0].path"),
        ({"files": [{"path": "/x", "content": "@@"}]}, "invalid_base64", "files[0].content"),
        ({"stdin": "not base64"}, "invalid_base64", "stdin"),
        ({"workdir": "work"}, "invalid_path", "workdir"),
        ({"files": [{"path": "/x", "content": ""}] * 2}, "path_conflict", "files[1].path"),
        ({"stdin": b64(b"x" * (MIB + 1))}, "input_too_large", "stdin"),
    ],
)
def test_bad_input_is_400_with_its_field_and_runs_nothing(
    ecs: httpx.Client, engine: httpx.Client, extra: dict[str, Any], code: str, field: str
) -> None:
    """Each bad input is a 400 naming the field; no container is ever created."""
    answer = task(ecs, "echo should-not-run", **extra)
    assert answer.status_code == 400, answer.text
    assert [(e["code"], e.get("field")) for e in answer.json()["errors"]] == [(code, field)]
    assert managed_containers(engine) == []


def test_files_with_a_read_only_root_are_a_clear_400(start_ecs: Callable[..., Any]) -> None:
    """With read_only_rootfs on, files cannot be unpacked: 400 saying so; stdin still works."""
    server = start_ecs(read_only_rootfs=True)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        refused = task(client, "true", files=[{"path": "/tmp/f", "content": "aGk="}])
        fed = task(client, "cat", stdin="aGk=")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "files_need_writable_root"
    assert out(fed) == b"hi"


def test_a_missing_workdir_is_created(ecs: httpx.Client) -> None:
    """The engine creates a workdir the image lacks, as `docker run -w` does."""
    assert out(task(ecs, "pwd", workdir="/not/in/the/image")) == b"/not/in/the/image\n"
