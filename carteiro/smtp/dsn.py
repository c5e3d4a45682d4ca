"""Delivery status notifications (RFC 3464): bounces and delay warnings.

A notification is a ``multipart/report; report-type=delivery-status`` (RFC 6522) of three
parts: a plain-text explanation for people, a ``message/delivery-status`` for programs and
the original message's header (``text/rfc822-headers``), never its body: a bounce must not
carry a large attachment (or spam) back to the sender. It is sent with the null
reverse-path and ``Auto-Submitted: auto-replied`` (RFC 3834) so that nothing answers it.

Everything is built as bytes with CRLF line ends; the delivery-status fields are kept
7-bit (non-ASCII addresses use the ``utf-8`` address type of RFC 6533 §3, ``\\x{HEX}``
escaped; other non-ASCII text becomes ``?``).
"""

from __future__ import annotations

import email.utils
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.quoprimime import body_encode

__all__ = [
    "MAX_HEADER_BYTES",
    "RecipientStatus",
    "bounce",
    "delay_warning",
    "original_headers",
    "status_of",
]

#: at most this much of the original header is returned (cut at a field boundary)
MAX_HEADER_BYTES = 32 * 1024
#: a remote reply quoted in a Diagnostic-Code is cut to this length
MAX_DIAGNOSTIC = 900

_STATUS = re.compile(r"^\d{3}[ -]([245])\.(\d{1,3})\.(\d{1,3})(?!\S)")
_CODE = re.compile(r"^([245])\d\d(?!\S)")


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """What happened to one recipient: ``reply`` is the remote SMTP reply (``"550 5.1.1
    <bob@x>: no such user"``) or our own text in the same form."""

    recipient: str
    reply: str
    remote_mta: str | None = None
    last_attempt: float | None = None
    status: str | None = None  # overrides the status taken from ``reply``


def status_of(reply: str, default_class: str = "5") -> str:
    """The enhanced status code (RFC 3463) of a reply: the one it carries, else ``X.0.0``
    from its basic code, else ``default_class.0.0``."""
    m = _STATUS.match(reply)
    if m:
        return ".".join(m.groups())
    m = _CODE.match(reply)
    return f"{m.group(1) if m else default_class}.0.0"


def bounce(
    *,
    hostname: str,
    sender: str,
    recipients: Sequence[RecipientStatus],
    original: bytes,
    arrival: float,
    now: float | None = None,
) -> bytes:
    """A non-delivery report for ``recipients`` (Action: failed)."""
    when = time.time() if now is None else now
    lines = [
        f"This is the mail system at {hostname}.",
        "",
        "Your message could not be delivered to the following recipients. The mail",
        "system gave up; it will not try again.",
        "",
    ]
    lines += _explain(recipients)
    lines += _original_lines(original, arrival)
    return _report(
        hostname=hostname,
        sender=sender,
        subject="Undelivered Mail Returned to Sender",
        text=lines,
        fields=_status_fields(hostname, recipients, arrival, when, "failed", "5", None),
        original=original,
        now=when,
    )


def delay_warning(
    *,
    hostname: str,
    sender: str,
    recipients: Sequence[RecipientStatus],
    original: bytes,
    arrival: float,
    retry_until: float,
    now: float | None = None,
) -> bytes:
    """A "still trying" report for ``recipients`` (Action: delayed); no action is needed
    from the sender."""
    when = time.time() if now is None else now
    lines = [
        f"This is the mail system at {hostname}.",
        "",
        "####################################################################",
        "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
        "####################################################################",
        "",
        "Your message could not be delivered yet to the following recipients.",
        f"The mail system will keep trying until {_date(retry_until)}.",
        "",
    ]
    lines += _explain(recipients)
    lines += _original_lines(original, arrival)
    return _report(
        hostname=hostname,
        sender=sender,
        subject="Delayed Mail (still being retried)",
        text=lines,
        fields=_status_fields(hostname, recipients, arrival, when, "delayed", "4", retry_until),
        original=original,
        now=when,
    )


def original_headers(original: bytes, limit: int = MAX_HEADER_BYTES) -> bytes:
    """The header of ``original`` (without the blank line) with CRLF line ends, at most
    ``limit`` octets, cut before a field (never inside one)."""
    normal = re.sub(rb"\r(?!\n)", b" ", re.sub(rb"\r?\n", b"\r\n", original))
    end = normal.find(b"\r\n\r\n")
    head = normal[: end + 2] if end >= 0 else normal
    if head.startswith(b"\r\n"):
        return b""
    if head and not head.endswith(b"\r\n"):
        head += b"\r\n"
    if len(head) <= limit:
        return head
    # the last line end within the limit that is followed by a new field, not a fold
    end = head.rfind(b"\r\n", 0, limit - 1)
    while end >= 0 and head[end + 2 : end + 3] in (b" ", b"\t"):
        end = head.rfind(b"\r\n", 0, end)
    return head[: end + 2] if end >= 0 else b""


# --- parts ---------------------------------------------------------------------------


def _explain(recipients: Sequence[RecipientStatus]) -> list[str]:
    lines: list[str] = []
    for r in recipients:
        where = f" (host {r.remote_mta} said)" if r.remote_mta else ""
        lines.append(f"<{r.recipient}>:{where}")
        lines.append(f"    {_one_line(r.reply, MAX_DIAGNOSTIC)}")
        lines.append("")
    return lines


def _original_lines(original: bytes, arrival: float) -> list[str]:
    subject = _original_field(original, "subject")
    lines = [f"Original message, sent {_date(arrival)}:"]
    shown = f"Subject: {_one_line(subject, 200)}" if subject is not None else "(no subject)"
    lines.append("    " + shown)
    return [*lines, "", "Its header is attached below."]


def _status_fields(
    hostname: str,
    recipients: Sequence[RecipientStatus],
    arrival: float,
    now: float,
    action: str,
    status_class: str,
    retry_until: float | None,
) -> bytes:
    blocks = [
        _fields(
            [
                ("Reporting-MTA", f"dns; {_ascii(hostname)}"),
                ("Arrival-Date", _date(arrival)),
            ]
        )
    ]
    for r in recipients:
        status = r.status or status_of(r.reply, status_class)
        if status[0] != status_class:  # Action and Status must agree (RFC 3464 §2.3.3)
            status = status_class + status[1:]
        fields = [("Final-Recipient", _address_type(r.recipient)), ("Action", action)]
        fields.append(("Status", status))
        if r.remote_mta:
            fields.append(("Remote-MTA", f"dns; {_ascii(r.remote_mta)}"))
        if r.reply:
            fields.append(
                ("Diagnostic-Code", f"smtp; {_ascii(_one_line(r.reply, MAX_DIAGNOSTIC))}")
            )
        fields.append(("Last-Attempt-Date", _date(r.last_attempt or now)))
        if retry_until is not None:
            fields.append(("Will-Retry-Until", _date(retry_until)))
        blocks.append(_fields(fields))
    return b"\r\n".join(blocks)


def _report(
    *,
    hostname: str,
    sender: str,
    subject: str,
    text: list[str],
    fields: bytes,
    original: bytes,
    now: float,
) -> bytes:
    boundary = f"=_carteiro-dsn-{secrets.token_hex(12)}"
    body = "\r\n".join(_printable(line) for line in text) + "\r\n"
    if body.isascii():
        text_part = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body.encode()
    else:
        encoded = body_encode(body.encode("utf-8").decode("latin-1"), eol="\r\n")
        text_part = (
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + encoded.encode("ascii")
        )
        if not text_part.endswith(b"\r\n"):
            text_part += b"\r\n"
    headers = original_headers(original)
    cte = b"" if headers.isascii() else b"Content-Transfer-Encoding: 8bit\r\n"
    header_part = b"Content-Type: text/rfc822-headers\r\n" + cte + b"\r\n" + headers
    status_part = b"Content-Type: message/delivery-status\r\n\r\n" + fields
    host = _ascii(hostname) or "localhost"
    top = [
        ("From", f"Mail Delivery System <MAILER-DAEMON@{host}>"),
        ("To", _to(sender)),
        ("Subject", subject),
        ("Date", _date(now)),
        ("Message-ID", f"<{int(now)}.{secrets.token_hex(8)}@{host}>"),
        ("Auto-Submitted", "auto-replied"),
    ]
    message_id = _original_field(original, "message-id")
    if message_id and message_id.isascii() and re.fullmatch(r"\s*<[^<>\s]+>\s*", message_id):
        top += [("In-Reply-To", message_id.strip()), ("References", message_id.strip())]
    top += [
        ("MIME-Version", "1.0"),
        (
            "Content-Type",
            f'multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
        ),
    ]
    out = _fields(top) + b"\r\nThis is a MIME-encapsulated message.\r\n"
    delimiter = f"\r\n--{boundary}\r\n".encode()
    for part in (text_part, status_part, header_part):
        out += delimiter + part.removesuffix(b"\r\n")
    return out + f"\r\n--{boundary}--\r\n".encode()


# --- helpers -------------------------------------------------------------------------


def _fields(fields: list[tuple[str, str]]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode() for name, value in fields)


def _date(when: float) -> str:
    return email.utils.formatdate(when, localtime=False, usegmt=True)


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _printable(text: str) -> str:
    """No control characters (a stray CR or LF would break the line structure)."""
    return "".join("?" if c < " " or "\x7f" <= c < "\xa0" else c for c in text)


def _ascii(text: str) -> str:
    """Printable ASCII only (the delivery-status part is 7-bit)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _address_type(address: str) -> str:
    """``rfc822; addr``, or ``utf-8; addr`` with ``\\x{HEX}`` escapes (RFC 6533 §3) for an
    internationalised address."""
    if address.isascii():
        return f"rfc822; {_ascii(address)}"
    escaped = "".join(c if " " < c <= "~" and c != "\\" else f"\\x{{{ord(c):X}}}" for c in address)
    return f"utf-8; {escaped}"


def _to(address: str) -> str:
    """The To field: the sender, UTF-8 as is (RFC 6532: it is then an SMTPUTF8 message)."""
    if not address:
        return "undisclosed-recipients:;"
    return "<" + "".join(c for c in address if c >= " " and c != "\x7f") + ">"


def _original_field(original: bytes, name: str) -> str | None:
    """One field of the original header, unfolded and RFC 2047-decoded; None if absent."""
    head = original_headers(original)
    pattern = re.compile(rb"(?im)^" + re.escape(name.encode()) + rb"[ \t]*:(.*(?:\r\n[ \t].*)*)")
    m = pattern.search(head)
    if m is None:
        return None
    raw = re.sub(rb"\r\n(?=[ \t])", b"", m.group(1)).strip()
    text = raw.decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text
