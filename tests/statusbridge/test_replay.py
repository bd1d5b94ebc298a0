"""The recorded day and `--replay`: the Pingdom → Cachet job seen without any account."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from replay_day import PATH, dump, make_day

from statusbridge.cli import main
from statusbridge.config import CheckSettings
from statusbridge.replay import replay

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """main() configures structlog and logging on captured streams; undo that afterwards."""
    handlers = list(logging.getLogger().handlers)
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = handlers


def test_the_shipped_day_is_the_generators_and_shaped_like_pingdom() -> None:
    """config/pingdom-replay-day.json is replay_day.py's output: newest first, a real outage."""
    assert PATH.read_text(encoding="utf-8") == dump(make_day())
    day = json.loads(PATH.read_text(encoding="utf-8"))
    results = day["results"]
    assert set(day) == {"activeprobes", "results"}
    assert [r["time"] for r in results] == sorted((r["time"] for r in results), reverse=True)
    downs = [r for r in results if r["status"] == "down"]
    assert len(downs) >= 20
    assert all("responsetime" not in r for r in downs)
    assert {r["probeid"] for r in results} == set(day["activeprobes"])


def test_once_replay_prints_points_statuses_and_the_incident(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`once --replay` prints what the job would write and draws the chart, sending nothing."""
    png = tmp_path / "day.png"
    assert main(["once", "--replay", str(PATH), "--png", str(png)]) == 0
    lines = capsys.readouterr().out.splitlines()
    points = [line for line in lines if line.startswith("point ")]
    statuses = [line for line in lines if line.startswith("status ")]
    incidents = [line for line in lines if line.startswith("incident ")]
    assert len([p for p in points if "uptime" in p]) >= 288  # a day of 5-minute buckets
    assert "point     2023-11-14 13:40  Website uptime                    0.00 %" in lines
    assert any("operational → major outage" in s for s in statuses)
    assert any("major outage → operational" in s for s in statuses)
    assert [i.split()[3] for i in incidents] == ["opened", "resolved"]
    assert lines[-1].startswith("replay: 1440 Pingdom results → ")
    assert png.read_bytes().startswith(b"\x89PNG")


async def test_replay_uses_the_configured_check_and_survives_without_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first [[checks]] entry drives the replay; no matplotlib means no chart, said so."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    lines: list[str] = []
    check = CheckSettings(
        pingdom_check_id=9,
        name="Shop",
        cachet_component_id=3,
        uptime_metric_id=4,
        down_after=5,
        interval_s=300,
    )
    report = await replay(PATH, check=check, png=tmp_path / "x.png", emit=lines.append)
    assert report.chart.startswith("not drawn: matplotlib is not installed")
    assert not (tmp_path / "x.png").exists()
    assert all("response time" not in line for line in lines)
    assert report.incidents == 0  # incidents are off for this check
    assert any(line.startswith("status") and "Shop: " in line for line in lines)


def test_run_replays_beside_the_forwarding(tmp_path: Path) -> None:
    """`run --replay` with the local config replays the day, then the daemon runs as usual."""
    env = {
        **os.environ,
        "STATUSBRIDGE_HTTP__PORT": "0",
        "STATUSBRIDGE_STATE_PATH": str(tmp_path / "s.sqlite3"),
    }
    command = [
        sys.executable,
        "-m",
        "statusbridge",
        "run",
        "--dry-run",
        "--config",
        str(ROOT / "config" / "statusbridge.local.toml"),
        "--replay",
        str(PATH),
        "--png",
        str(tmp_path / "day.png"),
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "daemon_started" in line:
                break
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "opened #1 'Website is down'" in out
    assert "replay: 1440 Pingdom results" in out
    assert (tmp_path / "day.png").exists()
