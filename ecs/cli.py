"""The ``ecs`` command line: ``serve``, ``check``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ecs import __version__
from ecs.config import ConfigError, Settings, load_settings
from ecs.docker import DockerClient, engine_http_client
from ecs.exceptions import EcsError
from ecs.logconfig import configure_logging
from ecs.server import check_bind_address, serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecs", description="Ephemeral Container Service")
    parser.add_argument("--version", action="version", version=f"ecs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "serve the HTTP API"),
        ("check", "validate the configuration and reach the Docker Engine"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--config", type=Path, help="TOML settings file")
    return parser


def run_cli(argv: list[str]) -> int:
    """Run one ``ecs`` command; return the process exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "serve":
            serve(settings)
        elif args.command == "check":
            return asyncio.run(_check(settings))
    except ConfigError as exc:
        print(f"ecs: {exc.message}", file=sys.stderr)
        return 2
    return 0


async def _check(settings: Settings) -> int:
    check_bind_address(settings)
    http = engine_http_client(
        settings.docker_host,
        connect_timeout_s=settings.engine_connect_timeout_s,
        call_timeout_s=settings.engine_call_timeout_s,
    )
    async with http:
        try:
            version = await DockerClient(http).negotiate()
        except EcsError as exc:
            print(f"engine at {settings.docker_host}: FAILED: {exc.message}", file=sys.stderr)
            return 1
    print(f"configuration: ok\nengine at {settings.docker_host}: ok (API {version})")
    return 0
