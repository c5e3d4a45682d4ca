"""Content decoding: transfer encodings (RFC 2045 §6), charsets and RFC 2047 encoded
words. Tolerant of damaged input; only an unknown transfer encoding is an error."""

from __future__ import annotations

import binascii
import re

from carteiro.message.headers import to_text

IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary", ""})

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_DELETE = bytes(c for c in range(256) if c not in _B64_ALPHABET)


class UnknownEncoding(ValueError):
    """A Content-Transfer-Encoding this server cannot decode (``NO [UNKNOWN-CTE]``)."""


def decode_base64(data: bytes) -> bytes:
    """Base64 ignoring characters outside the alphabet and missing or extra padding."""
    pad = data.find(b"=")
    if pad >= 0:
        data = data[:pad]
    data = data.translate(None, _B64_DELETE)
    rem = len(data) % 4
    if rem == 1:
        data = data[:-1]
    elif rem:
        data += b"=" * (4 - rem)
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:  # pragma: no cover - input is normalised above
        return b""


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding (lower-case name)."""
    if encoding in IDENTITY_ENCODINGS:
        return data
    if encoding == "base64":
        return decode_base64(data)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    raise UnknownEncoding(encoding)


def decode_charset(data: bytes, charset: str | None) -> str:
    """Bytes in ``charset`` as text; undeclared, unknown or wrong charsets fall back to
    UTF-8 and then latin-1, so this never raises."""
    if charset and charset not in ("us-ascii", "utf-8", "utf8"):
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError, ValueError):
            pass
    return to_text(data)


_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")


def _word_bytes(kind: str, payload: str) -> bytes:
    data = payload.encode("ascii", "replace")
    if kind in "bB":
        return decode_base64(data)
    return binascii.a2b_qp(data, header=True)


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded; white space between adjacent words dropped and
    consecutive words in one charset joined before decoding (split multibyte text)."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pending = b""
    pending_cs = ""
    last = 0
    for m in _ENCODED_WORD.finditer(value):
        gap = value[last : m.start()]
        if not (pending_cs and not gap.strip(" \t\r\n")):
            if pending_cs:
                out.append(decode_charset(pending, pending_cs))
                pending, pending_cs = b"", ""
            out.append(gap)
        charset = m.group(1).lower()
        data = _word_bytes(m.group(2), m.group(3))
        if pending_cs and charset != pending_cs:
            out.append(decode_charset(pending, pending_cs))
            pending = b""
        pending += data
        pending_cs = charset
        last = m.end()
    if pending_cs:
        out.append(decode_charset(pending, pending_cs))
    out.append(value[last:])
    return "".join(out)


def decode_header_value(value: bytes) -> str:
    """A raw (unfolded) header value as text: 8-bit as UTF-8, encoded words decoded."""
    return decode_words(to_text(value))
