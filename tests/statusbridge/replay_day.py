"""Makes config/pingdom-replay-day.json: a day of Pingdom raw results, made by us.

Shaped like a real ``GET /results/{checkid}`` answer (the sample in simonsdave/ecs's
TODO.md and Pingdom's API 3.1 document): ``activeprobes`` and ``results``, newest first,
one test a minute from a rotating probe, ``responsetime`` missing on down results. The
day (2023-11-14 UTC, a Tuesday) holds a daily latency curve, a slow spell in the
morning, a few single failed tests that a second probe did not confirm, an ``unknown``,
and a real outage of 23 minutes in the afternoon.

Run ``.venv/bin/python tests/statusbridge/replay_day.py`` to rewrite the file;
tests/statusbridge/test_replay.py checks that the shipped file is this output.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

DAY_START = 1_699_920_000  # 2023-11-14 00:00 UTC
PROBES = (33, 43, 46, 50, 68, 71)
OUTAGE = (13 * 60 + 37, 14 * 60)  # minutes of the day, [start, end)
SLOW = (9 * 60 + 5, 9 * 60 + 25)
FLAPS = (4 * 60 + 12, 17 * 60 + 48, 21 * 60 + 3)  # single downs, unconfirmed
UNKNOWN = (2 * 60 + 30,)
PATH = Path(__file__).resolve().parents[2] / "config" / "pingdom-replay-day.json"


def result(minute: int, rng: random.Random) -> dict[str, Any]:
    """The test of one minute of the day."""
    probe = PROBES[minute % len(PROBES)]
    time = DAY_START + 60 * minute + rng.randrange(3, 25)
    if OUTAGE[0] <= minute < OUTAGE[1] or minute in FLAPS:
        status = "down" if OUTAGE[0] <= minute < OUTAGE[1] else "unconfirmed"
        return {
            "probeid": probe,
            "time": time,
            "status": status,
            "statusdesc": "Timeout (> 30s)",
            "statusdesclong": "Socket timeout, unable to connect to server",
        }
    if minute in UNKNOWN:
        return {"probeid": probe, "time": time, "status": "unknown", "statusdesc": "Unknown"}
    # Busier in the European afternoon: 180 ms at night, up to about 320 ms.
    daily = 250 + 70 * math.cos(2 * math.pi * (minute - 15 * 60) / 1440)
    slow = 900 if SLOW[0] <= minute < SLOW[1] else 0
    return {
        "probeid": probe,
        "time": time,
        "status": "up",
        "responsetime": round(daily + slow + rng.gauss(0, 25)),
        "statusdesc": "OK",
        "statusdesclong": "OK",
    }


def make_day() -> dict[str, Any]:
    """The whole answer, newest first."""
    rng = random.Random(20231114)
    results = [result(minute, rng) for minute in range(1440)]
    return {"activeprobes": list(PROBES), "results": results[::-1]}


def dump(day: dict[str, Any]) -> str:
    """One result per line, so that a diff of the file reads."""
    lines = ",\n".join(f"  {json.dumps(r, sort_keys=True)}" for r in day["results"])
    return f'{{"activeprobes": {json.dumps(day["activeprobes"])},\n "results": [\n{lines}\n]}}\n'


if __name__ == "__main__":
    PATH.write_text(dump(make_day()), encoding="utf-8")
    print(f"wrote {PATH}")
