"""FETCH attribute parsing (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 8970 PREVIEW)."""

from __future__ import annotations

import re

from carteiro.imap.protocol.fetch_attrs import (
    MACRO_ALL,
    MACRO_FAST,
    MACRO_FULL,
    BinarySize,
    BodySection,
    FetchAttr,
    Section,
    Simple,
)
from carteiro.imap.protocol.grammar import MAX_NUMBER64, Cursor, ParseError

_NAME = re.compile(rb"[A-Za-z0-9.]+")
_PART = re.compile(rb"[0-9]+")
_TEXT_SPEC = re.compile(rb"[A-Za-z]+(?:\.[A-Za-z]+)*")
_PARTIAL = re.compile(rb"<([0-9]{1,20})\.([0-9]{1,20})>")

_SIMPLE = {s.value: s for s in Simple}
_MACROS = {"ALL": MACRO_ALL, "FAST": MACRO_FAST, "FULL": MACRO_FULL}
_SECTIONED = frozenset({"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"})
#: RFC 8970 ``preview-mod``s. ``LAZY`` lets the server answer NIL rather than compute a
#: preview now; the handler may always compute it, so the modifier is not kept.
PREVIEW_MODIFIERS = frozenset({"LAZY"})


def _part_number(cur: Cursor) -> int:
    m = cur.match(_PART)
    if m is None:
        raise ParseError("Expected section part number")
    digits = m.group()
    if digits[0] == ord("0") or len(digits) > 10 or int(digits) > 2**32 - 1:
        raise ParseError("Invalid section part number")
    return int(digits)


def _header_list(cur: Cursor) -> tuple[str, ...]:
    cur.expect(b"(", "header field list")
    names: list[str] = []
    while True:
        raw = cur.astring("header field name")
        if any(c <= 32 or c >= 127 or c == ord(":") for c in raw):
            raise ParseError("Invalid header field name")
        names.append(raw.decode("ascii").upper())
        if cur.maybe(b")"):
            break
        cur.sp()
    return tuple(dict.fromkeys(names))


def _section(cur: Cursor) -> Section:
    """After ``[``: ``[section-spec] "]"``."""
    parts: list[int] = []
    text: str | None = None
    fields: tuple[str, ...] = ()
    c = cur.peek()
    if c is not None and ord("0") <= c <= ord("9"):
        parts.append(_part_number(cur))
        while cur.maybe(b"."):
            c = cur.peek()
            if c is not None and ord("0") <= c <= ord("9"):
                parts.append(_part_number(cur))
            else:
                break
        else:
            cur.expect(b"]", "]")
            return Section(tuple(parts))
    if cur.peek() != ord("]"):
        m = cur.match(_TEXT_SPEC)
        if m is None:
            raise ParseError("Invalid section")
        text = m.group().decode("ascii").upper()
        if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            cur.sp()
            fields = _header_list(cur)
        elif text == "MIME":
            if not parts:
                raise ParseError("MIME is only valid after a part number")
        elif text not in ("HEADER", "TEXT"):
            raise ParseError("Invalid section")
    elif parts:
        raise ParseError("Invalid section")
    cur.expect(b"]", "]")
    return Section(tuple(parts), text, fields)


def _binary_part(cur: Cursor) -> tuple[int, ...]:
    parts: list[int] = []
    if cur.peek() != ord("]"):
        parts.append(_part_number(cur))
        while cur.maybe(b"."):
            parts.append(_part_number(cur))
    cur.expect(b"]", "]")
    return tuple(parts)


def _partial(cur: Cursor) -> tuple[int, int] | None:
    if cur.peek() != ord("<"):
        return None
    m = cur.match(_PARTIAL)
    if m is None:
        raise ParseError("Invalid partial range")
    origin, length = int(m.group(1)), int(m.group(2))
    if length == 0 or m.group(2)[0] == ord("0") or max(origin, length) > MAX_NUMBER64:
        raise ParseError("Invalid partial range")
    return origin, length


def _preview_modifiers(cur: Cursor, in_list: bool) -> None:
    """After ``PREVIEW``: ``[SP "(" preview-mod *(SP preview-mod) ")"]`` (RFC 8970 §7).

    A lone ``PREVIEW`` attribute may be followed by FETCH modifiers, which look the
    same: there the list is read as preview modifiers only if it starts with one."""
    if cur.peek_bytes(2) != b" (":
        return
    if not in_list:
        end = cur.pos + 2
        while end < len(cur.line) and cur.line[end] not in b" ()":
            end += 1
        if cur.line[cur.pos + 2 : end].upper().decode("ascii", "replace") not in PREVIEW_MODIFIERS:
            return
    cur.pos += 2
    while True:
        if cur.word("PREVIEW modifier") not in PREVIEW_MODIFIERS:
            raise ParseError("Unknown PREVIEW modifier")
        if cur.maybe(b")"):
            return
        cur.sp()


def _attr(cur: Cursor, in_list: bool = False) -> FetchAttr:
    m = cur.match(_NAME)
    if m is None:
        raise ParseError("Expected fetch attribute")
    name = m.group().decode("ascii").upper()
    if name in _SECTIONED and cur.maybe(b"["):
        if name == "BINARY.SIZE":
            return BinarySize(_binary_part(cur))
        if name.startswith("BINARY"):
            section = Section(_binary_part(cur))
            return BodySection(section, name.endswith("PEEK"), _partial(cur), binary=True)
        section = _section(cur)
        return BodySection(section, name.endswith("PEEK"), _partial(cur))
    simple = _SIMPLE.get(name)
    if simple is None or cur.peek() in (ord("["), ord("<")):
        raise ParseError("Unknown fetch attribute")
    if simple is Simple.PREVIEW:
        _preview_modifiers(cur, in_list)
    return simple


def parse_fetch_attrs(cur: Cursor) -> tuple[FetchAttr, ...]:
    """``"ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")"``."""
    if cur.maybe(b"("):
        cur.enter()
        attrs = [_attr(cur, True)]
        while not cur.maybe(b")"):
            cur.sp()
            attrs.append(_attr(cur, True))
        cur.leave()
        return tuple(dict.fromkeys(attrs))
    for macro, expansion in _MACROS.items():
        if cur.maybe_word(macro.encode()):
            return expansion
    return (_attr(cur),)
