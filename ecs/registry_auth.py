"""Registry credentials: which ones apply to an image, and the engine's header for them."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ecs.imageref import DOCKER_HUB, ImageReference


@dataclass(frozen=True)
class Credentials:
    """A username and password for one registry (email is optional and mostly unused)."""

    username: str
    password: str
    email: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='**********')"


def registry_auth_header(credentials: Credentials, server_address: str) -> str:
    """The ``X-Registry-Auth`` value: base64url of the JSON auth config the engine expects."""
    config = {
        "username": credentials.username,
        "password": credentials.password,
        "serveraddress": server_address,
    }
    if credentials.email:
        config["email"] = credentials.email
    return base64.urlsafe_b64encode(json.dumps(config).encode()).decode()


def credentials_for(
    image: ImageReference,
    request_credentials: Credentials | None,
    configured: Mapping[str, Credentials],
) -> Credentials | None:
    """The request's own credentials win; else the ones configured for the image's host.

    Configured hosts are matched as written (``registry.example.com:5000``); Docker Hub
    names may be configured as ``docker.io`` or ``index.docker.io``.
    """
    if request_credentials is not None:
        return request_credentials
    host = image.registry
    candidates = [host]
    if host == DOCKER_HUB:
        candidates += ["index.docker.io", "https://index.docker.io/v1/", "registry-1.docker.io"]
    for candidate in candidates:
        if candidate in configured:
            return configured[candidate]
    return None


def load_docker_config_auths(path: Path) -> dict[str, Credentials]:
    """Credentials from a Docker ``config.json``'s ``auths`` section, keyed by host.

    Entries carry ``auth`` (base64 of ``user:password``) or ``username``/``password``;
    hosts written as URLs (``https://index.docker.io/v1/``) are kept as written and also
    filed under their bare host.
    """
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read Docker config {path}: {exc}") from exc
    auths = document.get("auths", {}) if isinstance(document, dict) else {}
    found: dict[str, Credentials] = {}
    for server, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        username, password = entry.get("username"), entry.get("password")
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(entry["auth"]).decode()
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValueError(f"Docker config {path}: bad auth for {server}") from exc
            username, _, password = decoded.partition(":")
        if not username or password is None:
            continue
        credentials = Credentials(str(username), str(password), entry.get("email"))
        found[server] = credentials
        host = urlsplit(server).netloc if "://" in server else server
        found.setdefault(host, credentials)
    return found
