"""``create_app(settings)``: the FastAPI application, its middleware and its lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ecs import API_VERSION, __version__
from ecs.auth import TASK_PATHS, AuthMiddleware
from ecs.config import Settings
from ecs.engine_http import EngineHttp
from ecs.error_responses import install_error_handlers
from ecs.exceptions import EcsError
from ecs.janitor import ReapMode
from ecs.middleware import BodyGuardMiddleware, CorrelationMiddleware
from ecs.routes import metrics_router, router
from ecs.runtime import Runtime, build_runtime
from ecs.task_body import TaskRequest
from ecs.task_routes import router as task_router

log = structlog.get_logger(__name__)


def create_app(settings: Settings, *, engine_http: EngineHttp | None = None) -> FastAPI:
    """Build ECS for ``settings``; ``engine_http`` replaces the engine connection in tests."""

    runtime = build_runtime(settings, engine_http)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            engine = await runtime.connect_engine()
            log.info(
                "engine_connected",
                docker_host=settings.docker_host,
                api=str(engine.api_version),
                engine_api=str(engine.engine_range),
                runtime=engine.runtime,
            )
            # Nothing of this process runs yet: every container of this instance is an orphan.
            await runtime.janitor.reap_once(ReapMode.STARTUP)
            if runtime.warm is not None:
                await runtime.warm.start()
            await runtime.tasks.start()
            if runtime.cluster is not None:
                await runtime.cluster.start()
            janitor = asyncio.create_task(runtime.janitor.run_forever(settings.janitor_interval_s))
            try:
                yield
            finally:
                janitor.cancel()
                await asyncio.gather(janitor, return_exceptions=True)
                if runtime.cluster is not None:
                    await runtime.cluster.stop()
                await runtime.tasks.stop(grace_s=settings.shutdown_grace_s)
        finally:
            # Requests cut off by the shutdown grace are still unwinding: let them finish,
            # then remove whatever they leave.
            await runtime.wait_idle(timeout_s=settings.engine_call_timeout_s)
            if runtime.warm is not None:
                await runtime.warm.close()
            await runtime.remover.drain()
            await _final_sweep(runtime)
            await runtime.aclose()

    app = FastAPI(
        title="ECS — Ephemeral Container Service",
        version=__version__,
        summary="Runs one Docker container per request and answers its exit code and output.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.include_router(task_router)
    app.include_router(router)
    app.include_router(metrics_router)
    install_error_handlers(app)
    # Added innermost first: correlation → auth → body guard → routes.
    app.add_middleware(
        BodyGuardMiddleware,
        max_body_bytes=settings.request_body_cap_bytes,
        body_routes=frozenset(("POST", path) for path in TASK_PATHS),
    )
    if runtime.keys is not None:
        app.add_middleware(
            AuthMiddleware,
            keys=runtime.keys,
            limiter=runtime.limiter,
            failures=runtime.failed_auth,
            open_endpoints=settings.open_endpoints,
        )
    app.add_middleware(CorrelationMiddleware, observe=runtime.metrics.observe_request)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _final_sweep(runtime: Runtime) -> None:
    try:
        await runtime.janitor.reap_once(ReapMode.STARTUP, include_owned=True)
    except EcsError as exc:
        log.warning("final_sweep_failed", error=exc.message)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document plus the task request schema the tasks route reads by hand."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
        description=f"API version {API_VERSION}. Every error answers the ErrorBody shape.",
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    task_schema = TaskRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(task_schema.pop("$defs", {}))
    schemas["TaskRequest"] = task_schema
    app.openapi_schema = document
    return document
