"""One node vs two behind HAProxy, and what cluster limits cost a request, side by side.

1. Through HAProxy, the same trivial sync task at the slot count of the nodes behind it:
   a balancer over one ECS node and a balancer over two, both nodes in cluster mode on
   one Redis and one engine (this machine has one), alternating in blocks so drift hits
   both alike. Throughput and latency percentiles per way.
2. The cost of cluster limits per request: authenticated ``GET /v1.1/_noop`` to a node
   with cluster limits (one Lua script on Redis) and to one with local limits, alternating.
   Target: ≤ 1 ms at the median.

Writes ``bench/results/cluster.json``, ``docs/img/cluster.png`` and the ``cluster`` block
of docs/performance.md.

    .venv/bin/python -m bench.cluster --seconds 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from bench.ecs_process import EcsServer, make_keys
from bench.report import ROOT, fmt_ms, machine_line, write_block
from bench.stats import percentile
from tests.integration.cluster_parts import HAProxy, RedisServer

TASK = {"docker_image": "local/busybox:1", "cmd": ["sh", "-c", "echo hi"]}
SLOTS = 2  # per node: the machine has two cores for two nodes and the engine


def closed_loop(
    url: str, auth: tuple[str, str], clients: int, seconds: float
) -> tuple[list[float], float]:
    """``clients`` threads posting tasks for ``seconds``; latencies (ms) and tasks/s."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=url, auth=auth, timeout=120) as http:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                answer = http.post("/v1.1/tasks", json=TASK)
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code == 201:
                    with lock:
                        latencies.append(elapsed)

    began = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, len(latencies) / (time.monotonic() - began)


def noop_latencies(url: str, auth: tuple[str, str], count: int) -> list[float]:
    """ms of ``count`` authenticated _noop calls on one keep-alive client."""
    out = []
    with httpx.Client(base_url=url, auth=auth, timeout=30) as http:
        http.get("/v1.1/_noop").raise_for_status()  # key verified and cached
        for _ in range(count):
            started = time.perf_counter()
            http.get("/v1.1/_noop").raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
    return out


def summary(values: list[float]) -> dict[str, float]:
    """n, median, p90, p99 (ms)."""
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
    }


def report(results: dict[str, Any]) -> str:
    """The Markdown block."""
    one, two = results["one_node"], results["two_nodes"]
    lines = [
        f"{machine_line()}; Redis {results['redis_version']}, HAProxy in front, nodes in "
        f"cluster mode with {SLOTS} slots each, one engine for both (one machine).",
        "",
        "| through HAProxy | clients | tasks/s | p50 ms | p90 | p99 |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in (("1 node", one), ("2 nodes", two)):
        lines.append(
            f"| {label} | {row['clients']} | {row['throughput']:.1f} | {fmt_ms(row['p50'])} "
            f"| {fmt_ms(row['p90'])} | {fmt_ms(row['p99'])} |"
        )
    limits_on, limits_off = results["limits_cluster"], results["limits_local"]
    cost = limits_on["p50"] - limits_off["p50"]
    lines += [
        "",
        f"Two nodes over one: **{two['throughput'] / one['throughput']:.2f}×** the "
        "throughput at twice the clients.",
        "",
        "| authenticated `GET /v1.1/_noop` | n | p50 ms | p90 | p99 |",
        "|---|---|---|---|---|",
        f"| cluster limits (one script on Redis) | {limits_on['n']} | {fmt_ms(limits_on['p50'])} "
        f"| {fmt_ms(limits_on['p90'])} | {fmt_ms(limits_on['p99'])} |",
        f"| local limits | {limits_off['n']} | {fmt_ms(limits_off['p50'])} "
        f"| {fmt_ms(limits_off['p90'])} | {fmt_ms(limits_off['p99'])} |",
        "",
        f"Cluster limits cost **{cost:+.2f} ms** per request at the median (target ≤ 1 ms: "
        f"{'met' if cost <= 1 else 'not met'}).",
        "",
        "![one node vs two, and the cost of cluster limits](img/cluster.png)",
    ]
    return "\n".join(lines)


def plot(samples: dict[str, list[float]], results: dict[str, Any], path: Path) -> None:
    """Latency boxes of both comparisons."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.plots import save_figure

    figure, (tasks, limits) = plt.subplots(1, 2, figsize=(10, 4))
    tasks.boxplot(
        [samples["one_node"], samples["two_nodes"]],
        tick_labels=[
            f"1 node\n{results['one_node']['throughput']:.1f} tasks/s",
            f"2 nodes\n{results['two_nodes']['throughput']:.1f} tasks/s",
        ],
        showfliers=False,
    )
    tasks.set_ylabel("ms")
    tasks.set_title("trivial task through HAProxy")
    limits.boxplot(
        [samples["limits_cluster"], samples["limits_local"]],
        tick_labels=["cluster limits", "local limits"],
        showfliers=False,
    )
    limits.set_title("authenticated _noop")
    save_figure(figure, path, dpi=100)


def main() -> int:
    """Run both comparisons and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="per block of tasks")
    parser.add_argument("--blocks", type=int, default=3, help="alternating blocks per way")
    parser.add_argument("--noops", type=int, default=500, help="_noop calls per way and block")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {k: [] for k in ("one_node", "two_nodes")}
    samples |= {"limits_cluster": [], "limits_local": []}
    throughput: dict[str, list[float]] = {"one_node": [], "two_nodes": []}
    with tempfile.TemporaryDirectory(prefix="ecs-cluster-") as scratch, ExitStack() as stack:
        root = Path(scratch)
        redis = RedisServer(root / "redis").start()
        stack.callback(redis.stop)
        hashes, pairs = make_keys(1, root)
        key, secret = pairs.read_text().split()[0].split(":", 1)
        cluster = {
            "ECS_CLUSTER__REDIS_URL": redis.url,
            "ECS_MAX_CONCURRENT_TASKS": str(SLOTS),
            "ECS_CREDENTIALS_FILE": str(hashes),
            "ECS_OPEN_ENDPOINTS": json.dumps(["health"]),
            "ECS_RATE_LIMIT_PER_S": "100000",
            "ECS_RATE_LIMIT_BURST": "100000",
            "ECS_MAX_TASKS_PER_KEY": "1000",
        }
        nodes = [stack.enter_context(EcsServer(root / f"node-{i}.log", **cluster)) for i in (1, 2)]
        local = stack.enter_context(
            EcsServer(
                root / "local.log", **{k: v for k, v in cluster.items() if "CLUSTER" not in k}
            )
        )
        one = HAProxy(root / "lb-1", [nodes[0].url]).start()
        two = HAProxy(root / "lb-2", [n.url for n in nodes]).start()
        stack.callback(one.stop)
        stack.callback(two.stop)
        auth = (key, secret)
        for block in tqdm(range(args.blocks), desc="blocks", file=sys.stderr):
            ways = [("one_node", one, SLOTS), ("two_nodes", two, 2 * SLOTS)]
            for name, balancer, clients in ways if block % 2 == 0 else ways[::-1]:
                latencies, rate = closed_loop(balancer.url, auth, clients, args.seconds)
                samples[name] += latencies
                throughput[name].append(rate)
            samples["limits_cluster"] += noop_latencies(nodes[0].url, auth, args.noops)
            samples["limits_local"] += noop_latencies(local.url, auth, args.noops)
        redis_version = redis.cli("INFO", "server").split("redis_version:")[1].split()[0]
    results: dict[str, Any] = {key: summary(values) for key, values in samples.items()}
    for name, clients in (("one_node", SLOTS), ("two_nodes", 2 * SLOTS)):
        results[name] |= {
            "throughput": sum(throughput[name]) / len(throughput[name]),
            "clients": clients,
        }
    results["redis_version"] = redis_version
    text = report(results)
    print(text)
    if not args.no_write:
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        (out / "cluster.json").write_text(
            json.dumps({"results": results, "samples": samples}) + "\n"
        )
        plot(samples, results, ROOT / "docs" / "img" / "cluster.png")
        write_block("cluster", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
