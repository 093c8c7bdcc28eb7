"""What the registry stores as names and text: ids, names and aliases in one character set, free text printable.

Model ids, model names and aliases are what references are made of (``id``, ``name@1.2.0``,
``name@alias``, ``name``), and they end up in logs, metric labels, file names and other programs'
indexes. So they are short and plain: 1 to :data:`MAX_NAME_CHARS` characters of ASCII letters, digits
and ``. _ - / +``, starting with a letter or digit. ``@`` separates a name from its version or alias,
so it never occurs in one; ``+`` is there for semver build metadata in ids such as ``legal-1.0.0+gpu``.
``default`` (:data:`DEFAULT_REFERENCE`) is no model's id or name: in a request, over HTTP and gRPC alike,
it names the server's default model (OpenAI clients always send a model), so a model called that could
never be asked for.

Free text (descriptions, domains, tags, deprecation reasons) may be any language, but not control or
invisible format characters (NUL, escapes, zero-width spaces, bidirectional overrides), which make two
different values look alike or corrupt a terminal, and it is bounded in length.

These rules apply to what is written from now on; records stored before them stay readable as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag_factory.errors import InvalidArgumentError, quoted

MAX_NAME_CHARS = 128
MAX_LABEL_CHARS = 256  # domain, tags, created_by, fine_tuned_on, base_model
MAX_TEXT_CHARS = 4000  # description, deprecation reason
MAX_TAGS = 64
NAME_CHARACTERS = "ASCII letters, digits and . _ - / +, starting with a letter or digit"
# The reference a request sends for the server's default model, like an empty one.
DEFAULT_REFERENCE = "default"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]*")
# Unicode categories Cc (controls), Cf (invisible format characters: soft hyphen, zero-width and
# bidirectional marks, tags, ...), Zl and Zp, and Zs (spaces), as ranges of Unicode 14 (the unicodedata of
# Python 3.11); written out because computing them at import walks every code point.
_CONTROLS = "\x00-\x1f\x7f-\x9f"
_FORMATS = (
    "\xad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_SPACES = " \xa0\u1680\u2000-\u200a\u202f\u205f\u3000"
_VISIBLE = re.compile(f"[^{_CONTROLS}{_FORMATS}{_SPACES}]")
_HIDDEN_IN_LINE = re.compile(f"[{_CONTROLS}{_FORMATS}]")
_HIDDEN_IN_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_FORMATS}]")  # \t \n \r allowed


def has_visible_text(text: str) -> bool:
    """Whether ``text`` holds at least one character that is not a control, format, space or separator."""
    return _VISIBLE.search(text) is not None


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid model id, model name or alias (see the module docstring).

    Args:
        kind: What the value is, for the message ("model_id", "alias", ...).
        value: The value to check.

    Raises:
        InvalidArgumentError: It is empty, too long, has a character outside the set, or is a model id or
            name ``default`` (an alias may be called that: ``name@default`` names no default).
    """
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{kind} is empty; use 1 to {MAX_NAME_CHARS} {NAME_CHARACTERS}")
    if len(value) > MAX_NAME_CHARS:
        raise InvalidArgumentError(f"{kind} {quoted(value, 40)} is longer than {MAX_NAME_CHARS} characters", field=kind)
    if _NAME.fullmatch(value) is None:
        raise InvalidArgumentError(
            f"{kind} {quoted(value)} has a character that is not allowed; use {NAME_CHARACTERS}", field=kind
        )
    if value == DEFAULT_REFERENCE and kind != "alias":
        raise InvalidArgumentError(
            f"{kind} {DEFAULT_REFERENCE!r} is reserved: requests use it to ask for the server's default model; "
            "choose another name",
            field=kind,
        )
    return value


def check_label(kind: str, value: str, limit: int = MAX_LABEL_CHARS) -> str:
    """Return ``value`` if it is one line of printable text of at most ``limit`` characters.

    Raises:
        InvalidArgumentError: It is too long, or holds a control or invisible format character.
    """
    return _check_text(kind, value, limit, _HIDDEN_IN_LINE)


def check_text(kind: str, value: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Return ``value`` if it is printable text (line breaks and tabs allowed) of at most ``limit`` characters.

    Raises:
        InvalidArgumentError: It is too long, or holds a control or invisible format character.
    """
    return _check_text(kind, value, limit, _HIDDEN_IN_TEXT)


def check_labels(kind: str, values: Sequence[str]) -> None:
    """Check a list of labels (tags): at most :data:`MAX_TAGS`, each as :func:`check_label`.

    Raises:
        InvalidArgumentError: Too many, or one is not a valid label.
    """
    if len(values) > MAX_TAGS:
        raise InvalidArgumentError(f"{kind} has {len(values)} entries; at most {MAX_TAGS} are allowed")
    for position, value in enumerate(values):
        check_label(f"{kind}[{position}]", value)


def _check_text(kind: str, value: str, limit: int, hidden: re.Pattern[str]) -> str:
    if len(value) > limit:
        raise InvalidArgumentError(f"{kind} has {len(value):,} characters; at most {limit:,} are allowed")
    found = hidden.search(value)
    if found is not None:
        raise InvalidArgumentError(
            f"{kind} holds the invisible or control character U+{ord(found.group()):04X} at position "
            f"{found.start()}; remove it"
        )
    return value
