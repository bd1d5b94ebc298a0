"""Which Engine API version ECS speaks with an engine — pure, so every range case is data.

An engine serves a range of API versions, ``MinAPIVersion``–``ApiVersion`` in its
``GET /version`` answer; ECS speaks its own range, ``ECS_API_RANGE``. The version used is
the highest one inside both, the way the docker CLI negotiates; ``DOCKER_API_VERSION``
pins it instead, as it does for the CLI. Without an overlap ECS cannot talk to the
engine at all, and says so naming both ranges.

Why 1.25 at the bottom: ``HostConfig.Init`` (the task's init process) came in 1.25, and
``NanoCpus`` and the label filters ECS lists containers by are in it. Why 1.52 at the
top: it is Engine 29's version, the newest every call in ``ecs.docker`` was checked
against (docs/operations.md, "Engine API versions").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ecs.exceptions import EngineIncompatible

_VERSION = re.compile(r"^\s*(\d+)\.(\d+)\s*$")
# How the engine refuses a client outside its range (api/server/middleware/version.go):
# "client version 1.41 is too old. Minimum supported API version is 1.44, ..."
_REFUSAL = re.compile(r"client version \S+ is too (old|new)", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class ApiVersion:
    """An Engine API version such as 1.44."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> ApiVersion:
        """``"1.44"`` → ``ApiVersion(1, 44)``; raise ValueError for anything else."""
        match = _VERSION.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not an API version such as 1.44")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class ApiRange:
    """An inclusive range of API versions."""

    low: ApiVersion
    high: ApiVersion

    def __contains__(self, version: object) -> bool:
        return isinstance(version, ApiVersion) and self.low <= version <= self.high

    def __str__(self) -> str:
        return f"{self.low}–{self.high}"


ECS_API_RANGE = ApiRange(ApiVersion(1, 25), ApiVersion(1, 52))
# Engines before 1.24 (Docker 1.12) do not report MinAPIVersion; they served every older one.
_OLDEST = ApiVersion(1, 12)


def engine_api_range(version_answer: Mapping[str, object]) -> ApiRange:
    """The range an engine serves, from its ``GET /version`` answer; ValueError if unreadable."""
    high = ApiVersion.parse(str(version_answer.get("ApiVersion", "")))
    low_text = version_answer.get("MinAPIVersion")
    low = ApiVersion.parse(str(low_text)) if low_text else _OLDEST
    return ApiRange(low, high)


def choose_api_version(
    engine: ApiRange, *, pinned: ApiVersion | None = None, ours: ApiRange = ECS_API_RANGE
) -> ApiVersion:
    """The highest version inside both ranges, or ``pinned``; raise EngineIncompatible."""
    if pinned is not None:
        if pinned not in ours:
            raise EngineIncompatible(
                f"DOCKER_API_VERSION {pinned} is outside the API versions ECS speaks ({ours})"
            )
        if pinned not in engine:
            raise EngineIncompatible(
                f"DOCKER_API_VERSION {pinned} is outside the engine's API versions ({engine})"
            )
        return pinned
    low, high = max(engine.low, ours.low), min(engine.high, ours.high)
    if low > high:
        raise EngineIncompatible(
            f"the engine serves API versions {engine} and ECS speaks {ours}: no version in common"
        )
    return high


def is_version_refusal(status: int, message: str) -> bool:
    """True when the engine refused a call only because of the API version in its path."""
    return status == 400 and _REFUSAL.search(message) is not None
