"""structlog set-up: JSON lines to stderr (console lines on a terminal), secrets redacted.

The same shape as ``ecs.logconfig``: one formatter for structlog and the standard
library (APScheduler, httpx), so every line of the process has one format. Logs go to
stderr because stdout carries the command output (``once``, ``check``, dry-run
datapoints). Called once from ``main()``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED = "**********"
_SECRET_WORDS = ("password", "secret", "token", "authorization", "creds", "auth", "app_key")


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask any field whose name suggests a secret, however it got into the event."""
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = REDACTED
    return event


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the stdlib loggers to share one output on stderr.

    ``level``: debug, info, warning, error or critical; ``fmt``: json, console, or auto
    (console on a terminal, JSON otherwise).
    """
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if use_console
        else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Tests capture and reset logging between runs; a cached logger would miss that.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # APScheduler logs every run at INFO and httpx every request; keep their warnings
    # (skipped runs, for one).
    for name in ("apscheduler", "httpx"):
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
