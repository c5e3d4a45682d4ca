"""Receiver framing: literals, limits, splitting, expect_line, discard_buffer."""

from __future__ import annotations

import pytest
from imap_proto_helpers import assert_split_anywhere_is_the_same, drain, feed

from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.receiver import (
    CommandError,
    CommandReceived,
    Event,
    FatalError,
    Limits,
    LineReceived,
    LiteralRejected,
    NeedContinuation,
    NeedData,
    Receiver,
    trailing_literal,
)

SCRIPT = (
    b"a1 LOGIN {3}\r\nbob {4+}\r\np w!\r\n"
    b"a2 SELECT INBOX\r\n"
    b'a3 APPEND x (\\Seen) "1-Feb-2024 10:00:00 +0000" {5}\r\nhello ~{3+}\r\nx\x00y {0}\r\n\r\n'
    b"a4 FROB\r\n"
    b"a5 UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS ({4}\r\nFrom)])\r\n"
    b"a6 SEARCH CHARSET UTF-8 SUBJECT {2}\r\n\xc3\xa9\n"
    b"a7 NOOP\r\n"
)


def names(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_script_events() -> None:
    events = feed(SCRIPT)
    assert names(events) == [
        "NeedContinuation",
        "CommandReceived",
        "CommandReceived",
        "NeedContinuation",
        "NeedContinuation",
        "CommandReceived",
        "CommandError",
        "NeedContinuation",
        "CommandReceived",
        "NeedContinuation",
        "CommandReceived",
        "CommandReceived",
    ]
    assert events[0] == NeedContinuation("a1", 3)
    assert events[1] == CommandReceived(c.Login("a1", "bob", "p w!"))
    append = events[5]
    assert isinstance(append, CommandReceived) and isinstance(append.command, c.Append)
    assert [m.data for m in append.command.messages] == [b"hello", b"x\x00y", b""]
    assert events[6] == CommandError("a4", "Unknown command")


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 13, 64])
def test_split_input_gives_identical_events(step: int) -> None:
    assert feed(SCRIPT, step=step) == feed(SCRIPT)


def test_split_at_every_point() -> None:
    assert_split_anywhere_is_the_same(SCRIPT)


def test_continuation_before_literal_bytes() -> None:
    rx = Receiver()
    rx.receive_data(b"a LOGIN {3")
    assert rx.next_event() == NeedData()
    rx.receive_data(b"}\r")
    assert rx.next_event() == NeedData()
    rx.receive_data(b"\n")
    assert rx.next_event() == NeedContinuation("a", 3)
    assert rx.next_event() == NeedData()
    rx.receive_data(b"bo")
    assert rx.next_event() == NeedData()
    rx.receive_data(b"b x\r")
    assert rx.next_event() == NeedData()
    rx.receive_data(b"\n")
    assert rx.next_event() == CommandReceived(c.Login("a", "bob", "x"))


def test_literal_plus_has_no_continuation() -> None:
    assert feed(b"a LOGIN {3+}\r\nbob x\r\n") == [CommandReceived(c.Login("a", "bob", "x"))]


def test_literal_containing_crlf_and_braces() -> None:
    data = b"a LOGIN {7}\r\n{1}\r\n\r\n x\r\n"
    assert feed(data)[-1] == CommandReceived(c.Login("a", "{1}\r\n\r\n", "x"))


# --- limits ----------------------------------------------------------------------------

SMALL = Limits(max_line=40, max_literal=100, max_command=300, max_depth=4)


def test_sync_literal_too_big_is_rejected_and_session_continues() -> None:
    events = feed(b"a APPEND x {101}\r\nb NOOP\r\n", limits=SMALL)
    assert events == [
        LiteralRejected("a", 101, "Literal too big"),
        CommandReceived(c.Noop("b")),
    ]


def test_sync_literal_over_command_limit_is_rejected() -> None:
    data = b"a APPEND x {90+}\r\n" + b"m" * 90 + b" {90+}\r\n" + b"m" * 90
    data += b" {90}\r\nb NOOP\r\n"
    events = feed(data, limits=SMALL)
    assert events == [LiteralRejected("a", 90, "Literal too big"), CommandReceived(c.Noop("b"))]


def test_non_sync_literal_too_big_is_fatal() -> None:
    rx = Receiver(SMALL)
    rx.receive_data(b"a APPEND x {101+}\r\n" + b"x" * 101 + b"\r\nb NOOP\r\n")
    assert rx.next_event() == FatalError("Non-synchronising literal too big")
    assert rx.next_event() == NeedData()
    rx.receive_data(b"c NOOP\r\n")
    assert rx.next_event() == NeedData()


MINUS = Limits(max_nonsync_literal=4096)


def test_literal_minus_accepts_non_sync_literal_up_to_4096() -> None:
    data = b"a APPEND x {4096+}\r\n" + b"m" * 4096 + b"\r\nb NOOP\r\n"
    events = feed(data, limits=MINUS)
    assert names(events) == ["CommandReceived", "CommandReceived"]
    assert isinstance(events[0], CommandReceived)
    append = events[0].command
    assert isinstance(append, c.Append) and append.messages[0].data == b"m" * 4096


def test_literal_minus_refuses_larger_non_sync_literal_and_keeps_in_step() -> None:
    """RFC 7888 §4: BAD [TOOBIG], the literal's octets are skipped, the session lives."""
    data = b"a APPEND x {4097+}\r\n" + b"m" * 4097 + b"\r\nb NOOP\r\n"
    events = feed(data, limits=MINUS)
    assert events[0] == CommandError(
        "a", "Non-synchronising literals are limited to 4096 octets (LITERAL-)", "TOOBIG"
    )
    assert events[1:] == [CommandReceived(c.Noop("b"))]
    # synchronising literals of any size up to max_literal still work
    events = feed(b"c LOGIN {5000}\r\n" + b"u" * 5000 + b" p\r\n", limits=MINUS)
    assert names(events) == ["NeedContinuation", "CommandReceived"]


def test_literal_minus_split_anywhere() -> None:
    data = b"a APPEND x {4097+}\r\n" + b"m" * 4097 + b"\r\nb NOOP\r\n"
    assert_split_anywhere_is_the_same(data, limits=MINUS)


def test_huge_literal_size_digits() -> None:
    events = feed(b"a LOGIN {" + b"9" * 30 + b"}\r\nb NOOP\r\n", limits=SMALL)
    assert events[0] == LiteralRejected("a", 2**64, "Literal too big")
    assert events[1] == CommandReceived(c.Noop("b"))


def test_line_too_long_then_next_command() -> None:
    long = b"a LOGIN " + b"x" * 100 + b" y\r\nb NOOP\r\n"
    for step in (None, 1, 7):
        events = feed(long, limits=SMALL, step=step)
        assert events == [CommandError("a", "Line too long"), CommandReceived(c.Noop("b"))]


def test_line_too_long_with_over_long_tag_has_no_tag() -> None:
    events = feed(b"t" * 100 + b" NOOP\r\nb NOOP\r\n", limits=SMALL)
    assert events == [CommandError(None, "Line too long"), CommandReceived(c.Noop("b"))]


def test_line_too_long_is_not_buffered() -> None:
    rx = Receiver(SMALL)
    rx.receive_data(b"a NOOP ")
    for _ in range(1000):
        rx.receive_data(b"x" * 50)
        assert rx.next_event() == NeedData()
        assert len(rx._buf) <= 64
    rx.receive_data(b"\r\nb NOOP\r\n")
    assert drain(rx) == [CommandError("a", "Line too long"), CommandReceived(c.Noop("b"))]


def test_line_exactly_at_limit() -> None:
    line = b"a LOGIN x " + b"y" * 30  # 40 bytes
    assert feed(line + b"\r\n", limits=SMALL) == [CommandReceived(c.Login("a", "x", "y" * 30))]
    assert feed(line + b"y\r\n", limits=SMALL) == [CommandError("a", "Line too long")]


def test_over_long_line_ending_in_non_sync_literal_skips_the_literal() -> None:
    data = b"a LOGIN " + b"x" * 100 + b" {5+}\r\nb NOOP\r\nc NOOP\r\n"
    assert feed(data, limits=SMALL) == [
        CommandError("a", "Line too long"),
        CommandReceived(c.Noop("c")),
    ]


def test_over_long_line_ending_in_sync_literal() -> None:
    data = b"a LOGIN " + b"x" * 100 + b" {5}\r\nb NOOP\r\n"
    assert feed(data, limits=SMALL) == [
        CommandError("a", "Line too long"),
        CommandReceived(c.Noop("b")),
    ]


def test_unknown_command_with_sync_literal_rejected_before_continuation() -> None:
    assert feed(b"a FROB {5}\r\nb NOOP\r\n") == [
        CommandError("a", "Unknown command"),
        CommandReceived(c.Noop("b")),
    ]


def test_unknown_command_with_literal_plus_is_skipped_whole() -> None:
    data = b"a FROB {5+}\r\nb NOO {3+}\r\nP\r\n\r\nc NOOP\r\n"
    assert feed(data) == [CommandError("a", "Unknown command"), CommandReceived(c.Noop("c"))]


def test_invalid_tag_with_literal() -> None:
    assert feed(b"+ LOGIN {1}\r\nb NOOP\r\n") == [
        CommandError(None, "Invalid tag"),
        CommandReceived(c.Noop("b")),
    ]


def test_bad_after_literal_consumes_whole_command() -> None:
    data = b"a LOGIN {3}\r\nbob\r\nb NOOP\r\n"
    events = feed(data)
    assert events == [
        NeedContinuation("a", 3),
        CommandError("a", "Missing argument"),
        CommandReceived(c.Noop("b")),
    ]


def test_nesting_limit() -> None:
    deep = b"a SEARCH " + b"(" * 5 + b"ALL" + b")" * 5 + b"\r\n"
    assert feed(deep, limits=SMALL) == [CommandError("a", "Too deeply nested")]


def test_command_too_long_across_lines() -> None:
    limits = Limits(max_line=1000, max_literal=1000, max_command=50)
    data = b"a LOGIN {10+}\r\n" + b"x" * 10 + b" " + b"y" * 40 + b"\r\nb NOOP\r\n"
    assert feed(data, limits=limits) == [
        CommandError("a", "Command too long"),
        CommandReceived(c.Noop("b")),
    ]


# --- expect_line / discard_buffer --------------------------------------------------------


def _expect_after(rx: Receiver, ev: Event) -> None:
    if isinstance(ev, CommandReceived) and isinstance(ev.command, c.Authenticate | c.Idle):
        rx.expect_line()


@pytest.mark.parametrize("step", [None, 1, 3])
def test_expect_line(step: int | None) -> None:
    data = b"a AUTHENTICATE PLAIN\r\nAGJvYgBwdw==\r\nb IDLE\r\nDONE\r\nc NOOP\r\n"
    events = feed(data, step=step, hook=_expect_after)
    assert events == [
        CommandReceived(c.Authenticate("a", "PLAIN", None)),
        LineReceived(b"AGJvYgBwdw=="),
        CommandReceived(c.Idle("b")),
        LineReceived(b"DONE"),
        CommandReceived(c.Noop("c")),
    ]


def test_expect_line_too_long() -> None:
    events = feed(b"a IDLE\r\n" + b"x" * 100 + b"\r\nb NOOP\r\n", limits=SMALL, hook=_expect_after)
    assert events == [
        CommandReceived(c.Idle("a")),
        CommandError(None, "Line too long"),
        CommandReceived(c.Noop("b")),
    ]


def test_expect_line_returns_raw_line_with_literal_syntax() -> None:
    events = feed(b"a IDLE\r\n{5}\r\nb NOOP\r\n", hook=_expect_after)
    assert events[1:] == [LineReceived(b"{5}"), CommandReceived(c.Noop("b"))]


def test_discard_buffer() -> None:
    rx = Receiver()
    rx.receive_data(b"a STARTTLS\r\nb LOGIN injected x\r\nc LOG")
    assert rx.next_event() == CommandReceived(c.StartTLS("a"))
    rx.discard_buffer()
    assert rx.next_event() == NeedData()
    rx.receive_data(b"d NOOP\r\n")
    assert rx.next_event() == CommandReceived(c.Noop("d"))


def test_discard_buffer_in_literal() -> None:
    rx = Receiver()
    rx.receive_data(b"a LOGIN {10}\r\nabc")
    assert rx.next_event() == NeedContinuation("a", 10)
    assert rx.next_event() == NeedData()
    rx.discard_buffer()
    rx.receive_data(b"d NOOP\r\n")
    assert rx.next_event() == CommandReceived(c.Noop("d"))


# --- linear time -------------------------------------------------------------------------


def _multiappend(n: int) -> bytes:
    parts = [b"a APPEND INBOX"]
    for i in range(n):
        msg = b"Subject: %d\r\n\r\nbody\r\n" % i
        parts.append(b" (\\Seen) {%d+}\r\n" % len(msg) + msg)
    return b"".join(parts) + b"\r\n"


@pytest.mark.parametrize("step", [None, 1])
def test_multiappend_1000_literals_is_linear(step: int | None) -> None:
    data = _multiappend(1000)
    rx = Receiver()
    if step is None:
        rx.receive_data(data)
        events = drain(rx)
    else:
        events = []
        for i in range(len(data)):
            rx.receive_data(data[i : i + 1])
            events.extend(drain(rx))
    assert len(events) == 1
    ev = events[0]
    assert isinstance(ev, CommandReceived) and isinstance(ev.command, c.Append)
    assert len(ev.command.messages) == 1000
    assert ev.command.messages[999].data == b"Subject: 999\r\n\r\nbody\r\n"
    # every byte is searched once, then either copied (literal) or parsed (line) once
    assert rx.bytes_examined <= 2 * len(data)


def test_bytes_examined_linear_in_slow_long_line() -> None:
    rx = Receiver()
    line = b"a LOGIN " + b"x" * 20000 + b" y\r\n"
    for i in range(len(line)):
        rx.receive_data(line[i : i + 1])
        assert rx.next_event() in (NeedData(), CommandReceived(c.Login("a", "x" * 20000, "y")))
    assert rx.bytes_examined <= 2 * len(line)


def test_trailing_literal() -> None:
    assert trailing_literal(b"a {5}") == (5, True)
    assert trailing_literal(b"a ~{5+}") == (5, False)
    assert trailing_literal(b"a {}") is None
    assert trailing_literal(b"a {+}") is None
    assert trailing_literal(b"a {x}") is None
    assert trailing_literal(b"a }") is None
    assert trailing_literal(b"{" + b"1" * 25 + b"}") == (2**64, True)
