"""Every message of the sample mbox: parse, grammar of the serialised items, sections,
agreement with the stdlib parser on the shape of the tree, storage round trip."""

from __future__ import annotations

import email
import email.policy
from email.message import Message

import pytest
from message_testlib import check_body, check_envelope, parse_sexpr, sample_messages

from carteiro.imap.protocol.fetch_attrs import Section
from carteiro.message.decode import decode_transfer
from carteiro.message.meta import MessageMeta, analyse
from carteiro.message.parse import Part
from carteiro.message.search import body_text
from carteiro.message.sections import binary_bytes, section_bytes

MESSAGES = sample_messages()
VARIANTS = [("lf", m) for m in MESSAGES] + [("crlf", m.replace(b"\n", b"\r\n")) for m in MESSAGES]


def test_sample_size() -> None:
    assert len(MESSAGES) == 100


def part_numbers(root: Part) -> list[tuple[tuple[int, ...], Part]]:
    """(part number, entity) for every addressable leaf or container below the root."""
    out: list[tuple[tuple[int, ...], Part]] = []

    def visit(container: Part, prefix: tuple[int, ...]) -> None:
        kids = container.children if container.type == "multipart" else [container]
        for i, kid in enumerate(kids, 1):
            num = (*prefix, i)
            out.append((num, kid))
            if kid.type == "multipart":
                visit(kid, num)
            elif kid.message is not None:
                visit(kid.message, num)

    visit(root, ())
    return out


def stdlib_types(raw: bytes) -> list[str]:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    return [m.get_content_type() for m in msg.walk()]


@pytest.mark.parametrize(
    ("kind", "raw"), VARIANTS, ids=[f"{k}{i % 100}" for i, (k, _) in enumerate(VARIANTS)]
)
def test_sample_message(kind: str, raw: bytes) -> None:
    meta = analyse(raw)
    check_envelope(parse_sexpr(meta.envelope))
    check_body(parse_sexpr(meta.body), ext=False)
    check_body(parse_sexpr(meta.bodystructure), ext=True)
    assert meta.sent_date is not None

    assert section_bytes(raw, meta, Section()) == raw
    header = section_bytes(raw, meta, Section((), "HEADER"))
    text = section_bytes(raw, meta, Section((), "TEXT"))
    assert header is not None and text is not None and header + text == raw

    root = meta.tree
    assert [f"{p.type}/{p.subtype}" for p in root.walk()] == stdlib_types(raw)
    for num, part in part_numbers(root):
        mime = section_bytes(raw, meta, Section(num, "MIME"))
        body = section_bytes(raw, meta, Section(num))
        assert mime is not None and body is not None
        assert mime + body == raw[part.header_start : part.body_end]
        if part.message is not None:
            h = section_bytes(raw, meta, Section(num, "HEADER"))
            t = section_bytes(raw, meta, Section(num, "TEXT"))
            assert h is not None and t is not None and h + t == body
        if part.type not in ("multipart", "message"):
            assert binary_bytes(raw, meta, num) is not None

    stored = MessageMeta.from_bytes(meta.to_bytes())
    assert stored == meta
    assert stored.to_bytes() == meta.to_bytes()


@pytest.mark.parametrize("raw", MESSAGES[:40])
def test_sample_leaf_payloads_match_stdlib(raw: bytes) -> None:
    meta = analyse(raw)
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    ours = [p for p in meta.tree.walk() if p.type not in ("multipart", "message")]
    theirs: list[Message] = [
        m for m in msg.walk() if not m.is_multipart() and m.get_content_maintype() != "message"
    ]
    assert len(ours) == len(theirs)
    for part, m in zip(ours, theirs, strict=True):
        payload = m.get_payload(decode=True)
        assert isinstance(payload, bytes)
        body = raw[part.body_start : part.body_end]
        assert decode_transfer(body, part.encoding).rstrip(b"\n") == payload.rstrip(b"\n")


def test_sample_first_envelope_golden() -> None:
    meta = analyse(MESSAGES[1])
    assert meta.envelope == (
        b'("Mon, 01 Jan 2024 09:28:57 +0200" "=?utf-8?q?=C3=9Cbersicht_der_=C3=84nderungen?=" '
        b'(("Mallory" NIL "mallory" "example.biz")) (("Mallory" NIL "mallory" "example.biz")) '
        b'(("Mallory" NIL "mallory" "example.biz")) '
        b'(("Judy Jetson" NIL "judy" "example.io")("Heidi Klum" NIL "heidi" "example.co.uk")'
        b'("Carol Chen" NIL "carol" "lists.example.net")) NIL NIL NIL '
        b'"<1704094137.b9aa50.imaptest@example.biz>")'
    )


def test_sample_body_text_is_searchable() -> None:
    found = 0
    for raw in MESSAGES:
        text = body_text(raw, analyse(raw))
        assert isinstance(text, str)
        found += "\ufffd" not in text
    assert found == len(MESSAGES)
