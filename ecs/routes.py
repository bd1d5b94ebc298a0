"""HTTP endpoints: a few lines each around a use case in ``ecs.runtime`` / ``ecs.health``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ecs import API_VERSION, __version__
from ecs.error_responses import error_responses
from ecs.exceptions import FieldProblem, InvalidRequest
from ecs.health import check_health, parse_quick
from ecs.responses import HealthResponse, NoopResponse, VersionResponse
from ecs.runtime import Runtime

router = APIRouter(prefix=f"/{API_VERSION}")
metrics_router = APIRouter()


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _self_link(request: Request) -> dict[str, Any]:
    return {"self": {"href": str(request.url)}}


@router.get("/_noop", response_model=NoopResponse, summary="Round trip only")
@router.head("/_noop", include_in_schema=False)
async def noop(request: Request, response: Response) -> dict[str, Any]:
    """Answer at once; the time it takes is the cost of reaching ECS."""
    response.headers["Location"] = str(request.url)
    return {"links": _self_link(request)}


@router.get("/_version", response_model=VersionResponse, summary="ECS version")
@router.head("/_version", include_in_schema=False)
async def version(request: Request, response: Response) -> dict[str, Any]:
    """The version of ECS serving this request."""
    response.headers["Location"] = str(request.url)
    return {"version": __version__, "links": _self_link(request)}


@router.get(
    "/_health",
    response_model=HealthResponse,
    response_model_exclude_none=True,
    summary="Health",
    responses={503: {"model": HealthResponse, "description": "red"}, **error_responses(400)},
)
@router.head("/_health", include_in_schema=False)
async def health(request: Request, quick: str | None = None) -> JSONResponse:
    """Quick (default) checks nothing external; ``quick=false`` checks the engine."""
    is_quick = parse_quick(quick)
    if is_quick is None:
        problem = FieldProblem("invalid_quick", f"quick must be a boolean, not {quick!r}", "quick")
        raise InvalidRequest([problem])
    runtime = _runtime(request)
    report = await check_health(
        runtime.docker,
        quick=is_quick,
        runtime=runtime.settings.runtime,
        redis=runtime.cluster.store if runtime.cluster is not None else None,
    )
    body: dict[str, Any] = {"status": "green" if report.green else "red"}
    if report.details is not None:
        body["details"] = report.details
    body["links"] = _self_link(request)
    return JSONResponse(
        body, status_code=200 if report.green else 503, headers={"Location": str(request.url)}
    )


@metrics_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
@metrics_router.head("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The Prometheus text exposition of this ECS process."""
    exposition = _runtime(request).metrics
    return Response(exposition.exposition(), media_type=exposition.content_type)


__all__ = ["metrics_router", "router"]
