"""Mailbox-name rules shared by every backend (hierarchy delimiter ``/``)."""

from __future__ import annotations

from carteiro.store.errors import InvalidName

DELIMITER = "/"
INBOX = "INBOX"
MAX_NAME_LENGTH = 1000  # characters of the full name
MAX_DEPTH = 64
_FORBIDDEN = frozenset("*%") | frozenset(chr(c) for c in range(0x20)) | {"\x7f"}


def check_name(name: str) -> str:
    """Returns the name to store, or raises InvalidName.

    One trailing delimiter is dropped (RFC 9051 §6.3.4: ``CREATE foo/`` creates ``foo``).
    Empty levels, control characters, the LIST wildcards and over-long names are refused.
    """
    if name.endswith(DELIMITER) and len(name) > 1:
        name = name[:-1]
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidName("empty or over-long mailbox name")
    if any(ch in _FORBIDDEN for ch in name):
        raise InvalidName("mailbox name contains a forbidden character")
    levels = name.split(DELIMITER)
    if len(levels) > MAX_DEPTH:
        raise InvalidName("mailbox hierarchy too deep")
    if any(not level for level in levels):
        raise InvalidName("mailbox name has an empty level")
    return name


def parents(name: str) -> list[str]:
    """The ancestors of ``name``, outermost first: ``a/b/c`` → ``["a", "a/b"]``."""
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:i]) for i in range(1, len(levels))]


def inferior_bounds(name: str) -> tuple[str, str]:
    """``(lo, hi)`` such that the inferiors of ``name`` are exactly ``lo <= n < hi``
    in binary collation (``'0'`` is the character after ``'/'``)."""
    return name + DELIMITER, name + chr(ord(DELIMITER) + 1)


def is_inferior(name: str, of: str) -> bool:
    return name.startswith(of + DELIMITER)
