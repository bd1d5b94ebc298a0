"""What API keys cost per request: the same requests to two ECS, keys on and keys off.

Both servers run side by side; requests alternate between them, one at a time. With
keys on, the first request of a key pays for one bcrypt check (in a worker thread); the
rest hit the cache of verified pairs. Target: medians within 2 ms of each other.

    .venv/bin/python -m bench.auth_cost --runs 300
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tqdm import tqdm

from bench.ecs_process import EcsServer, make_keys
from bench.load import BENCH_SETTINGS
from bench.report import ROOT, write_block
from bench.stats import percentile

REQUESTS = {
    "GET /v1.1/_noop": ("GET", "/v1.1/_noop", None),
    "GET /v1.1/_version": ("GET", "/v1.1/_version", None),
    "POST /v1.1/tasks": (
        "POST",
        "/v1.1/tasks",
        {"docker_image": "local/busybox:1", "cmd": ["true"]},
    ),
}
TASK_EVERY = 10  # one task per ten light requests keeps the run short


def timed(client: httpx.Client, method: str, path: str, body: object) -> float:
    """One request's wall time in ms; raises on an unexpected status."""
    started = time.perf_counter()
    answer = client.request(method, path, json=body)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
    return elapsed


def measure(runs: int, scratch: Path) -> dict[str, dict[str, float]]:
    """Median and p90 per request, keys on and off."""
    hashes, pairs = make_keys(1, scratch)
    key, _, secret = pairs.read_text().strip().partition(":")
    samples: dict[str, list[float]] = {}
    with (
        EcsServer(scratch / "off.log") as off,
        EcsServer(scratch / "on.log", ECS_CREDENTIALS_FILE=str(hashes), **BENCH_SETTINGS) as on,
        httpx.Client(base_url=off.url, timeout=60) as plain,
        httpx.Client(base_url=on.url, timeout=60, auth=(key, secret)) as keyed,
    ):
        for index in tqdm(range(runs), desc="rounds", unit="round"):
            for name, (method, path, body) in REQUESTS.items():
                if body is not None and index % TASK_EVERY:
                    continue
                for label, client in (("keys off", plain), ("keys on", keyed)):
                    elapsed = timed(client, method, path, body)
                    if index >= TASK_EVERY:  # the first rounds warm up (bcrypt, connections)
                        samples.setdefault(f"{name}|{label}", []).append(elapsed)
    return {
        series: {"n": len(v), "p50": percentile(v, 50), "p90": percentile(v, 90)}
        for series, v in samples.items()
    }


def report(figures: dict[str, dict[str, float]]) -> str:
    """The ``auth_cost`` block."""
    lines = [
        "| request | keys off p50 ms | keys on p50 ms | difference ms | keys off p90 | "
        "keys on p90 |",
        "|---|---|---|---|---|---|",
    ]
    for name in REQUESTS:
        off, on = figures[f"{name}|keys off"], figures[f"{name}|keys on"]
        lines.append(
            f"| {name} | {off['p50']:.2f} | {on['p50']:.2f} | {on['p50'] - off['p50']:+.2f} | "
            f"{off['p90']:.2f} | {on['p90']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Measure and write ``bench/results/auth_cost.json`` and the docs block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecs-auth-") as scratch:
        figures = measure(args.runs, Path(scratch))
    text = report(figures)
    print(text)
    if not args.no_write:
        (ROOT / "bench" / "results" / "auth_cost.json").write_text(
            json.dumps(figures, indent=2) + "\n"
        )
        write_block("auth_cost", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
