"""A recorded Pingdom ``/results`` answer, served to the real Pingdom client.

:class:`ReplayTransport` is an httpx transport that answers ``GET /checks``,
``/checks/{id}`` and ``/results/{id}`` from a :class:`Recording`, the way Pingdom does
(newest first, ``limit`` capped at 1000, ``offset``, ``Req-Limit-*`` headers), but only
with the results older than the replay's clock: the client, its paging and the sync
above it run unchanged.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from statusbridge.exceptions import ConfigError

_QUOTA = "Remaining: 100000 Time until reset: 3600"


@dataclass(frozen=True)
class Recording:
    """Raw results as Pingdom sent them, newest first; ``start``/``end`` span them."""

    path: Path
    results: list[dict[str, Any]]
    start: int
    end: int
    resolution_min: int


def load_recording(path: Path) -> Recording:
    """Read a saved ``/results`` answer; a file that is not one raises ConfigError."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the replay file {path}: {exc}") from exc
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise ConfigError(f"replay file {path} holds no Pingdom results list")
    times = sorted(
        r["time"] for r in results if isinstance(r, dict) and isinstance(r.get("time"), int)
    )
    if len(times) < 2:
        raise ConfigError(f"replay file {path} holds fewer than two timed results")
    gaps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
    resolution = max(1, round(gaps[len(gaps) // 2] / 60))
    return Recording(path, results, times[0], times[-1], resolution)


class ReplayTransport(httpx.AsyncBaseTransport):
    """Pingdom API 3.1 answering from ``recording``, as of ``clock()``, for any check."""

    def __init__(self, recording: Recording, clock: Callable[[], float], *, name: str) -> None:
        self._recording = recording
        self._clock = clock
        self._check = {
            "id": 0,
            "name": name,
            "resolution": recording.resolution_min,
            "status": "up",
            "type": "http",
        }

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one Pingdom request."""
        parts = request.url.path.strip("/").split("/")[-2:]
        if parts[-1] == "checks":
            body: Any = {"checks": [self._check], "counts": {"total": 1}}
        elif parts[0] == "checks":
            body = {"check": {**self._check, "id": int(parts[1])}}
        elif parts[0] == "results":
            body = self._results(request.url.params)
        else:
            body = {"error": {"statuscode": 404, "statusdesc": "Not Found", "errormessage": ""}}
            return httpx.Response(404, json=body)
        headers = {"Req-Limit-Short": _QUOTA, "Req-Limit-Long": _QUOTA}
        return httpx.Response(200, json=body, headers=headers)

    def _results(self, params: httpx.QueryParams) -> dict[str, Any]:
        now = self._clock()
        to = min(int(params.get("to", now)), int(now))
        start = int(params.get("from", to - 86400))
        limit = min(int(params.get("limit", 1000)), 1000)
        offset = int(params.get("offset", 0))
        matching = [r for r in self._recording.results if start <= int(r.get("time", 0)) <= to]
        matching.sort(key=lambda r: int(r.get("time", 0)), reverse=True)
        probes = sorted({r["probeid"] for r in matching if isinstance(r.get("probeid"), int)})
        return {"activeprobes": probes, "results": matching[offset : offset + limit]}
