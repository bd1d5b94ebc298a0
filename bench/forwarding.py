"""ECS → SignalFx forwarding: CPU cost per cycle and end-to-end lag.

Everything runs on 127.0.0.1 in this process: an ECS-like ``/metrics`` server serving a
real prometheus-client registry with the ECS metric families (about 300 series), the
forwarding job with the real ``signalfx`` client, and the fake ingest receiver that
decodes what the client posts (both from ``tests/statusbridge``).

1. **CPU per cycle**: CPU time of one ``run_once()`` (scrape with httpx, parse, convert,
   validate, hand over) in the job's thread, plus the CPU the ``signalfx`` send thread
   spends serialising, gzipping and POSTing that cycle's batch. The fake servers' threads
   are not counted (they stand for ECS and SignalFx). Traffic is added between cycles so
   every cycle computes percentiles. Target: < 20 ms per target per cycle.
2. **Lag**: the job runs every ``--interval`` seconds like the scheduler would; at random
   moments a counter is incremented on the ECS side and the time until a datapoint
   carrying the new value reaches the receiver is measured. Target: median < one scrape
   interval + 1 s.

Prints medians and p90 and writes ``docs/performance-forwarding.md``.

    .venv/bin/python bench/forwarding.py --cycles 300 --lag-samples 30 --interval 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "statusbridge")]

from fake_ecs import EcsMetrics, MetricsServer  # noqa: E402
from fake_ingest import FakeIngest, ReceivedDatapoint  # noqa: E402

from statusbridge.forwarding import ForwardingJob, Target  # noqa: E402
from statusbridge.forwarding.prometheus import HistogramBaseline  # noqa: E402
from statusbridge.forwarding.signalfx import SignalFxSink  # noqa: E402
from statusbridge.logs import configure_logging  # noqa: E402

DOC = ROOT / "docs" / "performance-forwarding.md"
LAG_ROUTE = "/bench/lag"
# The fake receiver accepts any token.
BENCH_TOKEN = "bench-token"  # noqa: S105


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def thread_cpu(thread: threading.Thread | None) -> float:
    """CPU seconds used so far by ``thread`` (0 when it has not started)."""
    if thread is None or thread.ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def add_traffic(metrics: EcsMetrics, rng: random.Random) -> None:
    """A cycle's worth of requests and tasks on the ECS side."""
    for _ in range(20):
        route = rng.choice(("/v1.1/tasks", "/v1.1/_noop", "/v1.1/_health"))
        metrics.requests.labels("POST", route, "201").inc()
        metrics.request_duration.labels(route).observe(rng.expovariate(1 / 0.2))
    for stage in ("pull", "create", "start", "run", "logs", "delete"):
        metrics.stage_duration.labels(stage).observe(rng.expovariate(1 / 0.5))
    metrics.tasks.labels("exited").inc()


def series_count(text: str) -> int:
    """Sample lines in an exposition (what Prometheus calls series)."""
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


async def measure_cpu(cycles: int) -> dict[str, Any]:
    """CPU per scrape+convert+send cycle of one target, and the pure conversion alone."""
    rng = random.Random(1)
    metrics = EcsMetrics()
    metrics.populate()
    per_cycle: list[float] = []
    job_thread: list[float] = []
    sent: list[int] = []
    with MetricsServer(metrics) as ecs, FakeIngest() as ingest:
        sink = SignalFxSink(token=BENCH_TOKEN, ingest_endpoint=ingest.endpoint)
        async with httpx.AsyncClient() as http:
            # Every run is due: the job's own clock moves one interval per call.
            ticks = iter(range(0, 10 * (cycles + 2), 10))
            job = ForwardingJob(
                [Target(ecs.url, "bench")],
                http_client=http,
                sink=sink,
                monotonic=lambda: float(next(ticks)),
            )
            await job.run_once()  # baseline for the histogram deltas, and warm-up
            handed_before = sink.handed_over
            ingest.wait_for(lambda dps: len(dps) >= handed_before)
            for _ in range(cycles):
                add_traffic(metrics, rng)
                ingest.clear()
                sender = getattr(sink._client, "_send_thread", None)
                before_job, before_send = time.thread_time(), thread_cpu(sender)
                await job.run_once()
                after_job = time.thread_time()
                # Wait for the whole cycle's batch so the send thread's work is counted.
                handed = sink.handed_over - handed_before
                handed_before = sink.handed_over
                ingest.wait_for(lambda dps, n=handed: len(dps) >= n)
                after_send = thread_cpu(sender)
                per_cycle.append((after_job - before_job) + (after_send - before_send))
                job_thread.append(after_job - before_job)
                sent.append(handed)
            await job.aclose()
        text = metrics.text()
    baseline = HistogramBaseline()
    baseline.convert(text, timestamp_ms=1, dimensions={"node": "bench"})
    convert_only: list[float] = []
    for i in range(cycles):
        start = time.thread_time()
        baseline.convert(text, timestamp_ms=2 + i, dimensions={"node": "bench"})
        convert_only.append(time.thread_time() - start)
    return {
        "series": series_count(text),
        "created": sum(
            1 for line in text.splitlines() if line.startswith("ecs_") and "_created" in line
        ),
        "datapoints": statistics.median(sent),
        "cycle_ms": [v * 1000 for v in per_cycle],
        "job_thread_ms": [v * 1000 for v in job_thread],
        "convert_ms": [v * 1000 for v in convert_only],
    }


def lag_probe(
    metrics: EcsMetrics,
    ingest: FakeIngest,
    samples: int,
    interval: float,
    lags: list[float],
    done: Callable[[], None],
) -> None:
    """Increment a counter at random moments and time its arrival at the receiver."""
    rng = random.Random(2)
    counter = metrics.requests.labels("GET", LAG_ROUTE, "200")
    expected = 0
    try:
        for _ in range(samples):
            time.sleep(rng.uniform(0.2, interval * 1.7))
            ingest.clear()
            counter.inc()
            expected += 1
            started = time.monotonic()

            def arrived(dps: list[ReceivedDatapoint], want: int = expected) -> bool:
                return any(
                    dp.metric == "ecs.http.requests"
                    and dp.dimensions.get("route") == LAG_ROUTE
                    and dp.value == want
                    for dp in dps
                )

            points = ingest.wait_for(arrived, timeout=interval * 10 + 5)
            first = min(
                dp.received_at
                for dp in points
                if dp.metric == "ecs.http.requests"
                and dp.dimensions.get("route") == LAG_ROUTE
                and dp.value == expected
            )
            lags.append(first - started)
    finally:
        done()


async def measure_lag(samples: int, interval: float) -> list[float]:
    """End-to-end lag from an ECS-side increment to its datapoint at the receiver."""
    metrics = EcsMetrics()
    metrics.populate()
    lags: list[float] = []
    finished = asyncio.Event()
    loop = asyncio.get_running_loop()
    with MetricsServer(metrics) as ecs, FakeIngest() as ingest:
        sink = SignalFxSink(token=BENCH_TOKEN, ingest_endpoint=ingest.endpoint)
        async with httpx.AsyncClient() as http:
            job = ForwardingJob([Target(ecs.url, "bench", interval)], http_client=http, sink=sink)
            probe = threading.Thread(
                target=lag_probe,
                args=(
                    metrics,
                    ingest,
                    samples,
                    interval,
                    lags,
                    lambda: loop.call_soon_threadsafe(finished.set),
                ),
                daemon=True,
            )
            probe.start()
            # Fixed-rate runs, as APScheduler's interval trigger does.
            start = time.monotonic()
            tick = 0
            while not finished.is_set():
                await job.run_once()
                tick += 1
                delay = start + tick * interval - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), timeout=max(0.0, delay))
            await job.aclose()
            probe.join()
    return lags


def summary(values: list[float]) -> str:
    """``median / p90 / max`` with two decimals."""
    return f"{statistics.median(values):.2f} / {percentile(values, 0.9):.2f} / {max(values):.2f}"


def write_doc(cpu: dict[str, Any], lags_s: list[float], interval: float, args: str) -> None:
    """Write the figures and how they were measured to ``docs/performance-forwarding.md``."""
    machine = f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    python = f"Python {platform.python_version()}"
    cycle_ok = statistics.median(cpu["cycle_ms"]) < 20
    lag_ok = statistics.median(lags_s) < interval + 1
    DOC.write_text(
        f"""# Performance: ECS → SignalFx forwarding

Measured with `bench/forwarding.py` on {machine}, {python}; figures are benchmark
results, never test assertions. Reproduce with:

```
.venv/bin/python bench/forwarding.py {args}
```

Everything runs on 127.0.0.1 in one process: an ECS-like `/metrics` server serving a real
prometheus-client registry with the ECS metric families ({cpu["series"]} series in the
exposition, {cpu["created"]} of them the `_created` timestamps the forwarder drops;
about {cpu["datapoints"]:.0f} SignalFx datapoints per cycle once histograms have a
baseline), the forwarding job with the real `signalfx` 1.1.16 client, and the fake
ingest receiver from `tests/statusbridge/fake_ingest.py`.

## CPU per cycle (one target)

CPU time of one `run_once()` in the job's thread (httpx scrape, parse, convert,
validate, hand over to the client) plus the CPU the `signalfx` send thread spends on
that cycle's batch (protobuf serialisation, gzip, POST). The fake servers' threads are
not counted. Target: under 20 ms per target per cycle — {"met" if cycle_ok else "NOT met"}.

| what | median / p90 / max (ms) |
|---|---|
| scrape + convert + send, both threads | {summary(cpu["cycle_ms"])} |
| of which the job's thread | {summary(cpu["job_thread_ms"])} |
| conversion alone (`HistogramBaseline.convert`, pure) | {summary(cpu["convert_ms"])} |

## End-to-end lag

The job runs every {interval:g} s at a fixed rate (as the scheduler's interval trigger
does); {len(lags_s)} times, at a random moment, a counter is incremented on the ECS side
and the time until a datapoint with the new value reaches the receiver is measured.
Expected: about half an interval on average, never more than one interval plus the
scrape and send time. Target: median under one interval + 1 s — {"met" if lag_ok else "NOT met"}.

| what | median / p90 / max (s) |
|---|---|
| increment → datapoint at the receiver | {summary(lags_s)} |

At the default 10 s interval the lag is dominated by the interval: about 5 s on
average and at most about 10 s plus the figures above.

The `signalfx` client's send thread posts as soon as datapoints are queued (batches of
at most 300), so the client adds milliseconds, not a batching delay.
"""
    )


async def main() -> None:
    """Run both measurements, print them and write the document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--lag-samples", type=int, default=30)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    # Per-cycle info lines would only measure the terminal; warnings still show.
    configure_logging("warning")
    cpu = await measure_cpu(args.cycles)
    print(f"exposition: {cpu['series']} series, ~{cpu['datapoints']:.0f} datapoints per cycle")
    print(f"CPU per cycle (ms, median/p90/max): {summary(cpu['cycle_ms'])}")
    print(f"  job thread only:                  {summary(cpu['job_thread_ms'])}")
    print(f"  conversion only:                  {summary(cpu['convert_ms'])}")
    lags = await measure_lag(args.lag_samples, args.interval)
    print(f"lag at {args.interval:g} s interval (s, median/p90/max): {summary(lags)}")
    if not args.no_doc:
        used = (
            f"--cycles {args.cycles} --lag-samples {args.lag_samples} --interval {args.interval:g}"
        )
        write_doc(cpu, lags, args.interval, used)
        print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
