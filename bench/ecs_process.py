"""An ``ecs serve`` of the benchmarks' own, on a free 127.0.0.1 port, and what to ask it.

Every run gets a fresh instance id, so the containers it labels can be told from those of
other runs sharing the engine, and (optionally) API keys of its own.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parent.parent
SOCKET = "/var/run/docker.sock"
ECS = str(ROOT / ".venv" / "bin" / "ecs")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def make_keys(count: int, directory: Path) -> tuple[Path, Path]:
    """``ecs creds count`` into ``directory``: (htpasswd file for ECS, key:secret file)."""
    hashes = directory / "keys.htpasswd"
    pairs = directory / "keys.txt"
    made = subprocess.run(
        [ECS, "creds", str(count), "--file", str(hashes)],
        check=True,
        capture_output=True,
        text=True,
    )
    pairs.write_text(made.stdout)
    return hashes, pairs


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def containers_of(instance_id: str) -> list[str]:
    """Ids of the containers, running or not, labelled as made by ECS ``instance_id``."""
    filters = json.dumps({"label": ["io.ecs.managed", f"io.ecs.instance={instance_id}"]})
    with httpx.Client(transport=httpx.HTTPTransport(uds=SOCKET), timeout=30) as engine:
        answer = engine.get("http://docker/containers/json", params={"all": 1, "filters": filters})
        answer.raise_for_status()
        return [str(c["Id"]) for c in answer.json()]


class EcsServer:
    """``ecs serve`` with extra ``ECS_*`` settings; a context manager that stops it."""

    def __init__(self, log_path: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.instance_id = f"bench-{uuid.uuid4().hex[:12]}"
        self.log_path = log_path
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ECS_")},
            "ECS_HOST": "127.0.0.1",
            "ECS_PORT": str(self.port),
            "ECS_INSTANCE_ID": self.instance_id,
            # Each ECS process its own state file, next to its log.
            "ECS_STATE_PATH": str(log_path.with_name(f"{self.instance_id}.sqlite3")),
            "ECS_LOG_LEVEL": "warning",
            "ECS_LOG_FORMAT": "json",
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> EcsServer:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([ECS, "serve"], env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"ECS exited with {code}; see {self.log_path}")
            try:
                httpx.get(f"{self.url}/v1.1/_health", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"ECS did not answer in 30 s; see {self.log_path}")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> int | None:
        """SIGTERM (ECS drains and removes its containers), SIGKILL after 60 s."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def metrics(self) -> str:
        """The Prometheus text of ``GET /metrics`` (open or not, the bench asks without a key
        only when metrics are an open endpoint)."""
        answer = httpx.get(f"{self.url}/metrics", timeout=10)
        answer.raise_for_status()
        return answer.text
