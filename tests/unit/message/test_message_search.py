"""Text used by SEARCH: decoded headers, addresses and bodies."""

from __future__ import annotations

from carteiro.message.decode import decode_charset, decode_words
from carteiro.message.meta import analyse
from carteiro.message.search import (
    address_text,
    body_text,
    contains,
    folded_body,
    folded_header,
    header_text,
    header_values,
    part_headers_text,
)

RAW = (
    b"From: =?utf-8?q?Jos=C3=A9?= Silva <jose@example.pt>\r\n"
    b'To: "Str\xc3\xb6m, Anna" <anna@example.se>,\r\n bob@example.org\r\n'
    b"Subject: =?iso-8859-1?q?caf=E9?=\r\n =?utf-8?b?w6k=?= end\r\n"
    b"X-Dup: 1\r\nx-dup: 2\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nOl=E1 mundo=\r\n!\r\n"
    b"--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + __import__("base64").b64encode("<p>Grüße</p>".encode())
    + b"\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\nsecret-binary\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nnested words\r\n"
    b"--b--\r\n"
)
META = analyse(RAW)


def test_header_values() -> None:
    assert header_values(RAW, META, "subject") == ["caféé end"]
    assert header_values(RAW, META, "X-DUP") == ["1", "2"]
    assert header_values(RAW, META, "missing") == []
    assert header_values(RAW, META, "To") == ['"Ström, Anna" <anna@example.se>, bob@example.org']


def test_address_text() -> None:
    text = address_text(RAW, META, "from")
    assert contains(text, "josé silva")
    assert contains(text, "JOSE@example.pt")
    to = address_text(RAW, META, "to")
    assert contains(to, "ström") and contains(to, "anna@example.se")
    assert contains(to, "bob@example.org")
    assert address_text(RAW, META, "cc") == ""


def test_header_text() -> None:
    text = header_text(RAW, META)
    assert "Subject: caféé end" in text
    assert "From: José Silva <jose@example.pt>" in text


def test_body_text() -> None:
    text = body_text(RAW, META)
    assert "Olá mundo!" in text
    assert "<p>Grüße</p>" in text
    assert "nested words" in text
    assert "secret-binary" not in text
    assert contains(text, "GRÜSSE")  # full case folding: ß matches SS
    assert contains(text, "olÁ MUNDO")


def test_decode_words_edge_cases() -> None:
    assert decode_words("plain") == "plain"
    assert decode_words("=?utf-8?q?a?= =?utf-8?q?b?=") == "ab"
    assert decode_words("=?utf-8?q?a?= x =?utf-8?q?b?=") == "a x b"
    # a UTF-8 sequence split across two words
    assert decode_words("=?utf-8?b?w6?= =?utf-8?b?kK?=") != ""
    assert decode_words("=?utf-8?q?=C3?= =?utf-8?q?=A9?=") == "é"
    assert decode_words("=?x-unknown?q?abc?=") == "abc"
    assert decode_words("=?utf-8*en?q?hi?=") == "hi"
    assert decode_words("=?broken") == "=?broken"


def test_decode_charset_fallbacks() -> None:
    assert decode_charset("é".encode(), None) == "é"
    assert decode_charset(b"\xe9", None) == "é"
    assert decode_charset(b"\xe9", "us-ascii") == "é"
    assert decode_charset(b"\xe9", "no-such-charset") == "é"
    assert decode_charset("é".encode("cp1252"), "windows-1252") == "é"


def test_non_multipart_body_text() -> None:
    raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\nhello w\xc3\xb6rld"
    assert body_text(raw, analyse(raw)) == "hello wörld"
    raw = b"Content-Type: image/png\r\n\r\nPNG"
    assert body_text(raw, analyse(raw)) == ""


def test_folded_text_is_what_search_matches() -> None:
    """The full-text index stores folded_header/folded_body: the scan's text, casefolded
    (full Unicode folding, so ß matches ss), decoded from QP, base64 and RFC 2047."""
    head, body = folded_header(RAW, META), folded_body(RAW, META)
    assert head == (header_text(RAW, META) + "\n" + part_headers_text(RAW, META)).casefold()
    assert body == body_text(RAW, META).casefold()
    assert "subject: caféé end" in head and "from: josé silva <jose@example.pt>" in head
    assert "olá mundo!" in body and "<p>grüsse</p>" in body and "nested words" in body
    assert "secret-binary" not in body  # not a text part
    assert all(contains(head + body, n) == (n.casefold() in head + body) for n in ("GRÜSSE", "ß"))


def test_text_also_matches_part_headers_body_does_not() -> None:
    """RFC 9051 §6.4.4: TEXT matches the header "including MIME header fields"; the
    headers of an attached message are in the body. BODY skips every header."""
    head, body = folded_header(RAW, META), folded_body(RAW, META)
    assert "content-type: application/octet-stream" in head
    assert "subject: inner" in head  # the attached message's header
    assert "subject: inner" not in body and "application/octet-stream" not in body
    assert head.startswith(header_text(RAW, META).casefold())
    plain = b"Subject: one\r\n\r\nbody\r\n"
    assert folded_header(plain, analyse(plain)) == "subject: one"
