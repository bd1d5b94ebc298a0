"""Process faults on the main engine: kill -9 under load, SIGTERM drain, clients hanging up.

Every ECS here has its own instance id, and the leak check only judges containers of
this test session, so other people's work on the shared engine is never touched.
"""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import managed_containers, wait_until
from tests.integration.ecs_process import EcsProcess
from tests.integration.ecs_server import EcsServer, new_instance_id

pytestmark = pytest.mark.engine

IMAGE = "owner/repo:tag"


def post_quietly(url: str, body: dict[str, object], timeout_s: float = 120) -> threading.Thread:
    """POST a task from a thread, ignoring the connection dying with the server."""

    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{url}/v1.1/tasks", json=body, timeout=timeout_s)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def of_instance(engine: httpx.Client, instance_id: str) -> list[dict[str, object]]:
    """This session's ECS containers that belong to ``instance_id``."""
    return [
        c
        for c in managed_containers(engine)
        if (c.get("Labels") or {}).get("io.ecs.instance") == instance_id  # type: ignore[union-attr]
    ]


def test_kill_9_during_20_tasks_then_restart_reaps_every_orphan(
    tmp_path: Path, engine: httpx.Client
) -> None:
    """ECS killed with SIGKILL while 20 tasks run leaves 20 containers; the next start of
    the same instance removes all of them before it serves its first request."""
    instance = new_instance_id()
    settings = {"ECS_INSTANCE_ID": instance, "ECS_MAX_CONCURRENT_TASKS": "20"}
    first = EcsProcess(tmp_path / "first.log", **settings).start()
    try:
        for _ in range(20):
            post_quietly(first.url, {"docker_image": IMAGE, "cmd": ["sleep", "300"]})
        assert wait_until(lambda: len(of_instance(engine, instance)) == 20, 60), first.log()
        first.signal(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL
    finally:
        first.stop()
    assert len(of_instance(engine, instance)) == 20  # the crash left every one behind
    second = EcsProcess(tmp_path / "second.log", **settings).start()
    try:
        assert of_instance(engine, instance) == []  # reaped before the first answer
        assert second.log().count('"container_reaped"') == 20
        answer = httpx.post(
            f"{second.url}/v1.1/tasks", json={"docker_image": IMAGE, "cmd": ["true"]}, timeout=60
        )
        assert answer.status_code == 201
    finally:
        second.stop()


def test_sigterm_drains_every_task_in_flight(tmp_path: Path, engine: httpx.Client) -> None:
    """SIGTERM with eight tasks in flight answers all eight in full, then exits 0 clean."""
    ecs = EcsProcess(tmp_path / "ecs.log", ECS_MAX_CONCURRENT_TASKS="8").start()
    instance = ecs.env["ECS_INSTANCE_ID"]
    answers: dict[int, httpx.Response] = {}

    def post(number: int) -> None:
        body = {"docker_image": IMAGE, "cmd": ["sh", "-c", f"sleep 2; echo task-{number}"]}
        answers[number] = httpx.post(f"{ecs.url}/v1.1/tasks", json=body, timeout=60)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        assert wait_until(
            lambda: sum(c["State"] == "running" for c in of_instance(engine, instance)) == 8, 30
        )
        ecs.signal(signal.SIGTERM)
        assert ecs.wait() == 0
    finally:
        ecs.stop()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(answers) == list(range(8))
    for number, answer in answers.items():
        assert answer.status_code == 201, answer.text
        assert base64.b64decode(answer.json()["stdout"]) == f"task-{number}\n".encode()
    assert of_instance(engine, instance) == []
    # A request arriving during the drain is not accepted any more.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{ecs.url}/v1.1/_noop", timeout=5)


def raw_task_request(port: int, body: dict[str, object]) -> socket.socket:
    """Send a task request over a plain socket and return the socket, unread."""
    payload = json.dumps(body).encode()
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall(
        b"POST /v1.1/tasks HTTP/1.1\r\nHost: ecs\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return connection


def test_fifty_clients_hanging_up_leave_no_container(
    start_ecs: Callable[..., EcsServer], engine: httpx.Client
) -> None:
    """Fifty clients that hang up mid-task, running or queued, leave no container behind."""
    server = start_ecs(max_concurrent_tasks=25, max_queued_tasks=25)
    instance = server.settings.instance_id
    port = int(server.url.rsplit(":", 1)[1])
    body = {"docker_image": IMAGE, "cmd": ["sleep", "300"]}
    clients = [raw_task_request(port, body) for _ in range(50)]
    try:
        # Half run, half wait in the queue; hang up once every slot holds a container.
        assert wait_until(
            lambda: sum(c["State"] == "running" for c in of_instance(engine, instance)) == 25, 60
        )
    finally:
        for client in clients:
            client.close()
    assert wait_until(lambda: of_instance(engine, instance) == [], 60)
    with httpx.Client(base_url=server.url, timeout=60) as ecs:
        answer = ecs.post("/v1.1/tasks", json={"docker_image": IMAGE, "cmd": ["echo", "ok"]})
        assert answer.status_code == 201  # every slot was given back
    assert wait_until(lambda: of_instance(engine, instance) == [], 30)
