"""Rendering load figures for docs/performance.md: tables, generated blocks, stage split."""

from __future__ import annotations

import math
from pathlib import Path

from bench.report import fmt_ms, summary_table, write_block
from bench.soak import Verdict, judge
from bench.stages import stage_costs, stage_totals
from bench.stats import Sample, Summary


def _summary(name: str) -> Summary:
    return Summary(name, 10, 1, 2, 0.5, 12.34, 150.0, 160.0, 1234.5, 2000.0, 3.25)


def test_milliseconds_keep_three_significant_figures() -> None:
    """Small latencies keep two decimals, large ones none; missing data is a dash."""
    assert fmt_ms(0.456) == "0.46"
    assert fmt_ms(12.34) == "12.3"
    assert fmt_ms(1234.5) == "1234"
    assert fmt_ms(math.nan) == "-"


def test_summary_table_has_one_row_per_type_and_bolds_the_total() -> None:
    """Each summary becomes a Markdown row; the ``all`` row stands out."""
    table = summary_table([_summary("noop"), _summary("all")]).splitlines()
    assert table[0].startswith("| request type | count | errors | 503 overloaded |")
    assert table[2] == "| noop | 10 | 1 | 2 | 0.50 | 12.3 | 150 | 160 | 1234 | 2000 | 3.2 |"
    assert table[3].startswith("| **all** |")


def test_write_block_replaces_only_its_own_block(tmp_path: Path) -> None:
    """Prose around the markers and other blocks survive a rewrite."""
    page = tmp_path / "performance.md"
    page.write_text(
        "intro\n<!-- load:begin -->\nold\n<!-- load:end -->\nmiddle\n"
        "<!-- soak:begin -->\nkeep\n<!-- soak:end -->\nend\n"
    )
    write_block("load", "new table", page)
    assert page.read_text() == (
        "intro\n<!-- load:begin -->\nnew table\n<!-- load:end -->\nmiddle\n"
        "<!-- soak:begin -->\nkeep\n<!-- soak:end -->\nend\n"
    )


def test_write_block_appends_a_block_the_page_lacks(tmp_path: Path) -> None:
    """A first run adds its block at the end of the page."""
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n")
    write_block("soak", "figures", page)
    assert page.read_text() == "# Performance\n\n<!-- soak:begin -->\nfigures\n<!-- soak:end -->\n"


_BEFORE = """\
# TYPE ecs_task_stage_duration_seconds histogram
ecs_task_stage_duration_seconds_sum{stage="run"} 1.0
ecs_task_stage_duration_seconds_count{stage="run"} 10.0
ecs_task_stage_duration_seconds_sum{stage="create"} 0.5
ecs_task_stage_duration_seconds_count{stage="create"} 10.0
"""
_AFTER = """\
# TYPE ecs_task_stage_duration_seconds histogram
ecs_task_stage_duration_seconds_sum{stage="run"} 3.0
ecs_task_stage_duration_seconds_count{stage="run"} 30.0
ecs_task_stage_duration_seconds_sum{stage="create"} 0.5
ecs_task_stage_duration_seconds_count{stage="create"} 10.0
# TYPE ecs_tasks counter
ecs_tasks_total{outcome="exited"} 30.0
"""


def test_stage_split_is_the_difference_between_two_scrapes() -> None:
    """Mean per stage over the run comes from the _sum and _count deltas, in pipeline order."""
    assert stage_totals(_BEFORE)["run"] == (1.0, 10.0)
    costs = stage_costs(_BEFORE, _AFTER)
    assert [(c.stage, c.count, round(c.mean_ms, 3)) for c in costs] == [
        ("create", 0, 0.0),
        ("run", 20, 100.0),
    ]


def test_soak_judges_overload_5xx_transport_errors_and_wrong_answers() -> None:
    """A task 503 is counted as overload; a 500, a refused connection and a 429 each fail."""
    samples = [
        Sample(0, "task ok", 5, 503, False),
        Sample(0, "task ok", 5, 500, False),
        Sample(0, "noop", 5, 0, False),
        Sample(0, "task ok", 5, 429, False),
        Sample(0, "noop", 5, 200, True),
    ]
    assert judge(samples) == (1, 1, 1, 1)


def test_soak_verdict_fails_on_a_leak_or_memory_growth_and_says_so() -> None:
    """The one-line verdict reads PASS only when every check holds."""
    good = Verdict(1, 12, 100, 3, 0, 0, 0, 0, 0, 60 * 1024, 62 * 1024, 32, 0)
    assert good.passed
    assert good.line().startswith("soak PASS: 1 min, 12 clients, 100 requests (3 documented")
    leaked = Verdict(1, 12, 100, 3, 1, 0, 0, 0, 0, 60 * 1024, 62 * 1024, 32, 0)
    grown = Verdict(1, 12, 100, 3, 0, 0, 0, 0, 0, 60 * 1024, 100 * 1024, 32, 0)
    assert not leaked.passed
    assert not grown.passed
    assert grown.line().startswith("soak FAIL")
