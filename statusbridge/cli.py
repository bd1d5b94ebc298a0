"""The ``statusbridge`` command line: run, once, check, backfill.

Exit codes: 0 success, 1 a job/check/backfill failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from statusbridge import __version__
from statusbridge.app import http_client, open_jobs
from statusbridge.commands import backfill, check
from statusbridge.config import Config, load_config
from statusbridge.daemon import Daemon
from statusbridge.exceptions import ConfigError, StatusBridgeError
from statusbridge.logs import configure_logging
from statusbridge.metrics import StatusBridgeMetrics

log = structlog.get_logger(__name__)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Parse ``90s``, ``15m``, ``6h``, ``7d`` or ``2w`` into seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 6h or 7d")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS keeps a value given before the command from being reset after it.
    common.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help="TOML configuration file"
    )
    common.add_argument(
        "--dry-run",
        action="store_true",
        default=argparse.SUPPRESS,
        help="read from the APIs but write nothing (no Cachet writes, no SignalFx sends)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; ``--config`` and ``--dry-run`` work on every command."""
    parser = argparse.ArgumentParser(
        prog="statusbridge",
        description="Pingdom → Cachet and ECS → SignalFx monitoring bridge.",
        parents=[_common_options()],
    )
    parser.add_argument("--version", action="version", version=f"statusbridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Each command gets its own copy: argparse shares parent actions by reference.
    commands.add_parser(
        "run", parents=[_common_options()], help="run the daemon until SIGINT/SIGTERM"
    )
    commands.add_parser(
        "once", parents=[_common_options()], help="run every job once; exit 1 on failure"
    )
    commands.add_parser(
        "check",
        parents=[_common_options()],
        help="validate the config and reach every configured API",
    )
    backfill = commands.add_parser(
        "backfill", parents=[_common_options()], help="push past points for one check"
    )
    backfill.add_argument("--check", type=int, required=True, help="Pingdom check id")
    backfill.add_argument(
        "--since", type=parse_duration, default=parse_duration("24h"), help="e.g. 7d (24h)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``statusbridge`` console script."""
    args = build_parser().parse_args(argv)
    args.config = getattr(args, "config", None)
    args.dry_run = getattr(args, "dry_run", False)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"statusbridge: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_format)
    if config.log_json is not None:
        log.warning("deprecated_setting", key="log_json", replacement="log_format")
    try:
        return asyncio.run(_dispatch(config, args))
    except StatusBridgeError as exc:
        print(f"statusbridge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _dispatch(config: Config, args: argparse.Namespace) -> int:
    if args.command == "run":
        return await _run(config, dry_run=args.dry_run)
    if args.command == "once":
        return await _once(config, dry_run=args.dry_run)
    if args.command == "check":
        async with http_client() as http:
            return await check(config, http)
    async with http_client() as http:
        return await backfill(
            config, http, check_id=args.check, since_s=args.since, dry_run=args.dry_run
        )


async def _run(config: Config, *, dry_run: bool) -> int:
    metrics = StatusBridgeMetrics()
    async with (
        http_client() as http,
        open_jobs(config, dry_run=dry_run, http_client=http, metrics=metrics) as jobs,
    ):
        await Daemon(config, jobs, metrics=metrics).serve()
    return 0


async def _once(config: Config, *, dry_run: bool) -> int:
    metrics = StatusBridgeMetrics()
    async with (
        http_client() as http,
        open_jobs(config, dry_run=dry_run, http_client=http, metrics=metrics) as jobs,
    ):
        daemon = Daemon(config, jobs, metrics=metrics)
        try:
            outcomes = await daemon.run_all_once()
        finally:
            await daemon.close_jobs()
    for name, error in outcomes.items():
        print(f"{name}: {'ok' if error is None else f'FAILED: {error}'}")
    if not outcomes:
        print("no jobs configured")
    return 1 if any(error is not None for error in outcomes.values()) else 0
