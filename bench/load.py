"""Concurrency sweep: the original's load mix against an ECS of its own, with API keys on.

Starts ``ecs serve`` on a free 127.0.0.1 port with keys from ``ecs creds`` (and the
per-key rate limit raised, so that the limiter is not what is measured), then for each
concurrency runs ``bench/locustfile.py`` headless, bounded by ``--requests`` and
``--seconds``. Writes ``bench/results/load.json``, ``docs/img/load-percentiles.png`` and
the ``load`` block of ``docs/performance.md``.

    .venv/bin/python -m bench.load --levels 1 5 15 30 --requests 600 --seconds 90
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.ecs_process import EcsServer, containers_of, make_keys, rss_kib
from bench.locust_run import LoadSpec, run_locust
from bench.report import ROOT, fmt_ms, machine_line, summary_table, write_block
from bench.stages import stage_costs
from bench.stats import Summary, summarize_run

ORDER = (
    "task ok",
    "task image not found",
    "task bad body",
    "noop",
    "version",
    "health quick",
    "health full",
)
LIGHT = ("noop", "version", "health quick")
KEYS = 8
# Keys on, as in production, but the limiter at its default 5 r/s per key would turn
# most of the sweep into 429s: what is measured here is ECS, not the limiter.
BENCH_SETTINGS = {
    "ECS_RATE_LIMIT_PER_S": "100000",
    "ECS_RATE_LIMIT_BURST": "100000",
    "ECS_OPEN_ENDPOINTS": '["health", "metrics"]',
}


def sweep(
    levels: list[int], requests: int, seconds: int, scratch: Path
) -> tuple[dict[int, list[Summary]], dict[str, Any]]:
    """Run every level against one ECS; return the summaries and the run's side facts."""
    hashes, pairs = make_keys(KEYS, scratch)
    results: dict[int, list[Summary]] = {}
    stages: dict[int, list[dict[str, Any]]] = {}
    with EcsServer(scratch / "ecs.log", ECS_CREDENTIALS_FILE=str(hashes), **BENCH_SETTINGS) as ecs:
        # Warm up: first connections, first container of the image, bcrypt cache.
        run_locust(LoadSpec(ecs.url, 2, 40, 30, pairs))
        rss_start = rss_kib(ecs.pid)
        for users in tqdm(levels, desc="concurrency levels", unit="level"):
            before = ecs.metrics()
            samples = run_locust(LoadSpec(ecs.url, users, requests, seconds, pairs))
            stages[users] = [vars(c) for c in stage_costs(before, ecs.metrics())]
            results[users] = summarize_run(samples, ORDER)
        rss_end = rss_kib(ecs.pid)
        ecs.stop()
        leaked = containers_of(ecs.instance_id)
    facts = {"rss_kib": [rss_start, rss_end], "leaked": leaked, "stages": stages, "keys": KEYS}
    return results, facts


def light_p99_check(rows: list[Summary]) -> str:
    """The target line for the light endpoints at one level: p99 < 10 ms each."""
    parts = [f"{r.name} {fmt_ms(r.p99)} ms" for r in rows if r.name in LIGHT]
    met = all(r.p99 < 10 for r in rows if r.name in LIGHT)
    return f"{'met' if met else 'NOT met'} ({', '.join(parts)})"


def render(results: dict[int, list[Summary]], facts: dict[str, Any], args: Any) -> str:
    """The ``load`` block of docs/performance.md."""
    lines = [
        f"{machine_line()}; load generator on the same machine. Each level: at most "
        f"{args.requests} requests and {args.seconds} s; {facts['keys']} API keys, per-key "
        "rate limit raised; latencies in ms.",
        "",
    ]
    for users, rows in results.items():
        lines += [f"**{users} concurrent client{'s' if users > 1 else ''}**", ""]
        lines += [summary_table(rows), ""]
        stage_text = ", ".join(
            f"{c['stage']} {c['mean_ms']:.1f}" for c in facts["stages"][users] if c["count"]
        )
        lines += [f"Mean ms per task stage (ECS's histogram): {stage_text}.", ""]
    if 15 in results:
        lines.append(
            f"- Light endpoints p99 < 10 ms at 15 clients: **{light_p99_check(results[15])}**"
        )
    rss = facts["rss_kib"]
    lines.append(
        f"- ECS RSS {rss[0] / 1024:.0f} MiB after warm-up, {rss[1] / 1024:.0f} MiB at the end; "
        f"containers left behind: {len(facts['leaked'])}"
    )
    lines += ["", "![latency percentiles vs concurrency](img/load-percentiles.png)"]
    return "\n".join(lines)


def main() -> int:
    """Run the sweep and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 5, 15, 30])
    parser.add_argument("--requests", type=int, default=600, help="cap per level")
    parser.add_argument("--seconds", type=int, default=90, help="time cap per level")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecs-load-") as scratch:
        results, facts = sweep(args.levels, args.requests, args.seconds, Path(scratch))
    text = render(results, facts, args)
    print(text)
    if not args.no_write:
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        document = {
            "levels": {str(u): [r.as_dict() for r in rows] for u, rows in results.items()},
            **facts,
        }
        (out / "load.json").write_text(json.dumps(document, indent=2) + "\n")
        from bench.plots import percentiles_vs_concurrency  # matplotlib only when writing

        images = ROOT / "docs" / "img"
        images.mkdir(parents=True, exist_ok=True)
        percentiles_vs_concurrency(
            results,
            ["task ok", "task image not found", "noop", "health quick", "health full"],
            images / "load-percentiles.png",
        )
        write_block("load", text)
    return 1 if facts["leaked"] else 0


if __name__ == "__main__":
    sys.exit(main())
