"""Side-by-side task latency: ECS vs ``docker run --rm`` vs the bare engine API sequence.

One run, one engine, the same trivial task three ways, interleaved so that drift on the
machine hits all three alike:

1. ``docker run --rm --network none local/busybox:1 sh -c 'echo hi'`` (the CLI);
2. the bare engine sequence create → attach → start → wait → inspect from a minimal
   keep-alive client, timed to the answer (the delete after it is not counted, just as
   ECS deletes after answering): ECS's work without ECS;
3. ``POST /v1.1/tasks`` to an ``ecs serve`` started by this script on 127.0.0.1.

Prints medians and percentiles and the ratios, and writes them to
``bench/results/task_latency.json`` and ``docs/performance.md`` (between markers).

    .venv/bin/python bench/task_latency.py --runs 40
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from ecs.sandbox import ContainerPolicy, ContainerRequest, container_config

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "local/busybox:1"
CMD = ["sh", "-c", "echo hi"]
SOCKET = "/var/run/docker.sock"
MARK_BEGIN = "<!-- task_latency:begin -->"
MARK_END = "<!-- task_latency:end -->"


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def docker_cli_run() -> None:
    """One ``docker run --rm`` of the trivial task."""
    docker = shutil.which("docker") or "docker"
    subprocess.run(
        [docker, "run", "--rm", "--network", "none", IMAGE, *CMD],
        check=True,
        capture_output=True,
    )


def bare_engine_run(engine: httpx.Client) -> float:
    """The engine calls ECS makes, from a minimal client, with nothing around them.

    Returns the time until the answer is known (inspect done); the delete that follows
    is not counted, as ECS too deletes after answering.
    """
    started = time.perf_counter()
    # The same container ECS would create, so that the difference is ECS itself.
    request = ContainerRequest(IMAGE, CMD, {}, memory_mb=256, cpus=1.0, pids=256)
    body = container_config(request, ContainerPolicy(), {})
    container = engine.post("/containers/create", json=body).json()["Id"]
    attach = {"stream": 1, "stdout": 1, "stderr": 1}
    with (
        httpx.Client(
            transport=httpx.HTTPTransport(uds=SOCKET), base_url="http://docker/v1.41", timeout=60
        ) as attach_client,
        attach_client.stream("POST", f"/containers/{container}/attach", params=attach) as output,
    ):
        engine.post(f"/containers/{container}/start").raise_for_status()
        engine.post(f"/containers/{container}/wait").raise_for_status()
        output.read()
    engine.get(f"/containers/{container}/json").raise_for_status()
    answered = time.perf_counter() - started
    engine.delete(f"/containers/{container}", params={"force": 1, "v": 1})
    return answered


def ecs_run(ecs: httpx.Client) -> None:
    """One ``POST /v1.1/tasks`` of the trivial task."""
    answer = ecs.post("/v1.1/tasks", json={"docker_image": IMAGE, "cmd": CMD})
    if answer.status_code != 201 or answer.json()["exitCode"] != 0:
        raise RuntimeError(f"ECS answered {answer.status_code}: {answer.text}")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_ecs(port: int) -> subprocess.Popen[bytes]:
    """``ecs serve`` on 127.0.0.1:port, waited for until it answers."""
    env = {**os.environ, "ECS_PORT": str(port), "ECS_LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/ecs"), "serve"], env=env, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1.1/_noop", timeout=1).raise_for_status()
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("ECS did not start")


def summarize(samples: list[float]) -> dict[str, float]:
    """Milliseconds: min, median, p90, p99, max."""
    ms = [s * 1000 for s in samples]
    return {
        "n": len(ms),
        "min": min(ms),
        "p50": statistics.median(ms),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "max": max(ms),
    }


def measure(runs: int, warmup: int) -> dict[str, Any]:
    """Time each way ``runs`` times, interleaved, after ``warmup`` untimed rounds."""
    port = free_port()
    process = start_ecs(port)
    try:
        with (
            httpx.Client(
                transport=httpx.HTTPTransport(uds=SOCKET),
                base_url="http://docker/v1.41",
                timeout=60,
            ) as engine,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as ecs,
        ):
            ways: dict[str, Callable[[], float | None]] = {
                "docker run --rm": docker_cli_run,
                "bare engine sequence (to answer)": lambda: bare_engine_run(engine),
                "ECS POST /v1.1/tasks": lambda: ecs_run(ecs),
            }
            samples: dict[str, list[float]] = {name: [] for name in ways}
            for round_number in tqdm(range(warmup + runs), desc="rounds", unit="round"):
                for name, way in ways.items():
                    started = time.perf_counter()
                    own_timing = way()
                    elapsed = time.perf_counter() - started if own_timing is None else own_timing
                    if round_number >= warmup:
                        samples[name].append(elapsed)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {name: summarize(values) for name, values in samples.items()}


def report(results: dict[str, Any], runs: int) -> str:
    """The Markdown table and ratios quoted in docs/performance.md."""
    ecs = results["ECS POST /v1.1/tasks"]
    cli = results["docker run --rm"]
    bare = results["bare engine sequence (to answer)"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.node()} ({os.cpu_count()} cores, "
        f"Python {platform.python_version()}), {runs} interleaved runs each, trivial task "
        f"`{' '.join(CMD)}` in `{IMAGE}` (already present, so no pull).",
        "",
        "| way | n | min ms | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, figures in results.items():
        lines.append(
            f"| {name} | {figures['n']} | {figures['min']:.1f} | {figures['p50']:.1f} | "
            f"{figures['p90']:.1f} | {figures['p99']:.1f} | {figures['max']:.1f} |"
        )
    lines += [
        "",
        f"- ECS median / `docker run --rm` median: **{ecs['p50'] / cli['p50']:.2f}×** "
        "(target ≤ 1.0×)",
        f"- ECS overhead over the bare engine sequence at the median: "
        f"**{ecs['p50'] - bare['p50']:.1f} ms** (target ≤ 15 ms)",
        f"- ECS p99 / p50: **{ecs['p99'] / ecs['p50']:.2f}×** (target ≤ 2×)",
    ]
    return "\n".join(lines)


def write_docs(text: str) -> None:
    """Replace the block between the markers in docs/performance.md."""
    path = ROOT / "docs" / "performance.md"
    current = path.read_text() if path.exists() else f"{MARK_BEGIN}\n{MARK_END}\n"
    head, _, rest = current.partition(MARK_BEGIN)
    _, _, tail = rest.partition(MARK_END)
    path.write_text(f"{head}{MARK_BEGIN}\n{text}\n{MARK_END}{tail}")


def main() -> int:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    results = measure(args.runs, args.warmup)
    text = report(results, args.runs)
    print(text)
    if not args.no_write:
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        (out / "task_latency.json").write_text(json.dumps(results, indent=2) + "\n")
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
