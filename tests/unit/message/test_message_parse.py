"""Part tree and byte offsets on hand-written messages."""

from __future__ import annotations

from carteiro.message.parse import MAX_DEPTH, MAX_PARTS, Part, count_lines, parse_message


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


NESTED = """\
From: Alice <alice@example.com>
To: bob@example.org
Subject: nested
Content-Type: multipart/mixed; boundary="outer"

preamble
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain

plain
--inner
Content-Type: text/html; charset=utf-8

<b>html</b>
--inner--
--outer
Content-Type: message/rfc822

From: x@y.z
Subject: inner

inner body
--outer
Content-Type: application/octet-stream; name=a.bin
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="a.bin"

AAEC
--outer--
epilogue
"""


def body(raw: bytes, p: Part) -> bytes:
    return raw[p.body_start : p.body_end]


def header(raw: bytes, p: Part) -> bytes:
    return raw[p.header_start : p.body_start]


def test_simple_message_offsets() -> None:
    raw = b"From: a@b.c\r\nSubject: hi\r\n\r\nhello\r\nworld\r\n"
    root = parse_message(raw)
    assert (root.header_start, root.body_start, root.body_end) == (0, 28, len(raw))
    assert header(raw, root).endswith(b"hi\r\n\r\n")
    assert body(raw, root) == b"hello\r\nworld\r\n"
    assert (root.type, root.subtype, root.encoding, root.lines) == ("text", "plain", "7bit", 2)
    assert root.children == [] and root.message is None


def check_nested(raw: bytes, nl: bytes) -> None:
    root = parse_message(raw)
    assert (root.type, root.subtype) == ("multipart", "mixed")
    assert root.param("boundary") == "outer"
    assert len(root.children) == 3
    alt, msg, att = root.children
    assert (alt.type, alt.subtype) == ("multipart", "alternative")
    assert [(c.type, c.subtype) for c in alt.children] == [("text", "plain"), ("text", "html")]
    plain, html = alt.children
    assert body(raw, plain) == b"plain"
    assert header(raw, plain) == b"Content-Type: text/plain" + nl + nl
    assert body(raw, html) == b"<b>html</b>"
    assert html.charset == "utf-8" and plain.charset is None
    assert body(raw, alt).startswith(b"--inner" + nl)
    assert body(raw, alt).endswith(b"--inner--")
    assert (msg.type, msg.subtype) == ("message", "rfc822")
    assert msg.message is not None
    inner = msg.message
    assert inner.header_start == msg.body_start and inner.body_end == msg.body_end
    assert header(raw, inner) == b"From: x@y.z" + nl + b"Subject: inner" + nl + nl
    assert body(raw, inner) == b"inner body"
    assert msg.lines == 4
    assert body(raw, att) == b"AAEC"
    assert att.encoding == "base64" and att.param("name") == "a.bin"
    # the multipart body keeps preamble and epilogue
    assert body(raw, root).startswith(b"preamble")
    assert body(raw, root).endswith(b"epilogue" + nl)


def test_nested_crlf() -> None:
    check_nested(crlf(NESTED), b"\r\n")


def test_nested_lf_only() -> None:
    check_nested(NESTED.encode(), b"\n")


def test_missing_final_boundary() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\npart1\n--b\n\npart2 no end")
    root = parse_message(raw)
    assert [body(raw, c) for c in root.children] == [b"part1", b"part2 no end"]
    assert [header(raw, c) for c in root.children] == [b"\r\n", b"\r\n"]


def test_nested_missing_boundaries() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=o\n\n--o\n"
        "Content-Type: multipart/alternative; boundary=i\n\n--i\n\na\n--i\n\nb\n--o\n\nc\n--o--\n"
    )
    root = parse_message(raw)
    alt, last = root.children
    assert [body(raw, c) for c in alt.children] == [b"a", b"b"]
    assert body(raw, last) == b"c"


def test_boundary_must_start_a_line_and_be_whole() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx --b not here\n--bb no\n"
        "--b  \n\ny\n--b--  \n"
    )
    root = parse_message(raw)
    assert [body(raw, c) for c in root.children] == [b"x --b not here\r\n--bb no", b"y"]


def test_empty_parts_and_no_preamble() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n\n--b--"
    root = parse_message(raw)
    assert len(root.children) == 2
    first, second = root.children
    assert first.header_start == first.body_start == first.body_end
    assert body(raw, second) == b""


def test_no_header_body_separator() -> None:
    raw = b"Subject: x\r\nFrom: a@b"
    root = parse_message(raw)
    assert root.body_start == root.body_end == len(raw)
    assert [n for n, _ in root.headers or []] == ["Subject", "From"]


def test_empty_body_and_empty_message() -> None:
    raw = b"Subject: x\r\n\r\n"
    root = parse_message(raw)
    assert root.body_start == len(raw) and root.size == 0 and root.lines == 0
    empty = parse_message(b"")
    assert (empty.header_start, empty.body_start, empty.body_end) == (0, 0, 0)
    assert (empty.type, empty.subtype) == ("text", "plain")


def test_leading_blank_line_means_empty_header() -> None:
    raw = b"\r\nSubject: not a header\r\n"
    root = parse_message(raw)
    assert root.body_start == 2 and root.headers == []


def test_header_folding_duplicates_malformed_8bit() -> None:
    raw = (
        b"Subject: one\r\n two\r\n\tthree\r\nthis line is broken\r\nX-A: 1\r\nx-a: 2\r\n"
        b"Subject : second\r\nX-Name: Jos\xc3\xa9\r\n\r\nbody"
    )
    root = parse_message(raw)
    assert root.headers == [
        ("Subject", b"one two\tthree"),
        ("X-A", b"1"),
        ("x-a", b"2"),
        ("Subject", b"second"),
        ("X-Name", b"Jos\xc3\xa9"),
    ]
    assert body(raw, root) == b"body"


def test_content_type_defaults_and_garbage() -> None:
    assert parse_message(b"Content-Type: garbage\r\n\r\nx").type == "text"
    p = parse_message(b'Content-Type: TEXT/HTML (comment); CHARSET="ISO-8859-1"\r\n\r\nx')
    assert (p.type, p.subtype, p.charset) == ("text", "html", "iso-8859-1")
    # multipart without a boundary parameter has no children
    assert parse_message(b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\ny").children == []


def test_digest_default_is_message_rfc822() -> None:
    raw = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody1\n"
        "--d\nContent-Type: text/plain\n\nplain\n--d--\n"
    )
    root = parse_message(raw)
    first, second = root.children
    assert (first.type, first.subtype) == ("message", "rfc822")
    assert first.message is not None and body(raw, first.message) == b"body1"
    assert (second.type, second.subtype) == ("text", "plain")


def test_encoded_message_rfc822_is_a_leaf() -> None:
    raw = (
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA=="
    )
    assert parse_message(raw).message is None


def test_rfc2231_parameters() -> None:
    raw = (
        b"Content-Type: application/pdf; name*0*=utf-8''%E2%82%AC; name*1=\" x.pdf\";"
        b" title*=us-ascii'en'This%20is; boundary*0=ab; boundary*1=cd\r\n\r\n"
    )
    p = parse_message(raw)
    assert p.params == (
        ("name*", "utf-8''%E2%82%AC%20x.pdf"),
        ("title*", "us-ascii'en'This%20is"),
        ("boundary", "abcd"),
    )
    assert p.param("name") == "\u20ac x.pdf"
    assert p.param("title") == "This is"


def test_depth_limit() -> None:
    depth = MAX_DEPTH + 30
    head = "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n" for i in range(depth)
    )
    raw = (head + "\nleaf\n").encode()
    root = parse_message(raw)
    levels = 0
    node = root
    while node.children:
        node = node.children[0]
        levels += 1
    assert levels == MAX_DEPTH


def test_message_rfc822_depth_limit() -> None:
    raw = ("Content-Type: message/rfc822\n\n" * (MAX_DEPTH + 20) + "Subject: end\n\nx").encode()
    root = parse_message(raw)
    levels = 0
    node = root
    while node.message is not None:
        node = node.message
        levels += 1
    assert levels == MAX_DEPTH


def test_part_count_limit() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\n\n" + b"--b\n\nx\n" * (MAX_PARTS + 500)
    root = parse_message(raw)
    assert len(root.walk()) == MAX_PARTS


def test_count_lines() -> None:
    assert count_lines(b"", 0, 0) == 0
    assert count_lines(b"a", 0, 1) == 1
    assert count_lines(b"a\r\n", 0, 3) == 1
    assert count_lines(b"a\nb", 0, 3) == 2
    assert count_lines(b"\n\n", 0, 2) == 2


def test_walk_order() -> None:
    root = parse_message(crlf(NESTED))
    kinds = [f"{p.type}/{p.subtype}" for p in root.walk()]
    assert kinds == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "message/rfc822",
        "text/plain",
        "application/octet-stream",
    ]


def test_hostile_inputs_stay_linear() -> None:
    import time

    from carteiro.message.meta import analyse

    n = 200_000
    hostile = [
        b"a" + b" " * n + b"\r\n\r\nx",  # no colon after a long run of spaces
        b"x" * n + b"\r\n\r\n",
        b"Content-Type: text/plain" + b'; a="' * (n // 5),
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"x--b" * (n // 4),
        b"To: " + b"<" * n,
        b'From: "' + b"\\" * n,
        b"Subject: " + b"=?" * n,
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--bX\r\n" * (n // 6),
    ]
    for raw in hostile:
        start = time.perf_counter()
        analyse(raw)
        assert time.perf_counter() - start < 1.0, raw[:30]
