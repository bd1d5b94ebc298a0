"""ECS → SignalFx: scrape each ECS node's /metrics, convert, send.

:mod:`~statusbridge.forwarding.job` is the scheduled job, :mod:`~statusbridge.forwarding.
prometheus` the sans-IO conversion of the text exposition, and
:mod:`~statusbridge.forwarding.signalfx` the datapoints and the sinks they go to.
"""

from statusbridge.forwarding.job import ForwardingJob, Target, build_forwarding_job
from statusbridge.forwarding.signalfx import DryRunSink, SignalFxSink

__all__ = ["DryRunSink", "ForwardingJob", "SignalFxSink", "Target", "build_forwarding_job"]
