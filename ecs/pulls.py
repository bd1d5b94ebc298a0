"""Getting an image onto the engine: pull policy, shared pulls, and what a failure means."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping

import structlog

from ecs.config import PullPolicy
from ecs.docker import DockerClient
from ecs.exceptions import (
    EngineError,
    EngineNotFound,
    EngineUnreachable,
    FieldProblem,
    ImageNotFound,
    InvalidRequest,
    RegistryUnauthorized,
    RegistryUnreachable,
)
from ecs.imageref import ImageReference
from ecs.registry_auth import Credentials, credentials_for, registry_auth_header

log = structlog.get_logger(__name__)

# The engine reports registry failures as 500s whose text is all there is to go on.
_UNAUTHORIZED_HINTS = (
    "unauthorized",
    "authentication required",
    "no basic auth credentials",
    "denied",
    "incorrect username or password",
)
_NOT_FOUND_HINTS = ("manifest unknown", "not found", "does not exist", "name unknown")
_UNREACHABLE_HINTS = (
    "connection refused",
    "no such host",
    "i/o timeout",
    "dial tcp",
    "timeout exceeded",
    "network is unreachable",
    "tls handshake",
    "server misbehaving",
)


def classify_pull_error(image: ImageReference, error: EngineError) -> Exception:
    """Turn the engine's pull error into the error the client should see."""
    reference = image.familiar
    if isinstance(error, EngineUnreachable):
        # A registry that never answers looks like this too: the pull call times out.
        return EngineUnreachable(
            f"pull of {reference} did not complete ({error.message}); "
            f"the engine or registry {image.registry} is slow or unreachable"
        )
    text = error.message.lower()
    if any(hint in text for hint in _UNAUTHORIZED_HINTS):
        return RegistryUnauthorized(
            f"registry {image.registry} refused access to {reference}: {error.message}"
        )
    if isinstance(error, EngineNotFound) or any(hint in text for hint in _NOT_FOUND_HINTS):
        return ImageNotFound(f"image {reference} not found: {error.message}")
    if any(hint in text for hint in _UNREACHABLE_HINTS):
        return RegistryUnreachable(
            f"registry {image.registry} unreachable while pulling {reference}: {error.message}"
        )
    if "invalid reference format" in text or error.engine_status == 400:
        return InvalidRequest(
            [
                FieldProblem(
                    "invalid_image", f"engine rejected {reference}: {error.message}", "docker_image"
                )
            ]
        )
    return error


def needs_pull(policy: PullPolicy, image: ImageReference, present: bool) -> bool:
    """Kubernetes semantics: ``:latest`` always, anything else only when missing."""
    if policy is PullPolicy.ALWAYS:
        return True
    if policy is PullPolicy.NEVER:
        return False
    if policy is PullPolicy.DEFAULT and image.is_latest:
        return True
    return not present


class ImagePuller:
    """Makes an image present per the pull policy; concurrent pulls of one image share one."""

    def __init__(
        self,
        docker: DockerClient,
        policy: PullPolicy,
        configured_credentials: Mapping[str, Credentials],
    ) -> None:
        self._docker = docker
        self._policy = policy
        self._configured = dict(configured_credentials)
        self._in_flight: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def ensure_present(
        self, image: ImageReference, request_credentials: Credentials | None
    ) -> bool:
        """Pull if the policy says so; return True if a pull happened."""
        present = False
        if self._policy is not PullPolicy.ALWAYS and not (
            self._policy is PullPolicy.DEFAULT and image.is_latest
        ):
            present = await self._docker.image_exists(image.familiar)
        if not needs_pull(self._policy, image, present):
            if not present:
                raise ImageNotFound(
                    f"image {image.familiar} is not on this node and the pull policy is never"
                )
            return False
        credentials = credentials_for(image, request_credentials, self._configured)
        await self._shared_pull(image, credentials)
        return True

    async def pull_first(
        self, image: ImageReference, request_credentials: Credentials | None
    ) -> bool:
        """Pull now if the policy pulls whether or not the image is there (``always``,
        ``:latest`` by default); True if it did. Otherwise the create call finds out."""
        pulls_always = self._policy is PullPolicy.ALWAYS or (
            self._policy is PullPolicy.DEFAULT and image.is_latest
        )
        if not pulls_always:
            return False
        credentials = credentials_for(image, request_credentials, self._configured)
        await self._shared_pull(image, credentials)
        return True

    async def pull_missing(
        self, image: ImageReference, request_credentials: Credentials | None
    ) -> None:
        """The engine has no such image: pull it, unless the policy is ``never``."""
        if self._policy is PullPolicy.NEVER:
            raise ImageNotFound(
                f"image {image.familiar} is not on this node and the pull policy is never"
            )
        credentials = credentials_for(image, request_credentials, self._configured)
        await self._shared_pull(image, credentials)

    async def _shared_pull(self, image: ImageReference, credentials: Credentials | None) -> None:
        # Different credentials never share a pull: one client's access must not
        # stand in for another's.
        # The pull runs as its own task so that a client hanging up does not cancel the
        # pull other requests are waiting on.
        key = (image.familiar, _fingerprint(credentials))
        pull = self._in_flight.get(key)
        if pull is None:
            pull = asyncio.create_task(self._pull(image, credentials))
            self._in_flight[key] = pull
            pull.add_done_callback(lambda done: self._pull_finished(key, done))
        await asyncio.shield(pull)

    def _pull_finished(self, key: tuple[str, str], pull: asyncio.Task[None]) -> None:
        self._in_flight.pop(key, None)
        if not pull.cancelled():
            pull.exception()  # retrieved here so a pull whose waiters all left never warns

    async def _pull(self, image: ImageReference, credentials: Credentials | None) -> None:
        header = registry_auth_header(credentials, image.auth_address) if credentials else None
        log.debug("pull_started", image=image.familiar, with_credentials=credentials is not None)
        try:
            await self._docker.pull(image.repository, image.pull_tag, header)
        except EngineError as exc:
            raise classify_pull_error(image, exc) from exc


def _fingerprint(credentials: Credentials | None) -> str:
    if credentials is None:
        return ""
    material = f"{credentials.username}\0{credentials.password}".encode()
    return hashlib.sha256(material).hexdigest()
