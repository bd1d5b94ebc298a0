"""JSON shapes ECS answers with, as pydantic models (they also document the OpenAPI)."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import BaseModel, Field

from ecs.pipeline import TaskOutcome


class TaskResult(BaseModel):
    """What the task's container did. A non-zero exit is still a task that ran."""

    exitCode: int = Field(description="the container's exit code; 137 when killed")  # noqa: N815
    stdout: str = Field(description="base64 of the raw stdout bytes")
    stderr: str = Field(description="base64 of the raw stderr bytes")
    timedOut: bool = Field(description="killed at its timeout")  # noqa: N815
    oomKilled: bool = Field(description="killed for exceeding its memory limit")  # noqa: N815
    stdoutTruncated: bool = Field(description="stdout beyond the cap was dropped")  # noqa: N815
    stderrTruncated: bool = Field(description="stderr beyond the cap was dropped")  # noqa: N815
    durationMs: int = Field(description="container run time in milliseconds")  # noqa: N815

    @classmethod
    def from_outcome(cls, outcome: TaskOutcome) -> TaskResult:
        """Encode an outcome for the wire."""
        return cls(
            exitCode=outcome.exit_code,
            stdout=base64.b64encode(outcome.stdout).decode("ascii"),
            stderr=base64.b64encode(outcome.stderr).decode("ascii"),
            timedOut=outcome.timed_out,
            oomKilled=outcome.oom_killed,
            stdoutTruncated=outcome.stdout_truncated,
            stderrTruncated=outcome.stderr_truncated,
            durationMs=outcome.duration_ms,
        )


class ErrorItem(BaseModel):
    """One problem."""

    code: str = Field(description="snake_case, stable, for programs")
    message: str = Field(description="for humans")
    field: str | None = Field(None, description="JSON path of the offending field")


class ErrorBody(BaseModel):
    """Every error ECS answers, 401 included."""

    errors: list[ErrorItem]
    correlationId: str  # noqa: N815


class Link(BaseModel):
    """A hypermedia link."""

    href: str


class Links(BaseModel):
    """Links of a resource."""

    self: Link


class NoopResponse(BaseModel):
    """``GET /_noop``: nothing but the round trip."""

    links: Links


class VersionResponse(BaseModel):
    """``GET /_version``."""

    version: str
    links: Links


class HealthResponse(BaseModel):
    """``GET /_health``: green or red, with per-dependency details when not quick."""

    status: Literal["green", "red"]
    details: dict[str, object] | None = None
    links: Links


class CallbackState(BaseModel):
    """How delivery of the task's callback is going."""

    status: Literal["pending", "delivered", "failed"]
    attempts: int


class TaskDocument(BaseModel):
    """An async (or idempotent) task: where it is, and its result or errors at the end."""

    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    createdAt: str = Field(description="RFC 3339, UTC")  # noqa: N815
    startedAt: str | None = None  # noqa: N815
    finishedAt: str | None = None  # noqa: N815
    links: Links
    result: TaskResult | None = Field(None, description="succeeded: exactly the sync 201 body")
    errors: list[ErrorItem] | None = Field(None, description="failed: the sync error list")
    httpStatus: int | None = Field(None, description="failed: the sync answer's status")  # noqa: N815
    callback: CallbackState | None = None
