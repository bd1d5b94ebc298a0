"""ECS, the Ephemeral Container Service: one container per request, end to end."""

__version__ = "0.1.0"
API_VERSION = "v1.1"

__all__ = ["API_VERSION", "__version__"]
