"""Where callbacks may go: the operator's allowlist, checked on the URL and on the address.

A client steers a callback's URL, so ECS would otherwise POST wherever it is told — the
metadata service, the engine's TCP port, anything on the internal network. Two checks:

- at submission, the URL's host must match ``callback_allowlist`` (host globs such as
  ``hooks.example.com`` or ``*.example.com``, IP literals, CIDRs);
- at call time, every address the host resolves to must be a public one, or itself be
  in the allowlist as an IP literal or CIDR — so a DNS name matched by a glob cannot
  lead onto loopback, a private or a link-local network.

Pure: resolution happens in ``ecs.callbacks``.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class CallbackPolicy:
    """The allowlist, split into host globs and address networks."""

    def __init__(self, allowlist: Iterable[str]) -> None:
        self._globs: list[str] = []
        self._networks: list[IpNetwork] = []
        for entry in allowlist:
            try:
                self._networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                self._globs.append(entry.strip().lower())

    def url_problem(self, url: str) -> str | None:
        """Why ``url`` may not be called, or None when its host is allowed."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            return f"callback_url is not a URL: {exc}"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "callback_url must be an http:// or https:// URL with a host"
        if parts.username is not None or parts.password is not None:
            return "callback_url must not carry credentials"
        if port == 0:
            return "callback_url has no usable port"
        if not self.host_allowed(parts.hostname):
            return f"callback host {parts.hostname!r} is not in this server's callback_allowlist"
        return None

    def host_allowed(self, host: str) -> bool:
        """The host matches a glob, or is an address inside an allowed network."""
        address = _address(host)
        if address is not None:
            return self._listed(address) or any(fnmatch.fnmatchcase(host, g) for g in self._globs)
        return any(fnmatch.fnmatchcase(host.lower().rstrip("."), glob) for glob in self._globs)

    def address_allowed(self, text: str) -> bool:
        """A resolved address may be called: public, or listed as an IP literal or CIDR."""
        address = _address(text)
        if address is None:
            return False
        return _public(address) or self._listed(address)

    def _listed(self, address: IpAddress) -> bool:
        return any(address in network for network in self._networks)


def _address(text: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


def _public(address: IpAddress) -> bool:
    """Globally routable: not loopback, private, link-local, reserved, shared or multicast."""
    return address.is_global and not address.is_multicast
