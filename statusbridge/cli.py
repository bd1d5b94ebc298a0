"""The ``statusbridge`` command line: run, once, check, backfill, init.

Exit codes: 0 success, 1 a job/check/backfill/init failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, cast

import structlog
from pydantic import SecretStr

from statusbridge import __version__
from statusbridge.app import http_client, open_jobs
from statusbridge.commands import backfill, check
from statusbridge.config import PINGDOM_DEFAULT_URLS, Config, load_config
from statusbridge.daemon import Daemon
from statusbridge.exceptions import ConfigError, StatusBridgeError
from statusbridge.init import InitOptions, run_init
from statusbridge.logs import configure_logging
from statusbridge.metrics import StatusBridgeMetrics
from statusbridge.replay import replay

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
    run = commands.add_parser(
        "run", parents=[_common_options()], help="run the daemon until SIGINT/SIGTERM"
    )
    once = commands.add_parser(
        "once", parents=[_common_options()], help="run every job once; exit 1 on failure"
    )
    for command in (run, once):
        command.add_argument(
            "--replay",
            type=Path,
            metavar="FILE",
            help="first replay recorded Pingdom results (a saved /results answer) through "
            "the Pingdom → Cachet job, in memory, printing every point, status change and "
            "incident it would write; it stands in for the configured checks",
        )
        command.add_argument(
            "--png",
            type=Path,
            default=Path("statusbridge-replay.png"),
            help="where --replay draws the uptime and response-time series "
            "(statusbridge-replay.png)",
        )
    run.add_argument(
        "--host", help="address of the /health and /metrics endpoint (wins over the config)"
    )
    run.add_argument(
        "--port",
        type=_port,
        help="port of the /health and /metrics endpoint (wins over the config)",
    )
    run.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error", "critical"),
        help="wins over log_level in the config and STATUSBRIDGE_LOG_LEVEL",
    )
    check_command = commands.add_parser(
        "check",
        help="validate the config and reach every configured API (writes nothing)",
        description="Validate the config and reach every configured API; it writes nothing.",
    )
    check_command.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help="TOML configuration file"
    )
    backfill = commands.add_parser(
        "backfill",
        parents=[_common_options()],
        help="push the past points of some checks (those already in Cachet are skipped)",
    )
    which = backfill.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--check",
        type=int,
        action="append",
        metavar="ID",
        help="a configured Pingdom check id (repeat for more)",
    )
    which.add_argument("--all", action="store_true", help="every configured check")
    backfill.add_argument(
        "--since",
        type=parse_duration,
        default=parse_duration("24h"),
        help="how far back to start, e.g. 7d (default 24h)",
    )
    backfill.add_argument(
        "--until",
        type=parse_duration,
        default=None,
        help="how far back to stop, e.g. 6h (default: now); the component status is then "
        "left alone, being about now",
    )
    _add_init(commands)
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return port


def _command_line(config: Config, args: argparse.Namespace) -> Config:
    """``run``'s --host, --port and --log-level, which win over the file and environment."""
    http = {key: getattr(args, key, None) for key in ("host", "port")}
    http = {key: value for key, value in http.items() if value is not None}
    update: dict[str, object] = {}
    if http:
        update["http"] = config.http.model_copy(update=http)
    if getattr(args, "log_level", None):
        update["log_level"] = args.log_level
    return config.model_copy(update=update) if update else config


def _add_init(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = commands.add_parser(
        "init",
        parents=[_common_options()],
        help="write a config from the Pingdom checks and the Cachet components and metrics",
    )
    init.add_argument(
        "--pingdom-token", help="Pingdom API 3.1 token (or STATUSBRIDGE_PINGDOM__TOKEN)"
    )
    init.add_argument(
        "--pingdom-url",
        default=os.environ.get("STATUSBRIDGE_PINGDOM__BASE_URL", PINGDOM_DEFAULT_URLS["3.1"]),
        help="Pingdom API base URL (default: API 3.1)",
    )
    init.add_argument("--cachet-url", help="Cachet API base URL (or STATUSBRIDGE_CACHET__BASE_URL)")
    init.add_argument("--cachet-token", help="Cachet API token (or STATUSBRIDGE_CACHET__TOKEN)")
    init.add_argument("--cachet-api-version", choices=("auto", "2.3", "2.4", "3"), default="auto")
    init.add_argument("--out", type=Path, help="write the config there instead of stdout")
    init.add_argument(
        "--create-missing",
        action="store_true",
        help="create the response-time and uptime metrics a check lacks",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``statusbridge`` console script."""
    args = build_parser().parse_args(argv)
    args.config = getattr(args, "config", None)
    args.dry_run = getattr(args, "dry_run", False)
    if args.command == "init":
        return _init(args)
    if args.command == "check" and args.dry_run:
        print("statusbridge check: --dry-run does not apply: check writes nothing", file=sys.stderr)
        return 2
    try:
        config = _command_line(load_config(args.config), args)
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
    if args.command in ("run", "once") and args.replay is not None:
        await _replay(config, args.replay, args.png)
        if args.command == "once":
            return 0
        # The replay stood in for the Pingdom → Cachet jobs; the others run as configured.
        config = config.model_copy(update={"checks": []})
    if args.command == "run":
        return await _run(config, dry_run=args.dry_run)
    if args.command == "once":
        return await _once(config, dry_run=args.dry_run)
    if args.command == "check":
        async with http_client() as http:
            return await check(config, http)
    async with http_client() as http:
        return await backfill(
            config,
            http,
            check_ids=None if args.all else args.check,
            since_s=args.since,
            until_s=args.until,
            dry_run=args.dry_run,
        )


def _init(args: argparse.Namespace) -> int:
    """``init`` needs no config: everything comes from its options and the environment."""
    env = os.environ
    values = {
        "--pingdom-token": args.pingdom_token or env.get("STATUSBRIDGE_PINGDOM__TOKEN"),
        "--cachet-url": args.cachet_url or env.get("STATUSBRIDGE_CACHET__BASE_URL"),
        "--cachet-token": args.cachet_token or env.get("STATUSBRIDGE_CACHET__TOKEN"),
    }
    missing = [option for option, value in values.items() if not value]
    if missing:
        print(f"statusbridge init: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    options = InitOptions(
        pingdom_url=args.pingdom_url,
        pingdom_token=SecretStr(str(values["--pingdom-token"])),
        cachet_url=str(values["--cachet-url"]),
        cachet_token=SecretStr(str(values["--cachet-token"])),
        cachet_api_version=cast(Literal["auto", "2.3", "2.4", "3"], args.cachet_api_version),
        out=args.out,
        create_missing=args.create_missing,
        dry_run=args.dry_run,
    )
    configure_logging("warning", "auto")

    def say(line: str) -> None:
        print(f"init: {line}", file=sys.stderr)

    async def init() -> int:
        async with http_client() as http:
            return await run_init(options, http, say=say)

    try:
        return asyncio.run(init())
    except StatusBridgeError as exc:
        print(f"statusbridge init: {exc}", file=sys.stderr)
        return 1


async def _replay(config: Config, path: Path, png: Path) -> None:
    report = await replay(path, check=config.checks[0] if config.checks else None, png=png)
    print(
        f"replay: {report.results} Pingdom results → {report.points} points, "
        f"{report.status_changes} status changes, {report.incidents} incident(s) "
        f"(nothing sent); chart: {report.chart}",
        flush=True,
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
