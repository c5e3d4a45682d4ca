"""The string-form tests of ``wire`` against their definitions in RFC 9051's grammar,
written out byte by byte (the module uses regular expressions for speed)."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from carteiro.imap.protocol import wire

ATOM_SPECIALS = set(b'(){ %*"\\]')  # atom-specials without CTL (checked by range)


def atom_by_definition(data: bytes, astring: bool) -> bool:
    specials = ATOM_SPECIALS - ({ord("]")} if astring else set())
    return bool(data) and all(32 < c < 127 and c not in specials for c in data)


def quotable_by_definition(data: bytes, utf8: bool) -> bool:
    if len(data) > 1024 or any((c < 32 and c != 9) or c == 127 for c in data):
        return False
    try:
        data.decode("utf-8" if utf8 else "ascii")
    except UnicodeDecodeError:
        return False
    return True


# bytes biased towards the boundaries: controls, specials, DEL, 8-bit
_edge = st.sampled_from(list(b'\x00\t\n\r\x1f ()[]{}%*"\\\x7f\x80\xc3\xa9\xffaZ0~'))
_bytes = st.one_of(st.binary(max_size=40), st.lists(_edge, max_size=40).map(bytes))


@given(_bytes, st.booleans())
@example(b"", False)
@example(b"INBOX]", True)
@example(b"a\n", False)
def test_is_atom_matches_the_grammar(data: bytes, astring: bool) -> None:
    assert wire.is_atom(data, astring=astring) == atom_by_definition(data, astring)


@given(_bytes, st.booleans())
@example(b"caf\xc3\xa9", True)
@example(b"caf\xc3\xa9", False)
@example(b"tab\there", False)
@example(b"x" * 1025, False)
def test_quoted_ok_matches_the_rules(data: bytes, utf8: bool) -> None:
    assert wire.quoted_ok(data, utf8=utf8) == quotable_by_definition(data, utf8)


@given(_bytes)
def test_string_round_trips_through_quoted_or_literal(data: bytes) -> None:
    out = wire.string(data, utf8=True)
    if out.startswith(b'"'):
        inner = out[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
        assert inner == data
    else:
        head, _, body = out.partition(b"}\r\n")
        assert head == b"{%d" % len(data) and body == data
