"""Soak / stress: the load mix for a bounded long run above the task slots, then a verdict.

Starts its own ``ecs serve`` (fresh ``ECS_INSTANCE_ID``, API keys on) with a short queue,
so that the clients outnumber slots plus queue now and then and the documented 503
"overloaded" answers occur. Runs ``bench/locustfile.py`` for ``--minutes`` (and at most
``--requests``), samples ECS's resident memory every few seconds, and at the end checks:

1. no container labelled with this ECS's instance id is left, while ECS still runs (its
   own cleanup, not the shutdown sweep) and after it stopped;
2. no 5xx other than 503 to a task request (a full queue), and no transport error;
3. every other answer is the one its request type expects;
4. ECS's RSS grew by less than ``--rss-growth-mib`` from after warm-up to the end.

Prints one verdict line and exits 1 if any check fails.

    .venv/bin/python -m bench.soak --minutes 10
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ecs_process import EcsServer, containers_of, make_keys, rss_kib
from bench.load import BENCH_SETTINGS, KEYS, ORDER
from bench.locust_run import LoadSpec, run_locust
from bench.report import ROOT, machine_line, summary_table, write_block
from bench.stats import Sample, summarize_run, unexplained_5xx

RSS_EVERY_S = 5.0
LEAK_WAIT_S = 15.0


@dataclass(frozen=True)
class Verdict:
    """The soak's checks and figures."""

    minutes: float
    users: int
    requests: int
    overloaded: int
    leaked_live: int
    leaked_after_stop: int
    bad_5xx: int
    transport_errors: int
    unexpected: int
    rss_start_kib: int
    rss_end_kib: int
    rss_bound_mib: float
    exit_code: int | None

    @property
    def rss_growth_mib(self) -> float:
        """ECS memory growth over the run."""
        return (self.rss_end_kib - self.rss_start_kib) / 1024

    @property
    def passed(self) -> bool:
        """Every check holds."""
        return (
            self.leaked_live == 0
            and self.leaked_after_stop == 0
            and self.bad_5xx == 0
            and self.transport_errors == 0
            and self.unexpected == 0
            and self.rss_growth_mib < self.rss_bound_mib
            and self.exit_code == 0
        )

    def line(self) -> str:
        """The one-line verdict."""
        return (
            f"soak {'PASS' if self.passed else 'FAIL'}: {self.minutes:g} min, {self.users} "
            f"clients, {self.requests} requests ({self.overloaded} documented 503 overloaded); "
            f"leaked containers {self.leaked_live} live / {self.leaked_after_stop} after stop; "
            f"unexplained 5xx {self.bad_5xx}; transport errors {self.transport_errors}; "
            f"other unexpected answers {self.unexpected}; ECS RSS "
            f"{self.rss_start_kib / 1024:.0f} → {self.rss_end_kib / 1024:.0f} MiB "
            f"({self.rss_growth_mib:+.1f}, bound {self.rss_bound_mib:g}); ECS exit {self.exit_code}"
        )


def judge(samples: list[Sample]) -> tuple[int, int, int, int]:
    """(503 overloaded, unexplained 5xx, transport errors, other unexpected answers)."""
    bad = unexplained_5xx(samples)
    overloaded = sum(1 for s in samples if s.status == 503 and s not in bad)
    transport = sum(1 for s in samples if s.status == 0)
    unexpected = sum(1 for s in samples if not s.ok and 0 < s.status < 500)
    return overloaded, len(bad), transport, unexpected


def wait_for_no_containers(instance_id: str, timeout_s: float) -> int:
    """Poll until no container of ``instance_id`` is left, or the timeout; return the count."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = len(containers_of(instance_id))
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def soak(args: Any, scratch: Path) -> tuple[Verdict, list[Sample], list[tuple[float, float]]]:
    """Run the soak and collect what the verdict needs."""
    hashes, pairs = make_keys(KEYS, scratch)
    settings = {
        **BENCH_SETTINGS,
        "ECS_CREDENTIALS_FILE": str(hashes),
        "ECS_MAX_QUEUED_TASKS": str(args.queue),
    }
    rss: list[tuple[float, float]] = []
    with EcsServer(scratch / "ecs.log", **settings) as ecs:
        run_locust(LoadSpec(ecs.url, 2, 40, 30, pairs))  # warm-up, as in the sweep
        rss_start = rss_kib(ecs.pid)
        done = threading.Event()

        def sample_rss() -> None:
            while not done.wait(RSS_EVERY_S):
                rss.append((time.time(), float(rss_kib(ecs.pid))))

        sampler = threading.Thread(target=sample_rss, daemon=True)
        rss.append((time.time(), float(rss_start)))
        sampler.start()
        try:
            spec = LoadSpec(ecs.url, args.concurrency, args.requests, int(args.minutes * 60), pairs)
            samples = run_locust(spec)
        finally:
            done.set()
            sampler.join()
        rss_end = rss_kib(ecs.pid)
        rss.append((time.time(), float(rss_end)))
        leaked_live = wait_for_no_containers(ecs.instance_id, LEAK_WAIT_S)
        exit_code = ecs.stop()
        leaked_after = len(containers_of(ecs.instance_id))
    overloaded, bad, transport, unexpected = judge(samples)
    verdict = Verdict(
        minutes=args.minutes,
        users=args.concurrency,
        requests=len(samples),
        overloaded=overloaded,
        leaked_live=leaked_live,
        leaked_after_stop=leaked_after,
        bad_5xx=bad,
        transport_errors=transport,
        unexpected=unexpected,
        rss_start_kib=rss_start,
        rss_end_kib=rss_end,
        rss_bound_mib=args.rss_growth_mib,
        exit_code=exit_code,
    )
    return verdict, samples, rss


def main() -> int:
    """Run the soak, print the verdict, write the results unless ``--no-write``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=12, help="clients (slots are 4)")
    parser.add_argument("--queue", type=int, default=6, help="ECS_MAX_QUEUED_TASKS for the run")
    parser.add_argument("--requests", type=int, default=200_000, help="request cap")
    parser.add_argument("--rss-growth-mib", type=float, default=32.0, help="memory bound")
    parser.add_argument("--no-write", action="store_true", help="verdict only, no files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecs-soak-") as scratch:
        verdict, samples, rss = soak(args, Path(scratch))
    if not args.no_write:
        write_results(verdict, samples, rss, args)
    print(verdict.line())
    return 0 if verdict.passed else 1


def write_results(
    verdict: Verdict, samples: list[Sample], rss: list[tuple[float, float]], args: Any
) -> None:
    """bench/results/soak.json, docs/img/soak.png and the ``soak`` block of the docs."""
    from bench.plots import latency_over_time  # matplotlib only when writing

    rows = summarize_run(samples, ORDER)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "verdict": {**vars(verdict), "passed": verdict.passed, "line": verdict.line()},
        "summary": [r.as_dict() for r in rows],
        "rss_kib": rss,
    }
    (out / "soak.json").write_text(json.dumps(document, indent=2) + "\n")
    images = ROOT / "docs" / "img"
    images.mkdir(parents=True, exist_ok=True)
    groups = {
        "task ok": ["task ok"],
        "noop+version+quick health": ["noop", "version", "health quick"],
    }
    latency_over_time(samples, groups, rss, images / "soak.png", width_s=max(5.0, args.minutes * 3))
    text = "\n".join(
        [
            f"{machine_line()}. {args.concurrency} clients for {args.minutes:g} minutes against "
            f"4 task slots and a queue of {args.queue}; latencies in ms.",
            "",
            summary_table(rows),
            "",
            f"`{verdict.line()}`",
            "",
            "![latency and ECS memory over the soak](img/soak.png)",
        ]
    )
    write_block("soak", text)


if __name__ == "__main__":
    sys.exit(main())
