"""A stored task and the store interface behind async tasks, idempotency and callbacks.

The one-node store is SQLite (``ecs.sqlite_store``); a store shared by many nodes plugs
in beside it by implementing ``TaskStore``. Records are plain data: the service
(``ecs.task_service``) decides, the store keeps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class TaskStatus(StrEnum):
    """Where a stored task is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # the container ran, whatever its exit code
    FAILED = "failed"  # it could not run: ``errors`` and ``http_status`` say why
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """No further change will come."""
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class CallbackStatus(StrEnum):
    """Delivery of a task's callback."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass
class Callback:
    """Where to POST the terminal document, and how delivery is going."""

    url: str
    status: CallbackStatus = CallbackStatus.PENDING
    attempts: int = 0
    next_attempt_at: float | None = None  # set once the task is terminal
    give_up_at: float | None = None
    last_error: str | None = None


@dataclass
class TaskRecord:
    """One task as ECS keeps it: request while queued, result or errors once terminal."""

    id: str
    owner: str  # the API key that created it; "" without keys
    status: TaskStatus
    created_at: float
    base_url: str  # where the task was submitted, for its links
    request: dict[str, Any] | None = None  # the body, kept only until the task starts
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None  # terminal documents are kept until then
    result: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None
    http_status: int | None = None
    idempotency_key: str | None = None
    body_hash: str | None = None
    callback: Callback | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRecord:
        """The record ``to_json`` wrote."""
        fields = dict(data)
        fields["status"] = TaskStatus(fields["status"])
        callback = fields.get("callback")
        if callback is not None:
            callback = dict(callback)
            callback["status"] = CallbackStatus(callback["status"])
            fields["callback"] = Callback(**callback)
        return cls(**fields)


class TaskStore(Protocol):
    """Keeps task records, finds them by id and idempotency key, wakes long polls."""

    async def open(self) -> None:
        """Prepare the store (create tables, connect)."""

    async def close(self) -> None:
        """Release what ``open`` took."""

    async def create(self, record: TaskRecord) -> tuple[TaskRecord, bool]:
        """Insert ``record``; if its owner already used its idempotency key (on a record not
        yet expired), insert nothing and return that record. True when inserted."""

    async def save(self, record: TaskRecord) -> None:
        """Write ``record`` over the stored one; a terminal status wakes its waiters."""

    async def get(self, task_id: str) -> TaskRecord | None:
        """The record, or None when unknown or expired."""

    async def unfinished(self) -> list[TaskRecord]:
        """The queued and running records this process's previous life left, oldest first:
        the ones a restart must settle (a shared store: this node's running ones only)."""

    async def callbacks_due(self, now: float, limit: int) -> list[TaskRecord]:
        """Terminal records whose pending callback is due by ``now``, soonest first."""

    async def purge_expired(self, now: float) -> int:
        """Delete records whose ``expires_at`` has passed; return how many."""

    async def wait_terminal(self, task_id: str, timeout_s: float) -> None:
        """Return when the task becomes terminal or after ``timeout_s``, whichever is first."""


class SharedQueue(Protocol):
    """A queue that many nodes take tasks from (cluster mode): cancelling goes through it."""

    async def cancel_queued(self, task_id: str) -> TaskRecord | None:
        """Cancel the task if no node has claimed it yet; the record as it was, or None."""

    async def request_cancel(self, task_id: str) -> None:
        """Ask whichever node runs the task to cancel it."""
