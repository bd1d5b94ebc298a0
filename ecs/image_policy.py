"""Which images may run: glob patterns on the normalized reference."""

from __future__ import annotations

from fnmatch import fnmatchcase

from ecs.exceptions import ImageNotAllowed
from ecs.imageref import ImageReference


class ImageAllowlist:
    """Allows a reference matching any pattern; no patterns allow everything.

    Patterns match the normalized form (``docker.io/library/busybox:1``,
    ``registry.example.com:5000/team/app:v2``), so ``docker.io/myorg/*`` means "my
    organisation's images on Docker Hub" however the client spelled them.
    """

    def __init__(self, patterns: list[str]) -> None:
        self._patterns = list(patterns)

    def check(self, image: ImageReference) -> None:
        """Raise ImageNotAllowed unless ``image`` is allowed."""
        if not self._patterns:
            return
        normalized = image.normalized
        if any(fnmatchcase(normalized, pattern) for pattern in self._patterns):
            return
        raise ImageNotAllowed(f"image {normalized} is not allowed on this server")
