"""RFC 8970 PREVIEW text: part choice, decoding, HTML, quotes and signatures, the 256
character limit, storage in MessageMeta (current and previous stored forms)."""

from __future__ import annotations

import base64
import quopri

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from message_testlib import sample_messages

from carteiro.message.meta import (
    BODY,
    BODYSTRUCTURE,
    ENVELOPE,
    MAGIC,
    MAGIC_V1,
    MessageMeta,
    analyse,
    stored_preview,
    stored_segment,
    stored_segments,
)
from carteiro.message.parse import parse_message
from carteiro.message.preview import MAX_CHARS, PLAIN_SCAN, html_to_text, preview

HEAD = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: test\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\n"


def msg(body: bytes, ctype: bytes = b"text/plain; charset=utf-8", extra: bytes = b"") -> bytes:
    return HEAD + b"Content-Type: " + ctype + b"\r\n" + extra + b"\r\n" + body


def pv(raw: bytes) -> str:
    return preview(raw, parse_message(raw))


def multipart(subtype: str, *parts: bytes, boundary: bytes = b"b") -> bytes:
    out = HEAD + b"Content-Type: multipart/" + subtype.encode() + b"; boundary=" + boundary
    out += b"\r\n\r\npreamble is not shown\r\n"
    for p in parts:
        out += b"--" + boundary + b"\r\n" + p + b"\r\n"
    return out + b"--" + boundary + b"--\r\nepilogue\r\n"


def part(body: bytes, ctype: bytes = b"text/plain; charset=utf-8", extra: bytes = b"") -> bytes:
    return b"Content-Type: " + ctype + b"\r\n" + extra + b"\r\n" + body


# --- plain text -----------------------------------------------------------------------


def test_plain_whitespace_collapsed_and_trimmed() -> None:
    raw = msg(b"\r\n\r\n   Hello,\t\tworld!\r\n\r\n\r\nSecond   paragraph.  \r\n\r\n")
    assert pv(raw) == "Hello, world! Second paragraph."


def test_bare_lf_and_no_final_newline() -> None:
    raw = msg(b"one\ntwo\n\nthree").replace(b"\r\n", b"\n")
    assert pv(raw) == "one two three"


def test_headers_are_irrelevant_even_8bit() -> None:
    raw = (
        b"From: =?utf-8?q?Jos=C3=A9?= <j@example.pt>\r\nSubject: Caf\xc3\xa9 \xff\xfe\r\n"
        b"X-Junk: \x00\x01\x80\r\nContent-Type: text/plain\r\n\r\nJust the body.\r\n"
    )
    assert pv(raw) == "Just the body."


def test_no_content_type_means_plain() -> None:
    assert pv(b"Subject: x\r\n\r\nplain by default\r\n") == "plain by default"


def test_undeclared_8bit_is_utf8_else_latin1() -> None:
    assert pv(msg("Olá — ok".encode(), b"text/plain")) == "Olá — ok"
    assert pv(msg(b"Ol\xe1 mundo", b"text/plain")) == "Olá mundo"


def test_quoted_printable_latin1() -> None:
    body = quopri.encodestring("Olá, até já! Ça va très bien.\r\n".encode("iso-8859-1"))
    raw = msg(
        body, b"text/plain; charset=iso-8859-1", b"Content-Transfer-Encoding: quoted-printable\r\n"
    )
    assert pv(raw) == "Olá, até já! Ça va très bien."


def test_quoted_printable_soft_breaks_join_words() -> None:
    raw = msg(
        b"A very long wo=\r\nrd split by a soft =C3=A9=\r\nnd line break.\r\n",
        extra=b"Content-Transfer-Encoding: Quoted-Printable\r\n",
    )
    assert pv(raw) == "A very long word split by a soft énd line break."


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("utf-8", "Grüße aus Köln 😀"),
        ("koi8-r", "Привет, мир"),
        ("shift_jis", "こんにちは世界"),
        ("iso-2022-jp", "日本語のメール"),
        ("windows-1252", "“smart quotes” – €5"),
        ("gb2312", "你好世界"),
    ],
)
def test_base64_with_charsets(charset: str, text: str) -> None:
    body = base64.encodebytes((text + "\r\n").encode(charset))
    raw = msg(
        body,
        f'text/plain; charset="{charset.upper()}"'.encode(),
        b"Content-Transfer-Encoding: BASE64\r\n",
    )
    assert pv(raw) == text


def test_wrong_or_unknown_charset_falls_back() -> None:
    assert pv(msg("café".encode(), b"text/plain; charset=x-unknown")) == "café"
    assert pv(msg("Café".encode(), b"text/plain; charset=us-ascii")) == "Café"
    assert pv(msg("café".encode(), b"text/plain; charset=iso-2022-jp")) == "café"
    for codec in (b"zlib", b"base64", b"hex", b"rot13", b"idna", b"utf-32"):
        assert pv(msg(b"78 9c plain", b"text/plain; charset=" + codec)) == "78 9c plain"


def test_unknown_transfer_encoding_gives_nothing() -> None:
    raw = msg(b"begin 644 x\r\n", extra=b"Content-Transfer-Encoding: x-uuencode\r\n")
    assert pv(raw) == ""


def test_controls_and_invisible_characters() -> None:
    raw = msg("a\x00b\x07c\u200bd\ufeffe\u00adf\x0cg\x85h".encode())
    assert pv(raw) == "a b cdef g h"


def test_utf7_lone_surrogate_never_returned() -> None:
    raw = msg(b"x +2D0- y", b"text/plain; charset=utf-7")
    text = pv(raw)
    assert not any("\ud800" <= c <= "\udfff" for c in text)
    text.encode("utf-8")  # always encodable


# --- quotes and signatures ------------------------------------------------------------


def test_quotes_and_attribution_removed() -> None:
    raw = msg(
        b"Sounds good, see you then.\r\n\r\nOn Mon, 1 Jan 2024, Ann wrote:\r\n"
        b"> Shall we meet at 10?\r\n>> earlier\r\n\r\nThanks\r\n"
    )
    assert pv(raw) == "Sounds good, see you then. Thanks"


def test_bottom_posting() -> None:
    raw = msg(b"Ann wrote:\r\n> question?\r\n\r\nThe answer.\r\n")
    assert pv(raw) == "The answer."


def test_colon_line_without_quote_is_kept() -> None:
    assert pv(msg(b"Agenda:\r\n1. coffee\r\n")) == "Agenda: 1. coffee"
    assert pv(msg(b"Last line:")) == "Last line:"


def test_signature_removed() -> None:
    raw = msg(b"Body text.\r\n-- \r\nJohn Doe\r\nACME Corp\r\n")
    assert pv(raw) == "Body text."
    # "--" without the space and "-- x" are not separators
    assert pv(msg(b"a\r\n--\r\nb\r\n-- x\r\n")) == "a -- b -- x"


def test_only_quotes_keeps_quotes_without_marks() -> None:
    raw = msg(b"Ann wrote:\r\n> > Forwarded words\r\n>plain\r\n-- \r\nsig\r\n")
    assert pv(raw) == "Ann wrote: Forwarded words plain"


def test_only_signature_keeps_it() -> None:
    assert pv(msg(b"-- \r\nJohn Doe\r\n")) == "-- John Doe"


def test_format_flowed_delsp() -> None:
    body = b"This is a flo\r\nwed para \r\ngraph.\r\n"
    raw = msg(body, b"text/plain; charset=utf-8; format=flowed; delsp=yes")
    assert pv(raw) == "This is a flo wed paragraph."
    raw = msg(body, b"text/plain; charset=utf-8; format=flowed")
    assert pv(raw) == "This is a flo wed para graph."


# --- HTML -----------------------------------------------------------------------------

HTML = b"""<!DOCTYPE html>
<html><head><title>Title is hidden</title>
<style>p { color: red; } /* <b>not text</b> */</style>
<script>var s = "</p><p>not text";</script>
</head>
<body><!-- a comment --><p>Hello <b>W</b>orld &amp; caf&eacute; &#233;&#x1F600;&nbsp;&nbsp;x</p>
<div>Second<br>line<br/>third</div><img src="x.png" alt="alt is not text">
<table><tr><td>cell1</td><td>cell2</td></tr></table></body></html>
"""


def test_html_only() -> None:
    raw = msg(HTML, b"text/html; charset=utf-8")
    assert pv(raw) == "Hello World & café é😀 x Second line third cell1 cell2"


def test_html_blockquote_and_signature() -> None:
    body = (
        b"<div>My reply</div><div>On Monday Ann wrote:</div>"
        b"<blockquote><div>original <i>text</i></div><blockquote>older</blockquote></blockquote>"
        b"<div>-- <br>Sig</div>"
    )
    assert pv(msg(body, b"text/html")) == "My reply"
    only_quote = b"<blockquote>quoted <b>only</b></blockquote>"
    assert pv(msg(only_quote, b"text/html")) == "quoted only"


def test_html_edge_cases() -> None:
    assert html_to_text("<head><title>t</title><body>text").strip() == "text"
    assert html_to_text("a<script>b").strip() == "a"
    assert html_to_text("<p title='>'>x</p><!-- open").strip() == "x"
    assert html_to_text("1 < 2 &lt; 3").strip() == "1 < 2 < 3"
    assert html_to_text("<style/>shown").strip() == "shown"


def test_html_meta_charset_and_qp() -> None:
    body = '<html><head><meta charset="iso-8859-1"></head><body>Olá</body></html>'
    raw = msg(
        quopri.encodestring(body.encode("iso-8859-1")),
        b"text/html",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
    )
    assert pv(raw) == "Olá"


def test_html_preheader_padding_removed() -> None:
    body = "<div style='display:none'>Sale today" + "&zwnj;&nbsp;\u034f " * 50 + "</div><p>Hi"
    assert pv(msg(body.encode(), b"text/html; charset=utf-8")) == "Sale today Hi"


# --- choosing the part ----------------------------------------------------------------


def test_alternative_prefers_plain() -> None:
    raw = multipart(
        "alternative",
        part(b"<p>html version</p>", b"text/html"),
        part(b"plain version"),
    )
    assert pv(raw) == "plain version"


def test_alternative_html_in_related() -> None:
    related = multipart("related", part(b"<p>rich</p>", b"text/html"), part(b"PNG", b"image/png"))
    related = related[len(HEAD) :]
    raw = multipart("alternative", related, boundary=b"outer")
    assert pv(raw) == "rich"
    raw = multipart("alternative", part(b"plain"), related, boundary=b"outer")
    assert pv(raw) == "plain"


def test_mixed_takes_first_inline_text() -> None:
    raw = multipart(
        "mixed",
        part(b"<p>the html body</p>", b"text/html"),
        part(b"notes", b"text/plain", b"Content-Disposition: attachment; filename=n.txt\r\n"),
    )
    assert pv(raw) == "the html body"


def test_empty_first_part_falls_through() -> None:
    raw = multipart("mixed", part(b"\r\n  \r\n"), part(b"second part"))
    assert pv(raw) == "second part"


def test_other_text_types_ignored() -> None:
    raw = multipart("mixed", part(b"a,b\r\n1,2", b"text/csv"), part(b"body"))
    assert pv(raw) == "body"


@pytest.mark.parametrize(
    "raw",
    [
        msg(
            base64.encodebytes(b"\x89PNG\r\n"),
            b"image/png",
            b"Content-Transfer-Encoding: base64\r\n",
        ),
        msg(b"%PDF-1.4", b"application/pdf"),
        multipart(
            'encrypted; protocol="application/pgp-encrypted"',
            part(b"Version: 1", b"application/pgp-encrypted"),
            part(b"-----BEGIN PGP MESSAGE-----", b"application/octet-stream"),
        ),
        msg(b"Subject: inner\r\n\r\nforwarded text\r\n", b"message/rfc822"),
        msg(
            b"whole message is an attachment", b"text/plain", b"Content-Disposition: attachment\r\n"
        ),
        msg(b""),
        msg(b"\r\n \t \r\n"),
        b"",
        multipart("mixed"),
    ],
    ids=[
        "image",
        "pdf",
        "encrypted",
        "rfc822",
        "attachment",
        "empty",
        "blank",
        "nothing",
        "nokids",
    ],
)
def test_no_text_gives_empty_string(raw: bytes) -> None:
    assert pv(raw) == ""
    assert analyse(raw).preview == ""


# --- length ---------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["a", "é", "中", "😀"])
def test_cut_at_256_characters(char: str) -> None:
    raw = msg((char * 1000).encode())
    text = pv(raw)
    assert text == char * MAX_CHARS
    assert len(text.encode()) == MAX_CHARS * len(char.encode())


def test_cut_then_trailing_space_trimmed() -> None:
    text = pv(msg(b"x" * 255 + b" yyyy"))
    assert text == "x" * 255


def test_large_body_only_prefix_scanned() -> None:
    # a multi-byte character straddles the scan limit: the prefix still decodes as UTF-8
    body = b"a" * (PLAIN_SCAN - 1) + "é".encode() * 10
    assert pv(msg(body))[:3] == "aaa"
    assert "Ã" not in pv(msg(b"\xc3\xa9" + body))
    text = "Olá mundo " * 20000
    raw = msg(base64.encodebytes(text.encode()), extra=b"Content-Transfer-Encoding: base64\r\n")
    assert pv(raw) == text.strip()[:MAX_CHARS].rstrip()
    raw = msg(b"> q\r\n" * 50000 + b"own words\r\n")
    assert pv(raw) == "q " * 127 + "q"  # own words beyond the scan: quotes are shown


# --- storage --------------------------------------------------------------------------

# ``analyse(OLD_RAW).to_bytes()`` as written before previews were stored (form CMM1).
OLD_RAW = (
    b"From: a@example.org\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\nSubject: old\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello from the old format.\r\n"
)
OLD_META = bytes.fromhex(
    "434d4d319600000038000000480000000a0000004100000028225475652c2032204a616e2032303234"
    "2031303a30303a3030202b303030302220226f6c64222028284e494c204e494c2022612220226578"
    "616d706c652e6f72672229292028284e494c204e494c2022612220226578616d706c652e6f726722"
    "29292028284e494c204e494c2022612220226578616d706c652e6f7267222929204e494c204e494c"
    "204e494c204e494c204e494c29282254455854222022504c41494e22202822434841525345542220"
    "227574662d382229204e494c204e494c20223742495422203238203129282254455854222022504c"
    "41494e22202822434841525345542220227574662d382229204e494c204e494c2022374249542220"
    "32382031204e494c204e494c204e494c204e494c29323032342d30312d30325b302c3131362c3134"
    "342c2274657874222c22706c61696e222c5b5b2263686172736574222c227574662d38225d5d2c22"
    "37626974222c312c5b5d2c6e756c6c5d"
)


def test_old_form_loads_without_preview() -> None:
    assert OLD_META.startswith(MAGIC_V1)
    old = MessageMeta.from_bytes(OLD_META)
    assert old.preview is None
    assert old.preview_text(OLD_RAW) == "Hello from the old format."
    assert stored_preview(OLD_META) is None
    new = analyse(OLD_RAW)
    assert new.preview == "Hello from the old format."
    # everything else is as before
    assert (old.envelope, old.body, old.bodystructure, old.sent_date, old.tree) == (
        new.envelope,
        new.body,
        new.bodystructure,
        new.sent_date,
        new.tree,
    )
    for which in (ENVELOPE, BODY, BODYSTRUCTURE):
        assert stored_segment(OLD_META, which) == stored_segment(new.to_bytes(), which)
    # written back unchanged, in the old form
    assert old.to_bytes() == OLD_META


def test_new_form_round_trip() -> None:
    raw = msg("Ünïcödé preview 😀".encode())
    meta = analyse(raw)
    data = meta.to_bytes()
    assert data.startswith(MAGIC)
    loaded = MessageMeta.from_bytes(data)
    assert loaded.preview == meta.preview == "Ünïcödé preview 😀"
    assert loaded == meta
    assert loaded.to_bytes() == data
    assert loaded.preview_text(b"ignored") == meta.preview
    assert stored_preview(data) == meta.preview
    assert stored_segment(data, ENVELOPE) == meta.envelope
    assert stored_segment(data, BODYSTRUCTURE) == meta.bodystructure
    assert stored_segments(data) == (meta.envelope, meta.body, meta.bodystructure)
    old = MessageMeta.from_bytes(OLD_META)
    assert stored_segments(OLD_META) == (old.envelope, old.body, old.bodystructure)
    with pytest.raises(ValueError):
        stored_segments(data[: len(data) // 2])
    empty = analyse(msg(b"", b"image/png"))
    assert MessageMeta.from_bytes(empty.to_bytes()).preview == ""


def test_meta_equality_includes_preview() -> None:
    meta = analyse(OLD_RAW)
    assert meta != MessageMeta.from_bytes(OLD_META)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"CMM2",
        b"CMM1" + b"\x00" * 10,
        b"CMM3" + b"\x00" * 24,
        OLD_META[:-1],
        OLD_META + b"x",
    ],
)
def test_bad_stored_forms_rejected(data: bytes) -> None:
    with pytest.raises(ValueError):
        MessageMeta.from_bytes(data)


def test_bad_preview_bytes_rejected() -> None:
    data = bytearray(analyse(msg(b"abc")).to_bytes())
    i = data.index(b"abc", 4 + 24 + 100)
    data[i] = 0xFF
    with pytest.raises(ValueError):
        MessageMeta.from_bytes(bytes(data))


# --- the sample -----------------------------------------------------------------------

MESSAGES = sample_messages()


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_sample_previews(crlf: bool) -> None:
    for raw in MESSAGES:
        if crlf:
            raw = raw.replace(b"\n", b"\r\n")
        meta = analyse(raw)
        text = meta.preview
        assert text is not None
        assert any(p.type == "text" for p in meta.tree.walk())  # every sample has text
        assert 0 < len(text) <= MAX_CHARS
        assert text == text.strip() and "  " not in text and "\n" not in text
        assert "\ufffd" not in text
        # recomputed from the stored tree (no parsed headers) for old metadata: the same
        stored = MessageMeta.from_bytes(meta.to_bytes())
        assert stored.preview == text
        assert preview(raw, stored.tree) == text


def test_sample_golden() -> None:
    assert analyse(MESSAGES[1]).preview.startswith(  # type: ignore[union-attr]
        "Grüße aus Köln — naïve café résumé. "
    )


# --- robustness -----------------------------------------------------------------------

SOUP = [
    b"\r\n",
    b"\n",
    b"Content-Type: multipart/alternative; boundary=b\r\n",
    b"Content-Type: text/html; charset=shift_jis\r\n",
    b"Content-Type: text/plain; charset=utf-7; format=flowed; delsp=yes\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Disposition: attachment\r\n",
    b"--b\r\n",
    b"--b--\r\n",
    b"> quoted\r\n",
    b"-- \r\n",
    b"wrote:\r\n",
    b"<blockquote>",
    b"</blockquote>",
    b"<script>",
    b"<head>",
    b"<!--",
    b"&#xD800;&#0;&bogus;",
    b"+2D0-",
    b"AAECAw==",
    b"=E9=\r\n",
    b"\x00\x80\xff\xc3",
    b"text \xe2\x80\x8b words ",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SOUP), max_size=40).map(b"".join))
def test_preview_never_raises(raw: bytes) -> None:
    meta = analyse(raw)
    text = meta.preview
    assert text is not None and len(text) <= MAX_CHARS
    text.encode("utf-8")
    assert text == text.strip()
    assert MessageMeta.from_bytes(meta.to_bytes()) == meta
