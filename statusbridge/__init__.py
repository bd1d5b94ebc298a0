"""statusbridge: Pingdom → Cachet and ECS → SignalFx monitoring bridge daemon."""

__version__ = "0.1.0"
