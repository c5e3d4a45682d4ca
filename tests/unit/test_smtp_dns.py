"""carteiro.smtp.dns.Resolver against the real test DNS server (tests/dns_server.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from carteiro.smtp.dns import NoSuchDomain, Resolver, TemporaryDnsError
from tests.dns_server import DnsServer

LONG = "v=DKIM1; k=rsa; p=" + "A" * 600


@pytest.fixture
def server() -> Iterator[DnsServer]:
    records = {
        "Example.org.": {
            "MX": ["20 b.mx.example.org", "10 a.mx.example.org.", "30 c.mx.example.org"],
            "TXT": ["v=spf1 mx -all", '"two " "strings"'],
            "A": ["192.0.2.1"],
            "AAAA": ["2001:db8::1"],
        },
        "long.example.org": {"TXT": [LONG]},
        "empty.example.org": {},
        "v4only.example.org": {"A": ["192.0.2.7", "192.0.2.8"]},
        "alias.example.org": {"CNAME": ["example.org"]},
        "nullmx.example.org": {"MX": ["0 ."]},
        "1.2.0.192.in-addr.arpa": {"PTR": ["host.example.org."]},
    }
    with DnsServer(records) as s:
        yield s


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_mx_sorted_by_preference(server: DnsServer) -> None:
    r = server.resolver()
    assert run(r.mx("example.org")) == [
        (10, "a.mx.example.org"),
        (20, "b.mx.example.org"),
        (30, "c.mx.example.org"),
    ]


def test_null_mx_is_dot(server: DnsServer) -> None:
    assert run(server.resolver().mx("nullmx.example.org")) == [(0, ".")]


def test_names_are_case_insensitive_and_trailing_dot_optional(server: DnsServer) -> None:
    r = server.resolver()
    assert run(r.a("EXAMPLE.ORG.")) == ["192.0.2.1"]


def test_a_aaaa_and_addresses(server: DnsServer) -> None:
    r = server.resolver()
    assert run(r.a("example.org")) == ["192.0.2.1"]
    assert run(r.aaaa("example.org")) == ["2001:db8::1"]
    assert run(r.addresses("example.org")) == ["192.0.2.1", "2001:db8::1"]
    assert sorted(run(r.addresses("v4only.example.org"))) == ["192.0.2.7", "192.0.2.8"]


def test_txt_joins_strings_of_one_record(server: DnsServer) -> None:
    r = server.resolver()
    assert sorted(run(r.txt("example.org"))) == ["two strings", "v=spf1 mx -all"]


def test_long_txt_split_and_rejoined(server: DnsServer) -> None:
    r = server.resolver()
    assert run(r.txt("long.example.org")) == [LONG]
    assert r.sync_txt("long.example.org") == [LONG]


def test_long_answer_over_tcp_after_truncation(server: DnsServer) -> None:
    # five 600-byte records exceed the 1232-byte EDNS payload: the resolver retries over TCP
    server.set("big.example.org", "TXT", [f"{i}" + "x" * 600 for i in range(5)])
    got = run(server.resolver().txt("big.example.org"))
    assert sorted(got) == [f"{i}" + "x" * 600 for i in range(5)]


def test_cname_followed(server: DnsServer) -> None:
    assert run(server.resolver().a("alias.example.org")) == ["192.0.2.1"]


def test_no_data_is_empty_list(server: DnsServer) -> None:
    r = server.resolver()
    assert run(r.mx("empty.example.org")) == []
    assert run(r.txt("v4only.example.org")) == []
    assert run(r.aaaa("v4only.example.org")) == []
    assert run(r.addresses("empty.example.org")) == []
    assert r.sync_txt("empty.example.org") == []


def test_nxdomain(server: DnsServer) -> None:
    r = server.resolver()
    with pytest.raises(NoSuchDomain):
        run(r.mx("nowhere.example.org"))
    with pytest.raises(NoSuchDomain):
        run(r.addresses("nowhere.example.org"))
    with pytest.raises(NoSuchDomain):
        r.sync_txt("nowhere.example.org")


def test_invalid_name_is_no_such_domain(server: DnsServer) -> None:
    with pytest.raises(NoSuchDomain):
        run(server.resolver().txt("a" * 70 + ".example.org"))


def test_servfail_is_temporary(server: DnsServer) -> None:
    server.fail("example.org")
    r = server.resolver()
    with pytest.raises(TemporaryDnsError):
        run(r.mx("example.org"))
    with pytest.raises(TemporaryDnsError):
        r.sync_txt("example.org")
    server.fail("example.org", on=False)
    assert run(r.a("example.org")) == ["192.0.2.1"]


def test_timeout_is_temporary(server: DnsServer) -> None:
    server.drop("example.org")
    r = server.resolver(timeout=0.3)
    started = time.monotonic()
    with pytest.raises(TemporaryDnsError):
        run(r.txt("example.org"))
    assert time.monotonic() - started < 3


def test_no_nameserver_listening_is_temporary() -> None:
    with DnsServer() as s:
        address = s.address
    r = Resolver([address], timeout=0.5)
    with pytest.raises(TemporaryDnsError):
        run(r.txt("example.org"))


def test_set_replaces_records(server: DnsServer) -> None:
    r = server.resolver()
    server.set("example.org", "A", ["192.0.2.99"])
    assert run(r.a("example.org")) == ["192.0.2.99"]
    server.remove("example.org")
    with pytest.raises(NoSuchDomain):
        run(r.a("example.org"))


def test_ptr(server: DnsServer) -> None:
    r = server.resolver()
    assert run(r.ptr("192.0.2.1")) == ["host.example.org"]
    with pytest.raises(NoSuchDomain):
        run(r.ptr("not an address"))


def test_queries_recorded(server: DnsServer) -> None:
    run(server.resolver().txt("example.org"))
    assert ("example.org", "TXT") in server.queries
