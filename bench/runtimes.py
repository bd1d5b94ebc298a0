"""runc vs crun vs gVisor (runsc), side by side: three workloads as ECS tasks and bare.

One run, one engine, three container runtimes, interleaved task by task so that drift on
the machine hits all three alike. One ``ecs serve`` per runtime (``ECS_RUNTIME``), all
started at the beginning on free 127.0.0.1 ports; for reference, the same container
lifecycle through the bare engine API (create → attach → start → wait → inspect, with
``HostConfig.Runtime`` set; the body ECS itself would send). Three workloads, each run
``--runs`` times per runtime and way, one task at a time:

1. trivial: ``sh -c 'echo hi'`` — what starting and stopping a container costs;
2. CPU-bound: a busybox shell loop (arithmetic and the ``[`` builtin, no syscalls);
3. syscall-heavy: ``dd bs=1`` from /dev/zero to /dev/null (two syscalls per byte).

Per runtime, workload and way: the client-observed latency and the container's run time
(``durationMs``: the engine's StartedAt → FinishedAt) as n, median, p90, p99, and each
median over runc's. ECS's own stage histogram, scraped around each task, splits ECS's
time by stage. Prints the tables, writes ``bench/results/runtimes.json``,
``docs/img/runtimes.png`` and the ``runtimes`` block of ``docs/performance.md``.

    .venv/bin/python -m bench.runtimes --runs 20
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import matplotlib.pyplot as plt
from tqdm import tqdm

from bench.ecs_process import EcsServer
from bench.plots import save_figure
from bench.report import ROOT, engine_version, fmt_ms, memory_gib, write_block
from bench.stages import stage_costs, stage_totals
from bench.stats import percentile
from bench.task_latency import engine_client
from ecs.demux import LogDemuxer
from ecs.pipeline import parse_engine_time
from ecs.sandbox import ContainerPolicy, ContainerRequest, container_config

IMAGE = "local/busybox:1"
RUNTIMES = ("runc", "crun", "runsc")
BASELINE = "runc"
GVISOR = "runsc"
ECS_WAY = "ECS"
BARE_WAY = "bare"
WAYS = (ECS_WAY, BARE_WAY)
WAY_TITLES = {
    ECS_WAY: "ECS `POST /v1.1/tasks`",
    BARE_WAY: "bare engine sequence",
}
LOOP_COUNT = 300_000
DD_BYTES = 50_000
# Stages reported per runtime; ``pull`` (an image check) and ``logs`` cost ~nothing here.
STAGES = ("create", "start", "run", "delete")
TASK_TIMEOUT_S = 300  # a syscall-heavy gVisor task takes seconds, far from this
OUTPUT_CAP = 64 * 1024


@dataclass(frozen=True)
class Workload:
    """One task: its command and a piece of output that proves it ran to the end."""

    name: str
    title: str
    cmd: tuple[str, ...]
    stream: str  # "stdout" or "stderr": where ``expect`` must appear
    expect: str


WORKLOADS = (
    Workload("trivial", "trivial `sh -c 'echo hi'`", ("sh", "-c", "echo hi"), "stdout", "hi\n"),
    Workload(
        "cpu",
        f"CPU-bound shell loop to {LOOP_COUNT:,}".replace(",", " "),
        (
            "sh",
            "-c",
            f"i=0; while [ $i -lt {LOOP_COUNT} ]; do i=$((i+1)); done; echo $i",
        ),
        "stdout",
        f"{LOOP_COUNT}\n",
    ),
    Workload(
        "syscalls",
        f"syscall-heavy `dd bs=1 count={DD_BYTES}`",
        ("dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={DD_BYTES}"),
        "stderr",
        f"{DD_BYTES}+0 records out",
    ),
)


@dataclass(frozen=True)
class Step:
    """One timed task of the schedule."""

    round: int
    workload: str
    runtime: str
    way: str


@dataclass(frozen=True)
class Observation:
    """What one task took: client-observed latency and the container's run time, ms."""

    latency_ms: float
    duration_ms: float
    stages: Mapping[str, float]  # ECS's stage ms for this task (empty for the bare way)


# ---- pure parts ------------------------------------------------------------------------


def schedule(
    rounds: int, workloads: Sequence[str], runtimes: Sequence[str], ways: Sequence[str]
) -> list[Step]:
    """Every (workload, runtime, way) once per round, interleaved.

    Each round runs every workload in turn, and for each workload every runtime back to
    back; the runtimes' order rotates from round to round and the ways' order flips, so
    no runtime always follows the same neighbour or always runs first.
    """
    steps = []
    for index in range(rounds):
        shift = index % len(runtimes)
        order = [*runtimes[shift:], *runtimes[:shift]]
        way_order = list(ways) if index % 2 == 0 else list(reversed(ways))
        for workload in workloads:
            for runtime in order:
                for way in way_order:
                    steps.append(Step(index, workload, runtime, way))
    return steps


def run_time_ms(state: Mapping[str, Any]) -> float:
    """StartedAt → FinishedAt of an inspected container, in ms (what ECS's durationMs is)."""
    started = parse_engine_time(str(state.get("StartedAt", "")))
    finished = parse_engine_time(str(state.get("FinishedAt", "")))
    if started is None or finished is None:
        return float("nan")
    # A container that exits before the engine records its start has FinishedAt earlier
    # than StartedAt; ECS answers 0 then, and so does this.
    return max((finished - started).total_seconds() * 1000, 0.0)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, min, median, p90, p99 and max of milliseconds."""
    return {
        "n": len(values),
        "min": min(values) if values else float("nan"),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
    }


def ratios_to_baseline(medians: Mapping[str, float], baseline: str = BASELINE) -> dict[str, float]:
    """Each runtime's median over the baseline's (NaN when the baseline has none)."""
    base = medians.get(baseline, float("nan"))
    return {
        runtime: value / base if base and base == base else float("nan")
        for runtime, value in medians.items()
    }


def figures(
    observations: Mapping[Step, Observation],
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """{workload: {way: {runtime: {latency_ms, duration_ms, ratios, stages_ms}}}}."""
    cells: dict[tuple[str, str, str], list[Observation]] = {}
    for step, seen in observations.items():
        cells.setdefault((step.workload, step.way, step.runtime), []).append(seen)
    result: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for (workload, way, runtime), seen in cells.items():
        stages: dict[str, float] = {}
        for name in STAGES:
            values = [s.stages[name] for s in seen if name in s.stages]
            if values:
                stages[name] = sum(values) / len(values)
        result.setdefault(workload, {}).setdefault(way, {})[runtime] = {
            "latency_ms": summarize([s.latency_ms for s in seen]),
            "duration_ms": summarize([s.duration_ms for s in seen]),
            "stages_ms": stages,
        }
    for ways in result.values():
        for runtimes in ways.values():
            for metric in ("latency_ms", "duration_ms"):
                medians = {rt: cell[metric]["p50"] for rt, cell in runtimes.items()}
                for runtime, ratio in ratios_to_baseline(medians).items():
                    runtimes[runtime].setdefault("p50_over_runc", {})[metric] = ratio
    return result


def ratio_text(value: float) -> str:
    """``2.35×``; a dash for no data."""
    return "-" if value != value else f"{value:.2f}×"


def table(
    results: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]],
    way: str,
    workloads: Sequence[str],
    runtimes: Sequence[str],
) -> list[str]:
    """The Markdown rows of one way: per workload and runtime, latency and run time."""
    lines = [
        "| workload | runtime | n | latency p50 ms | p90 | p99 | p50 × runc "
        "| durationMs p50 | p90 | p99 | p50 × runc |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for workload in workloads:
        cells = results.get(workload, {}).get(way, {})
        for runtime in runtimes:
            if runtime not in cells:
                continue
            cell = cells[runtime]
            latency, run = cell["latency_ms"], cell["duration_ms"]
            ratio = cell["p50_over_runc"]
            lines.append(
                f"| {workload} | {runtime} | {latency['n']} | {fmt_ms(latency['p50'])} | "
                f"{fmt_ms(latency['p90'])} | {fmt_ms(latency['p99'])} | "
                f"{ratio_text(ratio['latency_ms'])} | {fmt_ms(run['p50'])} | "
                f"{fmt_ms(run['p90'])} | {fmt_ms(run['p99'])} | "
                f"{ratio_text(ratio['duration_ms'])} |"
            )
    return lines


def stage_table(
    results: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]],
    workloads: Sequence[str],
    runtimes: Sequence[str],
) -> list[str]:
    """Mean ms per ECS stage, per workload and runtime."""
    lines = [
        "| workload | runtime | " + " | ".join(STAGES) + " |",
        "|---|---|" + "---|" * len(STAGES),
    ]
    for workload in workloads:
        cells = results.get(workload, {}).get(ECS_WAY, {})
        for runtime in runtimes:
            if runtime not in cells:
                continue
            stages = cells[runtime]["stages_ms"]
            values = " | ".join(fmt_ms(stages.get(s, float("nan"))) for s in STAGES)
            lines.append(f"| {workload} | {runtime} | {values} |")
    return lines


# ---- measuring -------------------------------------------------------------------------


def check_output(workload: Workload, stdout: bytes, stderr: bytes, exit_code: int) -> None:
    """Raise unless the task exited 0 and printed what proves it ran to the end."""
    text = (stdout if workload.stream == "stdout" else stderr).decode(errors="replace")
    if exit_code != 0 or workload.expect not in text:
        raise RuntimeError(
            f"{workload.name}: exit {exit_code}, stdout {stdout[-200:]!r}, stderr {stderr[-200:]!r}"
        )


def delete_count(exposition: str) -> float:
    """How many deletes ECS has timed so far."""
    return stage_totals(exposition).get("delete", (0.0, 0.0))[1]


def ecs_task(
    client: httpx.Client, server: EcsServer, workload: Workload, before: str
) -> tuple[Observation, str]:
    """One ``POST /v1.1/tasks``; waits for ECS's delete of it, returns the new scrape too.

    ECS deletes a task's container after answering; waiting for that delete (its stage
    count in ``/metrics``) keeps it from overlapping the next task and lets this task's
    stage costs be read from the scrapes before and after it.
    """
    body = {"docker_image": IMAGE, "cmd": list(workload.cmd), "timeout": TASK_TIMEOUT_S}
    started = time.perf_counter()
    answer = client.post("/v1.1/tasks", json=body)
    latency = (time.perf_counter() - started) * 1000
    if answer.status_code != 201:
        raise RuntimeError(f"ECS answered {answer.status_code}: {answer.text}")
    result = answer.json()
    check_output(
        workload,
        base64.b64decode(result["stdout"]),
        base64.b64decode(result["stderr"]),
        result["exitCode"],
    )
    deadline = time.monotonic() + 30
    after = server.metrics()
    while delete_count(after) <= delete_count(before) and time.monotonic() < deadline:
        time.sleep(0.01)
        after = server.metrics()
    stages = {c.stage: c.mean_ms for c in stage_costs(before, after) if c.count}
    return Observation(latency, float(result["durationMs"]), stages), after


def bare_task(engine: httpx.Client, runtime: str, workload: Workload) -> Observation:
    """The engine calls ECS makes for one task, with ``HostConfig.Runtime`` set.

    Timed to the answer (inspect done), as in ``bench.task_latency``; the delete after
    it is not counted, and finishes before the next task starts.
    """
    policy = ContainerPolicy(runtime=runtime, gvisor=runtime == GVISOR)
    request = ContainerRequest(IMAGE, list(workload.cmd), {}, memory_mb=256, cpus=1.0, pids=256)
    body = container_config(request, policy, {"io.ecs.bench": "runtimes"})
    started = time.perf_counter()
    created = engine.post("/containers/create", json=body)
    created.raise_for_status()
    container = created.json()["Id"]
    attach = {"stream": 1, "stdout": 1, "stderr": 1}
    demuxer = LogDemuxer(OUTPUT_CAP)
    try:
        with engine.stream("POST", f"/containers/{container}/attach", params=attach) as output:
            engine.post(f"/containers/{container}/start").raise_for_status()
            engine.post(f"/containers/{container}/wait").raise_for_status()
            for chunk in output.iter_raw():
                demuxer.feed(chunk)
        inspected = engine.get(f"/containers/{container}/json")
        inspected.raise_for_status()
        latency = (time.perf_counter() - started) * 1000
    finally:
        engine.delete(f"/containers/{container}", params={"force": 1, "v": 1})
    demuxer.close()
    state = inspected.json()["State"]
    check_output(
        workload, bytes(demuxer.stdout.data), bytes(demuxer.stderr.data), state["ExitCode"]
    )
    return Observation(latency, run_time_ms(state), {})


def engine_runtimes(engine: httpx.Client) -> dict[str, Any]:
    """The engine's ``/info`` runtimes: {name: {"path": ..., "runtimeArgs": [...]}}."""
    info = engine.get("/info").json()
    offered = info.get("Runtimes") or {}
    return {
        "default": info.get("DefaultRuntime"),
        "cgroup_version": info.get("CgroupVersion"),
        "cgroup_driver": info.get("CgroupDriver"),
        "runtimes": offered,
    }


def runtime_version(path: str) -> str:
    """The first line of ``path --version``."""
    try:
        answer = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    lines = (answer.stdout or answer.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def describe(engine: httpx.Client, ecs_version: str, runtimes: Sequence[str]) -> dict[str, Any]:
    """Date, machine and versions, for the JSON and the head of the block."""
    info = engine_runtimes(engine)
    versions = {}
    for name in runtimes:
        spec = info["runtimes"].get(name, {})
        versions[name] = {
            "version": runtime_version(str(spec.get("path") or name)),
            "path": spec.get("path"),
            "args": spec.get("runtimeArgs") or [],
        }
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "host": platform.node(),
            "cores": os.cpu_count(),
            "ram_gib": round(memory_gib(), 1),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "versions": {
            "ecs": ecs_version,
            "engine": engine_version(),
            "cgroup_version": info["cgroup_version"],
            "cgroup_driver": info["cgroup_driver"],
            "runtimes": versions,
        },
    }


def measure(
    runs: int, warmup: int, max_minutes: float, runtimes: Sequence[str], scratch: Path
) -> tuple[dict[Step, Observation], dict[str, Any]]:
    """Start one ECS per runtime, warm up, then run the interleaved schedule."""
    workloads = {w.name: w for w in WORKLOADS}
    with ExitStack() as stack:
        engine = stack.enter_context(engine_client())
        engine.timeout = httpx.Timeout(TASK_TIMEOUT_S + 60)
        offered = engine_runtimes(engine)["runtimes"]
        missing = [r for r in runtimes if r not in offered]
        if missing:
            raise SystemExit(f"the engine has no runtime {', '.join(missing)} (has {offered})")
        servers = {
            rt: stack.enter_context(EcsServer(scratch / f"ecs-{rt}.log", ECS_RUNTIME=rt))
            for rt in runtimes
        }
        clients = {
            rt: stack.enter_context(httpx.Client(base_url=s.url, timeout=TASK_TIMEOUT_S + 60))
            for rt, s in servers.items()
        }
        ecs_version = clients[runtimes[0]].get("/v1.1/_version").json()["version"]
        about = describe(engine, ecs_version, runtimes)
        scrapes = {rt: s.metrics() for rt, s in servers.items()}

        def run(step: Step) -> Observation:
            workload = workloads[step.workload]
            if step.way == BARE_WAY:
                return bare_task(engine, step.runtime, workload)
            seen, scrapes[step.runtime] = ecs_task(
                clients[step.runtime], servers[step.runtime], workload, scrapes[step.runtime]
            )
            return seen

        for step in schedule(warmup, ["trivial"], runtimes, WAYS):
            run(step)
        steps = schedule(runs, list(workloads), runtimes, WAYS)
        observations: dict[Step, Observation] = {}
        started = time.monotonic()
        deadline = started + max_minutes * 60
        capped = False
        with tqdm(steps, desc="tasks", unit="task", file=sys.stderr) as progress:
            for step in progress:
                if time.monotonic() > deadline:
                    capped = True
                    break
                progress.set_postfix_str(f"{step.workload} {step.runtime} {step.way}")
                observations[step] = run(step)
        about["run"] = {
            "runs": runs,
            "warmup": warmup,
            "max_minutes": max_minutes,
            "capped": capped,
            "tasks": len(observations),
            "elapsed_s": round(time.monotonic() - started, 1),
        }
    return observations, about


# ---- output ----------------------------------------------------------------------------


def head_line(about: Mapping[str, Any]) -> str:
    """The date, machine and versions sentence that opens the block."""
    machine, versions, run = about["machine"], about["versions"], about["run"]
    described = []
    for name, spec in versions["runtimes"].items():
        args = f" `{' '.join(spec['args'])}`" if spec["args"] else ""
        version = spec["version"].removeprefix(f"{name} version ")
        described.append(f"{name} {version}{args}")
    capped = f" **capped at {run['max_minutes']:g} min**," if run["capped"] else ""
    return (
        f"Measured {about['date'][:10]} on {machine['host']} ({machine['cores']} cores, "
        f"{machine['ram_gib']:.0f} GiB, Python {machine['python']}, {versions['engine']}), "
        f"kernel {machine['kernel']}, cgroup v{versions['cgroup_version']} "
        f"({versions['cgroup_driver']}); ECS {versions['ecs']}. Runtimes: "
        f"{', '.join(described)}. {run['runs']} runs per workload, runtime and way, "
        f"interleaved task by task (one at a time),{capped} {run['tasks']} tasks in "
        f"{run['elapsed_s'] / 60:.1f} min; image `{IMAGE}` (present, no pull); ECS without "
        "API keys."
    )


def report(results: Mapping[str, Any], about: Mapping[str, Any], runtimes: Sequence[str]) -> str:
    """The Markdown of the ``runtimes`` block."""
    names = [w.name for w in WORKLOADS]
    lines = [head_line(about), "", "Workloads:"]
    lines += [f"- `{w.name}`: {w.title}" for w in WORKLOADS]
    for way in WAYS:
        lines += [
            "",
            f"**{WAY_TITLES[way]}** (latency: client-observed; durationMs: the "
            "container's StartedAt → FinishedAt)",
            "",
        ]
        lines += table(results, way, names, runtimes)
    lines += [
        "",
        "Mean ms per ECS stage (`ecs_task_stage_duration_seconds`, scraped around "
        "each task; `run` is the container's run as ECS waits for it):",
        "",
    ]
    lines += stage_table(results, names, runtimes)
    lines += ["", "![runtimes: median and p90 per workload](img/runtimes.png)"]
    return "\n".join(lines)


def plot(results: Mapping[str, Any], runtimes: Sequence[str], path: Path) -> None:
    """One panel per workload: per runtime, p50 bars with whiskers to p90, values on top.

    A panel is linear unless its medians span more than 5× across runtimes (gVisor on the
    syscall-heavy task), where a log scale keeps runc's and crun's bars visible.
    """
    series = (
        (ECS_WAY, "latency_ms", "ECS latency"),
        (BARE_WAY, "latency_ms", "bare engine latency"),
        (ECS_WAY, "duration_ms", "ECS durationMs"),
    )
    names = [w.name for w in WORKLOADS if w.name in results]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.8), squeeze=False)
    width = 0.8 / len(series)
    for axis, workload in zip(axes[0], names, strict=True):
        spread = [
            results[workload].get(ECS_WAY, {}).get(rt, {}).get("latency_ms", {}).get("p50")
            for rt in runtimes
        ]
        known = [v for v in spread if v]
        logarithmic = bool(known) and max(known) > 5 * min(known)
        for index, (way, metric, label) in enumerate(series):
            cells = results[workload].get(way, {})
            p50 = [cells.get(rt, {}).get(metric, {}).get("p50", float("nan")) for rt in runtimes]
            p90 = [cells.get(rt, {}).get(metric, {}).get("p90", float("nan")) for rt in runtimes]
            xs = [r + (index - (len(series) - 1) / 2) * width for r in range(len(runtimes))]
            bars = axis.bar(
                xs,
                p50,
                width,
                label=label,
                yerr=[[0] * len(p50), [max(b - a, 0) for a, b in zip(p50, p90, strict=True)]],
                capsize=2,
            )
            axis.bar_label(bars, labels=[fmt_ms(v) for v in p50], fontsize="x-small")
        axis.set_title(workload)
        axis.set_xticks(range(len(runtimes)))
        axis.set_xticklabels(runtimes)
        if logarithmic:
            axis.set_yscale("log")
        axis.grid(True, axis="y", which="both", alpha=0.3)
        axis.set_ylabel("ms, log scale" if logarithmic else "ms")
    axes[0][0].legend(fontsize="small", title="bar p50, whisker p90", title_fontsize="small")
    save_figure(fig, path)


def as_json(
    results: Mapping[str, Any], about: Mapping[str, Any], observations: Mapping[Step, Observation]
) -> dict[str, Any]:
    """The document of ``bench/results/runtimes.json``; raw samples in run order too."""
    return {
        **about,
        "workloads": {w.name: list(w.cmd) for w in WORKLOADS},
        "results": results,
        "samples": [
            {
                "round": step.round,
                "workload": step.workload,
                "runtime": step.runtime,
                "way": step.way,
                "latency_ms": round(seen.latency_ms, 3),
                "duration_ms": round(seen.duration_ms, 3),
            }
            for step, seen in observations.items()
        ],
    }


def main() -> int:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=20, help="timed runs per workload, runtime and way"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed trivial rounds first")
    parser.add_argument("--max-minutes", type=float, default=30, help="hard cap on the timed part")
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--replot",
        action="store_true",
        help="measure nothing: redraw the plot and the docs block from bench/results/runtimes.json",
    )
    args = parser.parse_args()
    if BASELINE not in args.runtimes:
        parser.error(f"--runtimes must include {BASELINE}, the baseline of the ratios")
    out = ROOT / "bench" / "results" / "runtimes.json"
    image = ROOT / "docs" / "img" / "runtimes.png"
    if args.replot:
        document = json.loads(out.read_text())
        runtimes = list(document["versions"]["runtimes"])
        text = report(document["results"], document, runtimes)
        print(text)
        if not args.no_write:
            plot(document["results"], runtimes, image)
            write_block("runtimes", text)
        return 0
    with tempfile.TemporaryDirectory(prefix="ecs-runtimes-") as scratch:
        observations, about = measure(
            args.runs, args.warmup, args.max_minutes, args.runtimes, Path(scratch)
        )
    results = figures(observations)
    text = report(results, about, args.runtimes)
    print(text)
    if about["run"]["capped"]:
        print(f"warning: stopped at the {args.max_minutes:g} min cap", file=sys.stderr)
    if not args.no_write:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(as_json(results, about, observations), indent=2) + "\n")
        image.parent.mkdir(parents=True, exist_ok=True)
        plot(results, args.runtimes, image)
        write_block("runtimes", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
