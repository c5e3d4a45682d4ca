"""Modified UTF-7 (RFC 3501 §5.1.3) and response serialisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carteiro.imap.protocol import mutf7, responses


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("", ""),
        ("INBOX", "INBOX"),
        ("&", "&-"),
        ("a&b", "a&-b"),
        ("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Entw\u00fcrfe", "Entw&APw-rfe"),
        ("\u00e9t\u00e9", "&AOk-t&AOk-"),
        ("\U0001f600", "&2D3eAA-"),
        ("a\tb", "a&AAk-b"),
        ("\u00e9&", "&AOk-&-"),
    ],
)
def test_mutf7_vectors(text: str, encoded: str) -> None:
    assert mutf7.encode(text) == encoded
    assert mutf7.decode(encoded) == text


@pytest.mark.parametrize(
    "bad",
    [
        "&",  # unterminated
        "&U,BTFw",  # unterminated
        "&U,BTF-",  # leftover bits
        "&AGE-",  # printable ASCII encoded
        "&AOk=-",  # padding not allowed
        "&A/k-",  # "/" is not in the modified alphabet
        "&2D0-",  # lone high surrogate
        "&AA-",  # incomplete UTF-16 unit
        "\u00e9",  # raw non-ASCII
        "a\tb",  # raw control character
        "&AOk-&AOk-",  # must be one sequence: &AOkA6Q-
    ],
)
def test_mutf7_invalid(bad: str) -> None:
    with pytest.raises(ValueError):
        mutf7.decode(bad)


def test_mutf7_encode_lone_surrogate() -> None:
    with pytest.raises(ValueError):
        mutf7.encode("\ud800")


@given(st.text())
def test_mutf7_round_trip(text: str) -> None:
    encoded = mutf7.encode(text)
    assert encoded.isascii()
    assert mutf7.decode(encoded) == text


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_mutf7_decode_is_canonical(text: str) -> None:
    try:
        decoded = mutf7.decode(text)
    except ValueError:
        return
    assert mutf7.encode(decoded) == text


def test_tagged_and_untagged() -> None:
    assert responses.tagged("a1", "OK", "LOGIN completed") == b"a1 OK LOGIN completed\r\n"
    assert responses.tagged("a1", "NO", "Too big", "TOOBIG") == b"a1 NO [TOOBIG] Too big\r\n"
    assert responses.tagged(None, "BAD", "Invalid tag") == b"* BAD Invalid tag\r\n"
    assert responses.untagged_status("OK", "x", "UIDNEXT 4") == b"* OK [UIDNEXT 4] x\r\n"
    assert responses.untagged(b"3 EXISTS") == b"* 3 EXISTS\r\n"
    assert responses.continuation() == b"+ Ready\r\n"
    assert responses.continuation("go on") == b"+ go on\r\n"
    assert responses.continuation_data(b"") == b"+ \r\n"
    with pytest.raises(ValueError):
        responses.tagged("a", "MAYBE", "x")
    with pytest.raises(ValueError):
        responses.continuation_data(b"a\r\n")


def test_responses_are_sanitised() -> None:
    out = responses.tagged("a", "NO", "bad\r\n* OK injected\x00", "X]\r\nY")
    assert out.count(b"\r\n") == 1 and out.endswith(b"\r\n")
    assert out == b"a NO [X   Y] bad  * OK injected \r\n"
    assert responses.untagged_status("BYE", "caf\u00e9") == b"* BYE caf?\r\n"
    assert responses.continuation("\r\n") == b"+   \r\n"
    assert responses.tagged("a", "OK", "") == b"a OK OK\r\n"


@given(st.text(), st.one_of(st.none(), st.text()))
def test_sanitised_is_single_line(text: str, code: str | None) -> None:
    out = responses.tagged("t", "OK", text, code)
    assert out.count(b"\n") == 1 and out.count(b"\r") == 1 and out.isascii()


def test_mailbox_name() -> None:
    assert responses.mailbox_name("INBOX", False) == b"INBOX"
    assert responses.mailbox_name("Entw\u00fcrfe", False) == b"Entw&APw-rfe"
    assert responses.mailbox_name("Entw\u00fcrfe", True) == b'"Entw\xc3\xbcrfe"'
    assert responses.mailbox_name("a b", False) == b'"a b"'
    assert responses.mailbox_name("Sent", True) == b"Sent"
    assert responses.mailbox_name("", True) == b'""'
    assert responses.mailbox_name("NIL", False) == b'"NIL"'
