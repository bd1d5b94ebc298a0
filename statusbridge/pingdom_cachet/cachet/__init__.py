"""Cachet, whichever version: one client, one adapter per API.

:class:`~.client.CachetClient` is what the rest of statusbridge uses; it chooses the
adapter once — :mod:`.v2` for 2.3 and 2.4, :mod:`.v3` for Cachet 3 — from ``[cachet]
api_version`` or by probing (:mod:`.detect`). :mod:`.api` holds the interface and its
values, :mod:`.http` the request seam (retries, 429 waits, error bodies), :mod:`.parsing`
the loose JSON reading and :mod:`.diagnose` what ``statusbridge check`` says.
"""

from statusbridge.pingdom_cachet.cachet.api import (
    INCIDENT_FIXED,
    INCIDENT_INVESTIGATING,
    CachetApi,
    Component,
    Incident,
    Metric,
    MetricSpec,
    Point,
)
from statusbridge.pingdom_cachet.cachet.client import CachetClient

__all__ = [
    "INCIDENT_FIXED",
    "INCIDENT_INVESTIGATING",
    "CachetApi",
    "CachetClient",
    "Component",
    "Incident",
    "Metric",
    "MetricSpec",
    "Point",
]
