"""The ``signalfx`` ingest client with its HTTP answers handled, and a bounded buffer.

``signalfx`` (1.1.16) keeps the wire format here: its protobuf client encodes each
datapoint (``_add_to_queue``), serializes a batch (``_batch_data``) and holds the
``requests`` session with the ingest headers (``X-SF-Token``, ``User-Agent``,
protobuf, gzip). What it does wrong is replaced: its send thread logs HTTP errors at
debug level and drops the batch, and counts a 401 as delivered.

:class:`BufferedIngestClient`'s thread instead keeps every datapoint in a buffer until
ingest answers 2xx, oldest first, at most :data:`~statusbridge.forwarding.signalfx.
MAX_BATCH` a POST:

- 5xx, 408, 429 and transport errors are retried with exponential backoff; the buffer
  holds the datapoints of the last ``buffer_s`` seconds (by when they were handed
  over), so a short outage loses nothing and a long one loses the oldest, counted in
  ``dropped["expired"]``;
- 401 and 403 (a refused token) are retried the same way, and set ``auth_error``, which
  turns the daemon's /health red; the error is logged once per transition;
- any other 4xx refuses the batch itself: it is dropped, counted in
  ``dropped["refused"]`` and logged;
- ``stop()`` flushes what is buffered unless ingest is failing; what is left is
  counted in ``dropped["shutdown"]``.

Every failed POST is also counted by kind (``ConnectionError``, ``HTTP 503``) in the
package's own error counters (``reset_error_counters()``).
"""

from __future__ import annotations

import collections
import queue
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import requests
import structlog

with warnings.catch_warnings():
    # signalfx's protobuf 3 generated module calls descriptor factories protobuf deprecates;
    # the warning is filtered here, at the one import of the client, and nowhere else.
    warnings.filterwarnings(
        "ignore", message="Call to deprecated create function", category=DeprecationWarning
    )
    from signalfx.ingest import ProtoBufSignalFxIngestClient

log = structlog.get_logger(__name__)

MAX_BATCH = 300  # what the package posts at most, and SignalFx's documented batch size
_COMPRESSION_LEVEL = 8  # the package's
_RETRIED = frozenset({408, 429})
_AUTH = frozenset({401, 403})


class BufferedIngestClient(ProtoBufSignalFxIngestClient):  # type: ignore[misc]
    """The package's protobuf client with statusbridge's sending thread (see module)."""

    def __init__(
        self,
        token: str,
        *,
        endpoint: str,
        timeout: float = 5.0,
        buffer_s: float = 600.0,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(token, endpoint=endpoint, timeout=timeout, batch_size=MAX_BATCH)
        # (when it arrived on ``clock``, the package's protobuf DataPoint), oldest first.
        self._buffer: collections.deque[tuple[float, Any]] = collections.deque()
        self._buffer_s = buffer_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._clock = clock
        self._backoff_s = retry_initial_s
        self._retry_at = 0.0
        self._failing = False
        self._stopping = False
        self._state = threading.Lock()
        self._dropped: collections.Counter[str] = collections.Counter()
        self.auth_error: str | None = None
        self._thread_running: bool = False  # the package's flag, typed

    # -- what the sink reads -----------------------------------------------------------

    @property
    def dropped(self) -> Mapping[str, int]:
        """Datapoints lost so far, by reason (expired, refused, shutdown)."""
        with self._state:
            return dict(self._dropped)

    @property
    def buffered(self) -> int:
        """Datapoints waiting for ingest to accept them."""
        with self._state:
            return len(self._buffer)

    # -- the thread --------------------------------------------------------------------

    def stop(self) -> None:
        """Flush (unless ingest is failing), stop the thread, count what is left."""
        with self._lock:
            if not self._thread_running:
                return
            self._thread_running = False
        self._queue.put(self._QUEUE_STOP)
        # A flush posts at most a few batches; each POST is bounded by the timeout.
        self._send_thread.join(timeout=max(30.0, 4 * self._timeout))
        if self._send_thread.is_alive():
            log.warning("signalfx_stop_timed_out", buffered=self.buffered)

    def _send(self) -> None:
        while True:
            self._collect(self._wait_s())
            with self._state:
                self._expire()
                pending = len(self._buffer)
            if self._stopping and (not pending or self._failing):
                self._drop_rest()
                return
            if not pending or time.monotonic() < self._retry_at:
                continue
            self._post_next()

    def _wait_s(self) -> float | None:
        """How long to wait for new datapoints: until the next retry, or indefinitely
        (not at all once stopping: the stop marker has been taken already)."""
        if self._stopping:
            return 0.0
        with self._state:
            if not self._buffer:
                return None
        return max(0.0, self._retry_at - time.monotonic())

    def _collect(self, wait_s: float | None) -> None:
        """Move queued datapoints into the buffer, waiting up to ``wait_s`` for the first."""
        try:
            item = self._queue.get(timeout=wait_s) if wait_s != 0 else self._queue.get_nowait()
        except queue.Empty:
            return
        while True:
            if item is self._QUEUE_STOP:
                self._stopping = True
            else:
                with self._state:
                    self._buffer.append((self._clock(), item))
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return

    def _expire(self) -> None:
        """Drop datapoints older than the buffer holds (called with ``_state`` held)."""
        cutoff = self._clock() - self._buffer_s
        expired = 0
        while self._buffer and self._buffer[0][0] < cutoff:
            self._buffer.popleft()
            expired += 1
        if expired:
            self._dropped["expired"] += expired
            log.warning(
                "signalfx_datapoints_dropped",
                reason="expired",
                count=expired,
                buffer_s=self._buffer_s,
            )

    def _drop_rest(self) -> None:
        with self._state:
            left = len(self._buffer)
            self._buffer.clear()
            if left:
                self._dropped["shutdown"] += left
        if left:
            log.warning("signalfx_datapoints_dropped", reason="shutdown", count=left)

    def _post_next(self) -> None:
        with self._state:
            batch = [self._buffer[i][1] for i in range(min(MAX_BATCH, len(self._buffer)))]
        outcome = self._post_batch(batch)
        if isinstance(outcome, int) and 200 <= outcome < 300:
            self._accepted(len(batch))
        elif (
            isinstance(outcome, int) and 400 <= outcome < 500 and outcome not in (_AUTH | _RETRIED)
        ):
            self._refused(outcome, len(batch))
        else:
            self._failed(outcome)

    def _post_batch(self, batch: list[Any]) -> int | Exception:
        """POST one batch as the package would; its status, or the exception it raised."""
        data = self._batch_data(batch)
        compressor = zlib.compressobj(_COMPRESSION_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        body = compressor.compress(data) + compressor.flush()
        url = f"{self._endpoint}/{self._INGEST_ENDPOINT_DATAPOINT_SUFFIX}"
        try:
            response = self._session.post(url, data=body, timeout=self._timeout)
        except requests.RequestException as exc:
            if isinstance(exc, requests.ConnectionError):
                self._reconnect()
            return exc
        return int(response.status_code)

    def _accepted(self, count: int) -> None:
        with self._state:
            for _ in range(count):
                self._buffer.popleft()
        if self.auth_error is not None:
            log.info("signalfx_token_accepted")
            self.auth_error = None
        if self._failing:
            log.info("signalfx_ingest_recovered", buffered=self.buffered)
        self._failing = False
        self._backoff_s = self._retry_initial_s
        self._retry_at = 0.0

    def _refused(self, status: int, count: int) -> None:
        self._inc_error(f"HTTP {status}")
        with self._state:
            for _ in range(count):
                self._buffer.popleft()
            self._dropped["refused"] += count
        log.warning("signalfx_datapoints_dropped", reason="refused", status=status, count=count)

    def _failed(self, outcome: int | Exception) -> None:
        kind = f"HTTP {outcome}" if isinstance(outcome, int) else type(outcome).__name__
        self._inc_error(kind)
        if isinstance(outcome, int) and outcome in _AUTH:
            if self.auth_error is None:
                self.auth_error = f"SignalFx ingest refused the token (HTTP {outcome})"
                log.error("signalfx_token_refused", status=outcome)
        elif not self._failing:
            log.warning("signalfx_ingest_failing", error=kind, buffered=self.buffered)
        self._failing = True
        self._retry_at = time.monotonic() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, self._retry_max_s)
