"""A connection the engine upgraded to a raw two-way stream (attach with stdin, exec).

What goes in is the task's stdin; what comes out is its multiplexed output. Closing the
write side alone (a half-close) is the end-of-file the task reads while its output still
arrives, which an exec needs; closing the whole stream ends both.
"""

from __future__ import annotations

import contextlib
import socket

import httpcore

from ecs.exceptions import EngineUnreachable

_CHUNK = 64 * 1024


class HijackedStream:
    """Writes, a half-close, reads and a close on one upgraded engine connection."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._closed = False

    async def write(self, data: bytes) -> None:
        """Write ``data`` in chunks; EngineUnreachable when the other side is gone."""
        try:
            for start in range(0, len(data), _CHUNK):
                await self._stream.write(data[start : start + _CHUNK])
        except (OSError, httpcore.NetworkError) as exc:
            raise EngineUnreachable(f"stream closed: {exc}") from exc

    def close_write(self) -> None:
        """Half-close: the other side reads end-of-file; reading goes on."""
        # On ECS's engine transport (ecs.engine_network): the asyncio transport's half-close
        # sends what it still buffers first, where a raw shutdown would cut it off.
        transport = self._stream.get_extra_info("transport")
        if transport is not None:
            with contextlib.suppress(OSError, RuntimeError):  # already closed
                transport.write_eof()
            return
        raw = self._stream.get_extra_info("socket")  # any other httpcore stream
        if isinstance(raw, socket.socket):
            with contextlib.suppress(OSError):  # already closed is closed enough
                raw.shutdown(socket.SHUT_WR)

    async def read(self) -> bytes:
        """The next bytes; ``b""`` once the engine closed the stream."""
        try:
            return await self._stream.read(_CHUNK)
        except (OSError, httpcore.NetworkError):
            return b""

    async def close(self) -> None:
        """Hang up both ways."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):  # already broken is closed enough
                await self._stream.aclose()
