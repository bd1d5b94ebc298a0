"""Docker's multiplexed log stream, split back into stdout and stderr, with no IO.

A container created without a TTY has its logs framed: each frame is an 8-byte header
(stream byte 0/1/2, three zero bytes, big-endian uint32 length) followed by that many
bytes. Frames arrive split across network chunks at arbitrary points, so the demuxer
is incremental, and it keeps only the first ``cap`` bytes of each stream so that a task
printing 100 MiB costs ECS no more than the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEADER_SIZE = 8
STDOUT = 1
STDERR = 2


class MalformedStream(ValueError):
    """The bytes do not follow Docker's frame format."""


@dataclass
class CappedBuffer:
    """The beginning of one output stream, up to ``cap`` bytes."""

    cap: int
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    def append(self, chunk: bytes | memoryview) -> None:
        """Keep what fits under the cap and remember whether anything was dropped."""
        room = self.cap - len(self.data)
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        self.data += chunk


class LogDemuxer:
    """Feed it chunks of a multiplexed log stream; read ``stdout`` and ``stderr``."""

    def __init__(self, cap_per_stream: int) -> None:
        self.stdout = CappedBuffer(cap_per_stream)
        self.stderr = CappedBuffer(cap_per_stream)
        self._pending = bytearray()
        self._frame_stream: int | None = None
        self._frame_left = 0

    def feed(self, chunk: bytes) -> None:
        """Consume one chunk; frames may start and end anywhere inside it."""
        view = memoryview(chunk)
        while view:
            if self._frame_left:
                take = min(self._frame_left, len(view))
                self._route(view[:take])
                self._frame_left -= take
                view = view[take:]
                continue
            need = HEADER_SIZE - len(self._pending)
            self._pending += view[:need]
            view = view[need:]
            if len(self._pending) == HEADER_SIZE:
                self._start_frame(bytes(self._pending))
                self._pending.clear()

    def close(self) -> None:
        """Check the stream ended on a frame boundary."""
        if self._pending or self._frame_left:
            raise MalformedStream("log stream ended in the middle of a frame")

    def _start_frame(self, header: bytes) -> None:
        stream = header[0]
        if stream not in (0, STDOUT, STDERR) or header[1:4] != b"\0\0\0":
            raise MalformedStream(f"bad frame header {header.hex()}")
        self._frame_stream = stream
        self._frame_left = int.from_bytes(header[4:8], "big")

    def _route(self, payload: memoryview) -> None:
        if self._frame_stream == STDOUT:
            self.stdout.append(payload)
        elif self._frame_stream == STDERR:
            self.stderr.append(payload)
