"""Real parts of a cluster for tests: redis-server and HAProxy on ports the test owns.

Both come from Debian's packages (``scripts/cluster`` installs them); a test fails loudly
when they are missing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.ecs_process import free_port


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/cluster install (Debian's package)")
    return path


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 (no persistence unless asked)."""

    def __init__(self, root: Path, *, port: int | None = None, appendonly: bool = False) -> None:
        self.port = port or free_port()
        self.root = root
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``cluster.redis_url`` of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start and wait until it answers PING."""
        self.root.mkdir(parents=True, exist_ok=True)
        command = [
            _binary("redis-server"),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.root),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
        ]  # fmt: skip
        with (self.root / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = 10) -> None:
        """Until PING answers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.cli("PING").strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not answer")

    def cli(self, *args: str) -> str:
        """One redis-cli command; its output ('' when the server does not answer)."""
        result = subprocess.run(
            [_binary("redis-cli"), "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class HAProxy:
    """HAProxy on 127.0.0.1 balancing round robin over ECS nodes, checking quick health."""

    def __init__(self, root: Path, backends: list[str]) -> None:
        self.port = free_port()
        self.root = root
        self.backends = backends
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The balancer's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        """The haproxy.cfg for these backends."""
        servers = "\n".join(
            f"  server node{index} {backend.removeprefix('http://')} check inter 500ms"
            for index, backend in enumerate(self.backends, 1)
        )
        return f"""global
  maxconn 512
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 120s
frontend ecs
  bind 127.0.0.1:{self.port}
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /v1.1/_health
  http-check expect status 200
{servers}
"""

    def start(self) -> HAProxy:
        """Start in the foreground and wait until every backend is up."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "haproxy.cfg"
        path.write_text(self.config())
        check = subprocess.run(
            [_binary("haproxy"), "-c", "-f", str(path)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its config: {check.stdout}{check.stderr}")
        with (self.root / "haproxy.log").open("ab") as log:
            self.process = subprocess.Popen(
                [_binary("haproxy"), "-db", "-f", str(path)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if httpx.get(f"{self.url}/v1.1/_health", timeout=2).status_code == 200:
                    time.sleep(1.5)  # every server's first health check passes
                    return self
            except (OSError, httpx.HTTPError):
                pass
            time.sleep(0.1)
        raise RuntimeError("haproxy did not start")

    def stop(self) -> None:
        """Stop HAProxy."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
