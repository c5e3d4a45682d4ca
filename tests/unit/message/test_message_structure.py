"""ENVELOPE, BODY and BODYSTRUCTURE: golden strings written by hand from RFC 9051
§7.5.2 and the ``envelope`` / ``body`` rules of §9."""

from __future__ import annotations

import datetime

import pytest
from message_testlib import check_body, check_envelope, parse_sexpr
from test_message_parse import NESTED, crlf

from carteiro.message.envelope import envelope, parse_addresses
from carteiro.message.headers import parse_fields
from carteiro.message.meta import analyse, sent_date_of


def env_of(header: bytes) -> bytes:
    raw = header + b"\r\n\r\n"
    return envelope(parse_fields(raw, 0, len(raw)))


def addrs(value: str) -> list[tuple[str | None, str | None, str | None, str | None]]:
    return parse_addresses(value)


# --- addresses ---------------------------------------------------------------------------


def test_plain_and_named_addresses() -> None:
    assert addrs("a@b.c") == [(None, None, "a", "b.c")]
    assert addrs("Dave Dunn <dave@example.com>") == [("Dave Dunn", None, "dave", "example.com")]
    assert addrs('"Dunn, Dave" <dave@example.com>, x@y') == [
        ("Dunn, Dave", None, "dave", "example.com"),
        (None, None, "x", "y"),
    ]
    assert addrs("dave@example.com (Dave Dunn)") == [("Dave Dunn", None, "dave", "example.com")]
    assert addrs('"A \\"B\\"" <a@b>') == [('A "B"', None, "a", "b")]
    assert addrs("John Q. Public <jqp@x>") == [("John Q. Public", None, "jqp", "x")]


def test_group_syntax() -> None:
    assert addrs('Friends: a@b.c, "Q, R" <q@r.s>;, solo@x.y') == [
        (None, None, "Friends", None),
        (None, None, "a", "b.c"),
        ("Q, R", None, "q", "r.s"),
        (None, None, None, None),
        (None, None, "solo", "x.y"),
    ]
    assert addrs("undisclosed-recipients:;") == [
        (None, None, "undisclosed-recipients", None),
        (None, None, None, None),
    ]
    # an unterminated group is closed
    assert addrs("G: a@b")[-1] == (None, None, None, None)


def test_route_quoted_local_and_odd_addresses() -> None:
    assert addrs("<@r1,@r2:u@h>") == [(None, "@r1,@r2", "u", "h")]
    assert addrs('"john doe"@example.com') == [(None, None, '"john doe"', "example.com")]
    assert addrs("foo") == [(None, None, "foo", "MISSING_DOMAIN")]
    assert addrs("a@[127.0.0.1]") == [(None, None, "a", "[127.0.0.1]")]
    assert addrs("") == []
    assert addrs(" , ,") == []
    assert addrs("<>") == [(None, None, "", "")]


# --- envelope ----------------------------------------------------------------------------


def test_envelope_golden() -> None:
    header = (
        b"Date: Mon, 01 Jan 2024 02:41:02 +0200\r\n"
        b'Subject: Lunch\r\n on "Friday"?\r\n'
        b"From: Dave Dunn <dave@example.com>\r\n"
        b"Reply-To: list@example.org\r\n"
        b"To: Heidi <heidi@example.co.uk>, mallory@example.biz\r\n"
        b"Cc: Team: a@b.c;\r\n"
        b"In-Reply-To: <x@y>\r\n"
        b"Message-ID: <1@example.com>"
    )
    assert env_of(header) == (
        b'("Mon, 01 Jan 2024 02:41:02 +0200" "Lunch on \\"Friday\\"?" '
        b'(("Dave Dunn" NIL "dave" "example.com")) '
        b'(("Dave Dunn" NIL "dave" "example.com")) '
        b'((NIL NIL "list" "example.org")) '
        b'(("Heidi" NIL "heidi" "example.co.uk")(NIL NIL "mallory" "example.biz")) '
        b'((NIL NIL "Team" NIL)(NIL NIL "a" "b.c")(NIL NIL NIL NIL)) '
        b'NIL "<x@y>" "<1@example.com>")'
    )


def test_envelope_empty_and_defaults() -> None:
    assert env_of(b"") == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    # Sender present but empty: defaults to From (RFC 3501 §7.4.2)
    env = env_of(b"From: a@b\r\nSender:\r\nSubject:")
    assert env == (
        b'(NIL "" ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) NIL NIL NIL NIL NIL)'
    )


def test_envelope_first_occurrence_and_raw_encoded_words() -> None:
    env = env_of(b"Subject: =?utf-8?q?=C3=9Cber?=\r\nSubject: second")
    assert b'"=?utf-8?q?=C3=9Cber?="' in env and b"second" not in env


def test_envelope_8bit_uses_literals() -> None:
    env = env_of('From: "José" <j@x.pt>\r\nSubject: Olá'.encode())
    assert b"{5}\r\nJos\xc3\xa9" in env
    assert b"{4}\r\nOl\xc3\xa1" in env
    check_envelope(parse_sexpr(env))


# --- body structure ----------------------------------------------------------------------


def test_simple_text_message() -> None:
    meta = analyse(b"From: a@b.c\r\nSubject: hi\r\n\r\nhello\r\nworld\r\n")
    assert meta.body == b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 2)'
    assert meta.bodystructure == (
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 2 NIL NIL NIL NIL)'
    )


def test_empty_message() -> None:
    meta = analyse(b"")
    assert meta.envelope == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert meta.bodystructure == (
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)'
    )
    assert meta.sent_date is None


NESTED_PLAIN = b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 5 1'
NESTED_HTML = b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 11 1'
NESTED_INNER_ENV = (
    b'(NIL "inner" ((NIL NIL "x" "y.z")) ((NIL NIL "x" "y.z")) ((NIL NIL "x" "y.z")) '
    b"NIL NIL NIL NIL NIL)"
)
NESTED_INNER_TEXT = b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1'
NESTED_APP = b'("APPLICATION" "OCTET-STREAM" ("NAME" "a.bin") NIL NIL "BASE64" 4'


def test_nested_body_golden() -> None:
    meta = analyse(crlf(NESTED))
    # encapsulated message: "From: x@y.z\r\nSubject: inner\r\n\r\ninner body" = 41 octets
    assert meta.body == (
        b"("
        + b"("
        + NESTED_PLAIN
        + b")"
        + NESTED_HTML
        + b') "ALTERNATIVE")'
        + b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 41 '
        + NESTED_INNER_ENV
        + b" "
        + NESTED_INNER_TEXT
        + b") 4)"
        + NESTED_APP
        + b') "MIXED")'
    )


def test_nested_bodystructure_golden() -> None:
    meta = analyse(crlf(NESTED))
    assert meta.bodystructure == (
        b"(("
        + NESTED_PLAIN
        + b" NIL NIL NIL NIL)"
        + NESTED_HTML
        + b' NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "inner") NIL NIL NIL)'
        + b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 41 '
        + NESTED_INNER_ENV
        + b" "
        + NESTED_INNER_TEXT
        + b" NIL NIL NIL NIL) 4 NIL NIL NIL NIL)"
        + NESTED_APP
        + b' NIL ("ATTACHMENT" ("FILENAME" "a.bin")) NIL NIL)'
        + b' "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)'
    )
    check_body(parse_sexpr(meta.bodystructure), ext=True)
    check_body(parse_sexpr(meta.body), ext=False)
    check_envelope(parse_sexpr(meta.envelope))


def test_single_part_extension_fields() -> None:
    raw = (
        b'Content-Type: image/png; name="a b.png"\r\n'
        b"Content-ID: <img1@x>\r\n"
        b"Content-Description: A picture\r\n"
        b"Content-Transfer-Encoding: Base64\r\n"
        b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
        b"Content-Disposition: inline; filename=a.png; size=3\r\n"
        b"Content-Language: en, pt-BR\r\n"
        b"Content-Location: http://x.example/a.png\r\n"
        b"\r\niVBO"
    )
    meta = analyse(raw)
    assert meta.bodystructure == (
        b'("IMAGE" "PNG" ("NAME" "a b.png") "<img1@x>" "A picture" "BASE64" 4 '
        b'"Q2hlY2sgSW50ZWdyaXR5IQ==" ("INLINE" ("FILENAME" "a.png" "SIZE" "3")) '
        b'("en" "pt-BR") "http://x.example/a.png")'
    )
    assert meta.body == (b'("IMAGE" "PNG" ("NAME" "a b.png") "<img1@x>" "A picture" "BASE64" 4)')


def test_text_params_keep_charset_default() -> None:
    meta = analyse(b"Content-Type: text/plain; format=flowed\r\nContent-Language: de\r\n\r\nx")
    assert meta.bodystructure == (
        b'("TEXT" "PLAIN" ("FORMAT" "flowed" "CHARSET" "us-ascii") NIL NIL "7BIT" 1 1 '
        b'NIL NIL "de" NIL)'
    )


def test_multipart_without_children_gets_a_dummy_part() -> None:
    meta = analyse(b"Content-Type: multipart/mixed; boundary=zz\r\n\r\nno parts here\r\n")
    assert meta.body == (b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0) "MIXED")')
    check_body(parse_sexpr(meta.bodystructure), ext=True)


def test_encoded_message_rfc822_is_described_as_data() -> None:
    meta = analyse(
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA=="
    )
    assert meta.body == b'("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 16)'


def test_message_global_is_a_message() -> None:
    raw = b"Content-Type: message/global\r\n\r\nSubject: s\r\n\r\nhi"
    meta = analyse(raw)
    assert meta.body == (
        b'("MESSAGE" "GLOBAL" NIL NIL NIL "7BIT" 16 (NIL "s" NIL NIL NIL NIL NIL NIL NIL NIL) '
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 2 1) 3)'
    )


def test_8bit_parameter_value_becomes_literal() -> None:
    meta = analyse('Content-Type: application/pdf; name="relatório.pdf"\r\n\r\nx'.encode())
    value = parse_sexpr(meta.bodystructure)
    assert isinstance(value, list) and value[2] == [b"NAME", "relatório.pdf".encode()]


# --- sent date ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"Mon, 01 Jan 2024 02:41:02 +0200", datetime.date(2024, 1, 1)),
        (b"Sun, 31 Dec 2023 23:30:00 -0800", datetime.date(2023, 12, 31)),
        (b"1 Feb 99 10:00 GMT", datetime.date(1999, 2, 1)),
        (b"31 Feb 2024 10:00:00 +0000", None),
        (b"yesterday", None),
        (b"", None),
        (None, None),
    ],
)
def test_sent_date(value: bytes | None, expected: datetime.date | None) -> None:
    assert sent_date_of(value) == expected
