"""ECS's /metrics after real traffic, and its journey through statusbridge to SignalFx ingest."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from statusbridge.forwarding import ForwardingJob, Target
from statusbridge.signalfx import SignalFxSink
from tests.integration.conftest import OPEN_REGISTRY
from tests.statusbridge.fake_ingest import FakeIngest

pytestmark = pytest.mark.engine

TASK = {"docker_image": "owner/repo:tag", "cmd": ["true"]}


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def traffic(client: httpx.Client) -> None:
    """Two good tasks, a bad body, an unknown image, a timeout, and a noop."""
    for _ in range(2):
        assert client.post("/v1.1/tasks", json=TASK).status_code == 201
    assert client.post("/v1.1/tasks", json={}).status_code == 400
    unknown = {**TASK, "docker_image": f"{OPEN_REGISTRY}/owner/nope:tag"}
    assert client.post("/v1.1/tasks", json=unknown).status_code == 404
    timed = {**TASK, "cmd": ["sleep", "30"], "timeout": 0.5}
    assert client.post("/v1.1/tasks", json=timed).json()["timedOut"] is True
    assert client.get("/v1.1/_noop").status_code == 200


def test_metrics_count_what_happened(start_ecs: Any) -> None:
    """Requests by route template, task outcomes and stage timings match the traffic."""
    server = start_ecs()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        traffic(client)
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found = samples(answer.text)
    tasks = (("method", "POST"), ("route", "/v1.1/tasks"))
    assert found[("ecs_http_requests_total", (*tasks, ("status", "201")))] == 3
    assert found[("ecs_http_requests_total", (*tasks, ("status", "400")))] == 1
    assert found[("ecs_http_requests_total", (*tasks, ("status", "404")))] == 1
    noop = (("method", "GET"), ("route", "/v1.1/_noop"), ("status", "200"))
    assert found[("ecs_http_requests_total", noop)] == 1
    assert found[("ecs_tasks_total", (("outcome", "exited"),))] == 2
    assert found[("ecs_tasks_total", (("outcome", "timed_out"),))] == 1
    assert found[("ecs_tasks_total", (("outcome", "rejected"),))] == 1
    assert found[("ecs_tasks_total", (("outcome", "pull_failed"),))] == 1
    for stage in ("start", "run", "logs"):
        assert found[("ecs_task_stage_duration_seconds_count", (("stage", stage),))] == 3
    # Create first: the unknown image's create finds no image (4 creates), then its pull
    # fails; every task that reached the pipeline had its policy's pull step (4), plus
    # that one pull of the missing image.
    assert found[("ecs_task_stage_duration_seconds_count", (("stage", "create"),))] == 4
    assert found[("ecs_task_stage_duration_seconds_count", (("stage", "pull"),))] == 5
    assert found[("ecs_tasks_in_flight", ())] == 0
    assert found[("ecs_tasks_queued", ())] == 0
    route_count = ("ecs_http_request_duration_seconds_count", (("route", "/v1.1/tasks"),))
    assert found[route_count] == 5
    assert not [name for name, labels in found if dict(labels).get("route", "/").count("/") > 3]


async def test_real_ecs_traffic_reaches_signalfx(start_ecs: Any) -> None:
    """statusbridge scrapes a real ECS and the real signalfx client delivers typed datapoints."""
    server = start_ecs()
    ticks = [0.0]
    with FakeIngest() as ingest, httpx.Client(base_url=server.url, timeout=60) as client:
        async with httpx.AsyncClient() as http:
            job = ForwardingJob(
                [Target(f"{server.url}/metrics", "node-a")],
                http_client=http,
                sink=SignalFxSink(token="test-token", ingest_endpoint=ingest.endpoint),
                dimensions={"environment": "test", "service": "ecs"},
                monotonic=lambda: ticks[0],
            )
            await job.run_once()  # the baseline scrape
            traffic(client)
            ticks[0] += job.interval_s  # due again, without sleeping
            await job.run_once()
            await job.aclose()
        points = ingest.datapoints
    node = {"node": "node-a", "environment": "test", "service": "ecs"}
    up = [p for p in points if p.metric == "ecs.up"]
    assert {(p.value, p.metric_type) for p in up} == {(1, "GAUGE")}
    assert all(p.dimensions == node for p in up)
    exited = [
        p for p in points if p.metric == "ecs.tasks" and p.dimensions.get("outcome") == "exited"
    ]
    assert exited[-1].metric_type == "CUMULATIVE_COUNTER"
    assert exited[-1].value == 2
    assert exited[-1].dimensions == {"outcome": "exited", **node}
    created = [
        p
        for p in points
        if p.metric == "ecs.http.requests"
        and p.dimensions.get("route") == "/v1.1/tasks"
        and p.dimensions.get("status") == "201"
    ]
    assert created[-1].value == 3
    p50 = [
        p
        for p in points
        if p.metric == "ecs.http.request.duration.seconds.p50"
        and p.dimensions.get("route") == "/v1.1/tasks"
    ]
    assert len(p50) == 1  # only the second scrape has deltas
    assert 0 < p50[0].value < 60
    assert ingest.requests[0].headers["x-sf-token"] == "test-token"
