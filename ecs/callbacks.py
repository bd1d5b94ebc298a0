"""Delivering a task's callback: one signed POST of its document, to a checked address.

The address is resolved and vetted here (``CallbackPolicy.address_allowed``) and the
request goes to that very address, with the original host in ``Host`` (and as the TLS
server name), so a name that resolves differently a moment later cannot redirect it.
Redirects are never followed. The service decides when to try again
(``retry_delay_s``); this module only makes one attempt and says how it went.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit, urlunsplit

import httpx

from ecs.callback_guard import CallbackPolicy

Resolver = Callable[[str, int], Awaitable[list[str]]]
SIGNATURE_HEADER = "X-ECS-Signature"
TASK_ID_HEADER = "X-ECS-Task-ID"
_RETRIED_CLIENT_ERRORS = (408, 429)


class Verdict(Enum):
    """How one delivery attempt went."""

    DELIVERED = "delivered"
    RETRY = "retry"  # connection error, timeout, 5xx, 408, 429
    GIVE_UP = "give_up"  # any other answer, or an address the policy refuses


@dataclass(frozen=True)
class Attempt:
    """The verdict of one attempt and what to record about it."""

    verdict: Verdict
    detail: str


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-ECS-Signature`` value: ``sha256=`` and the hex HMAC of the exact body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def retry_delay_s(attempts: int, *, cap_s: float = 60.0) -> float:
    """Exponential backoff with full jitter: up to 1, 2, 4 … s, at most ``cap_s``."""
    ceiling: float = min(cap_s, 2.0 ** max(attempts - 1, 0))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not secrecy


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, as text."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class CallbackSender:
    """POSTs task documents to callback URLs, signed, through the policy's checks."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        policy: CallbackPolicy,
        secret: bytes,
        *,
        resolver: Resolver = resolve,
    ) -> None:
        self._http = http
        self._policy = policy
        self._secret = secret
        self._resolve = resolver

    async def attempt(self, url: str, task_id: str, body: bytes) -> Attempt:
        """One delivery attempt of ``body`` to ``url``."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if self._policy.url_problem(url) is not None:  # the allowlist changed since
            return Attempt(Verdict.GIVE_UP, f"host {host!r} is no longer allowed")
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            return Attempt(Verdict.RETRY, f"cannot resolve {host!r}: {exc}")
        refused = [address for address in addresses if not self._policy.address_allowed(address)]
        if refused or not addresses:
            return Attempt(
                Verdict.GIVE_UP,
                f"{host!r} resolves to {', '.join(refused) or 'nothing'}, which callbacks "
                "may not reach (loopback, private or link-local, not in callback_allowlist)",
            )
        target = urlunsplit(parts._replace(netloc=_netloc(addresses[0], port)))
        headers = {
            "Host": parts.netloc.rpartition("@")[2],
            "Content-Type": "application/json",
            TASK_ID_HEADER: task_id,
            SIGNATURE_HEADER: sign(self._secret, body),
        }
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        try:
            response = await self._http.post(
                target, content=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            return Attempt(Verdict.RETRY, f"{type(exc).__name__}: {exc}")
        return _judge(response.status_code)


def _judge(status: int) -> Attempt:
    if 200 <= status < 300:
        return Attempt(Verdict.DELIVERED, f"answered {status}")
    if status >= 500 or status in _RETRIED_CLIENT_ERRORS:
        return Attempt(Verdict.RETRY, f"answered {status}")
    return Attempt(Verdict.GIVE_UP, f"answered {status}")


def _netloc(address: str, port: int) -> str:
    if isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address):
        return f"[{address}]:{port}"
    return f"{address}:{port}"
