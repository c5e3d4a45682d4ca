"""Flag encoding shared by the backends: system flags as a bitmask, keywords apart.

``\\Recent`` is session state and never stored; system flags match case-insensitively.
Keywords are kept as a space-separated string (IMAP keywords are atoms: no spaces).
"""

from __future__ import annotations

import datetime
from functools import lru_cache

from carteiro.store.interface import SYSTEM_FLAGS

FLAG_BITS: dict[str, int] = {
    "\\Answered": 1,
    "\\Flagged": 2,
    "\\Deleted": 4,
    "\\Seen": 8,
    "\\Draft": 16,
}
assert set(FLAG_BITS) == set(SYSTEM_FLAGS)
SEEN = FLAG_BITS["\\Seen"]
DELETED = FLAG_BITS["\\Deleted"]
_BY_LOWER = {name.lower(): bit for name, bit in FLAG_BITS.items()}
_RECENT = "\\recent"


def encode(flags: frozenset[str] | set[str]) -> tuple[int, list[str]]:
    """Returns (system-flag mask, keywords deduplicated case-insensitively)."""
    mask = 0
    keywords: list[str] = []
    seen: set[str] = set()
    for flag in sorted(flags):
        low = flag.lower()
        bit = _BY_LOWER.get(low)
        if bit is not None:
            mask |= bit
        elif low == _RECENT:
            continue
        else:
            if not flag or any(ch.isspace() for ch in flag):
                raise ValueError(f"invalid keyword {flag!r}")
            if low not in seen:
                seen.add(low)
                keywords.append(flag)
    return mask, keywords


def split_keywords(text: str | None) -> list[str]:
    return text.split(" ") if text else []


def join_keywords(keywords: list[str]) -> str | None:
    return " ".join(keywords) if keywords else None


@lru_cache(maxsize=4096)
def decode(mask: int, keywords: str | None) -> frozenset[str]:
    out = [name for name, bit in FLAG_BITS.items() if mask & bit]
    if keywords:
        out.extend(keywords.split(" "))
    return frozenset(out)


_ZONES: dict[int, datetime.timezone] = {0: datetime.UTC}


def _tz(offset: int) -> datetime.timezone:
    zone = _ZONES.get(offset)
    if zone is None:
        zone = datetime.timezone(datetime.timedelta(seconds=offset))
        if len(_ZONES) < 1024:
            _ZONES[offset] = zone
    return zone


def encode_date(value: datetime.datetime) -> tuple[int, int]:
    """(Unix seconds, UTC offset in seconds); naive datetimes are taken as UTC and
    sub-second precision is dropped (IMAP dates have none)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    offset = value.utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    return int(value.timestamp() // 1), seconds


def decode_date(stamp: int, offset: int) -> datetime.datetime:
    zone = _ZONES.get(offset)
    return _fromtimestamp(stamp, zone if zone is not None else _tz(offset))


_fromtimestamp = datetime.datetime.fromtimestamp
