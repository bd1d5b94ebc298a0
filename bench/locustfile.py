"""The original ECS load mix, for Locust, against one ECS on 127.0.0.1.

Weights as in the original's locustfile (by request count): tasks 75, quick health 10,
noop 5, version 5, comprehensive health 5. Of the tasks, 80 % run a trivial ``echo``
(201), 10 % name an image no registry has (404) and 10 % send a body without the
required fields (400). Each request is marked a failure unless it got the answer its
type expects.

On a 503 (full queue) a client waits the answer's Retry-After before its next request, as
a well-behaved client does; everything else goes back to back.

Settings come from the environment, so that ``bench/load.py`` and ``bench/soak.py`` can
drive the plain ``locust`` command line:

- ``ECS_BENCH_SAMPLES``: a file to which every request is appended as one JSON line
  (start time, type, latency ms, status, as expected or not) — the runners compute
  their own percentiles from it rather than Locust's rounded ones;
- ``ECS_BENCH_CREDENTIALS``: ``key:secret`` lines (``ecs creds``); users take them in turn;
- ``ECS_BENCH_MAX_REQUESTS``: the run stops by itself after this many requests (Locust's
  ``--run-time`` bounds the time);
- ``ECS_BENCH_IMAGE``, ``ECS_BENCH_MISSING_IMAGE``: the task images.

    locust -f bench/locustfile.py --headless -u 15 -r 15 -t 60s -H http://127.0.0.1:8448
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, events, task
from locust.env import Environment

API = "/v1.1"
IMAGE = os.environ.get("ECS_BENCH_IMAGE", "local/busybox:1")
MISSING_IMAGE = os.environ.get("ECS_BENCH_MISSING_IMAGE", "127.0.0.1:5000/owner/nope:tag")
MAX_REQUESTS = int(os.environ.get("ECS_BENCH_MAX_REQUESTS", "0")) or None
HAPPY = {"docker_image": IMAGE, "cmd": ["echo", "hello"]}
NOT_FOUND = {"docker_image": MISSING_IMAGE, "cmd": ["echo", "hello"]}
BAD_BODY: dict[str, Any] = {}


def _credentials() -> itertools.cycle[tuple[str, str]] | None:
    path = os.environ.get("ECS_BENCH_CREDENTIALS")
    if not path:
        return None
    pairs = []
    for line in Path(path).read_text().splitlines():
        key, sep, secret = line.strip().partition(":")
        if sep:
            pairs.append((key, secret))
    return itertools.cycle(pairs) if pairs else None


_KEYS = _credentials()
_out = open(os.environ.get("ECS_BENCH_SAMPLES", os.devnull), "a")  # noqa: SIM115 - closed at quit
_count = 0


@events.request.add_listener
def _record(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    response: Any = None,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    """Append the request to the samples file; stop the run at the request cap."""
    global _count
    status = int(getattr(response, "status_code", 0) or 0)
    started = start_time if start_time is not None else time.time() - response_time / 1000
    row = {"started": started, "name": name, "ms": response_time, "status": status}
    row["ok"] = exception is None
    _out.write(json.dumps(row) + "\n")
    _count += 1
    if MAX_REQUESTS is not None and _count == MAX_REQUESTS:
        runner = _environment.runner if _environment is not None else None
        if runner is not None:
            gevent.spawn(runner.quit)


_environment: Environment | None = None


@events.init.add_listener
def _keep_environment(environment: Environment, **_: Any) -> None:
    global _environment
    _environment = environment


@events.quitting.add_listener
def _close(**_: Any) -> None:
    _out.close()


class EcsClient(FastHttpUser):
    """A client that sends the mix back to back (the original's task users had no wait)."""

    _auth: tuple[str, str] | None = None

    def on_start(self) -> None:
        """Take the next API key, if keys are on."""
        if _KEYS is not None:
            self._auth = next(_KEYS)

    def _expect(self, method: str, path: str, name: str, status: int, **kwargs: Any) -> None:
        with self.client.request(
            method, path, name=name, catch_response=True, auth=self._auth, **kwargs
        ) as response:
            retry_after = 0.0
            if response.status_code != status:
                text = response.text or ""
                response.failure(f"{response.status_code}: {text[:200]}")
                if response.status_code == 503:
                    retry_after = float(response.headers.get("Retry-After") or 0)
            elif name == "task ok" and json.loads(response.text)["exitCode"] != 0:
                response.failure(f"exit code {json.loads(response.text)['exitCode']}")
            else:
                response.success()
        # A well-behaved client honours Retry-After on 503, rather than hammering a full queue.
        if retry_after:
            gevent.sleep(min(retry_after, 5.0))

    @task(75)
    def run_task(self) -> None:
        """80 % a trivial echo, 10 % an unknown image, 10 % a bad body."""
        roll = random.random()
        if roll < 0.8:
            self._expect("POST", f"{API}/tasks", "task ok", 201, json=HAPPY)
        elif roll < 0.9:
            self._expect("POST", f"{API}/tasks", "task image not found", 404, json=NOT_FOUND)
        else:
            self._expect("POST", f"{API}/tasks", "task bad body", 400, json=BAD_BODY)

    @task(5)
    def noop(self) -> None:
        """GET /_noop."""
        self._expect("GET", f"{API}/_noop", "noop", 200)

    @task(5)
    def version(self) -> None:
        """GET /_version."""
        self._expect("GET", f"{API}/_version", "version", 200)

    @task(10)
    def quick_health(self) -> None:
        """GET /_health (quick)."""
        self._expect("GET", f"{API}/_health", "health quick", 200)

    @task(5)
    def comprehensive_health(self) -> None:
        """GET /_health?quick=false (asks the engine)."""
        self._expect("GET", f"{API}/_health?quick=false", "health full", 200)
