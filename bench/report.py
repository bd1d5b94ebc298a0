"""Markdown for docs/performance.md: tables of summaries and the generated blocks.

Each generated part of the page sits between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->``; a run replaces its own block and leaves the prose around it alone.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from bench.stats import Summary

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "performance.md"


def fmt_ms(value: float) -> str:
    """Milliseconds to three significant figures at most; ``-`` for no data."""
    if math.isnan(value):
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def summary_table(rows: Sequence[Summary]) -> str:
    """One Markdown row per request type: count, errors, 503s, latency ms, throughput."""
    lines = [
        "| request type | count | errors | 503 overloaded | min | p50 | p90 | p95 | p99 | max "
        "| req/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row.min, row.p50, row.p90, row.p95, row.p99, row.max]
        latency = " | ".join(fmt_ms(v) for v in cells)
        name = f"**{row.name}**" if row.name == "all" else row.name
        lines.append(
            f"| {name} | {row.count} | {row.errors} | {row.overloaded} | {latency} "
            f"| {row.throughput:.1f} |"
        )
    return "\n".join(lines)


def engine_version() -> str:
    """``Engine 20.10.x (API 1.41), overlay2`` — or what the CLI could tell."""
    try:
        answer = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        driver = subprocess.run(
            ["docker", "info", "--format", "{{.Driver}}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"Docker Engine {answer.stdout.strip()}, {driver.stdout.strip()}"


def memory_gib() -> float:
    """Total memory from /proc/meminfo, in GiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return math.nan


def machine_line() -> str:
    """Date, host, cores, memory, Python and engine, for the head of each block."""
    return (
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.node()} ({os.cpu_count()} cores, "
        f"{memory_gib():.0f} GiB, Python {platform.python_version()}, {engine_version()})"
    )


def write_block(name: str, text: str, path: Path = DOCS) -> None:
    """Replace the ``name`` block of ``path`` with ``text`` (appended if it has none)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    current = path.read_text() if path.exists() else ""
    if begin not in current:
        path.write_text(f"{current.rstrip()}\n\n{begin}\n{text}\n{end}\n")
        return
    head, _, rest = current.partition(begin)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{begin}\n{text}\n{end}{tail}")
