"""The forwarding job end to end: a real exposition over HTTP → the real signalfx client."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fake_ecs import EcsMetrics, MetricsServer
from fake_ingest import FakeIngest, ReceivedDatapoint
from structlog.testing import capture_logs

from ecs.metrics import STAGES
from statusbridge.app import open_jobs
from statusbridge.config import Config
from statusbridge.daemon import Daemon
from statusbridge.exceptions import ConfigError, ForwardingError
from statusbridge.forwarding import (
    DryRunSink,
    ForwardingJob,
    SignalFxSink,
    Target,
    build_forwarding_job,
)
from statusbridge.metrics import StatusBridgeMetrics

NOW = 1_700_000_000.0
STATIC = {"environment": "test", "service": "ecs"}


class Clock:
    """A hand-moved clock, used both as wall time and as the monotonic clock."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def closed_port_url() -> str:
    """A /metrics URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/metrics"


@pytest.fixture
def ecs() -> Iterator[MetricsServer]:
    """An ECS-like /metrics server on 127.0.0.1 with every ECS series populated."""
    metrics = EcsMetrics()
    metrics.populate()
    with MetricsServer(metrics) as server:
        yield server


@pytest.fixture
def ingest() -> Iterator[FakeIngest]:
    """A fake SignalFx ingest endpoint on 127.0.0.1."""
    with FakeIngest() as receiver:
        yield receiver


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The injected outbound HTTP client."""
    async with httpx.AsyncClient() as client:
        yield client


def find(
    datapoints: list[ReceivedDatapoint], metric: str, **dimensions: str
) -> list[ReceivedDatapoint]:
    """The datapoints named ``metric`` whose dimensions include ``dimensions``."""
    return [
        dp
        for dp in datapoints
        if dp.metric == metric and dimensions.items() <= dp.dimensions.items()
    ]


async def test_real_exposition_reaches_signalfx_with_types_values_and_dimensions(
    ecs: MetricsServer, ingest: FakeIngest, http: httpx.AsyncClient
) -> None:
    """Two scrapes of real ECS metrics arrive as typed, dimensioned SignalFx datapoints."""
    clock = Clock()
    sink = SignalFxSink(token="t", ingest_endpoint=ingest.endpoint)
    job = ForwardingJob(
        [Target(ecs.url, ecs.node)],
        http_client=http,
        sink=sink,
        dimensions=STATIC,
        clock=clock,
        monotonic=clock,
    )
    await job.run_once()
    first = ingest.wait_for(lambda dps: any(dp.metric == "ecs.up" for dp in dps))
    ecs.metrics.requests.labels("POST", "/v1.1/tasks", "201").inc(5)
    for _ in range(10):
        ecs.metrics.request_duration.labels("/v1.1/tasks").observe(0.03)
    ecs.metrics.in_flight.set(7)
    clock.now += 10
    await job.run_once()
    await job.aclose()
    second = [dp for dp in ingest.datapoints if dp.timestamp == int((NOW + 10) * 1000)]
    node = {"node": ecs.node, **STATIC}

    (up,) = find(first, "ecs.up")
    assert (up.metric_type, up.value, up.dimensions) == ("GAUGE", 1, node)
    assert up.timestamp == int(NOW * 1000)
    assert not find(first, "ecs.http.request.duration.seconds.p50")

    (requests,) = find(second, "ecs.http.requests", route="/v1.1/tasks", status="201")
    assert requests.metric_type == "CUMULATIVE_COUNTER"
    assert requests.value == 3 + 5
    assert requests.dimensions == {"method": "POST", "route": "/v1.1/tasks", "status": "201"} | node
    # All ten new observations lie in (0.025, 0.05]: rank q*10 of 10 in that bucket.
    route = {"route": "/v1.1/tasks"}
    for suffix, expected in (("p50", 0.0375), ("p90", 0.0475), ("p99", 0.04975)):
        (point,) = find(second, f"ecs.http.request.duration.seconds.{suffix}", **route)
        assert point.metric_type == "GAUGE"
        assert point.value == pytest.approx(expected)
        assert point.dimensions == route | node
    # Routes without new requests get no percentile gauges, only count and sum.
    assert not find(second, "ecs.http.request.duration.seconds.p50", route="/docs")
    (count,) = find(second, "ecs.http.request.duration.seconds.count", route="/v1.1/tasks")
    assert (count.metric_type, count.value) == ("CUMULATIVE_COUNTER", 20)
    (in_flight,) = find(second, "ecs.tasks.in.flight")
    assert (in_flight.metric_type, in_flight.value) == ("GAUGE", 7.0)
    assert len(find(second, "ecs.task.stage.duration.seconds.sum")) == len(STAGES)
    assert {dp.dimensions["outcome"] for dp in find(second, "ecs.tasks")} >= {"oom_killed"}
    assert {dp.dimensions["kind"] for dp in find(second, "ecs.engine.errors")} >= {"timeout"}
    assert find(second, "ecs.containers.reaped")[0].value == 4
    assert find(second, "ecs.tasks.queued")[0].metric_type == "GAUGE"
    assert not [dp for dp in ingest.datapoints if "created" in dp.metric]
    assert ecs.accept_headers[0].startswith("text/plain;version=0.0.4")
    assert ingest.errors == []


async def test_one_target_down_the_other_still_forwarded(
    ecs: MetricsServer, http: httpx.AsyncClient
) -> None:
    """A refused target is ``ecs.up`` 0 with its error logged; the other target goes out."""
    out = io.StringIO()
    down = closed_port_url()
    job = ForwardingJob(
        [Target(ecs.url, "good"), Target(down, "bad")], http_client=http, sink=DryRunSink(out)
    )
    with capture_logs() as logs:
        await job.run_once()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    ups = {
        line["dimensions"]["node"]: line["value"] for line in lines if line["metric"] == "ecs.up"
    }
    assert ups == {"good": 1, "bad": 0}
    assert {line["dimensions"]["node"] for line in lines} == {"good", "bad"}
    assert len(lines) > 50
    (warning,) = [entry for entry in logs if entry["event"] == "forwarding_target_down"]
    assert warning["node"] == "bad"
    assert "ConnectError" in warning["error"]


async def test_error_status_and_garbage_mark_the_target_down(
    ecs: MetricsServer, http: httpx.AsyncClient
) -> None:
    """A 404 answer or a non-Prometheus body is a down target too, with the reason logged."""
    out = io.StringIO()
    job = ForwardingJob(
        [Target(ecs.url.replace("/metrics", "/nope"), "n1")], http_client=http, sink=DryRunSink(out)
    )
    with capture_logs() as logs, pytest.raises(ForwardingError):
        await job.run_once()
    assert "HTTP 404" in logs[0]["error"]
    assert [json.loads(line)["value"] for line in out.getvalue().splitlines()] == [0]


async def test_all_targets_down_fails_the_run(http: httpx.AsyncClient) -> None:
    """With every target down the run raises (for /health) after sending ``ecs.up`` 0."""
    out = io.StringIO()
    job = ForwardingJob(
        [Target(closed_port_url(), "a"), Target(closed_port_url(), "b")],
        http_client=http,
        sink=DryRunSink(out),
    )
    with pytest.raises(ForwardingError, match="a, b"):
        await job.run_once()
    assert [json.loads(line)["value"] for line in out.getvalue().splitlines()] == [0, 0]


async def test_restarted_ecs_gives_no_negative_deltas(
    ecs: MetricsServer, http: httpx.AsyncClient
) -> None:
    """After ECS restarts (counters back to 0) percentiles come from the new counts only."""
    out = io.StringIO()
    clock = Clock()
    job = ForwardingJob(
        [Target(ecs.url, "n1")], http_client=http, sink=DryRunSink(out), monotonic=clock
    )
    await job.run_once()
    ecs.metrics = EcsMetrics()
    ecs.metrics.stage_duration.labels("pull").observe(2.0)
    ecs.metrics.stage_duration.labels("pull").observe(3.0)
    out.truncate(0)
    out.seek(0)
    clock.now += 10
    await job.run_once()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all(line["value"] >= 0 for line in lines)
    p50 = [
        line
        for line in lines
        if line["metric"] == "ecs.task.stage.duration.seconds.p50"
        and line["dimensions"].get("stage") == "pull"
    ]
    # 2.0 lies in (1, 2.5] and 3.0 in (2.5, 5]: rank 1 of 2 is the top of (1, 2.5].
    assert [line["value"] for line in p50] == [pytest.approx(2.5)]
    counts = {
        line["dimensions"]["stage"]: line["value"]
        for line in lines
        if line["metric"] == "ecs.task.stage.duration.seconds.count"
    }
    assert counts == {stage: 2 if stage == "pull" else 0 for stage in STAGES}


async def test_targets_are_scraped_on_their_own_interval(http: httpx.AsyncClient) -> None:
    """A target with a longer interval is scraped only when due; the job runs at the shortest."""
    clock = Clock(0.0)
    with MetricsServer() as fast, MetricsServer() as slow:
        job = ForwardingJob(
            [Target(fast.url, "fast", 10), Target(slow.url, "slow", 30)],
            http_client=http,
            sink=DryRunSink(io.StringIO()),
            monotonic=clock,
        )
        assert job.interval_s == 10
        for now in (0.0, 10.2, 19.9, 30.1, 40.0):
            clock.now = now
            await job.run_once()
        assert (len(fast.accept_headers), len(slow.accept_headers)) == (5, 2)


async def test_dry_run_prints_json_lines(
    ecs: MetricsServer, http: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--dry-run`` prints every datapoint as a JSON line on stdout, token or not."""
    config = Config(
        ecs_targets=[{"url": ecs.url, "name": "node-1"}],
        signalfx={"token": "secret-token", "dimensions": STATIC},
    )
    job = build_forwarding_job(config, dry_run=True, http_client=http)
    assert job is not None
    assert isinstance(job.sink, DryRunSink)
    # Unconfigured structlog prints to stdout; the daemon's main() sends logs to stderr.
    with capture_logs():
        await job.run_once()
        await job.aclose()
    stdout = capsys.readouterr().out
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert {"metric", "type", "value", "timestamp", "dimensions"} == set(lines[0])
    up = next(line for line in lines if line["metric"] == "ecs.up")
    assert up["dimensions"] == {"environment": "test", "node": "node-1", "service": "ecs"}
    assert {line["type"] for line in lines} == {"gauge", "cumulative_counter"}
    assert "secret-token" not in stdout


async def test_no_token_means_dry_run(http: httpx.AsyncClient) -> None:
    """Without a SignalFx token the job prints instead of sending, and says so."""
    config = Config(ecs_targets=[{"url": "http://127.0.0.1:8448/metrics"}])
    with capture_logs() as logs:
        job = build_forwarding_job(config, dry_run=False, http_client=http)
    assert job is not None
    assert isinstance(job.sink, DryRunSink)
    assert job.targets == (Target("http://127.0.0.1:8448/metrics", "127.0.0.1:8448", 10.0),)
    assert logs[0]["event"] == "forwarding_dry_run"


async def test_duplicate_target_is_a_config_error(http: httpx.AsyncClient) -> None:
    """The same ECS URL listed twice stops start-up with a message naming the key."""
    url = "http://127.0.0.1:8448/metrics"
    config = Config(ecs_targets=[{"url": url}, {"url": url, "name": "again"}])
    with pytest.raises(ConfigError, match="ecs_targets: url listed twice"):
        build_forwarding_job(config, dry_run=True, http_client=http)


async def test_no_targets_no_job(http: httpx.AsyncClient) -> None:
    """Without ``[[ecs_targets]]`` there is nothing to forward."""
    assert build_forwarding_job(Config(), dry_run=True, http_client=http) is None


async def test_a_token_builds_the_signalfx_sink(
    ingest: FakeIngest, http: httpx.AsyncClient
) -> None:
    """With a token and no dry run the job sends with the signalfx client."""
    config = Config(
        ecs_targets=[{"url": closed_port_url()}],
        signalfx={"token": "t", "ingest_endpoint": ingest.endpoint},
    )
    job = build_forwarding_job(config, dry_run=False, http_client=http)
    assert job is not None
    assert isinstance(job.sink, SignalFxSink)
    with pytest.raises(ForwardingError):
        await job.run_once()
    await job.aclose()
    assert [dp.metric for dp in ingest.datapoints] == ["ecs.up"]
    assert not http.is_closed


async def test_open_jobs_builds_the_forwarding_job(
    ecs: MetricsServer, http: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """``open_jobs`` composes the forwarding job, which records in the process's metrics."""
    metrics = StatusBridgeMetrics()
    config = Config(ecs_targets=[{"url": ecs.url, "interval_s": 5}])
    async with open_jobs(config, dry_run=True, http_client=http, metrics=metrics) as jobs:
        (job,) = jobs
        assert (job.name, job.interval_s) == ("forwarding", 5)
        with capture_logs():
            await job.run_once()
            await job.aclose()
    assert '"ecs.up"' in capsys.readouterr().out
    labels: dict[str, Any] = {"node": ecs.node, "outcome": "success"}
    assert metrics.registry.get_sample_value("statusbridge_forwarding_scrapes_total", labels) == 1
    handed = metrics.registry.get_sample_value(
        "statusbridge_forwarding_datapoints_total", {"outcome": "handed_over"}
    )
    assert handed is not None
    assert handed > 50


def wait_until(condition: Any, *, timeout: float = 10.0) -> None:
    """Poll ``condition()`` until it holds (the sink's thread works on its own)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def identities(datapoints: list[ReceivedDatapoint]) -> list[tuple[str, int, str]]:
    """What tells two datapoints apart: metric, timestamp, dimensions."""
    return [(dp.metric, dp.timestamp, repr(sorted(dp.dimensions.items()))) for dp in datapoints]


async def test_an_ingest_outage_within_the_buffer_loses_nothing(
    ecs: MetricsServer, ingest: FakeIngest, http: httpx.AsyncClient
) -> None:
    """Ingest answering 401, then 500 for a while, then 200: every datapoint arrives once."""
    ingest.script = [401, 401, 500, 500, 500, 503]
    clock = Clock()
    metrics = StatusBridgeMetrics()
    sink = SignalFxSink(
        token="t", ingest_endpoint=ingest.endpoint, retry_initial_s=0.02, retry_max_s=0.1
    )
    job = ForwardingJob(
        [Target(ecs.url, ecs.node)],
        http_client=http,
        sink=sink,
        metrics=metrics,
        clock=clock,
        monotonic=clock,
    )
    handed = 0
    for _ in range(4):  # four cycles during the outage
        await job.run_once()
        handed = sink.handed_over
        clock.now += 10
        await asyncio.sleep(0.05)
    wait_until(lambda: len(ingest.accepted) >= handed)
    await job.aclose()
    accepted = identities(ingest.accepted)
    assert len(accepted) == handed == len(set(accepted))
    assert ingest.statuses[:6] == [401, 401, 500, 500, 500, 503]
    assert (sink.client_errors, sink.dropped, sink.auth_error) == (6, {}, None)
    exposition = metrics.exposition().decode()
    assert "statusbridge_signalfx_client_errors_total 6.0" in exposition
    assert "\nstatusbridge_datapoints_dropped_total{" not in exposition


async def test_a_long_outage_drops_the_oldest_and_counts_them(
    ecs: MetricsServer, ingest: FakeIngest, http: httpx.AsyncClient
) -> None:
    """Past the buffer's seconds the oldest datapoints go, counted; the newer ones arrive once."""
    ingest.status = 503
    age = [0.0]
    metrics = StatusBridgeMetrics()
    sink = SignalFxSink(
        token="t",
        ingest_endpoint=ingest.endpoint,
        buffer_s=60,
        retry_initial_s=0.02,
        retry_max_s=0.05,
        clock=lambda: age[0],
    )
    clock = Clock()
    job = ForwardingJob(
        [Target(ecs.url, ecs.node)],
        http_client=http,
        sink=sink,
        metrics=metrics,
        clock=clock,
        monotonic=clock,
    )
    await job.run_once()
    old = sink.handed_over
    age[0] = 90.0  # the first cycle's datapoints are now older than the buffer holds
    clock.now += 10
    await job.run_once()
    new = sink.handed_over - old
    wait_until(lambda: sink.dropped.get("expired") == old)
    ingest.status = 200
    wait_until(lambda: len(ingest.accepted) == new)
    await job.aclose()
    assert {dp.timestamp for dp in ingest.accepted} == {int(clock.now * 1000)}
    assert len(set(identities(ingest.accepted))) == new
    exposition = metrics.exposition().decode()
    assert f'statusbridge_datapoints_dropped_total{{reason="expired"}} {float(old)}' in exposition


async def test_a_refused_token_turns_health_red_and_logs_once(
    ecs: MetricsServer, ingest: FakeIngest, http: httpx.AsyncClient
) -> None:
    """Ingest answering 401 makes /health red with one error line; accepted again, green."""
    ingest.status = 401
    clock = Clock()
    sink = SignalFxSink(
        token="t", ingest_endpoint=ingest.endpoint, retry_initial_s=0.02, retry_max_s=0.05
    )
    job = ForwardingJob(
        [Target(ecs.url, ecs.node)], http_client=http, sink=sink, clock=clock, monotonic=clock
    )
    daemon = Daemon(Config(), [job])
    with capture_logs() as logs:
        assert await daemon.run_job(job) is None
        wait_until(lambda: len(ingest.statuses) >= 3)
        red = daemon.health()
        ingest.status = 200
        wait_until(lambda: sink.auth_error is None)
        green = daemon.health()
        await job.aclose()
    assert not red.green
    assert red.body()["details"]["dependencies"] == {  # type: ignore[index]
        "signalfx": {"status": "red", "error": "SignalFx ingest refused the token (HTTP 401)"}
    }
    assert green.green
    events = [e["event"] for e in logs]
    assert events.count("signalfx_token_refused") == 1
    assert events.count("signalfx_token_accepted") == 1
