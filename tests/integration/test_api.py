"""The HTTP contract around tasks: errors, headers, health, admission, disconnects, pulls."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import pytest

from ecs.config import PullPolicy
from ecs.docker import DockerClient, engine_http_client
from ecs.engine_version import ECS_API_RANGE
from ecs.imageref import parse_image_reference
from ecs.pulls import ImagePuller
from tests.engine_target import EngineTarget
from tests.integration.conftest import (
    OPEN_REGISTRY,
    image_exists,
    managed_containers,
    remove_image,
    wait_until,
)

pytestmark = pytest.mark.engine

TASK = {"docker_image": "owner/repo:tag", "cmd": ["true"]}


def assert_error_body(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is the JSON error shape with this status and first error code."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    assert set(body) == {"errors", "correlationId"}
    assert body["errors"][0]["code"] == code
    assert body["errors"][0]["message"]
    assert body["correlationId"] == answer.headers["x-ecs-correlation-id"]
    return body


@pytest.mark.parametrize(
    ("body", "codes"),
    [
        ({"cmd": ["echo"]}, ["missing_field"]),
        ({"docker_image": "owner/repo:tag"}, ["missing_field"]),
        ({"docker_image": "owner/repo:tag", "cmd": []}, ["too_short"]),
        ({}, ["missing_field", "missing_field"]),
        ({"docker_image": "IMAGE_NAME_IS_INVALID", "cmd": ["true"]}, ["invalid_image"]),
        (
            {"docker_image": "ubuntu", "cmd": ["true"], "network_mode": "host", "timeout": 1e9},
            ["invalid_image", "above_maximum", "unknown_field"],
        ),
    ],
)
def test_bad_bodies_are_400_with_every_problem(
    ecs: httpx.Client, body: dict[str, Any], codes: list[str]
) -> None:
    """The original bad bodies, and worse ones, list each of their problems; nothing runs."""
    answer = ecs.post("/v1.1/tasks", json=body)
    found = assert_error_body(answer, 400, codes[0])
    assert [error["code"] for error in found["errors"]] == codes


def test_invalid_json_is_400(ecs: httpx.Client) -> None:
    """A body that is not JSON is refused with a JSON error."""
    answer = ecs.post(
        "/v1.1/tasks", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error_body(answer, 400, "invalid_json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(ecs: httpx.Client, content_type: str | None) -> None:
    """Only JSON bodies are accepted."""
    headers = {"Content-Type": content_type} if content_type else {}
    answer = ecs.post("/v1.1/tasks", content=json.dumps(TASK).encode(), headers=headers)
    assert_error_body(answer, 415, "unsupported_media_type")


def test_json_with_charset_is_accepted(ecs: httpx.Client) -> None:
    """`application/json; charset=utf-8` (with or without the space) is JSON too."""
    for content_type in ("application/json; charset=utf-8", "application/json;charset=UTF-8"):
        answer = ecs.post(
            "/v1.1/tasks", content=json.dumps(TASK).encode(), headers={"Content-Type": content_type}
        )
        assert answer.status_code == 201, answer.text


def test_oversized_body_is_413(ecs: httpx.Client) -> None:
    """A body over the cap (64 KiB plus room for 1 MiB of base64 input) is refused,
    whether its length is declared or streamed."""
    big = {**TASK, "cmd": ["echo", "x" * 1_500_000]}
    assert_error_body(ecs.post("/v1.1/tasks", json=big), 413, "body_too_large")

    def chunks() -> Any:
        data = json.dumps(big).encode()
        for start in range(0, len(data), 8192):
            yield data[start : start + 8192]

    streamed = ecs.post(
        "/v1.1/tasks", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error_body(streamed, 413, "body_too_large")


def test_unknown_path_and_wrong_method(ecs: httpx.Client) -> None:
    """404 and 405 are JSON too, 405 with Allow."""
    assert_error_body(ecs.get("/v1.1/nothing"), 404, "not_found")
    wrong = ecs.get("/v1.1/tasks")
    assert_error_body(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "POST"


def test_noop_version_and_health(ecs: httpx.Client, ecs_server: Any) -> None:
    """The original's happy paths: links.self, Location, version, green health."""
    noop = ecs.get("/v1.1/_noop")
    assert noop.status_code == 200
    assert noop.json() == {"links": {"self": {"href": f"{ecs_server.url}/v1.1/_noop"}}}
    assert noop.headers["location"] == f"{ecs_server.url}/v1.1/_noop"
    version = ecs.get("/v1.1/_version")
    assert version.json() == {
        "version": "0.1.0",
        "links": {"self": {"href": f"{ecs_server.url}/v1.1/_version"}},
    }
    for query in ("", "?quick=true", "?quick=false"):
        health = ecs.get(f"/v1.1/_health{query}")
        assert health.status_code == 200
        assert health.json()["status"] == "green"
        assert health.headers["location"].endswith(f"/v1.1/_health{query}")
    details = ecs.get("/v1.1/_health?quick=false").json()["details"]["engine"]
    assert details["details"] == {
        "connectivity": "green",
        "apiVersion": "green",
        "runtime": "green",
    }
    engine_max = ecs_server.app.state.runtime.docker.engine_range.high
    assert details["apiVersion"] == str(min(engine_max, ECS_API_RANGE.high))
    assert details["supportedApiVersions"] == str(ECS_API_RANGE)
    assert "details" not in ecs.get("/v1.1/_health").json()


def test_health_quick_must_be_a_boolean(ecs: httpx.Client) -> None:
    """`quick=dave` is a 400, as in the original."""
    assert_error_body(ecs.get("/v1.1/_health?quick=dave"), 400, "invalid_quick")


def test_health_is_red_when_the_engine_is_unreachable(start_ecs: Any, tmp_path: Any) -> None:
    """Comprehensive health turns red (503) with details when the engine does not answer."""
    server = start_ecs()
    # Point the running ECS at a socket nobody listens on.
    dead = engine_http_client(
        f"unix://{tmp_path / 'nobody.sock'}", connect_timeout_s=5, call_timeout_s=5
    )
    server.app.state.runtime.docker = DockerClient(dead)
    with httpx.Client(base_url=server.url) as client:
        answer = client.get("/v1.1/_health?quick=false")
        assert answer.status_code == 503
        engine = answer.json()["details"]["engine"]
        assert engine["details"]["connectivity"] == "red"
        assert "unreachable" in engine["error"]
        assert client.get("/v1.1/_health").status_code == 200  # quick checks nothing external


def test_correlation_id_kept_or_made(ecs: httpx.Client) -> None:
    """A well-formed client id is echoed; a bad one is replaced; no Server header ever."""
    kept = ecs.get("/v1.1/_noop", headers={"X-ECS-Correlation-ID": "client-42.a_b"})
    assert kept.headers["x-ecs-correlation-id"] == "client-42.a_b"
    replaced = ecs.get("/v1.1/_noop", headers={"X-ECS-Correlation-ID": "bad id!" + "x" * 80})
    assert replaced.headers["x-ecs-correlation-id"] != "bad id!" + "x" * 80
    assert len(replaced.headers["x-ecs-correlation-id"]) == 32
    error = ecs.post("/v1.1/tasks", json={}, headers={"X-ECS-Correlation-ID": "trace-1"})
    assert error.json()["correlationId"] == "trace-1"
    assert "server" not in kept.headers
    assert "server" not in error.headers


def test_openapi_documents_the_task_request(ecs: httpx.Client) -> None:
    """/openapi.json carries the TaskRequest schema and /docs serves the interactive page."""
    document = ecs.get("/openapi.json").json()
    schema = document["components"]["schemas"]["TaskRequest"]
    assert set(schema["required"]) == {"docker_image", "cmd"}
    assert schema["additionalProperties"] is False
    assert "201" in document["paths"]["/v1.1/tasks"]["post"]["responses"]
    assert ecs.get("/docs").status_code == 200


def test_full_slots_and_queue_answer_503(start_ecs: Any) -> None:
    """With one slot and no queue, a second concurrent task gets 503 with Retry-After."""
    server = start_ecs(max_concurrent_tasks=1, max_queued_tasks=0, overload_retry_after_s=3)
    results: dict[str, httpx.Response] = {}

    def slow() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            results["slow"] = client.post("/v1.1/tasks", json={**TASK, "cmd": ["sleep", "3"]})

    thread = threading.Thread(target=slow)
    thread.start()
    assert wait_until(lambda: server.app.state.runtime.slots.running == 1)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        refused = client.post("/v1.1/tasks", json=TASK)
    thread.join()
    assert_error_body(refused, 503, "overloaded")
    assert refused.headers["retry-after"] == "3"
    assert results["slow"].status_code == 201


def test_a_burst_of_a_dozen_waits_its_turn(ecs: httpx.Client) -> None:
    """With default sizing, twelve tasks at once all run (queued, not refused)."""

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=str(ecs.base_url), timeout=120) as client:
            answers = await asyncio.gather(
                *(
                    client.post("/v1.1/tasks", json={**TASK, "cmd": ["sleep", "0.5"]})
                    for _ in range(12)
                )
            )
        return [answer.status_code for answer in answers]

    assert asyncio.run(burst()) == [201] * 12


def test_client_disconnect_removes_the_container(ecs_server: Any, engine: httpx.Client) -> None:
    """A client that hangs up mid-task gets its container killed and deleted at once."""

    async def hang_up() -> None:
        async with httpx.AsyncClient(base_url=ecs_server.url, timeout=60) as client:
            request = asyncio.create_task(
                client.post("/v1.1/tasks", json={**TASK, "cmd": ["sleep", "300"]})
            )
            assert await asyncio.to_thread(wait_until, lambda: bool(managed_containers(engine)))
            request.cancel()  # closes the connection
            await asyncio.gather(request, return_exceptions=True)

    asyncio.run(hang_up())
    assert wait_until(lambda: not managed_containers(engine), timeout_s=20)


def test_pull_policy_always_replaces_a_stale_local_tag(
    start_ecs: Any, engine: httpx.Client
) -> None:
    """`always` pulls even when the tag exists; `if-not-present` runs the local one."""
    reference = f"{OPEN_REGISTRY}/owner/repo:other"
    # A stale local image under the same tag: its entrypoint is `sleep`, so `echo` fails.
    engine.post(
        "/images/local/sleeper:1/tag",
        params={"repo": f"{OPEN_REGISTRY}/owner/repo", "tag": "other"},
    ).raise_for_status()
    task = {"docker_image": reference, "cmd": ["echo", "fresh"], "timeout": 10}
    local = start_ecs(pull_policy=PullPolicy.IF_NOT_PRESENT)
    with httpx.Client(base_url=local.url, timeout=60) as client:
        assert client.post("/v1.1/tasks", json=task).json()["exitCode"] == 1
    always = start_ecs(pull_policy=PullPolicy.ALWAYS)
    with httpx.Client(base_url=always.url, timeout=60) as client:
        answer = client.post("/v1.1/tasks", json=task).json()
    assert answer["exitCode"] == 0
    remove_image(engine, reference)


def test_latest_is_pulled_every_time_by_default(start_ecs: Any, engine: httpx.Client) -> None:
    """With the default policy `:latest` is pulled although a local copy exists."""
    engine.post(
        "/images/local/sleeper:1/tag", params={"repo": "busybox", "tag": "latest"}
    ).raise_for_status()
    server = start_ecs()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.post(
            "/v1.1/tasks", json={"docker_image": "busybox:latest", "cmd": ["echo", "hi"]}
        )
    assert answer.json()["exitCode"] == 0
    remove_image(engine, "busybox:latest")


def test_never_policy_refuses_a_missing_image(start_ecs: Any, engine: httpx.Client) -> None:
    """With `never`, an image the engine lacks is a 404 and nothing is pulled."""
    reference = f"{OPEN_REGISTRY}/owner/repo:tag"
    remove_image(engine, reference)
    server = start_ecs(pull_policy=PullPolicy.NEVER)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.post("/v1.1/tasks", json={"docker_image": reference, "cmd": ["true"]})
    assert_error_body(answer, 404, "image_not_found")
    assert not image_exists(engine, reference)


def test_if_not_present_pulls_a_missing_image(start_ecs: Any, engine: httpx.Client) -> None:
    """A missing image is pulled once and then present."""
    reference = f"{OPEN_REGISTRY}/owner/repo:tag"
    remove_image(engine, reference)
    server = start_ecs(pull_policy=PullPolicy.IF_NOT_PRESENT)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert (
            client.post("/v1.1/tasks", json={"docker_image": reference, "cmd": ["true"]}).json()[
                "exitCode"
            ]
            == 0
        )
    assert image_exists(engine, reference)


async def test_concurrent_pulls_of_one_reference_share_one_pull(
    engine: httpx.Client, engine_target: EngineTarget
) -> None:
    """Eight simultaneous requests for a missing image cause one engine pull."""
    reference = parse_image_reference(f"{OPEN_REGISTRY}/owner/repo:tag")
    remove_image(engine, reference.familiar)
    pulls = 0

    class CountingDocker(DockerClient):
        async def pull(self, repository: str, tag: str, registry_auth: str | None) -> None:
            nonlocal pulls
            pulls += 1
            await super().pull(repository, tag, registry_auth)

    http = engine_http_client(
        f"unix://{engine_target.socket}", connect_timeout_s=5, call_timeout_s=60
    )
    async with http:
        puller = ImagePuller(CountingDocker(http), PullPolicy.ALWAYS, {})
        pulled = await asyncio.gather(*(puller.ensure_present(reference, None) for _ in range(8)))
    assert pulled == [True] * 8
    assert pulls == 1
    assert image_exists(engine, reference.familiar)
