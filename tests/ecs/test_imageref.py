"""Image references: what is accepted, how it is split, and how it is normalized."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs.imageref import InvalidReference, parse_image_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest", "normalized"),
    [
        ("ubuntu:14.04", None, "ubuntu", "14.04", None, "docker.io/library/ubuntu:14.04"),
        ("owner/repo:tag", None, "owner/repo", "tag", None, "docker.io/owner/repo:tag"),
        (
            "registry.example.com:5000/team/sub/repo:v1",
            "registry.example.com:5000",
            "team/sub/repo",
            "v1",
            None,
            "registry.example.com:5000/team/sub/repo:v1",
        ),
        (
            "127.0.0.1:5000/owner/repo:tag",
            "127.0.0.1:5000",
            "owner/repo",
            "tag",
            None,
            "127.0.0.1:5000/owner/repo:tag",
        ),
        ("localhost/repo:1", "localhost", "repo", "1", None, "localhost/repo:1"),
        (f"busybox@{DIGEST}", None, "busybox", None, DIGEST, f"docker.io/library/busybox@{DIGEST}"),
        (f"a/b:c@{DIGEST}", None, "a/b", "c", DIGEST, f"docker.io/a/b:c@{DIGEST}"),
        (
            "my_org/my-repo.x:Tag_1.2-rc",
            None,
            "my_org/my-repo.x",
            "Tag_1.2-rc",
            None,
            "docker.io/my_org/my-repo.x:Tag_1.2-rc",
        ),
    ],
)
def test_valid_references_are_split(
    text: str, domain: str | None, path: str, tag: str | None, digest: str | None, normalized: str
) -> None:
    """Host with port, nested paths, tags and digests land in the right parts."""
    ref = parse_image_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert ref.normalized == normalized
    assert ref.familiar == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ubuntu", "no tag and no digest"),
        ("IMAGE_NAME_IS_INVALID", "no tag and no digest"),
        ("localhost:5000/foo", "no tag and no digest"),
        ("Owner/repo:tag", "lowercase"),
        ("owner//repo:tag", "lowercase"),
        ("repo:", "not a valid tag"),
        ("repo:-bad", "not a valid tag"),
        ("repo@sha256:1234", "64 hex"),
        ("repo@md5:" + "a" * 64, "64 hex"),
        ("", "non-empty"),
        (" repo:tag", "without spaces"),
        ("-host.com/repo:tag", "not a valid host"),
        ("a" * 256 + ":tag", "longer than 255"),
    ],
)
def test_invalid_references_say_why(text: str, fragment: str) -> None:
    """Every refusal names what is wrong with the reference."""
    with pytest.raises(InvalidReference, match=fragment):
        parse_image_reference(text)


def test_docker_hub_names_get_the_hub_auth_address() -> None:
    """Credentials for Hub names are keyed like docker login keys them."""
    assert parse_image_reference("owner/repo:tag").auth_address == "https://index.docker.io/v1/"
    assert parse_image_reference("h.io:1/r:t").auth_address == "h.io:1"


def test_latest_is_only_a_floating_tag_without_digest() -> None:
    """Only `:latest` without a digest counts as latest for the pull policy."""
    assert parse_image_reference("r:latest").is_latest
    assert not parse_image_reference(f"r:latest@{DIGEST}").is_latest
    assert not parse_image_reference("r:1").is_latest


_component = st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+)?", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_host = st.sampled_from([None, "localhost", "registry.example.com", "127.0.0.1:5000", "h.io:443"])


@given(host=_host, path=st.lists(_component, min_size=1, max_size=3), tag=_tag)
def test_accepted_references_round_trip(host: str | None, path: list[str], tag: str) -> None:
    """What the parser accepts prints back exactly as written."""
    text = "/".join([host, *path] if host else path) + f":{tag}"
    ref = parse_image_reference(text)
    assert ref.familiar == text
    assert parse_image_reference(ref.normalized).normalized == ref.normalized
