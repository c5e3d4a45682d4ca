"""Pure helpers of the SMTP hooks: address syntax, header scanning, trace fields, and the
enhanced status codes added to aiosmtpd's own replies."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from carteiro.smtp import envelope as env
from carteiro.smtp.server import _with_enhanced_code


def test_valid_addresses() -> None:
    good = ["a@example.org", "first.last+tag@sub.example.org", "x@[192.0.2.1]", '"a b"@x.org']
    bad = ["", "a", "@x.org", "a@", "a..b@x.org", ".a@x.org", "a.@x.org", "a@-x.org",
           "a@x-.org", "a b@x.org", "a@x\r\n.org", "a" * 65 + "@x.org"]  # fmt: skip
    assert all(env.valid_address(a) for a in good)
    assert not any(env.valid_address(a) for a in bad)
    assert not env.valid_address("jos\u00e9@example.org")
    assert env.valid_address("jos\u00e9@example.org", utf8=True)
    assert env.valid_address("a@b\u00fccher.example", utf8=True)


def test_header_scanning() -> None:
    raw = (
        b'Received: from a\r\n\tby b; x\r\nFrom: "A, B" <a@x.org>,\r\n c@y.org\r\n'
        b"Subject: =?utf-8?q?ol=C3=A1?=\r\nReceived: two\r\n\r\nFrom: not@header.org\r\n"
    )
    assert env.from_addresses(raw) == ["a@x.org", "c@y.org"]
    assert env.received_count(raw) == 2
    assert env.header_values(raw, "SUBJECT") == ["=?utf-8?q?ol=C3=A1?="]
    assert env.domain_of("A@Example.ORG") == "example.org"
    assert env.has_8bit("olá".encode()) and not env.has_8bit(b"plain")


def test_submission_headers_are_added_only_when_missing() -> None:
    complete = b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n"
    assert env.add_submission_headers(complete, "mail.example.org") == complete
    added = env.add_submission_headers(b"Subject: x\r\n\r\nbody\r\n", "mail.example.org")
    head, _, body = added.partition(b"\r\n\r\n")
    assert body == b"body\r\n"
    assert head.startswith(b"Subject: x\r\nDate: ")
    assert b"@mail.example.org>" in head
    bare = env.add_submission_headers(b"Subject: no body", "h")
    assert bare.startswith(b"Subject: no body\r\nDate: ") and bare.endswith(b"@h>\r\n")


@given(st.binary(max_size=300))
def test_submission_headers_keep_every_original_byte(raw: bytes) -> None:
    out = env.add_submission_headers(raw, "h.example")
    # the original is the output minus one contiguous insertion
    i = 0
    while i < len(raw) and out[i] == raw[i]:
        i += 1
    tail = len(raw) - i
    assert out[len(out) - tail :] == raw[i:]


def test_received_header() -> None:
    field = env.received_header(
        helo="client (evil)\r\nX-Injected: 1",
        address="192.0.2.7",
        hostname="mx.example.org",
        protocol="ESMTPS",
        queue_id="ABC",
        recipient="u@example.org",
        now=0,
    )
    lines = field.split(b"\r\n")
    assert lines[0].startswith(b"Received: from client evilX-Injected: 1 ([192.0.2.7])")
    assert lines[1] == b"\tby mx.example.org (Carteiro) with ESMTPS id ABC"
    assert lines[2] == b"\tfor <u@example.org>;"
    assert field.endswith(b"\r\n") and field.count(b"\r\n") == 4


def test_enhanced_codes_are_added_where_missing() -> None:
    assert _with_enhanced_code(b"250 OK", False) == b"250 2.0.0 OK"
    assert _with_enhanced_code(b"503 Error: need MAIL command", False).startswith(b"503 5.5.1 ")
    assert _with_enhanced_code(b"550 5.1.1 no such user", False) == b"550 5.1.1 no such user"
    assert _with_enhanced_code(b"221 Bye", False) == b"221 2.0.0 Bye"
    assert _with_enhanced_code(b"250", False) == b"250 2.0.0"
    # the greeting, EHLO lines and intermediate replies carry none (RFC 2034 §4)
    for line in (b"220 mx ready", b"354 End data", b"334 VXNlcm5hbWU6"):
        assert _with_enhanced_code(line, False) == line
    assert _with_enhanced_code(b"250-SIZE 100", True) == b"250-SIZE 100"


@given(st.sampled_from(["250", "451", "500", "501", "503", "550", "552", "554"]), st.text())
def test_enhanced_code_class_matches_reply_class(code: str, text: str) -> None:
    line = f"{code} {text}".encode()
    out = _with_enhanced_code(line, False)
    assert out.startswith(code.encode() + b" " + code[0].encode() + b".")
