"""BODY[section], BINARY[part] and BINARY.SIZE."""

from __future__ import annotations

import base64

import pytest
from test_message_parse import NESTED, crlf

from carteiro.imap.protocol.fetch_attrs import Section
from carteiro.message.meta import MessageMeta, analyse
from carteiro.message.sections import (
    UnknownEncoding,
    binary_bytes,
    binary_size,
    find_part,
    section_bytes,
)

RAW = crlf(NESTED)
META = analyse(RAW)


def sec(spec: str, *fields: str) -> bytes | None:
    """``"1.2.MIME"`` style → section bytes."""
    part: list[int] = []
    text: str | None = None
    items = spec.split(".") if spec else []
    for i, item in enumerate(items):
        if item.isdigit():
            part.append(int(item))
        else:
            text = ".".join(items[i:])
            break
    return section_bytes(RAW, META, Section(tuple(part), text, tuple(fields)))


def test_whole_header_text() -> None:
    assert sec("") == RAW
    header = sec("HEADER")
    text = sec("TEXT")
    assert header is not None and text is not None
    assert header.endswith(b'boundary="outer"\r\n\r\n')
    assert text.startswith(b"preamble\r\n--outer")
    assert header + text == RAW
    assert sec("MIME") is None


def test_parts() -> None:
    assert sec("1.1") == b"plain"
    assert sec("1.2") == b"<b>html</b>"
    assert sec("1.1.MIME") == b"Content-Type: text/plain\r\n\r\n"
    assert sec("3") == b"AAEC"
    mime = sec("3.MIME")
    assert mime is not None and mime.startswith(b"Content-Type: application/octet-stream")
    assert mime.endswith(b'filename="a.bin"\r\n\r\n')
    one = sec("1")
    assert one is not None and one.startswith(b"--inner\r\n") and one.endswith(b"--inner--")


def test_message_rfc822_part() -> None:
    assert sec("2") == b"From: x@y.z\r\nSubject: inner\r\n\r\ninner body"
    assert sec("2.HEADER") == b"From: x@y.z\r\nSubject: inner\r\n\r\n"
    assert sec("2.TEXT") == b"inner body"
    assert sec("2.1") == b"inner body"  # non-multipart encapsulated message: 1 is its body
    assert sec("2.HEADER.FIELDS", "SUBJECT") == b"Subject: inner\r\n\r\n"
    assert sec("2.MIME") == b"Content-Type: message/rfc822\r\n\r\n"
    assert sec("2.2") is None


def test_missing_parts() -> None:
    for spec in ("4", "0", "1.3", "1.1.1", "3.1", "1.HEADER", "3.TEXT", "9.MIME"):
        assert sec(spec) is None, spec


def test_parts_concatenate() -> None:
    # every child's MIME header followed by its body is its slice of the parent
    for path in ((1,), (1, 1), (1, 2), (2,), (3,)):
        p = find_part(META.tree, path)
        assert p is not None
        label = ".".join(map(str, path))
        assert (sec(label + ".MIME") or b"") + (sec(label) or b"") == RAW[
            p.header_start : p.body_end
        ]


def test_non_multipart_message_part_one() -> None:
    raw = b"Subject: s\r\nContent-Type: text/plain\r\n\r\nhello"
    meta = analyse(raw)
    assert section_bytes(raw, meta, Section((1,))) == b"hello"
    assert section_bytes(raw, meta, Section((1,), "MIME")) == raw[:-5]
    assert section_bytes(raw, meta, Section((2,))) is None
    assert section_bytes(raw, meta, Section((1, 1))) is None


def test_nested_message_with_multipart() -> None:
    inner = crlf(
        "Subject: in\nContent-Type: multipart/mixed; boundary=q\n\n"
        "--q\n\nfirst\n--q\n\nsecond\n--q--\n"
    )
    raw = b"Subject: out\r\nContent-Type: message/rfc822\r\n\r\n" + inner
    meta = analyse(raw)
    assert section_bytes(raw, meta, Section((1,))) == inner
    assert section_bytes(raw, meta, Section((1, 1))) == b"first"
    assert section_bytes(raw, meta, Section((1, 2))) == b"second"
    assert (
        section_bytes(raw, meta, Section((1,), "HEADER")) == inner[: inner.index(b"\r\n\r\n") + 4]
    )


HDR = b"From: a@b\r\nSubject: one\r\n\ttwo\r\nTo: c@d\r\nsubject: again\r\nX-Last: no newline"


def test_header_fields() -> None:
    raw = HDR
    meta = analyse(raw)
    got = section_bytes(raw, meta, Section((), "HEADER.FIELDS", ("SUBJECT", "X-LAST")))
    assert got == b"Subject: one\r\n\ttwo\r\nsubject: again\r\nX-Last: no newline\r\n\r\n"
    got = section_bytes(raw, meta, Section((), "HEADER.FIELDS.NOT", ("SUBJECT", "x-last")))
    assert got == b"From: a@b\r\nTo: c@d\r\n\r\n"
    assert section_bytes(raw, meta, Section((), "HEADER.FIELDS", ("NONE",))) == b"\r\n"


def test_sections_after_storage_round_trip() -> None:
    meta = MessageMeta.from_bytes(META.to_bytes())
    assert section_bytes(RAW, meta, Section((2,), "TEXT")) == b"inner body"
    assert section_bytes(RAW, meta, Section((), "HEADER.FIELDS", ("SUBJECT",))) == (
        b"Subject: nested\r\n\r\n"
    )


# --- BINARY ------------------------------------------------------------------------------


def binary_message(cte: str, body: bytes) -> bytes:
    return (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: "
        + cte.encode()
        + b"\r\n\r\n"
        + body
        + b"\r\n--b--\r\n"
    )


def test_binary_base64() -> None:
    data = bytes(range(256)) * 3
    enc = base64.encodebytes(data).replace(b"\n", b"\r\n").rstrip()
    raw = binary_message("base64", enc)
    meta = analyse(raw)
    assert binary_bytes(raw, meta, (1,)) == data
    assert binary_size(raw, meta, (1,)) == len(data)
    assert binary_bytes(raw, meta, ()) == raw
    assert binary_bytes(raw, meta, (2,)) is None
    assert binary_size(raw, meta, (2,)) is None


def test_binary_base64_damaged() -> None:
    raw = binary_message("BASE64", b"AAE C\r\n!!A")  # junk characters, bad padding
    assert binary_bytes(raw, analyse(raw), (1,)) == b"\x00\x01\x02"


def test_binary_quoted_printable() -> None:
    raw = binary_message("quoted-printable", b"caf=C3=A9 =\r\nlong line=3D\r\nnext")
    meta = analyse(raw)
    assert binary_bytes(raw, meta, (1,)) == "café long line=\r\nnext".encode()
    assert binary_size(raw, meta, (1,)) == len("café long line=\r\nnext".encode())


def test_binary_identity_and_unknown() -> None:
    raw = binary_message("8bit", b"\xff\x00raw")
    meta = analyse(raw)
    assert binary_bytes(raw, meta, (1,)) == b"\xff\x00raw"
    assert binary_size(raw, meta, (1,)) == 5
    raw = binary_message("x-uuencode", b"begin 644 x")
    meta = analyse(raw)
    with pytest.raises(UnknownEncoding):
        binary_bytes(raw, meta, (1,))
    with pytest.raises(UnknownEncoding):
        binary_size(raw, meta, (1,))


def test_binary_of_multipart_and_message_is_as_stored() -> None:
    meta = META
    assert binary_bytes(RAW, meta, (1,)) == sec("1")
    assert binary_bytes(RAW, meta, (2,)) == sec("2")
    assert binary_bytes(RAW, meta, (3,)) == b"\x00\x01\x02"
    assert binary_size(RAW, meta, (2,)) == len(sec("2") or b"")
