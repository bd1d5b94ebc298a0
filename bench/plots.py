"""PNG plots of load runs with matplotlib's Agg backend (no display needed), kept small."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bench.stats import Sample, Summary, windows

DPI = 80  # with 8x4.5 in figures this keeps each PNG well under 200 KB


def save_figure(fig: Figure, path: Path, dpi: int = DPI) -> None:
    """Lay ``fig`` out, write it to ``path`` (its folder made if need be), free it."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def percentiles_vs_concurrency(
    sweep: Mapping[int, Sequence[Summary]], names: Sequence[str], path: Path
) -> None:
    """One panel per request type: p50, p90, p99 (ms, log scale) against concurrency."""
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6), squeeze=False)
    levels = sorted(sweep)
    for axis, name in zip(axes[0], names, strict=True):
        for q, style in (("p50", "o-"), ("p90", "s--"), ("p99", "^:")):
            values = [
                next((getattr(r, q) for r in sweep[c] if r.name == name), float("nan"))
                for c in levels
            ]
            axis.plot(levels, values, style, label=q)
        axis.set_title(name)
        axis.set_xlabel("concurrent clients")
        axis.set_xticks(levels)
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("latency ms")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def latency_over_time(
    samples: Sequence[Sample],
    groups: Mapping[str, Sequence[str]],
    rss: Sequence[tuple[float, float]],
    path: Path,
    width_s: float = 10.0,
) -> None:
    """Top: p50 and p99 per ``width_s`` window for each group of types; bottom: ECS RSS MiB."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    origin = min(s.started for s in samples) if samples else 0.0
    for label, names in groups.items():
        chosen = [s for s in samples if s.name in names]
        for q, style in ((50, "-"), (99, ":")):
            series = windows(chosen, width_s, q)
            top.plot(
                [t for t, _, _ in series], [v for _, v, _ in series], style, label=f"{label} p{q}"
            )
    top.set_yscale("log")
    top.set_ylabel(f"latency ms ({width_s:g} s windows)")
    top.grid(True, which="both", alpha=0.3)
    top.legend(fontsize="small", ncol=2)
    bottom.plot([t - origin for t, _ in rss], [kib / 1024 for _, kib in rss], "-")
    bottom.set_ylabel("ECS RSS MiB")
    bottom.set_xlabel("seconds into the run")
    bottom.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
