"""An in-process Docker Engine that runs "containers" as scripted outcomes.

Enough of the API for ``create_app(engine_http=…)`` to serve tasks without a real engine:
version and info, image inspect, create, attach (the frames of the scripted output),
start, wait, inspect, kill, delete and the labelled list. Each container's outcome is
given by the test (``outcome``); everything the client asked is in ``calls``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

from ecs.engine_http import EngineHttp

# What answers a request in place of the engine, as httpx.MockTransport takes it.
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)

_VERSIONED = re.compile(r"^/v\d+\.\d+(/.*)$")
_CONTAINER = re.compile(r"^/containers/([^/]+)(/\w+)?$")


def frame(stream: int, payload: bytes) -> bytes:
    """One multiplexed output frame."""
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


@dataclass
class Outcome:
    """What a container does: its output and its exit code."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0


@dataclass
class LifecycleEngine:
    """The engine; ``containers`` are those that exist now, by id."""

    outcome: Outcome = field(default_factory=Outcome)
    images: set[str] = field(default_factory=lambda: {"owner/repo:tag"})
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)  # every create body
    unreachable: bool = False
    keep_running: bool = False  # started containers run until deleted (a warm pool's)

    def client(self, handler: Handler | None = None) -> EngineHttp:
        """ECS's engine HTTP client with this engine (or ``handler`` in front of it) as its
        transport."""
        transport = httpx.MockTransport(handler or self.handle)
        return EngineHttp(transport, base_url="http://d", timeout=httpx.Timeout(5.0))

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as dockerd would."""
        if self.unreachable:
            raise httpx.ConnectError("engine socket gone", request=request)
        path = request.url.path
        match = _VERSIONED.match(path)
        path = match[1] if match else path
        self.calls.append(f"{request.method} {path}")
        if path == "/version":
            return httpx.Response(200, json={"ApiVersion": "1.41", "MinAPIVersion": "1.12"})
        if path == "/info":
            return httpx.Response(
                200, json={"Runtimes": {"runc": {"path": "runc"}}, "DefaultRuntime": "runc"}
            )
        if path.startswith("/images/") and path.endswith("/json"):
            name = path.removeprefix("/images/").removesuffix("/json")
            if name in self.images:
                return httpx.Response(200, json={"Id": "sha256:1"})
            return _message(404, f"No such image: {name}")
        if path == "/containers/create":
            return self._create(request)
        if path == "/containers/json":
            return httpx.Response(200, json=list(self.containers.values()))
        found = _CONTAINER.match(path)
        if found:
            return self._container(request.method, found[1], found[2] or "")
        return _message(404, f"page not found: {path}")

    def _create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.created.append(body)
        if body["Image"] not in self.images:
            return _message(404, f"No such image: {body['Image']}")
        container_id = f"c{len(self.calls):06d}"
        name = request.url.params.get("name")
        self.containers[container_id] = {
            "Id": container_id,
            "Names": [f"/{name}"] if name else [],
            "Labels": body.get("Labels", {}),
            "Created": 0,
            "State": "created",
            "Config": body,
        }
        return httpx.Response(201, json={"Id": container_id, "Warnings": []})

    def _container(self, method: str, id_or_name: str, action: str) -> httpx.Response:
        # As dockerd does, a container is found by its id or by its name.
        container = self.containers.get(id_or_name) or next(
            (c for c in self.containers.values() if f"/{id_or_name}" in c.get("Names", [])),
            None,
        )
        if container is None:
            return _message(404, f"No such container: {id_or_name}")
        container_id = container["Id"]
        outcome = self.outcome
        if action == "/attach":
            content = frame(1, outcome.stdout) if outcome.stdout else b""
            content += frame(2, outcome.stderr) if outcome.stderr else b""
            return httpx.Response(200, stream=_OneChunk(content))
        if action == "/start":
            container["State"] = "running" if self.keep_running else "exited"
            return httpx.Response(204)
        if action == "/wait":
            if container["State"] == "running":  # until it stops: here, never
                return httpx.Response(200, stream=_Never())
            return httpx.Response(200, json={"StatusCode": outcome.exit_code, "Error": None})
        if action == "/kill":
            return _message(409, f"container {container_id} is not running")
        if action == "/json":
            state = {
                "ExitCode": outcome.exit_code,
                "OOMKilled": False,
                "Running": container["State"] == "running",
                "StartedAt": "2026-12-02T00:00:00.000000001Z",
                "FinishedAt": "2026-12-02T00:00:00.005000000Z",
            }
            return httpx.Response(200, json={"Id": container_id, "State": state})
        if method == "DELETE" and action == "":
            del self.containers[container_id]
            return httpx.Response(204)
        return _message(404, f"page not found: {action}")


class _OneChunk(httpx.AsyncByteStream):
    """A streamed body, as the engine's attach answer is (read raw, not at once)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._data


class _Never(httpx.AsyncByteStream):
    """The body of a wait on a container that keeps running: it never comes."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await asyncio.Event().wait()
        yield b""


def _message(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, content=json.dumps({"message": message}).encode())
