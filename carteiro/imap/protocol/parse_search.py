"""SEARCH program parsing (RFC 9051 §6.4.4, plus the RFC 3501 keys NEW, OLD, RECENT,
the RFC 7162 key MODSEQ, RFC 5032 OLDER/YOUNGER, the RFC 8514 SAVED* keys and the
RFC 8474 keys EMAILID/THREADID) and the RFC 9394 return option PARTIAL."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, NamedTuple

from carteiro.imap.protocol.grammar import MAX_NUMBER64, Cursor, ParseError
from carteiro.imap.protocol.search_keys import (
    All,
    And,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    ObjectIdKey,
    Or,
    SaveDateKey,
    SearchKey,
    SeqKey,
    SizeKey,
    TextKey,
    WithinKey,
)

#: Charsets accepted by ``SEARCH CHARSET`` (upper-cased); others get ``NO [BADCHARSET]``.
SUPPORTED_CHARSETS = frozenset({"US-ASCII", "UTF-8"})
RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "PARTIAL"})

_FLAG_KEYS: dict[str, SearchKey] = {
    "ALL": All(),
    "SAVEDATESUPPORTED": SaveDateKey(None),  # RFC 8514
    "ANSWERED": FlagKey("\\Answered", True),
    "DELETED": FlagKey("\\Deleted", True),
    "DRAFT": FlagKey("\\Draft", True),
    "FLAGGED": FlagKey("\\Flagged", True),
    "SEEN": FlagKey("\\Seen", True),
    "RECENT": FlagKey("\\Recent", True),
    "UNANSWERED": FlagKey("\\Answered", False),
    "UNDELETED": FlagKey("\\Deleted", False),
    "UNDRAFT": FlagKey("\\Draft", False),
    "UNFLAGGED": FlagKey("\\Flagged", False),
    "UNSEEN": FlagKey("\\Seen", False),
    "NEW": And((FlagKey("\\Recent", True), FlagKey("\\Seen", False))),
    "OLD": FlagKey("\\Recent", False),
}
_HEADER_KEYS = frozenset({"BCC", "CC", "FROM", "SUBJECT", "TO"})
#: RFC 7162 ``entry-flag-name`` once unescaped is "/flags/" and this (a system flag or a
#: keyword). The prefix is compared separately: IGNORECASE would fold "s" and "k" onto
#: the excluded non-ASCII range (U+017F, U+212A).
_ENTRY_FLAG = re.compile(r'\\?[^(){ %*"\\\]\x00-\x1f\x7f-\U0010ffff]+')
_ENTRY_TYPES = frozenset({"PRIV", "SHARED", "ALL"})
_DATE_KEYS: dict[str, tuple[bool, str]] = {
    "BEFORE": (False, "BEFORE"),
    "ON": (False, "ON"),
    "SINCE": (False, "SINCE"),
    "SENTBEFORE": (True, "BEFORE"),
    "SENTON": (True, "ON"),
    "SENTSINCE": (True, "SINCE"),
}
#: RFC 8514 keys comparing the save date.
_SAVEDATE_KEYS = frozenset({"SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"})
#: RFC 8474 ``objectid = 1*255(ALPHA / DIGIT / "_" / "-")``.
_OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}")


def _text(cur: Cursor) -> str:
    # Only US-ASCII and UTF-8 are accepted, so every value decodes as UTF-8.
    cur.allow_8bit = True
    try:
        return cur.astring().decode("utf-8", "replace")
    finally:
        cur.allow_8bit = False


def _key(cur: Cursor) -> SearchKey:
    c = cur.peek()
    if c == ord("("):
        cur.pos += 1
        cur.enter()
        keys = [_key(cur)]
        while not cur.maybe(b")"):
            cur.sp()
            keys.append(_key(cur))
        cur.leave()
        return keys[0] if len(keys) == 1 else And(tuple(keys))
    if c is not None and (ord("0") <= c <= ord("9") or c in b"*$"):
        return SeqKey(cur.sequence_set(), uid=False)
    name = cur.word("search key")
    simple = _FLAG_KEYS.get(name)
    if simple is not None:
        return simple
    if name in _DATE_KEYS:
        sent, op = _DATE_KEYS[name]
        cur.sp()
        date = cur.date()
        if op == "BEFORE":
            return DateKey("BEFORE", sent, date)
        if op == "ON":
            return DateKey("ON", sent, date)
        return DateKey("SINCE", sent, date)
    if name in _SAVEDATE_KEYS:
        cur.sp()
        date = cur.date()
        if name == "SAVEDBEFORE":
            return SaveDateKey("BEFORE", date)
        if name == "SAVEDON":
            return SaveDateKey("ON", date)
        return SaveDateKey("SINCE", date)
    handler = _ARG_KEYS.get(name)
    if handler is None:
        raise ParseError("Unknown search key")
    cur.sp()
    return handler(cur)


def _nested(cur: Cursor) -> SearchKey:
    cur.search_depth += 1
    if cur.search_depth > cur.max_search_depth:
        raise ParseError("Search program too deeply nested")
    key = _key(cur)
    cur.search_depth -= 1
    return key


def _not(cur: Cursor) -> SearchKey:
    return Not(_nested(cur))


def _or(cur: Cursor) -> SearchKey:
    left = _nested(cur)
    cur.sp()
    return Or(left, _nested(cur))


def _header(cur: Cursor) -> SearchKey:
    field = cur.astring("header field name").decode("utf-8", "replace").upper()
    cur.sp()
    return HeaderKey(field, _text(cur))


def _keyword(present: bool) -> Callable[[Cursor], SearchKey]:
    def parse(cur: Cursor) -> SearchKey:
        return FlagKey(cur.atom("keyword").decode("ascii"), present)

    return parse


def _size(larger: bool) -> Callable[[Cursor], SearchKey]:
    def parse(cur: Cursor) -> SearchKey:
        return SizeKey(larger, cur.number(limit=2**63 - 1))

    return parse


def _header_key(field: str) -> Callable[[Cursor], SearchKey]:
    def parse(cur: Cursor) -> SearchKey:
        return HeaderKey(field, _text(cur))

    return parse


def _body(cur: Cursor) -> SearchKey:
    return TextKey("BODY", _text(cur))


def _textkey(cur: Cursor) -> SearchKey:
    return TextKey("TEXT", _text(cur))


def _uid(cur: Cursor) -> SearchKey:
    return SeqKey(cur.sequence_set(), uid=True)


def _modseq(cur: Cursor) -> SearchKey:
    """``MODSEQ [entry-name SP entry-type-req SP] mod-sequence-valzer`` (RFC 7162 §3.1.5)."""
    entry: tuple[str, str] | None = None
    if cur.peek() == ord('"'):
        name = cur.quoted().decode("utf-8")  # valid UTF-8 (or ASCII) by now
        if name[:7].lower() != "/flags/" or _ENTRY_FLAG.fullmatch(name, 7) is None:
            raise ParseError("Invalid MODSEQ entry name")
        cur.sp()
        kind = cur.word("MODSEQ entry type")
        if kind not in _ENTRY_TYPES:
            raise ParseError("Invalid MODSEQ entry type")
        cur.sp()
        entry = (name, kind.lower())
    return ModSeqKey(cur.number(limit=MAX_NUMBER64), entry)


def _within(older: bool) -> Callable[[Cursor], SearchKey]:
    """RFC 5032 ``OLDER nz-number`` / ``YOUNGER nz-number`` (seconds)."""

    def parse(cur: Cursor) -> SearchKey:
        return WithinKey(older, cur.number(nonzero=True))

    return parse


def _object_id(kind: Literal["EMAILID", "THREADID"]) -> Callable[[Cursor], SearchKey]:
    """RFC 8474 ``EMAILID objectid`` / ``THREADID objectid``. The ABNF has a bare
    ``objectid``; a quoted or literal one with valid characters is accepted too."""

    def parse(cur: Cursor) -> SearchKey:
        value = cur.astring("object id")
        if _OBJECTID.fullmatch(value) is None:
            raise ParseError("Invalid object id")
        return ObjectIdKey(kind, value.decode("ascii"))

    return parse


_ARG_KEYS: dict[str, Callable[[Cursor], SearchKey]] = {
    "NOT": _not,
    "OR": _or,
    "HEADER": _header,
    "KEYWORD": _keyword(True),
    "UNKEYWORD": _keyword(False),
    "LARGER": _size(True),
    "SMALLER": _size(False),
    "BODY": _body,
    "TEXT": _textkey,
    "UID": _uid,
    "MODSEQ": _modseq,
    "OLDER": _within(True),
    "YOUNGER": _within(False),
    "EMAILID": _object_id("EMAILID"),
    "THREADID": _object_id("THREADID"),
    **{name: _header_key(name) for name in _HEADER_KEYS},
}


class SearchArgs(NamedTuple):
    charset: str | None
    key: SearchKey
    return_options: tuple[str, ...] | None
    #: RFC 9394 ``PARTIAL`` range, normalised (see :meth:`Cursor.partial_range`)
    partial: tuple[int, int] | None


def _return_options(cur: Cursor) -> tuple[tuple[str, ...], tuple[int, int] | None]:
    """``"(" [search-return-opt *(SP search-return-opt)] ")"`` after ``RETURN SP``."""
    cur.expect(b"(", "return options")
    opts: list[str] = []
    partial: tuple[int, int] | None = None
    if not cur.maybe(b")"):
        while True:
            opt = cur.word("return option")
            if opt not in RETURN_OPTIONS:
                raise ParseError("Unknown search return option")
            if opt == "PARTIAL":
                # RFC 5267 §4.4 / RFC 9394 §3.1: one PARTIAL, one ALL, or neither
                if partial is not None:
                    raise ParseError("Duplicate PARTIAL")
                if cur.peek() != ord(" "):
                    raise ParseError("Missing PARTIAL value")
                cur.sp()
                partial = cur.partial_range()
            opts.append(opt)
            if cur.maybe(b")"):
                break
            cur.sp()
    if partial is not None and "ALL" in opts:
        raise ParseError("PARTIAL and ALL are mutually exclusive")
    return tuple(dict.fromkeys(opts)), partial


def parse_search(cur: Cursor) -> SearchArgs:
    """After ``SEARCH``: ``[SP RETURN (...)] SP [CHARSET x SP] key *(SP key)``.

    The cursor is left at the command end.
    """
    cur.sp()
    return_options: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None
    if cur.maybe_word(b"RETURN"):
        cur.sp()
        return_options, partial = _return_options(cur)
        cur.sp()
    charset: str | None = None
    if cur.maybe_word(b"CHARSET"):
        cur.sp()
        charset = cur.astring("charset").decode("utf-8", "replace").upper()
        if charset not in SUPPORTED_CHARSETS:
            raise ParseError("Unsupported charset", code="BADCHARSET", status="NO")
        cur.sp()
    keys = [_key(cur)]
    while not cur.at_end():
        cur.sp()
        keys.append(_key(cur))
    key = keys[0] if len(keys) == 1 else And(tuple(keys))
    return SearchArgs(charset, key, return_options, partial)


def parse_search_args(
    cur: Cursor,
) -> tuple[str | None, SearchKey, tuple[str, ...] | None]:
    """:func:`parse_search` without the PARTIAL range: ``(charset, key, return_options)``."""
    charset, key, return_options, _ = parse_search(cur)
    return charset, key, return_options
