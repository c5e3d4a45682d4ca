"""SEARCH programs (RFC 9051 §6.4.4) and FETCH attributes (§6.4.5)."""

from __future__ import annotations

import datetime

import pytest
from imap_proto_helpers import error, parse

from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol import search_keys as k
from carteiro.imap.protocol.fetch_attrs import (
    MACRO_ALL,
    MACRO_FAST,
    MACRO_FULL,
    BinarySize,
    BodySection,
    Section,
    Simple,
)
from carteiro.imap.protocol.sequence_set import SequenceSet


def search(args: bytes, *, utf8: bool = False) -> c.Search:
    cmd = parse(b"t SEARCH " + args, utf8=utf8)
    assert isinstance(cmd, c.Search)
    return cmd


def key(args: bytes) -> k.SearchKey:
    return search(args).key


D = datetime.date(2024, 2, 1)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (b"ALL", k.All()),
        (b"answered", k.FlagKey("\\Answered", True)),
        (b"DELETED", k.FlagKey("\\Deleted", True)),
        (b"DRAFT", k.FlagKey("\\Draft", True)),
        (b"FLAGGED", k.FlagKey("\\Flagged", True)),
        (b"SEEN", k.FlagKey("\\Seen", True)),
        (b"RECENT", k.FlagKey("\\Recent", True)),
        (b"UNANSWERED", k.FlagKey("\\Answered", False)),
        (b"UNDELETED", k.FlagKey("\\Deleted", False)),
        (b"UNDRAFT", k.FlagKey("\\Draft", False)),
        (b"UNFLAGGED", k.FlagKey("\\Flagged", False)),
        (b"UNSEEN", k.FlagKey("\\Seen", False)),
        (b"NEW", k.And((k.FlagKey("\\Recent", True), k.FlagKey("\\Seen", False)))),
        (b"OLD", k.FlagKey("\\Recent", False)),
        (b"KEYWORD $Junk", k.FlagKey("$Junk", True)),
        (b"UNKEYWORD foo", k.FlagKey("foo", False)),
        (b"BEFORE 1-Feb-2024", k.DateKey("BEFORE", False, D)),
        (b'ON "01-feb-2024"', k.DateKey("ON", False, D)),
        (b"SINCE 1-FEB-2024", k.DateKey("SINCE", False, D)),
        (b"SENTBEFORE 1-Feb-2024", k.DateKey("BEFORE", True, D)),
        (b"SENTON 1-Feb-2024", k.DateKey("ON", True, D)),
        (b"SENTSINCE 1-Feb-2024", k.DateKey("SINCE", True, D)),
        (b"LARGER 1000", k.SizeKey(True, 1000)),
        (b"SMALLER 5000000000", k.SizeKey(False, 5000000000)),
        (b"FROM smith", k.HeaderKey("FROM", "smith")),
        (b'TO "a b"', k.HeaderKey("TO", "a b")),
        (b"CC x", k.HeaderKey("CC", "x")),
        (b"BCC x", k.HeaderKey("BCC", "x")),
        (b"SUBJECT {4}\r\nhi\r\n", k.HeaderKey("SUBJECT", "hi\r\n")),
        (b'HEADER message-id ""', k.HeaderKey("MESSAGE-ID", "")),
        (b"BODY x", k.TextKey("BODY", "x")),
        (b"TEXT x", k.TextKey("TEXT", "x")),
        (b"UID 1:*", k.SeqKey(SequenceSet(((1, None),)), uid=True)),
        (b"2,4:5", k.SeqKey(SequenceSet(((2, 2), (4, 5))), uid=False)),
        (b"$", k.SeqKey(SequenceSet((), saved=True), uid=False)),
        (b"UID $", k.SeqKey(SequenceSet((), saved=True), uid=True)),
        (b"NOT SEEN", k.Not(k.FlagKey("\\Seen", True))),
        (b"OR SEEN ALL", k.Or(k.FlagKey("\\Seen", True), k.All())),
        (b"(ALL)", k.All()),
        (b"(SEEN (DRAFT))", k.And((k.FlagKey("\\Seen", True), k.FlagKey("\\Draft", True)))),
        (b"SEEN DRAFT", k.And((k.FlagKey("\\Seen", True), k.FlagKey("\\Draft", True)))),
        (
            b"OR (FROM a TO b) NOT (1:3)",
            k.Or(
                k.And((k.HeaderKey("FROM", "a"), k.HeaderKey("TO", "b"))),
                k.Not(k.SeqKey(SequenceSet(((1, 3),)), uid=False)),
            ),
        ),
    ],
)
def test_search_keys(args: bytes, expected: k.SearchKey) -> None:
    assert key(args) == expected


def test_search_options() -> None:
    cmd = search(b"RETURN (MIN max ALL COUNT SAVE) CHARSET utf-8 SUBJECT \xc3\xa9", utf8=True)
    assert cmd.return_options == ("MIN", "MAX", "ALL", "COUNT", "SAVE")
    assert cmd.charset == "UTF-8"
    assert cmd.key == k.HeaderKey("SUBJECT", "\u00e9")
    assert search(b"RETURN () ALL").return_options == ()
    assert search(b"ALL").return_options is None
    assert search(b'CHARSET "US-ASCII" ALL').charset == "US-ASCII"
    # literal values are decoded as UTF-8, invalid bytes replaced
    assert search(b"CHARSET UTF-8 TEXT {2}\r\n\xff!").key == k.TextKey("TEXT", "\ufffd!")
    uid = parse(b"t UID SEARCH UID 5")
    assert isinstance(uid, c.Search) and uid.uid


def test_search_accepts_8bit_quoted_values() -> None:
    assert key(b'CHARSET UTF-8 SUBJECT "caf\xc3\xa9"') == k.HeaderKey("SUBJECT", "caf\u00e9")
    assert error(b'T SEARCH SUBJECT "caf\xe9"').text == "Invalid UTF-8 in quoted string"


def test_search_without_arguments() -> None:
    assert error(b"t SEARCH").text == "Missing argument"
    assert error(b"t UID SEARCH").text == "Missing argument"


def test_search_badcharset() -> None:
    ev = error(b"t SEARCH CHARSET KOI8-R ALL")
    assert (ev.tag, ev.status, ev.code) == ("t", "NO", "BADCHARSET")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (b"", "Expected search key"),
        (b"BOGUS", "Unknown search key"),
        (b"SEEN  DRAFT", "Expected search key"),
        (b"SEEN ", "Expected search key"),
        (b"FROM", "Missing argument"),
        (b"OR SEEN", "Missing argument"),
        (b"NOT", "Missing argument"),
        (b"(SEEN", "Missing argument"),
        (b"SEEN)", "Expected a single space"),
        (b"()", "Expected search key"),
        (b"BEFORE 2024-02-01", "Invalid date"),
        (b"BEFORE 30-Feb-2024", "Invalid date"),
        (b'BEFORE "1-Feb-2024', "Invalid date"),
        (b"LARGER x", "Expected number"),
        (b"KEYWORD \\Seen", "Expected keyword"),
        (b"UID x", "Expected sequence set"),
        (b"0", "Invalid sequence set"),
        (b"RETURN (BOGUS) ALL", "Unknown search return option"),
        (b"RETURN ALL", "Expected return options"),
        (b"CHARSET", "Missing argument"),
        (b"HEADER x", "Missing argument"),
    ],
)
def test_search_bad(args: bytes, reason: str) -> None:
    assert error(b"t SEARCH " + args).text == reason


def test_search_nesting_limits() -> None:
    deep = b"(" * 17 + b"ALL" + b")" * 17
    assert error(b"t SEARCH " + deep).text == "Too deeply nested"
    assert key(b"(" * 16 + b"ALL" + b")" * 16) == k.All()
    assert error(b"t SEARCH " + b"NOT " * 65 + b"ALL").text == "Search program too deeply nested"
    assert isinstance(key(b"NOT " * 64 + b"ALL"), k.Not)
    chain = b"OR SEEN " * 30 + b"ALL"
    assert isinstance(key(chain), k.Or)


# --- FETCH -----------------------------------------------------------------------------


def fetch(args: bytes) -> c.Fetch:
    cmd = parse(b"t FETCH 1 " + args)
    assert isinstance(cmd, c.Fetch)
    return cmd


def attrs(args: bytes) -> tuple[object, ...]:
    return fetch(args).attrs


def test_fetch_macros_and_simple() -> None:
    assert attrs(b"ALL") == MACRO_ALL
    assert attrs(b"fast") == MACRO_FAST
    assert attrs(b"FULL") == MACRO_FULL
    for s in Simple:
        assert attrs(s.value.encode()) == (s,)
        assert attrs(s.value.lower().encode()) == (s,)
    assert attrs(b"(FLAGS UID flags)") == (Simple.FLAGS, Simple.UID)


@pytest.mark.parametrize(
    ("att", "expected"),
    [
        (b"BODY[]", BodySection(Section())),
        (b"BODY.PEEK[]", BodySection(Section(), peek=True)),
        (b"body[]<0.1024>", BodySection(Section(), partial=(0, 1024))),
        (b"BODY[HEADER]", BodySection(Section((), "HEADER"))),
        (b"BODY[text]", BodySection(Section((), "TEXT"))),
        (b"BODY[1]", BodySection(Section((1,)))),
        (b"BODY[1.2.3]", BodySection(Section((1, 2, 3)))),
        (b"BODY[1.2.MIME]", BodySection(Section((1, 2), "MIME"))),
        (b"BODY[2.HEADER]", BodySection(Section((2,), "HEADER"))),
        (b"BODY[2.TEXT]", BodySection(Section((2,), "TEXT"))),
        (
            b"BODY.PEEK[HEADER.FIELDS (from To x-Y)]",
            BodySection(Section((), "HEADER.FIELDS", ("FROM", "TO", "X-Y")), peek=True),
        ),
        (
            b'BODY[1.HEADER.FIELDS.NOT ("Subject" {4}\r\nDate)]<5.10>',
            BodySection(Section((1,), "HEADER.FIELDS.NOT", ("SUBJECT", "DATE")), partial=(5, 10)),
        ),
        (b"BINARY[]", BodySection(Section(), binary=True)),
        (b"BINARY.PEEK[1.2]<0.10>", BodySection(Section((1, 2)), True, (0, 10), True)),
        (b"BINARY.SIZE[1]", BinarySize((1,))),
        (b"BINARY.SIZE[]", BinarySize(())),
    ],
)
def test_fetch_sections(att: bytes, expected: object) -> None:
    assert attrs(att) == (expected,)
    assert attrs(b"(UID " + att + b")") == (Simple.UID, expected)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (b"", "Expected fetch attribute"),
        (b"BOGUS", "Unknown fetch attribute"),
        (b"MODSEQ[]", "Unknown fetch attribute"),
        (b"BODY.PEEK", "Unknown fetch attribute"),
        (b"BINARY", "Unknown fetch attribute"),
        (b"FLAGS[]", "Unknown fetch attribute"),
        (b"()", "Expected fetch attribute"),
        (b"(ALL)", "Unknown fetch attribute"),
        (b"(FLAGS", "Missing argument"),
        (b"(FLAGS  UID)", "Expected fetch attribute"),
        (b"BODY[0]", "Invalid section part number"),
        (b"BODY[1.0]", "Invalid section part number"),
        (b"BODY[01]", "Invalid section part number"),
        (b"BODY[MIME]", "MIME is only valid after a part number"),
        (b"BODY[1.]", "Invalid section"),
        (b"BODY[FOO]", "Invalid section"),
        (b"BODY[HEADER.FIELDS]", "Expected a single space"),
        (b"BODY[HEADER.FIELDS ()]", "Expected header field name"),
        (b"BODY[HEADER.FIELDS (a:b)]", "Invalid header field name"),
        (b"BODY[TEXT", "Expected ]"),
        (b"BODY[]<0>", "Invalid partial range"),
        (b"BODY[]<0.0>", "Invalid partial range"),
        (b"BODY[]<a.1>", "Invalid partial range"),
        (b"BINARY[TEXT]", "Expected section part number"),
        (b"BINARY[0]", "Invalid section part number"),
        (b"BINARY.SIZE[1]<0.1>", "Unexpected characters after command"),
        (b"FLAGS x", "Expected parameter list"),
        (b"FLAGS (CHANGEDSINCE", "Missing argument"),
    ],
)
def test_fetch_bad(args: bytes, reason: str) -> None:
    assert error(b"t FETCH 1 " + args).text == reason


def test_fetch_modifiers_and_uid() -> None:
    cmd = parse(b"t UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)")
    assert cmd == c.Fetch(
        "t",
        True,
        SequenceSet(((1, None),)),
        (Simple.FLAGS,),
        (("CHANGEDSINCE", 12345), ("VANISHED", None)),
        changed_since=12345,
        vanished=True,
    )
    assert error(b"t FETCH").text == "Missing argument"
    assert error(b"t FETCH 1").text == "Missing argument"
    assert error(b"t FETCH x FLAGS").text == "Expected sequence set"


def test_fetch_nesting_limit() -> None:
    # fetch lists do not nest, but an attribute list inside 17 parens is still bounded
    assert error(b"t FETCH 1 ((FLAGS))").text == "Expected fetch attribute"
