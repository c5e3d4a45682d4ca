"""Text for IMAP SEARCH (RFC 9051 §6.4.4): decoded header values, address text and
body text. Matching is a case-insensitive substring test; callers compare
``needle.casefold() in haystack.casefold()`` (see :func:`contains`)."""

from __future__ import annotations

from carteiro.message.decode import (
    UnknownEncoding,
    decode_charset,
    decode_header_value,
    decode_transfer,
)
from carteiro.message.envelope import parse_addresses
from carteiro.message.headers import HeaderField, parse_fields
from carteiro.message.meta import MessageMeta
from carteiro.message.parse import Part


def _root_fields(raw: bytes, meta: MessageMeta) -> list[HeaderField]:
    root = meta.tree
    if root.headers is not None:
        return root.headers
    return parse_fields(raw, root.header_start, root.body_start)


def header_values(raw: bytes, meta: MessageMeta, field: str) -> list[str]:
    """Every value of the top-level header field ``field`` (any case), in order, unfolded
    and decoded (RFC 2047 words, raw 8-bit as UTF-8)."""
    key = field.lower()
    return [decode_header_value(v) for n, v in _root_fields(raw, meta) if n.lower() == key]


def address_text(raw: bytes, meta: MessageMeta, field: str) -> str:
    """Text to match FROM/TO/CC/BCC against: each decoded header value followed by its
    addresses as ``mailbox@host`` and their decoded display names, one per line."""
    lines: list[str] = []
    key = field.lower()
    for name, value in _root_fields(raw, meta):
        if name.lower() != key:
            continue
        lines.append(decode_header_value(value))
        for pname, _, mailbox, host in parse_addresses(value.decode("latin-1")):
            text = (mailbox or "") + ("@" + host if host else "")
            if pname:
                text = decode_header_value(pname.encode("latin-1")) + " <" + text + ">"
            if text:
                lines.append(text)
    return "\n".join(lines)


def header_text(raw: bytes, meta: MessageMeta) -> str:
    """The whole top-level header, one decoded ``Name: value`` line per field."""
    return "\n".join(f"{n}: {decode_header_value(v)}" for n, v in _root_fields(raw, meta))


def _text_parts(part: Part, out: list[Part]) -> None:
    for p in part.walk():
        if p.type == "text":
            out.append(p)


def body_text(raw: bytes, meta: MessageMeta) -> str:
    """Decoded text of every text/* part (also inside attached messages), joined by
    newlines. Transfer encodings and charsets are undone; HTML stays markup."""
    parts: list[Part] = []
    _text_parts(meta.tree, parts)
    texts: list[str] = []
    for p in parts:
        body = raw[p.body_start : p.body_end]
        try:
            body = decode_transfer(body, p.encoding)
        except UnknownEncoding:
            pass
        texts.append(decode_charset(body, p.charset))
    return "\n".join(texts)


def part_headers_text(raw: bytes, meta: MessageMeta) -> str:
    """The header of every entity below the top one, decoded as :func:`header_text`:
    MIME part headers (``Content-Disposition: attachment; filename=...``) and the
    headers of attached messages. RFC 9051 §6.4.4 has TEXT match "the header
    (including MIME header fields) or body"; attached messages' headers are body."""
    lines: list[str] = []
    for p in meta.tree.walk()[1:]:
        fields = (
            p.headers if p.headers is not None else parse_fields(raw, p.header_start, p.body_start)
        )
        lines.extend(f"{n}: {decode_header_value(v)}" for n, v in fields)
    return "\n".join(lines)


def folded_header(raw: bytes, meta: MessageMeta) -> str:
    """What SEARCH TEXT matches beyond the body text: :func:`header_text` and
    :func:`part_headers_text`, case-folded (BODY, like Dovecot's, skips every header).
    The full-text index stores exactly this, so an index answer equals a scan's."""
    parts = part_headers_text(raw, meta)
    text = header_text(raw, meta)
    return (text + "\n" + parts if parts else text).casefold()


def folded_body(raw: bytes, meta: MessageMeta) -> str:
    """What SEARCH BODY and TEXT match in the body: :func:`body_text`, case-folded."""
    return body_text(raw, meta).casefold()


def contains(haystack: str, needle: str) -> bool:
    """Case-insensitive substring match (full Unicode case folding)."""
    return needle.casefold() in haystack.casefold()
