"""Structured MIME header values: Content-Type, Content-Disposition and their
parameters (RFC 2045 §5.1, RFC 2183, RFC 2231).

Values are handled as latin-1 text so that ``.encode("latin-1")`` gives back the exact
raw bytes (8-bit content survives untouched).
"""

from __future__ import annotations

import re
from urllib.parse import quote_from_bytes, unquote_to_bytes

MAX_PARAMS = 100
"""Parameters kept per header field; the rest are ignored (bounds work on hostile input)."""

Params = tuple[tuple[str, str], ...]
"""Parameters in header order: ``(name, value)``, names lower-cased."""

_TOKEN = r"[^\s()<>@,;:\\\"/\[\]?=]+"  # noqa: S105 - a regex, not a secret
_TYPE = re.compile(rf"[ \t]*({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]*")
_DISP = re.compile(rf"[ \t]*({_TOKEN})[ \t]*")
_PARAM_NAME = re.compile(r"[ \t]*([^\s=;\"]+)[ \t]*=[ \t]*")
_SECTION = re.compile(r"([^*]+)\*(?:([0-9]{1,3})(\*?))?")


def _skip_comment(text: str, pos: int) -> int:
    """Skip a (nested) RFC 5322 comment that begins at ``pos``."""
    depth = 0
    n = len(text)
    while pos < n:
        c = text[pos]
        if c == "\\":
            pos += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    return n


def parse_params(text: str, pos: int) -> list[tuple[str, str]]:
    """Parameters after ``pos`` (``; name=value; name="quoted \\" value"``)."""
    out: list[tuple[str, str]] = []
    n = len(text)
    while pos < n and len(out) < MAX_PARAMS:
        semi = text.find(";", pos)
        if semi < 0:
            break
        m = _PARAM_NAME.match(text, semi + 1)
        if m is None:
            pos = semi + 1
            continue
        name = m.group(1).lower()
        pos = m.end()
        if pos < n and text[pos] == '"':
            close = text.find('"', pos + 1)
            if close >= 0 and "\\" not in text[pos + 1 : close]:
                value = text[pos + 1 : close]
                pos = close + 1
            else:
                chars: list[str] = []
                i = pos + 1
                while i < n and text[i] != '"':
                    if text[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(text[i])
                    i += 1
                value = "".join(chars)
                pos = i + 1
        else:
            stop = text.find(";", pos)
            if stop < 0:
                stop = n
            value = text[pos:stop]
            if "(" in value:
                value = value[: value.index("(")]
            value = value.strip(" \t\r\n")
            pos = stop
        out.append((name, value))
    return out


def merge_rfc2231(params: list[tuple[str, str]]) -> Params:
    """Join RFC 2231 continuations (``name*0``, ``name*1*``…).

    When any section is extended (``*``), the result keeps the extended form as one
    ``name*`` parameter whose value is ``charset'lang'%XX…`` (7-bit, as sent), with
    plain sections percent-encoded; otherwise the sections are simply concatenated.
    Unsplit ``name*`` values are kept as they are.
    """
    if not any("*" in name for name, _ in params):
        return tuple(params)
    groups: dict[str, list[tuple[int, str, bool]]] = {}
    order: list[tuple[str, str] | str] = []
    for name, value in params:
        m = _SECTION.fullmatch(name)
        if m is None or m.group(2) is None:
            order.append((name, value))
            continue
        base = m.group(1)
        if base not in groups:
            groups[base] = []
            order.append(base)
        groups[base].append((int(m.group(2)), value, m.group(3) == "*"))
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in order:
        if isinstance(item, tuple):
            if item[0] not in seen:
                out.append(item)
            continue
        sections = sorted(groups[item], key=lambda s: s[0])
        if sections[0][2]:
            pieces = [sections[0][1]]
            for _, value, extended in sections[1:]:
                pieces.append(value if extended else quote_from_bytes(value.encode("latin-1")))
            merged = (item + "*", "".join(pieces))
        else:
            merged = (item, "".join(value for _, value, _ in sections))
        seen.add(merged[0])
        out.append(merged)
    return tuple(out)


def decode_rfc2231(value: str) -> str:
    """``charset'lang'%XX…`` → text (unknown charsets fall back to UTF-8)."""
    parts = value.split("'", 2)
    if len(parts) != 3:
        return unquote_to_bytes(value).decode("utf-8", "replace")
    charset, _, encoded = parts
    data = unquote_to_bytes(encoded)
    try:
        return data.decode(charset or "us-ascii")
    except (LookupError, UnicodeDecodeError, ValueError):
        return data.decode("utf-8", "replace")


def parse_content_type(text: str) -> tuple[str, str, Params] | None:
    """``type/subtype; params`` → lower-cased type and subtype and the parameters,
    or None when there is no valid ``type/subtype``."""
    m = _TYPE.match(text)
    if m is None:
        return None
    pos = m.end()
    if pos < len(text) and text[pos] == "(":
        pos = _skip_comment(text, pos)
    return m.group(1).lower(), m.group(2).lower(), merge_rfc2231(parse_params(text, pos))


def parse_disposition(text: str) -> tuple[str, Params] | None:
    """``attachment; filename=…`` → disposition type (as written) and parameters."""
    m = _DISP.match(text)
    if m is None:
        return None
    return m.group(1), merge_rfc2231(parse_params(text, m.end()))


def get_param(params: Params, name: str) -> str | None:
    """A parameter's value, decoding the RFC 2231 extended form ``name*`` if needed."""
    for pname, value in params:
        if pname == name:
            return value
    star = name + "*"
    for pname, value in params:
        if pname == star:
            return decode_rfc2231(value)
    return None
