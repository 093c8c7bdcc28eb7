"""Semantic versions: parsing, ordering, bumping and version ranges."""

from __future__ import annotations

import pytest

from rag_factory.errors import InvalidArgumentError, InvalidVersionError
from rag_factory.models.embedding.versions import (
    VersionRange,
    bump_version,
    check_version_bounds,
    parse_version,
    sort_versions,
    version_in_range,
)


@pytest.mark.parametrize("text", ["1", "1.2", "v1.2.0", "1.2.x", "", "01.2.3"], ids=str)
def test_parse_rejects_invalid_version_naming_it(text: str) -> None:
    with pytest.raises(InvalidVersionError, match=repr(text)):
        parse_version(text)


def test_sort_orders_by_semver_precedence_not_text() -> None:
    assert sort_versions(["1.10.0", "1.9.0", "2.0.0-rc.1", "2.0.0", "1.9.1"]) == [
        "1.9.0", "1.9.1", "1.10.0", "2.0.0-rc.1", "2.0.0",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("part", "expected"),
    [("major", "2.0.0"), ("minor", "1.3.0"), ("patch", "1.2.4")],
    ids=["major", "minor", "patch"],
)
def test_bump_resets_lower_parts(part: str, expected: str) -> None:
    assert bump_version("1.2.3", part) == expected


def test_bump_rejects_unknown_part() -> None:
    with pytest.raises(InvalidArgumentError, match="major, minor, patch"):
        bump_version("1.2.3", "build")


@pytest.mark.parametrize(
    ("spec", "version", "expected"),
    [
        (">=1.0.0,<2.0.0", "1.5.0", True),
        (">=1.0.0,<2.0.0", "2.0.0", False),
        (">=1.0.0, <2.0.0", "0.9.9", False),
        ("!=1.2.0", "1.2.0", False),
        ("1.2.0", "1.2.0", True),
        ("==1.2.0", "1.2.1", False),
        ("^1.2.0", "1.9.3", True),
        ("^1.2.0", "2.0.0", False),
        ("^0.3.1", "0.3.9", True),
        ("^0.3.1", "0.4.0", False),
        ("~1.2.0", "1.2.7", True),
        ("~1.2.0", "1.3.0", False),
    ],
    ids=lambda v: str(v),
)
def test_range_matching(spec: str, version: str, expected: bool) -> None:
    assert version_in_range(version, spec) is expected


@pytest.mark.parametrize("spec", ["", ">=1.0", "=>1.0.0", ">=1.0.0,", "^x", "~1", ">= 1.0.0 <2.0.0"], ids=repr)
def test_invalid_range_raises_invalid_version(spec: str) -> None:
    with pytest.raises(InvalidVersionError):
        VersionRange.parse(spec)


def test_range_supports_in_operator() -> None:
    assert "1.4.0" in VersionRange.parse("^1.0.0")


@pytest.mark.parametrize(
    "text",
    ["2147483648.0.0", "1.99999999999999999999999.0", f"1.0.0-{'a' * 200}", f"1.0.0+{'b' * 200}"],
    ids=["major-past-int32", "minor-of-23-digits", "long-pre-release", "long-build"],
)
def test_versions_the_registry_cannot_store_are_refused(text: str) -> None:
    """Issue 18, item 14: ``99999999999999999999999.0.0`` was stored as given."""
    with pytest.raises(InvalidVersionError):
        check_version_bounds(text)


def test_the_largest_storable_version_is_accepted() -> None:
    assert check_version_bounds("2147483647.2147483647.2147483647-rc.1+build.5") == (
        "2147483647.2147483647.2147483647-rc.1+build.5"
    )


def test_an_over_long_range_is_refused_without_echoing_it() -> None:
    with pytest.raises(InvalidVersionError, match="longer than 1024") as caught:
        VersionRange.parse(">=1.0.0," * 1000)
    assert len(str(caught.value)) < 200
