"""The engine connection's network layer: httpx and httpcore over plain asyncio streams.

httpx's default async transport reaches its sockets through anyio, which wraps every
read and write in a cancel scope with a deadline and a checkpoint (an extra turn of the
event loop). A cold task makes six engine calls, and that wrapping was a quarter of
ECS's CPU per task (py-spy, docs/performance.md). httpcore takes the network backend as
a parameter; this one is asyncio's own streams, with the same timeouts and the same
httpcore errors, so everything above it (httpx, ``ecs.docker``) is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

# httpcore's socket-option type: (level, option, value) and its buffer-length variant.
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


def _deadline(timeout: float | None) -> contextlib.AbstractAsyncContextManager[Any]:
    """``asyncio.timeout`` for a bounded wait; nothing at all for an unbounded one."""
    return asyncio.timeout(timeout) if timeout is not None else contextlib.nullcontext()


@contextlib.contextmanager
def _mapped(timeout_error: type[Exception], os_error: type[Exception]) -> Iterator[None]:
    """asyncio's errors as the httpcore errors httpx expects from a network stream."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout_error("timed out") from exc
    except OSError as exc:  # reset, refused, broken pipe, no such socket
        raise os_error(str(exc) or type(exc).__name__) from exc


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection: an asyncio stream reader and writer. No TLS: the engine is reached
    over plain HTTP (``ecs.docker.engine_http_client``), so httpcore's ``start_tls``, which
    refuses, stays as it is."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes``; ``b""`` once the other side closed."""
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            async with _deadline(timeout):
                return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send ``buffer``; return once all of it is handed to the kernel (see ``_configured``)."""
        if not buffer:
            return
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            self._writer.write(buffer)
            async with _deadline(timeout):
                await self._writer.drain()

    async def aclose(self) -> None:
        """Hang up now, both ways, dropping whatever is still unsent (as anyio's close does).

        A plain ``close`` would first wait to send the transport's buffer, and a task that
        never reads its stdin never takes it: the connection would outlive its task.
        """
        self._writer.transport.abort()

    def get_extra_info(self, info: str) -> Any:
        """What httpcore asks of a connection: mainly whether an idle one is still usable."""
        if info == "is_readable":
            # An idle keep-alive connection that is readable was closed by the engine (or
            # is broken), and httpcore must not send on it.
            return (
                self._reader.at_eof()
                or self._reader.exception() is not None
                or self._writer.is_closing()
            )
        if info == "transport":  # for a half-close (ecs.hijack)
            return self._writer.transport
        if info == "socket":
            return self._writer.get_extra_info("socket")
        return None  # e.g. "ssl_object": the engine connection is plain HTTP


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections on asyncio's streams: unix sockets and TCP."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to ``host:port`` (asyncio sets TCP_NODELAY itself)."""
        local = (local_address, 0) if local_address else None
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with _deadline(timeout):
                reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        return _configured(reader, writer, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the unix socket at ``path``."""
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with _deadline(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        return _configured(reader, writer, socket_options)

    async def sleep(self, seconds: float) -> None:
        """httpcore's pause between connection retries."""
        await asyncio.sleep(seconds)


def _configured(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    socket_options: Iterable[SocketOption] | None,
) -> AsyncioStream:
    # A write waits until the transport's buffer is empty, not merely under 64 KiB: a
    # stream is closed by aborting it (``aclose``), and a task's stdin written just before
    # its close must all be on its way by then.
    writer.transport.set_write_buffer_limits(high=0)
    sock = writer.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
    return AsyncioStream(reader, writer)


class EngineTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP/1.1 transport, with its connection pool on ``AsyncioBackend``."""

    def __init__(self, *, limits: httpx.Limits, uds: str | None = None) -> None:
        super().__init__(limits=limits, uds=uds)
        # httpx offers no parameter for the network backend, so the pool it built is
        # replaced by the same httpcore pool with the backend added (httpx is pinned below
        # 0.29, where ``_pool`` is what ``handle_async_request`` sends through).
        self._pool = httpcore.AsyncConnectionPool(
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            uds=uds,
            network_backend=AsyncioBackend(),
        )
