"""API keys: an htpasswd file of bcrypt hashes, re-read when it changes, checked cheaply.

bcrypt is slow on purpose, so a verified (key, secret) pair is remembered for a short
while under a SHA-256 digest of the pair (never the secret itself), and the slow check
runs in a worker thread, off the event loop. Unknown keys are checked against a dummy
hash so that timing does not tell which keys exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt

BCRYPT_ROUNDS = 10
_DUMMY_HASH = bcrypt.hashpw(b"not-a-real-secret", bcrypt.gensalt(rounds=BCRYPT_ROUNDS))


class KeyFileError(Exception):
    """The credentials file cannot be read or has a bad line."""


@dataclass(frozen=True)
class GeneratedKey:
    """A new API key and its secret, shown once."""

    key: str
    secret: str


def parse_htpasswd(text: str, source: str = "credentials file") -> dict[str, bytes]:
    """``key:hash`` lines (comments and blanks skipped) → {key: bcrypt hash}."""
    hashes: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, hashed = line.partition(":")
        if not sep or not key or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise KeyFileError(f"{source} line {number}: expected key:<bcrypt hash>")
        hashes[key] = hashed.replace("$2y$", "$2b$", 1).encode()
    return hashes


class KeyStore:
    """Checks HTTP Basic key/secret pairs against the credentials file."""

    def __init__(
        self, path: Path, *, cache_ttl_s: float = 300.0, stat_interval_s: float = 1.0
    ) -> None:
        self._path = path
        self._cache_ttl_s = cache_ttl_s
        self._stat_interval_s = stat_interval_s
        self._hashes: dict[str, bytes] = {}
        self._signature: tuple[int, int, int] | None = None
        self._next_stat = 0.0
        self._verified: dict[bytes, float] = {}
        self.reload()

    @property
    def path(self) -> Path:
        """The credentials file."""
        return self._path

    def reload(self) -> None:
        """Read the file now; the cache of verified pairs is dropped with the old keys."""
        try:
            stat = self._path.stat()
            text = self._path.read_text()
        except OSError as exc:
            raise KeyFileError(f"cannot read credentials file {self._path}: {exc}") from exc
        self._hashes = parse_htpasswd(text, str(self._path))
        self._signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        self._verified.clear()

    def _reload_if_changed(self) -> None:
        now = time.monotonic()
        if now < self._next_stat:
            return
        self._next_stat = now + self._stat_interval_s
        try:
            stat = self._path.stat()
        except OSError:
            return  # keep serving with the keys we have; the file may be mid-rotation
        if (stat.st_mtime_ns, stat.st_size, stat.st_ino) != self._signature:
            try:
                self.reload()
            except KeyFileError:
                return  # a half-written file: keep the old keys, try again next time

    def verified_recently(self, key: str, secret: str) -> bool:
        """True if this pair passed a full check within the cache lifetime (no bcrypt)."""
        self._reload_if_changed()
        digest = hashlib.sha256(f"{key}\0{secret}".encode()).digest()
        now = time.monotonic()
        found = False
        for known, expires in list(self._verified.items()):
            if expires < now:
                del self._verified[known]
            elif hmac.compare_digest(known, digest):
                found = True
        return found

    async def verify(self, key: str, secret: str) -> bool:
        """True if ``secret`` is the secret of ``key``."""
        if self.verified_recently(key, secret):
            return True
        digest = hashlib.sha256(f"{key}\0{secret}".encode()).digest()
        now = time.monotonic()
        hashed = self._hashes.get(key, _DUMMY_HASH)
        ok = await asyncio.to_thread(bcrypt.checkpw, secret.encode(), hashed)
        ok = ok and key in self._hashes
        if ok:
            self._verified[digest] = now + self._cache_ttl_s
        return ok


def generate_keys(count: int, path: Path, *, rounds: int = BCRYPT_ROUNDS) -> list[GeneratedKey]:
    """Append ``count`` new key hashes to ``path`` (mode 0600) and return the pairs."""
    if count < 1:
        raise ValueError("count must be at least 1")
    existing = parse_htpasswd(path.read_text(), str(path)) if path.exists() else {}
    pairs = []
    for _ in range(count):
        key = secrets.token_hex(8)
        while key in existing:
            key = secrets.token_hex(8)
        pairs.append(GeneratedKey(key=key, secret=secrets.token_urlsafe(24)))
    lines = [
        f"{pair.key}:{bcrypt.hashpw(pair.secret.encode(), bcrypt.gensalt(rounds)).decode()}\n"
        for pair in pairs
    ]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a") as handle:
        handle.writelines(lines)
    return pairs
