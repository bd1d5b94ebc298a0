"""Serving ECS with uvicorn, and the checks that must pass before it listens."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import os
from types import FrameType

import uvicorn

from ecs.app import create_app
from ecs.config import Settings, pinned_api_version
from ecs.docker import DockerClient, engine_http_client
from ecs.engine_probe import EngineReport, probe_engine
from ecs.exceptions import ConfigError, EcsError


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_address(settings: Settings) -> None:
    """Refuse to listen beyond loopback without authentication configured."""
    if settings.credentials_file is None and not is_loopback(settings.host):
        raise ConfigError(
            f"host {settings.host!r} is not loopback and no credentials_file is configured: "
            "ECS listens beyond 127.0.0.1 only with API keys (see `ecs creds`)"
        )


async def check_engine(settings: Settings) -> EngineReport:
    """Reach the engine, agree on an API version, find the runtime; else a clear ConfigError."""
    http = engine_http_client(
        settings.docker_host,
        connect_timeout_s=settings.engine_connect_timeout_s,
        call_timeout_s=settings.engine_call_timeout_s,
    )
    pinned = pinned_api_version(settings, os.environ)
    async with http:
        try:
            docker = DockerClient(http, pinned_api_version=pinned)
            return await probe_engine(docker, settings.runtime)
        except EcsError as exc:
            raise ConfigError(
                f"Docker Engine at {settings.docker_host} is not usable: {exc.message}"
            ) from exc


class DrainingServer(uvicorn.Server):
    """uvicorn's server where the first SIGTERM/SIGINT drains and exits 0, a second forces.

    uvicorn re-raises the signal after a graceful stop, so the process would die of it;
    an orchestrator that asked for the stop should see a clean exit instead.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Only set flags: the serve loop notices them."""
        if self.should_exit:
            self.force_exit = True
        else:
            self.should_exit = True


def serve(settings: Settings) -> int:
    """Run ECS until SIGINT/SIGTERM and return the exit status.

    On the signal uvicorn stops accepting and lets in-flight tasks finish for up to
    ``shutdown_grace_s``; then it cancels them, and the lifespan removes what is left.
    """
    check_bind_address(settings)
    asyncio.run(check_engine(settings))  # fail fast, before binding, with a clear message
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        server_header=False,  # no response reveals the server software
        date_header=True,
        access_log=False,  # ECS logs its own request line, with the correlation id
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    server = DrainingServer(config)
    # Everything built so far (modules, FastAPI routes, pydantic schemas) lives as long as
    # the process: frozen, it is no longer rescanned by every full collection, which
    # otherwise stalls the event loop for ~100 ms under load (docs/performance.md).
    gc.collect()
    gc.freeze()
    server.run()
    return 0 if server.started else 1
