"""``/v1.1/tasks``: run a task (sync, or async with ``Prefer: respond-async``), read, cancel.

Each endpoint is a few lines around a use case in ``ecs.runtime`` / ``ecs.task_service``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from ecs import API_VERSION
from ecs.disconnect import ClientDisconnected, until_disconnect
from ecs.error_responses import correlation_id_of, error_response, error_responses
from ecs.exceptions import FieldProblem, InvalidRequest
from ecs.responses import TaskDocument, TaskResult
from ecs.runtime import Runtime
from ecs.task_document import (
    IDEMPOTENCY_HEADER,
    checked_idempotency_key,
    render_document,
    task_path,
    wants_async,
)
from ecs.task_records import TaskRecord, TaskStatus

router = APIRouter(prefix=f"/{API_VERSION}")

# Tells the client which ``status`` a hung-up request is logged with (nginx's 499).
CLIENT_CLOSED_REQUEST = 499
MAX_WAIT_S = 60.0
_TASK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskRequest"}}},
    },
    "parameters": [
        {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "`respond-async`: answer 202 at once with the task document",
        },
        {
            "name": IDEMPOTENCY_HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
            "description": "retries with the same key run the task once",
        },
    ],
}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _owner(request: Request) -> str:
    return str(request.scope["state"].get("api_key") or "")


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        problem = FieldProblem("invalid_json", f"request body is not valid JSON: {exc}")
        raise InvalidRequest([problem]) from exc


def _document(record: TaskRecord, status: int, **headers: str) -> JSONResponse:
    return JSONResponse(render_document(record), status_code=status, headers=headers or None)


@router.post(
    "/tasks",
    status_code=201,
    response_model=TaskResult,
    summary="Run a task",
    responses={
        202: {"model": TaskDocument, "description": "accepted (Prefer: respond-async)"},
        200: {"model": TaskDocument, "description": "an async repeat of an Idempotency-Key"},
        **error_responses(400, 401, 403, 404, 413, 415, 422, 429, 500, 503),
    },
    openapi_extra=_TASK_BODY,
)
@router.post("/tasks/", status_code=201, include_in_schema=False)
async def create_task(request: Request) -> Response:
    """Run one container to completion and answer its exit code, stdout and stderr."""
    body = await _json_body(request)
    runtime = _runtime(request)
    key = checked_idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
    log_fields = request.scope["state"].setdefault("log_fields", {})
    if wants_async(request.headers.getlist("prefer")) or key is not None:
        respond_async = wants_async(request.headers.getlist("prefer"))
        submission = await runtime.tasks.submit(
            body,
            owner=_owner(request),
            base_url=str(request.base_url),
            idempotency_key=key,
            respond_async=respond_async,
        )
        log_fields.update(task=submission.record.id, repeat=not submission.created)
        if respond_async:
            return _document(
                submission.record,
                202 if submission.created else 200,
                Location=task_path(submission.record.id),
                **{"Preference-Applied": "respond-async"},
            )
        # With a key, a hang-up does not end the task: its result waits for the retry.
        return _sync_answer(request, await runtime.tasks.until_terminal(submission.record))
    work = runtime.run_task(body, request.scope["state"].get("api_key"), log_fields)
    try:
        result = await until_disconnect(request, work)
    except ClientDisconnected:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return JSONResponse(result.model_dump(), status_code=201)


@router.get(
    "/tasks/{task_id}",
    response_model=TaskDocument,
    response_model_exclude_none=True,
    summary="Read a task",
    responses=error_responses(400, 401, 404),
)
@router.head("/tasks/{task_id}", include_in_schema=False)
async def read_task(
    request: Request,
    task_id: str,
    wait: str | None = Query(None, description="seconds (0 < S ≤ 60) to wait for the end"),
) -> Response:
    """The task document; with ``wait`` the answer waits until the task ends or S pass."""
    wait_s = _wait_seconds(wait)
    record = await _runtime(request).tasks.get(_owner(request), task_id, wait_s=wait_s)
    return _document(record, 200)


@router.delete(
    "/tasks/{task_id}",
    status_code=202,
    response_model=TaskDocument,
    summary="Cancel a task",
    responses={200: {"description": "already ended: unchanged"}, **error_responses(401, 404)},
)
async def cancel_task(request: Request, task_id: str) -> Response:
    """Drop a queued task or kill a running one (202); an ended one is unchanged (200)."""
    record, changed = await _runtime(request).tasks.cancel(_owner(request), task_id)
    return _document(record, 202 if changed else 200)


def _wait_seconds(value: str | None) -> float:
    if value is None:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_WAIT_S:  # also refuses NaN
        problem = FieldProblem(
            "invalid_wait", f"wait must be seconds, 0 < wait <= {MAX_WAIT_S:g}", "wait"
        )
        raise InvalidRequest([problem])
    return seconds


def _sync_answer(request: Request, record: TaskRecord) -> Response:
    """What the sync API answers for a finished stored task: its result, or its error."""
    if record.status is TaskStatus.SUCCEEDED and record.result is not None:
        return JSONResponse(record.result, status_code=201)
    if record.status is TaskStatus.CANCELLED:
        problems = [FieldProblem("task_cancelled", f"task {record.id} was cancelled")]
        return error_response(409, problems, correlation_id_of(request))
    problems = [
        FieldProblem(str(item["code"]), str(item["message"]), item.get("field"))
        for item in record.errors or []
    ]
    return error_response(record.http_status or 500, problems, correlation_id_of(request))
