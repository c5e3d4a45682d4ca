"""Command parsing, bad syntax first for each family (RFC 9051 §6)."""

from __future__ import annotations

import datetime

import pytest
from imap_proto_helpers import error, feed, parse

from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.receiver import CommandError, CommandReceived
from carteiro.imap.protocol.sequence_set import SequenceSet


def seqs(*ranges: tuple[int | None, int | None]) -> SequenceSet:
    return SequenceSet(tuple(ranges))


# --- tags and command names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "tag", "reason"),
    [
        (b"a1 FROB", "a1", "Unknown command"),
        (b"a1 UID NOOP 1", "a1", "Unknown UID command"),
        (b"a1", "a1", "Missing command"),
        (b"a1 ", "a1", "Missing command"),
        (b"+1 NOOP", None, "Invalid tag"),
        (b"a{1 NOOP", None, "Invalid tag"),
        (b"a*1 NOOP", None, "Invalid tag"),
        (b'"a" NOOP', None, "Invalid tag"),
        (b" NOOP", None, "Invalid tag"),
        (b"a1 NOOP extra", "a1", "Unexpected characters after command"),
        (b"a1 NOOP ", "a1", "Unexpected characters after command"),
        (b"a1  NOOP", "a1", "Missing command"),
        (b"a1 UID", "a1", "Missing argument"),
        (b"a1 \xff", "a1", "Missing command"),
    ],
)
def test_bad_tag_or_name(line: bytes, tag: str | None, reason: str) -> None:
    ev = error(line)
    assert (ev.tag, ev.text, ev.status) == (tag, reason, "BAD")


def test_names_case_insensitive_and_tag_chars() -> None:
    assert parse(b"a.1]x nOoP") == c.Noop("a.1]x")
    assert parse(b"A CaPaBiLiTy") == c.Capability("A")
    assert parse(b"t uid FeTcH 1 flags").name == "FETCH"


@pytest.mark.parametrize(
    ("line", "cls"),
    [
        (b"t CAPABILITY", c.Capability),
        (b"t NOOP", c.Noop),
        (b"t LOGOUT", c.Logout),
        (b"t STARTTLS", c.StartTLS),
        (b"t NAMESPACE", c.Namespace),
        (b"t IDLE", c.Idle),
        (b"t CHECK", c.Check),
        (b"t CLOSE", c.Close),
        (b"t UNSELECT", c.Unselect),
        (b"t EXPUNGE", c.Expunge),
    ],
)
def test_no_argument_commands(line: bytes, cls: type[c.Command]) -> None:
    assert parse(line) == cls("t")
    assert error(line + b" x").text == "Unexpected characters after command"


def test_bare_lf_and_empty_lines() -> None:
    events = feed(b"\r\n\na NOOP\nb NOOP\r\n")
    assert events == [CommandReceived(c.Noop("a")), CommandReceived(c.Noop("b"))]


# --- ID, AUTHENTICATE, LOGIN, ENABLE ---------------------------------------------------


def test_id() -> None:
    assert parse(b"t ID NIL") == c.Id("t", None)
    assert parse(b"t ID ()") == c.Id("t", ())
    assert parse(b'T ID ("name" "mutt" "version" NIL)') == c.Id(
        "T", (("name", "mutt"), ("version", None))
    )
    assert error(b"t ID").text == "Missing argument"
    assert error(b'T ID ("name")').status == "BAD"
    assert error(b'T ID ("a" "b" )').status == "BAD"
    assert error(b"T ID (name x)").status == "BAD"


def test_authenticate() -> None:
    assert parse(b"t AUTHENTICATE plain") == c.Authenticate("t", "PLAIN", None)
    assert parse(b"t AUTHENTICATE PLAIN =") == c.Authenticate("t", "PLAIN", b"")
    assert parse(b"t AUTHENTICATE PLAIN AGJvYgBwdw==") == c.Authenticate(
        "t", "PLAIN", b"\x00bob\x00pw"
    )
    assert error(b"t AUTHENTICATE").text == "Missing argument"
    assert error(b"t AUTHENTICATE PLAIN AGJvYgBwdw=").text == "Invalid base64 initial response"
    assert error(b"t AUTHENTICATE PLAIN !!").text == "Invalid base64 initial response"
    assert error(b"t AUTHENTICATE PLAIN == x").status == "BAD"
    assert error(b"t AUTHENTICATE PLAIN a b").status == "BAD"


def test_login() -> None:
    assert parse(b"t LOGIN bob secret") == c.Login("t", "bob", "secret")
    assert parse(b't LOGIN "bob smith" "p\\"w\\\\"') == c.Login("t", "bob smith", 'p"w\\')
    assert parse(b"t LOGIN {3}\r\nbob {4+}\r\nx yz") == c.Login("t", "bob", "x yz")
    assert parse(b't LOGIN "" ""') == c.Login("t", "", "")
    assert parse(b"t LOGIN b]ob pw") == c.Login("t", "b]ob", "pw")
    assert error(b"t LOGIN bob").text == "Missing argument"
    assert error(b"t LOGIN").text == "Missing argument"
    assert error(b"t LOGIN bob  pw").status == "BAD"
    assert error(b"t LOGIN bob pw x").text == "Unexpected characters after command"
    assert error(b't LOGIN "bob pw').text == "Invalid quoted string"
    assert error(b't LOGIN "b\\ob" pw').text == "Invalid quoted string"
    assert error(b"t LOGIN (bob) pw").status == "BAD"
    assert error(b't LOGIN "j\xc3\xa9" pw').text == "8-bit characters not allowed in quoted string"
    assert error(b"t LOGIN {2+}\r\n\xff\xfe pw").text == "Invalid UTF-8 in user name"
    assert error(b"t LOGIN {2+}\r\na\x00 pw").text == "NUL in literal"
    assert error(b"t LOGIN ~{1+}\r\na pw").text == "literal8 not allowed here"
    assert error(b"t LOGIN {1+} pw").text == "Literal must be followed by CRLF"


def test_login_utf8_quoted() -> None:
    assert parse(b't LOGIN "j\xc3\xa9" pw', utf8=True) == c.Login("t", "j\u00e9", "pw")
    assert error(b't LOGIN "j\xc3" pw', utf8=True).text == "Invalid UTF-8 in quoted string"


def test_enable() -> None:
    assert parse(b"t ENABLE IMAP4rev2 utf8=accept") == c.Enable("t", ("IMAP4REV2", "UTF8=ACCEPT"))
    assert error(b"t ENABLE").text == "Missing argument"
    assert error(b'T ENABLE "x"').status == "BAD"


# --- mailbox commands ------------------------------------------------------------------


def test_select_examine() -> None:
    assert parse(b"t SELECT inbox") == c.Select("t", "inbox")
    assert parse(b"t EXAMINE INBOX") == c.Select("t", "INBOX", readonly=True)
    assert parse(b"t SELECT x (condstore)") == c.Select(
        "t", "x", params=(("CONDSTORE", None),), condstore=True
    )
    assert parse(b"t SELECT x (QRESYNC (1 20 1:5 (1,3 2,9)))") == c.Select(
        "t",
        "x",
        params=(("QRESYNC", (1, 20, "1:5", ("1,3", "2,9"))),),
        qresync=c.QresyncParams(1, 20, seqs((1, 5)), (seqs((1, 1), (3, 3)), seqs((2, 2), (9, 9)))),
    )
    assert parse(b'T SELECT "a b"') == c.Select("T", "a b")
    assert parse(b"t SELECT {3}\r\nx y") == c.Select("t", "x y")
    assert error(b"t SELECT").text == "Missing argument"
    assert error(b"t SELECT a b").status == "BAD"
    assert error(b"t SELECT a ()").status == "BAD"
    assert error(b"t SELECT a (X").status == "BAD"
    assert error(b"t SELECT a (X)").text == "Unknown select parameter"
    assert error(b"t SELECT a%").status == "BAD"


def test_create() -> None:
    assert parse(b"t CREATE foo/bar") == c.Create("t", "foo/bar")
    assert parse(b"t CREATE Sent (USE (\\sent \\Junk))") == c.Create(
        "t", "Sent", ("\\Sent", "\\Junk")
    )
    assert parse(b"t CREATE x (USE (\\Custom))") == c.Create("t", "x", ("\\Custom",))
    assert error(b"t CREATE").text == "Missing argument"
    assert error(b"t CREATE x (FOO (\\Sent))").text == "Unknown CREATE parameter"
    assert error(b"t CREATE x (USE (Sent))").status == "BAD"
    assert error(b"t CREATE x (USE ())").status == "BAD"


@pytest.mark.parametrize(
    ("word", "cls"),
    [(b"DELETE", c.Delete), (b"SUBSCRIBE", c.Subscribe), (b"UNSUBSCRIBE", c.Unsubscribe)],
)
def test_one_mailbox(word: bytes, cls: type[c.Command]) -> None:
    assert parse(b"t " + word + b' "a&AOk-"') == cls("t", "a&AOk-")  # type: ignore[call-arg]
    assert error(b"t " + word).text == "Missing argument"
    assert error(b"t " + word + b" a b").text == "Unexpected characters after command"


def test_mailbox_utf8() -> None:
    assert parse(b'T DELETE "\xc3\xa9t\xc3\xa9"', utf8=True) == c.Delete("T", "\u00e9t\u00e9")
    assert parse(b"T DELETE {2}\r\n\xc3\xa9") == c.Delete("T", "\u00e9")
    assert error(b"T DELETE {1}\r\n\xe9").text == "Invalid UTF-8 in mailbox name"


def test_rename() -> None:
    assert parse(b"t RENAME a b") == c.Rename("t", "a", "b")
    assert error(b"t RENAME a").text == "Missing argument"
    assert error(b"t RENAME a b c").status == "BAD"


def test_list_basic() -> None:
    assert parse(b'T LIST "" *') == c.List("T", "", ("*",))
    assert parse(b"T LIST ~/ %/]x") == c.List("T", "~/", ("%/]x",))
    assert parse(b'T LIST "" ""') == c.List("T", "", ("",))
    assert error(b"T LIST").text == "Missing argument"
    assert error(b'T LIST ""').text == "Missing argument"
    assert error(b'T LIST "" * x').text == "Expected RETURN"


def test_list_extended() -> None:
    cmd = parse(
        b'T LIST (SUBSCRIBED RECURSIVEMATCH remote SPECIAL-USE) "" ("a" "b") '
        b"RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))"
    )
    assert cmd == c.List(
        "T",
        "",
        ("a", "b"),
        ("SUBSCRIBED", "RECURSIVEMATCH", "REMOTE", "SPECIAL-USE"),
        ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"),
        ("MESSAGES", "UNSEEN"),
        True,
    )
    assert parse(b'T LIST () "" %') == c.List("T", "", ("%",), extended=True)
    assert parse(b'T LIST "" % RETURN ()') == c.List("T", "", ("%",), extended=True)
    assert parse(b'T LIST "" (%)') == c.List("T", "", ("%",), extended=True)
    assert error(b'T LIST (RECURSIVEMATCH) "" %').status == "BAD"
    assert error(b'T LIST (BOGUS) "" %').text == "Unknown LIST selection option"
    assert error(b'T LIST "" % RETURN (BOGUS)').text == "Unknown LIST return option"
    assert error(b'T LIST "" % RETURN (STATUS ())').text == "Expected status item"
    assert error(b'T LIST "" % RETURN (STATUS (BOGUS))').text == "Unknown status item"
    assert error(b'T LIST "" ()').status == "BAD"


def test_lsub_status_namespace() -> None:
    assert parse(b'T LSUB "" %') == c.Lsub("T", "", "%")
    assert error(b'T LSUB ""').text == "Missing argument"
    assert parse(b"T STATUS blurdybloop (UIDNEXT messages SIZE)") == c.Status(
        "T", "blurdybloop", ("UIDNEXT", "MESSAGES", "SIZE")
    )
    assert error(b"T STATUS x").text == "Missing argument"
    assert error(b"T STATUS x ()").text == "Expected status item"
    assert error(b"T STATUS x (FOO)").text == "Unknown status item"
    assert error(b"T STATUS x MESSAGES").status == "BAD"


# --- APPEND ----------------------------------------------------------------------------


def test_append() -> None:
    cmd = parse(b"t APPEND saved-messages (\\Seen) {5}\r\nhello")
    assert cmd == c.Append("t", "saved-messages", (c.AppendMessage(("\\Seen",), None, b"hello"),))
    cmd = parse(b't APPEND x (\\seen \\DRAFT $Junk) " 1-Feb-2024 10:20:30 -0330" {2+}\r\nhi')
    assert isinstance(cmd, c.Append)
    msg = cmd.messages[0]
    assert msg.flags == ("\\Seen", "\\Draft", "$Junk")
    tz = datetime.timezone(-datetime.timedelta(hours=3, minutes=30))
    assert msg.internal_date == datetime.datetime(2024, 2, 1, 10, 20, 30, tzinfo=tz)
    assert parse(b't APPEND x "01-Feb-2024 10:20:30 +0000" ~{3}\r\na\x00b') == c.Append(
        "t",
        "x",
        (
            c.AppendMessage(
                (), datetime.datetime(2024, 2, 1, 10, 20, 30, tzinfo=datetime.UTC), b"a\x00b"
            ),
        ),
    )
    assert parse(b"t APPEND x () {0}\r\n") == c.Append("t", "x", (c.AppendMessage((), None, b""),))


def test_multiappend() -> None:
    data = (
        b"t APPEND x (\\Seen) {3}\r\none (\\Flagged) {3}\r\ntwo"
        b' "1-Jan-2000 00:00:00 +0000" ~{5}\r\nthree\r\n'
    )
    events = feed(data)
    assert [type(e).__name__ for e in events] == [
        "NeedContinuation",
        "NeedContinuation",
        "NeedContinuation",
        "CommandReceived",
    ]
    last = events[-1]
    assert isinstance(last, CommandReceived) and isinstance(last.command, c.Append)
    cmd = last.command
    assert [m.data for m in cmd.messages] == [b"one", b"two", b"three"]
    assert [m.flags for m in cmd.messages] == [("\\Seen",), ("\\Flagged",), ()]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"t APPEND", "Missing argument"),
        (b"t APPEND x", "Missing argument"),
        (b"t APPEND x (\\Seen)", "Missing argument"),
        (b"t APPEND x hello", "Expected message literal"),
        (b"t APPEND x (\\Recent) {1+}\r\na", "\\Recent cannot be set by the client"),
        (b"t APPEND x (\\Bogus) {1+}\r\na", "Unknown system flag"),
        (b"t APPEND x (a b c]) {1+}\r\na", "Expected a single space"),
        (b't APPEND x "31-Feb-2024 10:00:00 +0000" {1+}\r\na', "Invalid date-time"),
        (b't APPEND x "1-Feb-2024 25:00:00 +0000" {1+}\r\na', "Invalid date-time"),
        (b't APPEND x "1-Foo-2024 10:00:00 +0000" {1+}\r\na', "Invalid date-time"),
        (b't APPEND x "1-Feb-2024" {1+}\r\na', "Invalid date-time"),
        (b"t APPEND x {1+}\r\na x", "Expected message literal"),
        (b"t APPEND x {1+}\r\na ", "Expected message literal"),
        (b"t APPEND x {1+}\r\nab", "Expected a single space"),
    ],
)
def test_append_bad(line: bytes, reason: str) -> None:
    assert error(line).text == reason


# --- selected state --------------------------------------------------------------------


def test_uid_expunge() -> None:
    assert parse(b"t UID EXPUNGE 3000:3002,*") == c.Expunge("t", seqs((3000, 3002), (None, None)))
    assert error(b"t UID EXPUNGE").text == "Missing argument"
    assert error(b"t UID EXPUNGE 0").text == "Invalid sequence set"


def test_copy_move() -> None:
    assert parse(b"t COPY 2:4 MEETING") == c.Copy("t", False, seqs((2, 4)), "MEETING")
    assert parse(b"t uid copy 2,4 x") == c.Copy("t", True, seqs((2, 2), (4, 4)), "x")
    assert parse(b"t MOVE $ Trash") == c.Move("t", False, SequenceSet((), saved=True), "Trash")
    assert parse(b"t UID MOVE 1:* Trash") == c.Move("t", True, seqs((1, None)), "Trash")
    assert error(b"t COPY 1").text == "Missing argument"
    assert error(b"t COPY x y").text == "Expected sequence set"
    assert error(b"t MOVE 1:0 y").text == "Invalid sequence set"


@pytest.mark.parametrize(
    "bad",
    [b"0", b"1:", b":1", b"1,,2", b"1,", b"01", b"1:2:3", b"4294967296", b"$,1", b"$$", b"**"],
)
def test_bad_sequence_sets(bad: bytes) -> None:
    ev = error(b"t COPY " + bad + b" x")
    assert ev.text in ("Invalid sequence set", "Sequence number too large")


def test_sequence_set_forms() -> None:
    cmd = parse(b"t COPY 1,3:5,7:*,*:9,4294967295 x")
    assert isinstance(cmd, c.Copy)
    assert cmd.seqs == seqs((1, 1), (3, 5), (7, None), (None, 9), (4294967295, 4294967295))


def test_store() -> None:
    assert parse(b"t STORE 2:4 +FLAGS (\\Deleted)") == c.Store(
        "t", False, seqs((2, 4)), "+", False, ("\\Deleted",)
    )
    assert parse(b"t UID STORE 1 -flags.silent \\SEEN $Label") == c.Store(
        "t", True, seqs((1, 1)), "-", True, ("\\Seen", "$Label")
    )
    assert parse(b"t STORE 1 FLAGS ()") == c.Store("t", False, seqs((1, 1)), "", False, ())
    assert parse(b"t STORE 1 (UNCHANGEDSINCE 12345) FLAGS.SILENT (a)") == c.Store(
        "t", False, seqs((1, 1)), "", True, ("a",), (("UNCHANGEDSINCE", 12345),), 12345
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"t STORE", "Missing argument"),
        (b"t STORE 1", "Missing argument"),
        (b"t STORE 1 FLAGS", "Expected FLAGS, +FLAGS or -FLAGS"),
        (b"t STORE 1 FLAGS ", "Expected flag"),
        (b"t STORE 1 *FLAGS (a)", "Expected FLAGS, +FLAGS or -FLAGS"),
        (b"t STORE 1 FLAGS.LOUD (a)", "Expected FLAGS, +FLAGS or -FLAGS"),
        (b"t STORE 1 +FLAGS (\\Recent)", "\\Recent cannot be set by the client"),
        (b"t STORE 1 +FLAGS \\Recent", "\\Recent cannot be set by the client"),
        (b"t STORE 1 +FLAGS (\\Foo)", "Unknown system flag"),
        (b'T STORE 1 +FLAGS ("a")', "Expected flag"),
        (b"t STORE 1 +FLAGS (a", "Missing argument"),
        (b"t STORE 1 +FLAGS (a) b", "Unexpected characters after command"),
        (b"t STORE 1 +FLAGS a%", "Unexpected characters after command"),
    ],
)
def test_store_bad(line: bytes, reason: str) -> None:
    assert error(line).text == reason


def test_error_keeps_tag() -> None:
    ev = error(b"tag9 STORE 1 FLAGS")
    assert ev == CommandError("tag9", "Expected FLAGS, +FLAGS or -FLAGS")
