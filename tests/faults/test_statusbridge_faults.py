"""statusbridge under faults: kill -9 mid-sync, broken API answers, lost state, ingest down."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import stamina
from structlog.testing import capture_logs

from statusbridge.config import CachetSettings, CheckSettings, Config, PingdomSettings
from statusbridge.daemon import Daemon
from statusbridge.pingdom_cachet.cachet import CachetClient
from statusbridge.pingdom_cachet.job import PingdomSyncJob
from statusbridge.pingdom_cachet.pingdom import PingdomClient
from statusbridge.pingdom_cachet.state import StateFile
from statusbridge.pingdom_cachet.sync import SyncContext
from tests.integration.conftest import wait_until
from tests.integration.ecs_process import free_port
from tests.statusbridge.fake_cachet import FakeCachet, Request, Response
from tests.statusbridge.fake_ecs import MetricsServer
from tests.statusbridge.fake_pingdom import FakePingdom

CHECK, RT, UP, COMPONENT = 7, 1, 2, 1


class SlowCachet(FakeCachet):
    """A Cachet whose point writes take a few milliseconds, so a kill lands mid-sync."""

    post_delay_s = 0.004

    def handle(self, request: Request) -> Response:
        """Answer as Cachet would, a little later for point writes."""
        if request.method == "POST" and request.path.endswith("/points"):
            time.sleep(self.post_delay_s)
        return super().handle(request)


def minute_results(start: int, end: int) -> list[dict[str, Any]]:
    """One up result per minute in [start, end), response time a function of the minute."""
    return [
        {"probeid": 1, "time": t + 5, "status": "up", "responsetime": 100 + (t // 60) % 500}
        for t in range(start - start % 60, end, 60)
    ]


@pytest.fixture
def fakes() -> Iterator[tuple[FakePingdom, SlowCachet]]:
    """Pingdom with the last seven hours of results, Cachet with a component and metrics."""
    now = int(time.time())
    with FakePingdom() as pingdom, SlowCachet() as cachet:
        pingdom.add_check(CHECK, resolution=1)
        pingdom.add_results(CHECK, minute_results(now - 7 * 3600, now + 3600))
        cachet.add_component(COMPONENT, "Website")
        cachet.add_metric(RT, threshold=1)
        cachet.add_metric(UP, threshold=1)
        # Only points created after "now" would fold into one another; ours are older.
        cachet.now = now + 7200
        yield pingdom, cachet  # type: ignore[misc]


def write_config(
    path: Path, pingdom: FakePingdom, cachet: FakeCachet, state: Path, **extra: str
) -> Path:
    """A TOML config for one check against the fakes, HTTP endpoint off."""
    lines = [
        f'state_path = "{state}"',
        "log_json = true",
        "[http]",
        "enabled = false",
        "[pingdom]",
        f'base_url = "{pingdom.base_url}"',
        f'token = "{pingdom.token}"',
        "[cachet]",
        f'base_url = "{cachet.base_url}"',
        f'token = "{cachet.token}"',
        "[cachet.retry]",
        "attempts = 2",
        "wait_initial_s = 0.05",
        "[[checks]]",
        f"pingdom_check_id = {CHECK}",
        f"cachet_component_id = {COMPONENT}",
        f"response_time_metric_id = {RT}",
        f"uptime_metric_id = {UP}",
        f"backfill_hours = {extra.get('backfill_hours', '6')}",
        "settle_s = 60",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def statusbridge(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the statusbridge CLI to completion."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STATUSBRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "statusbridge", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def assert_exact_points(cachet: FakeCachet, newest_end: int) -> None:
    """Each metric holds exactly one point per bucket, contiguous up to ``newest_end``."""
    for metric in (RT, UP):
        times = [row[0] for row in cachet.point_rows(metric)]
        assert len(times) == len(set(times)), f"metric {metric}: doubled points"
        assert times, f"metric {metric}: no points"
        assert times == list(range(times[0], times[-1] + 60, 60)), f"metric {metric}: a gap"
        assert times[-1] == newest_end - 60
    values = {row[0]: row[1] for row in cachet.point_rows(RT)}
    for bucket, value in values.items():
        assert value == 100 + (bucket // 60) % 500
    assert all(row[1] == 100.0 and row[2] == 1 for row in cachet.point_rows(UP))


def newest_complete_bucket_end() -> int:
    """The end of the newest bucket a run now would push (settle_s = 60)."""
    now = int(time.time())
    return (now - 60) - (now - 60) % 60


def run_to_the_newest_bucket(config: Path) -> int:
    """Run ``statusbridge once`` until no minute boundary passed during the run; return
    the end of the newest bucket it pushed."""
    for _ in range(3):
        end = newest_complete_bucket_end()
        finished = statusbridge("once", "--config", str(config))
        assert finished.returncode == 0, finished.stderr + finished.stdout
        if end == newest_complete_bucket_end():
            return end
    raise AssertionError("three runs in a row crossed a minute boundary")


@pytest.mark.long
def test_kill_9_twenty_times_mid_sync_leaves_exactly_the_expected_points(
    tmp_path: Path, fakes: tuple[FakePingdom, SlowCachet]
) -> None:
    """statusbridge killed with SIGKILL at random points of a sync, 20 times in a row, then
    let finish: Cachet holds every point of the backfill exactly once."""
    pingdom, cachet = fakes
    config = write_config(tmp_path / "sb.toml", pingdom, cachet, tmp_path / "state.sqlite3")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STATUSBRIDGE_")}
    rng = random.Random(7)
    posts_seen = [0]
    for _ in range(20):
        process = subprocess.Popen(
            [sys.executable, "-m", "statusbridge", "once", "--config", str(config)],
            env=clean,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # The kill point is a random number of point writes into the run, not a time: how
        # long the daemon takes to start varies with the machine's load, and a kill by the
        # clock lands before the first write on a slow day or after the last on a fast one.
        kill_point = partial(reached, process, cachet, posts(cachet) + rng.randint(3, 25))
        # Every 2 ms: a point write takes 4 ms here, so the kill lands within one of it.
        assert wait_until(kill_point, 60, every_s=0.002), "no kill point within a minute"
        assert process.poll() is None, "the run ended before its kill point"
        process.kill()
        process.wait(timeout=30)
        posts_seen.append(posts(cachet))
    # Every kill landed mid-sync: each run wrote some points and none finished the backfill.
    assert posts_seen == sorted(set(posts_seen)), posts_seen
    assert_exact_points(cachet, run_to_the_newest_bucket(config))
    assert posts(cachet) > posts_seen[-1], "the last run had nothing left to write"


def posts(cachet: FakeCachet) -> int:
    """How many POSTs Cachet has answered so far."""
    return sum(r.method == "POST" for r in list(cachet.requests))


def reached(process: subprocess.Popen[bytes], cachet: FakeCachet, count: int) -> bool:
    """Cachet has answered ``count`` POSTs, or ``process`` ended first."""
    return posts(cachet) >= count or process.poll() is not None


class FaultyTransport(httpx.AsyncBaseTransport):
    """Forwards to the real transport, except for the first ``count`` matching requests."""

    def __init__(
        self,
        fault: str,
        matches: Callable[[httpx.Request], bool],
        count: int,
        hang_target: str,
    ) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.fault = fault
        self.matches = matches
        self.left = count
        self.hang_target = hang_target

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer the fault for a matching request, else what the server says."""
        if self.left <= 0 or not self.matches(request):
            return await self.inner.handle_async_request(request)
        self.left -= 1
        if self.fault == "hang":
            # A real server that accepts and never answers: the client's own timeout acts.
            host, port = self.hang_target.split(":")
            hung = request.url.copy_with(host=host, port=int(port))
            return await self.inner.handle_async_request(
                httpx.Request(
                    request.method, hung, headers=request.headers, extensions=request.extensions
                )
            )
        bodies = {
            "html": (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
            "truncated": (b'{"data": {"id": 12, "value": 1', "application/json"),
            "wrong_types": (
                b'{"data": {"id": "twelve", "created_at": 5}, "results": "none", '
                b'"check": [], "meta": "x"}',
                "application/json",
            ),
        }
        body, content_type = bodies[self.fault]
        return httpx.Response(200, content=body, headers={"Content-Type": content_type})

    async def aclose(self) -> None:
        """Close the real transport."""
        await self.inner.aclose()


@pytest.fixture
def hanging_port() -> Iterator[str]:
    """``127.0.0.1:PORT`` of a listener that accepts and never answers."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def state_rows(path: Path) -> list[tuple[Any, ...]]:
    """The state database's check rows, read with plain sqlite3 (integrity checked)."""
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return db.execute("SELECT check_id, watermark, pending_bucket FROM checks").fetchall()


FAULT_POINTS = {
    "pingdom results": lambda r: "/results/" in r.url.path,
    "cachet point write": lambda r: r.method == "POST" and r.url.path.endswith("/points"),
    "cachet metric read": lambda r: r.method == "GET" and r.url.path.endswith(f"/metrics/{UP}"),
}


@pytest.mark.parametrize("fault", ["html", "truncated", "wrong_types", "hang"])
@pytest.mark.parametrize("where", sorted(FAULT_POINTS))
async def test_broken_answers_fail_the_run_and_the_next_one_heals(
    tmp_path: Path,
    fakes: tuple[FakePingdom, SlowCachet],
    hanging_port: str,
    fault: str,
    where: str,
) -> None:
    """HTML, truncated JSON, wrong types or silence from Pingdom or Cachet fail the run
    with a logged error, leave a consistent state file, and the next run completes."""
    pingdom, cachet = fakes
    cachet.post_delay_s = 0
    matches = FAULT_POINTS[where]
    if where == "cachet point write":
        matches = _after(40, matches)  # mid-sync: twenty buckets are in by then
    # Three in a row: more than the retry budget, which heals a single timeout on its own.
    transport = FaultyTransport(fault, matches, 3, hanging_port)
    check = CheckSettings(
        pingdom_check_id=CHECK,
        cachet_component_id=COMPONENT,
        response_time_metric_id=RT,
        uptime_metric_id=UP,
        backfill_hours=1,
    )
    pingdom_settings = PingdomSettings(
        base_url=pingdom.base_url, token=pingdom.token, timeout_s=0.5
    )
    cachet_settings = CachetSettings(base_url=cachet.base_url, token=cachet.token, timeout_s=0.5)
    state_path = tmp_path / "state.sqlite3"
    async with httpx.AsyncClient(transport=transport) as http:
        with StateFile(state_path) as state, stamina.set_testing(True, attempts=2):
            context = SyncContext(
                pingdom=PingdomClient(http, pingdom_settings),
                cachet=CachetClient(http, cachet_settings),
                state_file=state,
            )
            job = PingdomSyncJob(check, context)
            daemon = Daemon(Config(), [job])
            with capture_logs() as logs:
                error = await daemon.run_job(job)
            assert error is not None
            failed = [e for e in logs if e["event"] == "job_failed"]
            assert failed
            assert failed[0]["job"] == f"pingdom:{CHECK}"
            rows = state_rows(state_path)
            for _, watermark, _pending in rows:
                # Everything below the watermark is in Cachet; nothing above was committed.
                if watermark is not None:
                    times = {row[0] for row in cachet.point_rows(RT)}
                    assert all(t in times for t in range(watermark - 600, watermark, 60))
            transport.left = 0
            for _ in range(3):  # a minute boundary may pass during the run
                end = newest_complete_bucket_end()
                assert await daemon.run_job(job) is None
                if end == newest_complete_bucket_end():
                    break
    assert_exact_points(cachet, end)


def _after(skip: int, matches: Callable[[httpx.Request], bool]) -> Callable[[httpx.Request], bool]:
    """A matcher that lets the first ``skip`` matching requests through."""
    seen = 0

    def match(request: httpx.Request) -> bool:
        nonlocal seen
        if not matches(request):
            return False
        seen += 1
        return seen > skip

    return match


def test_corrupt_state_file_stops_with_the_recovery_and_the_recovery_works(
    tmp_path: Path, fakes: tuple[FakePingdom, SlowCachet]
) -> None:
    """A corrupt state file stops every run with a message naming the file and the
    recovery; following docs/statusbridge.md's recovery neither loses nor doubles points."""
    pingdom, cachet = fakes
    cachet.post_delay_s = 0
    state = tmp_path / "state.sqlite3"
    config = write_config(tmp_path / "sb.toml", pingdom, cachet, state, backfill_hours="1")
    first = statusbridge("once", "--config", str(config))
    assert first.returncode == 0, first.stderr
    pushed = len(cachet.point_rows(RT))
    state.write_bytes(b"this is not a database" * 100)
    for path in (Path(f"{state}-wal"), Path(f"{state}-shm")):
        path.unlink(missing_ok=True)
    broken = statusbridge("once", "--config", str(config))
    assert broken.returncode == 1
    message = broken.stdout + broken.stderr
    assert str(state) in message
    assert "move" in message
    assert "State recovery" in message
    assert len(cachet.point_rows(RT)) == pushed  # nothing written on a broken state
    # The documented recovery: move it aside and run again.
    state.rename(f"{state}.broken")
    end = run_to_the_newest_bucket(config)
    assert_exact_points(cachet, end)


def test_deleted_state_file_doubles_no_point(
    tmp_path: Path, fakes: tuple[FakePingdom, SlowCachet]
) -> None:
    """A state file deleted between runs is started afresh, and the points already in
    Cachet for the backfill window are found, not posted a second time."""
    pingdom, cachet = fakes
    cachet.post_delay_s = 0
    state = tmp_path / "state.sqlite3"
    config = write_config(tmp_path / "sb.toml", pingdom, cachet, state, backfill_hours="1")
    assert statusbridge("once", "--config", str(config)).returncode == 0
    for path in (state, Path(f"{state}-wal"), Path(f"{state}-shm")):
        path.unlink(missing_ok=True)
    end = run_to_the_newest_bucket(config)
    assert_exact_points(cachet, end)


def test_signalfx_ingest_down_counts_drops_and_the_daemon_keeps_running(tmp_path: Path) -> None:
    """With SignalFx ingest unreachable the forwarding job keeps running every cycle, the
    failed sends are counted in statusbridge's own metrics, and SIGTERM still exits 0."""
    port = free_port()
    dead_ingest = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    with MetricsServer() as ecs:
        config = tmp_path / "sb.toml"
        config.write_text(
            "log_json = true\n"
            f"[http]\nport = {port}\n"
            f'[signalfx]\ntoken = "sfx-token"\ningest_endpoint = "{dead_ingest}"\n'
            f'[[ecs_targets]]\nurl = "{ecs.url}"\ninterval_s = 1\n'
        )
        clean = {k: v for k, v in os.environ.items() if not k.startswith("STATUSBRIDGE_")}
        log = (tmp_path / "sb.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "statusbridge", "run", "--config", str(config)],
            env=clean,
            stdout=log,
            stderr=log,
        )
        try:
            deadline = time.monotonic() + 60
            metrics = ""
            while time.monotonic() < deadline:
                assert daemon.poll() is None, (tmp_path / "sb.log").read_text()
                try:
                    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.HTTPError:
                    metrics = ""
                if (
                    _value(metrics, "statusbridge_signalfx_client_errors_total") >= 2
                    and _value(
                        metrics, 'statusbridge_job_runs_total{job="forwarding",outcome="success"}'
                    )
                    >= 3
                ):
                    break
                time.sleep(0.3)
            assert _value(metrics, "statusbridge_signalfx_client_errors_total") >= 2, metrics
            assert daemon.poll() is None
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=60) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
            log.close()


def _value(exposition: str, name: str) -> float:
    """One sample's value in a Prometheus text exposition (0 when absent)."""
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
