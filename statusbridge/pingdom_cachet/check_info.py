"""Facts about a check read from Pingdom and Cachet, and the cache that keeps them.

A check's resolution, its bucket size (the least common multiple of its Cachet metrics'
thresholds) and its component's name change rarely, so a :class:`CheckInfoCache` reads
them once per ``ttl_s`` instead of on every sync run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from statusbridge.config import CheckSettings
from statusbridge.exceptions import ConfigError
from statusbridge.pingdom_cachet.cachet import CachetClient
from statusbridge.pingdom_cachet.pingdom import PingdomClient

log = structlog.get_logger(__name__)

# Check, metric and component details are re-read from the APIs this often.
INFO_TTL_S = 600.0


@dataclass(frozen=True, slots=True)
class CheckInfo:
    """Facts about a check read from the APIs (cached between runs)."""

    resolution_s: int
    bucket_s: int
    metric_ids: list[int]
    component_name: str


async def read_check_info(
    check: CheckSettings, pingdom: PingdomClient, cachet: CachetClient
) -> CheckInfo:
    """Read the check's resolution, its metrics' thresholds and its component's name.

    A metric whose threshold does not divide 60 minutes raises :class:`ConfigError`.
    """
    resolution_min = check.resolution_min
    if resolution_min is None:
        resolution_min = (await pingdom.check(check.pingdom_check_id)).resolution_min or 1
    metric_ids = [
        m for m in (check.response_time_metric_id, check.uptime_metric_id) if m is not None
    ]
    thresholds = []
    for metric_id in metric_ids:
        threshold = (await cachet.metric(metric_id)).threshold
        if threshold is None or threshold <= 0 or 60 % threshold:
            raise ConfigError(
                f"Cachet metric {metric_id} has threshold {threshold}; "
                "it must be a number of minutes that divides 60"
            )
        thresholds.append(threshold)
    if len(set(thresholds)) > 1:
        log.warning("metric_thresholds_differ", check=check.label, thresholds=thresholds)
    component_name = None
    if check.cachet_component_id is not None:
        component_name = (await cachet.component(check.cachet_component_id)).name
    return CheckInfo(
        resolution_s=resolution_min * 60,
        bucket_s=math.lcm(*thresholds) * 60 if thresholds else 0,
        metric_ids=metric_ids,
        component_name=component_name or check.label,
    )


class CheckInfoCache:
    """Each check's :class:`CheckInfo`, read through the clients and kept for ``ttl_s``."""

    def __init__(
        self,
        pingdom: PingdomClient,
        cachet: CachetClient,
        *,
        clock: Callable[[], float] = time.time,
        ttl_s: float = INFO_TTL_S,
    ) -> None:
        self._pingdom = pingdom
        self._cachet = cachet
        self._clock = clock
        self._ttl_s = ttl_s
        self._entries: dict[int, tuple[float, CheckInfo]] = {}

    async def get(self, check: CheckSettings) -> CheckInfo:
        """The check's info, from the cache while it is younger than ``ttl_s``."""
        cached = self._entries.get(check.pingdom_check_id)
        if cached is not None and self._clock() - cached[0] < self._ttl_s:
            return cached[1]
        info = await read_check_info(check, self._pingdom, self._cachet)
        self._entries[check.pingdom_check_id] = (self._clock(), info)
        return info
