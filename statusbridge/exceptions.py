"""statusbridge's one exception tree.

Every error statusbridge raises on purpose derives from one base::

    StatusBridgeError
    ├── ConfigError              bad or unreadable configuration (start-up stops)
    ├── StateError               the SQLite state file is unreadable or corrupt
    ├── ApiError                 an outside HTTP API refused or could not be reached
    │   ├── PingdomError
    │   │   └── QuotaExhausted   Pingdom's request quota is spent for longer than we wait
    │   ├── CachetError
    │   │   └── CachetTimeZoneError  Cachet stores or shows point times shifted by a zone
    │   └── EcsScrapeError       an ECS node's /metrics
    ├── ForwardingError          no ECS target could be scraped in a forwarding run
    ├── InvalidExpositionError   a scraped body is not Prometheus text
    └── InvalidDatapointError    a datapoint SignalFx would reject or its client choke on

Constructors take the message first and their context as keywords (``status``,
``reset_after_s``, ``shift_s``, ``metric``). Foreign errors (httpx, sqlite3, pydantic) are
translated into these at one seam per module and chained with ``raise ... from exc``. (The private
``_ServerError`` of :mod:`statusbridge.pingdom_cachet.retries` only carries a 5xx answer
to stamina and never leaves that module.)
"""

from __future__ import annotations


class StatusBridgeError(Exception):
    """Base class of every statusbridge error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(StatusBridgeError):
    """The configuration is missing, unparsable or holds a bad value."""


class StateError(StatusBridgeError):
    """The state database cannot be opened, read or written."""


class ApiError(StatusBridgeError):
    """An outside HTTP API answered with an error or could not be reached.

    ``status`` is the HTTP status code, or ``None`` when no answer arrived.
    """

    service = "API"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{self.service}: {where}: {message}")
        self.status = status


class PingdomError(ApiError):
    """Pingdom answered with an error or could not be reached."""

    service = "Pingdom"


class QuotaExhausted(PingdomError):
    """Pingdom's request quota is spent until ``reset_after_s`` seconds from now."""

    def __init__(self, message: str = "request quota spent", *, reset_after_s: float) -> None:
        super().__init__(f"{message}; resets in {reset_after_s:.0f} s", status=429)
        self.reset_after_s = reset_after_s


class CachetError(ApiError):
    """Cachet answered with an error or could not be reached."""

    service = "Cachet"


class CachetTimeZoneError(CachetError):
    """Cachet's point times are off by a time zone (``shift_s``), so points would double.

    Cachet 2.4 stores them shifted when its ``APP_TIMEZONE`` is not UTC
    (cachethq/cachet#2459); Cachet 3 answers in its ``APP_TIMEZONE``, which
    ``[cachet] timezone`` must name. No answer status: the answers were 2xx.
    """

    def __init__(self, message: str, *, shift_s: int) -> None:
        StatusBridgeError.__init__(self, f"{self.service}: {message}")
        self.status = None
        self.shift_s = shift_s


class EcsScrapeError(ApiError):
    """An ECS node's /metrics answered with an error or could not be reached."""

    service = "ECS"


class ForwardingError(StatusBridgeError):
    """No configured ECS target could be scraped in this run."""


class InvalidExpositionError(StatusBridgeError):
    """The scraped text is not a Prometheus text exposition."""


class InvalidDatapointError(StatusBridgeError):
    """A datapoint SignalFx would reject or the client would choke on."""

    def __init__(self, reason: str, *, metric: object) -> None:
        super().__init__(f"invalid datapoint {metric!r}: {reason}")
        self.metric = metric
        self.reason = reason
