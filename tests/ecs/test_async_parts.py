"""The pure parts of async tasks: headers, documents, the callback guard, signing, the store."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path

import httpx
import pytest

from ecs.callback_guard import CallbackPolicy
from ecs.callbacks import CallbackSender, Verdict, retry_delay_s, sign
from ecs.exceptions import ConfigurationConflict, InvalidRequest
from ecs.sqlite_store import SqliteTaskStore
from ecs.task_document import (
    body_hash,
    checked_idempotency_key,
    render_document,
    rfc3339,
    wants_async,
)
from ecs.task_records import Callback, CallbackStatus, TaskRecord, TaskStatus


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], False),
        (["respond-async"], True),
        (["Respond-Async"], True),
        (["wait=10, respond-async"], True),
        (["return=minimal", "respond-async; foo=bar"], True),
        (["respond-asynchronously"], False),
        (["return=respond-async"], False),
    ],
)
def test_prefer_respond_async(values: list[str], expected: bool) -> None:
    """RFC 7240: the preference may share the header or come in its own, any case."""
    assert wants_async(values) is expected


@pytest.mark.parametrize("key", ["", "x" * 129, "tab\there", "ünicode", "new\nline"])
def test_bad_idempotency_keys_are_400(key: str) -> None:
    """Keys are 1–128 printable ASCII characters; the 400 names the header."""
    with pytest.raises(InvalidRequest) as caught:
        checked_idempotency_key(key)
    assert caught.value.problems()[0].field == "Idempotency-Key"
    assert checked_idempotency_key("a key ~ 128 " + "x" * 100) is not None
    assert checked_idempotency_key(None) is None


def test_body_hash_ignores_order_and_spacing_only() -> None:
    """The same body in another key order hashes alike; another value does not."""
    assert body_hash({"a": 1, "b": [1, 2]}) == body_hash({"b": [1, 2], "a": 1})
    assert body_hash({"a": 1}) != body_hash({"a": 2})


def test_rfc3339_is_utc_with_milliseconds() -> None:
    """Times are RFC 3339 in UTC."""
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1764638175.1234) == "2025-12-02T01:16:15.123Z"


def test_document_shows_only_what_there_is() -> None:
    """A queued task has no times but its creation; a failed one its errors and status."""
    record = TaskRecord("t1", "", TaskStatus.QUEUED, 0.0, "http://ecs.example:8448/")
    assert render_document(record) == {
        "id": "t1",
        "status": "queued",
        "createdAt": "1970-01-01T00:00:00.000Z",
        "links": {"self": {"href": "http://ecs.example:8448/v1.1/tasks/t1"}},
    }
    record.status, record.started_at, record.finished_at = TaskStatus.FAILED, 1.0, 2.0
    record.errors, record.http_status = [{"code": "image_not_found", "message": "m"}], 404
    record.callback = Callback("http://hook", CallbackStatus.PENDING, attempts=2)
    document = render_document(record)
    assert document["httpStatus"] == 404
    assert document["errors"][0]["code"] == "image_not_found"
    assert document["callback"] == {"status": "pending", "attempts": 2}
    assert "result" not in document


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/x", True),
        ("http://a.hooks.example.com:8080/x", True),
        ("http://HOOKS.example.com/x", True),
        ("https://evil.com/x", False),
        ("https://hooks.example.com.evil.com/", False),
        ("http://10.1.2.3/x", True),
        ("http://10.9.9.9/x", False),
        ("http://[::1]:80/x", False),
        ("ftp://hooks.example.com/x", False),
        ("http://user:pw@hooks.example.com/x", False),
        ("hooks.example.com/x", False),
        ("http://hooks.example.com:0/x", False),
        ("http://hooks.example.com:99999/x", False),
    ],
)
def test_callback_urls_must_match_the_allowlist(url: str, allowed: bool) -> None:
    """Hosts match globs, addresses match listed networks; anything else is refused."""
    policy = CallbackPolicy(["hooks.example.com", "*.hooks.example.com", "10.1.2.0/24"])
    assert (policy.url_problem(url) is None) is allowed


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("10.0.0.5", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("10.1.2.7", True),
    ],
)
def test_resolved_addresses_must_be_public_or_listed(address: str, allowed: bool) -> None:
    """Loopback, private, link-local, shared, multicast: only when the allowlist names them."""
    policy = CallbackPolicy(["hooks.example.com", "10.1.2.0/24"])
    assert policy.address_allowed(address) is allowed


def test_empty_allowlist_allows_nothing() -> None:
    """The default: every callback URL is refused."""
    policy = CallbackPolicy([])
    assert policy.url_problem("https://hooks.example.com/") is not None


def test_signature_is_the_hmac_of_the_exact_body() -> None:
    """sha256= and the hex HMAC-SHA256 of the bytes sent."""
    body = b'{"id":"t1"}'
    expected = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert sign(b"secret", body) == f"sha256={expected}"


def test_retry_delays_grow_with_jitter_and_a_cap() -> None:
    """Backoff doubles from 1 s with jitter, never above the cap."""
    for attempt, ceiling in ((1, 1), (2, 2), (3, 4), (10, 60)):
        delays = [retry_delay_s(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1


async def test_sender_posts_to_the_vetted_address_with_the_host_kept() -> None:
    """The POST goes to the resolved address; Host, task id and signature are set."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    policy = CallbackPolicy(["hooks.example.com"])
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sender = CallbackSender(http, policy, b"k", resolver=resolver)
        attempt = await sender.attempt("http://hooks.example.com:8080/in?x=1", "t9", b"{}")
    assert attempt.verdict is Verdict.DELIVERED
    request = seen[0]
    assert str(request.url) == "http://93.184.215.14:8080/in?x=1"
    assert request.headers["host"] == "hooks.example.com:8080"
    assert request.headers["x-ecs-task-id"] == "t9"
    assert request.headers["x-ecs-signature"] == sign(b"k", b"{}")


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (400, Verdict.GIVE_UP),
        (404, Verdict.GIVE_UP),
        (302, Verdict.GIVE_UP),
    ],
)
async def test_sender_judges_answers(status: int, verdict: Verdict) -> None:
    """2xx delivered; 5xx, 408, 429 retried; other answers (redirects too) end it."""

    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    transport = httpx.MockTransport(lambda request: httpx.Response(status))
    async with httpx.AsyncClient(transport=transport) as http:
        sender = CallbackSender(http, CallbackPolicy(["h.example"]), b"k", resolver=resolver)
        assert (await sender.attempt("http://h.example/", "t", b"{}")).verdict is verdict


async def test_sender_refuses_a_name_resolving_inside() -> None:
    """A name the allowlist matches but that resolves to loopback is never called."""
    calls: list[httpx.Request] = []

    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "127.0.0.1"]

    transport = httpx.MockTransport(lambda request: calls.append(request) or httpx.Response(200))
    async with httpx.AsyncClient(transport=transport) as http:
        sender = CallbackSender(http, CallbackPolicy(["h.example"]), b"k", resolver=resolver)
        attempt = await sender.attempt("http://h.example/", "t", b"{}")
    assert attempt.verdict is Verdict.GIVE_UP
    assert "127.0.0.1" in attempt.detail
    assert calls == []


def record(task_id: str, **fields: object) -> TaskRecord:
    """A queued record."""
    return TaskRecord(task_id, "owner", TaskStatus.QUEUED, time.time(), "http://x/", **fields)  # type: ignore[arg-type]


async def test_store_round_trip_idempotency_and_expiry(tmp_path: Path) -> None:
    """Records survive a reopen; a key finds its record until it expires; expiry is 404."""
    now = [1000.0]
    path = tmp_path / "state.sqlite3"
    store = SqliteTaskStore(path, lambda: now[0])
    await store.open()
    first, created = await store.create(record("a", idempotency_key="k", body_hash="h"))
    again, created_again = await store.create(record("b", idempotency_key="k", body_hash="h"))
    assert (created, created_again, again.id) == (True, False, "a")
    other_owner = TaskRecord("c", "someone", TaskStatus.QUEUED, 1.0, "u", idempotency_key="k")
    assert (await store.create(other_owner))[1] is True
    first.status, first.expires_at = TaskStatus.SUCCEEDED, 1010.0
    first.callback = Callback("http://h", CallbackStatus.PENDING, next_attempt_at=1005.0)
    await store.save(first)
    await store.close()
    assert path.stat().st_mode & 0o777 == 0o600

    store = SqliteTaskStore(path, lambda: now[0])
    await store.open()
    loaded = await store.get("a")
    assert loaded == first
    assert [r.id for r in await store.unfinished()] == ["c"]
    assert [r.id for r in await store.callbacks_due(1004.0, 10)] == []
    assert [r.id for r in await store.callbacks_due(1006.0, 10)] == ["a"]
    now[0] = 1011.0
    assert await store.get("a") is None  # expired: gone for readers at once
    reused, created = await store.create(record("d", idempotency_key="k", body_hash="h2"))
    assert (reused.id, created) == ("d", True)  # an expired key is free again
    assert await store.purge_expired(now[0]) == 0  # "a" waits for its pending callback
    first.callback.status = CallbackStatus.DELIVERED
    await store.save(first)
    assert await store.purge_expired(now[0]) == 1
    await store.close()


async def test_store_is_one_process_only(tmp_path: Path) -> None:
    """A second store on the same file refuses to open, naming the file."""
    path = tmp_path / "state.sqlite3"
    first = SqliteTaskStore(path, time.time)
    await first.open()
    second = SqliteTaskStore(path, time.time)
    with pytest.raises(ConfigurationConflict, match="in use by another ECS"):
        await second.open()
    await first.close()
    await second.open()  # free again once the first closed
    await second.close()


async def test_wait_terminal_wakes_on_the_save() -> None:
    """A long poll sleeps until the record is saved terminal, not until its timeout."""
    store = SqliteTaskStore(Path("/tmp") / f"ecs-wait-{time.time_ns()}.sqlite3", time.time)
    await store.open()
    try:
        queued = record("w")
        await store.create(queued)
        waiter = asyncio.create_task(store.wait_terminal("w", 30))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        queued.status = TaskStatus.SUCCEEDED
        started = time.monotonic()
        await store.save(queued)
        await asyncio.wait_for(waiter, 2)
        assert time.monotonic() - started < 1
        assert json.loads(json.dumps(queued.to_json()))["status"] == "succeeded"
    finally:
        await store.close()
