"""Syntax of smaller extensions: RFC 5032 WITHIN, RFC 8514 SAVEDATE, RFC 8474 OBJECTID,
RFC 8970 PREVIEW, RFC 8437 UNAUTHENTICATE, RFC 4978 COMPRESS, RFC 9208 QUOTA and the
STATUS items MAILBOXID, APPENDLIMIT (RFC 7889) and DELETED-STORAGE."""

from __future__ import annotations

import datetime

import pytest
from imap_proto_helpers import assert_split_anywhere_is_the_same, error, feed, parse

from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol import search_keys as k
from carteiro.imap.protocol.fetch_attrs import BodySection, Section, Simple
from carteiro.imap.protocol.receiver import CommandError, CommandReceived
from carteiro.imap.protocol.sequence_set import SequenceSet

MAX32 = 2**32 - 1
MAX63 = 2**63 - 1
FEB1 = datetime.date(2024, 2, 1)
ALL = SequenceSet(((1, None),))


def key(args: bytes, *, uid: bool = False, utf8: bool = False) -> k.SearchKey:
    cmd = parse(b"t " + (b"UID " if uid else b"") + b"SEARCH " + args, utf8=utf8)
    assert isinstance(cmd, c.Search) and cmd.uid == uid
    return cmd.key


def bad(line: bytes, reason: str, *, utf8: bool = False) -> None:
    ev = error(line, utf8=utf8)
    assert (ev.tag, ev.status, ev.text, ev.code) == ("t", "BAD", reason, None)


# --- SEARCH: RFC 5032 OLDER / YOUNGER, RFC 8514 SAVED*, RFC 8474 EMAILID / THREADID ----


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (b"OLDER 1", k.WithinKey(True, 1)),
        (b"older 3600", k.WithinKey(True, 3600)),
        (b"YOUNGER 86400", k.WithinKey(False, 86400)),
        (b"younger %d" % MAX32, k.WithinKey(False, MAX32)),
        (b"NOT OLDER 5", k.Not(k.WithinKey(True, 5))),
        (b"OR OLDER 5 YOUNGER 2", k.Or(k.WithinKey(True, 5), k.WithinKey(False, 2))),
        (b"(YOUNGER 10 SEEN)", k.And((k.WithinKey(False, 10), k.FlagKey("\\Seen", True)))),
        (b"SAVEDBEFORE 1-Feb-2024", k.SaveDateKey("BEFORE", FEB1)),
        (b'savedon "1-feb-2024"', k.SaveDateKey("ON", FEB1)),
        (b"SAVEDSINCE 01-FEB-2024", k.SaveDateKey("SINCE", FEB1)),
        (b"SAVEDATESUPPORTED", k.SaveDateKey(None)),
        (b"savedatesupported", k.SaveDateKey(None, None)),
        (
            b"OR SAVEDATESUPPORTED SAVEDON 1-Feb-2024",
            k.Or(k.SaveDateKey(None), k.SaveDateKey("ON", FEB1)),
        ),
        (
            b"SAVEDSINCE 1-Feb-2024 SINCE 1-Feb-2024",
            k.And((k.SaveDateKey("SINCE", FEB1), k.DateKey("SINCE", False, FEB1))),
        ),
        (b"EMAILID M6d99ac3275bb4e", k.ObjectIdKey("EMAILID", "M6d99ac3275bb4e")),
        (b"threadid T64b478a75b7ea9", k.ObjectIdKey("THREADID", "T64b478a75b7ea9")),
        (b"EMAILID a_b-C9", k.ObjectIdKey("EMAILID", "a_b-C9")),
        (b"EMAILID " + b"x" * 255, k.ObjectIdKey("EMAILID", "x" * 255)),
        (b'EMAILID "Mabc"', k.ObjectIdKey("EMAILID", "Mabc")),
        (b"THREADID {4+}\r\nTabc", k.ObjectIdKey("THREADID", "Tabc")),
        (b"(EMAILID Mabc)", k.ObjectIdKey("EMAILID", "Mabc")),
        (
            b"NOT THREADID T1 EMAILID M1",
            k.And((k.Not(k.ObjectIdKey("THREADID", "T1")), k.ObjectIdKey("EMAILID", "M1"))),
        ),
        (
            b"1:* OLDER 60 SAVEDATESUPPORTED THREADID T1",
            k.And(
                (
                    k.SeqKey(ALL, uid=False),
                    k.WithinKey(True, 60),
                    k.SaveDateKey(None),
                    k.ObjectIdKey("THREADID", "T1"),
                )
            ),
        ),
    ],
)
def test_search_extension_keys(args: bytes, expected: k.SearchKey) -> None:
    assert key(args) == expected
    assert key(args, uid=True) == expected
    assert key(b"RETURN (MIN) CHARSET UTF-8 " + args, utf8=True) == expected


def test_object_id_is_case_sensitive() -> None:
    assert key(b"EMAILID MaBc") == k.ObjectIdKey("EMAILID", "MaBc")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (b"OLDER", "Missing argument"),
        (b"OLDER 0", "Expected non-zero number"),
        (b"OLDER 007", "Expected non-zero number"),
        (b"YOUNGER -1", "Expected number"),
        (b"YOUNGER x", "Expected number"),
        (b"YOUNGER %d" % (MAX32 + 1), "Number too large"),
        (b'YOUNGER "5"', "Expected number"),
        (b"OLDER  5", "Expected number"),
        (b"OLDER 5x", "Expected a single space"),
        (b"NOT YOUNGER", "Missing argument"),
        (b"SAVEDBEFORE", "Missing argument"),
        (b"SAVEDON 31-Feb-2024", "Invalid date"),
        (b"SAVEDSINCE 1-Foo-2024", "Invalid date"),
        (b'SAVEDSINCE "1-Feb-2024', "Invalid date"),
        (b"SAVEDSINCE 2024-02-01", "Invalid date"),
        (b"SAVEDATESUPPORTED 1-Feb-2024", "Expected a single space"),
        (b"SAVEDATE 1-Feb-2024", "Unknown search key"),
        (b"SAVEDATESUPPORTEDX", "Unknown search key"),
        (b"EMAILID", "Missing argument"),
        (b"EMAILID a.b", "Invalid object id"),
        (b"EMAILID a]", "Invalid object id"),
        (b'EMAILID ""', "Invalid object id"),
        (b'EMAILID "a b"', "Invalid object id"),
        (b"EMAILID " + b"x" * 256, "Invalid object id"),
        (b"THREADID {3+}\r\na+b", "Invalid object id"),
        (b"THREADID (T1)", "Expected object id"),
        (b"THREADID *", "Expected object id"),
        (b"OR EMAILID M1", "Missing argument"),
        (b"(THREADID T1", "Missing argument"),
    ],
)
def test_search_extension_keys_bad(args: bytes, reason: str) -> None:
    bad(b"t SEARCH " + args, reason)
    bad(b"t UID SEARCH " + args, reason)


def test_object_id_8bit() -> None:
    bad(b't SEARCH EMAILID "\xc3\xa9"', "Invalid object id", utf8=True)
    bad(b"t SEARCH EMAILID \xc3\xa9", "Invalid object id", utf8=True)
    bad(b"t SEARCH EMAILID \xc3\xa9", "Expected object id")


# --- FETCH: SAVEDATE, EMAILID, THREADID, PREVIEW -----------------------------------------


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (b"SAVEDATE", (Simple.SAVEDATE,)),
        (b"emailid", (Simple.EMAILID,)),
        (b"ThreadId", (Simple.THREADID,)),
        (b"(EMAILID THREADID SAVEDATE)", (Simple.EMAILID, Simple.THREADID, Simple.SAVEDATE)),
        (b"PREVIEW", (Simple.PREVIEW,)),
        (b"preview (lazy)", (Simple.PREVIEW,)),
        (b"PREVIEW (LAZY LAZY)", (Simple.PREVIEW,)),
        (b"(PREVIEW)", (Simple.PREVIEW,)),
        (b"(PREVIEW (LAZY))", (Simple.PREVIEW,)),
        (b"(FLAGS PREVIEW (LAZY) UID)", (Simple.FLAGS, Simple.PREVIEW, Simple.UID)),
        (b"(PREVIEW (LAZY) PREVIEW)", (Simple.PREVIEW,)),
        (
            b"(PREVIEW BODY.PEEK[HEADER] EMAILID)",
            (Simple.PREVIEW, BodySection(Section(text="HEADER"), peek=True), Simple.EMAILID),
        ),
    ],
)
def test_fetch_extension_attrs(attrs: bytes, expected: tuple[Simple, ...]) -> None:
    for prefix in (b"t FETCH 1:* ", b"t UID FETCH 1:* "):
        cmd = parse(prefix + attrs)
        assert isinstance(cmd, c.Fetch)
        assert (cmd.seqs, cmd.attrs, cmd.modifiers) == (ALL, expected, ())


def test_fetch_preview_and_fetch_modifiers() -> None:
    # a lone PREVIEW followed by a list that does not start with LAZY: FETCH modifiers
    cmd = parse(b"t UID FETCH 1 PREVIEW (CHANGEDSINCE 5 VANISHED)")
    assert isinstance(cmd, c.Fetch)
    assert (cmd.attrs, cmd.changed_since, cmd.vanished) == ((Simple.PREVIEW,), 5, True)
    cmd = parse(b"t FETCH 1 PREVIEW (LAZY) (CHANGEDSINCE 7)")
    assert isinstance(cmd, c.Fetch)
    assert (cmd.attrs, cmd.changed_since) == ((Simple.PREVIEW,), 7)
    cmd = parse(b"t FETCH 1 (PREVIEW (LAZY) EMAILID) (CHANGEDSINCE 7)")
    assert isinstance(cmd, c.Fetch)
    assert (cmd.attrs, cmd.changed_since) == ((Simple.PREVIEW, Simple.EMAILID), 7)


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        (b"(PREVIEW (FOO))", "Unknown PREVIEW modifier"),
        (b"(PREVIEW (LAZY FOO))", "Unknown PREVIEW modifier"),
        (b"PREVIEW (LAZY FOO)", "Unknown PREVIEW modifier"),
        (b"(PREVIEW (CHANGEDSINCE 5))", "Unknown PREVIEW modifier"),
        (b"PREVIEW (FOO)", "Unknown FETCH modifier"),
        (b"(PREVIEW ())", "Expected PREVIEW modifier"),
        (b"(PREVIEW (LAZY)", "Missing argument"),
        (b"PREVIEW (LAZY", "Missing argument"),
        (b"(PREVIEW (LAZY  FUZZY))", "Expected PREVIEW modifier"),
        (b"(PREVIEW(LAZY))", "Expected a single space"),
        (b"(PREVIEW (LAZY)(FLAGS))", "Expected a single space"),
        (b"(PREVIEW LAZY)", "Unknown fetch attribute"),
        (b"PREVIEW[]", "Unknown fetch attribute"),
        (b"SAVEDATE[]", "Unknown fetch attribute"),
        (b"(EMAILID (LAZY))", "Expected fetch attribute"),
        (b"EMAILID<0.1>", "Unknown fetch attribute"),
        (b"MAILBOXID", "Unknown fetch attribute"),
        (b"SNIPPET", "Unknown fetch attribute"),
    ],
)
def test_fetch_extension_attrs_bad(attrs: bytes, reason: str) -> None:
    bad(b"t FETCH 1 " + attrs, reason)
    bad(b"t UID FETCH 1 " + attrs, reason)


# --- STATUS MAILBOXID, APPENDLIMIT, DELETED-STORAGE --------------------------------------


def test_status_new_items() -> None:
    assert parse(b"t STATUS INBOX (MAILBOXID appendlimit Deleted-Storage)") == c.Status(
        "t", "INBOX", ("MAILBOXID", "APPENDLIMIT", "DELETED-STORAGE")
    )
    assert parse(b"t STATUS x (MESSAGES MAILBOXID MESSAGES)") == c.Status(
        "t", "x", ("MESSAGES", "MAILBOXID")
    )
    cmd = parse(b'T LIST "" % RETURN (STATUS (MAILBOXID DELETED-STORAGE APPENDLIMIT))')
    assert isinstance(cmd, c.List)
    assert cmd.status_items == ("MAILBOXID", "DELETED-STORAGE", "APPENDLIMIT")
    bad(b"t STATUS INBOX (EMAILID)", "Unknown status item")
    bad(b"t STATUS INBOX (DELETED-STORAGEX)", "Unknown status item")
    bad(b"t STATUS INBOX (MAILBOXID 1)", "Unknown status item")


# --- UNAUTHENTICATE, COMPRESS --------------------------------------------------------


def test_unauthenticate() -> None:
    assert parse(b"t UNAUTHENTICATE") == c.Unauthenticate("t")
    assert parse(b"t unauthenticate") == c.Unauthenticate("t")
    assert parse(b"t UNAUTHENTICATE").name == "UNAUTHENTICATE"
    bad(b"t UNAUTHENTICATE x", "Unexpected characters after command")
    bad(b"t UNAUTHENTICATE ", "Unexpected characters after command")
    bad(b"t UID UNAUTHENTICATE", "Unknown UID command")


@pytest.mark.parametrize(
    ("line", "mechanism"),
    [
        (b"t COMPRESS DEFLATE", "DEFLATE"),
        (b"t compress deflate", "DEFLATE"),
        (b"t COMPRESS Deflate", "DEFLATE"),
        (b"t COMPRESS X-ZSTD.1", "X-ZSTD.1"),
    ],
)
def test_compress(line: bytes, mechanism: str) -> None:
    assert parse(line) == c.Compress("t", mechanism)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"t COMPRESS", "Missing argument"),
        (b"t COMPRESS ", "Expected compression mechanism"),
        (b't COMPRESS "DEFLATE"', "Expected compression mechanism"),
        (b"t COMPRESS {7+}\r\nDEFLATE", "Expected compression mechanism"),
        (b"t COMPRESS (DEFLATE)", "Expected compression mechanism"),
        (b"t COMPRESS DEFLATE DEFLATE", "Unexpected characters after command"),
        (b"t COMPRESS  DEFLATE", "Expected compression mechanism"),
    ],
)
def test_compress_bad(line: bytes, reason: str) -> None:
    bad(line, reason)


# --- RFC 9208 QUOTA ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'T GETQUOTA ""', c.GetQuota("T", "")),
        (b"t getquota INBOX", c.GetQuota("t", "INBOX")),
        (b"t GETQUOTA {5+}\r\nuser1", c.GetQuota("t", "user1")),
        (b'T GETQUOTAROOT "INBOX"', c.GetQuotaRoot("T", "INBOX")),
        (b"t getquotaroot Work/Projects", c.GetQuotaRoot("t", "Work/Projects")),
        (b"t GETQUOTAROOT {3+}\r\na b", c.GetQuotaRoot("t", "a b")),
        (b'T SETQUOTA "" (STORAGE 512)', c.SetQuota("T", "", (("STORAGE", 512),))),
        (
            b"t setquota user1 (storage 0 Message 100 MAILBOX 3 ANNOTATION-STORAGE %d)" % MAX63,
            c.SetQuota(
                "t",
                "user1",
                (("STORAGE", 0), ("MESSAGE", 100), ("MAILBOX", 3), ("ANNOTATION-STORAGE", MAX63)),
            ),
        ),
        (b"t SETQUOTA x (X-FOO 007)", c.SetQuota("t", "x", (("X-FOO", 7),))),
        (b"t SETQUOTA x ()", c.SetQuota("t", "x", ())),
        (b"t SETQUOTA {1+}\r\nx ()", c.SetQuota("t", "x", ())),
    ],
)
def test_quota_commands(line: bytes, expected: c.Command) -> None:
    assert parse(line) == expected


def test_quota_root_utf8() -> None:
    assert parse(b't GETQUOTA "\xc3\xa9"', utf8=True) == c.GetQuota("t", "é")
    assert parse(b"t GETQUOTAROOT \xc3\xa9", utf8=True) == c.GetQuotaRoot("t", "é")
    bad(b't GETQUOTA "\xc3\xa9"', "8-bit characters not allowed in quoted string")
    bad(b"t GETQUOTA {2+}\r\n\xff\xfe", "Invalid UTF-8 in quota root")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"t GETQUOTA", "Missing argument"),
        (b"t GETQUOTA a b", "Unexpected characters after command"),
        (b"t GETQUOTA (a)", "Expected quota root"),
        (b"t GETQUOTAROOT", "Missing argument"),
        (b"t GETQUOTAROOT a b", "Unexpected characters after command"),
        (b"t SETQUOTA", "Missing argument"),
        (b"t SETQUOTA x", "Missing argument"),
        (b"t SETQUOTA x STORAGE 5", "Expected quota resource list"),
        (b"t SETQUOTA x (STORAGE)", "Expected a single space"),
        (b"t SETQUOTA x (STORAGE 5", "Missing argument"),
        (b"t SETQUOTA x (STORAGE x)", "Expected number"),
        (b"t SETQUOTA x (STORAGE -1)", "Expected number"),
        (b"t SETQUOTA x (STORAGE %d)" % (MAX63 + 1), "Number too large"),
        (b"t SETQUOTA x (STORAGE " + b"1" * 21 + b")", "Number too large"),
        # resource-name-ext is any atom, so "5" is a resource name
        (b"t SETQUOTA x (5 STORAGE)", "Expected number"),
        (b"""t SETQUOTA x ("STORAGE" 5)""", "Expected quota resource name"),
        (b"t SETQUOTA x (STORAGE 1 storage 2)", "Duplicate quota resource"),
        (b"t SETQUOTA x (STORAGE 1  MESSAGE 2)", "Expected quota resource name"),
        (b"t SETQUOTA x (STORAGE 1)(MESSAGE 2)", "Unexpected characters after command"),
        (b"t SETQUOTA x ( )", "Expected quota resource name"),
        (b"t SETQUOTA x ((STORAGE 1))", "Expected quota resource name"),
        (b"t UID GETQUOTA x", "Unknown UID command"),
    ],
)
def test_quota_commands_bad(line: bytes, reason: str) -> None:
    bad(line, reason)


# --- split invariance ------------------------------------------------------------------

SCRIPT = (
    b"a1 COMPRESS DEFLATE\r\n"
    b"a2 UID SEARCH OR OLDER 60 YOUNGER 0 SAVEDATESUPPORTED\r\n"
    b"a3 SEARCH SAVEDSINCE 1-Feb-2024 EMAILID {4}\r\nMabc THREADID T-1_x\r\n"
    b"a4 UID FETCH 1:* (FLAGS PREVIEW (LAZY) EMAILID THREADID SAVEDATE)\r\n"
    b"a5 FETCH 1 (PREVIEW (FUZZY))\n"
    b"a6 STATUS {5}\r\nINBOX (MAILBOXID APPENDLIMIT DELETED-STORAGE)\r\n"
    b'a7 SETQUOTA "" (STORAGE 512 MESSAGE 1000)\r\n'
    b"a8 GETQUOTAROOT {5}\r\nINBOX\r\n"
    b"a9 GETQUOTA user1\r\n"
    b"b1 SETQUOTA x (STORAGE 1 STORAGE 2)\r\n"
    b"b2 UNAUTHENTICATE\r\n"
    b"b3 SEARCH EMAILID a.b\r\n"
    b"b4 NOOP\r\n"
)


def test_script_events() -> None:
    events = [e for e in feed(SCRIPT) if type(e).__name__ != "NeedContinuation"]
    assert [type(e).__name__ for e in events] == [
        "CommandReceived",
        "CommandError",
        "CommandReceived",
        "CommandReceived",
        "CommandError",
        "CommandReceived",
        "CommandReceived",
        "CommandReceived",
        "CommandReceived",
        "CommandError",
        "CommandReceived",
        "CommandError",
        "CommandReceived",
    ]
    received = [e.command for e in events if isinstance(e, CommandReceived)]
    assert received == [
        c.Compress("a1", "DEFLATE"),
        c.Search(
            "a3",
            False,
            None,
            k.And(
                (
                    k.SaveDateKey("SINCE", FEB1),
                    k.ObjectIdKey("EMAILID", "Mabc"),
                    k.ObjectIdKey("THREADID", "T-1_x"),
                )
            ),
        ),
        c.Fetch(
            "a4",
            True,
            ALL,
            (Simple.FLAGS, Simple.PREVIEW, Simple.EMAILID, Simple.THREADID, Simple.SAVEDATE),
        ),
        c.Status("a6", "INBOX", ("MAILBOXID", "APPENDLIMIT", "DELETED-STORAGE")),
        c.SetQuota("a7", "", (("STORAGE", 512), ("MESSAGE", 1000))),
        c.GetQuotaRoot("a8", "INBOX"),
        c.GetQuota("a9", "user1"),
        c.Unauthenticate("b2"),
        c.Noop("b4"),
    ]
    errors = [e for e in events if isinstance(e, CommandError)]
    assert [(e.tag, e.text) for e in errors] == [
        ("a2", "Expected non-zero number"),
        ("a5", "Unknown PREVIEW modifier"),
        ("b1", "Duplicate quota resource"),
        ("b3", "Invalid object id"),
    ]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 16])
def test_split_input_gives_identical_events(step: int) -> None:
    assert feed(SCRIPT, step=step) == feed(SCRIPT)


def test_split_at_every_point() -> None:
    assert_split_anywhere_is_the_same(SCRIPT)


# --- NOTIFY (RFC 5465 §8) -----------------------------------------------------------


def test_notify_none_and_set() -> None:
    assert parse(b"t NOTIFY NONE") == c.Notify("t", None)
    cmd = parse(
        b"t notify set status (selected (MessageNew (uid body.peek[header.fields (from to)])"
        b" messageexpunge)) (subtree (Lists {4}\r\nWork) (MessageNew MessageExpunge))"
        b' (mailboxes "a b" NONE) (personal (MailboxName SubscriptionChange)) (inboxes (x-ext))'
    )
    assert isinstance(cmd, c.Notify) and cmd.status
    assert cmd.groups is not None
    sel, sub, boxes, personal, inboxes = cmd.groups
    assert sel.filter == "SELECTED" and sel.events == ("MessageNew", "MessageExpunge")
    assert sel.fetch_attrs == (
        Simple.UID,
        BodySection(Section((), "HEADER.FIELDS", ("FROM", "TO")), peek=True),
    )
    assert (sub.filter, sub.mailboxes) == ("SUBTREE", ("Lists", "Work"))
    assert (boxes.mailboxes, boxes.events) == (("a b",), ())
    assert personal.events == ("MailboxName", "SubscriptionChange")
    # unknown events parse (event-ext): the handler answers NO [BADEVENT]
    assert inboxes.events == ("X-EXT",)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (b"", "Missing argument"),
        (b" FROB", "Expected SET or NONE"),
        (b" SET", "Missing argument"),
        (b" SET (everything (MessageNew MessageExpunge))", "Unknown NOTIFY mailbox filter"),
        (b" SET (personal (MessageNew))", "MessageNew and MessageExpunge must be given together"),
        (
            b" SET (personal (MessageExpunge))",
            "MessageNew and MessageExpunge must be given together",
        ),
        (b" SET (personal (FlagChange))", "FlagChange needs MessageNew and MessageExpunge"),
        (b" SET (selected (MailboxName))", "Only message events are allowed for SELECTED"),
        (
            b" SET (personal (MessageNew (UID) MessageExpunge))",
            "Fetch attributes are only allowed for SELECTED",
        ),
        (
            b" SET (selected NONE) (selected-delayed NONE)",
            "Only one of SELECTED and SELECTED-DELAYED may be given",
        ),
        (b" SET (personal (MailboxName MailboxName))", "MailboxName given twice"),
        (b" SET (subtree (MessageNew MessageExpunge))", "Expected a single space"),
    ],
)
def test_notify_bad(args: bytes, reason: str) -> None:
    ev = error(b"t NOTIFY" + args)
    assert (ev.status, ev.text) == ("BAD", reason)
