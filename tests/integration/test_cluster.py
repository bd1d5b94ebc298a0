"""Many ECS nodes as one service: real redis-server, real HAProxy, `ecs serve` processes,
one engine. Requests go through the balancer and straight to each node."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecs.keys import GeneratedKey, generate_keys
from tests.integration.callback_receiver import CallbackReceiver
from tests.integration.cluster_parts import HAProxy, RedisServer
from tests.integration.conftest import managed_containers, task_container, wait_until
from tests.integration.ecs_process import EcsProcess
from tests.integration.ecs_server import new_instance_id

pytestmark = pytest.mark.engine

ASYNC = {"Prefer": "respond-async"}
SLEEP = {"docker_image": "owner/repo:tag", "cmd": ["sleep", "60"]}
NODE_TIMEOUT_S = 6


@dataclass
class Cluster:
    """Redis, N nodes and HAProxy in front of them."""

    root: Path
    redis: RedisServer
    settings: dict[str, str]
    nodes: list[EcsProcess] = field(default_factory=list)
    balancer: HAProxy | None = None
    key: GeneratedKey | None = None

    @property
    def url(self) -> str:
        """The balancer's URL."""
        assert self.balancer is not None
        return self.balancer.url

    def auth(self) -> tuple[str, str] | None:
        """The API key pair, if keys are on."""
        return (self.key.key, self.key.secret) if self.key else None

    def client(self, url: str | None = None, **kwargs: Any) -> httpx.Client:
        """A client of the balancer (or of one node's URL)."""
        return httpx.Client(base_url=url or self.url, timeout=60, auth=self.auth(), **kwargs)

    def start_node(self, instance_id: str | None = None) -> EcsProcess:
        """Start one more node (or restart one, given its instance id)."""
        index = len(self.nodes) + 1
        env = {**self.settings, "ECS_INSTANCE_ID": instance_id or new_instance_id()}
        node = EcsProcess(self.root / f"node-{index}.log", **env).start()
        self.nodes.append(node)
        return node

    def instance_of(self, node: EcsProcess) -> str:
        """A node's instance id (its name in the cluster)."""
        return node.env["ECS_INSTANCE_ID"]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Start a cluster: redis-server, ``nodes`` ECS processes, HAProxy; all stopped after."""
    made: list[Cluster] = []

    def make(nodes: int = 2, keys: bool = False, **settings: str) -> Cluster:
        redis = RedisServer(tmp_path / "redis").start()
        env = {
            "ECS_CLUSTER__REDIS_URL": redis.url,
            "ECS_CLUSTER__HEARTBEAT_S": "1",
            "ECS_CLUSTER__NODE_TIMEOUT_S": str(NODE_TIMEOUT_S),
            "ECS_MAX_CONCURRENT_TASKS": "2",
            "ECS_LOG_LEVEL": "debug",  # stages and removals, shown when a test fails
            **settings,
        }
        cluster = Cluster(tmp_path, redis, env)
        made.append(cluster)
        if keys:
            path = tmp_path / "keys.htpasswd"
            (cluster.key,) = generate_keys(1, path, rounds=4)
            env["ECS_CREDENTIALS_FILE"] = str(path)
        for _ in range(nodes):
            cluster.start_node()
        cluster.balancer = HAProxy(tmp_path / "haproxy", [n.url for n in cluster.nodes]).start()
        return cluster

    yield make
    for cluster in made:
        if cluster.balancer is not None:
            cluster.balancer.stop()
        for node in cluster.nodes:
            node.stop()
            # pytest shows a teardown's output only for a failed test: the nodes' side.
            print(f"--- {node.log_path.name}, last lines ---")
            print("\n".join(node.log().splitlines()[-60:]))
        cluster.redis.stop()


def creations_by_node(engine: httpx.Client, instances: list[str], since: float) -> Counter[str]:
    """Containers created since ``since``, counted by the ECS node that created them."""
    filters = {"type": ["container"], "event": ["create"], "label": ["io.ecs.managed"]}
    answer = engine.get(
        "/events",
        params={
            "since": str(int(since) - 1),
            "until": str(int(time.time()) + 1),
            "filters": json.dumps(filters),
        },
        timeout=30,
    )
    answer.raise_for_status()
    counts: Counter[str] = Counter()
    for line in answer.text.splitlines():
        if line.strip():
            instance = json.loads(line)["Actor"]["Attributes"].get("io.ecs.instance", "")
            if instance in instances:
                counts[instance] += 1
    return counts


def test_a_keys_rate_holds_across_nodes(make_cluster: Callable[..., Cluster]) -> None:
    """Three nodes behind the balancer allow one key what one node would: burst plus
    rate × time, not three times that."""
    cluster = make_cluster(nodes=3, keys=True, ECS_RATE_LIMIT_PER_S="2", ECS_RATE_LIMIT_BURST="4")
    allowed = refused = 0
    with cluster.client() as client:
        started = time.monotonic()
        while time.monotonic() - started < 3.0:
            status = client.get("/v1.1/_noop").status_code
            allowed += status == 200
            refused += status == 429
        elapsed = time.monotonic() - started
    expected = 4 + 2 * elapsed
    assert refused > 0
    assert expected - 2 <= allowed <= expected + 2, (allowed, expected)


def test_the_concurrent_task_limit_holds_across_nodes(
    make_cluster: Callable[..., Cluster],
) -> None:
    """A key allowed one running task gets 429 on node B while its task runs on node A."""
    cluster = make_cluster(nodes=2, keys=True, ECS_MAX_TASKS_PER_KEY="1")
    first, second = cluster.nodes
    answers: list[int] = []
    body = {"docker_image": "owner/repo:tag", "cmd": ["sleep", "3"]}

    def run_on(node: EcsProcess) -> None:
        with cluster.client(node.url) as client:
            answers.append(client.post("/v1.1/tasks", json=body).status_code)

    running = threading.Thread(target=run_on, args=(first,))
    running.start()
    time.sleep(1.0)
    with cluster.client(second.url) as client:
        refused = client.post("/v1.1/tasks", json=body)
    running.join()
    assert refused.status_code == 429
    assert "across the cluster" in refused.json()["errors"][0]["message"]
    assert answers == [201]


def test_a_task_submitted_on_a_is_read_polled_and_cancelled_on_b(
    make_cluster: Callable[..., Cluster], engine: httpx.Client
) -> None:
    """One task space: node B long-polls A's finished task and kills A's running one
    within 2 s."""
    cluster = make_cluster(nodes=2)
    first, second = cluster.nodes
    with cluster.client(first.url) as on_a, cluster.client(second.url) as on_b:
        quick = on_a.post(
            "/v1.1/tasks", json={"docker_image": "owner/repo:tag", "cmd": ["echo", "a"]},
            headers=ASYNC,
        ).headers["location"]  # fmt: skip
        assert on_b.get(quick, params={"wait": "30"}).json()["result"]["stdout"] == "YQo="
        long = on_a.post("/v1.1/tasks", json=SLEEP, headers=ASYNC).headers["location"]
        assert wait_until(lambda: on_b.get(long).json()["status"] == "running", 20)
        long_id = long.rsplit("/", 1)[1]
        assert wait_until(lambda: task_container(engine, long_id) is not None, 20)
        started = time.monotonic()
        cancelled = on_b.delete(long)
        assert cancelled.status_code == 202
        assert cancelled.json()["status"] == "cancelled"
        assert wait_until(lambda: not managed_containers(engine), 2)
        assert time.monotonic() - started < 2.5
        assert on_a.get(long).json()["status"] == "cancelled"


def test_an_idempotent_retry_on_the_other_node_runs_nothing_new(
    make_cluster: Callable[..., Cluster], engine: httpx.Client
) -> None:
    """The same Idempotency-Key on node A then node B: one task, one container."""
    cluster = make_cluster(nodes=2)
    first, second = cluster.nodes
    since = time.time()
    body = {"docker_image": "owner/repo:tag", "cmd": ["echo", "once"]}
    headers = {**ASYNC, "Idempotency-Key": "cross-node"}
    with cluster.client(first.url) as on_a, cluster.client(second.url) as on_b:
        original = on_a.post("/v1.1/tasks", json=body, headers=headers)
        repeat = on_b.post("/v1.1/tasks", json=body, headers=headers)
        assert (original.status_code, repeat.status_code) == (202, 200)
        assert repeat.json()["id"] == original.json()["id"]
        location = original.headers["location"]
        assert on_b.get(location, params={"wait": "30"}).json()["status"] == "succeeded"
        sync = on_b.post("/v1.1/tasks", json=body, headers={"Idempotency-Key": "cross-node"})
        assert sync.status_code == 201
    instances = [cluster.instance_of(node) for node in cluster.nodes]
    assert sum(creations_by_node(engine, instances, since).values()) == 1


def test_a_burst_spreads_over_the_nodes(
    make_cluster: Callable[..., Cluster], engine: httpx.Client
) -> None:
    """Eight async tasks into one node's queue (two slots each): both nodes run some."""
    cluster = make_cluster(nodes=2)
    first = cluster.nodes[0]
    since = time.time()
    body = {"docker_image": "owner/repo:tag", "cmd": ["sleep", "2"]}
    with cluster.client(first.url) as client:
        locations = [
            client.post("/v1.1/tasks", json=body, headers=ASYNC).headers["location"]
            for _ in range(8)
        ]
        documents = [client.get(loc, params={"wait": "60"}).json() for loc in locations]
    assert [d["status"] for d in documents] == ["succeeded"] * 8
    instances = [cluster.instance_of(node) for node in cluster.nodes]
    counts = creations_by_node(engine, instances, since)
    assert sum(counts.values()) == 8
    assert len(counts) == 2, counts


def test_a_killed_node_s_task_becomes_node_lost_and_calls_back(
    make_cluster: Callable[..., Cluster], engine: httpx.Client
) -> None:
    """kill -9 of the node running a task: node_lost within node_timeout_s, read through
    the other node, its callback delivered; the node's restart removes its container."""
    with CallbackReceiver() as receiver:
        cluster = make_cluster(
            nodes=2,
            ECS_CALLBACK_SECRET="s",
            ECS_CALLBACK_ALLOWLIST=json.dumps(["127.0.0.1"]),
        )
        first, second = cluster.nodes
        with cluster.client(second.url) as on_b:
            body = {**SLEEP, "callback_url": receiver.url()}
            location = on_b.post("/v1.1/tasks", json=body, headers=ASYNC).headers["location"]
            assert wait_until(lambda: on_b.get(location).json()["status"] == "running", 20)
            task_id = location.rsplit("/", 1)[1]
            assert wait_until(lambda: task_container(engine, task_id) is not None, 20)
            found = task_container(engine, task_id)
            assert found is not None
            owner = found["Labels"]["io.ecs.instance"]
            victim, survivor = (
                (first, second) if owner == cluster.instance_of(first) else (second, first)
            )
            victim.signal(signal.SIGKILL)
            victim.wait()
            killed = time.monotonic()
        with cluster.client(survivor.url) as survivor_client:
            assert wait_until(
                lambda: survivor_client.get(location).json()["status"] == "failed",
                NODE_TIMEOUT_S + 10,
            )
            lost_after = time.monotonic() - killed
            document = survivor_client.get(location).json()
            assert [e["code"] for e in document["errors"]] == ["node_lost"]
            assert lost_after <= NODE_TIMEOUT_S + 4
            assert wait_until(lambda: len(receiver.received) == 1, 20)
        sent = json.loads(receiver.received[0].body)
        assert sent["status"] == "failed"
        assert task_container(engine, task_id) is not None  # the dead node's container is left
        cluster.start_node(instance_id=cluster.instance_of(victim))
        assert wait_until(lambda: not managed_containers(engine), 15)


def test_redis_away_keeps_sync_tasks_and_refuses_async(
    make_cluster: Callable[..., Cluster],
) -> None:
    """Redis stopped: sync tasks still 201, async 503 store_unavailable with Retry-After,
    comprehensive health shows Redis red; Redis back: async works, no ECS restart."""
    cluster = make_cluster(nodes=2)
    body = {"docker_image": "owner/repo:tag", "cmd": ["echo", "hi"]}
    with cluster.client() as client:
        assert client.post("/v1.1/tasks", json=body, headers=ASYNC).status_code == 202
        cluster.redis.stop()
        assert client.post("/v1.1/tasks", json=body).status_code == 201
        refused = client.post("/v1.1/tasks", json=body, headers=ASYNC)
        assert refused.status_code == 503
        assert refused.json()["errors"][0]["code"] == "store_unavailable"
        assert int(refused.headers["retry-after"]) > 0
        health = client.get("/v1.1/_health", params={"quick": "false"})
        assert health.json()["details"]["redis"]["status"] == "red"
        assert client.get("/v1.1/_health").status_code == 200  # the balancer keeps the node
        for node in cluster.nodes:
            metrics = httpx.get(f"{node.url}/metrics", timeout=10).text
            assert wait_until(
                lambda url=node.url: (
                    "ecs_cluster_degraded 1.0" in httpx.get(f"{url}/metrics", timeout=10).text
                ),
                10,
            ), metrics
        cluster.redis.start()
        assert wait_until(
            lambda: client.post("/v1.1/tasks", json=body, headers=ASYNC).status_code == 202, 20
        )
        location = client.post("/v1.1/tasks", json=body, headers=ASYNC).headers["location"]
        assert client.get(location, params={"wait": "30"}).json()["status"] == "succeeded"
    # Each node rejoins at its next heartbeat, which may come a moment after the first.
    assert wait_until(lambda: all('"cluster_rejoined"' in n.log() for n in cluster.nodes), 10)
    logs = [node.log() for node in cluster.nodes]
    assert all(log.count('"cluster_degraded"') == 1 for log in logs), "logged once per change"


def test_a_slow_redis_does_not_stall_noop(make_cluster: Callable[..., Cluster]) -> None:
    """While Redis sleeps for two seconds, _noop answers at once."""
    cluster = make_cluster(nodes=1)
    node = cluster.nodes[0]
    sleeper = threading.Thread(target=cluster.redis.cli, args=("DEBUG", "SLEEP", "2"))
    sleeper.start()
    time.sleep(0.3)
    with httpx.Client(base_url=node.url, timeout=10) as client:
        started = time.monotonic()
        assert client.get("/v1.1/_noop").status_code == 200
        assert time.monotonic() - started < 0.5
    sleeper.join()


def test_a_request_costs_one_redis_round_trip_for_its_limits(
    make_cluster: Callable[..., Cluster],
) -> None:
    """With keys on, each authenticated request runs one limits script on Redis (a sync
    task's one script takes its token and its task place together)."""
    cluster = make_cluster(
        nodes=1, keys=True, ECS_RATE_LIMIT_PER_S="1000", ECS_RATE_LIMIT_BURST="1000"
    )
    node = cluster.nodes[0]

    def script_calls() -> int:
        stats = cluster.redis.cli("INFO", "commandstats")
        for line in stats.splitlines():
            if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    with cluster.client(node.url) as client:
        client.get("/v1.1/_noop")  # scripts loaded, key verified and cached
        before = script_calls()
        for _ in range(20):
            assert client.get("/v1.1/_noop").status_code == 200
        noop_calls = script_calls() - before
        before = script_calls()
        body = {"docker_image": "owner/repo:tag", "cmd": ["true"]}
        for _ in range(3):
            assert client.post("/v1.1/tasks", json=body).status_code == 201
        task_calls = script_calls() - before
    assert noop_calls == 20
    assert task_calls == 3
