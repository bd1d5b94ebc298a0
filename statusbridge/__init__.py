"""statusbridge: Pingdom → Cachet and ECS → SignalFx monitoring bridge daemon."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One source for the version: pyproject.toml, through the installed distribution.
    __version__ = version("ecs-statusbridge")
except PackageNotFoundError:  # a source tree run without being installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
