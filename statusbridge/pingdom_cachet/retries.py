"""Sending one HTTP request with retries on 5xx answers and transport errors.

This is the seam where httpx's transport errors become our :class:`ApiError` subclasses.
The retry policy is stamina's (exponential backoff with jitter, a per-call budget of
attempts and seconds); tests switch the waiting off with ``stamina.set_testing(True)``.
"""

from __future__ import annotations

from typing import Any

import httpx
import stamina
import structlog

from statusbridge.config import RetrySettings
from statusbridge.exceptions import ApiError

log = structlog.get_logger(__name__)


class _ServerError(Exception):
    """A 5xx answer, raised only so that stamina retries it."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"HTTP {response.status_code}")


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, _ServerError | httpx.TransportError)


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    retry: RetrySettings,
    error: type[ApiError],
    **kwargs: Any,
) -> httpx.Response:
    """Send a request, retrying 5xx and transport errors within ``retry``'s budget.

    A 5xx that outlives the budget is returned as the response (the caller maps its
    body to an error); a transport error that outlives it raises ``error`` without a
    status.
    """
    try:
        async for attempt in stamina.retry_context(
            on=_retryable,
            attempts=retry.attempts,
            timeout=retry.timeout_s,
            wait_initial=retry.wait_initial_s,
            wait_max=retry.wait_max_s,
        ):
            with attempt:
                if attempt.num > 1:
                    log.info("retrying", service=error.service, method=method, attempt=attempt.num)
                response = await http.request(method, url, **kwargs)
                if response.status_code >= 500:
                    raise _ServerError(response)
                return response
    except _ServerError as exc:
        return exc.response
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise error(f"{method} {_path(url)}: {reason}") from exc
    raise AssertionError("stamina.retry_context ended without an attempt")  # pragma: no cover


def _path(url: str) -> str:
    # Log and report only the path: query strings may one day carry credentials.
    return httpx.URL(url).path
