"""An async Docker Engine client over httpx: the calls ECS makes, and nothing else.

The transport is injected, so production hands in the unix socket and tests could hand
in anything httpx accepts. The API version is negotiated with the engine
(``ecs.engine_version``: the highest version both sides serve); when the engine later
refuses that version — it was upgraded, or its floor raised — the client negotiates
again once and repeats the call, which the engine refused before doing anything.
httpx errors and engine error statuses become ``ecs.exceptions`` errors here, and only
here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ecs.engine_http import EngineHttp
from ecs.engine_network import EngineTransport
from ecs.engine_version import (
    ApiRange,
    ApiVersion,
    choose_api_version,
    engine_api_range,
    is_version_refusal,
)
from ecs.exceptions import (
    EngineApiError,
    EngineConflict,
    EngineError,
    EngineIncompatible,
    EngineNotFound,
    EngineUnauthorized,
    EngineUnreachable,
)
from ecs.hijack import HijackedStream

JsonObject = dict[str, Any]

_PODMAN_STATE_CONFLICT = "container state improper"


def engine_http_client(
    docker_host: str, *, connect_timeout_s: float, call_timeout_s: float
) -> EngineHttp:
    """Build the one HTTP client that talks to the engine at ``docker_host``.

    ``unix:///path`` uses the socket; ``tcp://host:port`` and ``http://host:port`` use TCP.
    """
    timeout = httpx.Timeout(call_timeout_s, connect=connect_timeout_s)
    # Every running task holds one connection while it waits, so the pool is generous.
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    parts = urlsplit(docker_host)
    if parts.scheme == "unix":
        transport = EngineTransport(uds=parts.path, limits=limits)
        return EngineHttp(transport, base_url="http://docker", timeout=timeout)
    if parts.scheme in ("tcp", "http"):
        transport = EngineTransport(limits=limits)
        return EngineHttp(transport, base_url=f"http://{parts.netloc}", timeout=timeout)
    raise ValueError(f"docker_host {docker_host!r} must start with unix://, tcp:// or http://")


class DockerClient:
    """The engine calls of the task pipeline, the janitor and the health check."""

    def __init__(
        self,
        http: EngineHttp,
        *,
        pull_timeout_s: float = 300.0,
        pinned_api_version: ApiVersion | None = None,
        on_error: Callable[[str], None] = lambda _kind: None,
    ) -> None:
        self._http = http
        self._pull_timeout_s = pull_timeout_s
        self._pinned = pinned_api_version
        self._on_error = on_error
        self._version: ApiVersion | None = None
        self._engine_range: ApiRange | None = None
        self._negotiate_lock = asyncio.Lock()

    @property
    def api_version(self) -> ApiVersion | None:
        """The negotiated API version, once known."""
        return self._version

    @property
    def engine_range(self) -> ApiRange | None:
        """The API versions the engine said it serves, at the last negotiation."""
        return self._engine_range

    async def version(self) -> JsonObject:
        """``GET /version`` without a version prefix, so any engine answers."""
        info: JsonObject = await self._json("GET", "/version", versioned=False)
        return info

    async def negotiate(self) -> ApiVersion:
        """Agree on an API version with the engine and return it; EngineIncompatible if none."""
        async with self._negotiate_lock:
            return await self._negotiate_locked()

    async def _negotiate_locked(self) -> ApiVersion:
        info = await self.version()
        try:
            engine = engine_api_range(info)
        except ValueError as exc:
            raise EngineApiError(f"engine reported an unreadable API version: {exc}") from exc
        self._engine_range = engine
        self._version = choose_api_version(engine, pinned=self._pinned)
        return self._version

    async def _renegotiate(self, refused: ApiVersion | None, message: str) -> None:
        """After the engine refused ``refused``: pick a version again, unless another call did."""
        async with self._negotiate_lock:
            if self._version != refused:
                return
            chosen = await self._negotiate_locked()
        if chosen == refused:  # the engine's /version and its refusal disagree
            raise self._counted(EngineIncompatible(f"engine refused API {refused}: {message}"))

    async def versioned_version(self) -> JsonObject:
        """``GET /v{negotiated}/version``: proves the engine still accepts ECS's version."""
        info: JsonObject = await self._json("GET", "/version")
        return info

    async def info(self) -> JsonObject:
        """``GET /info``: the engine's runtimes, drivers and limits."""
        info: JsonObject = await self._json("GET", "/info")
        return info

    async def image_exists(self, reference: str) -> bool:
        """True if the engine has ``reference`` locally."""
        try:
            await self._json("GET", f"/images/{quote(reference, safe='/:@')}/json")
        except EngineNotFound:
            return False
        return True

    async def pull(self, repository: str, tag: str, registry_auth: str | None) -> None:
        """Pull ``repository:tag``; raise on an error status or an error line in the stream."""
        headers = {"X-Registry-Auth": registry_auth} if registry_auth else {}
        params = {"fromImage": repository, "tag": tag}
        async with self._stream(
            "POST",
            "/images/create",
            params=params,
            headers=headers,
            timeout=httpx.Timeout(self._pull_timeout_s),
        ) as response:
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                message = _stream_error(event)
                if message:
                    # An error after streaming began comes inside a 200 answer.
                    raise EngineApiError(message, engine_status=response.status_code)

    async def create_container(self, name: str, config: JsonObject) -> str:
        """Create a container and return its id."""
        created = await self._json("POST", "/containers/create", params={"name": name}, body=config)
        return str(created["Id"])

    async def start(self, container_id: str) -> None:
        """Start a created container."""
        await self._call("POST", f"/containers/{container_id}/start")

    async def wait(self, container_id: str) -> int:
        """Block until the container stops and return its exit status.

        The caller bounds the wait (the task's timeout); no HTTP timeout applies here.
        """
        answer = await self._json(
            "POST",
            f"/containers/{container_id}/wait",
            params={"condition": "not-running"},
            timeout=httpx.Timeout(None, connect=self._http.timeout.connect),
        )
        return int(answer.get("StatusCode", -1))

    async def kill(self, container_id: str) -> None:
        """SIGKILL the container; a container that already stopped is fine."""
        with contextlib.suppress(EngineConflict):  # conflict: not running any more
            await self._call("POST", f"/containers/{container_id}/kill")

    async def inspect(self, container_id: str) -> JsonObject:
        """``GET /containers/{id}/json``."""
        info: JsonObject = await self._json("GET", f"/containers/{container_id}/json")
        return info

    @asynccontextmanager
    async def attach(self, container_id: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """Both output streams, multiplexed, raw, from before start until the container stops.

        Attaching (rather than reading ``/logs`` afterwards) is binary-safe: the json-file
        log driver stores lines as JSON strings and replaces bytes that are not UTF-8.
        The answer has no length; it ends when the engine closes it at container exit.
        """
        params = {"stream": "1", "stdout": "1", "stderr": "1"}
        no_read_timeout = httpx.Timeout(None, connect=self._http.timeout.connect)
        async with self._stream(
            "POST", f"/containers/{container_id}/attach", params=params, timeout=no_read_timeout
        ) as response:
            yield response.aiter_raw()

    @asynccontextmanager
    async def attach_stdin(self, container_id: str) -> AsyncIterator[HijackedStream]:
        """A hijacked connection to the container's stdin (created with ``OpenStdin``).

        Closing it (leaving the block) is the end-of-file the task reads, since the
        container was created ``StdinOnce``.
        """
        path = f"/containers/{container_id}/attach"
        async with self.hijack(path, params={"stream": "1", "stdin": "1"}) as stream:
            yield stream

    @asynccontextmanager
    async def hijack(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: JsonObject | None = None,
    ) -> AsyncIterator[HijackedStream]:
        """POST ``path`` asking the engine to upgrade it to a raw two-way stream (attach,
        exec start); the stream is closed when the block ends."""
        url = await self._path(path, True)
        with self._translated("POST", path):
            response = await self._http.open(
                "POST",
                url,
                params=params,
                json=body,
                headers={"Connection": "Upgrade", "Upgrade": "tcp"},
                timeout=httpx.Timeout(None, connect=self._http.timeout.connect),
            )
        try:
            if response.status_code >= 400:
                self._check(response.status_code, await response.aread(), "POST", path)
            network = response.extensions.get("network_stream")
            if response.status_code != 101 or network is None:
                status = response.status_code
                raise self._counted(EngineApiError(f"engine did not upgrade {path} ({status})"))
            stream = HijackedStream(network)
            try:
                yield stream
            finally:
                await stream.close()
        finally:
            await response.aclose()

    async def events(self, params: Mapping[str, str]) -> list[JsonObject]:
        """``GET /events`` between ``since`` and ``until``: the engine's events, decoded."""
        response = await self._call("GET", "/events", params=params)
        events = []
        for line in response.text.splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
        return events

    async def call_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: JsonObject | None = None,
    ) -> Any:
        """One versioned call; its decoded JSON answer (``{}`` for an empty one)."""
        return await self._json(method, path, params=params, body=body)

    async def put_archive(self, container_id: str, path: str, archive: bytes) -> None:
        """Unpack a tar archive into the container at ``path`` (before it starts)."""
        with self._translated("PUT", "/containers/{id}/archive"):
            url = await self._path(f"/containers/{container_id}/archive", True)
            response = await self._http.send(
                "PUT",
                url,
                params={"path": path},
                content=archive,
                headers={"Content-Type": "application/x-tar"},
            )
        self._check(response.status_code, response.content, "PUT", "/containers/{id}/archive")

    async def remove(self, container_id: str) -> None:
        """Force-remove a container and its anonymous volumes; already gone is fine."""
        try:
            await self._call(
                "DELETE", f"/containers/{container_id}", params={"force": "1", "v": "1"}
            )
        except EngineNotFound:
            pass
        except EngineConflict as exc:
            if "already in progress" not in exc.message:
                raise

    async def list_containers(self, labels: Mapping[str, str | None]) -> list[JsonObject]:
        """All containers, running or not, that carry every label (``None``: any value)."""
        wanted = [key if value is None else f"{key}={value}" for key, value in labels.items()]
        found = await self._json(
            "GET",
            "/containers/json",
            # The map form: the list form is only a legacy fallback in newer engines.
            params={"all": "1", "filters": json.dumps({"label": dict.fromkeys(wanted, True)})},
        )
        return list(found) if isinstance(found, list) else []

    # -- transport seam --------------------------------------------------------------

    async def _path(self, path: str, versioned: bool) -> str:
        if not versioned:
            return path
        if self._version is None:
            await self.negotiate()
        return f"/v{self._version}{path}"

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: JsonObject | None = None,
        timeout: httpx.Timeout | None = None,
        versioned: bool = True,
    ) -> httpx.Response:
        for first_attempt in (True, False):
            used = self._version
            url = await self._path(path, versioned)
            with self._translated(method, path):
                response = await self._http.send(
                    method, url, params=params, json=body, timeout=timeout
                )
            if response.status_code < 400:  # the common case: no error body to read
                return response
            message = _engine_message(response.content)
            if versioned and first_attempt and is_version_refusal(response.status_code, message):
                await self._renegotiate(used or self._version, message)
                continue
            self._check(response.status_code, response.content, method, path)
            break
        return response

    @contextmanager
    def _translated(self, method: str, path: str) -> Iterator[None]:
        """The one seam where httpx's transport errors become ECS errors."""
        try:
            yield
        except httpx.TimeoutException as exc:
            error = EngineUnreachable(f"engine did not answer {method} {path} in time")
            raise self._counted(error) from exc
        except httpx.TransportError as exc:
            raise self._counted(EngineUnreachable(f"engine unreachable: {exc}")) from exc

    def _check(self, status: int, content: bytes, method: str, path: str) -> None:
        if status >= 400:
            raise self._counted(_error_for(status, _engine_message(content), method, path))

    def _counted(self, error: EngineError) -> EngineError:
        # 404 and 409 are answers about the world (no such image, already stopped), not faults.
        if isinstance(
            error, EngineUnreachable | EngineApiError | EngineUnauthorized | EngineIncompatible
        ):
            self._on_error(error.code)
        return error

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._call(method, path, **kwargs)
        return response.json() if response.content else {}

    @asynccontextmanager
    async def _stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str],
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> AsyncIterator[httpx.Response]:
        for first_attempt in (True, False):
            used = self._version
            url = await self._path(path, True)
            # Errors while the caller reads the stream pass through the same seam.
            with self._translated(method, path):
                async with self._http.stream(
                    method, url, params=params, headers=headers, timeout=timeout
                ) as response:
                    if response.status_code < 400:
                        yield response
                        return
                    content = await response.aread()
            message = _engine_message(content)
            if not (first_attempt and is_version_refusal(response.status_code, message)):
                self._check(response.status_code, content, method, path)
            await self._renegotiate(used or self._version, message)


def _stream_error(event: object) -> str | None:
    """The error of one pull-stream line: ``errorDetail`` (1.48 deprecates ``error``)."""
    if not isinstance(event, dict):
        return None
    detail = event.get("errorDetail")
    if isinstance(detail, dict) and detail.get("message"):
        return str(detail["message"])
    return str(event["error"]) if event.get("error") else None


def _engine_message(content: bytes) -> str:
    try:
        answer = json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace").strip()
    if isinstance(answer, dict) and "message" in answer:
        return str(answer["message"])
    return content.decode("utf-8", "replace").strip()


def _error_for(status: int, message: str, method: str, path: str) -> EngineError:
    text = message or f"engine answered {status} to {method} {path}"
    if is_version_refusal(status, message):
        return EngineIncompatible(text, engine_status=status)
    if status == 500 and _PODMAN_STATE_CONFLICT in message:
        # Podman answers 500 where dockerd answers 409 (kill of a stopped container).
        return EngineConflict(text, engine_status=status)
    if status == 404:
        return EngineNotFound(text, engine_status=status)
    if status == 409:
        return EngineConflict(text, engine_status=status)
    if status in (401, 403):
        return EngineUnauthorized(text, engine_status=status)
    return EngineApiError(text, engine_status=status)
