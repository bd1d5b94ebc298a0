"""A second, throwaway Docker Engine for fault tests: stopped, paused and restarted at will.

The main engine (/var/run/docker.sock) is shared with other people's tests and must never
be touched. This one has its own socket, data root, exec root, pid file and managed
containerd, no bridge and no iptables rules, the vfs storage driver, and holds only the
test image, copied from the main engine with ``GET /images/{name}/get`` and
``POST /images/load``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

TEST_IMAGE = "local/busybox:1"
_START_TIMEOUT_S = 30.0


class ThrowawayEngine:
    """``dockerd`` under ``root``; ``docker_host`` is what ECS is pointed at."""

    def __init__(self, root: Path) -> None:
        # unix socket paths are limited to 108 bytes; pytest's tmp_path can be long.
        self.root = root
        self.socket = root / "docker.sock"
        self.pidfile = root / "docker.pid"
        self.log_path = root / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None
        (root / "daemon.json").write_text("{}")  # not /dev/null: dockerd reads it as JSON

    @property
    def docker_host(self) -> str:
        """``unix:///…/docker.sock``."""
        return f"unix://{self.socket}"

    def client(self, timeout_s: float = 60.0) -> httpx.Client:
        """A plain client on this engine's socket (API 1.41)."""
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)),
            base_url="http://docker/v1.41",
            timeout=timeout_s,
        )

    def start(self) -> ThrowawayEngine:
        """Start dockerd and wait until it answers ``/_ping``; fail with its log if not."""
        if shutil.which("dockerd") is None:
            raise RuntimeError("dockerd is not installed; run scripts/engine")
        args = [
            "dockerd",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.pidfile}",
            f"-H=unix://{self.socket}",
            f"--config-file={self.root / 'daemon.json'}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--storage-driver=vfs",
            "--containerd-namespace=ecs-faults",
            "--containerd-plugins-namespace=ecs-faults-plugins",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"throwaway dockerd exited: {self.log()[-3000:]}")
            if self.answers():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"throwaway dockerd did not answer: {self.log()[-3000:]}")

    def answers(self) -> bool:
        """True if ``/_ping`` answers now."""
        # A raw socket: httpx's sync transport leaks the socket of a refused unix connect.
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(2)
                probe.connect(str(self.socket))
                probe.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return probe.recv(64).startswith(b"HTTP/1.0 200")
        except OSError:
            return False

    def load_image_from(self, main: httpx.Client, reference: str = TEST_IMAGE) -> None:
        """Copy ``reference`` from the main engine into this one (export, then load)."""
        with self.client() as mine, main.stream("GET", f"/images/{reference}/get") as exported:
            exported.raise_for_status()
            loaded = mine.post(
                "/images/load",
                params={"quiet": "1"},
                content=exported.iter_bytes(),
                headers={"Content-Type": "application/x-tar"},
            )
            loaded.raise_for_status()
            assert mine.get(f"/images/{reference}/json").status_code == 200, loaded.text

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        """Signal dockerd and wait for it to go: SIGTERM stops its containers and its
        containerd first; SIGKILL is a crash that leaves them to the next start."""
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def crash(self) -> None:
        """SIGKILL dockerd, its containerd, the shims and the containers: the engine's
        host process tree dies at once, as when its machine or its pod goes."""
        self.resume()
        _kill_processes_under(self.root)
        if self.process is not None:
            self.process.wait(timeout=30)
        # The exec root lives on tmpfs (/run) in production and is gone after such a
        # crash; a stale containerd.pid there would make the next start wait for nothing.
        _unmount_under(self.root / "exec")
        shutil.rmtree(self.root / "exec", ignore_errors=True)

    def pause(self) -> None:
        """SIGSTOP dockerd: the socket accepts connections but nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT dockerd."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def containers(self, **filters: list[str]) -> list[dict[str, Any]]:
        """Every container on this engine, running or not."""
        params = {"all": "1"}
        if filters:
            params["filters"] = json.dumps(filters)
        with self.client() as client:
            answer = client.get("/containers/json", params=params)
            answer.raise_for_status()
            found: list[dict[str, Any]] = answer.json()
            return found

    def destroy(self) -> None:
        """Remove every container, stop dockerd, kill anything left of its process group,
        unmount what it left mounted, and delete its directories."""
        if self.process is not None and self.process.poll() is None and self.answers():
            for container in self.containers():
                with self.client() as client:
                    client.delete(f"/containers/{container['Id']}", params={"force": "1"})
        self.stop()
        _kill_processes_under(self.root)
        _unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        """What dockerd printed."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _kill_processes_under(root: Path) -> None:
    """SIGKILL every process whose command line names ``root`` (containerd, shims), and
    everything below them (the containers' processes), children first."""
    parents: dict[int, int] = {}
    named: set[int] = set()
    spared = {os.getpid(), os.getppid()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        if str(root).encode() in cmdline and int(entry.name) not in spared:
            named.add(int(entry.name))
    doomed: list[int] = []
    frontier = list(named)
    while frontier:
        pid = frontier.pop()
        doomed.append(pid)
        frontier.extend(child for child, parent in parents.items() if parent == pid)
    for pid in reversed(doomed):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _unmount_under(root: Path) -> None:
    """Lazily unmount anything still mounted below ``root`` (deepest first)."""
    prefix = str(root.resolve())
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if len(line.split()) > 1 and line.split()[1].startswith(prefix)
    ]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
