"""The inbound facade: SPF + DKIM + DMARC, the header and the action under each policy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from carteiro.smtp.dkim import dns_record, generate_key, sign
from carteiro.smtp.mailauth import (
    MailAuthPolicy,
    Verdict,
    authenticate,
    mailauth_policy_from_settings,
)
from carteiro.store.interface import DkimKey
from tests.dns_server import DnsServer

GOOD_IP = "192.0.2.10"
BAD_IP = "203.0.113.66"


def message(from_line: bytes = b"From: Alice <alice@example.org>") -> bytes:
    return (
        from_line + b"\r\n"
        b"To: bob@example.net\r\n"
        b"Subject: hi\r\n"
        b"Message-ID: <1@example.org>\r\n"
        b"\r\n"
        b"Hello.\r\n"
    )


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return DkimKey("example.org", "ed1", "ed25519-sha256", generate_key("ed25519-sha256"), 0.0)


@pytest.fixture
def dns(key: DkimKey) -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.set("example.org", "TXT", [f"v=spf1 ip4:{GOOD_IP} -all"])
        server.set("ed1._domainkey.example.org", "TXT", [dns_record(key)])
        server.set("_dmarc.example.org", "TXT", ["v=DMARC1; p=reject"])
        server.set("example.com", "TXT", [f"v=spf1 ip4:{GOOD_IP} -all"])
        server.set("_dmarc.example.com", "TXT", ["v=DMARC1; p=quarantine"])
        server.set("nodmarc.example", "TXT", [f"v=spf1 ip4:{GOOD_IP} -all"])
        yield server


def check(
    dns: DnsServer,
    data: bytes,
    *,
    ip: str = GOOD_IP,
    mail_from: str = "alice@example.org",
    helo: str = "out.example.org",
    policy: str = "enforce",
    enabled: bool = True,
) -> Verdict:
    return asyncio.run(
        authenticate(
            dns.resolver(),
            MailAuthPolicy(check=enabled, failure_policy=policy),
            message=data,
            ip=ip,
            helo=helo,
            mail_from=mail_from,
            authserv_id="mx.example.net",
        )
    )


def test_all_pass(dns: DnsServer, key: DkimKey) -> None:
    data = message()
    verdict = check(dns, sign(data, [key]) + data)
    assert verdict.spf.result == "pass"
    assert [d.result for d in verdict.dkim] == ["pass"]
    assert (verdict.dmarc.result, verdict.dmarc.domain) == ("pass", "example.org")
    assert (verdict.action, verdict.reason) == ("accept", "")
    header = verdict.header.decode()
    assert header.startswith("Authentication-Results: mx.example.net;\r\n")
    assert header.endswith("\r\n")
    assert "spf=pass smtp.mailfrom=alice@example.org" in header
    assert "dkim=pass header.d=example.org header.s=ed1 header.a=ed25519-sha256" in header
    assert "dmarc=pass" in header and "header.from=example.org" in header


def test_dkim_alone_passes_dmarc_from_a_forwarder(dns: DnsServer, key: DkimKey) -> None:
    data = message()
    verdict = check(dns, sign(data, [key]) + data, ip=BAD_IP, mail_from="fwd@example.net")
    assert verdict.spf.result == "none"
    assert verdict.dmarc.result == "pass"
    assert verdict.action == "accept"


def test_spoof_under_each_policy(dns: DnsServer) -> None:
    spoof = message()
    enforce = check(dns, spoof, ip=BAD_IP)
    assert enforce.spf.result == "fail"
    assert enforce.dkim == []
    assert (enforce.dmarc.result, enforce.dmarc.disposition) == ("fail", "reject")
    assert enforce.action == "reject"
    assert enforce.reason == "5.7.1 DMARC policy of example.org rejects this message"
    assert b"dkim=none" in enforce.header and b"dmarc=fail" in enforce.header
    assert check(dns, spoof, ip=BAD_IP, policy="junk").action == "junk"
    marked = check(dns, spoof, ip=BAD_IP, policy="mark")
    assert marked.action == "accept"
    assert marked.header == enforce.header


def test_quarantine_goes_to_junk(dns: DnsServer) -> None:
    spoof = message(b"From: ceo@example.com")
    assert check(dns, spoof, ip=BAD_IP, mail_from="x@example.com").action == "junk"
    assert check(dns, spoof, ip=BAD_IP, mail_from="x@example.com", policy="mark").action == (
        "accept"
    )


def test_p_none_junked_only_under_junk_policy(dns: DnsServer) -> None:
    dns.set("_dmarc.example.org", "TXT", ["v=DMARC1; p=none"])
    # SPF passes for an unaligned domain: DMARC fails with p=none
    data = message()
    verdict = check(dns, data, mail_from="x@example.com")
    assert (verdict.spf.result, verdict.dmarc.result) == ("pass", "fail")
    assert verdict.action == "accept"
    assert check(dns, data, mail_from="x@example.com", policy="junk").action == "junk"


def test_spf_fail_without_dmarc(dns: DnsServer) -> None:
    data = message(b"From: a@nodmarc.example")
    for policy, action in (("enforce", "junk"), ("junk", "junk"), ("mark", "accept")):
        verdict = check(dns, data, ip=BAD_IP, mail_from="a@nodmarc.example", policy=policy)
        assert (verdict.spf.result, verdict.dmarc.result) == ("fail", "none")
        assert verdict.action == action


def test_null_sender_checks_helo(dns: DnsServer) -> None:
    dns.set("out.example.org", "TXT", [f"v=spf1 ip4:{GOOD_IP} -all"])
    verdict = check(dns, message(b"From: MAILER-DAEMON@out.example.org"), mail_from="")
    assert (verdict.spf.result, verdict.spf.domain) == ("pass", "out.example.org")
    assert verdict.dmarc.result == "pass"  # relaxed alignment with example.org's record
    assert b"smtp.helo=out.example.org" in verdict.header


def test_several_from_domains_is_permerror(dns: DnsServer) -> None:
    data = message(b"From: alice@example.org, eve@evil.example")
    verdict = check(dns, data)
    assert verdict.dmarc.result == "permerror"
    assert verdict.action == "junk"
    assert check(dns, data, policy="mark").action == "accept"
    two_fields = message(b"From: alice@example.org\r\nFrom: eve@evil.example")
    assert check(dns, two_fields).dmarc.result == "permerror"


def test_several_addresses_of_one_domain_are_fine(dns: DnsServer) -> None:
    data = message(b"From: alice@example.org, Bob <bob@EXAMPLE.org>")
    assert check(dns, data).dmarc.result == "pass"


def test_missing_from_is_dmarc_none(dns: DnsServer) -> None:
    no_from = b"Subject: no from\r\n\r\nbody\r\n"
    verdict = check(dns, no_from)
    assert (verdict.dmarc.result, verdict.dmarc.domain) == ("none", "")
    assert verdict.action == "accept"
    assert b"header.from" not in verdict.header
    # only the SPF hard fail counts then
    assert check(dns, no_from, ip=BAD_IP).action == "junk"


def test_dns_trouble_is_never_a_reject(dns: DnsServer) -> None:
    dns.fail("example.org")
    dns.fail("_dmarc.example.org")
    verdict = check(dns, message(), ip=BAD_IP)
    assert verdict.spf.result == "temperror"
    assert verdict.dmarc.result == "temperror"
    assert verdict.action == "accept"


def test_check_disabled_accepts(dns: DnsServer) -> None:
    assert check(dns, message(), ip=BAD_IP, enabled=False).action == "accept"


def test_policy_from_settings() -> None:
    assert mailauth_policy_from_settings({}) == MailAuthPolicy()
    assert mailauth_policy_from_settings({"check": False, "failure_policy": "mark"}) == (
        MailAuthPolicy(check=False, failure_policy="mark")
    )
    for table, fragment in (
        ({"bogus": 1}, "inbound.bogus: unknown setting"),
        ({"check": "yes"}, "inbound.check: expected true or false"),
        ({"failure_policy": "drop"}, "inbound.failure_policy: expected one of mark, junk"),
    ):
        with pytest.raises(ValueError, match=fragment) as info:
            mailauth_policy_from_settings(table)
        assert "\n" not in str(info.value)
