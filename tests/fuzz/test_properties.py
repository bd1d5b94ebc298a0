"""Hypothesis properties of the two sans-IO parsers, beyond tests/ecs' examples.

Image references: everything ECS accepts matches Docker's reference grammar (as the
Engine 20.10 vendors it from distribution/reference) and prints back as written;
whatever that grammar rejects, ECS rejects. Log demultiplexer: random frame sizes,
streams and chunk splits reassemble exactly, within the cap, and a cut stream is caught.
"""

from __future__ import annotations

import contextlib
import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs.demux import LogDemuxer, MalformedStream
from ecs.imageref import InvalidReference, parse_image_reference

# distribution/reference's grammar, written out here independently of ecs.imageref.
_ALNUM = r"[a-z0-9]+"
# distribution writes the separator as [-]*, which only adds empty matches and makes the
# regex backtrack exponentially; -+ reads the same language.
_SEPARATOR = r"(?:[._]|__|-+)"
_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
DOCKER_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII)


def docker_accepts(text: str) -> bool:
    """True if Docker's grammar reads ``text`` as a reference (name at most 255 chars)."""
    match = DOCKER_REFERENCE.fullmatch(text)
    return match is not None and len(match.group("name")) <= 255


_components = st.from_regex(
    r"[a-z0-9]{1,6}(?:(?:[._]|__|-{1,3})[a-z0-9]{1,6}){0,2}", fullmatch=True
)
_domain_label = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", fullmatch=True)
_domains = st.one_of(
    st.just("localhost"),
    st.builds(lambda labels: ".".join(labels), st.lists(_domain_label, min_size=2, max_size=4)),
    st.builds(lambda label, port: f"{label}:{port}", _domain_label, st.integers(1, 65535).map(str)),
)
_tags = st.from_regex(_TAG, fullmatch=True)
_digests = st.from_regex(r"sha256:[a-f0-9]{64}", fullmatch=True)


@st.composite
def ecs_references(draw: st.DrawFn) -> str:
    """References ECS must accept: a name (maybe with a registry), a tag and/or a digest."""
    domain = draw(st.none() | _domains)
    path = draw(st.lists(_components, min_size=1, max_size=5))
    if domain is None and len(path) > 1 and "." in path[0]:
        # Docker reads a first component with a dot as a registry host: not a plain path.
        path[0] = path[0].replace(".", "-")
    name = "/".join([domain, *path] if domain else path)
    tag, digest = draw(st.sampled_from([(True, False), (False, True), (True, True)]))
    return name + (f":{draw(_tags)}" if tag else "") + (f"@{draw(_digests)}" if digest else "")


@given(ecs_references())
def test_generated_references_round_trip(text: str) -> None:
    """A reference with a generated registry, separators, tag and digest parses, matches
    Docker's grammar, and prints back exactly as written."""
    ref = parse_image_reference(text)
    assert docker_accepts(text)
    assert ref.familiar == text
    assert ref.pull_tag == (ref.digest or ref.tag)
    assert parse_image_reference(ref.normalized) == parse_image_reference(ref.normalized)
    assert parse_image_reference(ref.normalized).familiar == ref.normalized


_reference_alphabet = st.sampled_from(
    [*list("abcz09AZ:/@._-"), "__", "sha256:", "a" * 64, "é", "ß", " ", "\t", "localhost"]
)


@st.composite
def mutated_references(draw: st.DrawFn) -> str:
    """Valid references with pieces replaced, inserted or dropped, and plain junk."""
    if draw(st.booleans()):
        return "".join(draw(st.lists(_reference_alphabet, max_size=20)))
    text = draw(ecs_references())
    position = draw(st.integers(0, len(text)))
    cut = draw(st.integers(0, 3))
    insert = draw(st.lists(_reference_alphabet, max_size=2))
    return text[:position] + "".join(insert) + text[position + cut :]


@settings(max_examples=500)
@given(mutated_references())
def test_what_docker_rejects_ecs_rejects(text: str) -> None:
    """Anything ECS accepts is a reference by Docker's grammar (so the engine never
    refuses a name ECS let through); what the grammar rejects, ECS rejects."""
    try:
        ref = parse_image_reference(text)
    except InvalidReference:
        return
    assert docker_accepts(text), text
    assert ref.tag is not None or ref.digest is not None


@pytest.mark.parametrize("text", ["repo:tåg", "repo:ｔａｇ", "repo:v١"])
def test_non_ascii_tags_are_refused(text: str) -> None:
    """Docker's tag characters are ASCII word characters; Unicode letters and digits are not."""
    with pytest.raises(InvalidReference):
        parse_image_reference(text)


def frame(stream: int, payload: bytes) -> bytes:
    """One Docker log frame."""
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


_big_frames = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 2]),
        st.integers(0, 70_000).flatmap(lambda n: st.just(bytes([n % 251]) * n)) | st.binary(),
    ),
    max_size=12,
)


# A failing example of 100 kB frames is too big to print; Hypothesis warns, which is no fault.
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@settings(max_examples=150, deadline=None)  # megabytes per example: slow on a busy machine
@given(
    frames=_big_frames,
    cap=st.integers(0, 150_000),
    chunk_sizes=st.lists(st.integers(1, 100_000), min_size=1, max_size=10),
)
def test_large_frames_any_chunking_any_cap(
    frames: list[tuple[int, bytes]], cap: int, chunk_sizes: list[int]
) -> None:
    """Frames up to 70 KB on stdin/stdout/stderr, fed in chunks of random sizes, give each
    output stream exactly its first ``cap`` bytes and a truncation flag that tells."""
    raw = b"".join(frame(stream, payload) for stream, payload in frames)
    demuxer = LogDemuxer(cap)
    position = 0
    for size in itertools.cycle(chunk_sizes):
        if position >= len(raw):
            break
        demuxer.feed(raw[position : position + size])
        position += size
        assert len(demuxer.stdout.data) <= cap
        assert len(demuxer.stderr.data) <= cap
    demuxer.close()
    for buffer, number in ((demuxer.stdout, 1), (demuxer.stderr, 2)):
        whole = b"".join(payload for stream, payload in frames if stream == number)
        assert bytes(buffer.data) == whole[:cap]
        assert buffer.truncated == (len(whole) > cap)


@given(
    frames=st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=50)), min_size=1),
    data=st.data(),
)
def test_a_cut_stream_is_caught_exactly_off_frame_boundaries(
    frames: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    """A stream cut anywhere closes cleanly exactly when the cut is on a frame boundary."""
    raw = b"".join(frame(stream, payload) for stream, payload in frames)
    boundaries = set(itertools.accumulate(len(frame(s, p)) for s, p in frames)) | {0}
    cut = data.draw(st.integers(0, len(raw)))
    demuxer = LogDemuxer(1 << 20)
    demuxer.feed(raw[:cut])
    if cut in boundaries:
        demuxer.close()
    else:
        with pytest.raises(MalformedStream):
            demuxer.close()


@pytest.mark.parametrize(
    "text",
    [
        "a" + "-a" * 255 + "!:t",
        "a" + "__a" * 170 + ":t:",
        "h" + ".h" * 250 + "/x:t@",
        "a/" * 255 + ":t",
        "a" * 511 + "A",
    ],
)
def test_hostile_512_byte_names_parse_in_linear_time(text: str) -> None:
    """A request-sized (512 bytes) reference built to make regexes backtrack is judged at
    once: the parser's patterns have no nested ambiguous repetition."""
    import time

    started = time.perf_counter()
    with contextlib.suppress(InvalidReference):
        parse_image_reference(text[:512])
    assert time.perf_counter() - started < 0.5
