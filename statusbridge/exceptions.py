"""The statusbridge exception tree.

Every error statusbridge raises on purpose derives from one base::

    StatusBridgeError
    ├── ConfigError          bad or unreadable configuration (start-up stops)
    ├── StateError           the SQLite state file is unreadable or corrupt
    └── ApiError             an outside API refused or could not be reached
        ├── PingdomError
        │   └── RateLimited  Pingdom's request quota is spent for longer than we wait
        └── CachetError

Foreign errors (httpx, sqlite3, pydantic) are translated into these at one seam per
module and chained with ``raise ... from exc``.
"""

from __future__ import annotations


class StatusBridgeError(Exception):
    """Base class of every statusbridge error."""


class ConfigError(StatusBridgeError):
    """The configuration is missing, unparsable or holds a bad value."""


class StateError(StatusBridgeError):
    """The state database cannot be opened, read or written."""


class ApiError(StatusBridgeError):
    """An outside HTTP API answered with an error or could not be reached.

    ``status`` is the HTTP status code, or ``None`` when no answer arrived.
    """

    service = "API"

    def __init__(self, status: int | None, message: str) -> None:
        self.status = status
        self.message = message
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{self.service}: {where}: {message}")


class PingdomError(ApiError):
    """Pingdom answered with an error or could not be reached."""

    service = "Pingdom"


class RateLimited(PingdomError):
    """Pingdom's request quota is exhausted until ``reset_after_s`` seconds from now."""

    def __init__(self, reset_after_s: float, message: str = "request limit exceeded") -> None:
        self.reset_after_s = reset_after_s
        super().__init__(429, f"{message}; resets in {reset_after_s:.0f} s")


class CachetError(ApiError):
    """Cachet answered with an error or could not be reached."""

    service = "Cachet"
