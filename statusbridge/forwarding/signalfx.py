"""SignalFx datapoints, their validation, and the sinks they go to.

:class:`SignalFxSink` hands datapoints to a
:class:`~statusbridge.forwarding.ingest.BufferedIngestClient` — the ``signalfx``
package's protobuf client with its HTTP answers handled: nothing is lost without a word
(retries from a bounded buffer, drops counted, a refused token reported for /health).
The package has two more habits this module contains:

- ``send()`` only queues; the client's thread POSTs batches of 300. So the sink counts
  what it handed over, and logs the client's error counters (failed POSTs by kind)
  every cycle;
- ``send()`` raises half-way through a list on a ``bool``/``None`` value or a non-string
  dimension; so every datapoint is validated first and a bad one is dropped and logged
  instead of taking the cycle's other datapoints with it.

:class:`DryRunSink` prints the datapoints as JSON lines instead, for trying the daemon
without a token.
"""

from __future__ import annotations

import enum
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import structlog
from pydantic import SecretStr

from statusbridge.exceptions import InvalidDatapointError
from statusbridge.forwarding.ingest import BufferedIngestClient

__all__ = [
    "MAX_DIMENSION_LENGTH",
    "MAX_METRIC_LENGTH",
    "Datapoint",
    "DatapointSink",
    "DryRunSink",
    "MetricType",
    "SignalFxSink",
    "validate",
]

MAX_METRIC_LENGTH = 256
MAX_DIMENSION_LENGTH = 128
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Rejections are logged one by one only up to this many per cycle, then summarised.
_MAX_REJECTS_LOGGED = 5

log = structlog.get_logger(__name__)


class MetricType(enum.StrEnum):
    """SignalFx metric types, spelled as the ingest API's JSON keys."""

    GAUGE = "gauge"
    COUNTER = "counter"
    CUMULATIVE_COUNTER = "cumulative_counter"


@dataclass(frozen=True, slots=True)
class Datapoint:
    """One SignalFx datapoint: a metric name, its type, a value, a time and dimensions."""

    metric: str
    metric_type: MetricType
    value: int | float
    timestamp_ms: int
    dimensions: Mapping[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The dict the ``signalfx`` client's ``send()`` takes (a fresh one every call)."""
        return {
            "metric": self.metric,
            "value": self.value,
            "timestamp": self.timestamp_ms,
            # The client merges extra dimensions into this dict in place; never share it.
            "dimensions": dict(self.dimensions),
        }


def validate(datapoint: Datapoint) -> None:
    """Raise :class:`InvalidDatapointError` unless ``datapoint`` is safe to hand over.

    Checks: a non-empty metric name of at most 256 characters; a known metric type; an
    ``int`` or ``float`` value (not ``bool``, not ``None``) that is finite and, for
    ints, fits int64; a positive integer millisecond timestamp; string dimension keys
    and values, non-empty and at most 128 characters each.
    """
    metric = datapoint.metric
    if not isinstance(metric, str) or not metric:
        raise InvalidDatapointError("metric name must be a non-empty string", metric=metric)
    if len(metric) > MAX_METRIC_LENGTH:
        raise InvalidDatapointError(f"metric name longer than {MAX_METRIC_LENGTH}", metric=metric)
    if not isinstance(datapoint.metric_type, MetricType):
        raise InvalidDatapointError(f"unknown metric type {datapoint.metric_type!r}", metric=metric)
    _check_value(metric, datapoint.value)
    timestamp = datapoint.timestamp_ms
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp <= 0:
        raise InvalidDatapointError(
            f"timestamp must be a positive int, not {timestamp!r}", metric=metric
        )
    if not isinstance(datapoint.dimensions, Mapping):
        raise InvalidDatapointError("dimensions must be a mapping", metric=metric)
    for key, value in datapoint.dimensions.items():
        for what, text in (("key", key), ("value", value)):
            if not isinstance(text, str) or not text:
                raise InvalidDatapointError(
                    f"dimension {what} {text!r} must be a non-empty string", metric=metric
                )
            if len(text) > MAX_DIMENSION_LENGTH:
                raise InvalidDatapointError(
                    f"dimension {what} {text[:32]!r}… longer than {MAX_DIMENSION_LENGTH}",
                    metric=metric,
                )


def _check_value(metric: str, value: object) -> None:
    # bool is an int subclass, so it has to be ruled out before the int check.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidDatapointError(f"value {value!r} is not an int or float", metric=metric)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidDatapointError(f"value {value!r} is not finite", metric=metric)
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise InvalidDatapointError(f"value {value!r} does not fit int64", metric=metric)


def partition(datapoints: Sequence[Datapoint]) -> tuple[list[Datapoint], int]:
    """Split off the invalid datapoints, logging why; return the valid ones and a count."""
    valid: list[Datapoint] = []
    rejected = 0
    for datapoint in datapoints:
        try:
            validate(datapoint)
        except InvalidDatapointError as exc:
            rejected += 1
            if rejected <= _MAX_REJECTS_LOGGED:
                log.warning("signalfx_datapoint_rejected", metric=exc.metric, reason=exc.reason)
            continue
        valid.append(datapoint)
    if rejected > _MAX_REJECTS_LOGGED:
        log.warning("signalfx_datapoints_rejected", count=rejected)
    return valid, rejected


class DatapointSink(Protocol):
    """Where the forwarding job hands its datapoints: SignalFx, or stdout in a dry run.

    ``client_errors`` is the running total of failed POSTs the sink learnt about,
    ``dropped`` the datapoints lost after they were handed over (by reason),
    ``buffered`` those still waiting, and ``auth_error`` why ingest refuses the token
    (None while it does not).
    """

    client_errors: int

    @property
    def dropped(self) -> Mapping[str, int]:
        """Datapoints lost after hand-over, by reason."""
        ...

    @property
    def buffered(self) -> int:
        """Datapoints handed over and not yet accepted."""
        ...

    @property
    def auth_error(self) -> str | None:
        """Why ingest refuses the token, or None."""
        ...

    def send(self, datapoints: Sequence[Datapoint]) -> int:
        """Validate and hand over ``datapoints``; return how many were handed over."""
        ...

    def close(self) -> None:
        """Flush what is pending and release resources; blocks until done."""
        ...


class SignalFxSink:
    """Sends datapoints through a :class:`BufferedIngestClient`, and makes drops visible.

    ``handed_over``, ``rejected`` and ``client_errors`` are running totals for the
    daemon's own metrics; ``buffer_s`` is how many seconds of datapoints (on ``clock``)
    wait for an ingest outage to end, retried after ``retry_initial_s`` doubling up to
    ``retry_max_s``. The token is used to build the client and kept nowhere else.
    """

    def __init__(
        self,
        *,
        token: SecretStr | str,
        ingest_endpoint: str,
        timeout_s: float = 5.0,
        buffer_s: float = 600.0,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        self.ingest_endpoint = ingest_endpoint
        self._client = BufferedIngestClient(
            secret,
            endpoint=ingest_endpoint,
            timeout=timeout_s,
            buffer_s=buffer_s,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
            clock=clock,
        )
        self.handed_over = 0
        self.rejected = 0
        self.client_errors = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"SignalFxSink(ingest_endpoint={self.ingest_endpoint!r})"

    @property
    def dropped(self) -> Mapping[str, int]:
        """Datapoints the client lost after hand-over, by reason."""
        return self._client.dropped

    @property
    def buffered(self) -> int:
        """Datapoints waiting for ingest."""
        return self._client.buffered

    @property
    def auth_error(self) -> str | None:
        """Why ingest refuses the token, or None."""
        return self._client.auth_error

    def send(self, datapoints: Sequence[Datapoint]) -> int:
        """Queue the valid datapoints on the client and log this cycle's counters.

        The client's error counters cover POSTs that failed since the previous call, so a
        failure shows up one cycle after the datapoints it dropped were handed over.
        """
        valid, rejected = partition(datapoints)
        by_type: dict[MetricType, list[dict[str, Any]]] = {kind: [] for kind in MetricType}
        for datapoint in valid:
            by_type[datapoint.metric_type].append(datapoint.to_wire())
        try:
            self._client.send(
                cumulative_counters=by_type[MetricType.CUMULATIVE_COUNTER],
                gauges=by_type[MetricType.GAUGE],
                counters=by_type[MetricType.COUNTER],
            )
        except (ValueError, TypeError) as exc:
            # Validation should have made this impossible; surface it rather than guess.
            raise InvalidDatapointError(
                f"signalfx client refused: {exc}", metric="(batch)"
            ) from exc
        errors = dict(self._client.reset_error_counters())
        failed = sum(errors.values())
        self.handed_over += len(valid)
        self.rejected += rejected
        self.client_errors += failed
        emit = log.warning if failed else log.info
        emit(
            "signalfx_cycle",
            handed_over=len(valid),
            rejected=rejected,
            client_errors=errors,
            handed_over_total=self.handed_over,
        )
        return len(valid)

    def close(self) -> None:
        """Stop the client's send thread after it drained its queue (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._client.stop()
        errors = dict(self._client.reset_error_counters())
        self.client_errors += sum(errors.values())
        log.info("signalfx_stopped", handed_over_total=self.handed_over, client_errors=errors)


class DryRunSink:
    """Prints each datapoint as one JSON object per line instead of sending it.

    Lines look like ``{"metric": "ecs.up", "type": "gauge", "value": 1, "timestamp": …,
    "dimensions": {"node": "…"}}``; datapoints that would be rejected are not printed.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        # Resolved per write when None, so a replaced sys.stdout (tests, redirection) wins.
        self._stream = stream
        self.client_errors = 0
        self.dropped: Mapping[str, int] = {}
        self.buffered = 0
        self.auth_error: str | None = None

    def send(self, datapoints: Sequence[Datapoint]) -> int:
        """Print the valid datapoints; return how many were printed."""
        valid, _ = partition(datapoints)
        stream = self._stream if self._stream is not None else sys.stdout
        for datapoint in valid:
            line = {
                "metric": datapoint.metric,
                "type": datapoint.metric_type.value,
                "value": datapoint.value,
                "timestamp": datapoint.timestamp_ms,
                "dimensions": dict(sorted(datapoint.dimensions.items())),
            }
            stream.write(json.dumps(line) + "\n")
        stream.flush()
        return len(valid)

    def close(self) -> None:
        """Nothing to flush beyond what ``send`` already flushed."""
