"""Callbacks to a local receiver: signed, retried, refused where the operator did not allow."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.integration.callback_receiver import CallbackReceiver
from tests.integration.conftest import managed_containers, wait_until

pytestmark = pytest.mark.engine

SECRET = "callback-test-secret"
ASYNC = {"Prefer": "respond-async"}
ECHO = {"docker_image": "owner/repo:tag", "cmd": ["echo", "hi"]}


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    """A receiver answering 200."""
    with CallbackReceiver() as running:
        yield running


def signed(body: bytes) -> str:
    """The signature ECS must send for ``body``."""
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def callback_ecs(start_ecs: Callable[..., Any], **settings: Any) -> httpx.Client:
    """A client of an ECS that may call back 127.0.0.1, signing with SECRET."""
    settings = {"callback_secret": SECRET, "callback_allowlist": ["127.0.0.1"], **settings}
    server = start_ecs(**settings)
    return httpx.Client(base_url=server.url, timeout=60)


def final(client: httpx.Client, location: str) -> dict[str, Any]:
    """The task's document once it ended and its callback is settled."""

    def settled() -> bool:
        document = client.get(location).json()
        return "callback" not in document or document["callback"]["status"] != "pending"

    assert wait_until(settled, 30)
    document: dict[str, Any] = client.get(location).json()
    return document


def test_callback_is_signed_and_carries_the_document(
    start_ecs: Callable[..., Any], receiver: CallbackReceiver
) -> None:
    """The receiver gets the terminal document, the task id header and a valid HMAC of
    the exact body; the document then says delivered after one attempt."""
    with callback_ecs(start_ecs) as client:
        body = {**ECHO, "callback_url": receiver.url("/hook?ref=7")}
        accepted = client.post("/v1.1/tasks", json=body, headers=ASYNC)
        assert accepted.status_code == 202, accepted.text
        document = final(client, accepted.headers["location"])
    assert document["callback"] == {"status": "delivered", "attempts": 1}
    (call,) = receiver.received
    assert call.path == "/hook?ref=7"
    assert call.headers["X-ECS-Task-ID"] == document["id"]
    assert call.headers["X-ECS-Signature"] == signed(call.body)
    assert call.headers["Content-Type"] == "application/json"
    sent = json.loads(call.body)
    assert sent["status"] == "succeeded"
    assert sent["result"]["stdout"] == "aGkK"
    assert sent["callback"] == {"status": "pending", "attempts": 1}


def test_callback_retries_through_two_500s(start_ecs: Callable[..., Any]) -> None:
    """A receiver answering 500 twice gets three attempts; the third is delivered."""
    with CallbackReceiver([500, 500, 204]) as receiver, callback_ecs(start_ecs) as client:
        body = {**ECHO, "callback_url": receiver.url()}
        document = final(
            client, client.post("/v1.1/tasks", json=body, headers=ASYNC).headers["location"]
        )
        metrics = client.get("/metrics").text
    assert document["callback"] == {"status": "delivered", "attempts": 3}
    assert len(receiver.received) == 3
    assert len({call.body for call in receiver.received}) == 3  # each shows its attempt count
    assert 'ecs_callback_attempts_total{status="pending"} 2.0' in metrics
    assert 'ecs_callback_attempts_total{status="delivered"} 1.0' in metrics


def test_a_4xx_answer_ends_delivery_at_once(start_ecs: Callable[..., Any]) -> None:
    """A 400 from the receiver is final: one attempt, callback failed."""
    with CallbackReceiver([400]) as receiver, callback_ecs(start_ecs) as client:
        body = {**ECHO, "callback_url": receiver.url()}
        document = final(
            client, client.post("/v1.1/tasks", json=body, headers=ASYNC).headers["location"]
        )
    assert document["callback"] == {"status": "failed", "attempts": 1}
    assert document["status"] == "succeeded"  # the task itself is unaffected


def test_retries_stop_after_callback_retry_s(start_ecs: Callable[..., Any]) -> None:
    """A receiver that always fails is retried until callback_retry_s, then failed."""
    with CallbackReceiver([503]) as receiver, callback_ecs(start_ecs, callback_retry_s=2) as client:
        body = {**ECHO, "callback_url": receiver.url()}
        document = final(
            client, client.post("/v1.1/tasks", json=body, headers=ASYNC).headers["location"]
        )
    assert document["callback"]["status"] == "failed"
    assert 1 < document["callback"]["attempts"] <= 4
    assert len(receiver.received) == document["callback"]["attempts"]


@pytest.mark.parametrize(
    ("settings", "url", "why"),
    [
        ({}, "http://example.com/hook", "not in this server's callback_allowlist"),
        ({}, "ftp://127.0.0.1/hook", "http:// or https://"),
        ({"callback_allowlist": []}, "http://127.0.0.1:9/hook", "callback_allowlist"),
        ({"callback_secret": None}, "http://127.0.0.1:9/hook", "never sends unsigned"),
    ],
)
def test_refused_callback_urls_are_400_and_store_nothing(
    start_ecs: Callable[..., Any],
    engine: httpx.Client,
    settings: dict[str, Any],
    url: str,
    why: str,
) -> None:
    """A host the operator did not allow, a bad scheme, or no secret: 400 on callback_url."""
    with callback_ecs(start_ecs, **settings) as client:
        answer = client.post("/v1.1/tasks", json={**ECHO, "callback_url": url}, headers=ASYNC)
    assert answer.status_code == 400, answer.text
    (error,) = answer.json()["errors"]
    assert (error["code"], error["field"]) == ("callback_not_allowed", "callback_url")
    assert why in error["message"]
    assert managed_containers(engine) == []


def test_a_sync_request_with_a_callback_is_400(start_ecs: Callable[..., Any]) -> None:
    """Callbacks belong to async tasks: a sync request naming one is refused."""
    with callback_ecs(start_ecs) as client:
        answer = client.post("/v1.1/tasks", json={**ECHO, "callback_url": "http://127.0.0.1:9/"})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "callback_not_allowed"


def test_a_name_resolving_to_loopback_is_never_called(
    start_ecs: Callable[..., Any], receiver: CallbackReceiver
) -> None:
    """`localhost` matches the allowlist's glob, but resolves to loopback, which the
    allowlist does not name as an address: the callback fails without a request sent."""
    with callback_ecs(start_ecs, callback_allowlist=["localhost"]) as client:
        body = {**ECHO, "callback_url": receiver.url(host="localhost")}
        accepted = client.post("/v1.1/tasks", json=body, headers=ASYNC)
        assert accepted.status_code == 202, accepted.text
        document = final(client, accepted.headers["location"])
    assert document["callback"] == {"status": "failed", "attempts": 1}
    assert receiver.received == []


def test_redirects_are_not_followed(start_ecs: Callable[..., Any]) -> None:
    """A 307 from the receiver ends delivery; ECS never goes where it points."""
    with CallbackReceiver([307]) as receiver, callback_ecs(start_ecs) as client:
        body = {**ECHO, "callback_url": receiver.url()}
        document = final(
            client, client.post("/v1.1/tasks", json=body, headers=ASYNC).headers["location"]
        )
    assert document["callback"] == {"status": "failed", "attempts": 1}
    assert len(receiver.received) == 1
