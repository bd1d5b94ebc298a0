"""The process's log output: one format for structlog and the standard library."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from statusbridge.logs import REDACTED, configure_logging


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """configure_logging changes global logging; undo that afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in ("apscheduler", "httpx"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_json_lines_for_structlog_and_stdlib_with_secrets_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """structlog events and APScheduler's stdlib warnings are both JSON lines on stderr."""
    configure_logging("info", "json")
    structlog.get_logger("statusbridge.test").info("daemon_started", token="s3cret")
    logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed")
    logging.getLogger("apscheduler.scheduler").info("Added job")
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.err.splitlines()]
    assert captured.out == ""
    assert [line["event"] for line in lines] == ["daemon_started", "Run time of job was missed"]
    assert lines[0]["token"] == REDACTED
    assert (lines[0]["level"], lines[0]["logger"]) == ("info", "statusbridge.test")
    assert lines[1]["level"] == "warning"
    assert "s3cret" not in captured.err


def test_level_filters_and_console_format(capsys: pytest.CaptureFixture[str]) -> None:
    """At warning, info events are dropped; console lines are key=value text, not JSON."""
    configure_logging("warning", "console")
    log = structlog.get_logger("statusbridge.test")
    log.info("job_succeeded")
    log.warning("job_failed", job="forwarding")
    err = capsys.readouterr().err
    assert "job_succeeded" not in err
    assert "job_failed" in err
    assert "job=forwarding" in err
