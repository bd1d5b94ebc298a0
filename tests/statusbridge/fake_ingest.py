"""An in-process SignalFx ingest receiver on 127.0.0.1 for tests and the benchmark.

It is a real HTTP server in a thread (a :class:`FakeServer`): it accepts
``POST /v2/datapoint`` the way SignalFx ingest does, gunzips the body and decodes the
protobuf ``DataPointUploadMessage`` with the generated module shipped inside the
``signalfx`` package, so tests see exactly what the real client put on the wire.
"""

from __future__ import annotations

import gzip
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.statusbridge.fake_server import FakeServer, Request, Response

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


class FakeIngest(FakeServer):
    """A SignalFx ingest endpoint on 127.0.0.1 that records every datapoint it decodes.

    Use it as a context manager; ``endpoint`` is the base URL to give the client.
    ``status`` is the HTTP status answered to every POST (SignalFx answers 200), unless
    ``script`` holds statuses to answer first, one per POST (e.g. ``[401, 500, 500]``);
    ``batches`` holds the number of datapoints of each upload, ``statuses`` what each
    was answered. ``datapoints`` is everything decoded, ``accepted`` only what came in
    uploads answered 2xx — what SignalFx would have kept.
    """

    def __init__(self, *, status: int = 200) -> None:
        self.status = status
        self.script: list[int] = []
        self.statuses: list[int] = []
        self._accepted: list[ReceivedDatapoint] = []
        self._datapoints: list[ReceivedDatapoint] = []
        self.batches: list[int] = []
        self.errors: list[str] = []
        super().__init__()

    @property
    def endpoint(self) -> str:
        """The base URL of this receiver, e.g. ``http://127.0.0.1:53211``."""
        return self.url

    @property
    def datapoints(self) -> list[ReceivedDatapoint]:
        """A snapshot of every datapoint received so far."""
        with self.lock:
            return list(self._datapoints)

    @property
    def accepted(self) -> list[ReceivedDatapoint]:
        """A snapshot of the datapoints of uploads answered 2xx."""
        with self.lock:
            return list(self._accepted)

    def clear(self) -> None:
        """Forget what was received so far."""
        with self.lock:
            self._accepted.clear()
            self.statuses.clear()
            self._datapoints.clear()
            self.batches.clear()
            self.requests.clear()

    def wait_for(
        self,
        predicate: Callable[[list[ReceivedDatapoint]], bool],
        *,
        timeout: float = 10.0,
    ) -> list[ReceivedDatapoint]:
        """Block until ``predicate(datapoints)`` holds, then return the datapoints."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(self._datapoints):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"fake ingest: condition not met, {len(self._datapoints)} datapoints"
                    )
                self.lock.wait(remaining)
            return list(self._datapoints)

    def wait_for_count(self, count: int, *, timeout: float = 10.0) -> list[ReceivedDatapoint]:
        """Block until at least ``count`` datapoints arrived."""
        return self.wait_for(lambda dps: len(dps) >= count, timeout=timeout)

    def handle(self, request: Request) -> Response:
        """Decode an upload to ``/v2/datapoint`` and answer ``status``, as ingest does."""
        datapoints: list[ReceivedDatapoint] = []
        status = self.script.pop(0) if self.script else self.status
        if request.path.rstrip("/").endswith("/v2/datapoint"):
            gzipped = request.headers.get("content-encoding") == "gzip"
            try:
                datapoints = decode_upload(request.raw, gzipped=gzipped)
            except Exception as exc:  # a malformed upload is a test failure to surface
                self.errors.append(repr(exc))
                status = 400
        self._datapoints.extend(datapoints)
        if 200 <= status < 300:
            self._accepted.extend(datapoints)
        self.statuses.append(status)
        self.batches.append(len(datapoints))
        self.lock.notify_all()
        return Response(status, "OK" if status == 200 else "error")
