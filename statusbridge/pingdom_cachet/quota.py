"""Pingdom's request quotas, read from ``Req-Limit-Short`` / ``Req-Limit-Long``.

Each response says ``Remaining: N Time until reset: S``. :class:`QuotaPacer` spreads
requests out once fewer than ``reserve`` remain, pauses until the reset at 0, and
raises :class:`~statusbridge.exceptions.QuotaExhausted` for a reset further away than
``max_wait_s`` instead of sleeping through it.

A 429 that spent no quota (no ``Req-Limit-*`` window at 0: a proxy in front of Pingdom,
Cloudflare) is not Pingdom's limit, so its reset windows mean nothing: it is waited out
briefly — ``Retry-After`` or an exponential backoff, at most :data:`PROXY_MAX_WAIT_S`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from statusbridge.exceptions import QuotaExhausted

log = structlog.get_logger(__name__)

HEADERS = ("Req-Limit-Short", "Req-Limit-Long")
_PATTERN = re.compile(r"Remaining:\s*(\d+)\s*Time until reset:\s*(\d+)", re.IGNORECASE)
# A 429 without a spent quota waits 1, 2, 4 … seconds (or Retry-After), at most this.
PROXY_MAX_WAIT_S = 30.0

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Quota:
    """One quota window as last reported, and when we saw it (monotonic seconds)."""

    remaining: int
    reset_s: float
    seen_at: float


def parse_quota(value: str | None, seen_at: float) -> Quota | None:
    """Parse one ``Req-Limit-*`` header value; None when absent or malformed."""
    if not value:
        return None
    match = _PATTERN.search(value)
    if match is None:
        return None
    return Quota(int(match.group(1)), float(match.group(2)), seen_at)


class QuotaPacer:
    """Paces requests so that Pingdom's quotas are not run down to zero."""

    def __init__(
        self,
        *,
        sleep: Sleep,
        reserve: int = 20,
        max_wait_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep = sleep
        self._reserve = reserve
        self._max_wait_s = max_wait_s
        self._clock = clock
        self.quotas: dict[str, Quota] = {}

    def observe(self, headers: Mapping[str, str]) -> None:
        """Record the quotas reported on a response."""
        now = self._clock()
        for name in HEADERS:
            quota = parse_quota(headers.get(name), now)
            if quota is not None:
                self.quotas[name] = quota

    def _until_reset(self, quota: Quota) -> float:
        return max(0.0, quota.reset_s - (self._clock() - quota.seen_at))

    async def before_request(self) -> None:
        """Wait as long as the quotas ask before sending one more request."""
        wait = 0.0
        for quota in self.quotas.values():
            left = self._until_reset(quota)
            if left <= 0:
                continue
            if quota.remaining <= 0:
                wait = max(wait, left)
            elif quota.remaining <= self._reserve:
                # Spread what is left evenly over the rest of the window.
                wait = max(wait, left / (quota.remaining + 1))
            # Count this request now, so concurrent callers see the quota shrink.
            quota.remaining -= 1
        await self._wait(wait, "quota_low")

    async def after_429(self, headers: Mapping[str, str], attempt: int = 0) -> str:
        """After a 429: wait for the spent window to reset (or raise if too far), or, when
        no window is spent, back off briefly. Return the limit that was hit."""
        self.observe(headers)
        spent = {name: q for name, q in self.quotas.items() if q.remaining <= 0}
        if not spent:
            wait = _retry_after(headers.get("Retry-After"), attempt)
            limit = "none spent (a proxy in front of Pingdom?)"
            log.warning("pingdom_rate_limited", limit=limit, wait_s=round(wait, 1))
            await self._sleep(wait)
            return limit
        limit = ", ".join(sorted(spent))
        wait = max(self._until_reset(q) for q in spent.values())
        log.warning("pingdom_rate_limited", limit=limit, reset_s=round(wait, 1))
        await self._wait(max(wait, 1.0), "http_429")
        # Those windows have reset; the next response reports the fresh quota.
        for name in spent:
            del self.quotas[name]
        return limit

    async def _wait(self, wait: float, reason: str) -> None:
        """Sleep ``wait`` seconds, or raise QuotaExhausted when that is too long."""
        if wait <= 0:
            return
        if wait > self._max_wait_s:
            raise QuotaExhausted(reset_after_s=wait)
        log.warning("pingdom_pacing", reason=reason, wait_s=round(wait, 1))
        await self._sleep(wait)


def _retry_after(value: str | None, attempt: int) -> float:
    """A proxy's Retry-After (seconds), else 1, 2, 4 … s; never above PROXY_MAX_WAIT_S."""
    try:
        wait = float(value) if value else 2.0**attempt
    except ValueError:
        wait = 2.0**attempt
    return min(max(wait, 1.0), PROXY_MAX_WAIT_S)
