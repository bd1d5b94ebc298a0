"""The statusbridge command line, through its real entry point."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
import structlog
from fake_cachet import FakeCachet
from fake_pingdom import FakePingdom

from statusbridge import __version__
from statusbridge.cli import main, parse_duration

ROOT = Path(__file__).resolve().parents[2]
CHECK = 7


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """main() configures structlog and logging on captured streams; undo that afterwards."""
    handlers = list(logging.getLogger().handlers)
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = handlers


@pytest.fixture
def config_file(tmp_path: Path, pingdom_fake: FakePingdom, cachet_fake: FakeCachet) -> Path:
    """A config pointing at the fakes, with two hours of one-minute results."""
    now = int(time.time())
    cachet_fake.now = now
    pingdom_fake.add_check(CHECK)
    start = now - now % 60 - 7200
    pingdom_fake.add_results(
        CHECK,
        [
            {"probeid": 1, "time": start + 60 * i + 5, "status": "up", "responsetime": 200}
            for i in range(120)
        ],
    )
    cachet_fake.add_component(1)
    cachet_fake.add_metric(1)
    cachet_fake.add_metric(2)
    path = tmp_path / "statusbridge.toml"
    path.write_text(
        f"""
state_path = "{tmp_path / "state.sqlite3"}"
[http]
port = 0
[pingdom]
base_url = "{pingdom_fake.base_url}"
token = "{pingdom_fake.token}"
[cachet]
base_url = "{cachet_fake.base_url}"
token = "{cachet_fake.token}"
[[checks]]
pingdom_check_id = {CHECK}
cachet_component_id = 1
response_time_metric_id = 1
uptime_metric_id = 2
backfill_hours = 1
"""
    )
    return path


def writes(cachet: FakeCachet) -> list[str]:
    return [f"{r.method} {r.path}" for r in cachet.requests if r.method != "GET"]


def test_once_pushes_points_and_exits_zero(
    config_file: Path, cachet_fake: FakeCachet, capsys: pytest.CaptureFixture[str]
) -> None:
    """`once` runs every job once and exits 0 when all succeeded."""
    assert main(["once", "--config", str(config_file)]) == 0
    assert f"pingdom:{CHECK}: ok" in capsys.readouterr().out
    assert len(cachet_fake.point_rows(1)) == 60


def test_once_exits_non_zero_when_a_job_fails(
    config_file: Path, cachet_fake: FakeCachet, capsys: pytest.CaptureFixture[str]
) -> None:
    """`once` exits 1 and says which job failed when Cachet is down."""
    cachet_fake.down = True
    assert main(["once", "--config", str(config_file)]) == 1
    assert f"pingdom:{CHECK}: FAILED" in capsys.readouterr().out


def test_dry_run_once_writes_nothing(config_file: Path, cachet_fake: FakeCachet) -> None:
    """`--dry-run` (before or after the command) reads the APIs but writes nothing."""
    assert main(["--dry-run", "once", "--config", str(config_file)]) == 0
    assert main(["once", "--config", str(config_file), "--dry-run"]) == 0
    assert writes(cachet_fake) == []


def test_check_reports_each_api(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`check` reaches Pingdom and Cachet and reports one line each."""
    assert main(["check", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "pingdom: ok (1 checks visible)" in out
    assert "cachet: ok (version 2.4.0" in out
    assert "signalfx: no token" in out


def test_check_fails_on_a_bad_token(
    config_file: Path, pingdom_fake: FakePingdom, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check` exits 1 and shows Pingdom's error when the token is refused."""
    pingdom_fake.token = "rotated"
    assert main(["check", "--config", str(config_file)]) == 1
    assert "pingdom: FAILED: Pingdom: HTTP 401" in capsys.readouterr().out


def test_backfill_pushes_past_points(
    config_file: Path, cachet_fake: FakeCachet, capsys: pytest.CaptureFixture[str]
) -> None:
    """`backfill --since 2h` pushes the buckets of two hours, then a rerun finds them present."""
    assert main(["backfill", "--config", str(config_file), "--check", "7", "--since", "2h"]) == 0
    assert len(cachet_fake.point_rows(1)) >= 118
    minute = int(time.time() // 60)
    assert main(["backfill", "--config", str(config_file), "--check", "7", "--since", "2h"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    if int(time.time() // 60) == minute:
        assert "0 points pushed" in last
    else:  # a bucket completed between the runs: only its points are new
        assert re.search(r"\b[0-2] points pushed", last), last


def test_backfill_of_an_unknown_check_is_a_usage_error(
    config_file: Path, cachet_fake: FakeCachet, capsys: pytest.CaptureFixture[str]
) -> None:
    """`backfill` of a check that is not configured exits 2, naming it, and writes nothing,
    not even for the configured check given beside it."""
    argv = ["backfill", "--config", str(config_file), "--check", "7", "--check", "99"]
    assert main(argv) == 2
    assert "[99] not configured (configured: [7])" in capsys.readouterr().out
    assert writes(cachet_fake) == []


def second_check(config_file: Path, pingdom: FakePingdom, cachet: FakeCachet) -> None:
    """Add check 8 (component 2, metrics 3 and 4) with the same two hours of results."""
    pingdom.add_check(8)
    pingdom.add_results(8, [{**r, "probeid": 2} for r in pingdom.results[CHECK]])
    cachet.add_component(2)
    cachet.add_metric(3)
    cachet.add_metric(4)
    config_file.write_text(
        config_file.read_text() + "[[checks]]\npingdom_check_id = 8\ncachet_component_id = 2\n"
        "response_time_metric_id = 3\nuptime_metric_id = 4\n"
    )


def test_backfill_all_and_repeated_checks_push_each_configured_check(
    config_file: Path,
    pingdom_fake: FakePingdom,
    cachet_fake: FakeCachet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--all` walks every configured check; `--check` may be given once per check."""
    second_check(config_file, pingdom_fake, cachet_fake)
    assert main(["backfill", "--config", str(config_file), "--all", "--since", "2h"]) == 0
    out = capsys.readouterr().out
    assert "check 7:" in out
    assert "check 8:" in out
    assert len(cachet_fake.point_rows(1)) >= 118
    assert len(cachet_fake.point_rows(3)) >= 118
    argv = ["backfill", "--config", str(config_file), "--check", "8", "--check", "7"]
    assert main([*argv, "--since", "2h", "--dry-run"]) == 0
    assert re.findall(r"check (\d+):", capsys.readouterr().out) == ["7", "8"]


def test_backfill_until_stops_in_the_past_and_leaves_the_component_alone(
    config_file: Path, cachet_fake: FakeCachet
) -> None:
    """`--since 2h --until 1h` pushes the first hour's buckets only, and no component
    status: that is about now, which such a backfill does not look at."""
    argv = ["backfill", "--config", str(config_file), "--check", "7"]
    assert main([*argv, "--since", "2h", "--until", "1h"]) == 0
    newest = max(row[0] for row in cachet_fake.point_rows(1))
    assert 58 <= len(cachet_fake.point_rows(1)) <= 61
    assert newest <= time.time() - 3600
    assert [w for w in writes(cachet_fake) if "/components" in w] == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["backfill", "--since", "2h"], "one of the arguments --check --all is required"),
        (["backfill", "--all", "--check", "7"], "not allowed with argument"),
        (["backfill", "--all", "--since", "soon"], "--since"),
        (["run", "--port", "70000"], "is not a port"),
        (["run", "--log-level", "loud"], "invalid choice"),
    ],
)
def test_bad_arguments_are_usage_errors(
    config_file: Path,
    cachet_fake: FakeCachet,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    """Arguments argparse refuses exit 2 with its message, before anything is reached."""
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--config", str(config_file)])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert cachet_fake.requests == []


def test_backfill_until_must_be_after_since(
    config_file: Path, cachet_fake: FakeCachet, capsys: pytest.CaptureFixture[str]
) -> None:
    """An --until as far back as --since (an empty window) is a usage error."""
    argv = ["backfill", "--config", str(config_file), "--all", "--since", "1h", "--until", "2h"]
    assert main(argv) == 2
    assert "--until must be less far back than --since" in capsys.readouterr().out
    assert cachet_fake.requests == []


def test_backfill_all_without_checks_says_so(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--all` over a config with no checks is a usage error, not a silent success."""
    text = config_file.read_text()
    config_file.write_text(text[: text.index("[[checks]]")])
    assert main(["backfill", "--config", str(config_file), "--all"]) == 2
    assert "no [[checks]] configured" in capsys.readouterr().out


def test_check_refuses_dry_run(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`check` writes nothing anyway: a --dry-run before it is refused, not ignored."""
    assert main(["--dry-run", "check", "--config", str(config_file)]) == 2
    assert "does not apply" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check", "--config", str(config_file), "--dry-run"])


def test_bad_config_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad value stops the command with exit 2 and the key's name on stderr."""
    path = tmp_path / "bad.toml"
    path.write_text("[http]\nport = 70000\n")
    assert main(["once", "--config", str(path)]) == 2
    assert "http.port" in capsys.readouterr().err


def test_durations_parse() -> None:
    """--since accepts s/m/h/d/w suffixes."""
    assert [parse_duration(t) for t in ("90s", "15m", "6h", "7d", "2w")] == [
        90,
        900,
        21600,
        604800,
        1209600,
    ]


def test_run_with_the_local_config_stays_up_until_sigterm(tmp_path: Path) -> None:
    """`statusbridge run` with config/statusbridge.local.toml starts, serves and stops on TERM."""
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
    ]
    process = subprocess.Popen(
        command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "daemon_started" in line:
                break
        assert any("daemon_started" in line for line in lines), lines
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
        assert process.returncode == 0, rest
        assert "daemon_stopped" in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    """`--version` prints the version pyproject.toml gives the installed distribution."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"statusbridge {version('ecs-statusbridge')}\n"
    assert __version__ == version("ecs-statusbridge")


def test_check_fails_on_a_wrong_cachet_token(
    config_file: Path, cachet_fake: FakeCachet, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check` exits 1 when Cachet refuses the token, though its GETs take it for a guest."""
    cachet_fake.token = "rotated"
    assert main(["check", "--config", str(config_file)]) == 1
    out = capsys.readouterr().out
    assert "cachet: FAILED: Cachet refuses the token" in out
    assert writes(cachet_fake) == []


def test_check_passes_when_cachet_cannot_reach_github(
    config_file: Path, cachet_fake: FakeCachet, capsys: pytest.CaptureFixture[str]
) -> None:
    """A /version that fails (the Cachet server asks GitHub) is reported, not a failure."""
    cachet_fake.github_reachable = False
    assert main(["check", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "cachet: ok (version unknown (" in out
    assert "token accepted" in out


def test_check_warns_that_cachet_2_3_mails_every_status_change(
    tmp_path: Path, pingdom_fake: FakePingdom, capsys: pytest.CaptureFixture[str]
) -> None:
    """On Cachet 2.3 `check` warns that every component status change mails subscribers."""
    with FakeCachet(version="2.3") as cachet:
        cachet.add_component(1)
        cachet.add_metric(1)
        cachet.add_metric(2)
        pingdom_fake.add_check(CHECK)
        path = tmp_path / "sb.toml"
        path.write_text(
            f'state_path = "{tmp_path / "s.sqlite3"}"\n'
            f'[pingdom]\nbase_url = "{pingdom_fake.base_url}"\ntoken = "{pingdom_fake.token}"\n'
            f'[cachet]\nbase_url = "{cachet.base_url}"\ntoken = "{cachet.token}"\n'
            f"[[checks]]\npingdom_check_id = {CHECK}\ncachet_component_id = 1\n"
            "response_time_metric_id = 1\nuptime_metric_id = 2\n"
        )
        assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "API 2.3" in out
    assert "cachet: warning: Cachet 2.3 mails every subscriber" in out


def test_check_finds_shifted_point_times_without_writing(
    tmp_path: Path, pingdom_fake: FakePingdom, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the state's last bucket read back an hour early, `check` names APP_TIMEZONE."""
    from statusbridge.pingdom_cachet.state import StateFile

    with FakeCachet(version="2.4.1", app_timezone="Europe/Berlin") as cachet:
        now = int(time.time())
        cachet.now = now
        cachet.add_component(1)
        cachet.add_metric(1)
        cachet.add_metric(2)
        watermark = now - now % 60 - 60
        for metric in (1, 2):  # what an earlier statusbridge pushed, shifted by Cachet
            cachet.points[metric].append(
                {
                    "id": metric,
                    "metric_id": metric,
                    "value": 1.0,
                    "counter": 1,
                    "created_at": watermark - 60,
                    "updated_at": watermark + 5,
                }
            )
        pingdom_fake.add_check(CHECK)
        state = tmp_path / "s.sqlite3"
        with StateFile(state) as db:
            db.commit_bucket(CHECK, watermark)
        path = tmp_path / "sb.toml"
        path.write_text(
            f'state_path = "{state}"\n'
            f'[pingdom]\nbase_url = "{pingdom_fake.base_url}"\ntoken = "{pingdom_fake.token}"\n'
            f'[cachet]\nbase_url = "{cachet.base_url}"\ntoken = "{cachet.token}"\n'
            f"[[checks]]\npingdom_check_id = {CHECK}\ncachet_component_id = 1\n"
            "response_time_metric_id = 1\nuptime_metric_id = 2\n"
        )
        assert main(["check", "--config", str(path)]) == 1
        assert writes(cachet) == []
    out = capsys.readouterr().out
    assert "cachet: FAILED: metric 1: the last point statusbridge pushed reads back -1 h off" in out
    assert "APP_TIMEZONE" in out


def test_once_and_check_against_cachet_3(
    tmp_path: Path, pingdom_fake: FakePingdom, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a Cachet 3 base URL `check` reports API 3 and `once` pushes the points there."""
    from fake_cachet3 import FakeCachet3

    with FakeCachet3(path="/status") as cachet:
        now = int(time.time())
        cachet.now = now
        cachet.add_component(1)
        cachet.add_metric(1)
        cachet.add_metric(2)
        pingdom_fake.add_check(CHECK)
        start = now - now % 60 - 3600
        pingdom_fake.add_results(
            CHECK,
            [
                {"probeid": 1, "time": start + 60 * i + 5, "status": "up", "responsetime": 90}
                for i in range(60)
            ],
        )
        path = tmp_path / "sb.toml"
        path.write_text(
            f'state_path = "{tmp_path / "s.sqlite3"}"\n[http]\nport = 0\n'
            f'[pingdom]\nbase_url = "{pingdom_fake.base_url}"\ntoken = "{pingdom_fake.token}"\n'
            f'[cachet]\nbase_url = "{cachet.base_url}"\ntoken = "{cachet.token}"\n'
            f"[[checks]]\npingdom_check_id = {CHECK}\ncachet_component_id = 1\n"
            "response_time_metric_id = 1\nuptime_metric_id = 2\nbackfill_hours = 1\n"
        )
        assert main(["check", "--config", str(path)]) == 0
        assert main(["once", "--config", str(path)]) == 0
        assert len(cachet.point_rows(1)) >= 58
    out = capsys.readouterr().out
    assert "cachet: ok (version 3.x-dev, API 3, token accepted" in out


def test_run_flags_win_over_the_config_and_the_environment(tmp_path: Path) -> None:
    """`run --port P --log-level info` serves /health on P and logs at info, although the
    environment says port 0 and log level error."""
    with socket.socket() as probe:  # a port free now, for the daemon to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "STATUSBRIDGE_HTTP__PORT": "0",
        "STATUSBRIDGE_LOG_LEVEL": "error",
        "STATUSBRIDGE_STATE_PATH": str(tmp_path / "s.sqlite3"),
    }
    config = str(ROOT / "config" / "statusbridge.local.toml")
    command = [sys.executable, "-m", "statusbridge", "run", "--dry-run", "--config", config]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]
    process = subprocess.Popen(
        command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "daemon_started" in line:
                break
        else:
            pytest.fail("no daemon_started at info level")
        answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert "jobs" in answer.json() or "status" in answer.json(), answer.text
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
