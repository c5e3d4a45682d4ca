"""What the SMTP hooks need to know about a message and its addresses, over raw bytes:
the header block, its fields, the From addresses, trace headers to add. Pure functions
(no I/O), so they are tested without sockets.
"""

from __future__ import annotations

import email.utils
import re
import secrets
import time

from carteiro.message.headers import header_end, parse_fields

__all__ = [
    "add_submission_headers",
    "domain_of",
    "from_addresses",
    "has_8bit",
    "header_values",
    "received_count",
    "received_header",
    "valid_address",
]

#: RFC 5321 §4.5.3.1: 64 octets of local part, 255 of domain, 256 for the whole path
MAX_LOCAL = 64
MAX_DOMAIN = 255
MAX_PATH = 256

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")


def domain_of(address: str) -> str:
    """The domain of ``local@domain`` in lower case ("" when there is none)."""
    return address.rpartition("@")[2].lower()


def valid_address(address: str, utf8: bool = False) -> bool:
    """A mailbox as RFC 5321 §4.1.2 writes it (dot-atom or quoted local part, a host
    name or address literal); non-ASCII only with SMTPUTF8 (RFC 6531)."""
    if len(address) > MAX_PATH or address.count("@") < 1:
        return False
    local, _, domain = address.rpartition("@")
    if not local or not domain or len(local) > MAX_LOCAL or len(domain) > MAX_DOMAIN:
        return False
    if not utf8 and not address.isascii():
        return False
    if any(ord(c) < 32 or c == "\x7f" for c in address):
        return False
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        pass
    elif local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    elif not all(_ATEXT.match(c) or ord(c) > 127 for c in local):
        return False
    if domain.startswith("[") and domain.endswith("]"):
        return True
    labels = domain.rstrip(".").split(".")
    return all(_LABEL.match(label) or not label.isascii() for label in labels)


def _headers(data: bytes) -> list[tuple[str, bytes]]:
    end = header_end(data, 0, len(data))
    return [(name.lower(), value) for name, value in parse_fields(data, 0, end)]


def header_values(data: bytes, name: str) -> list[str]:
    """Unfolded values of every ``name`` field (case-insensitive), decoded as UTF-8
    (RFC 6532) with replacement of invalid octets."""
    key = name.lower()
    return [v.decode("utf-8", "replace") for n, v in _headers(data) if n == key]


def from_addresses(data: bytes) -> list[str]:
    """Addresses of every From field (RFC 5322 §3.6.2 allows a list)."""
    values = header_values(data, "From")
    return [addr for _, addr in email.utils.getaddresses(values) if addr]


def received_count(data: bytes) -> int:
    """Trace fields so far: a count above the limit means a mail loop (RFC 5321 §6.3)."""
    return sum(1 for n, _ in _headers(data) if n == "received")


def has_8bit(data: bytes) -> bool:
    return not data.isascii()


def received_header(
    *,
    helo: str,
    address: str,
    hostname: str,
    protocol: str,
    queue_id: str,
    recipient: str | None = None,
    now: float | None = None,
) -> bytes:
    """The ``Received:`` trace field (RFC 5321 §4.4) with the RFC 3848 protocol name
    (SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, LMTP...)."""
    helo = "".join(c for c in helo if c.isprintable() and c not in "()\\")[:255] or "unknown"
    where = f"[{address}]" if address else "local"
    lines = [
        f"Received: from {helo} ({where})",
        f"\tby {hostname} (Carteiro) with {protocol} id {queue_id}",
    ]
    if recipient is not None and "\r" not in recipient and "\n" not in recipient:
        lines.append(f"\tfor <{recipient}>")
    lines[-1] += ";"
    when = now if now is not None else time.time()
    lines.append("\t" + email.utils.formatdate(when, localtime=True))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "replace")


def add_submission_headers(data: bytes, hostname: str, now: float | None = None) -> bytes:
    """RFC 6409 §8.2/§8.3: a submission server may add a missing Date and Message-ID."""
    present = {n for n, _ in _headers(data)}
    extra = b""
    if "date" not in present:
        extra += b"Date: " + email.utils.formatdate(now, localtime=True).encode() + b"\r\n"
    if "message-id" not in present:
        extra += f"Message-ID: <{secrets.token_hex(12)}@{hostname}>\r\n".encode()
    if not extra:
        return data
    end = header_end(data, 0, len(data))
    head = data[:end]
    if head.endswith(b"\r\n\r\n") or head == b"\r\n":
        cut = end - 2  # before the blank line that ends the header
    elif head.endswith(b"\n\n") or head == b"\n":
        cut = end - 1
    else:  # no body: the whole message is header
        cut = end
        if data and not data.endswith(b"\n"):
            extra = b"\r\n" + extra
    return data[:cut] + extra + data[cut:]
