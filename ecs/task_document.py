"""The async task's wire shapes: its JSON document, and the headers that steer a submission.

Pure: records in, JSON out; header values in, decisions out.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from ecs import API_VERSION
from ecs.exceptions import FieldProblem, InvalidRequest
from ecs.task_records import TaskRecord

IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_IDEMPOTENCY_KEY = 128


def task_path(task_id: str) -> str:
    """``/v1.1/tasks/{id}``, the task's ``Location``."""
    return f"/{API_VERSION}/tasks/{task_id}"


def rfc3339(epoch_s: float) -> str:
    """``2026-12-02T01:16:15.123Z``: RFC 3339 in UTC, to the millisecond."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def render_document(record: TaskRecord) -> dict[str, Any]:
    """The task document: id, status, times, link, and its result or errors once there."""
    document: dict[str, Any] = {
        "id": record.id,
        "status": str(record.status),
        "createdAt": rfc3339(record.created_at),
    }
    if record.started_at is not None:
        document["startedAt"] = rfc3339(record.started_at)
    if record.finished_at is not None:
        document["finishedAt"] = rfc3339(record.finished_at)
    document["links"] = {"self": {"href": record.base_url.rstrip("/") + task_path(record.id)}}
    if record.result is not None:
        document["result"] = record.result
    if record.errors is not None:
        document["errors"] = record.errors
        document["httpStatus"] = record.http_status
    if record.callback is not None:
        document["callback"] = {
            "status": str(record.callback.status),
            "attempts": record.callback.attempts,
        }
    return document


def document_bytes(record: TaskRecord) -> bytes:
    """The document as the exact bytes a callback sends (and signs)."""
    return json.dumps(render_document(record), separators=(",", ":")).encode()


def wants_async(prefer_values: list[str]) -> bool:
    """RFC 7240: does any ``Prefer`` header carry the ``respond-async`` preference?"""
    for value in prefer_values:
        for preference in value.split(","):
            name = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
            if name == "respond-async":
                return True
    return False


def checked_idempotency_key(value: str | None) -> str | None:
    """The header's key (1–128 printable ASCII characters), or a 400 naming the header."""
    if value is None:
        return None
    if 1 <= len(value) <= _MAX_IDEMPOTENCY_KEY and all(" " <= c <= "~" for c in value):
        return value
    problem = FieldProblem(
        "invalid_idempotency_key",
        f"{IDEMPOTENCY_HEADER} must be 1 to {_MAX_IDEMPOTENCY_KEY} printable ASCII characters",
        IDEMPOTENCY_HEADER,
    )
    raise InvalidRequest([problem])


def body_hash(body: Any) -> str:
    """A digest of the decoded JSON body, independent of key order and whitespace."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
