"""The ``ecs`` command line: the server's ``serve``, ``check``, ``creds``, ``reap``, and the
client's ``run``, ``wait``, ``cancel`` (``ecs.client``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from ecs import __version__
from ecs.client import add_client_commands, run_client_command
from ecs.config import Settings, load_settings, pinned_api_version
from ecs.docker import DockerClient, engine_http_client
from ecs.exceptions import ConfigError, EcsError
from ecs.janitor import Janitor, ReapMode
from ecs.keys import KeyFileError, generate_keys
from ecs.logconfig import configure_logging
from ecs.server import check_bind_address, check_engine, serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecs", description="Ephemeral Container Service")
    parser.add_argument("--version", action="version", version=f"ecs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("serve", "serve the HTTP API"),
        ("check", "validate the configuration and reach the Docker Engine"),
        ("reap", "remove abandoned task containers now"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--config", type=Path, help="TOML settings file")
    serve_command = commands.choices["serve"]
    serve_command.add_argument(
        "--host", help="listen address (wins over ECS_HOST and the file; default 127.0.0.1)"
    )
    serve_command.add_argument(
        "--port", type=int, help="listen port (wins over ECS_PORT and the file; default 8448)"
    )
    serve_command.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error", "critical"],
        help="wins over ECS_LOG_LEVEL and the file (default info)",
    )
    commands.choices["reap"].add_argument(
        "--all-of-instance",
        action="store_true",
        help="also remove every container of this instance_id (only while its ECS is stopped)",
    )
    creds = commands.add_parser(
        "creds",
        help="make API keys",
        description="generate N API key/secret pairs, append their bcrypt hashes to FILE "
        "and print the pairs (shown only this once)",
    )
    creds.add_argument("count", type=int, metavar="N", help="how many pairs to make")
    creds.add_argument("--file", type=Path, required=True, help="htpasswd file (created 0600)")
    add_client_commands(commands)
    return parser


def _command_line_settings(args: argparse.Namespace) -> dict[str, object]:
    """``serve``'s --host, --port and --log-level: given, they win over env and file."""
    given = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "log_level": getattr(args, "log_level", None),
    }
    return {key: value for key, value in given.items() if value is not None}


def run_cli(argv: list[str]) -> int:
    """Run one ``ecs`` command; return the process exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "creds":
            return _creds(args.count, args.file)
        if args.command in ("run", "wait", "cancel"):
            return run_client_command(args)
        settings = load_settings(args.config, **_command_line_settings(args))
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "serve":
            return serve(settings)
        if args.command == "check":
            check_bind_address(settings)
            report = asyncio.run(check_engine(settings))
            print(
                f"configuration: ok\nengine at {settings.docker_host}: ok (API {report.api_version}"
                f" of {report.engine_range}, runtime {report.runtime})"
            )
            return 0
        mode = ReapMode.STARTUP if args.all_of_instance else ReapMode.OVERDUE
        reaped = asyncio.run(_reap(settings, mode))
        print(f"reaped {reaped} container(s)")
        return 0
    except ConfigError as exc:
        print(f"ecs: {exc.message}", file=sys.stderr)
        return 2
    except EcsError as exc:
        print(f"ecs {args.command}: {exc.message}", file=sys.stderr)
        return 1


def _creds(count: int, path: Path) -> int:
    if count < 1:
        print("ecs creds: N must be at least 1", file=sys.stderr)
        return 2
    try:
        pairs = generate_keys(count, path)
    except (KeyFileError, OSError) as exc:
        print(f"ecs creds: {exc}", file=sys.stderr)
        return 1
    for pair in pairs:
        print(f"{pair.key}:{pair.secret}")
    print(f"appended {count} key hash(es) to {path}; the secrets are not stored", file=sys.stderr)
    return 0


async def _reap(settings: Settings, mode: ReapMode) -> int:
    http = engine_http_client(
        settings.docker_host,
        connect_timeout_s=settings.engine_connect_timeout_s,
        call_timeout_s=settings.engine_call_timeout_s,
    )
    async with http:
        janitor = Janitor(
            DockerClient(http, pinned_api_version=pinned_api_version(settings, os.environ)),
            instance_id=settings.instance_id,
            margin_s=settings.janitor_margin_s,
            creation_grace_s=settings.engine_call_timeout_s,
        )
        return await janitor.reap_once(mode)
