"""ECS's one exception tree.

    EcsError                       base; carries the HTTP status and a snake_case code
    ├── RequestRejected            the request cannot be served as asked (4xx)
    │   ├── InvalidRequest         400, with one or more field problems
    │   ├── ImageNotAllowed        403, the image allowlist refused the reference
    │   ├── RegistryUnauthorized   403, the registry refused (or required) credentials
    │   ├── ImageNotFound          404, the registry or the engine has no such image
    │   ├── TaskNotFound           404, no such task for this API key (or expired)
    │   ├── IdempotencyKeyReused   422, the Idempotency-Key came before with another body
    │   └── RateLimited            429, the API key is over its rate or its task count
    ├── Overloaded                 503, every task slot and queue place is taken
    ├── RegistryUnreachable        503, the engine could not reach the image registry
    ├── ConfigError                start-up: the settings cannot be used (names the key)
    ├── ConfigurationConflict      start-up: a resource ECS needs is taken (the state file)
    ├── StoreUnavailable           503, the cluster's Redis does not answer
    └── EngineError                the Docker Engine failed a call
        ├── EngineUnreachable      503, the socket does not answer
        ├── EngineNotFound         404 from the engine (container or image gone)
        ├── EngineConflict         409 from the engine
        ├── EngineUnauthorized     401/403 from the engine
        ├── EngineIncompatible     503, no API version in common with the engine
        ├── RuntimeMissing         the configured container runtime is not in the engine
        └── EngineApiError         any other engine error status (500 to clients)

httpx errors become EngineError subclasses in one place (``ecs.docker``), and EcsError
becomes an HTTP response in one place (``ecs.error_responses``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    """One problem with a request field, as listed in a 400 body."""

    code: str
    message: str
    field: str | None = None


class EcsError(Exception):
    """Base of every error ECS raises on purpose."""

    status: int = 500
    code: str = "internal_error"
    retry_after_s: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def problems(self) -> list[FieldProblem]:
        """Return the problems to list in the error body."""
        return [FieldProblem(self.code, self.message)]


class RequestRejected(EcsError):
    """The request cannot be served as asked."""

    status = 400
    code = "bad_request"


class InvalidRequest(RequestRejected):
    """The request body breaks one or more rules."""

    status = 400
    code = "invalid_request"

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self._problems = problems

    def problems(self) -> list[FieldProblem]:
        return list(self._problems)


class ImageNotAllowed(RequestRejected):
    """The image allowlist does not cover this reference."""

    status = 403
    code = "image_not_allowed"


class RegistryUnauthorized(RequestRejected):
    """The registry refused the credentials or needs some."""

    status = 403
    code = "registry_unauthorized"


class ImageNotFound(RequestRejected):
    """The image does not exist in its registry or in the engine."""

    status = 404
    code = "image_not_found"


class TaskNotFound(RequestRejected):
    """No task of this id is visible to this API key (unknown, another key's, or expired)."""

    status = 404
    code = "task_not_found"


class IdempotencyKeyReused(RequestRejected):
    """The same Idempotency-Key came with a different body."""

    status = 422
    code = "idempotency_key_reused"


class RateLimited(RequestRejected):
    """The API key exceeded its request rate or its concurrent tasks."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Overloaded(EcsError):
    """All task slots and the queue are full."""

    status = 503
    code = "overloaded"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RegistryUnreachable(EcsError):
    """The engine could not reach the image registry."""

    status = 503
    code = "registry_unreachable"
    retry_after_s = 5


class ConfigError(EcsError):
    """The configuration cannot be used; the message names the bad key and its source."""

    code = "config_error"


class ConfigurationConflict(EcsError):
    """Something this process needs to own is held by another (its state file)."""

    code = "configuration_conflict"


class StoreUnavailable(EcsError):
    """The shared task store (the cluster's Redis) cannot be reached."""

    status = 503
    code = "store_unavailable"
    retry_after_s = 5


class EngineError(EcsError):
    """The Docker Engine failed a call."""

    status = 500
    code = "engine_error"

    def __init__(self, message: str, *, engine_status: int | None = None) -> None:
        super().__init__(message)
        self.engine_status = engine_status


class EngineUnreachable(EngineError):
    """The engine's socket does not answer."""

    status = 503
    code = "engine_unreachable"
    retry_after_s = 5


class EngineNotFound(EngineError):
    """The engine has no such object."""

    code = "engine_not_found"


class EngineConflict(EngineError):
    """The engine refused because of the object's state."""

    code = "engine_conflict"


class PooledContainerGone(EngineError):
    """A warm pool's container stopped before its task's command could start in it (its
    idle command died, or it was killed): the task runs cold instead."""

    code = "pooled_container_gone"


class EngineUnauthorized(EngineError):
    """The engine refused the call's credentials."""

    code = "engine_unauthorized"


class EngineIncompatible(EngineError):
    """The engine and ECS have no API version in common (or the pinned one is out of range)."""

    status = 503
    code = "engine_incompatible"
    retry_after_s = 30


class RuntimeMissing(EngineError):
    """The engine does not offer the container runtime ECS is configured to use."""

    status = 503
    code = "runtime_missing"
    retry_after_s = 30


class EngineApiError(EngineError):
    """Any other engine error status."""

    code = "engine_error"
