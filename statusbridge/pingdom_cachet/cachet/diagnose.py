"""What ``statusbridge check`` says about Cachet, without writing anything.

- the token, on an endpoint that refuses a bad one: Cachet 2.x ``GET``s take a wrong
  token for a guest, so only ``GET /subscribers`` proves it (on 3 that also needs an
  ability statusbridge does without, so there only a 401 means a bad token);
- the version the server reports, for information only: on 2.x the Cachet server asks
  GitHub for it, and its failure says nothing about statusbridge's setup;
- each configured component and metric exists and each threshold divides 60;
- warnings: 2.3 mails every subscriber on every component status change;
- point times, where the state file knows the last bucket pushed: on 2.4 with an
  ``APP_TIMEZONE`` other than UTC that point reads back shifted by whole quarters of an
  hour (cachethq/cachet#2459), written after its own bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from statusbridge.config import Config
from statusbridge.exceptions import CachetError, StatusBridgeError
from statusbridge.pingdom_cachet.cachet.client import CachetClient
from statusbridge.pingdom_cachet.state import StateFile

# Time zones are whole quarters of an hour away from UTC, at most 14 h.
_ZONE_STEP_S = 900
_MAX_ZONE_S = 14 * 3600


@dataclass
class Diagnosis:
    """One line of facts for ``check``, and the warnings to print under it."""

    facts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


async def diagnose(client: CachetClient, config: Config) -> Diagnosis:
    """Check Cachet as described above; raise :class:`StatusBridgeError` on a failure."""
    assert config.cachet is not None
    await client.ping()
    api = await client.api()
    result = Diagnosis()
    try:
        result.facts.append(f"version {await client.version()}")
    except CachetError as exc:
        result.facts.append(
            f"version unknown ({exc}; Cachet 2.x asks GitHub for it, which its server may "
            "not reach: not a problem for statusbridge)"
        )
    result.facts.append(f"API {api.version}")
    if config.cachet.token is None:
        raise StatusBridgeError("no [cachet] token: statusbridge cannot write to Cachet")
    try:
        result.facts.append(await client.verify_token())
    except CachetError as exc:
        if exc.status == 401:
            raise StatusBridgeError(f"Cachet refuses the token ({exc})") from exc
        raise
    thresholds = await _components_and_metrics(client, config)
    result.facts.append("components and metrics found")
    if api.status_mails == "always":
        result.warnings.append(
            "Cachet 2.3 mails every subscriber on every component status change (it has no "
            "silent updates); Cachet 2.4 or 3 lets statusbridge change statuses quietly"
        )
    if api.version == "2.4":
        result.facts.append(await _point_times(client, config, thresholds))
    return result


async def _components_and_metrics(client: CachetClient, config: Config) -> dict[int, int]:
    """Each configured component and metric exists; return the metrics' thresholds."""
    thresholds: dict[int, int] = {}
    for item in config.checks:
        if item.cachet_component_id is not None:
            await client.component(item.cachet_component_id)
        for metric_id in (item.response_time_metric_id, item.uptime_metric_id):
            if metric_id is not None:
                threshold = (await client.metric(metric_id)).threshold
                if not threshold or threshold < 0 or 60 % threshold:
                    raise StatusBridgeError(
                        f"metric {metric_id} threshold {threshold} does not divide 60"
                    )
                thresholds[metric_id] = threshold
    return thresholds


async def _point_times(client: CachetClient, config: Config, thresholds: dict[int, int]) -> str:
    """Compare the newest point of each metric with the last bucket statusbridge pushed."""
    if not config.checks or not config.state_path.exists():
        return "point times not checked (no state file yet; the first push checks them)"
    compared = 0
    with StateFile(config.state_path) as state:
        for item in config.checks:
            watermark = state.load(item.pingdom_check_id).watermark
            metric_ids = [m for m in (item.response_time_metric_id, item.uptime_metric_id) if m]
            if watermark is None or not metric_ids:
                continue
            bucket_s = math.lcm(*(thresholds[m] for m in metric_ids)) * 60
            for metric_id in metric_ids:
                shift = await _shift(client, metric_id, watermark, bucket_s)
                compared += 1
                if shift:
                    raise StatusBridgeError(
                        f"metric {metric_id}: the last point statusbridge pushed reads back "
                        f"{shift / 3600:+.2g} h off: Cachet 2.4 shifts point times when its "
                        "APP_TIMEZONE is not UTC (cachethq/cachet#2459, #3794), so points "
                        "would double; set APP_TIMEZONE=UTC on the Cachet server"
                    )
    if not compared:
        return "point times not checked (nothing pushed yet; the first push checks them)"
    return "point times as pushed"


async def _shift(client: CachetClient, metric_id: int, watermark: int, bucket_s: int) -> int:
    """How far the newest point reads from the last bucket pushed, if that is a zone."""
    async for point in client.points(metric_id, per_page=1):
        if point.created_at is None:
            return 0
        expected = watermark - bucket_s
        shift = point.created_at - expected
        # Written after its bucket ended (it is the last bucket's point), yet read elsewhere.
        written_late = point.updated_at is not None and point.updated_at >= watermark - 30
        if shift and written_late and shift % _ZONE_STEP_S == 0 and abs(shift) <= _MAX_ZONE_S:
            return shift
        return 0
    return 0
