"""POP3 framing and responses, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carteiro.pop3 import protocol as p


def test_commands_are_case_insensitive_and_checked() -> None:
    assert p.parse(b"retr 1") == p.Command("RETR", ("1",))
    assert p.parse(b"TOP 2 10") == p.Command("TOP", ("2", "10"))
    assert p.parse(b"PASS a secret with spaces") == p.Command("PASS", ("a secret with spaces",))
    assert p.parse(b"AUTH PLAIN =") == p.Command("AUTH", ("PLAIN", "="))
    for bad in (b"FROB", b"RETR", b"TOP 1", b"LIST 1 2", b"STAT x", b"RETR  1", b"PASS", b"\xff"):
        with pytest.raises(p.ParseError):
            p.parse(bad)


def test_responses() -> None:
    assert p.ok() == b"+OK\r\n"
    assert p.ok("2 320") == b"+OK 2 320\r\n"
    assert p.err("Maildrop busy", "IN-USE") == b"-ERR [IN-USE] Maildrop busy\r\n"
    assert p.err("caf\u00e9") == b"-ERR caf?\r\n"  # never raw non-ASCII


def test_multiline_dot_stuffing() -> None:
    body = b"Subject: x\r\n\r\n.hidden\r\n..two\r\nend"
    out = p.multiline(p.ok("follows"), body)
    assert out == b"+OK follows\r\nSubject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n.\r\n"
    assert p.multiline(p.ok(), b"") == b"+OK\r\n.\r\n"
    assert p.multiline(p.ok(), b"bare\nlf\n") == b"+OK\r\nbare\r\nlf\r\n.\r\n"


def unstuff(wire: bytes) -> bytes:
    lines = wire.split(b"\r\n")
    assert lines[0].startswith(b"+OK") and lines[-2:] == [b".", b""]
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines[1:-2])


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))))
def test_multiline_round_trip(lines: list[bytes]) -> None:
    body = b"".join(line + b"\r\n" for line in lines)
    assert unstuff(p.multiline(p.ok(), body)) == body


def test_line_reader_limits_and_splits() -> None:
    r = p.LineReader()
    assert r.feed(b"US") == []
    assert r.pending
    assert r.feed(b"ER a\r\nNOOP\nQU") == [b"USER a", b"NOOP"]
    assert r.feed(b"IT\r\n") == [b"QUIT"]
    long = b"X" * 300
    events = r.feed(long)
    assert len(events) == 1 and isinstance(events[0], p.LineTooLong)
    assert r.feed(b"more\r\nNOOP\r\n") == [b"NOOP"]  # the rest of the long line is skipped
    assert isinstance(r.feed(b"Y" * 254 + b"\r\n")[0], p.LineTooLong)  # 256 with CRLF


@given(st.binary(max_size=600), st.integers(min_value=1, max_value=50))
def test_line_reader_split_anywhere(data: bytes, cut: int) -> None:
    whole = p.LineReader().feed(data)
    r = p.LineReader()
    parts = r.feed(data[:cut]) + r.feed(data[cut:])
    assert [x if isinstance(x, bytes) else "long" for x in parts] == [
        x if isinstance(x, bytes) else "long" for x in whole
    ]


@given(st.binary(max_size=300))
def test_parse_never_raises_anything_else(line: bytes) -> None:
    try:
        p.parse(line)
    except p.ParseError:
        pass
