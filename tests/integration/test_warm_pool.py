"""Warm pools on the real engine: taken, refilled, never over their size, cleaned up."""

from __future__ import annotations

import base64
import json
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import managed_containers, wait_until
from tests.integration.ecs_process import EcsProcess, run_ecs_command
from tests.integration.ecs_server import new_instance_id

pytestmark = pytest.mark.engine

IMAGE = "owner/repo:tag"


def pool_containers(engine: httpx.Client, instance_id: str) -> list[dict[str, Any]]:
    """The idle pool containers of one ECS instance."""
    return [
        c
        for c in managed_containers(engine, idle_pool=True)
        if c["Labels"].get("io.ecs.instance") == instance_id
        and any(name.startswith("/ecs-pool-") for name in c["Names"])
    ]


def metric(url: str, name: str) -> float:
    """One sample of ECS's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found[1]) if found else 0.0


def test_a_task_runs_in_a_pooled_container_which_is_then_replaced(
    start_ecs: Callable[..., Any], engine: httpx.Client
) -> None:
    """With a pool of two, a task is a hit: it runs by exec in a pooled container, that
    container is removed after it, and the pool is back at two idle containers."""
    server = start_ecs(warm_pools=[{"image": IMAGE, "size": 2}])
    instance = server.settings.instance_id
    assert wait_until(lambda: metric(server.url, "ecs_pool_idle") == 2, 20)
    idle_before = {c["Id"] for c in pool_containers(engine, instance)}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.post("/v1.1/tasks", json={"docker_image": IMAGE, "cmd": ["echo", "warm"]})
    assert answer.status_code == 201
    assert base64.b64decode(answer.json()["stdout"]) == b"warm\n"
    assert metric(server.url, "ecs_pool_hits_total") == 1
    assert wait_until(lambda: len(pool_containers(engine, instance)) == 2, 20)
    idle_after = {c["Id"] for c in pool_containers(engine, instance)}
    assert len(idle_before - idle_after) == 1  # the used one is gone, a new one took its place
    assert metric(server.url, "ecs_pool_size") == 2


def test_an_empty_pool_sends_tasks_the_cold_way_and_never_grows(
    start_ecs: Callable[..., Any], engine: httpx.Client
) -> None:
    """A burst larger than the pool: every task succeeds, some cold (misses), and the
    pool's idle containers never number more than its size."""
    server = start_ecs(warm_pools=[{"image": IMAGE, "size": 1}], max_concurrent_tasks=4)
    instance = server.settings.instance_id
    assert wait_until(lambda: metric(server.url, "ecs_pool_idle") == 1, 20)
    idle_seen: list[float] = []
    named_seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            idle_seen.append(metric(server.url, "ecs_pool_idle"))
            named_seen.append(len(pool_containers(engine, instance)))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    answers: list[int] = []

    def task() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            body = {"docker_image": IMAGE, "cmd": ["sleep", "1"]}
            answers.append(client.post("/v1.1/tasks", json=body).status_code)

    threads = [threading.Thread(target=task) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    assert answers == [201] * 6
    assert metric(server.url, "ecs_pool_misses_total") >= 1
    assert metric(server.url, "ecs_pool_hits_total") >= 1
    assert max(idle_seen) <= 1
    # A taken container keeps its pool name until it is renamed for its task.
    assert max(named_seen) <= 1 + 4


def test_the_tasks_limits_replace_the_pools(
    start_ecs: Callable[..., Any], engine: httpx.Client
) -> None:
    """A task asking for other limits than the pool's defaults gets its own."""
    server = start_ecs(warm_pools=[{"image": IMAGE, "size": 1}])
    assert wait_until(lambda: metric(server.url, "ecs_pool_idle") == 1, 20)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        body = {
            "docker_image": IMAGE,
            "cmd": ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"],
            "limits": {"memory_mb": 48},
        }
        answer = client.post("/v1.1/tasks", json=body)
    assert metric(server.url, "ecs_pool_hits_total") == 1
    assert base64.b64decode(answer.json()["stdout"]).strip() == str(48 * 1024 * 1024).encode()


def test_pools_are_removed_at_stop_and_after_a_crash(tmp_path: Path, engine: httpx.Client) -> None:
    """SIGTERM removes the idle containers; after kill -9 the restart removes the old ones
    before it fills its pool again, to its size and no more."""
    settings = {
        "ECS_INSTANCE_ID": new_instance_id(),
        "ECS_WARM_POOLS": json.dumps([{"image": IMAGE, "size": 2}]),
    }
    instance = settings["ECS_INSTANCE_ID"]
    first = EcsProcess(tmp_path / "first.log", **settings).start()
    assert wait_until(lambda: len(pool_containers(engine, instance)) == 2, 20)
    first.signal(signal.SIGKILL)
    first.wait()
    first.stop()
    crashed = {c["Id"] for c in pool_containers(engine, instance)}
    assert len(crashed) == 2  # left by the crash
    second = EcsProcess(tmp_path / "second.log", **settings).start()
    try:
        assert wait_until(lambda: len(pool_containers(engine, instance)) == 2, 20)
        now = {c["Id"] for c in pool_containers(engine, instance)}
        assert not now & crashed
        time.sleep(1)
        assert len(pool_containers(engine, instance)) == 2
    finally:
        assert second.stop() == 0
    assert pool_containers(engine, instance) == []


def test_a_pool_of_an_image_the_allowlist_refuses_stops_start_up() -> None:
    """A warm pool is checked like a task's image: not allowed means exit 2, named."""
    result = run_ecs_command(
        "serve",
        ECS_IMAGE_ALLOWLIST=json.dumps(["docker.io/other/*"]),
        ECS_WARM_POOLS=json.dumps([{"image": IMAGE, "size": 1}]),
    )
    assert result.returncode == 2
    assert "warm_pools[0].image" in result.stderr


def test_an_idle_command_the_image_lacks_leaves_tasks_cold(
    start_ecs: Callable[..., Any], engine: httpx.Client
) -> None:
    """A pool whose idle command cannot run stays empty (logged) and its tasks run cold."""
    server = start_ecs(warm_pools=[{"image": IMAGE, "size": 1, "idle_cmd": ["/no/idle"]}])
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.post("/v1.1/tasks", json={"docker_image": IMAGE, "cmd": ["echo", "cold"]})
    assert base64.b64decode(answer.json()["stdout"]) == b"cold\n"
    assert metric(server.url, "ecs_pool_hits_total") == 0
    assert metric(server.url, "ecs_pool_idle") == 0
    assert metric(server.url, "ecs_pool_misses_total") == 1


def test_a_task_whose_pooled_container_died_runs_cold(
    start_ecs: Callable[..., Any], engine: httpx.Client
) -> None:
    """An idle container killed behind ECS's back (the OOM killer, an operator) is found
    stopped when a task takes it: the task runs cold, right, and counts as a miss."""
    server = start_ecs(warm_pools=[{"image": IMAGE, "size": 1}])
    instance = server.settings.instance_id
    assert wait_until(lambda: metric(server.url, "ecs_pool_idle") == 1, 20)
    (idle,) = pool_containers(engine, instance)
    engine.post(f"/containers/{idle['Id']}/kill").raise_for_status()
    assert wait_until(
        lambda: engine.get(f"/containers/{idle['Id']}/json").json()["State"]["Running"] is False,
        10,
    )
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.post("/v1.1/tasks", json={"docker_image": IMAGE, "cmd": ["echo", "cold"]})
    assert answer.status_code == 201
    assert base64.b64decode(answer.json()["stdout"]) == b"cold\n"
    assert answer.json()["exitCode"] == 0
    assert metric(server.url, "ecs_pool_hits_total") == 0
    assert metric(server.url, "ecs_pool_misses_total") == 1
