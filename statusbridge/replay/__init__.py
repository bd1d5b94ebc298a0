"""Replaying recorded Pingdom results through the Pingdom → Cachet job, in memory.

:mod:`.recording` serves a saved ``/results`` answer to the real Pingdom client,
:mod:`.memory` is the Cachet that prints what it is given, :mod:`.plot` draws the
series, :mod:`.run` steps the clock. ``statusbridge run|once --replay FILE`` uses it.
"""

from statusbridge.replay.run import ReplayReport, replay

__all__ = ["ReplayReport", "replay"]
