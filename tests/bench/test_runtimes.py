"""The runtime comparison's pure parts: schedule, engine times, ratios and tables."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from bench.runtimes import (
    WORKLOADS,
    Observation,
    Step,
    check_output,
    figures,
    ratios_to_baseline,
    run_time_ms,
    schedule,
    stage_table,
    summarize,
    table,
)

RUNTIMES = ("runc", "crun", "runsc")


def test_schedule_runs_every_cell_once_per_round() -> None:
    """Each (workload, runtime, way) appears exactly once in every round."""
    steps = schedule(4, ["trivial", "cpu"], RUNTIMES, ["ECS", "bare"])
    assert len(steps) == 4 * 2 * 3 * 2
    cells = Counter((s.workload, s.runtime, s.way) for s in steps)
    assert set(cells.values()) == {4}
    assert [s.round for s in steps] == sorted(s.round for s in steps)


def test_schedule_rotates_runtimes_and_flips_ways_between_rounds() -> None:
    """No runtime always goes first, and the two ways take turns at going first."""
    steps = schedule(3, ["trivial"], RUNTIMES, ["ECS", "bare"])
    firsts = [next(s.runtime for s in steps if s.round == r) for r in range(3)]
    assert firsts == ["runc", "crun", "runsc"]
    ways = [next(s.way for s in steps if s.round == r) for r in range(2)]
    assert ways == ["ECS", "bare"]


def test_run_time_is_started_to_finished_and_never_negative() -> None:
    """A container's run time is FinishedAt − StartedAt; one that beat its start record is 0."""
    state = {"StartedAt": "2026-12-02T01:06:00.1Z", "FinishedAt": "2026-12-02T01:06:00.35Z"}
    assert run_time_ms(state) == pytest.approx(250.0)
    early = {"StartedAt": "2026-12-02T01:06:00.5Z", "FinishedAt": "2026-12-02T01:06:00.4Z"}
    assert run_time_ms(early) == 0.0
    assert math.isnan(run_time_ms({"StartedAt": "", "FinishedAt": ""}))


def test_summary_gives_count_and_percentiles() -> None:
    """n, min, p50, p90, p99 and max of a list of milliseconds; NaN when it is empty."""
    figures_ = summarize([4.0, 1.0, 3.0, 2.0])
    assert (figures_["n"], figures_["min"], figures_["p50"], figures_["max"]) == (4, 1, 2.5, 4)
    assert figures_["p90"] == pytest.approx(3.7)
    assert math.isnan(summarize([])["p50"])


def test_ratios_are_over_the_baseline_and_nan_without_one() -> None:
    """Each median is divided by runc's; a zero or missing baseline gives NaN, not an error."""
    ratios = ratios_to_baseline({"runc": 100.0, "crun": 80.0, "runsc": 250.0})
    assert ratios == {"runc": 1.0, "crun": 0.8, "runsc": 2.5}
    assert math.isnan(ratios_to_baseline({"runc": 0.0, "crun": 5.0})["crun"])
    assert math.isnan(ratios_to_baseline({"crun": 5.0})["crun"])


def _observations() -> dict[Step, Observation]:
    seen = {}
    for index, (runtime, ms) in enumerate([("runc", 100.0), ("crun", 50.0), ("runc", 300.0)]):
        step = Step(index, "trivial", runtime, "ECS")
        seen[step] = Observation(ms, ms / 10, {"start": ms / 2})
    return seen


def test_figures_group_by_cell_and_ratio_to_runc() -> None:
    """Observations are grouped per workload, way and runtime, with medians over runc's."""
    result = figures(_observations())
    runc, crun = result["trivial"]["ECS"]["runc"], result["trivial"]["ECS"]["crun"]
    assert runc["latency_ms"]["n"] == 2
    assert runc["latency_ms"]["p50"] == 200.0
    assert runc["stages_ms"] == {"start": 100.0}
    assert crun["p50_over_runc"] == {"latency_ms": 0.25, "duration_ms": 0.25}


def test_tables_have_a_row_per_workload_and_runtime_present() -> None:
    """A runtime with no data is left out; ratios and stage means are formatted."""
    result = figures(_observations())
    rows = table(result, "ECS", ["trivial"], RUNTIMES)
    assert rows[0].startswith("| workload | runtime | n | latency p50 ms |")
    assert rows[2:] == [
        "| trivial | runc | 2 | 200 | 280 | 298 | 1.00× | 20.0 | 28.0 | 29.8 | 1.00× |",
        "| trivial | crun | 1 | 50.0 | 50.0 | 50.0 | 0.25× | 5.00 | 5.00 | 5.00 | 0.25× |",
    ]
    stages = stage_table(result, ["trivial"], RUNTIMES)
    assert stages[2] == "| trivial | runc | - | 100 | - | - |"


def test_output_check_wants_exit_0_and_the_proof_of_completion() -> None:
    """A task passes only when it exited 0 and its stream holds the expected text."""
    dd = next(w for w in WORKLOADS if w.name == "syscalls")
    check_output(dd, b"", f"{dd.expect}\n".encode(), 0)
    with pytest.raises(RuntimeError, match="exit 1"):
        check_output(dd, b"", dd.expect.encode(), 1)
    with pytest.raises(RuntimeError, match="syscalls"):
        check_output(dd, dd.expect.encode(), b"", 0)
