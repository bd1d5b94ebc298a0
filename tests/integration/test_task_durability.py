"""Nothing accepted is lost across a crash: ``kill -9`` of ECS with tasks queued, running
and a callback pending, then a restart of the same instance on the same state file."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest

from tests.integration.callback_receiver import CallbackReceiver
from tests.integration.conftest import managed_containers, task_container, wait_until
from tests.integration.ecs_process import EcsProcess
from tests.integration.ecs_server import new_instance_id

pytestmark = pytest.mark.engine

ASYNC = {"Prefer": "respond-async"}


def test_kill_9_then_restart_settles_every_task(tmp_path: Path, engine: httpx.Client) -> None:
    """After the crash: the finished task is still served and its pending callback is
    delivered; the running one is failed `interrupted` (503) and its container removed;
    the queued one runs once; no container is left behind."""
    with CallbackReceiver([500]) as receiver:
        settings = {
            "ECS_INSTANCE_ID": new_instance_id(),
            "ECS_MAX_CONCURRENT_TASKS": "1",
            "ECS_CALLBACK_SECRET": "s",
            "ECS_CALLBACK_ALLOWLIST": json.dumps(["127.0.0.1"]),
        }
        first = EcsProcess(tmp_path / "first.log", **settings).start()
        try:
            with httpx.Client(base_url=first.url, timeout=30) as client:
                done = client.post(
                    "/v1.1/tasks",
                    json={
                        "docker_image": "owner/repo:tag",
                        "cmd": ["echo", "done"],
                        "callback_url": receiver.url(),
                    },
                    headers=ASYNC,
                ).headers["location"]
                assert wait_until(lambda: len(receiver.received) >= 1, 20)  # answered 500
                running = client.post(
                    "/v1.1/tasks",
                    json={"docker_image": "owner/repo:tag", "cmd": ["sleep", "300"]},
                    headers=ASYNC,
                ).headers["location"]
                assert wait_until(lambda: client.get(running).json()["status"] == "running", 20)
                running_id = running.rsplit("/", 1)[1]
                # Its container exists (the engine has it) before the crash.
                assert wait_until(lambda: task_container(engine, running_id) is not None, 20)
                queued = client.post(
                    "/v1.1/tasks",
                    json={
                        "docker_image": "owner/repo:tag",
                        "cmd": ["echo", "queued"],
                        "callback_url": receiver.url("/queued"),
                    },
                    headers=ASYNC,
                ).headers["location"]
                assert client.get(queued).json()["status"] == "queued"
            first.signal(signal.SIGKILL)
            first.wait()
        finally:
            first.stop()
        # The running task's container is left by the crash; so may be a finished task's
        # whose removal was waiting for a quiet node (ecs.deferral): the next start sweeps.
        assert task_container(engine, running_id) is not None
        receiver.statuses = [200]
        second = EcsProcess(tmp_path / "second.log", **settings).start()
        try:
            with httpx.Client(base_url=second.url, timeout=30) as client:
                interrupted = client.get(running).json()
                assert interrupted["status"] == "failed"
                assert interrupted["httpStatus"] == 503
                assert [e["code"] for e in interrupted["errors"]] == ["interrupted"]
                ran = client.get(queued, params={"wait": "30"}).json()
                assert ran["status"] == "succeeded"
                assert ran["result"]["stdout"] == "cXVldWVkCg=="
                assert wait_until(
                    lambda: client.get(done).json()["callback"]["status"] == "delivered", 30
                )
                assert wait_until(
                    lambda: client.get(queued).json()["callback"]["status"] == "delivered", 30
                )
                finished = client.get(done).json()
                assert finished["status"] == "succeeded"
                assert finished["callback"]["attempts"] >= 2
            assert wait_until(lambda: not managed_containers(engine), 10)
        finally:
            second.stop()
    paths = [call.path for call in receiver.received]
    assert paths.count("/queued") == 1  # the queued task ran, and called back, once


def test_sigterm_keeps_queued_tasks_for_the_next_start(
    tmp_path: Path, engine: httpx.Client
) -> None:
    """A graceful stop gives the running task its grace, then ends it `interrupted`; the
    queued task is not started by the stopping process but by the next one."""
    settings = {
        "ECS_INSTANCE_ID": new_instance_id(),
        "ECS_MAX_CONCURRENT_TASKS": "1",
        "ECS_SHUTDOWN_GRACE_S": "1",
    }
    first = EcsProcess(tmp_path / "first.log", **settings).start()
    try:
        with httpx.Client(base_url=first.url, timeout=30) as client:
            running = client.post(
                "/v1.1/tasks",
                json={"docker_image": "owner/repo:tag", "cmd": ["sleep", "300"]},
                headers=ASYNC,
            ).headers["location"]
            assert wait_until(lambda: client.get(running).json()["status"] == "running", 20)
            queued = client.post(
                "/v1.1/tasks",
                json={"docker_image": "owner/repo:tag", "cmd": ["echo", "later"]},
                headers=ASYNC,
            ).headers["location"]
        first.signal(signal.SIGTERM)
        assert first.wait(timeout_s=60) == 0
    finally:
        first.stop()
    assert not managed_containers(engine)  # the stop removed the cut-off task's container
    second = EcsProcess(tmp_path / "second.log", **settings).start()
    try:
        with httpx.Client(base_url=second.url, timeout=30) as client:
            assert client.get(running).json()["errors"][0]["code"] == "interrupted"
            ran = client.get(queued, params={"wait": "30"}).json()
            assert ran["status"] == "succeeded"
            assert ran["result"]["stdout"] == "bGF0ZXIK"
    finally:
        second.stop()
