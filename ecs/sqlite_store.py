"""The one-node task store: a SQLite file, used from one thread of its own.

Every write is its own transaction with ``synchronous=FULL`` in WAL mode, so a task
answered 202 survives a ``kill -9`` and a power cut alike. The database is small and
local: each call takes well under a millisecond, but it runs on the store's thread so
the event loop never waits on the disk. Long polls are woken in process, because the
process that writes a terminal status is the one serving its waiters.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ecs.exceptions import ConfigurationConflict
from ecs.task_records import CallbackStatus, TaskRecord, TaskStatus

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    idempotency_key TEXT,
    callback_status TEXT,
    callback_next_at REAL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_idempotency
    ON tasks (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status, created_at);
CREATE INDEX IF NOT EXISTS tasks_callbacks ON tasks (callback_status, callback_next_at);
CREATE INDEX IF NOT EXISTS tasks_expiry ON tasks (expires_at);
"""
_COLUMNS = "id, owner, status, created_at, expires_at, idempotency_key, callback_status, "
_COLUMNS += "callback_next_at, data"


class SqliteTaskStore:
    """``TaskStore`` on a SQLite file at ``path``."""

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self._path = path
        self._clock = clock
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecs-store")
        self._db: sqlite3.Connection | None = None
        self._lock: int | None = None
        self._terminal: dict[str, asyncio.Event] = {}

    async def open(self) -> None:
        """Create the file (mode 0600: it holds queued requests) and the tables."""
        await self._call(self._open)

    async def close(self) -> None:
        """Close the database and the store's thread."""
        if self._db is not None:
            await self._call(self._db.close)
            self._db = None
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the lock
            self._lock = None
        self._thread.shutdown(wait=True)

    async def create(self, record: TaskRecord) -> tuple[TaskRecord, bool]:
        """Insert, or return the live record that already holds the idempotency key."""
        return await self._call(lambda: self._create(record))

    async def save(self, record: TaskRecord) -> None:
        """Overwrite the record; wake long polls once it is terminal."""
        await self._call(lambda: self._write("REPLACE", record))
        if record.status.terminal:
            self._event(record.id).set()

    async def get(self, task_id: str) -> TaskRecord | None:
        """The record unless unknown or expired."""
        rows = await self._call(
            lambda: self._select(
                "WHERE id = ? AND (expires_at IS NULL OR expires_at > ?)",
                (task_id, self._clock()),
            )
        )
        return rows[0] if rows else None

    async def unfinished(self) -> list[TaskRecord]:
        """Queued and running records, oldest first: this file has one process."""
        return await self._call(
            lambda: self._select(
                "WHERE status IN (?, ?) ORDER BY created_at",
                (str(TaskStatus.QUEUED), str(TaskStatus.RUNNING)),
            )
        )

    async def callbacks_due(self, now: float, limit: int) -> list[TaskRecord]:
        """Pending callbacks of terminal tasks whose next attempt is due."""
        return await self._call(
            lambda: self._select(
                "WHERE callback_status = ? AND callback_next_at <= ? "
                "ORDER BY callback_next_at LIMIT ?",
                (str(CallbackStatus.PENDING), now, limit),
            )
        )

    async def purge_expired(self, now: float) -> int:
        """Delete what is past its retention."""
        purged = await self._call(lambda: self._delete_expired(now))
        for task_id in [key for key, event in self._terminal.items() if event.is_set()]:
            del self._terminal[task_id]
        return purged

    async def wait_terminal(self, task_id: str, timeout_s: float) -> None:
        """Sleep on the task's event, no busy loop; the caller re-reads the record."""
        record = await self.get(task_id)
        if record is None or record.status.terminal:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._event(task_id).wait()
        except TimeoutError:
            return

    # -- on the store's thread ----------------------------------------------------------

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # One process per file: a second ECS on the same file would settle the first's
        # running tasks as interrupted. The lock goes with the process, kill -9 included.
        self._lock = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock)
            raise ConfigurationConflict(
                f"state_path {self._path} is in use by another ECS process; give each its own"
            ) from exc
        self._db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def _create(self, record: TaskRecord) -> tuple[TaskRecord, bool]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            if record.idempotency_key is not None:
                found = self._select(
                    "WHERE owner = ? AND idempotency_key = ?",
                    (record.owner, record.idempotency_key),
                )
                if found and not _expired(found[0], self._clock()):
                    db.execute("COMMIT")
                    return found[0], False
                if found:  # expired but not purged yet (its callback may still be pending)
                    db.execute(
                        "UPDATE tasks SET idempotency_key = NULL WHERE id = ?", (found[0].id,)
                    )
            self._write("INSERT", record)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return record, True

    def _write(self, verb: str, record: TaskRecord) -> None:
        callback = record.callback
        self._connection().execute(
            f"{verb} INTO tasks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.owner,
                str(record.status),
                record.created_at,
                record.expires_at,
                record.idempotency_key,
                str(callback.status) if callback else None,
                callback.next_attempt_at if callback else None,
                json.dumps(record.to_json(), separators=(",", ":")),
            ),
        )

    def _select(self, where: str, parameters: tuple[Any, ...]) -> list[TaskRecord]:
        rows = self._connection().execute(f"SELECT data FROM tasks {where}", parameters)  # noqa: S608
        return [TaskRecord.from_json(json.loads(row[0])) for row in rows]

    def _delete_expired(self, now: float) -> int:
        # A callback still being retried keeps its record until it is delivered or given up.
        cursor = self._connection().execute(
            "DELETE FROM tasks WHERE expires_at IS NOT NULL AND expires_at <= ? "
            "AND (callback_status IS NULL OR callback_status != ?)",
            (now, str(CallbackStatus.PENDING)),
        )
        return cursor.rowcount

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the task store is not open")
        return self._db

    # -- plumbing -----------------------------------------------------------------------

    async def _call(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def _event(self, task_id: str) -> asyncio.Event:
        return self._terminal.setdefault(task_id, asyncio.Event())


def _expired(record: TaskRecord, now: float) -> bool:
    return record.expires_at is not None and record.expires_at <= now
