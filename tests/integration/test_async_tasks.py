"""Async tasks on the real engine: submit, long poll, every end, cancel, keys, retention,
idempotent retries (one container ever), the queue's bound."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecs.keys import GeneratedKey, generate_keys
from tests.integration.conftest import (
    OPEN_REGISTRY,
    managed_containers,
    task_container,
    wait_until,
)

pytestmark = pytest.mark.engine

ASYNC = {"Prefer": "respond-async"}
ECHO = {"docker_image": "owner/repo:tag", "cmd": ["sh", "-c", "echo hi; exit 3"]}
SLEEP = {"docker_image": "owner/repo:tag", "cmd": ["sleep", "60"]}


def created_containers(engine: httpx.Client, instance_id: str, since: float) -> int:
    """How many containers ECS ``instance_id`` gave a task since ``since``, from engine
    events: containers it created for a task, plus warm pool containers it ran one in
    (an exec); a pool's idle containers are not counted until a task takes them."""
    filters = {"type": ["container"], "label": [f"io.ecs.instance={instance_id}"]}
    answer = engine.get(
        "/events",
        params={
            "since": str(int(since) - 1),
            "until": str(int(time.time()) + 1),
            "filters": json.dumps(filters),
        },
        timeout=30,
    )
    answer.raise_for_status()
    count = 0
    for line in filter(str.strip, answer.text.splitlines()):
        event = json.loads(line)
        name = event["Actor"]["Attributes"].get("name", "")
        cold = event["Action"] == "create" and not name.startswith("ecs-pool-")
        if cold or event["Action"].startswith("exec_create"):
            count += 1
    return count


@pytest.fixture
def client_of() -> Iterator[Callable[..., httpx.Client]]:
    """Clients of an ECS, closed after the test."""
    clients: list[httpx.Client] = []

    def make(url: str, **kwargs: Any) -> httpx.Client:
        client = httpx.Client(base_url=url, timeout=60, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_async_happy_path_with_long_poll(ecs: httpx.Client) -> None:
    """202 with Location and Preference-Applied, then the long poll answers the result,
    which is exactly the sync API's 201 body."""
    accepted = ecs.post("/v1.1/tasks", json=ECHO, headers=ASYNC)
    assert accepted.status_code == 202, accepted.text
    document = accepted.json()
    assert accepted.headers["location"] == f"/v1.1/tasks/{document['id']}"
    assert accepted.headers["preference-applied"] == "respond-async"
    assert document["status"] in ("queued", "running")
    assert document["links"]["self"]["href"].endswith(accepted.headers["location"])
    started = time.monotonic()
    done = ecs.get(accepted.headers["location"], params={"wait": "30"})
    assert time.monotonic() - started < 20
    assert done.status_code == 200
    final = done.json()
    assert final["status"] == "succeeded"
    assert final["result"]["exitCode"] == 3
    assert final["result"]["stdout"] == "aGkK"
    sync = ecs.post("/v1.1/tasks", json=ECHO).json()
    assert set(final["result"]) == set(sync)
    for stamp in ("createdAt", "startedAt", "finishedAt"):
        assert final[stamp].endswith("Z")
    assert final["createdAt"] <= final["startedAt"] <= final["finishedAt"]


def test_long_poll_returns_at_its_wait_when_the_task_runs_on(ecs: httpx.Client) -> None:
    """`wait=1` on a running task answers after about a second, still running."""
    location = ecs.post("/v1.1/tasks", json=SLEEP, headers=ASYNC).headers["location"]
    started = time.monotonic()
    answer = ecs.get(location, params={"wait": "1"})
    elapsed = time.monotonic() - started
    assert answer.json()["status"] in ("queued", "running")
    assert 0.9 <= elapsed < 5
    assert ecs.delete(location).status_code == 202


@pytest.mark.parametrize("wait", ["0", "-1", "61", "abc", "nan", "inf"])
def test_bad_wait_is_400(ecs: httpx.Client, wait: str) -> None:
    """`wait` must be seconds in (0, 60]."""
    location = ecs.post("/v1.1/tasks", json=ECHO, headers=ASYNC).headers["location"]
    answer = ecs.get(location, params={"wait": wait})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "invalid_wait"
    ecs.get(location, params={"wait": "30"})


def test_failed_tasks_carry_the_sync_error_and_status(ecs: httpx.Client) -> None:
    """An unknown image fails with the 404 error list the sync API would answer."""
    body = {"docker_image": f"{OPEN_REGISTRY}/owner/nope:tag", "cmd": ["true"]}
    sync = ecs.post("/v1.1/tasks", json=body)
    location = ecs.post("/v1.1/tasks", json=body, headers=ASYNC).headers["location"]
    final = ecs.get(location, params={"wait": "30"}).json()
    assert final["status"] == "failed"
    assert final["httpStatus"] == sync.status_code == 404
    assert [e["code"] for e in final["errors"]] == [e["code"] for e in sync.json()["errors"]]
    assert "result" not in final


def test_bad_async_bodies_are_400_and_store_nothing(
    ecs: httpx.Client, engine: httpx.Client
) -> None:
    """A bad body is refused as in the sync API, before anything is stored or created."""
    answer = ecs.post("/v1.1/tasks", json={"docker_image": "no-tag", "cmd": []}, headers=ASYNC)
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert managed_containers(engine) == []


def test_cancel_a_running_task_removes_its_container_quickly(
    ecs: httpx.Client, engine: httpx.Client
) -> None:
    """DELETE of a running task answers 202 cancelled; its container is gone within 2 s;
    a second DELETE answers 200, unchanged."""
    location = ecs.post("/v1.1/tasks", json=SLEEP, headers=ASYNC).headers["location"]
    assert wait_until(lambda: ecs.get(location).json()["status"] == "running", 30)
    task_id = location.rsplit("/", 1)[1]
    assert wait_until(lambda: task_container(engine, task_id) is not None, 10)
    cancelled = ecs.delete(location)
    stopped = time.monotonic()
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert wait_until(lambda: not managed_containers(engine), 2)
    assert time.monotonic() - stopped < 2.5
    again = ecs.delete(location)
    assert again.status_code == 200
    assert again.json() == cancelled.json()


def test_cancel_a_queued_task_never_runs_it(
    start_ecs: Callable[..., Any], engine: httpx.Client, client_of: Callable[..., httpx.Client]
) -> None:
    """With the only slot busy, a queued task is dropped by DELETE and never starts."""
    server = start_ecs(max_concurrent_tasks=1)
    client = client_of(server.url)
    since = time.time()
    busy = client.post("/v1.1/tasks", json=SLEEP, headers=ASYNC).headers["location"]
    queued = client.post("/v1.1/tasks", json=ECHO, headers=ASYNC).headers["location"]
    assert client.get(queued).json()["status"] == "queued"
    cancelled = client.delete(queued)
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert "startedAt" not in cancelled.json()
    client.delete(busy)
    time.sleep(0.5)
    assert client.get(queued).json()["status"] == "cancelled"
    assert created_containers(engine, server.settings.instance_id, since) == 1  # the busy one


def test_unknown_ids_are_404_json(ecs: httpx.Client) -> None:
    """An id nobody made is 404 task_not_found, for GET and DELETE."""
    for method in ("GET", "DELETE"):
        answer = ecs.request(method, "/v1.1/tasks/0123456789abcdef")
        assert answer.status_code == 404
        assert answer.json()["errors"][0]["code"] == "task_not_found"


def test_a_task_is_visible_only_to_its_key(
    start_ecs: Callable[..., Any], tmp_path: Path, client_of: Callable[..., httpx.Client]
) -> None:
    """Another API key gets 404 for the task, exactly as for an unknown id."""
    path = tmp_path / "keys.htpasswd"
    owner, other = generate_keys(2, path, rounds=4)
    server = start_ecs(credentials_file=path)
    mine = client_of(server.url, auth=_basic(owner))
    theirs = client_of(server.url, auth=_basic(other))
    location = mine.post("/v1.1/tasks", json=ECHO, headers=ASYNC).headers["location"]
    assert mine.get(location, params={"wait": "30"}).json()["status"] == "succeeded"
    for method in ("GET", "DELETE"):
        answer = theirs.request(method, location)
        assert answer.status_code == 404
        assert answer.json()["errors"][0]["code"] == "task_not_found"
    assert mine.get(location).json()["status"] == "succeeded"


def _basic(pair: GeneratedKey) -> tuple[str, str]:
    return (pair.key, pair.secret)


def test_finished_documents_expire_after_the_retention(
    start_ecs: Callable[..., Any], client_of: Callable[..., httpx.Client]
) -> None:
    """After task_retention_s a finished task is 404."""
    server = start_ecs(task_retention_s=1)
    client = client_of(server.url)
    location = client.post("/v1.1/tasks", json=ECHO, headers=ASYNC).headers["location"]
    assert client.get(location, params={"wait": "30"}).json()["status"] == "succeeded"
    time.sleep(1.2)
    assert client.get(location).status_code == 404


def test_async_retries_with_a_key_run_one_task(
    start_ecs: Callable[..., Any], engine: httpx.Client, client_of: Callable[..., httpx.Client]
) -> None:
    """Three async submissions with one Idempotency-Key: 202, then 200 with the same
    document and Location; the engine saw exactly one container created."""
    server = start_ecs()
    client = client_of(server.url)
    since = time.time()
    headers = {**ASYNC, "Idempotency-Key": "order-42"}
    first = client.post("/v1.1/tasks", json=ECHO, headers=headers)
    repeats = [client.post("/v1.1/tasks", json=ECHO, headers=headers) for _ in range(2)]
    assert first.status_code == 202
    for repeat in repeats:
        assert repeat.status_code == 200
        assert repeat.json()["id"] == first.json()["id"]
        assert repeat.headers["location"] == first.headers["location"]
    assert (
        client.get(first.headers["location"], params={"wait": "30"}).json()["status"] == "succeeded"
    )
    assert created_containers(engine, server.settings.instance_id, since) == 1


def test_sync_retries_with_a_key_answer_the_first_run(
    start_ecs: Callable[..., Any], engine: httpx.Client, client_of: Callable[..., httpx.Client]
) -> None:
    """A sync client with a key hangs up; the task runs on; the retry gets its 201 result;
    exactly one container was ever created."""
    server = start_ecs()
    client = client_of(server.url)
    since = time.time()
    body = {"docker_image": "owner/repo:tag", "cmd": ["sh", "-c", "sleep 2; echo done"]}
    headers = {"Idempotency-Key": "sync-1"}
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1.1/tasks", json=body, headers=headers, timeout=0.5)
    retry = client.post("/v1.1/tasks", json=body, headers=headers)
    assert retry.status_code == 201, retry.text
    assert retry.json()["stdout"] == "ZG9uZQo="
    again = client.post("/v1.1/tasks", json=body, headers=headers)
    assert again.json() == retry.json()
    assert created_containers(engine, server.settings.instance_id, since) == 1


def test_sync_retry_of_a_failed_task_answers_its_error(ecs: httpx.Client) -> None:
    """The retry of a keyed sync task that failed answers the same error and status."""
    body = {"docker_image": f"{OPEN_REGISTRY}/owner/nope:tag", "cmd": ["true"]}
    headers = {"Idempotency-Key": "sync-fail"}
    first = ecs.post("/v1.1/tasks", json=body, headers=headers)
    retry = ecs.post("/v1.1/tasks", json=body, headers=headers)
    assert first.status_code == retry.status_code == 404
    assert retry.json()["errors"] == first.json()["errors"]


def test_key_reused_with_another_body_is_422(ecs: httpx.Client) -> None:
    """The same key with a different body: 422 idempotency_key_reused, nothing new runs."""
    headers = {**ASYNC, "Idempotency-Key": "reuse-me"}
    ecs.post("/v1.1/tasks", json=ECHO, headers=headers)
    other = {**ECHO, "cmd": ["echo", "different"]}
    for extra in ({}, ASYNC):
        answer = ecs.post(
            "/v1.1/tasks", json=other, headers={**extra, "Idempotency-Key": "reuse-me"}
        )
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["code"] == "idempotency_key_reused"


def test_a_full_queue_is_503_with_retry_after(
    start_ecs: Callable[..., Any], engine: httpx.Client, client_of: Callable[..., httpx.Client]
) -> None:
    """One slot, one queue place: the third async task is 503 and stores nothing."""
    server = start_ecs(max_concurrent_tasks=1, max_queued_tasks=1, overload_retry_after_s=4)
    client = client_of(server.url)
    running = client.post("/v1.1/tasks", json=SLEEP, headers=ASYNC)
    queued = client.post("/v1.1/tasks", json=SLEEP, headers=ASYNC)
    refused = client.post("/v1.1/tasks", json=SLEEP, headers={**ASYNC, "Idempotency-Key": "x"})
    assert (running.status_code, queued.status_code, refused.status_code) == (202, 202, 503)
    assert refused.headers["retry-after"] == "4"
    assert refused.json()["errors"][0]["code"] == "overloaded"
    # The refused key was never stored: once there is room, it is a new task.
    client.delete(queued.headers["location"])
    accepted = client.post("/v1.1/tasks", json=SLEEP, headers={**ASYNC, "Idempotency-Key": "x"})
    assert accepted.status_code == 202
    for answer in (running, accepted):
        client.delete(answer.headers["location"])


def test_async_tasks_count_against_the_key_limit_only_while_running(
    start_ecs: Callable[..., Any], tmp_path: Path, client_of: Callable[..., httpx.Client]
) -> None:
    """With one task per key, a key's second async task waits queued, then runs."""
    path = tmp_path / "keys.htpasswd"
    (pair,) = generate_keys(1, path, rounds=4)
    server = start_ecs(credentials_file=path, max_tasks_per_key=1, max_concurrent_tasks=4)
    client = client_of(server.url, auth=_basic(pair))
    short = {"docker_image": "owner/repo:tag", "cmd": ["sleep", "1"]}
    first = client.post("/v1.1/tasks", json=short, headers=ASYNC).headers["location"]
    second = client.post("/v1.1/tasks", json=short, headers=ASYNC).headers["location"]
    assert wait_until(lambda: client.get(first).json()["status"] == "running", 10)
    assert client.get(second).json()["status"] == "queued"
    assert client.get(second, params={"wait": "30"}).json()["status"] == "succeeded"


def test_sync_api_is_unchanged_beside_async(ecs: httpx.Client) -> None:
    """Without Prefer or a key, the answer is the plain 201 result, no Location."""
    answer = ecs.post("/v1.1/tasks", json=ECHO)
    assert answer.status_code == 201
    assert "location" not in answer.headers
    assert answer.json()["exitCode"] == 3


def test_many_async_tasks_at_once_all_finish(ecs: httpx.Client) -> None:
    """Twenty async tasks submitted together all succeed, each exactly once."""
    locations: list[str] = []
    lock = threading.Lock()

    def submit(index: int) -> None:
        with httpx.Client(base_url=str(ecs.base_url), timeout=60) as own:
            body = {"docker_image": "owner/repo:tag", "cmd": ["echo", str(index)]}
            location = own.post("/v1.1/tasks", json=body, headers=ASYNC).headers["location"]
        with lock:
            locations.append(location)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outputs = sorted(
        ecs.get(location, params={"wait": "60"}).json()["result"]["stdout"]
        for location in locations
    )
    assert len(set(outputs)) == 20
