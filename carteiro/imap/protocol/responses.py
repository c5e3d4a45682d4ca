"""Serialisation of status responses, continuations and mailbox names (RFC 9051 §7).

Human-readable texts and response codes are sanitised: CR, LF and other control
characters become spaces and non-ASCII becomes ``?`` so no client-derived text can
inject a response line. Untagged data responses (``untagged``) are passed through as
built by the caller, because they may legitimately contain literals.
"""

from __future__ import annotations

import re

from carteiro.imap.protocol import mutf7, wire

_CTL = re.compile(r"[\x00-\x1f\x7f]")
STATUSES = frozenset({"OK", "NO", "BAD", "PREAUTH", "BYE"})


def sanitize(text: str) -> str:
    """``text`` made safe for ``resp-text``: one line of printable ASCII."""
    return _CTL.sub(" ", text).encode("ascii", "replace").decode("ascii")


def _status_line(prefix: str, status: str, text: str, code: str | None) -> bytes:
    if status not in STATUSES:
        raise ValueError(f"invalid status {status!r}")
    parts = [prefix, status]
    if code:
        parts.append("[" + sanitize(code).replace("]", " ").strip() + "]")
    parts.append(sanitize(text) or status)
    return (" ".join(parts) + "\r\n").encode("ascii")


def tagged(tag: str | None, status: str, text: str, code: str | None = None) -> bytes:
    """``tag SP status SP ["[" code "]" SP] text CRLF``; ``tag=None`` gives ``*``."""
    return _status_line("*" if tag is None else sanitize(tag).replace(" ", ""), status, text, code)


def untagged_status(status: str, text: str, code: str | None = None) -> bytes:
    """``* OK [code] text``, ``* NO ...``, ``* BAD ...``, ``* BYE ...``, ``* PREAUTH ...``."""
    return _status_line("*", status, text, code)


def untagged(text: bytes) -> bytes:
    """``* `` + ``text`` + CRLF, e.g. ``untagged(b"3 EXISTS")``. Not sanitised."""
    return b"* " + text + b"\r\n"


def continuation(text: str = "Ready") -> bytes:
    """A command continuation request, ``+ text CRLF``."""
    return b"+ " + (sanitize(text) or "Ready").encode("ascii") + b"\r\n"


def continuation_data(data: bytes) -> bytes:
    """``+ data CRLF`` for SASL challenges (``data`` is base64 or empty)."""
    if b"\r" in data or b"\n" in data:
        raise ValueError("continuation data must be a single line")
    return b"+ " + data + b"\r\n"


def mailbox_name(name: str, utf8: bool) -> bytes:
    """A mailbox name as ``astring``: modified UTF-7 unless the session uses UTF-8."""
    if name == "INBOX":
        return b"INBOX"
    if utf8:
        return wire.astring(name, utf8=True)
    return wire.astring(mutf7.encode(name))
