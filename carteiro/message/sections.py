"""BODY[section] and BINARY[section] content (RFC 9051 §6.4.5, RFC 3516), served from
the stored raw bytes and the precomputed part tree without re-parsing MIME.

Part numbering: the parts of a multipart are numbered from 1; a non-multipart message
has only part 1, its body. For a message/rfc822 (or message/global) part ``n``, the
numbers below it address the encapsulated message the same way, and ``n.HEADER``,
``n.TEXT`` and ``n.HEADER.FIELDS`` its header and text. Partial ``<origin.length>`` is
applied by the caller.
"""

from __future__ import annotations

from carteiro.imap.protocol.fetch_attrs import Section
from carteiro.message.decode import IDENTITY_ENCODINGS, UnknownEncoding, decode_transfer
from carteiro.message.headers import field_spans
from carteiro.message.meta import MessageMeta
from carteiro.message.parse import Part

__all__ = ["UnknownEncoding", "binary_bytes", "binary_size", "find_part", "section_bytes"]


def _message_parts(msg: Part) -> list[Part]:
    return msg.children if msg.type == "multipart" else [msg]


def find_part(root: Part, path: tuple[int, ...]) -> Part | None:
    """The entity a part number addresses (``()`` is the message itself), or None."""
    node = root
    siblings = _message_parts(root)
    for n in path:
        if n < 1 or n > len(siblings):
            return None
        node = siblings[n - 1]
        if node.type == "multipart":
            siblings = node.children
        elif node.message is not None:
            siblings = _message_parts(node.message)
        else:
            siblings = []
    return node


def header_fields(
    raw: bytes, start: int, end: int, names: tuple[str, ...], *, exclude: bool
) -> bytes:
    """The fields of the header ``raw[start:end]`` whose names are (``exclude=False``) or
    are not (``exclude=True``) in ``names``, in message order, continuation lines
    included, followed by a blank line (CRLF)."""
    wanted = {n.upper() for n in names}
    out: list[bytes] = []
    for name, s, e in field_spans(raw, start, end):
        if (name in wanted) != exclude:
            out.append(raw[s:e])
            if raw[e - 1] != 0x0A:
                out.append(b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def _message_section(raw: bytes, msg: Part, section: Section) -> bytes | None:
    text = section.text
    if text == "HEADER":
        return raw[msg.header_start : msg.body_start]
    if text == "TEXT":
        return raw[msg.body_start : msg.body_end]
    if text == "HEADER.FIELDS" or text == "HEADER.FIELDS.NOT":
        return header_fields(
            raw,
            msg.header_start,
            msg.body_start,
            section.fields,
            exclude=text == "HEADER.FIELDS.NOT",
        )
    return None


def section_bytes(raw: bytes, meta: MessageMeta, section: Section) -> bytes | None:
    """The bytes of ``BODY[section]`` exactly as stored, or None when the section does
    not exist (no such part; HEADER/TEXT of a part that is not a message; MIME of the
    whole message)."""
    root = meta.tree
    if not section.part:
        if section.text is None:
            return raw
        return _message_section(raw, root, section)
    part = find_part(root, section.part)
    if part is None:
        return None
    if section.text is None:
        return raw[part.body_start : part.body_end]
    if section.text == "MIME":
        return raw[part.header_start : part.body_start]
    if part.message is None:
        return None
    return _message_section(raw, part.message, section)


def binary_bytes(raw: bytes, meta: MessageMeta, part: tuple[int, ...]) -> bytes | None:
    """``BINARY[part]``: the part's body with its transfer encoding undone, or None for
    a part that does not exist. ``()`` is the whole message as stored.

    Raises :class:`UnknownEncoding` for a transfer encoding other than 7bit, 8bit,
    binary, base64 and quoted-printable (answer ``NO [UNKNOWN-CTE]``). Multipart and
    message bodies are returned as stored.
    """
    if not part:
        return raw
    node = find_part(meta.tree, part)
    if node is None:
        return None
    body = raw[node.body_start : node.body_end]
    if node.type == "multipart" or node.message is not None:
        return body
    return decode_transfer(body, node.encoding)


def binary_size(raw: bytes, meta: MessageMeta, part: tuple[int, ...]) -> int | None:
    """``BINARY.SIZE[part]``: the length of :func:`binary_bytes` (same errors)."""
    if part:
        node = find_part(meta.tree, part)
        if node is not None and (
            node.type == "multipart"
            or node.message is not None
            or node.encoding in IDENTITY_ENCODINGS
        ):
            return node.body_end - node.body_start
    data = binary_bytes(raw, meta, part)
    return None if data is None else len(data)
