"""An ``ecs serve`` of the benchmarks' own, on a free 127.0.0.1 port, and what to ask it.

Every run gets a fresh instance id, so the containers it labels can be told from those of
other runs sharing the engine, and (optionally) API keys of its own.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import httpx

from tests.integration.ecs_process import EcsProcess

ROOT = Path(__file__).resolve().parent.parent
SOCKET = "/var/run/docker.sock"
ECS = str(ROOT / ".venv" / "bin" / "ecs")


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


class EcsServer(EcsProcess):
    """``ecs serve`` for a benchmark: a fresh ``bench-…`` instance id, warnings only, its
    state file next to its log; a context manager that stops it."""

    def __init__(self, log_path: Path, **settings: str) -> None:
        instance_id = f"bench-{uuid.uuid4().hex[:12]}"
        defaults = {
            "ECS_HOST": "127.0.0.1",
            "ECS_INSTANCE_ID": instance_id,
            "ECS_STATE_PATH": str(log_path.with_name(f"{instance_id}.sqlite3")),
            "ECS_LOG_LEVEL": "warning",
        }
        super().__init__(log_path, **{**defaults, **settings})
