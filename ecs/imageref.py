"""Docker image references: parse, check and normalize, with no IO.

The grammar is the one of distribution/reference, which the Docker Engine uses::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component ( "/" path-component )*
    domain     := domain-component ( "." domain-component )* [ ":" port ]

A first component is a registry host when it holds a "." or a ":" or is "localhost";
otherwise the name lives on Docker Hub. ECS additionally requires a tag or a digest,
so that what runs is always named explicitly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
# The address Docker Hub credentials are filed under, by docker login and the engine.
DOCKER_HUB_AUTH_ADDRESS = "https://index.docker.io/v1/"

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
# ASCII: Go's \w (Docker's grammar) is [0-9A-Za-z_], Python's would take any letter.
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_MAX_NAME_LENGTH = 255


class InvalidReference(ValueError):
    """The string is not a Docker image reference ECS accepts."""


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference; ``domain`` is None for Docker Hub names as written."""

    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def registry(self) -> str:
        """The registry host (with port) the image is pulled from."""
        return self.domain or DOCKER_HUB

    @property
    def repository(self) -> str:
        """The name as written, without tag or digest (what the engine's fromImage takes)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar(self) -> str:
        """The reference as Docker prints it: ``owner/repo:tag``, ``host:5000/x:tag``."""
        return self.repository + self._version_suffix

    @property
    def normalized(self) -> str:
        """The fully qualified reference: ``docker.io/library/busybox:1``."""
        path = self.path
        if self.domain is None and "/" not in path:
            path = f"library/{path}"
        return f"{self.registry}/{path}{self._version_suffix}"

    @property
    def _version_suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def auth_address(self) -> str:
        """The server address registry credentials are keyed by."""
        return DOCKER_HUB_AUTH_ADDRESS if self.domain in (None, DOCKER_HUB) else self.registry

    @property
    def pull_tag(self) -> str:
        """What the engine's pull call takes as ``tag``: the digest wins over the tag."""
        return self.digest or self.tag or "latest"

    @property
    def is_latest(self) -> bool:
        """True when the reference floats on ``:latest`` (Kubernetes' always-pull case)."""
        return self.digest is None and self.tag == "latest"


def parse_image_reference(text: str) -> ImageReference:
    """Parse ``text`` or raise InvalidReference saying what is wrong with it."""
    if not text or text != text.strip():
        raise InvalidReference("image reference must be a non-empty string without spaces")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidReference(f"digest {digest!r} is not sha256: followed by 64 hex digits")
    name, tag = remainder, None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"tag {tag!r} is not a valid tag")
    if tag is None and digest is None:
        raise InvalidReference(
            f"image reference {text!r} has no tag and no digest; name one, e.g. {text}:1.0"
        )
    domain, path = _split_domain(name)
    if len(name) > _MAX_NAME_LENGTH:
        raise InvalidReference(f"repository name is longer than {_MAX_NAME_LENGTH} characters")
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise InvalidReference(
                f"repository path component {component!r} must be lowercase letters and "
                "digits, separated by '.', '_', '__' or '-'"
            )
    return ImageReference(domain=domain, path=path, tag=tag, digest=digest)


def _split_domain(name: str) -> tuple[str | None, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.fullmatch(first):
            raise InvalidReference(f"registry host {first!r} is not a valid host[:port]")
        return first, rest
    return None, name
