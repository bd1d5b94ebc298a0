"""The SQLite state file: round trips, per-bucket commits and broken files."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from statusbridge.exceptions import StateError
from statusbridge.pingdom_cachet.state import StateFile
from statusbridge.pingdom_cachet.status import ComponentStatus, Hysteresis


def test_watermark_and_pending_bucket_round_trip(state_path: Path) -> None:
    """A pending bucket is cleared by the commit that moves the watermark, across reopenings."""
    with StateFile(state_path) as state:
        assert state.load(7).watermark is None
        state.mark_pending(7, 600)
        assert state.load(7).pending_bucket == 600
        state.commit_bucket(7, 660)
    with StateFile(state_path) as state:
        loaded = state.load(7)
    assert (loaded.watermark, loaded.pending_bucket) == (660, None)


def test_status_and_incident_round_trip(state_path: Path) -> None:
    """Hysteresis memory, pushed status and the open incident survive a restart."""
    hysteresis = Hysteresis(ComponentStatus.MAJOR_OUTAGE, 3, 0, 1234, 1200)
    with StateFile(state_path) as state:
        state.commit_bucket(7, 660)
        saved = replace(
            state.load(7),
            hysteresis=hysteresis,
            pushed_status=4,
            incident_id=9,
            incident_updated_at="2023-11-14 22:59:05",
        )
        state.save(saved)
    with StateFile(state_path) as state:
        assert state.load(7) == saved


def test_corrupt_file_names_the_file_and_the_recovery(state_path: Path) -> None:
    """A file that is not SQLite raises StateError naming it and saying what to do."""
    state_path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError) as caught:
        StateFile(state_path)
    message = str(caught.value)
    assert str(state_path) in message
    assert "move" in message
    assert "aside" in message


def test_newer_schema_is_refused(state_path: Path) -> None:
    """A state file written by a newer statusbridge is not silently downgraded."""
    db = sqlite3.connect(state_path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StateError, match="newer than this statusbridge"):
        StateFile(state_path)
