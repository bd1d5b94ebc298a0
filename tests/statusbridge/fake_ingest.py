"""An in-process SignalFx ingest receiver on 127.0.0.1 for tests and the benchmark.

It is a real HTTP server in a thread: it accepts ``POST /v2/datapoint`` the way SignalFx
ingest does, gunzips the body and decodes the protobuf ``DataPointUploadMessage`` with the
generated module shipped inside the ``signalfx`` package, so tests see exactly what the
real client put on the wire.
"""

from __future__ import annotations

import gzip
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

with warnings.catch_warnings():
    # The generated protobuf 3 module warns on import under protobuf 3.20.
    warnings.filterwarnings(
        "ignore", message="Call to deprecated create function", category=DeprecationWarning
    )
    from signalfx.generated_protocol_buffers import (
        signal_fx_protocol_buffers_pb2 as sf_pbuf,
    )

_METRIC_TYPES = {0: "GAUGE", 1: "COUNTER", 2: "ENUM", 3: "CUMULATIVE_COUNTER"}


@dataclass(frozen=True)
class ReceivedDatapoint:
    """One datapoint as decoded from the wire."""

    metric: str
    metric_type: str
    value: int | float | str
    timestamp: int
    dimensions: dict[str, str]
    received_at: float = field(compare=False)


@dataclass(frozen=True)
class ReceivedRequest:
    """One POST as seen by the receiver (headers are lower-cased)."""

    path: str
    headers: dict[str, str]
    datapoint_count: int


def _decode_value(datum: Any) -> int | float | str:
    # Datum is proto2 with three optional fields, not a oneof: take the one that was set.
    for name in ("intValue", "doubleValue", "strValue"):
        if datum.HasField(name):
            return getattr(datum, name)  # type: ignore[no-any-return]
    raise ValueError("datapoint without a value")


def decode_upload(body: bytes, *, gzipped: bool) -> list[ReceivedDatapoint]:
    """Decode one ``DataPointUploadMessage`` body into plain datapoints."""
    if gzipped:
        body = gzip.decompress(body)
    message = sf_pbuf.DataPointUploadMessage()
    message.ParseFromString(body)
    now = time.monotonic()
    return [
        ReceivedDatapoint(
            metric=dp.metric,
            metric_type=_METRIC_TYPES[dp.metricType],
            value=_decode_value(dp.value),
            timestamp=dp.timestamp,
            dimensions={d.key: d.value for d in dp.dimensions},
            received_at=now,
        )
        for dp in message.datapoints
    ]


class FakeIngest:
    """A SignalFx ingest endpoint on 127.0.0.1 that records every datapoint it decodes.

    Use it as a context manager; ``endpoint`` is the base URL to give the client.
    ``status`` is the HTTP status answered to every POST (SignalFx answers 200).
    """

    def __init__(self, *, status: int = 200) -> None:
        self.status = status
        self._lock = threading.Condition()
        self._datapoints: list[ReceivedDatapoint] = []
        self._requests: list[ReceivedRequest] = []
        self.errors: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            # A short poll interval keeps shutdown() (and test teardown) quick.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-ingest",
            daemon=True,
        )

    @property
    def endpoint(self) -> str:
        """The base URL of this receiver, e.g. ``http://127.0.0.1:53211``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def datapoints(self) -> list[ReceivedDatapoint]:
        """A snapshot of every datapoint received so far."""
        with self._lock:
            return list(self._datapoints)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of every POST received so far."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget what was received so far."""
        with self._lock:
            self._datapoints.clear()
            self._requests.clear()

    def wait_for(
        self,
        predicate: Callable[[list[ReceivedDatapoint]], bool],
        *,
        timeout: float = 10.0,
    ) -> list[ReceivedDatapoint]:
        """Block until ``predicate(datapoints)`` holds, then return the datapoints."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self._datapoints):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"fake ingest: condition not met, {len(self._datapoints)} datapoints"
                    )
                self._lock.wait(remaining)
            return list(self._datapoints)

    def wait_for_count(self, count: int, *, timeout: float = 10.0) -> list[ReceivedDatapoint]:
        """Block until at least ``count`` datapoints arrived."""
        return self.wait_for(lambda dps: len(dps) >= count, timeout=timeout)

    def _record(self, request: ReceivedRequest, datapoints: list[ReceivedDatapoint]) -> None:
        with self._lock:
            self._requests.append(request)
            self._datapoints.extend(datapoints)
            self._lock.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                datapoints: list[ReceivedDatapoint] = []
                status = receiver.status
                if self.path.rstrip("/").endswith("/v2/datapoint"):
                    gzipped = headers.get("content-encoding") == "gzip"
                    try:
                        datapoints = decode_upload(body, gzipped=gzipped)
                    except Exception as exc:  # a malformed upload is a test failure to surface
                        receiver.errors.append(repr(exc))
                        status = 400
                receiver._record(ReceivedRequest(self.path, headers, len(datapoints)), datapoints)
                payload = b'"OK"' if status == 200 else b'"error"'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                # Keep test output quiet; the receiver records what matters.
                return

        return Handler

    def start(self) -> FakeIngest:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FakeIngest:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
