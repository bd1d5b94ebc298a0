"""What a task is given besides its command line: stdin, files and a working directory.

The request carries them base64-encoded; here they are checked (paths, modes, sizes) and
the files turned into the tar archive the engine unpacks into the container before it
starts. Pure: no engine calls.
"""

from __future__ import annotations

import base64
import binascii
import io
import posixpath
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

MAX_FILES = 100
DEFAULT_FILE_MODE = 0o644
_DIRECTORY_MODE = 0o755


@dataclass(frozen=True)
class InputFile:
    """One file to write into the container: an absolute, normalized path."""

    path: str
    content: bytes
    mode: int = DEFAULT_FILE_MODE


def decode_base64(value: str) -> bytes:
    """Strict base64 (the standard alphabet, padded), or a PydanticCustomError."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PydanticCustomError("invalid_base64", "must be base64 (RFC 4648, padded)") from exc


def check_absolute_path(value: str, *, allow_root: bool) -> str:
    """An absolute, normalized path without ``..`` or NUL; ``/`` only if ``allow_root``."""
    if "\0" in value:
        raise PydanticCustomError("invalid_path", "must not contain NUL")
    if not value.startswith("/"):
        raise PydanticCustomError("invalid_path", "must be an absolute path")
    if ".." in value.split("/"):
        raise PydanticCustomError("invalid_path", "must not contain '..'")
    # normpath keeps a leading "//" (POSIX leaves its meaning open): refuse it too.
    if posixpath.normpath(value) != value or value.startswith("//"):
        raise PydanticCustomError(
            "invalid_path", "must be normalized (no '.', '//' or trailing '/')"
        )
    if value == "/" and not allow_root:
        raise PydanticCustomError("invalid_path", "must name a file, not '/'")
    return value


class TaskFileModel(BaseModel):
    """One entry of ``files``: where, what (base64) and with which permission bits."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(max_length=4096, description="absolute path in the container")
    content: str = Field(description="the file's bytes, base64")
    mode: int = Field(
        DEFAULT_FILE_MODE,
        ge=0,
        le=0o7777,
        strict=True,  # "0644" must not pass as decimal 644
        description="permission bits, e.g. 420 (0644)",
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_absolute_path(value, allow_root=False)

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        decode_base64(value)
        return value

    def to_input_file(self) -> InputFile:
        """The decoded file."""
        return InputFile(self.path, base64.b64decode(self.content), self.mode)


def conflicting_paths(paths: Sequence[str]) -> list[int]:
    """Indexes of entries naming a path that is already a file or a directory of the set:
    the same path twice, or a file where another entry needs a directory."""
    files: set[str] = set()
    directories: set[str] = set()
    conflicts = []
    for index, path in enumerate(paths):
        parents = _parents(path)
        if path in files or path in directories or any(p in files for p in parents):
            conflicts.append(index)
            continue
        files.add(path)
        directories.update(parents)
    return conflicts


def input_archive(
    files: Iterable[InputFile], mtime: float, directories_too: Iterable[str] = ()
) -> bytes:
    """A tar archive of ``files`` relative to ``/``, parent directories (0755) included,
    plus the directories ``directories_too``, every entry dated ``mtime``."""
    buffer = io.BytesIO()
    directories: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for directory in directories_too:
            for parent in [*_parents(directory), directory]:
                if parent not in directories:
                    directories.add(parent)
                    entry = tarfile.TarInfo(parent.lstrip("/"))
                    entry.type, entry.mode = tarfile.DIRTYPE, _DIRECTORY_MODE
                    entry.mtime = int(mtime)
                    archive.addfile(entry)
        for item in files:
            for parent in _parents(item.path):
                if parent not in directories:
                    directories.add(parent)
                    entry = tarfile.TarInfo(parent.lstrip("/"))
                    entry.type, entry.mode = tarfile.DIRTYPE, _DIRECTORY_MODE
                    entry.mtime = int(mtime)
                    archive.addfile(entry)
            entry = tarfile.TarInfo(item.path.lstrip("/"))
            entry.size, entry.mode, entry.mtime = len(item.content), item.mode, int(mtime)
            archive.addfile(entry, io.BytesIO(item.content))
    return buffer.getvalue()


def _parents(path: str) -> list[str]:
    """``/a/b/c`` → ``["/a", "/a/b"]``."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: depth + 1]) for depth in range(len(parts))]
