"""Header block scanning (RFC 5322 §2.2, §3.6) over raw bytes.

Everything here is tolerant: folded lines, duplicate fields, lines without a colon,
8-bit (raw UTF-8 or otherwise) content, CRLF or bare LF line endings. Nothing raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# One field: a name (no white space, no colon), optional white space before the colon
# (obs-syntax), the value and any continuation lines (starting with SP or HTAB).
# ``.`` matches CR, so a CRLF line ending leaves a trailing CR that callers strip.
_FIELD = re.compile(rb"^([^:\s]+)[ \t]*:(.*(?:\n[ \t].*)*)\n?", re.MULTILINE)

# a line break followed by an empty line (CRLF or bare LF, mixed)
_BLANK_LINE = re.compile(rb"\n\r?\n")

HeaderField = tuple[str, bytes]
"""``(name, value)``: the name as written (latin-1 decoded), the value unfolded and
stripped, still raw bytes (not RFC 2047 decoded)."""


def header_end(raw: bytes, start: int, end: int) -> int:
    """Offset just past the blank line that ends the header starting at ``start``.

    If there is no blank line before ``end``, the whole entity is header and ``end`` is
    returned (the body is then empty).
    """
    if start >= end:
        return end
    first = raw[start]
    if first == 0x0A:
        return start + 1
    if first == 0x0D and start + 1 < end and raw[start + 1] == 0x0A:
        return start + 2
    m = _BLANK_LINE.search(raw, start, end)
    return end if m is None else m.end()


def unfold(value: bytes) -> bytes:
    """Remove the line breaks of folding (RFC 5322 §2.2.3) and surrounding white space."""
    if b"\n" in value:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    return value.strip(b" \t\r")


def parse_fields(raw: bytes, start: int, end: int) -> list[HeaderField]:
    """All fields of the header block ``raw[start:end]`` in message order.

    ``start`` must be 0 or just after a LF (true of every header start the parser
    records). Lines that are not fields are skipped.
    """
    out: list[HeaderField] = []
    for m in _FIELD.finditer(raw, start, end):
        out.append((m.group(1).decode("latin-1"), unfold(m.group(2))))
    return out


def field_spans(raw: bytes, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """``(NAME, span_start, span_end)`` for every field: the upper-cased name and the raw
    extent of its lines, continuation lines and final line break included."""
    for m in _FIELD.finditer(raw, start, end):
        yield m.group(1).decode("latin-1").upper(), m.start(), m.end()


def first_value(fields: list[HeaderField], name: str) -> bytes | None:
    """The value of the first field called ``name`` (lower-case), or None."""
    for fname, value in fields:
        if fname.lower() == name:
            return value
    return None


def to_text(value: bytes) -> str:
    """Raw header bytes as text: UTF-8 when valid, else latin-1 (never raises)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
