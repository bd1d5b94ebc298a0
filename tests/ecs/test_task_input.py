"""Task input (stdin, files, workdir): every rule of the body, and the archive unpacked."""

from __future__ import annotations

import base64
import io
import tarfile
from typing import Any

import pytest

from ecs.exceptions import InvalidRequest
from ecs.task_body import TaskLimits, parse_task_request
from ecs.task_input import InputFile, conflicting_paths, input_archive

LIMITS = TaskLimits(
    default_timeout_s=60,
    max_timeout_s=600,
    default_memory_mb=256,
    max_memory_mb=2048,
    default_cpus=1,
    max_cpus=2,
    default_pids=256,
    max_pids=4096,
    max_input_bytes=1000,
)
HI = base64.b64encode(b"hi").decode()


def body(**extra: Any) -> dict[str, Any]:
    """A valid task body plus ``extra``."""
    return {"docker_image": "a:b", "cmd": ["x"], **extra}


def problems(payload: dict[str, Any], limits: TaskLimits = LIMITS) -> list[tuple[str, str | None]]:
    """The (code, field) pairs of the 400 this body gets."""
    with pytest.raises(InvalidRequest) as caught:
        parse_task_request(payload, limits)
    return [(problem.code, problem.field) for problem in caught.value.problems()]


def test_stdin_files_and_workdir_reach_the_spec() -> None:
    """Decoded stdin, files with their modes (0644 by default) and the workdir are kept."""
    spec = parse_task_request(
        body(
            stdin=base64.b64encode(b"\x00\xffdata").decode(),
            files=[
                {"path": "/a/b.txt", "content": HI, "mode": 0o755},
                {"path": "/c", "content": ""},
            ],
            workdir="/a",
        ),
        LIMITS,
    )
    assert spec.stdin == b"\x00\xffdata"
    assert spec.files == (InputFile("/a/b.txt", b"hi", 0o755), InputFile("/c", b"", 0o644))
    assert spec.workdir == "/a"


def test_no_input_means_no_stdin() -> None:
    """Without `stdin` the task gets none (an empty, closed stdin), no files, no workdir."""
    spec = parse_task_request(body(), LIMITS)
    assert (spec.stdin, spec.files, spec.workdir) == (None, (), None)


@pytest.mark.parametrize(
    "path",
    ["relative/x", "/", "/a/../b", "/a/./b", "/a//b", "/a/", "//a", "/a\0b", "", ".."],
)
def test_every_bad_file_path_is_named(path: str) -> None:
    """Paths must be absolute, normalized, without `..` or NUL, and not `/`."""
    good = {"path": "/ok", "content": HI}
    found = problems(body(files=[good, good | {"path": "/ok2"}, {"path": path, "content": HI}]))
    assert found == [("invalid_path", "files[2].path")]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"path": "/x", "content": "not base64!"}, [("invalid_base64", "files[0].content")]),
        ({"path": "/x", "content": HI, "mode": 0o10000}, [("less_than_equal", "files[0].mode")]),
        ({"path": "/x", "content": HI, "mode": -1}, [("greater_than_equal", "files[0].mode")]),
        ({"path": "/x", "content": HI, "mode": "0644"}, [("int_type", "files[0].mode")]),
        ({"path": "/x"}, [("missing_field", "files[0].content")]),
        ({"path": "/x", "content": HI, "owner": 0}, [("unknown_field", "files[0].owner")]),
    ],
)
def test_bad_file_entries_are_named(entry: dict[str, Any], expected: list[Any]) -> None:
    """Content must be base64, mode an integer of permission bits, nothing else allowed."""
    assert problems(body(files=[entry])) == expected


def test_every_problem_is_listed_at_once() -> None:
    """A bad stdin, a bad workdir and a bad file path come back together."""
    found = problems(body(stdin="%%%", workdir="tmp", files=[{"path": "x", "content": HI}]))
    assert sorted(found) == [
        ("invalid_base64", "stdin"),
        ("invalid_path", "files[0].path"),
        ("invalid_path", "workdir"),
    ]


def test_at_most_100_files() -> None:
    """A 101st file is refused."""
    files = [{"path": f"/f{index}", "content": ""} for index in range(101)]
    assert problems(body(files=files)) == [("too_long", "files")]


def test_the_same_path_twice_or_a_file_as_a_directory_is_a_conflict() -> None:
    """Two entries for one path, or a file where another entry needs a directory."""
    files = [
        {"path": "/a/b", "content": HI},
        {"path": "/a/b", "content": HI},
        {"path": "/a", "content": HI},
        {"path": "/a/b/c", "content": HI},
    ]
    assert problems(body(files=files)) == [
        ("path_conflict", "files[1].path"),
        ("path_conflict", "files[2].path"),
        ("path_conflict", "files[3].path"),
    ]
    assert conflicting_paths(["/x/y", "/x/z", "/x2"]) == []


def test_decoded_input_over_the_cap_is_refused() -> None:
    """stdin and files together may decode to at most max_input_bytes."""
    half = base64.b64encode(b"x" * 500).decode()
    assert parse_task_request(body(stdin=half, files=[{"path": "/f", "content": half}]), LIMITS)
    over = base64.b64encode(b"x" * 501).decode()
    found = problems(body(stdin=half, files=[{"path": "/f", "content": over}]))
    assert found == [("input_too_large", "files")]
    assert problems(body(stdin=base64.b64encode(b"x" * 1001).decode())) == [
        ("input_too_large", "stdin")
    ]


def test_files_with_a_read_only_root_are_refused_clearly() -> None:
    """With read_only_rootfs the engine cannot unpack files before start: a clear 400."""
    limits = TaskLimits(**{**LIMITS.__dict__, "writable_root": False})
    assert problems(body(files=[{"path": "/tmp/f", "content": HI}]), limits) == [
        ("files_need_writable_root", "files")
    ]
    assert parse_task_request(body(stdin=HI), limits).stdin == b"hi"


def test_archive_holds_parents_modes_and_contents() -> None:
    """The tar has every parent directory once (0755), each file with its mode and bytes."""
    files = [InputFile("/a/b/c.txt", b"one", 0o600), InputFile("/a/d", b"\x00two", 0o755)]
    with tarfile.open(fileobj=io.BytesIO(input_archive(files, mtime=1000))) as archive:
        members = {member.name: member for member in archive.getmembers()}
        assert list(members) == ["a", "a/b", "a/b/c.txt", "a/d"]
        assert [members[name].isdir() for name in ("a", "a/b")] == [True, True]
        assert members["a"].mode == 0o755
        assert (members["a/b/c.txt"].mode, members["a/d"].mode) == (0o600, 0o755)
        assert members["a/d"].mtime == 1000
        extracted = archive.extractfile("a/d")
        assert extracted is not None
        assert extracted.read() == b"\x00two"
