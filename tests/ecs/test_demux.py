"""The log demultiplexer: frames split anywhere reassemble exactly, within the cap."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs.demux import LogDemuxer, MalformedStream


def frame(stream: int, payload: bytes) -> bytes:
    """One Docker log frame."""
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def demultiplex(raw: bytes, cap_per_stream: int) -> tuple[bytes, bytes]:
    """A whole multiplexed buffer split into (stdout, stderr)."""
    demuxer = LogDemuxer(cap_per_stream)
    demuxer.feed(raw)
    demuxer.close()
    return bytes(demuxer.stdout.data), bytes(demuxer.stderr.data)


def test_two_frames_in_engine_order() -> None:
    """The engine's own example (stderr frame first) splits into both streams."""
    raw = frame(2, b"err\n") + frame(1, b"out\n")
    assert demultiplex(raw, 1024) == (b"out\n", b"err\n")


def test_cap_keeps_the_beginning_and_flags_truncation() -> None:
    """Past the cap the rest is dropped and the stream is marked truncated."""
    demuxer = LogDemuxer(cap_per_stream=5)
    demuxer.feed(frame(1, b"0123") + frame(1, b"456789") + frame(2, b"ok"))
    demuxer.close()
    assert bytes(demuxer.stdout.data) == b"01234"
    assert demuxer.stdout.truncated
    assert bytes(demuxer.stderr.data) == b"ok"
    assert not demuxer.stderr.truncated


def test_exactly_the_cap_is_not_truncated() -> None:
    """Output of exactly the cap is complete, not truncated."""
    demuxer = LogDemuxer(cap_per_stream=4)
    demuxer.feed(frame(1, b"abcd"))
    assert not demuxer.stdout.truncated


def test_stream_ending_inside_a_frame_is_malformed() -> None:
    """A cut-off stream is reported, not silently accepted."""
    demuxer = LogDemuxer(16)
    demuxer.feed(frame(1, b"abcdef")[:-2])
    with pytest.raises(MalformedStream):
        demuxer.close()


def test_bad_header_is_malformed() -> None:
    """Bytes that are not a frame header are refused (e.g. a TTY container's raw output)."""
    with pytest.raises(MalformedStream):
        LogDemuxer(16).feed(b"hello world!")


_frames = st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=300)), max_size=30)


@given(frames=_frames, cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=40))
def test_any_split_reassembles_exactly(frames: list[tuple[int, bytes]], cuts: list[int]) -> None:
    """However the bytes are chunked, each stream is the concatenation of its frames."""
    raw = b"".join(frame(stream, payload) for stream, payload in frames)
    points = sorted({min(cut, len(raw)) for cut in cuts} | {0, len(raw)})
    demuxer = LogDemuxer(cap_per_stream=1 << 20)
    for start, end in itertools.pairwise(points):
        demuxer.feed(raw[start:end])
    demuxer.close()
    assert bytes(demuxer.stdout.data) == b"".join(p for s, p in frames if s == 1)
    assert bytes(demuxer.stderr.data) == b"".join(p for s, p in frames if s == 2)


@given(frames=_frames, cap=st.integers(min_value=0, max_value=500))
def test_cap_is_a_prefix(frames: list[tuple[int, bytes]], cap: int) -> None:
    """With a cap, each stream is exactly the first `cap` bytes of the whole stream."""
    raw = b"".join(frame(stream, payload) for stream, payload in frames)
    demuxer = LogDemuxer(cap_per_stream=cap)
    demuxer.feed(raw)
    whole_out = b"".join(p for s, p in frames if s == 1)
    assert bytes(demuxer.stdout.data) == whole_out[:cap]
    assert demuxer.stdout.truncated == (len(whole_out) > cap)
