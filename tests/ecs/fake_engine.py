"""An in-process engine that serves a range of API versions the way dockerd does.

It refuses a path's version outside its range with dockerd's own 400 answers
(api/server/middleware/version.go), so the client's negotiation meets the real refusal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import httpx

from ecs.engine_http import EngineHttp

_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


@dataclass
class FakeEngine:
    """Serves ``/version``, ``/info`` and a container create; its range can change live."""

    min_api: str
    max_api: str
    runtimes: dict[str, dict[str, object]] = field(
        default_factory=lambda: {"runc": {"path": "runc"}}
    )
    podman: bool = False
    calls: list[str] = field(default_factory=list)

    def client(self) -> EngineHttp:
        """ECS's engine HTTP client with this engine as its transport."""
        return EngineHttp(
            httpx.MockTransport(self.handle), base_url="http://d", timeout=httpx.Timeout(5.0)
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as dockerd would."""
        path = request.url.path
        self.calls.append(f"{request.method} {path}")
        match = _VERSIONED.match(path)
        if match:
            asked = (int(match[1]), int(match[2]))
            shown = f"{match[1]}.{match[2]}"
            if asked > _parse(self.max_api):
                return _message(
                    400,
                    f"client version {shown} is too new. Maximum supported API version is "
                    f"{self.max_api}",
                )
            if asked < _parse(self.min_api):
                return _message(
                    400,
                    f"client version {shown} is too old. Minimum supported API version is "
                    f"{self.min_api}, please upgrade your client to a newer version",
                )
            path = match[3]
        if path == "/version":
            name = "Podman Engine" if self.podman else "Engine"
            answer = {
                "ApiVersion": self.max_api,
                "MinAPIVersion": self.min_api,
                "Components": [{"Name": name, "Version": "1"}],
            }
            return httpx.Response(200, json=answer)
        if path.endswith("/kill") and self.podman:
            # Podman 4.3's answer for a container that is not running (dockerd: 409).
            return _message(
                500,
                "can only kill running containers. x is in state exited: container state improper",
            )
        if path == "/info":
            return httpx.Response(200, json={"Runtimes": self.runtimes, "DefaultRuntime": "runc"})
        if path == "/containers/create" and request.method == "POST":
            return httpx.Response(201, json={"Id": "c0ffee", "Warnings": []})
        return _message(404, f"page not found: {path}")


def _parse(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def _message(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, content=json.dumps({"message": message}).encode())
