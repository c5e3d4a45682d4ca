"""RFC 7162 CONDSTORE / QRESYNC syntax: FETCH MODSEQ and modifiers, STORE
UNCHANGEDSINCE, SELECT/EXAMINE parameters, SEARCH MODSEQ, STATUS HIGHESTMODSEQ."""

from __future__ import annotations

import pytest
from imap_proto_helpers import assert_split_anywhere_is_the_same, error, feed, parse

from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol import search_keys as k
from carteiro.imap.protocol.fetch_attrs import Simple
from carteiro.imap.protocol.receiver import CommandError, CommandReceived
from carteiro.imap.protocol.sequence_set import SequenceSet

MAX63 = 2**63 - 1


def seqs(*ranges: tuple[int | None, int | None]) -> SequenceSet:
    return SequenceSet(tuple(ranges))


def one(n: int) -> SequenceSet:
    return seqs((n, n))


# --- FETCH MODSEQ and CHANGEDSINCE / VANISHED -----------------------------------------


def test_fetch_modseq_attribute() -> None:
    for line in (b"t FETCH 1 MODSEQ", b"t FETCH 1 modseq", b"t FETCH 1 (MODSEQ)"):
        cmd = parse(line)
        assert isinstance(cmd, c.Fetch) and cmd.attrs == (Simple.MODSEQ,)
    cmd = parse(b"t UID FETCH 1:* (FLAGS MODSEQ UID modseq)")
    assert isinstance(cmd, c.Fetch)
    assert cmd.attrs == (Simple.FLAGS, Simple.MODSEQ, Simple.UID)
    assert (cmd.changed_since, cmd.vanished, cmd.modifiers) == (None, False, ())


@pytest.mark.parametrize(
    ("line", "changed_since", "vanished", "modifiers"),
    [
        (b"t FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)", 12345, False, (("CHANGEDSINCE", 12345),)),
        (b"t FETCH 1 FLAGS (changedsince 1)", 1, False, (("CHANGEDSINCE", 1),)),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE 007)", 7, False, (("CHANGEDSINCE", 7),)),
        (b"t FETCH 1 ALL (CHANGEDSINCE %d)" % MAX63, MAX63, False, (("CHANGEDSINCE", MAX63),)),
        (b"t UID FETCH 1 FLAGS (CHANGEDSINCE 5)", 5, False, (("CHANGEDSINCE", 5),)),
        (
            b"t UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
            12345,
            True,
            (("CHANGEDSINCE", 12345), ("VANISHED", None)),
        ),
        (
            b"t uid fetch 1 FLAGS (vanished changedsince 9)",
            9,
            True,
            (("VANISHED", None), ("CHANGEDSINCE", 9)),
        ),
    ],
)
def test_fetch_changedsince_vanished(
    line: bytes, changed_since: int, vanished: bool, modifiers: tuple[tuple[str, object], ...]
) -> None:
    cmd = parse(line)
    assert isinstance(cmd, c.Fetch)
    assert (cmd.changed_since, cmd.vanished, cmd.modifiers) == (changed_since, vanished, modifiers)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"t FETCH 1 FLAGS (CHANGEDSINCE 0)", "Invalid CHANGEDSINCE mod-sequence"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE 000)", "Invalid CHANGEDSINCE mod-sequence"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE %d)" % (MAX63 + 1), "Number too large"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE " + b"9" * 21 + b")", "Number too large"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE)", "Invalid CHANGEDSINCE mod-sequence"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE 1:5)", "Invalid CHANGEDSINCE mod-sequence"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE *)", "Invalid CHANGEDSINCE mod-sequence"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE $)", "Invalid CHANGEDSINCE mod-sequence"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE (5))", "Invalid CHANGEDSINCE mod-sequence"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE -1)", "Invalid CHANGEDSINCE mod-sequence"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)", "Duplicate FETCH modifier"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)", "VANISHED is only allowed in UID FETCH"),
        (b"t FETCH 1 FLAGS (VANISHED)", "VANISHED is only allowed in UID FETCH"),
        (b"t UID FETCH 1 FLAGS (VANISHED)", "VANISHED requires CHANGEDSINCE"),
        (b"t UID FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED 2)", "VANISHED takes no value"),
        (b"t UID FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED VANISHED)", "Duplicate FETCH modifier"),
        (b"t FETCH 1 FLAGS (FOO)", "Unknown FETCH modifier"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE 1 FOO 2)", "Unknown FETCH modifier"),
        (b"t FETCH 1 FLAGS ()", "Expected parameter name"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE 1", "Missing argument"),
        (b"t FETCH 1 FLAGS (CHANGEDSINCE 1) ", "Unexpected characters after command"),
        (b"t FETCH 1 FLAGS  (CHANGEDSINCE 1)", "Expected parameter list"),
        (b"t FETCH 1 FLAGS CHANGEDSINCE 1", "Expected parameter list"),
        (b"t FETCH 1 MODSEQ[]", "Unknown fetch attribute"),
        (b"t FETCH 1 (MODSEQ 5)", "Unknown fetch attribute"),
    ],
)
def test_fetch_condstore_bad(line: bytes, reason: str) -> None:
    ev = error(line)
    assert (ev.tag, ev.status, ev.text) == ("t", "BAD", reason)


# --- STORE UNCHANGEDSINCE --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            b"t STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\\Seen)",
            c.Store("t", False, one(1), "+", False, ("\\Seen",), (("UNCHANGEDSINCE", 5),), 5),
        ),
        (
            b"t STORE 2:4 (unchangedsince 0) FLAGS.SILENT ()",
            c.Store("t", False, seqs((2, 4)), "", True, (), (("UNCHANGEDSINCE", 0),), 0),
        ),
        (
            b"t UID STORE 7,9 (UNCHANGEDSINCE %d) -FLAGS.SILENT \\Deleted $x" % MAX63,
            c.Store(
                "t",
                True,
                seqs((7, 7), (9, 9)),
                "-",
                True,
                ("\\Deleted", "$x"),
                (("UNCHANGEDSINCE", MAX63),),
                MAX63,
            ),
        ),
        (
            b"t STORE 1 +FLAGS (a)",
            c.Store("t", False, one(1), "+", False, ("a",)),
        ),
    ],
)
def test_store_unchangedsince(line: bytes, expected: c.Store) -> None:
    assert parse(line) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"t STORE 1 (UNCHANGEDSINCE %d) FLAGS (a)" % (MAX63 + 1), "Number too large"),
        (b"t STORE 1 (UNCHANGEDSINCE) FLAGS (a)", "Invalid UNCHANGEDSINCE mod-sequence"),
        (b"t STORE 1 (UNCHANGEDSINCE -1) FLAGS (a)", "Invalid UNCHANGEDSINCE mod-sequence"),
        (b"t STORE 1 (UNCHANGEDSINCE 1:2) FLAGS (a)", "Invalid UNCHANGEDSINCE mod-sequence"),
        (b"t STORE 1 (UNCHANGEDSINCE (1)) FLAGS (a)", "Invalid UNCHANGEDSINCE mod-sequence"),
        (b"t STORE 1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) FLAGS (a)", "Duplicate STORE modifier"),
        (b"t STORE 1 (FOO 1) FLAGS (a)", "Unknown STORE modifier"),
        (b"t STORE 1 (CHANGEDSINCE 1) FLAGS (a)", "Unknown STORE modifier"),
        (b"t STORE 1 () FLAGS (a)", "Expected parameter name"),
        (b"t STORE 1 (UNCHANGEDSINCE 5)", "Missing argument"),
        (b"t STORE 1 (UNCHANGEDSINCE 5)+FLAGS (a)", "Expected a single space"),
        (b"t STORE 1 +FLAGS (a) (UNCHANGEDSINCE 5)", "Unexpected characters after command"),
        (b"t STORE 1 (UNCHANGEDSINCE 5) (a)", "Expected FLAGS, +FLAGS or -FLAGS"),
    ],
)
def test_store_unchangedsince_bad(line: bytes, reason: str) -> None:
    ev = error(line)
    assert (ev.tag, ev.status, ev.text) == ("t", "BAD", reason)


# --- SELECT / EXAMINE CONDSTORE and QRESYNC --------------------------------------------


def test_select_condstore() -> None:
    assert parse(b"t SELECT INBOX (CONDSTORE)") == c.Select(
        "t", "INBOX", params=(("CONDSTORE", None),), condstore=True
    )
    assert parse(b"t EXAMINE INBOX (condstore)") == c.Select(
        "t", "INBOX", readonly=True, params=(("CONDSTORE", None),), condstore=True
    )
    plain = parse(b"t SELECT INBOX")
    assert isinstance(plain, c.Select) and (plain.condstore, plain.qresync) == (False, None)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (b"(67890007 20050715194045000)", c.QresyncParams(67890007, 20050715194045000)),
        (
            b"(67890007 20050715194045000 41,43:211,214:541)",
            c.QresyncParams(67890007, 20050715194045000, seqs((41, 41), (43, 211), (214, 541))),
        ),
        (b"(1 2 5)", c.QresyncParams(1, 2, one(5))),
        (
            b"(67890007 90060115194045000 1:29997 (5000,7500,9000 15000,22500,27000))",
            c.QresyncParams(
                67890007,
                90060115194045000,
                seqs((1, 29997)),
                (
                    seqs((5000, 5000), (7500, 7500), (9000, 9000)),
                    seqs((15000, 15000), (22500, 22500), (27000, 27000)),
                ),
            ),
        ),
        # the ABNF allows seq-match-data without known-uids
        (b"(1 2 (3 9))", c.QresyncParams(1, 2, None, (one(3), one(9)))),
        (b"(1 2 (1:3 4,8:9))", c.QresyncParams(1, 2, None, (seqs((1, 3)), seqs((4, 4), (8, 9))))),
        (
            b"(4294967295 %d 4294967295)" % MAX63,
            c.QresyncParams(4294967295, MAX63, one(4294967295)),
        ),
    ],
)
def test_select_qresync(params: bytes, expected: c.QresyncParams) -> None:
    cmd = parse(b"t SELECT INBOX (QRESYNC " + params + b")")
    assert isinstance(cmd, c.Select)
    assert cmd.qresync == expected
    assert not cmd.condstore
    assert [name for name, _ in cmd.params] == ["QRESYNC"]


def test_select_condstore_and_qresync() -> None:
    cmd = parse(b"t EXAMINE x (QRESYNC (1 2) CONDSTORE)")
    assert cmd == c.Select(
        "t",
        "x",
        True,
        (("QRESYNC", (1, 2)), ("CONDSTORE", None)),
        True,
        c.QresyncParams(1, 2),
    )


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (b"(FOO)", "Unknown select parameter"),
        (b"(CONDSTORE FOO)", "Unknown select parameter"),
        (b"(CONDSTORE CONDSTORE)", "Duplicate select parameter"),
        (b"(CONDSTORE 1)", "CONDSTORE takes no value"),
        (b"(CONDSTORE ())", "CONDSTORE takes no value"),
        (b"()", "Expected parameter name"),
        (b"(QRESYNC)", "Invalid QRESYNC parameters"),
        (b"(QRESYNC 1)", "Invalid QRESYNC parameters"),
        (b"(QRESYNC ())", "Invalid QRESYNC parameters"),
        (b"(QRESYNC (1))", "Invalid QRESYNC parameters"),
        (b"(QRESYNC (1 2 3 (1 2) 4))", "Invalid QRESYNC parameters"),
        (b"(QRESYNC (1 2 3 4))", "Invalid QRESYNC sequence match data"),
        (b"(QRESYNC (1 2 (1 2) 3))", "Invalid QRESYNC parameters"),
        (b"(QRESYNC (0 2))", "Invalid QRESYNC UIDVALIDITY"),
        (b"(QRESYNC (4294967296 2))", "Invalid QRESYNC UIDVALIDITY"),
        (b"(QRESYNC (x 2))", "Invalid QRESYNC UIDVALIDITY"),
        (b"(QRESYNC (1:2 2))", "Invalid QRESYNC UIDVALIDITY"),
        (b"(QRESYNC (1 0))", "Invalid QRESYNC mod-sequence"),
        (b"(QRESYNC (1 %d))" % (MAX63 + 1), "Number too large"),
        (b"(QRESYNC (1 2:3))", "Invalid QRESYNC mod-sequence"),
        (b"(QRESYNC (1 2 1:*))", "Invalid QRESYNC known UIDs"),
        (b"(QRESYNC (1 2 *))", "Invalid QRESYNC known UIDs"),
        (b"(QRESYNC (1 2 $))", "Invalid QRESYNC known UIDs"),
        (b"(QRESYNC (1 2 0))", "Invalid sequence set"),
        (b"(QRESYNC (1 2 4294967296))", "Sequence number too large"),
        (b"(QRESYNC (1 2 abc))", "Invalid sequence set"),
        (b"(QRESYNC (1 2 1 ()))", "Invalid QRESYNC sequence match data"),
        (b"(QRESYNC (1 2 1 (1)))", "Invalid QRESYNC sequence match data"),
        (b"(QRESYNC (1 2 1 (1 2 3)))", "Invalid QRESYNC sequence match data"),
        (b"(QRESYNC (1 2 1 ((1) 2)))", "Invalid QRESYNC sequence match data"),
        (b"(QRESYNC (1 2 1 (1:* 2)))", "Invalid QRESYNC sequence match data"),
        (b"(QRESYNC (1 2 1 (1 $)))", "Invalid QRESYNC sequence match data"),
        (b"(QRESYNC (1 2 1 (1:3 4)))", "QRESYNC sequence match sets differ in size"),
        (b"(QRESYNC (1 2 (1,2 5:7)))", "QRESYNC sequence match sets differ in size"),
        (b"(QRESYNC (1 2) QRESYNC (1 2))", "Duplicate select parameter"),
        (b"(QRESYNC (1 2)", "Missing argument"),
    ],
)
def test_select_params_bad(params: bytes, reason: str) -> None:
    for verb in (b"SELECT", b"EXAMINE"):
        ev = error(b"t " + verb + b" INBOX " + params)
        assert (ev.tag, ev.status, ev.text) == ("t", "BAD", reason)


# --- SEARCH MODSEQ ---------------------------------------------------------------------


def key(args: bytes, *, uid: bool = False, utf8: bool = False) -> k.SearchKey:
    cmd = parse(b"t " + (b"UID " if uid else b"") + b"SEARCH " + args, utf8=utf8)
    assert isinstance(cmd, c.Search) and cmd.uid == uid
    return cmd.key


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (b"MODSEQ 0", k.ModSeqKey(0)),
        (b"modseq 620162338", k.ModSeqKey(620162338)),
        (b"MODSEQ %d" % MAX63, k.ModSeqKey(MAX63)),
        (b"MODSEQ 0005", k.ModSeqKey(5)),
        (
            b'MODSEQ "/flags/\\\\draft" all 620162338',
            k.ModSeqKey(620162338, ("/flags/\\draft", "all")),
        ),
        (b'MODSEQ "/flags/$MDNSent" PRIV 1', k.ModSeqKey(1, ("/flags/$MDNSent", "priv"))),
        (b'MODSEQ "/FLAGS/\\\\Seen" Shared 2', k.ModSeqKey(2, ("/FLAGS/\\Seen", "shared"))),
        (b'MODSEQ "/flags/Sk" all 3', k.ModSeqKey(3, ("/flags/Sk", "all"))),
        (b"NOT MODSEQ 5", k.Not(k.ModSeqKey(5))),
        (b"OR MODSEQ 5 SEEN", k.Or(k.ModSeqKey(5), k.FlagKey("\\Seen", True))),
        (
            b'OR SEEN MODSEQ "/flags/\\\\seen" all 7',
            k.Or(k.FlagKey("\\Seen", True), k.ModSeqKey(7, ("/flags/\\seen", "all"))),
        ),
        (b"(MODSEQ 5)", k.ModSeqKey(5)),
        (b"(MODSEQ 5 UNSEEN)", k.And((k.ModSeqKey(5), k.FlagKey("\\Seen", False)))),
        (
            b"1:* MODSEQ 3 NOT (MODSEQ 9)",
            k.And((k.SeqKey(seqs((1, None)), uid=False), k.ModSeqKey(3), k.Not(k.ModSeqKey(9)))),
        ),
    ],
)
def test_search_modseq(args: bytes, expected: k.SearchKey) -> None:
    assert key(args) == expected
    assert key(args, uid=True) == expected
    assert key(b"RETURN (MIN) CHARSET UTF-8 " + args, utf8=True) == expected


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (b"MODSEQ", "Missing argument"),
        (b"MODSEQ x", "Expected number"),
        (b"MODSEQ -1", "Expected number"),
        (b"MODSEQ %d" % (MAX63 + 1), "Number too large"),
        (b"MODSEQ " + b"1" * 21, "Number too large"),
        (b"MODSEQ 1:5", "Expected a single space"),
        (b"MODSEQ  5", "Expected number"),
        (b'MODSEQ "/flags/\\\\draft"', "Missing argument"),
        (b'MODSEQ "/flags/\\\\draft" all', "Missing argument"),
        (b'MODSEQ "/flags/\\\\draft" 5', "Invalid MODSEQ entry type"),
        (b'MODSEQ "/flags/\\\\draft" bogus 5', "Invalid MODSEQ entry type"),
        (b'MODSEQ "/flags/\\\\draft" "all" 5', "Expected MODSEQ entry type"),
        (b'MODSEQ "/flags/\\\\draft" all x', "Expected number"),
        (b'MODSEQ "foo" all 5', "Invalid MODSEQ entry name"),
        (b'MODSEQ "/flags/" all 5', "Invalid MODSEQ entry name"),
        (b'MODSEQ "/flags/\\\\" all 5', "Invalid MODSEQ entry name"),
        (b'MODSEQ "/flags/a b" all 5', "Invalid MODSEQ entry name"),
        (b'MODSEQ "/flags/a*" all 5', "Invalid MODSEQ entry name"),
        (b'MODSEQ "/flags/a]b" all 5', "Invalid MODSEQ entry name"),
        (b'MODSEQ "/flags/\\\\a\\\\b" all 5', "Invalid MODSEQ entry name"),
        (b'MODSEQ "/flagsx" all 5', "Invalid MODSEQ entry name"),
        (b'MODSEQ "/flags/\\\\\\\\a" all 5', "Invalid MODSEQ entry name"),
        (b'MODSEQ "/flags/\xc3\xa9" all 5', "8-bit characters not allowed in quoted string"),
        (b'MODSEQ "/flags/a', "Invalid quoted string"),
        (b"MODSEQ {8+}\r\n/flags/a all 5", "Expected number"),
        (b"NOT MODSEQ", "Missing argument"),
        (b"OR MODSEQ 1", "Missing argument"),
        (b"(MODSEQ 1", "Missing argument"),
    ],
)
def test_search_modseq_bad(args: bytes, reason: str) -> None:
    ev = error(b"t SEARCH " + args)
    assert (ev.tag, ev.status, ev.text) == ("t", "BAD", reason)


def test_search_modseq_entry_8bit_under_utf8() -> None:
    ev = error(b'T SEARCH MODSEQ "/flags/\xc3\xa9" all 5', utf8=True)
    assert (ev.status, ev.text) == ("BAD", "Invalid MODSEQ entry name")


# --- STATUS HIGHESTMODSEQ ----------------------------------------------------------------


def test_status_highestmodseq() -> None:
    assert parse(b"t STATUS INBOX (HIGHESTMODSEQ messages)") == c.Status(
        "t", "INBOX", ("HIGHESTMODSEQ", "MESSAGES")
    )
    assert parse(b"t STATUS INBOX (highestmodseq)") == c.Status("t", "INBOX", ("HIGHESTMODSEQ",))
    cmd = parse(b'T LIST "" % RETURN (STATUS (UIDVALIDITY HIGHESTMODSEQ))')
    assert isinstance(cmd, c.List) and cmd.status_items == ("UIDVALIDITY", "HIGHESTMODSEQ")
    assert error(b"t STATUS INBOX (HIGHESTMODSEQ 5)").text == "Unknown status item"
    assert error(b"t STATUS INBOX (MODSEQ)").text == "Unknown status item"


# --- split invariance ------------------------------------------------------------------

SCRIPT = (
    b"a1 SELECT INBOX (CONDSTORE)\r\n"
    b"a2 EXAMINE {5}\r\nINBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000 15000)))\r\n"
    b"a3 UID FETCH 1:* (FLAGS MODSEQ) (CHANGEDSINCE 12345 VANISHED)\r\n"
    b"a4 FETCH 1 FLAGS (VANISHED)\r\n"
    b"a5 STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS.SILENT (\\Seen)\n"
    b'a6 UID SEARCH OR MODSEQ "/flags/\\\\draft" all 620162338 NOT MODSEQ 5\r\n'
    b"a7 SEARCH MODSEQ {3}\r\nabc\r\n"
    b"a8 SELECT INBOX (QRESYNC (1 2 1 (1:3 4)))\r\n"
    b"a9 STATUS INBOX (HIGHESTMODSEQ)\r\n"
    b"b1 STORE 1 (FOO 1) FLAGS (a)\r\n"
    b"b2 NOOP\r\n"
)


def test_script_events() -> None:
    events = [e for e in feed(SCRIPT) if type(e).__name__ != "NeedContinuation"]
    assert [(type(e).__name__, getattr(e, "tag", None)) for e in events] == [
        ("CommandReceived", None),
        ("CommandReceived", None),
        ("CommandReceived", None),
        ("CommandError", "a4"),
        ("CommandReceived", None),
        ("CommandReceived", None),
        ("CommandError", "a7"),
        ("CommandError", "a8"),
        ("CommandReceived", None),
        ("CommandError", "b1"),
        ("CommandReceived", None),
    ]
    received = [e.command for e in events if isinstance(e, CommandReceived)]
    assert [cmd.tag for cmd in received] == ["a1", "a2", "a3", "a5", "a6", "a9", "b2"]
    examine = received[1]
    assert isinstance(examine, c.Select) and examine.readonly
    assert examine.qresync == c.QresyncParams(
        67890007, 90060115194045000, seqs((1, 29997)), (one(5000), one(15000))
    )
    errors = [e for e in events if isinstance(e, CommandError)]
    assert [e.text for e in errors] == [
        "VANISHED is only allowed in UID FETCH",
        "Expected number",
        "QRESYNC sequence match sets differ in size",
        "Unknown STORE modifier",
    ]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 16])
def test_split_input_gives_identical_events(step: int) -> None:
    assert feed(SCRIPT, step=step) == feed(SCRIPT)


def test_split_at_every_point() -> None:
    assert_split_anywhere_is_the_same(SCRIPT)
