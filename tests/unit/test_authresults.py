"""Authentication-Results (RFC 8601): the field we write and the removal of forged ones."""

from __future__ import annotations

import authres
from hypothesis import given
from hypothesis import strategies as st

from carteiro.smtp.authresults import build, strip_forged
from carteiro.smtp.dkim import DkimResult
from carteiro.smtp.dmarc import DmarcResult
from carteiro.smtp.spf import SpfResult

SPF_PASS = SpfResult("pass", "example.org", "ok")
DKIM = [
    DkimResult("pass", "example.org", "rsa1", "rsa-sha256", "signature verified"),
    DkimResult("fail", "example.org", "ed1", "ed25519-sha256", "body hash mismatch (got x)"),
]
DMARC_PASS = DmarcResult("pass", "reject", "example.org", "none")


def parse(header: bytes) -> authres.AuthenticationResultsHeader:
    return authres.AuthenticationResultsHeader.parse(header.decode("ascii").rstrip("\r\n"))


def test_build_full_header() -> None:
    header = build(
        "mx.example.net",
        spf=SPF_PASS,
        mail_from="alice@example.org",
        helo="out.example.org",
        dkim=DKIM,
        dmarc=DMARC_PASS,
    )
    assert header.startswith(b"Authentication-Results: mx.example.net;\r\n\t")
    assert header.endswith(b"\r\n") and not header.endswith(b"\r\n\r\n")
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    parsed = parse(header)
    assert parsed.authserv_id == "mx.example.net"
    results = [(r.method, r.result) for r in parsed.results]
    assert results == [("spf", "pass"), ("dkim", "pass"), ("dkim", "fail"), ("dmarc", "pass")]
    spf = parsed.results[0]
    assert spf.properties[0].type == "smtp" and spf.properties[0].name == "mailfrom"
    assert spf.properties[0].value == "alice@example.org"
    dkim_pass = {(p.type, p.name): p.value for p in parsed.results[1].properties}
    assert dkim_pass == {
        ("header", "d"): "example.org",
        ("header", "s"): "rsa1",
        ("header", "a"): "rsa-sha256",
    }
    assert b"(body hash mismatch" in header
    dmarc = parsed.results[3]
    assert (dmarc.properties[0].type, dmarc.properties[0].name) == ("header", "from")
    assert dmarc.properties[0].value == "example.org"


def test_null_sender_names_helo_and_no_dkim_is_none() -> None:
    header = build(
        "mx.example.net",
        spf=SpfResult("softfail", "out.example.org", "not (really) allowed"),
        mail_from="",
        helo="out.example.org",
        dkim=[],
        dmarc=DmarcResult("none", "none", "", "none"),
    )
    parsed = parse(header)
    assert [(r.method, r.result) for r in parsed.results] == [
        ("spf", "softfail"),
        ("dkim", "none"),
        ("dmarc", "none"),
    ]
    assert parsed.results[0].properties[0].name == "helo"
    assert b"smtp.helo=out.example.org" in header
    assert b"(not really allowed)" in header


def test_awkward_values_are_quoted() -> None:
    header = build(
        "mx.example.net",
        spf=SpfResult("fail", "example.org", "line\r\nbreak\x00"),
        mail_from='"odd user"@example.org',
        helo="x",
        dkim=[],
        dmarc=DmarcResult("fail", "quarantine", "example.org", "quarantine"),
    )
    assert b"\r\n\r\n" not in header and b"\x00" not in header
    assert header.count(b"\r\n") == 4  # three folds and the end
    assert b"(p=quarantine dis=quarantine)" in header
    assert b'smtp.mailfrom="\\"odd user\\"@example.org"' in header
    assert parse(header).results[0].method == "spf"


MESSAGE_BODY = b"\r\nAuthentication-Results: mx.example.net; spf=pass\r\nbody\r\n"


def test_strip_forged_removes_ours_only() -> None:
    message = (
        b"Received: from a\r\n"
        b"Authentication-Results: MX.Example.NET; spf=pass\r\n"
        b"  smtp.mailfrom=x@example.org\r\n"
        b"Authentication-Results: other.example; spf=fail\r\n"
        b"authentication-results :(comment) mx.example.net; dkim=pass\r\n"
        b'Authentication-Results: "mx.example.net"; dmarc=pass\r\n'
        b"Authentication-Results: mx.example.net.evil; dmarc=pass\r\n"
        b"Authentication-Results: mx.example.net 1; dmarc=pass\r\n"
        b"Subject: keep\r\n" + MESSAGE_BODY
    )
    assert strip_forged(message, "mx.example.net") == (
        b"Received: from a\r\n"
        b"Authentication-Results: other.example; spf=fail\r\n"
        b"Authentication-Results: mx.example.net.evil; dmarc=pass\r\n"
        b"Subject: keep\r\n" + MESSAGE_BODY
    )


def test_strip_forged_lf_and_no_body() -> None:
    message = b"Authentication-Results: mx; x=y\nFrom: a@b\n\tfolded\nAuthentication-Results: mx;"
    assert strip_forged(message, "mx") == b"From: a@b\n\tfolded\n"
    assert strip_forged(b"", "mx") == b""


def test_strip_forged_leaves_other_messages_alone() -> None:
    message = b"From: a@b\r\nSubject: Authentication-Results: mx\r\n\r\nbody"
    assert strip_forged(message, "mx") is not None
    assert strip_forged(message, "mx") == message


_names = st.sampled_from(["From", "Subject", "X-Test", "Authentication-Results", "Received"])
_ids = st.sampled_from(["mx.example.net", "MX.example.net", "other.example", "mx", '"x y"'])
_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
_eol = st.sampled_from([b"\r\n", b"\n"])


@st.composite
def fields(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A header field and whether it is one of ours (to be removed)."""
    name = draw(_names)
    eol = draw(_eol)
    if name == "Authentication-Results":
        ident = draw(_ids)
        value = f" {ident}; {draw(_text)}"
        ours = ident.lower() == "mx.example.net"
    else:
        value, ours = " " + draw(_text), False
    folds = draw(st.lists(_text, max_size=2))
    raw = (name + ":" + value).encode() + eol
    for fold in folds:
        raw += b"\t" + fold.encode() + eol
    return raw, ours


@given(st.lists(fields(), max_size=8), st.binary(max_size=200), _eol)
def test_strip_forged_only_removes_whole_fields_of_ours(
    header: list[tuple[bytes, bool]], body: bytes, eol: bytes
) -> None:
    message = b"".join(raw for raw, _ in header) + eol + body
    expected = b"".join(raw for raw, ours in header if not ours) + eol + body
    assert strip_forged(message, "mx.example.net") == expected


@given(st.binary(max_size=300))
def test_strip_forged_never_changes_a_message_without_our_fields(message: bytes) -> None:
    if b"mx.example.net" in message.lower():
        return
    assert strip_forged(message, "mx.example.net") == message
