"""A real ECS (uvicorn + the real app) on 127.0.0.1, in a thread of the test process."""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from ecs.app import create_app
from ecs.config import Settings, load_settings

# Every ECS a test session starts is named after the session, so that test runs sharing
# one engine (two developers, or a developer and a benchmark) never judge each other's work.
SESSION_INSTANCE_PREFIX = f"pytest-{os.getpid()}-"
_instances = itertools.count(1)


STATE_DIR = Path(tempfile.mkdtemp(prefix="ecs-test-state-"))


def state_path_for(instance_id: str) -> Path:
    """A state file of this test session for one ECS instance."""
    return STATE_DIR / f"{instance_id}.sqlite3"


def new_instance_id() -> str:
    """A fresh ECS instance id belonging to this test session."""
    return f"{SESSION_INSTANCE_PREFIX}{next(_instances)}"


class EcsServer:
    """Starts ECS on a free loopback port; ``url`` is its base URL once started."""

    def __init__(self, **overrides: Any) -> None:
        # Each server its own instance id: one server's janitor never touches another's work.
        overrides.setdefault("instance_id", new_instance_id())
        overrides.setdefault("port", 0)
        # Each server its own state file, as each ECS process must have.
        overrides.setdefault("state_path", state_path_for(overrides["instance_id"]))
        self.settings: Settings = load_settings(None, **overrides)
        self.app = create_app(self.settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.settings.port,
            server_header=False,
            access_log=False,
            log_config=None,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="ecs-server", daemon=True)
        self.url = ""

    def start(self) -> EcsServer:
        """Start serving and wait until the socket is bound (or fail with the reason)."""
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("ECS did not start; is the engine up? (scripts/engine)")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Graceful shutdown: in-flight requests finish, then pending removals."""
        self._server.should_exit = True
        self._thread.join(timeout=60)
