"""The daemon life cycle: scheduling, health, metrics and graceful shutdown."""

from __future__ import annotations

import asyncio
import signal

import httpx

from statusbridge.config import Config, HttpSettings
from statusbridge.daemon import Daemon, Job
from statusbridge.endpoint import Endpoint, HealthReport
from statusbridge.metrics import StatusBridgeMetrics


class RecordingJob:
    """A job that counts runs and closes, optionally failing or blocking."""

    def __init__(self, name: str = "recording", *, fail: bool = False, block: bool = False):
        self.name = name
        self.interval_s = 3600.0
        self.fail = fail
        self.block = block
        self.runs = 0
        self.closed = False
        self.cancelled = False
        self.ran = asyncio.Event()

    async def run_once(self) -> None:
        self.runs += 1
        self.ran.set()
        if self.block:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        if self.fail:
            raise RuntimeError("boom")

    async def aclose(self) -> None:
        self.closed = True


class BrokenClose(RecordingJob):
    """A job whose close hook fails."""

    async def aclose(self) -> None:
        raise RuntimeError("close failed")


def config() -> Config:
    return Config(http=HttpSettings(port=0))


def test_recording_job_satisfies_the_protocol() -> None:
    """The job protocol is structural: any object with the four members is a Job."""
    assert isinstance(RecordingJob(), Job)


def test_second_signal_forces_exit() -> None:
    """The first signal asks for a graceful stop, the second forces it."""
    daemon = Daemon(config(), [])
    daemon.handle_exit(signal.SIGTERM, None)
    assert (daemon.should_exit, daemon.force_exit) == (True, False)
    daemon.handle_exit(signal.SIGINT, None)
    assert daemon.force_exit


async def test_serve_runs_jobs_serves_health_and_closes_jobs() -> None:
    """Jobs run at start-up, /health and /metrics answer, and shutdown closes every job."""
    job = RecordingJob()
    daemon = Daemon(config(), [job])
    serving = asyncio.create_task(daemon.serve())
    await asyncio.wait_for(job.ran.wait(), timeout=10)
    assert daemon.endpoint is not None
    base = f"http://127.0.0.1:{daemon.endpoint.port}"
    async with httpx.AsyncClient(trust_env=False) as http:
        for _ in range(100):
            health = await http.get(f"{base}/health")
            if health.json()["details"]["jobs"]["recording"]["last_success_age_s"] is not None:
                break
            await asyncio.sleep(0.01)
        metrics = await http.get(f"{base}/metrics")
        missing = await http.get(f"{base}/nope")
    assert health.status_code == 200
    assert health.json()["status"] == "green"
    assert 'statusbridge_job_runs_total{job="recording",outcome="success"} 1.0' in metrics.text
    assert missing.status_code == 404
    scheduled = daemon._scheduler.get_job("recording") if daemon._scheduler else None
    assert scheduled is not None
    assert (scheduled.max_instances, scheduled.coalesce) == (1, True)
    daemon.should_exit = True
    await asyncio.wait_for(serving, timeout=10)
    assert job.closed


async def test_forced_exit_cancels_a_running_job() -> None:
    """A job stuck in its run is cancelled on the second signal and still closed."""
    job = RecordingJob(block=True)
    daemon = Daemon(config(), [job], grace_s=3600)
    serving = asyncio.create_task(daemon.serve())
    await asyncio.wait_for(job.ran.wait(), timeout=10)
    daemon.handle_exit(signal.SIGTERM, None)
    daemon.handle_exit(signal.SIGTERM, None)
    await asyncio.wait_for(serving, timeout=10)
    assert job.cancelled
    assert job.closed


async def test_health_turns_red_when_a_job_stops_succeeding() -> None:
    """A failing job is green during its first intervals, then reported red."""
    now = [1000.0]
    job = RecordingJob(fail=True)
    daemon = Daemon(config(), [job], clock=lambda: now[0])
    error = await daemon.run_job(job)
    assert isinstance(error, RuntimeError)
    assert daemon.health().green
    now[0] += 3 * job.interval_s + 1
    report = daemon.health()
    assert not report.green
    assert report.body()["status"] == "red"
    assert report.details["jobs"] == {
        "recording": {
            "status": "red",
            "last_success_age_s": None,
            "last_error": "boom",
            "interval_s": 3600.0,
        }
    }


async def test_run_all_once_reports_each_job_and_close_survives_failures() -> None:
    """once-mode returns every job's outcome; a failing close does not skip the others."""
    good, bad, broken = RecordingJob("good"), RecordingJob("bad", fail=True), BrokenClose("x")
    daemon = Daemon(config(), [good, bad, broken])
    outcomes = await daemon.run_all_once()
    assert outcomes["good"] is None
    assert isinstance(outcomes["bad"], RuntimeError)
    await daemon.close_jobs()
    assert good.closed
    assert bad.closed


async def test_red_health_is_a_503_in_ecs_shape() -> None:
    """/health answers ECS's {"status", "details"} document, with 503 when red."""
    report = HealthReport(False, {"jobs": {"x": {"status": "red"}}})
    endpoint = Endpoint("127.0.0.1", 0, metrics=StatusBridgeMetrics(), health=lambda: report)
    await endpoint.start()
    try:
        async with httpx.AsyncClient(trust_env=False) as http:
            answer = await http.get(f"http://127.0.0.1:{endpoint.port}/health")
    finally:
        await endpoint.stop()
    assert answer.status_code == 503
    assert answer.json() == {"status": "red", "details": {"jobs": {"x": {"status": "red"}}}}
