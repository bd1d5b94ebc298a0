"""structlog set-up for the statusbridge process (called once from ``main()``)."""

from __future__ import annotations

import logging
import sys

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure_logging(level: str, *, json: bool = False) -> None:
    """Log to stderr at ``level``, as key=value lines or JSON lines."""
    numeric = _LEVELS.get(level, logging.ERROR)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # APScheduler logs through the standard library; keep its warnings (skipped runs).
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
