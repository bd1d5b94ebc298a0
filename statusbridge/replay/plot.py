"""The replay's chart: the uptime and response-time series it would publish, as a PNG.

matplotlib is optional (``pip install 'ecs-statusbridge[replay]'``, which
``scripts/run`` does): without it :func:`draw` says why and draws nothing.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from pathlib import Path

from statusbridge.pingdom_cachet.status import ComponentStatus
from statusbridge.replay.memory import Written


def draw(
    written: Written, path: Path, *, uptime_id: int, response_id: int, title: str
) -> str | None:
    """Write the chart to ``path``; return why not, or None when it was written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'ecs-statusbridge[replay]')"
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(11, 6), dpi=100)
    for axes, metric_id, label, colour in (
        (top, uptime_id, "uptime (%)", "tab:green"),
        (bottom, response_id, "response time (ms)", "tab:blue"),
    ):
        series = sorted(written.points.get(metric_id, {}).items())
        times, values = _with_gaps(series)
        axes.step(times, values, where="post", color=colour, linewidth=1.2)
        axes.set_ylabel(label)
        axes.grid(True, alpha=0.3)
        for start, end in _outages(written, last=series[-1][0] if series else 0):
            axes.axvspan(
                datetime.fromtimestamp(start, UTC),
                datetime.fromtimestamp(end, UTC),
                color="tab:red",
                alpha=0.2,
            )
    top.set_ylim(0, 105)
    top.set_title(title)
    bottom.set_xlabel("UTC (red: major outage on the status page)")
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return None


def _with_gaps(series: list[tuple[int, float]]) -> tuple[list[datetime], list[float]]:
    """Times and values, broken (NaN) where buckets have no point, so no line bridges them."""
    step = min((b[0] - a[0] for a, b in itertools.pairwise(series)), default=0)
    times: list[datetime] = []
    values: list[float] = []
    for index, (when, value) in enumerate(series):
        if index and step and when - series[index - 1][0] > step:
            times.append(datetime.fromtimestamp(series[index - 1][0] + step, UTC))
            values.append(math.nan)
        times.append(datetime.fromtimestamp(when, UTC))
        values.append(value)
    return times, values


def _outages(written: Written, *, last: float) -> list[tuple[float, float]]:
    """The spans the component spent in major outage."""
    spans = []
    began: float | None = None
    for when, status in written.statuses:
        if status == ComponentStatus.MAJOR_OUTAGE and began is None:
            began = when
        elif status != ComponentStatus.MAJOR_OUTAGE and began is not None:
            spans.append((began, when))
            began = None
    if began is not None:
        spans.append((began, max(last, began)))
    return spans
