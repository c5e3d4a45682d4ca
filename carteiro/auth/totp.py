"""TOTP second factor (RFC 6238 over RFC 4226 HOTP), for administrative actions.

Design points:

* Secrets are 160 random bits (RFC 4226 section 4 recommends 160, requires 128),
  exchanged as unpadded base32 because that is what authenticator apps read from the
  Key Uri Format (``otpauth://``) QR code.
* :func:`verify` never raises on what a user or the store hands it: a malformed secret
  or code simply does not verify. Comparison is constant-time (``hmac.compare_digest``)
  and every step of the window is computed, so timing does not reveal which step matched.
* Replay protection (RFC 6238 section 5.2: a code must not be accepted twice) is left
  to the caller's storage: :func:`verify` returns the matched time step, the caller
  stores it, and passes it back as ``last_step`` so that step and older ones are refused.
* The window (section 5.2, "at most one time step" of network delay) defaults to ±1.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import secrets
import struct
from urllib.parse import quote

import segno

__all__ = [
    "ALGORITHMS",
    "SECRET_BYTES",
    "hotp",
    "new_secret",
    "provisioning_uri",
    "terminal_qr",
    "totp",
    "verify",
]

SECRET_BYTES = 20  # 160 bits
ALGORITHMS = {"SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}
_DIGITS = range(6, 11)  # RFC 4226 section 5.3: at least 6; 31 bits give at most 10
_QUIET_ZONE = 4  # ISO/IEC 18004: four light modules around a QR symbol


def new_secret() -> str:
    """A fresh shared secret: 160 random bits in base32 without padding (32 characters)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def _decode_secret(secret_b32: str) -> bytes | None:
    """Bytes of a base32 secret, tolerating case, spaces and missing padding; else None."""
    if not isinstance(secret_b32, str):
        return None
    text = "".join(secret_b32.split()).upper().rstrip("=")
    if not text or not text.isascii():
        return None
    try:
        key = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    return key or None


def _digest_name(algorithm: str) -> str:
    try:
        return ALGORITHMS[algorithm.upper()]
    except KeyError:
        raise ValueError(f"unsupported TOTP algorithm {algorithm!r}") from None


def _check_digits(digits: int) -> None:
    if digits not in _DIGITS:
        raise ValueError(f"a one-time code has 6 to 10 digits, not {digits}")


def _hotp_key(key: bytes, counter: int, digits: int, digest: str) -> str:
    # RFC 4226 section 5.3: HMAC over the 8-byte big-endian counter, dynamic truncation.
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    number = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


def hotp(secret_b32: str, counter: int, digits: int = 6, algorithm: str = "SHA1") -> str:
    """The RFC 4226 HOTP value for ``counter``; ValueError for a malformed secret."""
    key = _decode_secret(secret_b32)
    if key is None:
        raise ValueError("the secret is not valid base32")
    if not 0 <= counter < 2**64:
        raise ValueError("the HOTP counter must fit in 64 unsigned bits")
    _check_digits(digits)
    return _hotp_key(key, counter, digits, _digest_name(algorithm))


def _time_step(at: float, step: int) -> int:
    # RFC 6238 section 4.2: T = floor((now - T0) / X) with T0 = 0.
    if step <= 0:
        raise ValueError("the TOTP time step must be positive")
    if not math.isfinite(at) or at < 0:
        raise ValueError("the time must be a finite, non-negative Unix time")
    return int(at // step)


def totp(
    secret_b32: str, at: float, step: int = 30, digits: int = 6, algorithm: str = "SHA1"
) -> str:
    """The RFC 6238 code at Unix time ``at``."""
    return hotp(secret_b32, _time_step(at, step), digits, algorithm)


def verify(
    secret_b32: str,
    code: str,
    at: float,
    *,
    last_step: int | None = None,
    window: int = 1,
    step: int = 30,
    digits: int = 6,
    algorithm: str = "SHA1",
) -> int | None:
    """The time step ``code`` belongs to, or None when it does not verify.

    Codes of steps ``T - window`` to ``T + window`` are accepted (T being the step of
    ``at``), except steps at or before ``last_step``: store the returned step and pass
    it back next time. If two steps share the code, the one nearest T wins.
    """
    if window < 0:
        raise ValueError("the TOTP window cannot be negative")
    _check_digits(digits)
    digest = _digest_name(algorithm)
    current = _time_step(at, step)
    key = _decode_secret(secret_b32)
    if key is None or not isinstance(code, str):
        return None
    if len(code) != digits or not (code.isascii() and code.isdigit()):
        return None
    expected = code.encode("ascii")
    matched: int | None = None
    nearest_first = sorted(
        range(current - window, current + window + 1), key=lambda s: (abs(s - current), s)
    )
    for candidate in nearest_first:
        if candidate < 0 or (last_step is not None and candidate <= last_step):
            continue
        value = _hotp_key(key, candidate, digits, digest).encode("ascii")
        if hmac.compare_digest(value, expected) and matched is None:
            matched = candidate
    return matched


def provisioning_uri(secret_b32: str, account: str, issuer: str = "Carteiro") -> str:
    """The Key Uri Format ``otpauth://totp/…`` URI that authenticator apps import.

    The label is ``issuer:account`` and ``issuer`` is repeated as a parameter, as the
    format recommends; both are percent-encoded (RFC 3986, spaces as ``%20``). Neither
    may contain a colon, which the format reserves as the label separator.
    """
    key = _decode_secret(secret_b32)
    if key is None:
        raise ValueError("the secret is not valid base32")
    if ":" in account or ":" in issuer or not account or not issuer:
        raise ValueError("issuer and account must be non-empty and contain no colon")
    secret = base64.b32encode(key).decode("ascii").rstrip("=")
    label = f"{_escape(issuer)}:{_escape(account)}"
    query = f"secret={secret}&issuer={_escape(issuer)}&algorithm=SHA1&digits=6&period=30"
    return f"otpauth://totp/{label}?{query}"


def _escape(text: str) -> str:
    # '@' is legal in both a path segment and a query (RFC 3986 pchar) and keeps e-mail
    # account names readable; everything else outside the unreserved set is encoded.
    return quote(text, safe="@")


def terminal_qr(data: str, *, light_background: bool = False) -> str:
    """``data`` as a QR code drawn with Unicode half blocks, two module rows per line.

    Terminals usually print light text on a dark background, so by default the glyphs'
    ink draws the *light* modules and the background shows through as the dark ones;
    ``light_background=True`` inks the dark modules instead. A quiet zone of four
    modules surrounds the symbol, and an odd last row is paired with a light row.
    """
    qr = segno.make_qr(data, error="L")  # smallest symbol; segno boosts the level if free
    rows = [[bool(module) for module in row] for row in qr.matrix_iter(border=_QUIET_ZONE)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    glyphs = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
    lines = []
    for top, bottom in zip(rows[::2], rows[1::2], strict=True):
        lines.append(
            "".join(
                glyphs[(upper == light_background, lower == light_background)]
                for upper, lower in zip(top, bottom, strict=True)
            )
        )
    return "\n".join(lines)
