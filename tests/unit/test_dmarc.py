"""DMARC policy discovery and alignment, against the real test DNS server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import pytest

from carteiro.smtp.dkim import DkimResult
from carteiro.smtp.dmarc import DmarcResult, check_dmarc, organizational_domain, parse_record
from carteiro.smtp.spf import SpfResult
from tests.dns_server import DnsServer

SPF_NONE = SpfResult("none", "", "")


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.set("_dmarc.example.org", "TXT", ["v=DMARC1; p=reject; rua=mailto:d@example.org"])
        yield server


def dkim_pass(domain: str, result: str = "pass") -> DkimResult:
    return DkimResult(result, domain, "sel", "rsa-sha256", "")


def dmarc(
    dns: DnsServer,
    from_domain: str,
    spf: SpfResult = SPF_NONE,
    mail_from_domain: str = "",
    dkim: Sequence[DkimResult] = (),
) -> DmarcResult:
    return asyncio.run(check_dmarc(dns.resolver(), from_domain, spf, mail_from_domain, dkim))


def test_organizational_domain() -> None:
    assert organizational_domain("a.b.example.co.uk") == "example.co.uk"
    assert organizational_domain("Mail.Example.ORG.") == "example.org"
    assert organizational_domain("co.uk") == "co.uk"


def test_aligned_spf_pass(dns: DnsServer) -> None:
    spf = SpfResult("pass", "example.org", "")
    assert dmarc(dns, "example.org", spf, "example.org") == DmarcResult(
        "pass", "reject", "example.org", "none"
    )
    # relaxed alignment: a subdomain in MAIL FROM is fine
    spf = SpfResult("pass", "bounces.example.org", "")
    assert dmarc(dns, "example.org", spf, "bounces.example.org").result == "pass"


def test_aligned_dkim_pass(dns: DnsServer) -> None:
    got = dmarc(dns, "example.org", dkim=[dkim_pass("evil.example"), dkim_pass("example.org")])
    assert got.result == "pass"
    assert dmarc(dns, "example.org", dkim=[dkim_pass("mail.example.org")]).result == "pass"


def test_unaligned_pass_fails(dns: DnsServer) -> None:
    spf = SpfResult("pass", "mailer.example.net", "")
    got = dmarc(dns, "example.org", spf, "mailer.example.net", [dkim_pass("example.net")])
    assert got == DmarcResult("fail", "reject", "example.org", "reject")


def test_aligned_but_failing(dns: DnsServer) -> None:
    spf = SpfResult("fail", "example.org", "")
    got = dmarc(dns, "example.org", spf, "example.org", [dkim_pass("example.org", "fail")])
    assert (got.result, got.disposition) == ("fail", "reject")


def test_quarantine(dns: DnsServer) -> None:
    dns.set("_dmarc.example.org", "TXT", ["v=DMARC1; p=quarantine"])
    got = dmarc(dns, "example.org")
    assert (got.result, got.policy, got.disposition) == ("fail", "quarantine", "quarantine")


def test_p_none(dns: DnsServer) -> None:
    dns.set("_dmarc.example.org", "TXT", ["v=DMARC1; p=none"])
    assert dmarc(dns, "example.org") == DmarcResult("fail", "none", "example.org", "none")


def test_subdomain_policy_from_org_domain(dns: DnsServer) -> None:
    dns.set("_dmarc.example.org", "TXT", ["v=DMARC1; p=reject; sp=quarantine"])
    got = dmarc(dns, "news.example.org")
    assert got == DmarcResult("fail", "quarantine", "news.example.org", "quarantine")
    # sp= does not apply to the organizational domain itself
    assert dmarc(dns, "example.org").policy == "reject"


def test_org_domain_fallback_without_sp(dns: DnsServer) -> None:
    got = dmarc(dns, "a.b.example.org")
    assert (got.result, got.policy, got.domain) == ("fail", "reject", "a.b.example.org")
    assert ("_dmarc.a.b.example.org", "TXT") in dns.queries
    assert ("_dmarc.example.org", "TXT") in dns.queries


def test_own_record_of_subdomain_wins(dns: DnsServer) -> None:
    dns.set("_dmarc.news.example.org", "TXT", ["v=DMARC1; p=none"])
    assert dmarc(dns, "news.example.org").policy == "none"


def test_strict_alignment(dns: DnsServer) -> None:
    dns.set("_dmarc.example.org", "TXT", ["v=DMARC1; p=reject; adkim=s; aspf=s"])
    spf = SpfResult("pass", "bounces.example.org", "")
    assert dmarc(dns, "example.org", spf, "bounces.example.org").result == "fail"
    assert dmarc(dns, "example.org", dkim=[dkim_pass("mail.example.org")]).result == "fail"
    assert dmarc(dns, "example.org", dkim=[dkim_pass("EXAMPLE.org")]).result == "pass"
    spf = SpfResult("pass", "example.org", "")
    assert dmarc(dns, "example.org", spf, "example.org").result == "pass"


def test_no_record_is_none(dns: DnsServer) -> None:
    assert dmarc(dns, "example.net") == DmarcResult("none", "none", "example.net", "none")
    dns.set("_dmarc.example.net", "TXT", ["v=spf1 -all"])
    assert dmarc(dns, "example.net").result == "none"


def test_dns_failure_is_temperror(dns: DnsServer) -> None:
    dns.fail("_dmarc.example.org")
    assert dmarc(dns, "example.org").result == "temperror"


def test_aligned_temperror_is_temperror(dns: DnsServer) -> None:
    got = dmarc(dns, "example.org", dkim=[dkim_pass("example.org", "temperror")])
    assert (got.result, got.disposition) == ("temperror", "none")


def test_two_records_or_broken_record_is_permerror(dns: DnsServer) -> None:
    dns.set("_dmarc.example.org", "TXT", ["v=DMARC1; p=none", "v=DMARC1; p=reject"])
    assert dmarc(dns, "example.org").result == "permerror"
    dns.set("_dmarc.example.org", "TXT", ["v=DMARC1; p=bogus"])
    assert dmarc(dns, "example.org").result == "permerror"


def test_pct_zero_softens_disposition(dns: DnsServer) -> None:
    dns.set("_dmarc.example.org", "TXT", ["v=DMARC1; p=reject; pct=0"])
    got = dmarc(dns, "example.org")
    assert (got.result, got.policy, got.disposition) == ("fail", "reject", "quarantine")


def test_parse_record() -> None:
    r = parse_record("v=DMARC1;p=Quarantine; sp=none; adkim=s; pct=50; rua=mailto:x@y")
    assert (r.policy, r.subdomain_policy, r.adkim, r.aspf, r.pct) == (
        "quarantine",
        "none",
        "s",
        "r",
        50,
    )
    assert parse_record("v=DMARC1; p=bogus; rua=mailto:x@y").policy == "none"
    assert parse_record("v=DMARC1; p=reject").subdomain_policy == "reject"
    for bad in ("v=DMARC2; p=none", "p=none; v=DMARC1", "v=DMARC1; p", "v=DMARC1"):
        with pytest.raises(ValueError):
            parse_record(bad)
