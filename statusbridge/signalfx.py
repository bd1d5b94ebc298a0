"""Where :mod:`statusbridge.forwarding.signalfx` used to live, for one remaining importer.

tests/integration/test_metrics.py still imports ``statusbridge.signalfx``; once it
imports :class:`~statusbridge.forwarding.SignalFxSink` instead, delete this module.
"""

from statusbridge.forwarding.signalfx import SignalFxSink

__all__ = ["SignalFxSink"]
