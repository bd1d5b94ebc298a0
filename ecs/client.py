"""``ecs run``, ``ecs wait``, ``ecs cancel``: ECS's HTTP API from a shell, like ``docker run``.

``run`` submits a task and writes its stdout and stderr raw to its own, then exits with
the task's exit code; ``run --detach`` submits it async and prints its id, which ``wait``
and ``cancel`` take. ECS's own refusals (4xx, 5xx) and an unreachable ECS exit 125, as
docker does for the daemon's errors, with the message on stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from ecs import API_VERSION

ECS_FAILED = 125  # ECS itself refused or failed: no task exit code to pass on
DEFAULT_URL = "http://127.0.0.1:8448"
_WAIT_S = 60
# A sync answer comes when the task has run (up to the server's maximum timeout, after a
# wait in its queue): reading may take long; connecting may not.
_TIMEOUT = httpx.Timeout(30.0, read=3600.0)


@dataclass(frozen=True)
class Target:
    """Where ECS is and who is asking."""

    url: str
    auth: tuple[str, str] | None

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str]) -> Target:
        """``--url/--key/--secret``, else ``ECS_URL``/``ECS_KEY``/``ECS_SECRET``."""
        url = args.url or environ.get("ECS_URL") or DEFAULT_URL
        key = args.key or environ.get("ECS_KEY")
        secret = args.secret or environ.get("ECS_SECRET")
        return cls(url.rstrip("/"), (key, secret) if key and secret else None)


class ClientError(Exception):
    """ECS refused, failed, or could not be reached; ``message`` says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def add_client_commands(commands: Any) -> None:
    """The ``run``, ``wait`` and ``cancel`` subcommands of ``ecs``."""
    run = commands.add_parser(
        "run",
        help="run a task on an ECS and pass on its output and exit code",
        description="Run CMD in a container of IMAGE on an ECS; its stdout and stderr are "
        "written raw to this command's, and its exit code is this command's (125: ECS "
        "refused or failed, as docker's own errors).",
    )
    _add_target(run)
    run.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="an environment variable of the task (repeat for more)",
    )
    run.add_argument("--timeout", type=float, help="seconds before the task is killed")
    run.add_argument(
        "--stdin-file", type=Path, metavar="F", help="a file fed to the task's stdin ('-': ours)"
    )
    run.add_argument(
        "--detach",
        action="store_true",
        help="submit it async and print its id (then `ecs wait ID` or `ecs cancel ID`)",
    )
    run.add_argument("image", metavar="IMAGE", help="image reference with a tag or a digest")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD", help="the command")
    for name, text in (
        ("wait", "wait for an async task, then pass on its output and exit code"),
        ("cancel", "cancel an async task (drop it if queued, kill it if running)"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        _add_target(command)
        command.add_argument("task_id", metavar="ID", help="the id `ecs run --detach` printed")


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=f"ECS's base URL (env ECS_URL; default {DEFAULT_URL})")
    parser.add_argument("--key", help="API key (env ECS_KEY)")
    parser.add_argument("--secret", help="API secret (env ECS_SECRET)")


def run_client_command(
    args: argparse.Namespace,
    environ: Mapping[str, str] = os.environ,
    stdin: BinaryIO | None = None,
) -> int:
    """Run ``run``, ``wait`` or ``cancel``; the exit status."""
    target = Target.from_args(args, environ)
    try:
        with httpx.Client(base_url=target.url, auth=target.auth, timeout=_TIMEOUT) as http:
            if args.command == "run":
                return _run(http, args, stdin or sys.stdin.buffer)
            if args.command == "wait":
                return _finished(_wait(http, args.task_id))
            document = _answer(http.delete(_task(args.task_id)), (200, 202))
            print(f"{document['id']}: {document['status']}")
            return 0
    except ClientError as exc:
        print(f"ecs {args.command}: {exc.message}", file=sys.stderr)
        return ECS_FAILED
    except httpx.HTTPError as exc:
        print(f"ecs {args.command}: cannot reach ECS at {target.url}: {exc}", file=sys.stderr)
        return ECS_FAILED


def task_body(
    image: str, cmd: Sequence[str], env: Sequence[str], timeout: float | None, stdin: bytes | None
) -> dict[str, Any]:
    """The ``POST /tasks`` body of a command line; ClientError for a bad ``--env``."""
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise ClientError("no command: give it after IMAGE, e.g. `ecs run repo:tag -- echo hi`")
    body: dict[str, Any] = {"docker_image": image, "cmd": list(cmd)}
    if env:
        pairs = [item.partition("=") for item in env]
        bad = [item for item, (name, sep, _) in zip(env, pairs, strict=True) if not sep or not name]
        if bad:
            raise ClientError(f"--env takes K=V, not {bad[0]!r}")
        body["env"] = {name: value for name, _, value in pairs}
    if timeout is not None:
        body["timeout"] = timeout
    if stdin is not None:
        body["stdin"] = base64.b64encode(stdin).decode()
    return body


def _run(http: httpx.Client, args: argparse.Namespace, stdin: BinaryIO) -> int:
    data = None
    if args.stdin_file is not None:
        data = stdin.read() if str(args.stdin_file) == "-" else _read(args.stdin_file)
    body = task_body(args.image, args.cmd, args.env, args.timeout, data)
    if args.detach:
        headers = {"Prefer": "respond-async"}
        document = _answer(http.post(f"/{API_VERSION}/tasks", json=body, headers=headers), (202,))
        print(document["id"])
        return 0
    return _passed_on(_answer(http.post(f"/{API_VERSION}/tasks", json=body), (201,)))


def _wait(http: httpx.Client, task_id: str) -> dict[str, Any]:
    while True:
        document = _answer(http.get(_task(task_id), params={"wait": str(_WAIT_S)}), (200,))
        if document["status"] not in ("queued", "running"):
            return document


def _finished(document: dict[str, Any]) -> int:
    if document["status"] == "succeeded":
        return _passed_on(document["result"])
    if document["status"] == "cancelled":
        raise ClientError(f"task {document['id']} was cancelled")
    raise ClientError(f"task {document['id']} failed: {_errors(document.get('errors') or [])}")


def _passed_on(result: dict[str, Any]) -> int:
    """Write the task's output raw to ours and return its exit code."""
    sys.stdout.flush()
    sys.stdout.buffer.write(base64.b64decode(result["stdout"]))
    sys.stdout.buffer.flush()
    sys.stderr.flush()
    sys.stderr.buffer.write(base64.b64decode(result["stderr"]))
    sys.stderr.buffer.flush()
    for stream in ("stdout", "stderr"):
        if result.get(f"{stream}Truncated"):
            print(f"ecs: the task's {stream} was cut at the server's cap", file=sys.stderr)
    return int(result["exitCode"])


def _answer(response: httpx.Response, expected: tuple[int, ...]) -> dict[str, Any]:
    """The JSON body of an expected answer; ClientError naming ECS's errors otherwise."""
    try:
        body: Any = response.json()
    except json.JSONDecodeError:
        body = None
    if response.status_code in expected and isinstance(body, dict):
        return body
    errors = body.get("errors") if isinstance(body, dict) else None
    detail = _errors(errors) if errors else response.text[:200] or response.reason_phrase
    raise ClientError(f"ECS answered {response.status_code}: {detail}")


def _errors(errors: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{e.get('code')}: {e.get('message')}" + (f" ({e['field']})" if e.get("field") else "")
        for e in errors
    )


def _task(task_id: str) -> str:
    return f"/{API_VERSION}/tasks/{task_id}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read --stdin-file {path}: {exc.strerror}") from exc
