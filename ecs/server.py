"""Serving ECS with uvicorn, and the checks that must pass before it listens."""

from __future__ import annotations

import ipaddress

import uvicorn

from ecs.app import create_app
from ecs.config import ConfigError, Settings


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
    if not is_loopback(settings.host):
        raise ConfigError(
            f"host {settings.host!r} is not loopback and no credentials file is configured: "
            "ECS listens beyond 127.0.0.1 only with API keys (set credentials_file)"
        )


def serve(settings: Settings) -> None:
    """Run ECS until SIGINT/SIGTERM; uvicorn stops accepting, drains, then the lifespan ends."""
    check_bind_address(settings)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        server_header=False,  # no response reveals the server software
        date_header=True,
        access_log=False,  # ECS logs its own request line, with the correlation id
        log_config=None,
        lifespan="on",
    )
    uvicorn.Server(config).run()
