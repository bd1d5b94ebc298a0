"""The engine transport on asyncio streams (ecs.engine_network), against a raw HTTP server
on a unix socket or TCP port: keep-alive, an idle connection the server closed, timeouts,
a missing socket, and a hijacked stream's half-close after a large write."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from ecs.docker import DockerClient, engine_http_client
from ecs.engine_http import EngineHttp
from ecs.exceptions import EngineUnreachable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str], Awaitable[bool]]

VERSION = json.dumps({"ApiVersion": "1.41", "MinAPIVersion": "1.24"}).encode()


def answer(body: bytes, *, status: str = "200 OK") -> bytes:
    """A complete HTTP/1.1 response with a JSON body."""
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


class RawServer:
    """An HTTP/1.1 server that counts connections and hands each request to ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[str] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: requests until the handler says to hang up or the client does."""
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = next(
                    (
                        int(v)
                        for k, _, v in (h.partition(": ") for h in lines[1:])
                        if k.lower() == "content-length"
                    ),
                    0,
                )
                await reader.readexactly(length)
                self.requests.append(lines[0])
                if not await self.handler(reader, writer, lines[0]):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def unix_server(tmp_path: Path, handler: Handler) -> AsyncIterator[RawServer]:
    """``handler`` serving on ``tmp_path/engine.sock``."""
    raw = RawServer(handler)
    server = await asyncio.start_unix_server(raw.serve, path=str(tmp_path / "engine.sock"))
    async with server:
        yield raw


def client_for(tmp_path: Path, *, call_timeout_s: float = 5.0) -> EngineHttp:
    """ECS's engine client on the test socket."""
    return engine_http_client(
        f"unix://{tmp_path / 'engine.sock'}", connect_timeout_s=1.0, call_timeout_s=call_timeout_s
    )


async def keep_alive(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str) -> bool:
    """Answer /version and keep the connection."""
    writer.write(answer(VERSION))
    await writer.drain()
    return True


async def test_calls_share_one_kept_alive_connection(tmp_path: Path) -> None:
    """Three calls in a row go over one connection and read their JSON answers."""
    async with unix_server(tmp_path, keep_alive) as server, client_for(tmp_path) as http:
        answers = [(await http.send("GET", "/version")).json() for _ in range(3)]
    assert answers == [json.loads(VERSION)] * 3
    assert server.connections == 1
    assert server.requests == ["GET /version HTTP/1.1"] * 3


async def test_an_idle_connection_the_engine_closed_is_not_reused(tmp_path: Path) -> None:
    """The engine hangs up an idle keep-alive connection: the next call opens a new one
    instead of failing on the dead one."""

    async def answer_then_hang_up(
        _reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: str
    ) -> bool:
        writer.write(answer(VERSION))
        await writer.drain()
        return False

    async with unix_server(tmp_path, answer_then_hang_up) as server, client_for(tmp_path) as http:
        first = await http.send("GET", "/version")
        await asyncio.sleep(0.05)  # the close reaches the client while it is idle
        second = await http.send("GET", "/version")
    assert first.status_code == second.status_code == 200
    assert server.connections == 2


async def test_a_silent_engine_times_out_as_httpx_read_timeout(tmp_path: Path) -> None:
    """No answer within the call timeout is httpx's ReadTimeout, which DockerClient maps."""

    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter, _: str) -> bool:
        await reader.read()  # until the client gives up and hangs up
        return False

    async with unix_server(tmp_path, silent), client_for(tmp_path, call_timeout_s=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.send("GET", "/version")
        with pytest.raises(EngineUnreachable, match="in time"):
            await DockerClient(http).version()


async def test_a_missing_socket_is_a_connect_error(tmp_path: Path) -> None:
    """No engine listening: httpx's ConnectError, and EngineUnreachable from DockerClient."""
    async with client_for(tmp_path) as http:
        with pytest.raises(httpx.ConnectError):
            await http.send("GET", "/version")
        with pytest.raises(EngineUnreachable, match="unreachable"):
            await DockerClient(http).version()


async def test_the_tcp_form_connects_too() -> None:
    """``tcp://host:port`` goes through the same backend."""
    raw = RawServer(keep_alive)
    server = await asyncio.start_server(raw.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with (
        server,
        engine_http_client(
            f"tcp://127.0.0.1:{port}", connect_timeout_s=1.0, call_timeout_s=5.0
        ) as http,
    ):
        assert (await http.send("GET", "/version")).json() == json.loads(VERSION)
    assert raw.connections == 1


async def test_a_hijacked_stream_half_closes_after_everything_written(tmp_path: Path) -> None:
    """Several megabytes written, then the half-close: the engine reads all of it before
    its end-of-file, and the answer it sends afterwards still arrives."""
    received = bytearray()

    async def upgrade(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str
    ) -> bool:
        if line.startswith("GET "):
            return await keep_alive(reader, writer, line)
        writer.write(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        await writer.drain()
        while chunk := await reader.read(65536):  # slowly, so the client's buffer fills
            received.extend(chunk)
            await asyncio.sleep(0)
        writer.write(f"got {len(received)}".encode())
        await writer.drain()
        return False

    payload = bytes(range(256)) * 16384  # 4 MiB
    async with unix_server(tmp_path, upgrade), client_for(tmp_path) as http:
        docker = DockerClient(http)
        async with docker.hijack("/containers/c1/attach", params={"stdin": "1"}) as stream:
            await stream.write(payload)
            stream.close_write()
            reply = b""
            while chunk := await asyncio.wait_for(stream.read(), 5):
                reply += chunk
    assert bytes(received) == payload
    assert reply == f"got {len(payload)}".encode()
