"""Mailbox name rules and LIST pattern matching (RFC 9051 §5.1, §6.3.9)."""

from __future__ import annotations

import re
from functools import lru_cache

DELIMITER = "/"
MAX_NAME = 1000  # characters
MAX_DEPTH = 32


def valid_name(name: str) -> bool:
    """Names the server will create: non-empty levels, no control characters, no
    wildcards (they would be unreachable through LIST), bounded length and depth."""
    if not name or len(name) > MAX_NAME:
        return False
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in name) or "*" in name or "%" in name:
        return False
    levels = name.split(DELIMITER)
    return len(levels) <= MAX_DEPTH and all(levels)


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def canonical_pattern(reference: str, pattern: str) -> str:
    """Joins reference and pattern; an ``INBOX`` first level is matched case-insensitively,
    so we fold it here."""
    if pattern.startswith(DELIMITER) and reference.endswith(DELIMITER):
        pattern = pattern[1:]
    full = reference + pattern
    head, sep, rest = full.partition(DELIMITER)
    if head.upper() == "INBOX":
        full = "INBOX" + sep + rest
    return full


def matches(pattern: str, name: str) -> bool:
    return _compile(pattern).fullmatch(name) is not None


def parents(name: str) -> list[str]:
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:i]) for i in range(1, len(levels))]
