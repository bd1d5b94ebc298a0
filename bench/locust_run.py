"""One bounded headless Locust run of ``bench/locustfile.py``, returning its raw samples.

Three bounds, so a run always ends by itself: the request cap (the locustfile quits at
it), Locust's ``--run-time``, and a hard kill of the Locust process a minute after that.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.stats import Sample

ROOT = Path(__file__).resolve().parent.parent
LOCUST = str(ROOT / ".venv" / "bin" / "locust")
LOCUSTFILE = str(ROOT / "bench" / "locustfile.py")


@dataclass(frozen=True)
class LoadSpec:
    """What one run does: how many users, for how long at most, how many requests at most."""

    url: str
    users: int
    max_requests: int
    max_seconds: int
    credentials: Path | None = None


def run_locust(spec: LoadSpec) -> list[Sample]:
    """Run Locust headless with ``spec`` and return every request it made."""
    if not spec.url.startswith("http://127.0.0.1:"):
        raise ValueError(f"load runs only target 127.0.0.1, not {spec.url}")
    with tempfile.TemporaryDirectory(prefix="ecs-load-") as scratch:
        samples_path = Path(scratch) / "samples.jsonl"
        env = {
            **os.environ,
            "ECS_BENCH_SAMPLES": str(samples_path),
            "ECS_BENCH_MAX_REQUESTS": str(spec.max_requests),
        }
        if spec.credentials is not None:
            env["ECS_BENCH_CREDENTIALS"] = str(spec.credentials)
        command = [
            LOCUST,
            "-f",
            LOCUSTFILE,
            "--headless",
            "--only-summary",
            "--loglevel",
            "WARNING",
            "-u",
            str(spec.users),
            "-r",
            str(spec.users),  # all users at once: the sweep measures steady concurrency
            "-t",
            f"{spec.max_seconds}s",
            "--stop-timeout",
            "30",  # let requests in flight finish, so no container is cut off mid-task
            "-H",
            spec.url,
        ]
        # Locust exits 1 when any request failed; the samples say which, so that is fine.
        done = subprocess.run(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=spec.max_seconds + 60,
            check=False,
        )
        if done.returncode not in (0, 1):
            raise RuntimeError(f"locust exited {done.returncode}: {done.stderr.decode()[-2000:]}")
        lines = samples_path.read_text().splitlines() if samples_path.exists() else []
    return [Sample.from_json(json.loads(line)) for line in lines if line.strip()]
