"""The signalfx client wrapper: validation, the real client on the wire, dry-run output."""

from __future__ import annotations

import io
import json
import math
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_ingest import FakeIngest
from pydantic import SecretStr
from structlog.testing import capture_logs

from statusbridge.exceptions import InvalidDatapointError
from statusbridge.forwarding.signalfx import (
    Datapoint,
    DryRunSink,
    MetricType,
    SignalFxSink,
    validate,
)

T0 = 1_700_000_000_000
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def ingest() -> Iterator[FakeIngest]:
    """A fake SignalFx ingest endpoint on 127.0.0.1."""
    with FakeIngest() as receiver:
        yield receiver


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def gauge(value: object = 1.0, **dimensions: object) -> Datapoint:
    """A gauge datapoint with arbitrary (possibly invalid) value and dimensions."""
    return Datapoint("ecs.test", MetricType.GAUGE, value, T0, dimensions)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("datapoint", "reason"),
    [
        (gauge(True), "not an int or float"),
        (gauge(None), "not an int or float"),
        (gauge("3"), "not an int or float"),
        (gauge(math.nan), "not finite"),
        (gauge(math.inf), "not finite"),
        (gauge(2**63), "does not fit int64"),
        (gauge(status=200), "must be a non-empty string"),
        (gauge(route=""), "must be a non-empty string"),
        (gauge(**{"k" * 129: "v"}), "longer than 128"),
        (gauge(route="r" * 129), "longer than 128"),
        (Datapoint("m" * 257, MetricType.GAUGE, 1, T0, {}), "longer than 256"),
        (Datapoint("", MetricType.GAUGE, 1, T0, {}), "non-empty string"),
        (Datapoint("ecs.t", MetricType.GAUGE, 1, 0, {}), "positive int"),
    ],
)
def test_validate_rejects(datapoint: Datapoint, reason: str) -> None:
    """Values that are bool/None/non-finite and over-long or non-string names are refused."""
    with pytest.raises(InvalidDatapointError, match=reason):
        validate(datapoint)


def test_validate_accepts_the_limits() -> None:
    """A 256-character metric name and 128-character dimension keys and values pass."""
    validate(Datapoint("m" * 256, MetricType.COUNTER, 2**63 - 1, T0, {"k" * 128: "v" * 128}))
    validate(gauge(-0.5, route="/v1.1/tasks"))


def test_real_client_sends_names_types_values_and_dimensions(ingest: FakeIngest) -> None:
    """The real client puts each type, value, timestamp and dimension on the wire intact."""
    sink = SignalFxSink(token=SecretStr("s3cret"), ingest_endpoint=ingest.endpoint)
    handed = sink.send(
        [
            Datapoint("ecs.tasks.in.flight", MetricType.GAUGE, 2.5, T0, {"node": "n1"}),
            Datapoint("ecs.http.requests", MetricType.CUMULATIVE_COUNTER, 41, T0, {"route": "/"}),
            Datapoint("ecs.delta", MetricType.COUNTER, 3, T0 + 1, {}),
        ]
    )
    sink.close()
    assert handed == 3
    received = {dp.metric: dp for dp in ingest.datapoints}
    assert received["ecs.tasks.in.flight"].metric_type == "GAUGE"
    assert received["ecs.tasks.in.flight"].value == 2.5
    assert received["ecs.tasks.in.flight"].dimensions == {"node": "n1"}
    assert received["ecs.tasks.in.flight"].timestamp == T0
    assert received["ecs.http.requests"].metric_type == "CUMULATIVE_COUNTER"
    assert received["ecs.http.requests"].value == 41
    assert received["ecs.http.requests"].dimensions == {"route": "/"}
    assert received["ecs.delta"].metric_type == "COUNTER"
    assert received["ecs.delta"].timestamp == T0 + 1
    (request,) = ingest.requests
    assert request.path == "/v2/datapoint"
    assert request.headers["x-sf-token"] == "s3cret"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert ingest.errors == []


def test_invalid_datapoints_are_dropped_counted_and_logged(ingest: FakeIngest) -> None:
    """One bad datapoint is logged and skipped; the valid ones in the same call still go out."""
    sink = SignalFxSink(token="t", ingest_endpoint=ingest.endpoint)
    with capture_logs() as logs:
        handed = sink.send([gauge(True), gauge(1.0, node="n1"), gauge(status=500)])
    sink.close()
    assert handed == 1
    assert (sink.handed_over, sink.rejected) == (1, 2)
    assert [dp.dimensions for dp in ingest.datapoints] == [{"node": "n1"}]
    rejected = [entry for entry in logs if entry["event"] == "signalfx_datapoint_rejected"]
    assert len(rejected) == 2
    assert rejected[0]["log_level"] == "warning"


def test_client_errors_are_logged_and_counted() -> None:
    """A batch the client's thread failed to POST is counted and shows up in a log line."""
    sink = SignalFxSink(token="t", ingest_endpoint=f"http://127.0.0.1:{closed_port()}", timeout_s=2)
    with capture_logs() as logs:
        sink.send([gauge(1.0)])
        sink.close()
    assert sink.client_errors == 1
    # The thread may fail before or after the cycle's log line; either way it is logged once.
    logged = [entry["client_errors"] for entry in logs if "client_errors" in entry]
    assert sum(errors.get("ConnectionError", 0) for errors in logged) == 1


class StubClient:
    """Stands in for the signalfx client where its thread timing would make a test racy."""

    def __init__(self, errors: dict[str, int]) -> None:
        self.errors = errors
        self.sent: list[dict[str, list[dict[str, object]]]] = []
        self.stopped = False

    def send(self, **kwargs: list[dict[str, object]]) -> None:
        self.sent.append(kwargs)

    def reset_error_counters(self) -> dict[str, int]:
        errors, self.errors = self.errors, {}
        return errors

    def stop(self) -> None:
        self.stopped = True


def test_cycle_log_reports_client_error_counters() -> None:
    """Each send logs the client's error counters at warning level when there are any."""
    sink = SignalFxSink(token="t", ingest_endpoint="http://127.0.0.1:9")
    stub = StubClient({"ConnectionError": 2})
    sink._client = stub
    with capture_logs() as logs:
        sink.send([gauge(1.0)])
        sink.send([gauge(2.0)])
    cycles = [entry for entry in logs if entry["event"] == "signalfx_cycle"]
    assert [c["client_errors"] for c in cycles] == [{"ConnectionError": 2}, {}]
    assert [c["log_level"] for c in cycles] == ["warning", "info"]
    assert sink.client_errors == 2
    assert [len(call["gauges"]) for call in stub.sent] == [1, 1]
    sink.close()
    assert stub.stopped


def test_a_refused_token_is_an_error_not_a_delivery(ingest: FakeIngest) -> None:
    """A 401 from ingest is counted, logged once as an error and kept as auth_error."""
    ingest.status = 401
    sink = SignalFxSink(token="wrong", ingest_endpoint=ingest.endpoint)
    with capture_logs() as logs:
        sink.send([gauge(1.0)])
        sink.close()
    assert len(ingest.requests) == 1
    assert (sink.handed_over, sink.client_errors) == (1, 1)
    assert sink.auth_error == "SignalFx ingest refused the token (HTTP 401)"
    assert sink.dropped == {"shutdown": 1}
    refused = [e for e in logs if e["event"] == "signalfx_token_refused"]
    assert [e["log_level"] for e in refused] == ["error"]


def test_token_never_appears_in_repr_or_logs(ingest: FakeIngest) -> None:
    """The SignalFx token is neither in the sink's repr nor in anything it logs."""
    sink = SignalFxSink(token=SecretStr("tok-123456"), ingest_endpoint=ingest.endpoint)
    with capture_logs() as logs:
        sink.send([gauge(1.0)])
        sink.close()
    assert "tok-123456" not in repr(sink)
    assert "tok-123456" not in repr(logs)


def test_close_flushes_and_is_idempotent(ingest: FakeIngest) -> None:
    """close() returns only after queued datapoints were posted, and may be called twice."""
    sink = SignalFxSink(token="t", ingest_endpoint=ingest.endpoint)
    sink.send([gauge(float(i), i=str(i)) for i in range(650)])
    sink.close()
    sink.close()
    assert len(ingest.datapoints) == 650
    # The client posts at most 300 datapoints per request.
    assert max(ingest.batches) <= 300


def test_dry_run_prints_json_lines() -> None:
    """The dry-run sink prints one JSON object per valid datapoint and skips invalid ones."""
    out = io.StringIO()
    sink = DryRunSink(out)
    handed = sink.send(
        [
            Datapoint("ecs.up", MetricType.GAUGE, 1, T0, {"node": "n1", "environment": "dev"}),
            gauge(None),
            Datapoint("ecs.http.requests", MetricType.CUMULATIVE_COUNTER, 3, T0, {}),
        ]
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert handed == 2
    assert lines == [
        {
            "metric": "ecs.up",
            "type": "gauge",
            "value": 1,
            "timestamp": T0,
            "dimensions": {"environment": "dev", "node": "n1"},
        },
        {
            "metric": "ecs.http.requests",
            "type": "cumulative_counter",
            "value": 3,
            "timestamp": T0,
            "dimensions": {},
        },
    ]


def test_import_and_client_construction_are_warning_free() -> None:
    """Importing the wrapper and building the protobuf client raise no warning under -W error."""
    code = (
        "from statusbridge.forwarding.signalfx import SignalFxSink\n"
        "sink = SignalFxSink(token='t', ingest_endpoint='http://127.0.0.1:9')\n"
        "import signalfx.ingest\n"
        "print(isinstance(sink._client, signalfx.ingest.ProtoBufSignalFxIngestClient))\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert result.stderr == ""
