"""Property tests: arbitrary input never raises and always yields grammatical items;
generated MIME trees parse back to the offsets they were built with."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from message_testlib import check_body, check_envelope, parse_sexpr

from carteiro.imap.protocol.fetch_attrs import Section
from carteiro.message.decode import UnknownEncoding
from carteiro.message.meta import MessageMeta, analyse
from carteiro.message.parse import Part
from carteiro.message.search import address_text, body_text, header_text, header_values
from carteiro.message.sections import binary_bytes, binary_size, section_bytes

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FRAGMENTS = [
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b'Content-Type: multipart/digest; boundary="b"\n',
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: message/global\n",
    b"Content-Type: text/plain; charset=utf-8; name*0*=utf-8''%E2; name*1=x\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\n",
    b'Content-Disposition: attachment; filename="a\\"b"\r\n',
    b"Content-Language: en, fr\r\n",
    b"--b\r\n",
    b"--b--\n",
    b"--b",
    b'From: "A, B" <a@b>, G: c@d;, (comment) e@f\r\n',
    b'To: <@r:u@h>, "unterminated\r\n',
    b"Subject: =?utf-8?q?=C3=A9?= \xff\xfe\r\n",
    b"Date: Mon, 01 Jan 2024 02:41:02 +0200\r\n",
    b"Date: 99 Foo 0000 99:99\r\n",
    b" folded continuation\r\n",
    b"no colon line\r\n",
    b": empty name\r\n",
    b"AAECAw==",
    b"=3D=\r\n",
    b'\x00\x80\xff(")\\',
]

mime_soup = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map(b"".join)
anything = st.one_of(st.binary(max_size=400), mime_soup)


def exercise(raw: bytes) -> None:
    meta = analyse(raw)
    check_envelope(parse_sexpr(meta.envelope))
    check_body(parse_sexpr(meta.body), ext=False)
    check_body(parse_sexpr(meta.bodystructure), ext=True)
    stored = MessageMeta.from_bytes(meta.to_bytes())
    assert stored == meta
    assert section_bytes(raw, stored, Section()) == raw
    header = section_bytes(raw, stored, Section((), "HEADER")) or b""
    assert header + (section_bytes(raw, stored, Section((), "TEXT")) or b"") == raw
    section_bytes(raw, stored, Section((), "HEADER.FIELDS", ("SUBJECT", "FROM")))
    for path in ((1,), (1, 1), (2,), (1, 2, 1)):
        for text in (None, "MIME", "HEADER", "TEXT", "HEADER.FIELDS.NOT"):
            section_bytes(raw, stored, Section(path, text, ("TO",)))
        try:
            binary_bytes(raw, stored, path)
            binary_size(raw, stored, path)
        except UnknownEncoding:
            pass
    body_text(raw, stored)
    header_text(raw, stored)
    header_values(raw, stored, "subject")
    address_text(raw, stored, "from")


@FAST
@given(anything)
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    exercise(raw)


@FAST
@given(mime_soup, st.booleans())
def test_mime_soup_never_raises(raw: bytes, lf: bool) -> None:
    exercise(raw.replace(b"\r\n", b"\n") if lf else raw)


# --- generated trees ---------------------------------------------------------------------

BODY_BITS = [b"hello", b"world", b" ", b"\xc3\xa9", b"--", b"-", b"\t", b"EOL", b"x: y"]
bodies = st.lists(st.sampled_from(BODY_BITS), max_size=8).map(b"".join)

Spec = tuple[Any, ...]
leaf = bodies.map(lambda b: ("leaf", b))
trees = st.recursive(
    leaf,
    lambda kids: st.one_of(
        st.tuples(st.just("multi"), st.lists(kids, min_size=1, max_size=4), st.booleans()),
        st.tuples(st.just("message"), kids),
    ),
    max_leaves=12,
)

Expected = tuple[int, int, int, str, list[Any], Any]


def build(spec: Spec, out: bytearray, eol: bytes, counter: list[int]) -> Expected:
    hs = len(out)
    kind = spec[0]
    if kind == "leaf":
        out += b"Content-Type: text/plain;" + eol + b" charset=utf-8" + eol + b"X-A: 1" + eol + eol
        bs = len(out)
        out += spec[1].replace(b"EOL", eol)
        return (hs, bs, len(out), "text/plain", [], None)
    if kind == "message":
        out += b"Content-Type: message/rfc822" + eol + eol
        bs = len(out)
        inner = build(spec[1], out, eol, counter)
        return (hs, bs, len(out), "message/rfc822", [], inner)
    counter[0] += 1
    boundary = b"bnd%dq" % counter[0]
    out += b'Content-Type: multipart/mixed; boundary="' + boundary + b'"' + eol + eol
    bs = len(out)
    if spec[2]:
        out += b"preamble" + eol
    children = []
    for child in spec[1]:
        out += b"--" + boundary + eol
        children.append(build(child, out, eol, counter))
        out += eol
    out += b"--" + boundary + b"--"
    if spec[2]:
        out += eol + b"epilogue"
    return (hs, bs, len(out), "multipart/mixed", children, None)


def shape(p: Part) -> Expected:
    return (
        p.header_start,
        p.body_start,
        p.body_end,
        f"{p.type}/{p.subtype}",
        [shape(c) for c in p.children],
        None if p.message is None else shape(p.message),
    )


@FAST
@given(trees, st.sampled_from([b"\r\n", b"\n"]))
def test_generated_trees_parse_back(spec: Spec, eol: bytes) -> None:
    out = bytearray(b"Subject: generated" + eol)
    root_spec = spec
    expected = build(root_spec, out, eol, [0])
    raw = bytes(out)
    meta = analyse(raw)
    got = shape(meta.tree)
    # the root header also holds the Subject line
    assert got[1:] == expected[1:]
    assert got[0] == 0
    exercise(raw)
    # every leaf's body is served byte for byte
    for p in meta.tree.walk():
        if p.type == "text":
            assert raw[p.body_start : p.body_end].count(b"Content-Type") == 0
