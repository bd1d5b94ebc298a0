"""Where a task's time goes, from ECS's own ``ecs_task_stage_duration_seconds`` histogram.

Pure functions over the Prometheus text of ``GET /metrics``: scrape before and after a
run, and the difference of ``_sum`` and ``_count`` per stage is that run's cost split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

FAMILY = "ecs_task_stage_duration_seconds"
STAGE_ORDER = ("pull", "create", "start", "run", "logs", "delete")
_SERIES = re.compile(r"_(sum|count)$")


@dataclass(frozen=True)
class StageCost:
    """One stage over a run: how often it ran and its mean time in milliseconds."""

    stage: str
    count: int
    mean_ms: float


def stage_totals(exposition: str) -> dict[str, tuple[float, float]]:
    """{stage: (sum of seconds, count)} from one scrape."""
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != FAMILY:
            continue
        for sample in family.samples:
            kind = _SERIES.search(sample.name)
            stage = sample.labels.get("stage")
            if kind is None or stage is None:
                continue
            pair = totals.setdefault(stage, [0.0, 0.0])
            pair[0 if kind.group(1) == "sum" else 1] = sample.value
    return {stage: (pair[0], pair[1]) for stage, pair in totals.items()}


def stage_costs(before: str, after: str) -> list[StageCost]:
    """Per stage, the run between two scrapes: count and mean ms, in pipeline order."""
    old = stage_totals(before)
    new = stage_totals(after)
    stages = [s for s in STAGE_ORDER if s in new] + sorted(set(new) - set(STAGE_ORDER))
    costs = []
    for stage in stages:
        seconds = new[stage][0] - old.get(stage, (0.0, 0.0))[0]
        count = round(new[stage][1] - old.get(stage, (0.0, 0.0))[1])
        costs.append(StageCost(stage, count, seconds * 1000 / count if count else 0.0))
    return costs
