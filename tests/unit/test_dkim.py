"""DKIM signing and verification (RSA and Ed25519), keys published in the real test DNS
server, cross-checked with dkimpy's own verifier."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dns import message as dns_message
from dns import query as dns_query
from dns import rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from carteiro.smtp.dkim import DkimResult, dns_record, generate_key, sign, verify_dkim
from carteiro.store.interface import DkimKey
from tests.dns_server import DnsServer

MESSAGE = (
    b"Received: from somewhere by mx\r\n"
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: Hello there, this is a subject long enough to be folded later on\r\n"
    b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hi Bob,\r\n"
    b"\r\n"
    b"the body.\r\n"
)


@pytest.fixture(scope="module")
def rsa_key() -> DkimKey:
    return DkimKey("example.org", "rsa1", "rsa-sha256", generate_key("rsa-sha256"), 0.0)


@pytest.fixture(scope="module")
def ed_key() -> DkimKey:
    return DkimKey("example.org", "ed1", "ed25519-sha256", generate_key("ed25519-sha256"), 0.0)


@pytest.fixture
def dns(rsa_key: DkimKey, ed_key: DkimKey) -> Iterator[DnsServer]:
    with DnsServer() as server:
        for key in (rsa_key, ed_key):
            server.set(f"{key.selector}._domainkey.{key.domain}", "TXT", [dns_record(key)])
        yield server


def verify(dns: DnsServer, message: bytes) -> list[DkimResult]:
    return asyncio.run(verify_dkim(dns.resolver(), message))


def dkimpy_dnsfunc(server: DnsServer):  # type: ignore[no-untyped-def]
    """An independent lookup path: a raw dnspython TCP query, not carteiro's Resolver."""

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        query = dns_message.make_query(name.decode(), rdatatype.TXT)
        response = dns_query.tcp(query, "127.0.0.1", port=server.port, timeout=timeout)
        for rrset in response.answer:
            for rdata in rrset:
                return b"".join(rdata.strings)
        return None

    return lookup


def test_generate_key_formats() -> None:
    rsa_pem = generate_key("rsa-sha256")
    ed_pem = generate_key("ed25519-sha256")
    assert rsa_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert ed_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = serialization.load_pem_private_key(rsa_pem, None)
    assert isinstance(loaded, rsa.RSAPrivateKey) and loaded.key_size == 2048
    assert isinstance(serialization.load_pem_private_key(ed_pem, None), ed25519.Ed25519PrivateKey)
    with pytest.raises(ValueError, match="unknown DKIM algorithm"):
        generate_key("dsa")


def test_dns_record(rsa_key: DkimKey, ed_key: DkimKey) -> None:
    assert re.fullmatch(r"v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+=*", dns_record(rsa_key))
    ed = dns_record(ed_key)
    assert ed.startswith("v=DKIM1; k=ed25519; p=")
    assert len(base64.b64decode(ed.split("p=")[1])) == 32


def test_sign_rsa_and_ed25519(dns: DnsServer, rsa_key: DkimKey, ed_key: DkimKey) -> None:
    fields = sign(MESSAGE, [rsa_key, ed_key])
    assert fields.count(b"DKIM-Signature:") == 2
    assert fields.endswith(b"\r\n")
    signed = fields + MESSAGE
    results = verify(dns, signed)
    assert [(r.result, r.algorithm, r.selector, r.domain) for r in results] == [
        ("pass", "rsa-sha256", "rsa1", "example.org"),
        ("pass", "ed25519-sha256", "ed1", "example.org"),
    ]
    # the independent verifier agrees, for both signatures
    lookup = dkimpy_dnsfunc(dns)
    assert dkim.verify(signed, dnsfunc=lookup)
    assert dkim.DKIM(signed).verify(idx=1, dnsfunc=lookup)


def test_signature_tags(rsa_key: DkimKey) -> None:
    field = sign(MESSAGE, [rsa_key])
    tags = dkim.util.parse_tag_value(field.split(b":", 1)[1])
    assert tags[b"c"] == b"relaxed/relaxed"
    assert tags[b"a"] == b"rsa-sha256"
    assert tags[b"d"] == b"example.org"
    signed = [h.strip() for h in tags[b"h"].split(b":")]
    # From is over-signed; Received is not signed; absent headers are not listed
    assert signed.count(b"from") == 2
    assert b"received" not in signed and b"cc" not in signed
    assert {b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type"} <= set(
        signed
    )


def test_added_from_breaks_signature(dns: DnsServer, rsa_key: DkimKey) -> None:
    signed = sign(MESSAGE, [rsa_key]) + MESSAGE
    forged = signed.replace(b"To: bob", b"From: mallory@evil.example\r\nTo: bob")
    assert verify(dns, forged)[0].result == "fail"


def test_tampered_body_fails(dns: DnsServer, rsa_key: DkimKey, ed_key: DkimKey) -> None:
    signed = sign(MESSAGE, [rsa_key, ed_key]) + MESSAGE
    tampered = signed.replace(b"the body.", b"the b0dy.")
    results = verify(dns, tampered)
    assert [r.result for r in results] == ["fail", "fail"]
    assert "body hash" in results[0].reason
    assert not dkim.verify(tampered, dnsfunc=dkimpy_dnsfunc(dns))


def test_tampered_header_fails(dns: DnsServer, ed_key: DkimKey) -> None:
    signed = sign(MESSAGE, [ed_key]) + MESSAGE
    tampered = signed.replace(b"Subject: Hello", b"Subject: Hallo")
    assert verify(dns, tampered)[0].result == "fail"


def test_relaxed_canonicalisation_survives_refolding(
    dns: DnsServer, rsa_key: DkimKey, ed_key: DkimKey
) -> None:
    signed = sign(MESSAGE, [rsa_key, ed_key]) + MESSAGE
    refolded = signed.replace(b"long enough to be", b"long enough\r\n\tto   be")
    refolded = refolded.replace(b"To: bob", b"to:    bob")
    refolded = refolded.replace(b"the body.\r\n", b"the body.   \r\n\r\n\r\n")
    assert refolded != signed
    assert [r.result for r in verify(dns, refolded)] == ["pass", "pass"]
    assert dkim.verify(refolded, dnsfunc=dkimpy_dnsfunc(dns))


def test_lf_only_message_signs_and_verifies(dns: DnsServer, ed_key: DkimKey) -> None:
    lf = MESSAGE.replace(b"\r\n", b"\n")
    signed = sign(lf, [ed_key]) + lf
    assert verify(dns, signed)[0].result == "pass"


def test_no_signature_is_empty_list(dns: DnsServer) -> None:
    assert verify(dns, MESSAGE) == []


def test_missing_key_is_permerror(dns: DnsServer, rsa_key: DkimKey) -> None:
    signed = sign(MESSAGE, [rsa_key]) + MESSAGE
    dns.remove("rsa1._domainkey.example.org")
    result = verify(dns, signed)[0]
    assert (result.result, result.selector) == ("permerror", "rsa1")
    assert "no key" in result.reason
    # the name exists but has no TXT: also permerror
    dns.set("rsa1._domainkey.example.org", "A", ["127.0.0.1"])
    assert verify(dns, signed)[0].result == "permerror"


def test_revoked_key_is_permerror(dns: DnsServer, rsa_key: DkimKey) -> None:
    signed = sign(MESSAGE, [rsa_key]) + MESSAGE
    dns.set("rsa1._domainkey.example.org", "TXT", ["v=DKIM1; k=rsa; p="])
    assert verify(dns, signed)[0].result == "permerror"


def test_key_type_mismatch_is_permerror(dns: DnsServer, rsa_key: DkimKey, ed_key: DkimKey) -> None:
    signed = sign(MESSAGE, [rsa_key]) + MESSAGE
    dns.set("rsa1._domainkey.example.org", "TXT", [dns_record(ed_key)])
    assert verify(dns, signed)[0].result == "permerror"


def test_wrong_key_fails(dns: DnsServer, rsa_key: DkimKey) -> None:
    signed = sign(MESSAGE, [rsa_key]) + MESSAGE
    other = DkimKey("example.org", "rsa1", "rsa-sha256", generate_key("rsa-sha256"), 0.0)
    dns.set("rsa1._domainkey.example.org", "TXT", [dns_record(other)])
    assert verify(dns, signed)[0].result == "fail"


def test_dns_failure_is_temperror(dns: DnsServer, rsa_key: DkimKey, ed_key: DkimKey) -> None:
    signed = sign(MESSAGE, [rsa_key, ed_key]) + MESSAGE
    dns.fail("rsa1._domainkey.example.org")
    results = verify(dns, signed)
    assert [r.result for r in results] == ["temperror", "pass"]


def test_malformed_signature_is_neutral(dns: DnsServer) -> None:
    bad = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=rsa1\r\n" + MESSAGE
    result = verify(dns, bad)[0]
    assert (result.result, result.domain) == ("neutral", "example.org")
    garbage = b"DKIM-Signature: this is not a tag list\r\n" + MESSAGE
    assert verify(dns, garbage)[0].result == "neutral"


def test_signature_not_covering_from_is_neutral(dns: DnsServer, rsa_key: DkimKey) -> None:
    field = sign(MESSAGE, [rsa_key])
    unsigned_from = re.sub(rb"h=[^;]*;", b"h=to : subject;", field)
    assert verify(dns, unsigned_from + MESSAGE)[0].result == "neutral"


def test_at_most_five_signatures(dns: DnsServer, ed_key: DkimKey) -> None:
    fields = sign(MESSAGE, [ed_key] * 7)
    assert len(verify(dns, fields + MESSAGE)) == 5


def test_sign_needs_from(rsa_key: DkimKey) -> None:
    with pytest.raises(ValueError, match="From"):
        sign(b"To: x@example.org\r\n\r\nbody\r\n", [rsa_key])


def test_key_algorithm_mismatch_rejected(rsa_key: DkimKey) -> None:
    bad = DkimKey("example.org", "x", "ed25519-sha256", rsa_key.private_key, 0.0)
    with pytest.raises(ValueError, match="not ed25519-sha256"):
        dns_record(bad)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "v=1",
                "a=rsa-sha256",
                "a=ed25519-sha256",
                "d=example.org",
                "s=rsa1",
                "s=ed1",
                "h=from",
                "bh=AAAA",
                "b=AAAA",
                "c=relaxed/relaxed",
                "l=3",
                "x=1",
                "i=@x",
                "=",
                ";",
            ]
        ),
        max_size=10,
    ),
    st.binary(max_size=80),
)
def test_hostile_signatures_never_raise(tags: list[str], tail: bytes) -> None:
    field = b"DKIM-Signature: " + "; ".join(tags).encode() + b"\r\n"
    with DnsServer() as server:
        results = asyncio.run(verify_dkim(server.resolver(timeout=0.5), field + MESSAGE + tail))
    assert len(results) == 1
    assert results[0].result in ("fail", "neutral", "permerror", "temperror")
