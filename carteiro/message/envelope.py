"""ENVELOPE (RFC 9051 §7.5.2) and RFC 5322 address lists.

Strings are the raw header values, unfolded but not RFC 2047 decoded; clients decode.
They are serialised with ``utf8=False`` so that 8-bit content becomes a literal and one
stored form suits IMAP4rev1 and IMAP4rev2 sessions alike.
"""

from __future__ import annotations

import re

from carteiro.imap.protocol import wire
from carteiro.message.headers import HeaderField

Address = tuple[str | None, str | None, str | None, str | None]
"""``(name, adl, mailbox, host)``; group start is ``(None, None, name, None)`` and group
end ``(None, None, None, None)`` (RFC 9051 §7.5.2)."""

GROUP_END: Address = (None, None, None, None)
MISSING_DOMAIN = "MISSING_DOMAIN"
"""Host given to an address without ``@domain`` (a NIL host would mean a group)."""

_ATOM = re.compile(r'[^\s()<>\[\]:;@\\,."]+')
_WS = " \t\r\n"

# token: (kind, text, preceded by white space, raw text)
_Tok = tuple[str, str, bool, str]


def _tokenize(s: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    n = len(s)
    ws = False
    while i < n:
        c = s[i]
        if c in _WS:
            ws = True
            i += 1
            continue
        if c == '"':
            j = i + 1
            chars: list[str] = []
            while j < n and s[j] != '"':
                if s[j] == "\\" and j + 1 < n:
                    j += 1
                chars.append(s[j])
                j += 1
            toks.append(("q", "".join(chars), ws, s[i : j + 1]))
            i = j + 1
        elif c == "(":
            depth = 0
            j = i
            chars = []
            while j < n:
                d = s[j]
                if d == "\\" and j + 1 < n:
                    chars.append(s[j + 1])
                    j += 2
                    continue
                if d == "(":
                    depth += 1
                    if depth > 1:
                        chars.append(d)
                elif d == ")":
                    depth -= 1
                    if depth == 0:
                        j += 1
                        break
                    chars.append(d)
                else:
                    chars.append(d)
                j += 1
            toks.append(("c", "".join(chars).strip(), ws, s[i:j]))
            i = j
            ws = True
            continue
        elif c == "[":
            j = s.find("]", i)
            j = n if j < 0 else j + 1
            toks.append(("d", s[i:j], ws, s[i:j]))
            i = j
        elif c in "<>:;@,.\\":
            toks.append((c, c, ws, c))
            i += 1
        else:
            m = _ATOM.match(s, i)
            if m is None:  # a stray ")" or "]": skip it
                i += 1
                continue
            toks.append(("a", m.group(), ws, m.group()))
            i = m.end()
        ws = False
    return toks


def _phrase(toks: list[_Tok]) -> str | None:
    words: list[str] = []
    for kind, text, ws, _ in toks:
        if kind == "c":
            continue
        if words and ws:
            words.append(" ")
        words.append(text)
    return "".join(words) if words else None


def _comment(toks: list[_Tok]) -> str | None:
    for kind, text, _, _ in reversed(toks):
        if kind == "c" and text:
            return text
    return None


def _addr_spec(toks: list[_Tok]) -> tuple[str, str | None]:
    """``local@domain`` from tokens → (mailbox, host); host None when there is no @."""
    toks = [t for t in toks if t[0] != "c"]
    at = -1
    for idx in range(len(toks) - 1, -1, -1):
        if toks[idx][0] == "@":
            at = idx
            break
    if at < 0:
        return "".join(t[3] for t in toks), None
    return "".join(t[3] for t in toks[:at]), "".join(t[3] for t in toks[at + 1 :])


def _mailbox(phrase: list[_Tok], angle: list[_Tok] | None) -> Address | None:
    if angle is None:
        if not any(t[0] != "c" for t in phrase):
            return None
        local, host = _addr_spec(phrase)
        name = _comment(phrase)
        adl = None
    else:
        name = _phrase(phrase) or _comment(phrase)
        adl = None
        colon = next((k for k, t in enumerate(angle) if t[0] == ":"), -1)
        if colon >= 0:
            adl = "".join(t[3] for t in angle[:colon] if t[0] != "c") or None
            angle = angle[colon + 1 :]
        local, host = _addr_spec(angle)
    if host is None:
        host = MISSING_DOMAIN if local else ""
    return (name, adl, local, host)


def parse_addresses(text: str) -> list[Address]:
    """An address list (RFC 5322 §3.4), groups flattened into start/end markers."""
    toks = _tokenize(text)
    out: list[Address] = []
    cur: list[_Tok] = []
    in_group = False
    done = False  # an angle address ended the current mailbox
    i = 0
    n = len(toks)
    while i < n:
        tok = toks[i]
        kind = tok[0]
        if kind == "," or kind == ";":
            if not done:
                addr = _mailbox(cur, None)
                if addr is not None:
                    out.append(addr)
            cur = []
            done = False
            if kind == ";" and in_group:
                out.append(GROUP_END)
                in_group = False
        elif done:
            pass
        elif kind == ":" and not in_group:
            out.append((None, None, _phrase(cur) or "", None))
            in_group = True
            cur = []
        elif kind == "<":
            j = i + 1
            while j < n and toks[j][0] != ">":
                j += 1
            out.append(_mailbox(cur, toks[i + 1 : j]) or (None, None, "", ""))
            cur = []
            done = True
            i = j
        else:
            cur.append(tok)
        i += 1
    if not done:
        addr = _mailbox(cur, None)
        if addr is not None:
            out.append(addr)
    if in_group:
        out.append(GROUP_END)
    return out


def _ns(value: str | None) -> bytes:
    return wire.nstring(None if value is None else value.encode("latin-1"), utf8=False)


def _nsb(value: bytes | None) -> bytes:
    return wire.nstring(value, utf8=False)


def address_list(value: bytes | None) -> bytes:
    """``((name adl mailbox host)…)`` or ``NIL`` for a header value."""
    if value is None:
        return b"NIL"
    addrs = parse_addresses(value.decode("latin-1"))
    if not addrs:
        return b"NIL"
    return (
        b"("
        + b"".join(
            b"(" + b" ".join((_ns(a[0]), _ns(a[1]), _ns(a[2]), _ns(a[3]))) + b")" for a in addrs
        )
        + b")"
    )


_ENV_FIELDS = frozenset(
    (
        "date",
        "subject",
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "in-reply-to",
        "message-id",
    )
)


def envelope(fields: list[HeaderField]) -> bytes:
    """The serialised ENVELOPE of a message whose header fields are ``fields``.

    The first occurrence of each field is used. Sender and Reply-To default to From when
    absent or empty (no addresses).
    """
    found: dict[str, bytes] = {}
    for name, value in fields:
        key = name.lower()
        if key in _ENV_FIELDS and key not in found:
            found[key] = value
    get = found.get
    from_ = address_list(get("from"))
    sender = address_list(get("sender"))
    reply_to = address_list(get("reply-to"))
    return (
        b"("
        + b" ".join(
            (
                _nsb(get("date")),
                _nsb(get("subject")),
                from_,
                from_ if sender == b"NIL" else sender,
                from_ if reply_to == b"NIL" else reply_to,
                address_list(get("to")),
                address_list(get("cc")),
                address_list(get("bcc")),
                _nsb(get("in-reply-to")),
                _nsb(get("message-id")),
            )
        )
        + b")"
    )
