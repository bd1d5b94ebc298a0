"""ECS as a separate process (``python -m ecs serve``), for signals, crashes and logs.

The one launcher of ``ecs serve`` processes: the tests use it directly, the benchmarks
through ``bench.ecs_process.EcsServer``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import httpx

from tests.integration.ecs_server import new_instance_id, state_path_for


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EcsProcess:
    """``ecs serve`` with ECS_* settings from ``env``; its stdout goes to ``log_path``."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.port = int(env.pop("ECS_PORT", free_port()))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ECS_")},
            "ECS_PORT": str(self.port),
            "ECS_LOG_FORMAT": "json",
            **env,
        }
        self.env.setdefault("ECS_INSTANCE_ID", new_instance_id())
        self.env.setdefault("ECS_STATE_PATH", str(state_path_for(self.env["ECS_INSTANCE_ID"])))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def instance_id(self) -> str:
        """This ECS's instance id (its containers' label)."""
        return self.env["ECS_INSTANCE_ID"]

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def metrics(self) -> str:
        """The Prometheus text of ``GET /metrics`` (asked without a key)."""
        answer = httpx.get(f"{self.url}/metrics", timeout=10)
        answer.raise_for_status()
        return answer.text

    def start(self) -> Self:
        """Start and wait until quick health answers."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ecs", "serve"], env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ECS exited with {self.process.returncode}: {self.log()}")
            try:
                httpx.get(f"{self.url}/v1.1/_health", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"ECS did not answer: {self.log()}")

    def signal(self, number: signal.Signals) -> None:
        """Send a signal to the ECS process."""
        assert self.process is not None
        self.process.send_signal(number)

    def wait(self, timeout_s: float = 60) -> int:
        """Wait for the process to exit and return its exit status."""
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 60) -> int | None:
        """SIGTERM (ECS drains and removes its containers), SIGKILL if it does not go; the
        exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def run_ecs_command(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run an ``ecs`` subcommand to completion with ECS_* settings from ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ECS_")}
    return subprocess.run(
        [sys.executable, "-m", "ecs", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
