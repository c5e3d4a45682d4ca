"""BODY and BODYSTRUCTURE (RFC 9051 §7.5.2, grammar ``body`` in §9).

Media type and subtype, parameter names, transfer encoding and disposition type are
upper-cased; parameter values and the other strings are sent as written. Text parts
without a charset get ``("CHARSET" "us-ascii")`` (the RFC 2045 default). A multipart
without any child (no boundary found) is given one empty text/plain child, since the
grammar needs at least one.
"""

from __future__ import annotations

from carteiro.imap.protocol import wire
from carteiro.message.envelope import envelope
from carteiro.message.headers import HeaderField, parse_fields
from carteiro.message.params import Params, parse_disposition
from carteiro.message.parse import Part

_EMPTY_TEXT_BODY = b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0)'
_EMPTY_TEXT_EXT = _EMPTY_TEXT_BODY[:-1] + b" NIL NIL NIL NIL)"
_US_ASCII = (b'"CHARSET"', b'"us-ascii"')


def _s(value: str) -> bytes:
    return wire.string(value.encode("latin-1"), utf8=False)


def _ns(value: bytes | None) -> bytes:
    return wire.nstring(value, utf8=False)


def _params(params: Params, text: bool = False) -> bytes:
    items: list[bytes] = []
    has_charset = False
    for name, value in params:
        if name == "charset":
            has_charset = True
        items.append(_s(name.upper()))
        items.append(_s(value))
    if text and not has_charset:
        items.extend(_US_ASCII)
    if not items:
        return b"NIL"
    return b"(" + b" ".join(items) + b")"


class _Ext:
    """The header fields BODYSTRUCTURE needs of one entity."""

    __slots__ = ("id", "description", "md5", "disposition", "language", "location")

    def __init__(self, fields: list[HeaderField]) -> None:
        self.id: bytes | None = None
        self.description: bytes | None = None
        self.md5: bytes | None = None
        self.disposition: bytes | None = None
        self.language: bytes | None = None
        self.location: bytes | None = None
        for name, value in fields:
            key = name.lower()
            if not key.startswith("content-"):
                continue
            key = key[8:]
            if key in ("id", "description", "md5", "disposition", "language", "location"):
                if getattr(self, key) is None:
                    setattr(self, key, value)

    def tail(self) -> bytes:
        """``SP body-fld-dsp SP body-fld-lang SP body-fld-loc``."""
        dsp = b"NIL"
        if self.disposition:
            parsed = parse_disposition(self.disposition.decode("latin-1"))
            if parsed is not None:
                dsp = b"(" + _s(parsed[0].upper()) + b" " + _params(parsed[1]) + b")"
        lang = b"NIL"
        if self.language:
            tags = [t.strip() for t in self.language.decode("latin-1").split(",")]
            tags = [t for t in tags if t]
            if len(tags) == 1:
                lang = _s(tags[0])
            elif tags:
                lang = b"(" + b" ".join(_s(t) for t in tags) + b")"
        return b" " + dsp + b" " + lang + b" " + _ns(self.location)


def _fields_of(raw: bytes, part: Part) -> list[HeaderField]:
    if part.headers is not None:
        return part.headers
    return parse_fields(raw, part.header_start, part.body_start)


def structures(raw: bytes, part: Part) -> tuple[bytes, bytes]:
    """``(BODY, BODYSTRUCTURE)`` of the entity ``part`` (normally the message root)."""
    ext = _Ext(_fields_of(raw, part))
    if part.type == "multipart":
        if part.children:
            pairs = [structures(raw, child) for child in part.children]
            kids_b = b"".join(p[0] for p in pairs)
            kids_x = b"".join(p[1] for p in pairs)
        else:
            kids_b, kids_x = _EMPTY_TEXT_BODY, _EMPTY_TEXT_EXT
        sub = _s(part.subtype.upper())
        body = b"(" + kids_b + b" " + sub + b")"
        bstruct = b"(" + kids_x + b" " + sub + b" " + _params(part.params) + ext.tail() + b")"
        return body, bstruct
    is_text = part.type == "text"
    msg = part.message
    mtype, subtype = part.type, part.subtype
    if msg is None and mtype == "message" and subtype in ("rfc822", "global"):
        # Not parsed as a message (encoded, or too deep): the grammar would require an
        # envelope, so describe it as opaque data.
        mtype, subtype = "application", "octet-stream"
    head = b" ".join(
        (
            _s(mtype.upper()),
            _s(subtype.upper()),
            _params(part.params, is_text),
            _ns(ext.id),
            _ns(ext.description),
            _s(part.encoding.upper()),
            str(part.body_end - part.body_start).encode(),
        )
    )
    lines = str(part.lines).encode()
    if msg is not None:
        inner_b, inner_x = structures(raw, msg)
        env = envelope(_fields_of(raw, msg))
        body = b"(" + head + b" " + env + b" " + inner_b + b" " + lines + b")"
        bstruct = head + b" " + env + b" " + inner_x + b" " + lines
    elif is_text:
        body = b"(" + head + b" " + lines + b")"
        bstruct = head + b" " + lines
    else:
        body = b"(" + head + b")"
        bstruct = head
    return body, b"(" + bstruct + b" " + _ns(ext.md5) + ext.tail() + b")"
