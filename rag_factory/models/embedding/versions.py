"""Semantic-version helpers: parsing, ordering, bumping and version ranges such as ">=1.0.0,<2.0.0"."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import semver

from rag_factory.errors import InvalidArgumentError, InvalidVersionError, quoted

Bump = Literal["major", "minor", "patch"]
BUMPS: tuple[Bump, ...] = ("major", "minor", "patch")

# The operators semver's ``Version.match`` understands; a bare version means "==".
_COMPARATOR = re.compile(r"^(<=|>=|==|!=|<|>)?\s*(\S+)$")


def parse_version(text: str) -> semver.Version:
    """Parse a semantic version such as ``1.2.0``.

    Args:
        text: The version string.

    Returns:
        The parsed version.

    Raises:
        InvalidVersionError: ``text`` is not a semantic version.
    """
    if not isinstance(text, str):
        raise InvalidVersionError(f"version must be a string, got {type(text).__name__}")
    try:
        return semver.Version.parse(text.strip())
    except ValueError as exc:
        raise InvalidVersionError(
            f"version {quoted(text)} is not a semantic version such as '1.2.0'", version=text[:MAX_VERSION_CHARS]
        ) from exc


# Bounds of a version the registry stores: each number fits a signed 32-bit integer (as in most other
# semver implementations, and in every client's enum of versions), and the whole string stays short.
MAX_VERSION_NUMBER = 2**31 - 1
MAX_VERSION_CHARS = 128
MAX_RANGE_CHARS = 1024


def check_version_bounds(text: str) -> str:
    """Return ``text`` if it is a semantic version the registry can store.

    Raises:
        InvalidVersionError: It is not a semantic version, is longer than ``MAX_VERSION_CHARS``, or a
            number in it is above ``MAX_VERSION_NUMBER``.
    """
    if isinstance(text, str) and len(text) > MAX_VERSION_CHARS:
        raise InvalidVersionError(f"version {quoted(text, 40)} is longer than {MAX_VERSION_CHARS} characters")
    version = parse_version(text)
    if max(version.major, version.minor, version.patch) > MAX_VERSION_NUMBER:
        raise InvalidVersionError(
            f"version {quoted(text)} has a number above {MAX_VERSION_NUMBER} (2^31 - 1); use smaller numbers",
            version=text[:MAX_VERSION_CHARS],
        )
    return text


def is_version(text: str) -> bool:
    """Whether ``text`` is a semantic version (used to tell ``name@1.2.0`` from ``name@alias``)."""
    return semver.Version.is_valid(text)


def version_key(text: str) -> semver.Version:
    """Sort key that orders version strings by semver precedence (``1.10.0`` after ``1.9.0``)."""
    return parse_version(text)


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Return ``versions`` sorted from lowest to highest semver precedence."""
    return sorted(versions, key=version_key)


def bump_version(text: str, part: str = "minor") -> str:
    """Return ``text`` with one part bumped; lower parts reset to zero and pre-release is dropped.

    Args:
        text: The current version.
        part: ``"major"``, ``"minor"`` or ``"patch"``.

    Returns:
        The bumped version, e.g. ``bump_version("1.2.3", "minor") == "1.3.0"``.

    Raises:
        InvalidVersionError: ``text`` is not a semantic version.
        InvalidArgumentError: ``part`` is not a known part.
    """
    version = parse_version(text)
    if part == "major":
        return str(version.bump_major())
    if part == "minor":
        return str(version.bump_minor())
    if part == "patch":
        return str(version.bump_patch())
    raise InvalidArgumentError(f"cannot bump {quoted(part)}; choose one of: {', '.join(BUMPS)}")


@dataclass(frozen=True)
class VersionRange:
    """A conjunction of comparators; a version is in range when it satisfies all of them.

    Attributes:
        spec: The range as the user wrote it.
        comparators: Normalised comparators such as ``(">=1.0.0", "<2.0.0")``.
    """

    spec: str
    comparators: tuple[str, ...]

    @classmethod
    def parse(cls, spec: str) -> VersionRange:
        """Parse a range such as ``">=1.0.0,<2.0.0"``, ``"^1.2.0"``, ``"~1.2.0"`` or ``"1.2.0"``.

        ``^X.Y.Z`` allows changes that keep the left-most non-zero part (``^1.2.0`` is
        ``>=1.2.0,<2.0.0``; ``^0.3.1`` is ``>=0.3.1,<0.4.0``); ``~X.Y.Z`` allows patch changes
        (``>=X.Y.Z,<X.(Y+1).0``).

        Raises:
            InvalidVersionError: The range is empty or a comparator is malformed.
        """
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidVersionError("version range is empty; write e.g. '>=1.0.0,<2.0.0' or '^1.2.0'")
        if len(spec) > MAX_RANGE_CHARS:
            raise InvalidVersionError(f"version range {quoted(spec, 40)} is longer than {MAX_RANGE_CHARS} characters")
        comparators: list[str] = []
        for raw in spec.split(","):
            comparators.extend(_expand_comparator(raw.strip(), spec))
        return cls(spec=spec, comparators=tuple(comparators))

    def contains(self, version: str) -> bool:
        """Whether ``version`` satisfies every comparator of the range.

        Raises:
            InvalidVersionError: ``version`` is not a semantic version.
        """
        parsed = parse_version(version)
        return all(parsed.match(comparator) for comparator in self.comparators)

    def __contains__(self, version: object) -> bool:
        return isinstance(version, str) and self.contains(version)


def _expand_comparator(text: str, spec: str) -> list[str]:
    """Turn one comparator (maybe a ``^``/``~`` shorthand) into ``Version.match`` expressions."""
    if not text:
        raise InvalidVersionError(f"version range {quoted(spec)} has an empty comparator")
    if text[0] in "^~":
        low = _parse_in_range(text[1:].strip(), spec)
        if text[0] == "~":
            high = low.bump_minor()
        elif low.major > 0:
            high = low.bump_major()
        elif low.minor > 0:
            high = low.bump_minor()
        else:
            high = low.bump_patch()
        return [f">={low}", f"<{high}"]
    match = _COMPARATOR.match(text)
    if match is None:
        raise InvalidVersionError(f"comparator {quoted(text)} in version range {quoted(spec)} is malformed")
    operator, version = match.group(1) or "==", match.group(2)
    return [f"{operator}{_parse_in_range(version, spec)}"]


def _parse_in_range(text: str, spec: str) -> semver.Version:
    try:
        return semver.Version.parse(text)
    except ValueError as exc:
        raise InvalidVersionError(
            f"{quoted(text)} in version range {quoted(spec)} is not a semantic version such as '1.2.0'",
            version=text[:MAX_VERSION_CHARS],
        ) from exc


def version_in_range(version: str, spec: str) -> bool:
    """Whether ``version`` satisfies the range ``spec`` (see ``VersionRange.parse``)."""
    return VersionRange.parse(spec).contains(version)
