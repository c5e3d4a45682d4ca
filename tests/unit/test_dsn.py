"""Delivery status notifications (RFC 3464): structure, headers, bounded original header,
and parsing by both Python's email package and Carteiro's own MIME parser."""

from __future__ import annotations

import email
import email.message
import email.policy
import email.utils

from hypothesis import given, settings
from hypothesis import strategies as st

from carteiro.message.meta import analyse
from carteiro.smtp.dsn import (
    MAX_HEADER_BYTES,
    RecipientStatus,
    bounce,
    delay_warning,
    original_headers,
    status_of,
)

ORIGINAL = (
    b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
    b"Subject: =?utf-8?q?Relat=C3=B3rio?= mensal\r\n"
    b"Message-ID: <abc@example.org>\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\n"
    b"The secret body.\r\n"
)
FAILED = [
    RecipientStatus(
        "bob@example.net", "550 5.1.1 <bob@example.net>: no such user", "mx.example.net[192.0.2.1]",
        1_700_000_100.0,
    ),
    RecipientStatus("carol@example.net", "552-5.2.2 mailbox full\n552 5.2.2 try later", None),
]  # fmt: skip


def parse(raw: bytes) -> tuple[email.message.EmailMessage, list[email.message.Message]]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    assert not msg.defects
    parts = msg.get_payload()
    assert isinstance(parts, list)
    return msg, parts


def blocks(part: email.message.Message) -> list[dict[str, str]]:
    payload = part.get_payload()
    assert isinstance(payload, list)
    return [dict(b.items()) for b in payload]


def make_bounce(original: bytes = ORIGINAL, sender: str = "alice@example.org") -> bytes:
    return bounce(
        hostname="mail.example.org",
        sender=sender,
        recipients=FAILED,
        original=original,
        arrival=1_700_000_000.0,
        now=1_700_000_200.0,
    )


def test_bounce_structure():
    raw = make_bounce()
    msg, parts = parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_bounce_headers():
    msg, _ = parse(make_bounce())
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mail.example.org>"
    assert msg["To"] == "alice@example.org"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"].endswith("@mail.example.org>")
    assert email.utils.parsedate_to_datetime(msg["Date"]).timestamp() == 1_700_000_200
    assert msg["In-Reply-To"] == "<abc@example.org>"
    assert msg["References"] == "<abc@example.org>"
    assert make_bounce() != make_bounce()  # a fresh Message-ID and boundary each time


def test_bounce_human_part():
    _, parts = parse(make_bounce())
    text = parts[0].get_content()
    assert "mail.example.org" in text
    assert "<bob@example.net>: (host mx.example.net[192.0.2.1] said)" in text
    assert "550 5.1.1 <bob@example.net>: no such user" in text
    assert "552-5.2.2 mailbox full 552 5.2.2 try later" in text
    assert "Subject: Relatório mensal" in text


def test_bounce_delivery_status_fields():
    _, parts = parse(make_bounce())
    message, bob, carol = blocks(parts[1])
    assert message == {
        "Reporting-MTA": "dns; mail.example.org",
        "Arrival-Date": email.utils.formatdate(1_700_000_000.0, usegmt=True),
    }
    assert bob == {
        "Final-Recipient": "rfc822; bob@example.net",
        "Action": "failed",
        "Status": "5.1.1",
        "Remote-MTA": "dns; mx.example.net[192.0.2.1]",
        "Diagnostic-Code": "smtp; 550 5.1.1 <bob@example.net>: no such user",
        "Last-Attempt-Date": email.utils.formatdate(1_700_000_100.0, usegmt=True),
    }
    assert carol["Status"] == "5.2.2"
    assert "Remote-MTA" not in carol
    assert carol["Last-Attempt-Date"] == email.utils.formatdate(1_700_000_200.0, usegmt=True)


def test_original_headers_only():
    raw = make_bounce()
    _, parts = parse(raw)
    assert b"The secret body." not in raw
    headers = parts[2].get_payload()
    assert "Message-ID: <abc@example.org>" in headers
    assert "Subject: =?utf-8?q?Relat=C3=B3rio?= mensal" in headers


def test_original_headers_bounded_at_a_field():
    fields = b"".join(
        b"X-Filler-%d: " % i + b"y" * 70 + b"\r\n\tfolded continuation\r\n" for i in range(2000)
    )
    original = b"Subject: big\r\n" + fields + b"\r\nbody\r\n"
    head = original_headers(original)
    assert 0 < len(head) <= MAX_HEADER_BYTES
    assert head.endswith(b"folded continuation\r\n")
    assert original.startswith(head)
    raw = make_bounce(original)
    assert len(raw) < MAX_HEADER_BYTES + 8192
    parse(raw)
    analyse(raw)


def test_original_headers_edge_cases():
    assert original_headers(b"") == b""
    assert original_headers(b"\r\nbody only") == b""
    assert original_headers(b"Subject: x\nTo: y\n\nbody") == b"Subject: x\r\nTo: y\r\n"
    assert original_headers(b"Subject: no end") == b"Subject: no end\r\n"
    assert original_headers(b"A: " + b"x" * 100 + b"\r\n", limit=50) == b""


def test_parsed_by_carteiro():
    raw = make_bounce()
    meta = analyse(raw)
    root = meta.tree
    assert (root.type, root.subtype) == ("multipart", "report")
    assert [(c.type, c.subtype) for c in root.children] == [
        ("text", "plain"),
        ("message", "delivery-status"),
        ("text", "rfc822-headers"),
    ]
    assert b"Undelivered Mail Returned to Sender" in meta.envelope


def test_delay_warning():
    raw = delay_warning(
        hostname="mail.example.org",
        sender="alice@example.org",
        recipients=[RecipientStatus("bob@example.net", "451 4.2.0 busy", "mx[192.0.2.1]")],
        original=ORIGINAL,
        arrival=1_700_000_000.0,
        retry_until=1_700_432_000.0,
        now=1_700_014_400.0,
    )
    msg, parts = parse(raw)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert "WARNING ONLY" in parts[0].get_content()
    _, rcpt = blocks(parts[1])
    assert rcpt["Action"] == "delayed"
    assert rcpt["Status"] == "4.2.0"
    assert rcpt["Will-Retry-Until"] == email.utils.formatdate(1_700_432_000.0, usegmt=True)
    analyse(raw)


def test_status_class_follows_action():
    raw = make_bounce_with([RecipientStatus("x@y", "451 4.4.1 no answer")])
    assert blocks(parse(raw)[1][1])[1]["Status"] == "5.4.1"
    raw = make_bounce_with([RecipientStatus("x@y", "451 4.4.1 gone", status="5.4.7")])
    assert blocks(parse(raw)[1][1])[1]["Status"] == "5.4.7"


def make_bounce_with(recipients: list[RecipientStatus]) -> bytes:
    return bounce(
        hostname="h.test", sender="s@h.test", recipients=recipients, original=ORIGINAL, arrival=0
    )


def test_status_of():
    assert status_of("550 5.1.1 no such user") == "5.1.1"
    assert status_of("550-5.7.26 unauthenticated") == "5.7.26"
    assert status_of("550 no enhanced code") == "5.0.0"
    assert status_of("451 try later") == "4.0.0"
    assert status_of("garbage") == "5.0.0"
    assert status_of("garbage", "4") == "4.0.0"
    assert status_of("550 5.1.1x") == "5.0.0"


def test_international_addresses():
    raw = bounce(
        hostname="mail.example.org",
        sender="josé@exemplo.br",
        recipients=[RecipientStatus("用户@例子.中国", "553 5.6.7 no SMTPUTF8")],
        original=ORIGINAL,
        arrival=0,
    )
    msg, parts = parse(raw)
    assert msg["To"] == "josé@exemplo.br"
    status = parts[1].as_bytes()
    assert status.isascii()
    assert "utf-8; \\x{7528}\\x{6237}@" in blocks(parts[1])[1]["Final-Recipient"]


def test_null_sender_recipient_header():
    msg, _ = parse(make_bounce(sender=""))
    assert msg["To"] == "undisclosed-recipients:;"


@settings(max_examples=60, deadline=None)
@given(
    reply=st.text(max_size=300),
    subject=st.text(max_size=200),
    recipient=st.text(min_size=1, max_size=60),
    remote=st.none() | st.text(max_size=60),
)
def test_always_parses(reply, subject, recipient, remote):
    original = b"Subject: " + subject.encode("utf-8", "surrogatepass") + b"\r\n\r\nbody"
    raw = bounce(
        hostname="mail.example.org",
        sender="alice@example.org",
        recipients=[RecipientStatus(recipient, reply, remote)],
        original=original,
        arrival=0,
    )
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    status_part = raw.split(b"Content-Type: message/delivery-status\r\n\r\n")[1]
    status_part = status_part.split(b"\r\n--=_carteiro-dsn-")[0]
    assert status_part.isascii()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"")
    _, rcpt = blocks(parts[1])
    assert rcpt["Action"] == "failed" and rcpt["Status"].startswith("5.")
    root = analyse(raw).tree
    assert [c.subtype for c in root.children] == ["plain", "delivery-status", "rfc822-headers"]
