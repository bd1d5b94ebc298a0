"""Pingdom → Cachet: one job per configured check.

The clients (:mod:`~statusbridge.pingdom_cachet.pingdom` with its quota pacing in
:mod:`~statusbridge.pingdom_cachet.quota`, :mod:`~statusbridge.pingdom_cachet.cachet`,
both sending through :mod:`~statusbridge.pingdom_cachet.retries`), the sans-IO cores
(:mod:`~statusbridge.pingdom_cachet.uptime` buckets, :mod:`~statusbridge.pingdom_cachet.
status` hysteresis), the state file (:mod:`~statusbridge.pingdom_cachet.state`), the
facts read about each check (:mod:`~statusbridge.pingdom_cachet.check_info`), the use
case (:mod:`~statusbridge.pingdom_cachet.sync` and its component/incident half,
:mod:`~statusbridge.pingdom_cachet.component`) and the scheduled job
(:mod:`~statusbridge.pingdom_cachet.job`).
"""

from statusbridge.pingdom_cachet.job import PingdomSyncJob, open_pingdom_jobs, open_sync_context
from statusbridge.pingdom_cachet.sync import SyncContext, SyncReport, sync_check

__all__ = [
    "PingdomSyncJob",
    "SyncContext",
    "SyncReport",
    "open_pingdom_jobs",
    "open_sync_context",
    "sync_check",
]
