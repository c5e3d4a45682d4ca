"""SPF (RFC 7208) evaluated against zones served by the real test DNS server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from carteiro.smtp.spf import SpfResult, check_spf
from tests.dns_server import DnsServer


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


def spf(dns: DnsServer, ip: str, mail_from: str, helo: str = "client.example.net") -> SpfResult:
    return asyncio.run(check_spf(dns.resolver(), ip, mail_from, helo))


def zone(dns: DnsServer, records: dict[str, dict[str, list[str]]]) -> None:
    for name, types in records.items():
        for rtype, values in types.items():
            dns.set(name, rtype, values)


@pytest.mark.parametrize(
    ("record", "result"),
    [
        ("v=spf1 ip4:192.0.2.0/24 -all", "pass"),
        ("v=spf1 ip4:198.51.100.1 -all", "fail"),
        ("v=spf1 ip4:198.51.100.1 ~all", "softfail"),
        ("v=spf1 ip4:198.51.100.1 ?all", "neutral"),
        ("v=spf1 ip4:198.51.100.1", "neutral"),
        ("v=spf1 -ip4:192.0.2.10 +all", "fail"),
        ("V=SPF1 IP4:192.0.2.10 -ALL", "pass"),
        ("v=spf1  ip4:192.0.2.10   -all", "pass"),
        ("v=spf1 ip6:2001:db8::/32 -all", "fail"),
        ("v=spf1 foo=bar ip4:192.0.2.10 -all", "pass"),
    ],
)
def test_basic_results(dns: DnsServer, record: str, result: str) -> None:
    dns.set("example.org", "TXT", ["some other text", record])
    got = spf(dns, "192.0.2.10", "alice@example.org")
    assert got.result == result
    assert got.domain == "example.org"


def test_ipv6(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 ip6:2001:db8:1::/48 -all"])
    assert spf(dns, "2001:db8:1::25", "a@example.org").result == "pass"
    assert spf(dns, "2001:db8:2::25", "a@example.org").result == "fail"


def test_ipv4_mapped_ipv6_client(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 ip4:192.0.2.10 -all"])
    assert spf(dns, "::ffff:192.0.2.10", "a@example.org").result == "pass"


def test_none(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["google-site-verification=x"])
    assert spf(dns, "192.0.2.10", "a@example.org").result == "none"
    assert spf(dns, "192.0.2.10", "a@nowhere.example").result == "none"
    assert spf(dns, "192.0.2.10", "a@localhost").result == "none"


def test_fail_explanation_default_and_exp(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 -all exp=why.example.org"])
    dns.set("why.example.org", "TXT", ["%{i} may not send for %{d} (sender %{s})"])
    got = spf(dns, "192.0.2.10", "a@example.org")
    assert got == SpfResult(
        "fail", "example.org", "192.0.2.10 may not send for example.org (sender a@example.org)"
    )
    dns.remove("why.example.org")
    got = spf(dns, "192.0.2.10", "a@example.org")
    assert got.result == "fail"
    assert "does not designate 192.0.2.10" in got.explanation


def test_null_sender_uses_helo(dns: DnsServer) -> None:
    dns.set("mx.example.net", "TXT", ["v=spf1 ip4:192.0.2.10 -all"])
    got = spf(dns, "192.0.2.10", "", helo="mx.example.net")
    assert (got.result, got.domain) == ("pass", "mx.example.net")
    assert spf(dns, "192.0.2.11", "<>", helo="mx.example.net").result == "fail"


def test_sender_without_local_part(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 exists:%{l}.allow.example.org -all"])
    dns.set("postmaster.allow.example.org", "A", ["127.0.0.2"])
    assert spf(dns, "192.0.2.10", "example.org").result == "pass"


def test_include(dns: DnsServer) -> None:
    zone(
        dns,
        {
            "example.org": {"TXT": ["v=spf1 include:_spf.provider.example -all"]},
            "_spf.provider.example": {"TXT": ["v=spf1 ip4:203.0.113.0/24 ~all"]},
        },
    )
    assert spf(dns, "203.0.113.5", "a@example.org").result == "pass"
    # softfail inside the include is "no match": the outer -all decides
    assert spf(dns, "192.0.2.10", "a@example.org").result == "fail"


def test_include_without_record_is_permerror(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 include:gone.example.org -all"])
    assert spf(dns, "192.0.2.10", "a@example.org").result == "permerror"


def test_include_temperror_propagates(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 include:broken.example.org -all"])
    dns.fail("broken.example.org")
    assert spf(dns, "192.0.2.10", "a@example.org").result == "temperror"


def test_include_loop_is_permerror(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 include:example.org -all"])
    assert spf(dns, "192.0.2.10", "a@example.org").result == "permerror"


def test_redirect(dns: DnsServer) -> None:
    zone(
        dns,
        {
            "example.org": {"TXT": ["v=spf1 redirect=_spf.example.net"]},
            "_spf.example.net": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
        },
    )
    assert spf(dns, "192.0.2.10", "a@example.org").result == "pass"
    assert spf(dns, "198.51.100.1", "a@example.org").result == "fail"


def test_redirect_ignored_when_all_present(dns: DnsServer) -> None:
    zone(
        dns,
        {
            "example.org": {"TXT": ["v=spf1 ?all redirect=_spf.example.net"]},
            "_spf.example.net": {"TXT": ["v=spf1 -all"]},
        },
    )
    assert spf(dns, "192.0.2.10", "a@example.org").result == "neutral"


def test_redirect_to_nothing_is_permerror(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 redirect=nothing.example.net"])
    assert spf(dns, "192.0.2.10", "a@example.org").result == "permerror"


def test_a_mechanism(dns: DnsServer) -> None:
    zone(
        dns,
        {
            "example.org": {"TXT": ["v=spf1 a -all"], "A": ["192.0.2.10"]},
            "other.example.org": {
                "TXT": ["v=spf1 a:example.org/24 a:v6.example.org//64 -all"],
            },
            "v6.example.org": {"AAAA": ["2001:db8::1"]},
        },
    )
    assert spf(dns, "192.0.2.10", "a@example.org").result == "pass"
    assert spf(dns, "192.0.2.11", "a@example.org").result == "fail"
    assert spf(dns, "192.0.2.99", "a@other.example.org").result == "pass"
    assert spf(dns, "2001:db8::ffff", "a@other.example.org").result == "pass"
    assert spf(dns, "2001:db9::1", "a@other.example.org").result == "fail"


def test_mx_mechanism(dns: DnsServer) -> None:
    zone(
        dns,
        {
            "example.org": {
                "TXT": ["v=spf1 mx mx:example.net/30 -all"],
                "MX": ["10 mx1.example.org", "20 mx2.example.org"],
            },
            "mx1.example.org": {"A": ["192.0.2.1"]},
            "mx2.example.org": {"A": ["192.0.2.2"], "AAAA": ["2001:db8::2"]},
            "example.net": {"MX": ["5 mx.example.net"]},
            "mx.example.net": {"A": ["198.51.100.4"]},
        },
    )
    assert spf(dns, "192.0.2.2", "a@example.org").result == "pass"
    assert spf(dns, "2001:db8::2", "a@example.org").result == "pass"
    assert spf(dns, "198.51.100.6", "a@example.org").result == "pass"
    assert spf(dns, "198.51.100.8", "a@example.org").result == "fail"


def test_too_many_mx_hosts_is_permerror(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 mx -all"])
    dns.set("example.org", "MX", [f"{i} mx{i}.example.org" for i in range(11)])
    assert spf(dns, "192.0.2.10", "a@example.org").result == "permerror"


def test_ptr_mechanism(dns: DnsServer) -> None:
    zone(
        dns,
        {
            "example.org": {"TXT": ["v=spf1 ptr -all"]},
            "10.2.0.192.in-addr.arpa": {"PTR": ["mail.example.org."]},
            "mail.example.org": {"A": ["192.0.2.10"]},
            "11.2.0.192.in-addr.arpa": {"PTR": ["liar.example.org."]},
            "liar.example.org": {"A": ["192.0.2.99"]},
        },
    )
    assert spf(dns, "192.0.2.10", "a@example.org").result == "pass"
    assert spf(dns, "192.0.2.11", "a@example.org").result == "fail"


def test_too_many_lookups_is_permerror(dns: DnsServer) -> None:
    chain = [f"include:i{n}.example.org" for n in range(11)]
    dns.set("example.org", "TXT", ["v=spf1 " + " ".join(chain) + " -all"])
    for n in range(11):
        dns.set(f"i{n}.example.org", "TXT", ["v=spf1 ?ip4:203.0.113.1"])
        dns.set(f"i{n}.example.org", "A", ["127.0.0.1"])
    got = spf(dns, "192.0.2.10", "a@example.org")
    assert got.result == "permerror"
    assert "10 DNS lookups" in got.explanation


def test_ten_lookups_are_fine(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 " + "a " * 9 + "include:i.example.org -all"])
    dns.set("example.org", "A", ["192.0.2.1"])
    dns.set("i.example.org", "TXT", ["v=spf1 ip4:192.0.2.10"])
    assert spf(dns, "192.0.2.10", "a@example.org").result == "pass"


def test_redirect_loop_stops_at_lookup_limit(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 redirect=example.org"])
    assert spf(dns, "192.0.2.10", "a@example.org").result == "permerror"


def test_void_lookups_limit(dns: DnsServer) -> None:
    record = "v=spf1 a:n1.example.org a:n2.example.org a:n3.example.org ip4:192.0.2.10 -all"
    dns.set("example.org", "TXT", [record])
    got = spf(dns, "192.0.2.10", "a@example.org")
    assert got.result == "permerror"
    assert "void" in got.explanation
    # two void lookups are allowed
    dns.set("example.org", "TXT", ["v=spf1 a:n1.example.org mx:n2.example.org ip4:192.0.2.10"])
    assert spf(dns, "192.0.2.10", "a@example.org").result == "pass"


def test_servfail_is_temperror(dns: DnsServer) -> None:
    dns.fail("example.org")
    assert spf(dns, "192.0.2.10", "a@example.org").result == "temperror"
    dns.fail("example.org", on=False)
    dns.set("example.org", "TXT", ["v=spf1 a:broken.example.org -all"])
    dns.fail("broken.example.org")
    assert spf(dns, "192.0.2.10", "a@example.org").result == "temperror"


def test_two_records_is_permerror(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 -all", "v=spf1 +all"])
    assert spf(dns, "192.0.2.10", "a@example.org").result == "permerror"


@pytest.mark.parametrize(
    "record",
    [
        "v=spf1 bogus:example.org -all",
        "v=spf1 ip4:192.0.2.300 -all",
        "v=spf1 ip4:192.0.2.0/33 -all",
        "v=spf1 ip6:192.0.2.1 -all",
        "v=spf1 include -all",
        "v=spf1 a:example.org/40 -all",
        "v=spf1 ptr/24 -all",
        "v=spf1 all:x",
        "v=spf1 redirect=a.example redirect=b.example",
        "v=spf1 exists:%{z}.example.org",
        "v=spf1 exists:%{i0}.example.org",
        "v=spf1 exists:%{c}.example.org",
        "v=spf1 exists:bad%macro.example.org",
        # a syntax error after a matching term still fails the whole record (§4.6)
        "v=spf1 +all bogus",
    ],
)
def test_syntax_errors_are_permerror(dns: DnsServer, record: str) -> None:
    dns.set("example.org", "TXT", [record])
    assert spf(dns, "192.0.2.10", "a@example.org").result == "permerror"


def test_macro_i_and_v_ipv4(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 exists:%{ir}.%{v}._spf.%{d} -all"])
    dns.set("10.2.0.192.in-addr._spf.example.org", "A", ["127.0.0.2"])
    assert spf(dns, "192.0.2.10", "a@example.org").result == "pass"
    assert spf(dns, "192.0.2.11", "a@example.org").result == "fail"


def test_macro_i_ipv6_nibbles(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 exists:%{ir}.%{v}.%{d2} -all"])
    name = ".".join(reversed("20010db8" + "0" * 23 + "1")) + ".ip6.example.org"
    dns.set(name, "A", ["127.0.0.2"])
    assert spf(dns, "2001:db8::1", "a@example.org").result == "pass"


def test_macro_sender_parts_and_transformers(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 exists:%{l1r-}.%{o}.users.%{d} -all"])
    dns.set("john.example.org.users.example.org", "A", ["127.0.0.2"])
    assert spf(dns, "192.0.2.10", "john-doe@example.org").result == "pass"
    assert spf(dns, "192.0.2.10", "doe-jane@example.org").result == "fail"


def test_macro_s_url_encoded_and_escapes(dns: DnsServer) -> None:
    dns.set("example.org", "TXT", ["v=spf1 -all exp=exp.example.org"])
    dns.set("exp.example.org", "TXT", ["%{S}%_said%%%-%{h}"])
    got = spf(dns, "192.0.2.10", "a+b@example.org", helo="mx.example.net")
    assert got.explanation == "a%2Bb%40example.org said%%20mx.example.net"


def test_malformed_ip(dns: DnsServer) -> None:
    assert spf(dns, "not-an-ip", "a@example.org").result == "none"
