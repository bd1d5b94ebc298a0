"""Cachet, whichever version: one client, one adapter per API.

:class:`~.client.CachetClient` is what the rest of statusbridge uses; it chooses the
adapter (:mod:`.v2` for 2.3 and 2.4) once, from ``[cachet] api_version`` or by probing
(:mod:`.detect`). :mod:`.api` holds the interface and its values, :mod:`.http` the
request seam (retries, 429 waits, error bodies), :mod:`.parsing` the loose JSON reading.
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
