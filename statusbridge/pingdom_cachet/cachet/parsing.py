"""Reading Cachet's JSON loosely: every field may be missing or of another type.

Numbers come as numbers or numeric strings depending on version and database driver;
an object without an id is an error, anything else missing becomes None.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from statusbridge.exceptions import CachetError


def as_dict(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_int(value: object) -> int | None:
    """An int, or a string of digits; None otherwise (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def as_float(value: object) -> float | None:
    """A number or a numeric string as a float; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def as_bool(value: object) -> bool | None:
    """true/false, 1/0 or "1"/"0" as a bool; None otherwise."""
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1"):
        return bool(int(value))
    return None


def object_id(raw: dict[str, Any]) -> int:
    """The object's id; an answer without one raises :class:`CachetError`."""
    value = as_int(raw.get("id"))
    if value is None:
        raise CachetError("answer holds no object id", status=200)
    return value


def parse_time(value: object, zone: tzinfo = UTC) -> int | None:
    """Cachet's ``Y-m-d H:i:s`` wall-clock time in ``zone`` → unix seconds."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
    except ValueError:
        return None
    return int(parsed.timestamp())
