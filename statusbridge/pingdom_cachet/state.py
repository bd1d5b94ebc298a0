"""Per-check state on disk: stdlib sqlite3 in WAL mode, one transaction per bucket.

Kept per Pingdom check: the watermark (end of the last bucket Cachet accepted), the
bucket being pushed (set before a push, cleared with the watermark, so that the next run
knows to look for points of a push that may have landed before a crash), the
hysteresis memory and last component status pushed, and the open incident.

A file that is not a readable statusbridge database raises :class:`StateError` naming
the file and the recovery: move it aside and start again (see docs/statusbridge.md).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statusbridge.exceptions import StateError
from statusbridge.pingdom_cachet.status import ComponentStatus, Hysteresis

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS checks (
    check_id            INTEGER PRIMARY KEY,
    watermark           INTEGER,
    pending_bucket      INTEGER,
    status              INTEGER,
    pushed_status       INTEGER,
    down_streak         INTEGER NOT NULL DEFAULT 0,
    up_streak           INTEGER NOT NULL DEFAULT 0,
    status_cursor       INTEGER NOT NULL DEFAULT 0,
    status_changed_at   INTEGER,
    incident_id         INTEGER,
    incident_updated_at TEXT
)
"""
_SELECT = (
    "SELECT watermark, pending_bucket, status, pushed_status, down_streak, up_streak, "
    "status_cursor, status_changed_at, incident_id, incident_updated_at FROM checks"
)
_STATUSES = {int(s) for s in ComponentStatus}


@dataclass
class CheckRecord:
    """Everything remembered about one check between runs."""

    check_id: int
    watermark: int | None = None
    pending_bucket: int | None = None
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
    pushed_status: int | None = None
    incident_id: int | None = None
    incident_updated_at: str | None = None


def recovery_hint(path: Path) -> str:
    """What an operator does about a broken state file."""
    return (
        f"move {path} aside (e.g. to {path}.broken) and restart: statusbridge then starts "
        "each check again from its backfill window, and points already in Cachet are "
        "found there and not posted twice; see docs/statusbridge.md, 'State recovery'"
    )


class StateFile:
    """The SQLite state file of every check's :class:`CheckRecord`.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"state file {path} has schema {version}, newer than this statusbridge "
                    f"({SCHEMA_VERSION}); {recovery_hint(path)}"
                )
            self._db.execute(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute(_SELECT + " LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"cannot use state file {path}: {exc}; {recovery_hint(path)}") from exc

    def __enter__(self) -> StateFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def load(self, check_id: int) -> CheckRecord:
        """The check's record (defaults for a check never seen)."""
        row = self._query(_SELECT + " WHERE check_id = ?", check_id)
        if row is None:
            return CheckRecord(check_id)
        hysteresis = Hysteresis(
            status=ComponentStatus(row[2]) if row[2] in _STATUSES else None,
            down_streak=row[4],
            up_streak=row[5],
            cursor=row[6],
            changed_at=row[7],
        )
        return CheckRecord(check_id, row[0], row[1], hysteresis, row[3], row[8], row[9])

    def mark_pending(self, check_id: int, bucket: int) -> None:
        """Record that ``bucket``'s points are about to be pushed."""
        self._write("UPDATE checks SET pending_bucket = ? WHERE check_id = ?", bucket, check_id)

    def commit_bucket(self, check_id: int, watermark: int) -> None:
        """Cachet accepted a bucket: move the watermark to its end, in one transaction."""
        self._write(
            "UPDATE checks SET watermark = ?, pending_bucket = NULL WHERE check_id = ?",
            watermark,
            check_id,
        )

    def save(self, record: CheckRecord) -> None:
        """Write the status and incident part of ``record`` (watermark untouched)."""
        s = record.hysteresis
        self._write(
            "UPDATE checks SET status = ?, pushed_status = ?, down_streak = ?, up_streak = ?, "
            "status_cursor = ?, status_changed_at = ?, incident_id = ?, incident_updated_at = ? "
            "WHERE check_id = ?",
            None if s.status is None else int(s.status),
            record.pushed_status,
            s.down_streak,
            s.up_streak,
            s.cursor,
            s.changed_at,
            record.incident_id,
            record.incident_updated_at,
            record.check_id,
        )

    def _query(self, sql: str, *params: object) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = self._db.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise StateError(f"cannot read {self.path}: {exc}; {recovery_hint(self.path)}") from exc
        return row

    def _write(self, sql: str, *params: object) -> None:
        check_id = params[-1]
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO checks (check_id) VALUES (?) ON CONFLICT DO NOTHING", (check_id,)
                )
                self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StateError(
                f"cannot write {self.path}: {exc}; {recovery_hint(self.path)}"
            ) from exc
