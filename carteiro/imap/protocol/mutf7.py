"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3).

Printable US-ASCII (0x20–0x7E) stands for itself except ``&``, written ``&-``; every
other run of characters is UTF-16BE in modified base64 (``,`` instead of ``/``, no
padding) between ``&`` and ``-``.
"""

from __future__ import annotations

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
_VALUES = {ch: i for i, ch in enumerate(_ALPHABET)}


def _b64(data: bytes) -> str:
    out: list[str] = []
    bits = 0
    nbits = 0
    for byte in data:
        bits = (bits << 8) | byte
        nbits += 8
        while nbits >= 6:
            nbits -= 6
            out.append(_ALPHABET[(bits >> nbits) & 0x3F])
    if nbits:
        out.append(_ALPHABET[(bits << (6 - nbits)) & 0x3F])
    return "".join(out)


def _unb64(text: str) -> bytes:
    out = bytearray()
    bits = 0
    nbits = 0
    for ch in text:
        value = _VALUES.get(ch)
        if value is None:
            raise ValueError(f"invalid modified base64 character {ch!r}")
        bits = ((bits << 6) | value) & 0xFFFFFF
        nbits += 6
        if nbits >= 8:
            nbits -= 8
            out.append((bits >> nbits) & 0xFF)
    if nbits >= 6 or bits & ((1 << nbits) - 1):
        raise ValueError("non-canonical modified base64")
    return bytes(out)


def encode(name: str) -> str:
    """Encode ``name`` to modified UTF-7. Raises ValueError for lone surrogates."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + _b64(data) + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode(name: str) -> str:
    """Decode a modified UTF-7 name; raises ValueError when it is not valid."""
    out: list[str] = []
    i = 0
    n = len(name)
    while i < n:
        ch = name[i]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise ValueError("non-ASCII or control character in modified UTF-7")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise ValueError("unterminated modified base64")
        if end == i + 1:
            out.append("&")
        else:
            data = _unb64(name[i + 1 : end])
            if len(data) % 2:
                raise ValueError("odd number of UTF-16 bytes")
            try:
                text = data.decode("utf-16-be")
            except UnicodeDecodeError:
                raise ValueError("invalid UTF-16 in modified base64") from None
            if any(0x20 <= ord(t) <= 0x7E for t in text):
                raise ValueError("printable ASCII must not be base64-encoded")
            if name.startswith("&", end + 1) and not name.startswith("&-", end + 1):
                raise ValueError("adjacent modified base64 sequences")
            out.append(text)
        i = end + 1
    return "".join(out)
