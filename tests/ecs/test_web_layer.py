"""ECS's web layer over an in-process fake engine: auth, limits, middleware, error bodies
and a whole sync task, with no engine, no root and no network."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecs.app import create_app
from ecs.config import load_settings
from ecs.keys import GeneratedKey, generate_keys
from tests.ecs.lifecycle_engine import LifecycleEngine, Outcome

TASK = {"docker_image": "owner/repo:tag", "cmd": ["sh", "-c", "echo hi"]}
Client = Callable[..., Any]


@asynccontextmanager
async def serving(
    tmp_path: Path, engine: LifecycleEngine, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """ECS on ``engine``, its lifespan running, and a client of it."""
    settings.setdefault("state_path", tmp_path / "state.sqlite3")
    settings.setdefault("instance_id", "fast-tests")
    app = create_app(load_settings(None, **settings), engine_http=engine.client())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.0.0.9", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://ecs") as client:
            yield client


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, list[GeneratedKey]]:
    """A credentials file with two keys (cheap bcrypt rounds)."""
    path = tmp_path / "keys.htpasswd"
    return path, generate_keys(2, path, rounds=4)


async def test_a_task_runs_through_the_whole_pipeline(tmp_path: Path) -> None:
    """create → attach → start → wait → inspect → 201 with the demultiplexed output, then
    the container is deleted."""
    engine = LifecycleEngine(outcome=Outcome(b"hi\n", b"oops\n", 3))
    async with serving(tmp_path, engine) as client:
        answer = await client.post("/v1.1/tasks", json=TASK)
    assert answer.status_code == 201
    body = answer.json()
    assert (body["exitCode"], body["stdout"], body["stderr"]) == (3, "aGkK", "b29wcwo=")
    assert engine.containers == {}
    ordered = [c for c in engine.calls if c.startswith(("POST /containers", "DELETE"))]
    assert [c.rsplit("/", 1)[-1] for c in ordered[:4]] == ["create", "attach", "start", "wait"]


async def test_every_error_is_the_same_json_body(tmp_path: Path) -> None:
    """400, 404, 405, 413 and 415 all answer {errors, correlationId}, with the id header."""
    engine = LifecycleEngine()
    async with serving(tmp_path, engine, max_input_bytes=1024, body_cap_bytes=1024) as client:
        answers = {
            400: await client.post("/v1.1/tasks", json={"cmd": []}),
            404: await client.get("/nowhere"),
            405: await client.get("/v1.1/tasks"),
            413: await client.post("/v1.1/tasks", json={**TASK, "cmd": ["x" * 5000]}),
            415: await client.post(
                "/v1.1/tasks", content=b"{}", headers={"content-type": "text/plain"}
            ),
        }
    for status, answer in answers.items():
        assert answer.status_code == status
        body = answer.json()
        assert body["errors"]
        assert all("code" in e and "message" in e for e in body["errors"])
        assert body["correlationId"] == answer.headers["x-ecs-correlation-id"]
    assert {e["field"] for e in answers[400].json()["errors"]} == {"docker_image", "cmd"}
    assert engine.containers == {}


@pytest.mark.parametrize(
    ("sent", "kept"), [("req-42", True), ("a" * 65, False), ("bad id!", False), (None, False)]
)
async def test_correlation_id_is_kept_only_when_well_formed(
    tmp_path: Path, sent: str | None, kept: bool
) -> None:
    """A client's 1–64 character [A-Za-z0-9._-] id is kept; anything else is replaced."""
    headers = {"X-ECS-Correlation-ID": sent} if sent else {}
    async with serving(tmp_path, LifecycleEngine()) as client:
        answer = await client.get("/v1.1/_noop", headers=headers)
    assert (answer.headers["x-ecs-correlation-id"] == sent) is kept
    assert "server" not in answer.headers


async def test_keys_are_required_and_checked(
    tmp_path: Path, keys: tuple[Path, list[GeneratedKey]]
) -> None:
    """No key or a wrong one: 401 JSON with the Basic challenge; health stays open."""
    path, (pair, _) = keys
    async with serving(tmp_path, LifecycleEngine(), credentials_file=path) as client:
        missing = await client.get("/v1.1/_noop")
        wrong = await client.get("/v1.1/_noop", auth=(pair.key, "nope"))
        good = await client.get("/v1.1/_noop", auth=(pair.key, pair.secret))
        health = await client.get("/v1.1/_health")
    for answer in (missing, wrong):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Basic realm="ecs"'
        assert answer.json()["errors"][0]["code"] == "unauthorized"
    assert (good.status_code, health.status_code) == (200, 200)


async def test_a_keys_rate_limit_is_429_with_retry_after(
    tmp_path: Path, keys: tuple[Path, list[GeneratedKey]]
) -> None:
    """Past its burst a key gets 429 and Retry-After; another key is unaffected."""
    path, (first, second) = keys
    settings = {"credentials_file": path, "rate_limit_per_s": 0.01, "rate_limit_burst": 2}
    async with serving(tmp_path, LifecycleEngine(), **settings) as client:
        statuses = [
            (await client.get("/v1.1/_noop", auth=(first.key, first.secret))).status_code
            for _ in range(3)
        ]
        other = await client.get("/v1.1/_noop", auth=(second.key, second.secret))
        limited = await client.get("/v1.1/_noop", auth=(first.key, first.secret))
    assert statuses == [200, 200, 429]
    assert other.status_code == 200
    assert int(limited.headers["retry-after"]) > 0
    assert limited.json()["errors"][0]["code"] == "rate_limited"


async def test_failed_checks_from_one_address_get_429_before_bcrypt(
    tmp_path: Path, keys: tuple[Path, list[GeneratedKey]]
) -> None:
    """An address that keeps failing gets 429 instead of more key checks."""
    path, (pair, _) = keys
    settings = {"credentials_file": path, "failed_auth_per_s": 0.01, "failed_auth_burst": 2}
    async with serving(tmp_path, LifecycleEngine(), **settings) as client:
        statuses = [
            (await client.get("/v1.1/_noop", auth=(pair.key, "wrong"))).status_code
            for _ in range(4)
        ]
    assert statuses == [401, 401, 429, 429]


async def test_an_unreachable_engine_is_503_and_red_health(tmp_path: Path) -> None:
    """With the socket gone a task is 503 engine_unreachable and comprehensive health red."""
    engine = LifecycleEngine()
    async with serving(tmp_path, engine) as client:
        engine.unreachable = True
        task = await client.post("/v1.1/tasks", json=TASK)
        health = await client.get("/v1.1/_health", params={"quick": "false"})
        quick = await client.get("/v1.1/_health")
    assert task.status_code == 503
    assert task.json()["errors"][0]["code"] == "engine_unreachable"
    assert task.headers["retry-after"]
    assert health.status_code == 503
    assert health.json()["details"]["engine"]["details"]["connectivity"] == "red"
    assert quick.status_code == 200


async def test_stdin_asks_for_an_open_stdin_and_a_missing_image_is_404(tmp_path: Path) -> None:
    """A task with stdin creates its container with OpenStdin/StdinOnce; an image the
    engine lacks (pull policy never) is 404 from the create itself, nothing pulled or left."""
    engine = LifecycleEngine()
    async with serving(tmp_path, engine, pull_policy="never") as client:
        missing = await client.post("/v1.1/tasks", json={**TASK, "docker_image": "owner/nope:tag"})
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "image_not_found"
    assert engine.containers == {}
    assert not [c for c in engine.calls if c.startswith("POST /images/create")]
    async with serving(tmp_path, engine) as client:
        fed = await client.post("/v1.1/tasks", json={**TASK, "stdin": "aGk="})
    # The fake has no stdin to attach to: the hijack is refused, so the task fails, but
    # the create asked for the open, once-only stdin first.
    assert fed.status_code >= 500
    created = [c for c in engine.created if c.get("OpenStdin")]
    assert created
    assert created[0]["StdinOnce"] is True
    assert engine.containers == {}


ROUTES = {
    "/v1.1/tasks": {"POST"},
    "/v1.1/tasks/": {"POST"},
    "/v1.1/tasks/0123abcd": {"GET", "HEAD", "DELETE"},
    "/v1.1/_noop": {"GET", "HEAD"},
    "/v1.1/_version": {"GET", "HEAD"},
    "/v1.1/_health": {"GET", "HEAD"},
    "/metrics": {"GET", "HEAD"},
    "/openapi.json": {"GET", "HEAD"},
    "/docs": {"GET", "HEAD"},
}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json"])
async def test_every_wrong_method_on_every_route_is_405_with_allow(
    tmp_path: Path, content_type: str | None
) -> None:
    """Whatever the body's type, a method a route does not take answers 405, names the
    allowed ones in Allow, and is the JSON error body (none for HEAD)."""
    headers = {"content-type": content_type} if content_type else {}
    async with serving(tmp_path, LifecycleEngine()) as client:
        for path, allowed in ROUTES.items():
            for method in set(METHODS) - allowed:
                answer = await client.request(method, path, headers=headers, content=b"{}")
                assert answer.status_code == 405, (method, path, answer.text)
                assert set(answer.headers["allow"].split(", ")) == allowed, (method, path)
                if method != "HEAD":  # a HEAD answer has no body
                    assert answer.json()["errors"][0]["code"] == "method_not_allowed"


async def test_head_answers_like_get_without_a_body(tmp_path: Path) -> None:
    """HEAD on each GET endpoint has GET's status and headers, and no body."""
    async with serving(tmp_path, LifecycleEngine()) as client:
        for path in ("/v1.1/_noop", "/v1.1/_version", "/v1.1/_health", "/metrics"):
            get, head = await client.get(path), await client.head(path)
            assert (head.status_code, head.content) == (get.status_code, b""), path
            assert head.headers["content-type"] == get.headers["content-type"]
        missing = await client.head("/v1.1/tasks/0123abcd")
    assert missing.status_code == 404
