"""Side-by-side task latency: ECS cold and warm vs ``docker run --rm`` vs the bare engine.

One run, one engine, the same trivial task five ways, at concurrency 1 and at ECS's slot
count, interleaved in small blocks so that drift on the machine hits all of them alike:

1. ``docker run --rm --network none local/busybox:1 sh -c 'echo hi'`` (the CLI);
2. the bare engine sequence create → attach → start → wait → inspect from a minimal
   keep-alive client, timed to the answer (the delete after it is not counted, just as
   ECS deletes after answering): ECS's cold work without ECS;
3. the bare exec: exec create → start (attached) → inspect of the same command in an
   already running container of the image (reused: the engine's floor for the warm path);
4. ``POST /v1.1/tasks`` to an ``ecs serve`` started by this script (cold path);
5. the same to a second ``ecs serve`` with a warm pool of the image: each task takes a
   pooled container, runs by exec and the container is removed. Before each of its blocks
   the pool is let refill to its size, so the figures are a warm task's; sustained, a
   node's warm throughput is bound by how fast the engine makes new pooled containers.

At each concurrency every way runs with that many closed-loop client threads; throughput
is tasks per second of wall time. ECS deletes a container after answering, so after each
ECS block the script waits until that ECS's containers are gone (and the pool refilled):
no block's deletes run into the next way's block. For the cold way that wait counts in
its wall time, as the bare sequence's deletes count in its own, less the quiet gap ECS
leaves before background work (``ecs.deferral.QUIET_S``), which is idle time. ECS's own stage
histogram (``/metrics``, scraped before and after each level) splits its time by stage.
Prints the tables and ratios and writes ``bench/results/task_latency.json`` and the
``task_latency`` block of ``docs/performance.md``.

    .venv/bin/python -m bench.task_latency --runs 40
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from bench.ecs_process import SOCKET, EcsServer, containers_of
from bench.report import ROOT, machine_line, write_block
from bench.stages import stage_costs
from bench.stats import percentile
from ecs.deferral import QUIET_S
from ecs.sandbox import ContainerPolicy, ContainerRequest, container_config

IMAGE = "local/busybox:1"
CMD = ["sh", "-c", "echo hi"]
SLOTS = 4  # ECS's default max_concurrent_tasks
CLI = "docker run --rm"
BARE = "bare engine sequence"
BARE_EXEC = "bare exec in a running container"
ECS = "ECS POST /v1.1/tasks"
ECS_WARM = "ECS POST /v1.1/tasks, warm pool"
POOL_SIZE = 2 * SLOTS  # a block's worth of warm tasks
Way = Callable[[], float]


def engine_client() -> httpx.Client:
    """A keep-alive client on the engine socket."""
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=SOCKET), base_url="http://docker/v1.41", timeout=60
    )


def docker_cli_run() -> float:
    """One ``docker run --rm`` of the trivial task; its wall time."""
    docker = shutil.which("docker") or "docker"
    started = time.perf_counter()
    subprocess.run(
        [docker, "run", "--rm", "--network", "none", IMAGE, *CMD],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def bare_engine_run(engine: httpx.Client) -> float:
    """The engine calls ECS makes, from a minimal client, with nothing around them.

    Returns the time until the answer is known (inspect done); the delete that follows
    is not counted, as ECS too deletes after answering. The attach stream takes a second
    pooled connection of the same client, as ECS's does.
    """
    started = time.perf_counter()
    # The same container ECS would create, so that the difference is ECS itself.
    request = ContainerRequest(IMAGE, CMD, {}, memory_mb=256, cpus=1.0, pids=256)
    body = container_config(request, ContainerPolicy(), {"io.ecs.bench": "task_latency"})
    container = engine.post("/containers/create", json=body).json()["Id"]
    attach = {"stream": 1, "stdout": 1, "stderr": 1}
    try:
        with engine.stream("POST", f"/containers/{container}/attach", params=attach) as output:
            engine.post(f"/containers/{container}/start").raise_for_status()
            engine.post(f"/containers/{container}/wait").raise_for_status()
            output.read()
        engine.get(f"/containers/{container}/json").raise_for_status()
        return time.perf_counter() - started
    finally:
        engine.delete(f"/containers/{container}", params={"force": 1, "v": 1})


def bare_exec_run(engine: httpx.Client, container: str) -> float:
    """The trivial command by exec in a running container: create, start attached, inspect."""
    started = time.perf_counter()
    body = {"Cmd": CMD, "AttachStdout": True, "AttachStderr": True, "Tty": False}
    exec_id = engine.post(f"/containers/{container}/exec", json=body).json()["Id"]
    engine.post(f"/exec/{exec_id}/start", json={"Detach": False, "Tty": False}).raise_for_status()
    engine.get(f"/exec/{exec_id}/json").raise_for_status()
    return time.perf_counter() - started


def running_container(engine: httpx.Client) -> str:
    """A container of the image with the task sandbox, running an idle command."""
    request = ContainerRequest(IMAGE, ["sleep", "2147483647"], {}, 256, 1.0, 256)
    body = container_config(request, ContainerPolicy(), {"io.ecs.bench": "task_latency"})
    container = str(engine.post("/containers/create", json=body).json()["Id"])
    engine.post(f"/containers/{container}/start").raise_for_status()
    return container


def pool_full(server: EcsServer) -> bool:
    """The warm server's pool holds its size of idle containers."""
    for line in server.metrics().splitlines():
        if line.startswith("ecs_pool_idle "):
            return float(line.split()[1]) >= POOL_SIZE
    return False


def settle(server: EcsServer, keep: int, timeout_s: float = 60) -> float:
    """Wait until ``server`` has at most ``keep`` containers on the engine (its removals
    done, a warm pool refilled to ``keep``); the seconds it took.

    ECS deletes after answering, so a block's last deletes would otherwise run into the
    next way's block and slow it; the bare sequence deletes inside its own block.
    """
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while len(containers_of(server.instance_id)) > keep or (keep and not pool_full(server)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"ECS {server.instance_id} did not settle to {keep} containers")
        time.sleep(0.01)
    return time.perf_counter() - started


def ecs_run(ecs: httpx.Client) -> float:
    """One ``POST /v1.1/tasks`` of the trivial task; its wall time."""
    started = time.perf_counter()
    answer = ecs.post("/v1.1/tasks", json={"docker_image": IMAGE, "cmd": CMD})
    elapsed = time.perf_counter() - started
    if answer.status_code != 201 or answer.json()["exitCode"] != 0:
        raise RuntimeError(f"ECS answered {answer.status_code}: {answer.text}")
    return elapsed


def run_block(ways: list[Way], count: int) -> tuple[list[float], float]:
    """``count`` tasks over ``len(ways)`` closed-loop threads: (latencies s, wall time s)."""
    latencies: list[float] = []
    left = [count]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(way: Way) -> None:
        while True:
            with lock:
                if left[0] == 0 or errors:
                    return
                left[0] -= 1
            try:
                elapsed = way()
            except Exception as exc:  # surfaced after the block
                errors.append(exc)
                return
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=worker, args=(way,)) for way in ways]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return latencies, time.perf_counter() - started


def summarize(latencies: list[float], wall: float) -> dict[str, float]:
    """Milliseconds: min, median, p90, p99, max; and tasks per second."""
    ms = [s * 1000 for s in latencies]
    return {
        "n": len(ms),
        "min": min(ms),
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "max": max(ms),
        "tasks_per_s": len(ms) / wall,
    }


def measure_level(
    concurrency: int, runs: int, warmup: int, ecs_server: EcsServer, warm_server: EcsServer
) -> dict[str, Any]:
    """Each way ``runs`` times at ``concurrency``, interleaved in blocks, plus ECS's stages."""
    engines = [engine_client() for _ in range(concurrency)]
    execs = [engine_client() for _ in range(concurrency)]
    idle = [running_container(engine) for engine in execs]
    clients = [httpx.Client(base_url=ecs_server.url, timeout=60) for _ in range(concurrency)]
    warm = [httpx.Client(base_url=warm_server.url, timeout=60) for _ in range(concurrency)]
    try:
        ways: dict[str, list[Way]] = {
            ECS_WARM: [lambda c=c: ecs_run(c) for c in warm],  # type: ignore[misc]
            CLI: [docker_cli_run] * concurrency,
            BARE: [lambda e=e: bare_engine_run(e) for e in engines],  # type: ignore[misc]
            BARE_EXEC: [
                lambda e=e, c=c: bare_exec_run(e, c)  # type: ignore[misc]
                for e, c in zip(execs, idle, strict=True)
            ],
            ECS: [lambda c=c: ecs_run(c) for c in clients],  # type: ignore[misc]
        }
        for name, workers in ways.items():
            run_block(workers, warmup * concurrency)
            if name == ECS_WARM:
                settle(warm_server, POOL_SIZE)
            elif name == ECS:
                settle(ecs_server, 0)
        block = 2 * concurrency
        samples: dict[str, list[float]] = {name: [] for name in ways}
        walls = dict.fromkeys(ways, 0.0)
        before = ecs_server.metrics()
        rounds = max(1, runs // block)
        for _ in tqdm(range(rounds), desc=f"concurrency {concurrency}", unit="round"):
            for name, workers in ways.items():
                latencies, wall = run_block(workers, block)
                if name == ECS:
                    # The block's work includes its deletes, as the bare one's does; not the
                    # quiet gap ECS waits before them (ecs.deferral), which is idle time that
                    # a steady stream of tasks would not see (its deletes go at the bound).
                    wall += max(0.0, settle(ecs_server, 0) - QUIET_S)
                elif name == ECS_WARM:  # its refill must not run into the other ways' blocks
                    settle(warm_server, POOL_SIZE)
                samples[name] += latencies
                walls[name] += wall
        stages = [vars(c) for c in stage_costs(before, ecs_server.metrics())]
    finally:
        for engine, container in zip(execs, idle, strict=True):
            engine.delete(f"/containers/{container}", params={"force": 1, "v": 1})
        for client in [*engines, *execs, *clients, *warm]:
            client.close()
    return {
        "ways": {name: summarize(samples[name], walls[name]) for name in ways},
        "stages": stages,
    }


def ratios(level: dict[str, Any]) -> dict[str, float]:
    """ECS against the other two at one level."""
    ways = level["ways"]
    return {
        "ecs_p50_over_cli_p50": ways[ECS]["p50"] / ways[CLI]["p50"],
        "ecs_p50_over_bare_p50": ways[ECS]["p50"] / ways[BARE]["p50"],
        "ecs_p99_over_p50": ways[ECS]["p99"] / ways[ECS]["p50"],
        "ecs_throughput_over_bare": ways[ECS]["tasks_per_s"] / ways[BARE]["tasks_per_s"],
        "ecs_throughput_over_cli": ways[ECS]["tasks_per_s"] / ways[CLI]["tasks_per_s"],
        "ecs_overhead_ms": ways[ECS]["p50"] - ways[BARE]["p50"],
        "ecs_p50_over_bare": ways[ECS]["p50"] / ways[BARE]["p50"],
        "warm_p50_over_bare_cold_p50": ways[ECS_WARM]["p50"] / ways[BARE]["p50"],
        "warm_p50_over_bare_exec_p50": ways[ECS_WARM]["p50"] / ways[BARE_EXEC]["p50"],
    }


def verdict(ok: bool) -> str:
    """``met`` / ``NOT met``."""
    return "met" if ok else "NOT met"


def report(results: dict[int, dict[str, Any]], runs: int) -> str:
    """The Markdown quoted in docs/performance.md."""
    lines = [
        f"{machine_line()}. About {runs} runs per way and level, interleaved in blocks of "
        f"2 × concurrency; trivial task `{' '.join(CMD)}` in `{IMAGE}` (already present, so "
        "no pull); ECS without API keys.",
        "",
        "| concurrency | way | n | min ms | p50 ms | p90 ms | p99 ms | max ms | tasks/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for concurrency, level in results.items():
        for name, f in level["ways"].items():
            lines.append(
                f"| {concurrency} | {name} | {f['n']} | {f['min']:.1f} | {f['p50']:.1f} | "
                f"{f['p90']:.1f} | {f['p99']:.1f} | {f['max']:.1f} | {f['tasks_per_s']:.1f} |"
            )
    lines += ["", "| concurrency | " + " | ".join(c["stage"] for c in results[1]["stages"]) + " |"]
    lines.append("|---|" + "---|" * len(results[1]["stages"]))
    for concurrency, level in results.items():
        cells = " | ".join(f"{c['mean_ms']:.1f}" for c in level["stages"])
        lines.append(f"| {concurrency} | {cells} |")
    lines += [
        "",
        "(mean ms per ECS pipeline stage, from `ecs_task_stage_duration_seconds`; `delete` "
        "runs after the answer)",
        "",
    ]
    for concurrency, level in results.items():
        r = ratios(level)
        lines.append(
            f"- concurrency {concurrency}: ECS p50 / `docker run --rm` p50 "
            f"**{r['ecs_p50_over_cli_p50']:.2f}×** (target ≤ 1.0×: "
            f"{verdict(r['ecs_p50_over_cli_p50'] <= 1.0)}); ECS p50 − bare p50 "
            f"**{r['ecs_overhead_ms']:+.1f} ms**; ECS throughput / bare "
            f"**{r['ecs_throughput_over_bare']:.2f}×**, / CLI "
            f"**{r['ecs_throughput_over_cli']:.2f}×**"
        )
    for concurrency, level in results.items():
        r = ratios(level)
        lines.append(
            f"- concurrency {concurrency}, warm pool: ECS warm p50 / bare cold p50 "
            f"**{r['warm_p50_over_bare_cold_p50']:.2f}×** (target ≤ 0.5×: "
            f"{verdict(r['warm_p50_over_bare_cold_p50'] <= 0.5)}); / bare exec p50 "
            f"**{r['warm_p50_over_bare_exec_p50']:.2f}×**"
        )
    first = ratios(results[min(results)])
    lines.append(
        f"- Cold path at one client: ECS p50 − bare p50 **{first['ecs_overhead_ms']:+.1f} ms** "
        f"(target ≤ +3 ms: {verdict(first['ecs_overhead_ms'] <= 3)})"
    )
    slots = ratios(results[max(results)])
    lines.append(
        f"- Cold path at the slot count: ECS p50 / bare p50 **{slots['ecs_p50_over_bare']:.2f}×** "
        f"(target ≤ 1.05×: {verdict(slots['ecs_p50_over_bare'] <= 1.05)}); throughput / bare "
        f"**{slots['ecs_throughput_over_bare']:.2f}×** (target ≥ 0.97×: "
        f"{verdict(slots['ecs_throughput_over_bare'] >= 0.97)})"
    )
    one = ratios(results[1])
    lines.append(
        f"- ECS p99 / p50 at concurrency 1: **{one['ecs_p99_over_p50']:.2f}×** "
        f"(target ≤ 2×: {verdict(one['ecs_p99_over_p50'] <= 2)})"
    )
    top = max(results)
    slot = ratios(results[top])
    lines.append(
        f"- Throughput at the slot count ({top}) / bare engine sequence: "
        f"**{slot['ecs_throughput_over_bare']:.2f}×** (target ≥ 0.8×: "
        f"{verdict(slot['ecs_throughput_over_bare'] >= 0.8)})"
    )
    return "\n".join(lines)


def plot(results: dict[int, dict[str, Any]], path: Path) -> None:
    """p50 bars with p90 whiskers per way, one panel per concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.plots import save_figure

    figure, panels = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for panel, (concurrency, level) in zip(panels[0], results.items(), strict=True):
        names = list(level["ways"])
        p50 = [level["ways"][n]["p50"] for n in names]
        p90 = [level["ways"][n]["p90"] for n in names]
        errors = [[0] * len(names), [b - a for a, b in zip(p50, p90, strict=True)]]
        panel.bar(range(len(names)), p50, yerr=errors, capsize=4, color="#4a7ab5")
        labels = [textwrap.fill(n, 16) for n in names]  # five ways side by side must not overlap
        panel.set_xticks(range(len(names)), labels, fontsize=7)
        panel.set_ylabel("ms (p50, whisker to p90)")
        panel.set_title(f"concurrency {concurrency}")
    save_figure(figure, path, dpi=100)


def main() -> int:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed runs per way and level")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per worker")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, SLOTS])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    results: dict[int, dict[str, Any]] = {}
    pools = json.dumps([{"image": IMAGE, "size": POOL_SIZE}])
    with (
        tempfile.TemporaryDirectory(prefix="ecs-latency-") as scratch,
        EcsServer(Path(scratch) / "ecs.log") as ecs_server,
        EcsServer(Path(scratch) / "warm.log", ECS_WARM_POOLS=pools) as warm_server,
    ):
        for concurrency in args.levels:
            results[concurrency] = measure_level(
                concurrency, args.runs, args.warmup, ecs_server, warm_server
            )
    text = report(results, args.runs)
    print(text)
    if not args.no_write:
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        document = {str(c): {**level, "ratios": ratios(level)} for c, level in results.items()}
        (out / "task_latency.json").write_text(json.dumps(document, indent=2) + "\n")
        plot(results, ROOT / "docs" / "img" / "task_latency.png")
        write_block("task_latency", text + "\n\n![every way at each level](img/task_latency.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
