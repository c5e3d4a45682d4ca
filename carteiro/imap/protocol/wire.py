"""Encoders for IMAP string forms (RFC 9051 §4.3): atom, quoted, literal, NIL.

Every response byte that carries client- or message-derived text goes through here so
that the choice between quoted and literal is made in exactly one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# ATOM-CHAR: any CHAR but atom-specials ( ) { SP CTL % * " \ ] (and not 8-bit); one
# regular expression per test, since these run for every string of every response and
# of every ENVELOPE made at delivery (a per-byte generator cost several times more)
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
# ASTRING-CHAR additionally allows ] (resp-specials)
_ASTRING = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
# TEXT-CHAR is any CHAR but CR and LF; we also keep other controls (but TAB) out of quoted
# strings because some clients choke on them.
_QUOTED_UNSAFE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def is_atom(data: bytes, *, astring: bool = False) -> bool:
    return (_ASTRING if astring else _ATOM).fullmatch(data) is not None


def literal(data: bytes, *, binary: bool = False) -> bytes:
    """``{n}CRLF`` + data; ``~{n}`` (literal8, RFC 3516) for BINARY content with NULs."""
    prefix = b"~{" if binary else b"{"
    return prefix + str(len(data)).encode() + b"}\r\n" + data


def quoted_ok(data: bytes, *, utf8: bool) -> bool:
    """Whether ``data`` fits a quoted string: no CR/LF/NUL/CTL, short, 7-bit unless
    the session accepts UTF-8 (rev2 / UTF8=ACCEPT), and then only valid UTF-8."""
    if len(data) > 1024 or _QUOTED_UNSAFE.search(data) is not None:
        return False
    if data.isascii():
        return True
    if not utf8:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def quoted(data: bytes) -> bytes:
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def string(value: bytes | str, *, utf8: bool = False) -> bytes:
    """A quoted string when safe, else a literal."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return quoted(data) if quoted_ok(data, utf8=utf8) else literal(data)


def nstring(value: bytes | str | None, *, utf8: bool = False) -> bytes:
    return b"NIL" if value is None else string(value, utf8=utf8)


def astring(value: bytes | str, *, utf8: bool = False) -> bytes:
    """An atom when the value is a valid ASTRING-CHAR run (and not ``NIL``), else a string."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if is_atom(data, astring=True) and data.upper() != b"NIL":
        return data
    return string(data, utf8=utf8)


def flag_list(flags: Iterable[str]) -> bytes:
    """``(\\Seen $Forwarded)`` — system flags first, then keywords, stable order."""
    ordered = sorted(flags, key=lambda f: (f == "\\*", not f.startswith("\\"), f.lower()))
    return b"(" + " ".join(ordered).encode("ascii", "replace") + b")"


def paren_list(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"
