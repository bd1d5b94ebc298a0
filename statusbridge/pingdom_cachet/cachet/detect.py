"""Which Cachet API answers at ``[cachet] base_url``, found with reads only.

``GET /ping`` proves a Cachet API is there; ``GET /component-groups`` exists only on
Cachet 3 (2.x has ``/components/groups``); ``GET /schedules`` only on 2.4 (2.3 has no
such route, so its 404 involves no database). Anything else is an error for the caller
to retry later: a write's 404 never decides the version.
"""

from __future__ import annotations

import httpx

from statusbridge.exceptions import CachetError
from statusbridge.pingdom_cachet.cachet.api import ApiVersion
from statusbridge.pingdom_cachet.cachet.http import CachetHttp, error_message


async def detect_version(http: CachetHttp) -> ApiVersion:
    """Probe the API once; raise :class:`CachetError` when it cannot be told."""
    ping = await http.response("GET", "/ping")
    if ping.status_code != 200 or _data(ping) != "Pong!":
        raise CachetError(
            f"no Cachet API at {http.base} (GET /ping: {error_message(ping)})",
            status=ping.status_code,
        )
    groups = await http.response("GET", "/component-groups", params={"per_page": 1})
    if groups.status_code == 200 and isinstance(_data(groups), list):
        return "3"
    if groups.status_code not in (404, 405):
        raise _undecided("/component-groups", groups)
    schedules = await http.response("GET", "/schedules", params={"per_page": 1})
    if schedules.status_code == 200:
        return "2.4"
    if schedules.status_code == 404:
        return "2.3"
    raise _undecided("/schedules", schedules)


def _data(response: httpx.Response) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("data") if isinstance(body, dict) else None


def _undecided(path: str, response: httpx.Response) -> CachetError:
    return CachetError(
        f"cannot tell the Cachet API version: GET {path}: {error_message(response)}",
        status=response.status_code,
    )
