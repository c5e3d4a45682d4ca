"""Typed SEARCH keys (RFC 9051 §6.4.4). The parser builds these; the evaluator walks them.

String values are already decoded to ``str`` (the command's CHARSET applied).
Dates are ``datetime.date``: IMAP search dates carry no time zone.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

from carteiro.imap.protocol.sequence_set import SequenceSet


@dataclass(frozen=True, slots=True)
class All:
    pass


@dataclass(frozen=True, slots=True)
class FlagKey:
    """ANSWERED/DELETED/DRAFT/FLAGGED/SEEN/RECENT, their UN- forms, KEYWORD/UNKEYWORD.

    ``flag`` is the flag name as stored (``\\Seen``, ``\\Recent``, or a keyword).
    NEW is ``And((FlagKey("\\Recent", True), FlagKey("\\Seen", False)))``;
    OLD is ``FlagKey("\\Recent", False)``.
    """

    flag: str
    present: bool


@dataclass(frozen=True, slots=True)
class DateKey:
    """BEFORE/ON/SINCE compare the internal date; SENT* compare the Date: header."""

    op: Literal["BEFORE", "ON", "SINCE"]
    sent: bool
    date: datetime.date


@dataclass(frozen=True, slots=True)
class SizeKey:
    larger: bool
    size: int


@dataclass(frozen=True, slots=True)
class HeaderKey:
    """HEADER field value; FROM/TO/CC/BCC/SUBJECT become HeaderKey with that field.

    ``field`` is upper-cased. An empty ``value`` matches every message that has the field.
    """

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class TextKey:
    """BODY (body only) or TEXT (header and body); case-insensitive substring."""

    where: Literal["BODY", "TEXT"]
    value: str


@dataclass(frozen=True, slots=True)
class SeqKey:
    """A bare sequence set (MSNs) or ``UID set``."""

    seqs: SequenceSet
    uid: bool


@dataclass(frozen=True, slots=True)
class ModSeqKey:
    """RFC 7162 ``MODSEQ [entry-name entry-type-req] mod-sequence-valzer``: messages whose
    modseq is at least ``modseq``. The optional entry (``"/flags/\\draft"``, ``"all"``)
    is kept but, as RFC 7162 allows, the server does not keep per-flag modseqs."""

    modseq: int
    entry: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class SaveDateKey:
    """RFC 8514 SAVEDBEFORE/SAVEDON/SAVEDSINCE (compare the date the message was saved
    into this mailbox), and SAVEDATESUPPORTED (``op is None``: matches every message
    when the mailbox keeps save dates)."""

    op: Literal["BEFORE", "ON", "SINCE"] | None
    date: datetime.date | None = None


@dataclass(frozen=True, slots=True)
class WithinKey:
    """RFC 5032 OLDER n / YOUNGER n: internal date more / less than n seconds ago."""

    older: bool
    seconds: int


@dataclass(frozen=True, slots=True)
class ObjectIdKey:
    """RFC 8474 ``EMAILID id`` / ``THREADID id``."""

    kind: Literal["EMAILID", "THREADID"]
    value: str


@dataclass(frozen=True, slots=True)
class Not:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class Or:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class And:
    keys: tuple[SearchKey, ...]


SearchKey = (
    All
    | FlagKey
    | DateKey
    | SizeKey
    | HeaderKey
    | TextKey
    | SeqKey
    | ModSeqKey
    | SaveDateKey
    | WithinKey
    | ObjectIdKey
    | Not
    | Or
    | And
)
