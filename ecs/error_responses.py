"""Every error becomes the same JSON body, here and nowhere else."""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from ecs.exceptions import EcsError, FieldProblem
from ecs.responses import ErrorBody

log = structlog.get_logger(__name__)

CORRELATION_HEADER = "X-ECS-Correlation-ID"

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` entries: each status answers the JSON error body."""
    return {
        status: {"model": ErrorBody, "description": _HTTP_CODES.get(status, "error")}
        for status in statuses
    }


def error_response(
    status: int,
    problems: Iterable[FieldProblem],
    correlation_id: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The one error body: ``{"errors": [...], "correlationId": ...}``."""
    errors = []
    for problem in problems:
        item = {"code": problem.code, "message": problem.message}
        if problem.field:
            item["field"] = problem.field
        errors.append(item)
    return JSONResponse(
        {"errors": errors, "correlationId": correlation_id}, status_code=status, headers=headers
    )


def correlation_id_of(request: Request) -> str:
    """The request's correlation id, set by the correlation middleware."""
    return str(getattr(request.state, "correlation_id", ""))


async def _ecs_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EcsError)
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
    log.info("request_refused", status=exc.status, code=exc.code, reason=exc.message)
    return error_response(exc.status, exc.problems(), correlation_id_of(request), headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        FieldProblem(
            code=str(error.get("type", "invalid_value")),
            message=f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', '')}",
            field=".".join(str(p) for p in error.get("loc", ())[1:]) or None,
        )
        for error in exc.errors()
    ]
    return error_response(400, problems, correlation_id_of(request))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail) if exc.detail else code.replace("_", " ")
    if exc.status_code == 404:
        message = f"no such resource: {request.method} {request.url.path}"
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        message = f"method {request.method} is not allowed on {request.url.path}"
        if allowed:
            message += f"; allowed: {allowed}"
            headers = {**(headers or {}), "Allow": allowed}
    return error_response(
        exc.status_code, [FieldProblem(code, message)], correlation_id_of(request), headers
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route takes on this path (a path may have a route per method)."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    """Map ECS errors, validation errors and HTTP errors to JSON error bodies."""
    app.add_exception_handler(EcsError, _ecs_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
