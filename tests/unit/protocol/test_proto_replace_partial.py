"""Syntax of RFC 8508 REPLACE, the RFC 6855 ``UTF8 (literal8)`` APPEND data and the
RFC 9394 PARTIAL search return option and FETCH modifier."""

from __future__ import annotations

import datetime

import pytest
from imap_proto_helpers import assert_split_anywhere_is_the_same, error, feed, parse

from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol import search_keys as k
from carteiro.imap.protocol.fetch_attrs import Simple
from carteiro.imap.protocol.receiver import CommandError, CommandReceived
from carteiro.imap.protocol.sequence_set import SequenceSet

MAX32 = 2**32 - 1
ALL = SequenceSet(((1, None),))
FEB1 = datetime.datetime(2024, 2, 1, 10, 20, 30, tzinfo=datetime.UTC)


def bad(line: bytes, reason: str, *, utf8: bool = False) -> None:
    ev = error(line, utf8=utf8)
    assert (ev.tag, ev.status, ev.text, ev.code) == ("t", "BAD", reason, None)


def msg(
    data: bytes,
    flags: tuple[str, ...] = (),
    date: datetime.datetime | None = None,
    *,
    utf8: bool = False,
) -> c.AppendMessage:
    return c.AppendMessage(flags, date, data, utf8)


# --- RFC 8508 REPLACE ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "target", "mailbox", "message"),
    [
        (b"3 Drafts {5}\r\nhello", 3, "Drafts", msg(b"hello")),
        (b"1 INBOX {0+}\r\n", 1, "INBOX", msg(b"")),
        (b"%d x {2+}\r\nhi" % MAX32, MAX32, "x", msg(b"hi")),
        (
            b'7 "My Drafts" (\\Seen \\draft) {2+}\r\nhi',
            7,
            "My Drafts",
            msg(b"hi", ("\\Seen", "\\Draft")),
        ),
        (b'2 x "01-Feb-2024 10:20:30 +0000" {1}\r\na', 2, "x", msg(b"a", (), FEB1)),
        (b'2 x () " 1-Feb-2024 10:20:30 +0000" ~{3}\r\na\x00b', 2, "x", msg(b"a\x00b", (), FEB1)),
        (b"4 {6+}\r\nDrafts ~{2+}\r\n\xff\x00", 4, "Drafts", msg(b"\xff\x00")),
        (b"5 x UTF8 (~{3}\r\nabc)", 5, "x", msg(b"abc", utf8=True)),
        (
            b"5 x ($Junk) utf8 (~{3+}\r\n\xc3\xa9!)",
            5,
            "x",
            msg(b"\xc3\xa9!", ("$Junk",), utf8=True),
        ),
        (
            b'6 x (\\Flagged) "01-Feb-2024 10:20:30 +0000" UTF8 (~{1}\r\nz)',
            6,
            "x",
            msg(b"z", ("\\Flagged",), FEB1, utf8=True),
        ),
    ],
)
def test_replace(args: bytes, target: int, mailbox: str, message: c.AppendMessage) -> None:
    assert parse(b"t REPLACE " + args) == c.Replace("t", False, target, mailbox, message)
    assert parse(b"t UID REPLACE " + args) == c.Replace("t", True, target, mailbox, message)
    assert parse(b"t replace " + args).name == "REPLACE"
    assert parse(b"t uid Replace " + args) == c.Replace("t", True, target, mailbox, message)


def test_replace_utf8_mailbox() -> None:
    cmd = parse(b"t UID REPLACE 9 \xc3\xa9 {1+}\r\na", utf8=True)
    assert cmd == c.Replace("t", True, 9, "é", msg(b"a"))


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (b"", "Expected message number"),
        (b" 1 x {1+}\r\na", "Expected message number"),
        (b"1", "Missing argument"),
        (b"1 x", "Missing argument"),
        (b"1 x (\\Seen)", "Missing argument"),
        (b"x y {1+}\r\na", "Expected message number"),
        (b"-1 y {1+}\r\na", "Expected message number"),
        (b"0 x {1+}\r\na", "Expected non-zero number"),
        (b"01 x {1+}\r\na", "Expected non-zero number"),
        (b"%d x {1+}\r\na" % (MAX32 + 1), "Number too large"),
        (b"1" * 21 + b" x {1+}\r\na", "Number too large"),
        (b"1:2 x {1+}\r\na", "REPLACE takes a single message number"),
        (b"1,2 x {1+}\r\na", "REPLACE takes a single message number"),
        (b"* x {1+}\r\na", "REPLACE takes a single message number"),
        (b"$ x {1+}\r\na", "REPLACE takes a single message number"),
        (b"1:* x {1+}\r\na", "REPLACE takes a single message number"),
        (b"1x x {1+}\r\na", "Expected a single space"),
        (b"1  x {1+}\r\na", "Expected mailbox name"),
        (b"1 x hello", "Expected message literal"),
        (b"1 x {1+}\r\na {1+}\r\nb", "Unexpected characters after command"),
        (b"1 x {1+}\r\na ", "Unexpected characters after command"),
        (b"1 x (\\Recent) {1+}\r\na", "\\Recent cannot be set by the client"),
        (b'1 x "31-Feb-2024 10:00:00 +0000" {1+}\r\na', "Invalid date-time"),
        (b"1 x UTF8 {1+}\r\na", "Expected ( after UTF8"),
        (b"1 x UTF8 ({1+}\r\na)", "Expected literal8 after UTF8"),
    ],
)
def test_replace_bad(args: bytes, reason: str) -> None:
    bad(b"t REPLACE " + args, reason)
    bad(b"t UID REPLACE " + args, reason)


def test_replace_bare() -> None:
    bad(b"t REPLACE", "Missing argument")
    bad(b"t UID REPLACE", "Missing argument")
    bad(b"t REPLACE 1 x {1+}\r\na) ", "Unexpected characters after command")


def test_replace_needs_continuation_for_sync_literal() -> None:
    events = feed(b"t UID REPLACE 4 Drafts (\\Draft) {3}\r\nabc\r\n")
    assert [type(e).__name__ for e in events] == ["NeedContinuation", "CommandReceived"]
    assert events[-1] == CommandReceived(
        c.Replace("t", True, 4, "Drafts", msg(b"abc", ("\\Draft",)))
    )


# --- RFC 6855 APPEND ... UTF8 (literal8) -----------------------------------------------


@pytest.mark.parametrize(
    ("args", "messages"),
    [
        (b"UTF8 (~{3}\r\nabc)", (msg(b"abc", utf8=True),)),
        (b"utf8 (~{2+}\r\n\xc3\xa9)", (msg(b"\xc3\xa9", utf8=True),)),
        (b"(\\Seen) UTF8 (~{0}\r\n)", (msg(b"", ("\\Seen",), utf8=True),)),
        (
            b'() "01-Feb-2024 10:20:30 +0000" UTF8 (~{1+}\r\n\x00)',
            (msg(b"\x00", (), FEB1, utf8=True),),
        ),
        # MULTIAPPEND, mixing the forms
        (
            b"UTF8 (~{1}\r\na) (\\Seen) {1}\r\nb ~{1}\r\nc (\\Draft) UTF8 (~{1+}\r\nd)",
            (
                msg(b"a", utf8=True),
                msg(b"b", ("\\Seen",)),
                msg(b"c"),
                msg(b"d", ("\\Draft",), utf8=True),
            ),
        ),
    ],
)
def test_append_utf8(args: bytes, messages: tuple[c.AppendMessage, ...]) -> None:
    assert parse(b"t APPEND x " + args) == c.Append("t", "x", messages)
    assert parse(b"t APPEND x " + args, utf8=True) == c.Append("t", "x", messages)


def test_append_without_utf8_is_not_utf8() -> None:
    cmd = parse(b"t APPEND x {1+}\r\na ~{1+}\r\nb")
    assert isinstance(cmd, c.Append) and [m.utf8 for m in cmd.messages] == [False, False]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (b"UTF8", "Missing argument"),
        (b"UTF8 ", "Expected ( after UTF8"),
        (b"UTF8 ~{1+}\r\na", "Expected ( after UTF8"),
        (b"UTF8(~{1+}\r\na)", "Expected message literal"),
        (b"UTF8  (~{1+}\r\na)", "Expected ( after UTF8"),
        (b"UTF8 ({1+}\r\na)", "Expected literal8 after UTF8"),
        (b'UTF8 ("abc")', "Expected literal8 after UTF8"),
        (b"UTF8 ()", "Expected literal8 after UTF8"),
        (b"UTF8 (~{1+}\r\na", "Expected ) after UTF8 literal"),
        (b"UTF8 (~{1+}\r\na ", "Expected ) after UTF8 literal"),
        (b"UTF8 (~{1+}\r\na ~{1+}\r\nb)", "Expected ) after UTF8 literal"),
        (b"UTF8 (\\Seen) {1+}\r\na", "Expected literal8 after UTF8"),
        (b'UTF8 "1-Feb-2024 10:20:30 +0000" {1+}\r\na', "Expected ( after UTF8"),
        (b"UTF-8 (~{1+}\r\na)", "Expected message literal"),
        (b"UTF8X (~{1+}\r\na)", "Expected message literal"),
    ],
)
def test_append_utf8_bad(args: bytes, reason: str) -> None:
    bad(b"t APPEND x " + args, reason)
    bad(b"t REPLACE 1 x " + args, reason)


@pytest.mark.parametrize(
    ("args", "append_reason"),
    [
        (b"UTF8 (~{1+}\r\na))", "Expected a single space"),
        (b"UTF8 (~{1+}\r\na)x", "Expected a single space"),
        (b"UTF8 (~{1+}\r\na) UTF8", "Missing argument"),
        (b'UTF8 (~{1+}\r\na) "1-Feb-2024 10:20:30 +0000"', "Missing argument"),
        (b"UTF8 (~{1+}\r\na) ", "Expected message literal"),
    ],
)
def test_after_utf8_message(args: bytes, append_reason: str) -> None:
    # APPEND may take another message (MULTIAPPEND); REPLACE takes exactly one
    bad(b"t APPEND x " + args, append_reason)
    bad(b"t REPLACE 1 x " + args, "Unexpected characters after command")


# --- RFC 9394 SEARCH RETURN (PARTIAL ...) ----------------------------------------------


def search(args: bytes, *, uid: bool = True) -> c.Search:
    cmd = parse(b"t " + (b"UID " if uid else b"") + b"SEARCH " + args)
    assert isinstance(cmd, c.Search) and cmd.uid == uid
    return cmd


@pytest.mark.parametrize(
    ("options", "returns", "partial"),
    [
        (b"PARTIAL 1:100", ("PARTIAL",), (1, 100)),
        (b"partial 1:1", ("PARTIAL",), (1, 1)),
        (b"PARTIAL 100:1", ("PARTIAL",), (1, 100)),
        (b"PARTIAL -1:-100", ("PARTIAL",), (-1, -100)),
        (b"PARTIAL -100:-1", ("PARTIAL",), (-1, -100)),
        (b"PARTIAL -5:-5", ("PARTIAL",), (-5, -5)),
        (b"PARTIAL 1:%d" % MAX32, ("PARTIAL",), (1, MAX32)),
        (b"PARTIAL -%d:-%d" % (MAX32, MAX32), ("PARTIAL",), (-MAX32, -MAX32)),
        (b"MIN PARTIAL 1:10 MAX", ("MIN", "PARTIAL", "MAX"), (1, 10)),
        (b"COUNT PARTIAL -1:-30", ("COUNT", "PARTIAL"), (-1, -30)),
        (b"PARTIAL 51:100 SAVE", ("PARTIAL", "SAVE"), (51, 100)),
        (
            b"SAVE MIN max Count PARTIAL 5:1",
            ("SAVE", "MIN", "MAX", "COUNT", "PARTIAL"),
            (1, 5),
        ),
        (b"MIN MIN PARTIAL 3:4", ("MIN", "PARTIAL"), (3, 4)),
    ],
)
def test_search_partial(options: bytes, returns: tuple[str, ...], partial: tuple[int, int]) -> None:
    for uid in (True, False):
        cmd = search(b"RETURN (" + options + b") UNDELETED UNKEYWORD $Junk", uid=uid)
        assert (cmd.return_options, cmd.partial) == (returns, partial)
        assert cmd.key == k.And((k.FlagKey("\\Deleted", False), k.FlagKey("$Junk", False)))
    cmd = search(b"RETURN (" + options + b") CHARSET UTF-8 1:* SUBJECT x")
    assert (cmd.charset, cmd.return_options, cmd.partial) == ("UTF-8", returns, partial)


def test_search_without_partial() -> None:
    assert search(b"RETURN (MIN) ALL").partial is None
    assert search(b"RETURN () ALL").partial is None
    assert search(b"ALL").partial is None
    # PARTIAL is a search key nowhere: only a return option
    bad(b"t SEARCH PARTIAL 1:10", "Unknown search key")


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (b"PARTIAL) ALL", "Missing PARTIAL value"),
        (b"PARTIAL ) ALL", "Invalid PARTIAL range"),
        (b"MIN PARTIAL) ALL", "Missing PARTIAL value"),
        (b"PARTIAL  1:5) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL 5) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL 1:) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL :5) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL 1:*) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL *:1) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL $) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL 1:5,7:9) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL 1:5:7) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL 1:5x) ALL", "Invalid PARTIAL range"),
        (b'PARTIAL "1:5"', "Invalid PARTIAL range"),
        (b"PARTIAL (1:5)) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL 0:5) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL 1:0) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL 01:5) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL -0:-5) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL --1:-5) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL +1:+5) ALL", "Invalid PARTIAL range"),
        (b"PARTIAL -1:5) ALL", "PARTIAL range mixes signs"),
        (b"PARTIAL 1:-5) ALL", "PARTIAL range mixes signs"),
        (b"PARTIAL 1:%d) ALL" % (MAX32 + 1), "Number too large"),
        (b"PARTIAL -%d:-1) ALL" % (MAX32 + 1), "Number too large"),
        (b"PARTIAL 1:" + b"9" * 21, "Number too large"),
        (b"PARTIAL 1:5 PARTIAL 6:9) ALL", "Duplicate PARTIAL"),
        (b"PARTIAL 1:5 ALL) ALL", "PARTIAL and ALL are mutually exclusive"),
        (b"ALL PARTIAL -1:-5) ALL", "PARTIAL and ALL are mutually exclusive"),
        (b"PARTIAL 1:5 BOGUS) ALL", "Unknown search return option"),
        (b"PARTIAL 1:5", "Missing argument"),
    ],
)
def test_search_partial_bad(options: bytes, reason: str) -> None:
    bad(b"t UID SEARCH RETURN (" + options, reason)
    bad(b"t SEARCH RETURN (" + options, reason)


# --- RFC 9394 FETCH modifier (PARTIAL ...) ---------------------------------------------


@pytest.mark.parametrize(
    ("line", "partial", "changed_since", "vanished"),
    [
        (b"t UID FETCH 1:* (FLAGS) (PARTIAL 1:500)", (1, 500), None, False),
        (b"t UID FETCH 1:* (FLAGS) (partial -1:-30)", (-1, -30), None, False),
        (b"t UID FETCH 1:* FLAGS (PARTIAL -30:-1)", (-1, -30), None, False),
        (b"t FETCH 1:* FLAGS (PARTIAL 10:1)", (1, 10), None, False),
        (b"t UID FETCH 1:* (FLAGS) (PARTIAL -1:-30 CHANGEDSINCE 5)", (-1, -30), 5, False),
        (b"t UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5 PARTIAL 1:%d)" % MAX32, (1, MAX32), 5, False),
        (b"t UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5 VANISHED PARTIAL 3:4)", (3, 4), 5, True),
        (b"t UID FETCH 1:* PREVIEW (PARTIAL 1:5)", (1, 5), None, False),
    ],
)
def test_fetch_partial(
    line: bytes, partial: tuple[int, int], changed_since: int | None, vanished: bool
) -> None:
    cmd = parse(line)
    assert isinstance(cmd, c.Fetch) and cmd.seqs == ALL
    assert (cmd.partial, cmd.changed_since, cmd.vanished) == (partial, changed_since, vanished)
    assert ("PARTIAL", partial) in cmd.modifiers


def test_fetch_without_partial() -> None:
    cmd = parse(b"t UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5)")
    assert isinstance(cmd, c.Fetch) and cmd.partial is None
    assert parse(b"t UID FETCH 1 FLAGS (PARTIAL 1:2)") == c.Fetch(
        "t", True, SequenceSet(((1, 1),)), (Simple.FLAGS,), (("PARTIAL", (1, 2)),), partial=(1, 2)
    )


@pytest.mark.parametrize(
    ("mods", "reason"),
    [
        (b"(PARTIAL)", "Missing PARTIAL value"),
        (b"(PARTIAL CHANGEDSINCE 5)", "Invalid PARTIAL range"),
        (b"(PARTIAL", "Missing PARTIAL value"),
        (b"(PARTIAL )", "Missing PARTIAL value"),
        (b"(PARTIAL  1:5)", "Missing PARTIAL value"),
        (b"(PARTIAL 1:5", "Missing argument"),
        (b"(PARTIAL 5)", "Invalid PARTIAL range"),
        (b"(PARTIAL 1:*)", "Invalid PARTIAL range"),
        (b"(PARTIAL $)", "Invalid PARTIAL range"),
        (b"(PARTIAL 1:5,9)", "Invalid PARTIAL range"),
        (b"(PARTIAL (1:5))", "Invalid PARTIAL range"),
        (b"(PARTIAL 0:5)", "Invalid PARTIAL range"),
        (b"(PARTIAL -1:5)", "PARTIAL range mixes signs"),
        (b"(PARTIAL -1:-%d)" % (MAX32 + 1), "Number too large"),
        (b"(PARTIAL 1:2 PARTIAL 3:4)", "Duplicate FETCH modifier"),
        (b"(PARTIAL 1:2 FOO)", "Unknown FETCH modifier"),
        (b"(CHANGEDSINCE -1 PARTIAL 1:2)", "Invalid CHANGEDSINCE mod-sequence"),
    ],
)
def test_fetch_partial_bad(mods: bytes, reason: str) -> None:
    bad(b"t UID FETCH 1:* (FLAGS) " + mods, reason)
    bad(b"t FETCH 1 FLAGS " + mods, reason)


# --- split invariance ------------------------------------------------------------------

SCRIPT = (
    b"a1 UID REPLACE 4 Drafts (\\Draft) {5}\r\nhello\r\n"
    b"a2 REPLACE 2 {6}\r\nDrafts UTF8 (~{3}\r\n\xc3\xa9!)\r\n"
    b"a3 APPEND x (\\Seen) UTF8 (~{1}\r\na) {1+}\r\nb\n"
    b"a4 UID SEARCH RETURN (MIN PARTIAL -1:-100 COUNT) UNDELETED UNKEYWORD $Junk\r\n"
    b"a5 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 9 PARTIAL 1:500)\r\n"
    b"b1 REPLACE 1:3 x {1+}\r\na\r\n"
    b"b2 SEARCH RETURN (PARTIAL 1:-5) ALL\r\n"
    b"b3 APPEND x UTF8 ({1+}\r\na)\r\n"
    b"b4 UID FETCH 1 FLAGS (PARTIAL 1:2 PARTIAL 3:4)\r\n"
    b"b5 NOOP\r\n"
)


def test_script_events() -> None:
    events = [e for e in feed(SCRIPT) if type(e).__name__ != "NeedContinuation"]
    received = [e.command for e in events if isinstance(e, CommandReceived)]
    assert received == [
        c.Replace("a1", True, 4, "Drafts", msg(b"hello", ("\\Draft",))),
        c.Replace("a2", False, 2, "Drafts", msg(b"\xc3\xa9!", utf8=True)),
        c.Append("a3", "x", (msg(b"a", ("\\Seen",), utf8=True), msg(b"b"))),
        c.Search(
            "a4",
            True,
            None,
            k.And((k.FlagKey("\\Deleted", False), k.FlagKey("$Junk", False))),
            ("MIN", "PARTIAL", "COUNT"),
            (-1, -100),
        ),
        c.Fetch(
            "a5",
            True,
            ALL,
            (Simple.FLAGS,),
            (("CHANGEDSINCE", 9), ("PARTIAL", (1, 500))),
            changed_since=9,
            partial=(1, 500),
        ),
        c.Noop("b5"),
    ]
    errors = [(e.tag, e.text) for e in events if isinstance(e, CommandError)]
    assert errors == [
        ("b1", "REPLACE takes a single message number"),
        ("b2", "PARTIAL range mixes signs"),
        ("b3", "Expected literal8 after UTF8"),
        ("b4", "Duplicate FETCH modifier"),
    ]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 16])
def test_split_input_gives_identical_events(step: int) -> None:
    assert feed(SCRIPT, step=step) == feed(SCRIPT)


def test_split_at_every_point() -> None:
    assert_split_anywhere_is_the_same(SCRIPT)
