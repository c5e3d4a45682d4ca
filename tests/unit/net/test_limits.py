"""Connection limits, address keys, network sets and the authentication gate."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carteiro.net.limits import (
    AuthGate,
    ConnectionLimiter,
    NetworkSet,
    account_key,
    parse_address,
    source_key,
)

LOCAL = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


# --- keys ---------------------------------------------------------------------------


def test_source_keys():
    assert source_key("192.0.2.7") == "192.0.2.7"
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert source_key("2001:DB8:1:2::") == "2001:db8:1:2::/64"
    assert source_key("fe80::1%eth0") == "fe80::/64"
    assert source_key(ipaddress.ip_address("::1")) == "::/64"
    for bad in ["", "192.0.2", "192.0.2.256", "host.example", "2001:db8::/64", " 1.2.3.4"]:
        with pytest.raises(ValueError):
            source_key(bad)


def test_account_keys():
    assert account_key("  Alice@Example.COM\t") == "alice@example.com"
    assert account_key("STRASSE@x") == account_key("straße@x".upper())
    long = account_key("a" * 5000)
    assert long.startswith("sha256:") and len(long) == 71
    assert account_key("a" * 5000) == long != account_key("a" * 5001)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_source_key_of_random_text_is_a_key_or_value_error(text):
    try:
        key = source_key(text)
    except ValueError:
        return
    assert source_key(key.removesuffix("/64")) == key  # a key's address maps to itself


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**128 - 1))
def test_ipv6_keys_group_exactly_by_64(value):
    addr = ipaddress.IPv6Address(value)
    if addr.ipv4_mapped is not None:
        assert source_key(addr) == str(addr.ipv4_mapped)
        return
    key = source_key(str(addr))
    net = ipaddress.IPv6Network(key)
    assert net.prefixlen == 64 and addr in net
    assert source_key(net.network_address + (value & (2**64 - 1))) == key


def test_parse_address_unmaps():
    assert parse_address("::ffff:10.1.2.3") == ipaddress.IPv4Address("10.1.2.3")
    assert parse_address("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1")


# --- network sets -----------------------------------------------------------------


def test_network_set_membership():
    nets = NetworkSet(
        ipaddress.ip_network(n)
        for n in ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::ffff:172.16.0.0/108"]
    )
    ip = ipaddress.ip_address
    assert ip("10.255.0.1") in nets and ip("11.0.0.0") not in nets
    assert ip("192.0.2.7") in nets and ip("192.0.2.8") not in nets
    assert ip("2001:db8:ffff::1") in nets and ip("2001:db9::1") not in nets
    assert ip("::ffff:10.0.0.1") in nets  # mapped address, IPv4 network
    assert ip("172.16.9.9") in nets  # IPv4 address, mapped network (172.16.0.0/12)
    assert ip("172.32.0.0") not in nets
    assert "10.0.0.1" not in nets  # only parsed addresses
    assert nets and not NetworkSet()
    assert ip("0.0.0.0") in NetworkSet([ipaddress.ip_network("0.0.0.0/0")])


_v4nets = st.builds(
    lambda a, p: ipaddress.ip_network((a, p), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
_v6nets = st.builds(
    lambda a, p: ipaddress.ip_network((a, p), strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(_v4nets, _v6nets), max_size=6),
    st.lists(st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32, 2**128 - 1)), max_size=20),
)
def test_network_set_agrees_with_a_linear_scan(networks, values):
    nets = NetworkSet(networks)
    candidates = [ipaddress.ip_address(v) for v in values]
    candidates += [n.network_address for n in networks] + [n.broadcast_address for n in networks]
    for addr in candidates:
        plain = parse_address(addr)
        expected = any(plain in n for n in networks if n.version == plain.version)
        mapped = [
            n
            for n in networks
            if n.version == 6 and n.subnet_of(ipaddress.ip_network("::ffff:0:0/96"))
        ]
        if plain.version == 4:
            expected = expected or any(
                ipaddress.IPv6Address(int(plain) + 0xFFFF00000000) in n for n in mapped
            )
        assert (addr in nets) == expected, (addr, networks)


# --- connection limiter ---------------------------------------------------------------


def test_per_ip_limit():
    limiter = ConnectionLimiter(per_ip=2, per_account=0)
    a = limiter.open("192.0.2.1")
    b = limiter.open("192.0.2.1")
    assert a is not None and b is not None
    assert limiter.open("192.0.2.1") is None
    assert limiter.open("::ffff:192.0.2.1") is None  # the same source
    other = limiter.open("192.0.2.2")
    assert other is not None
    assert limiter.counts() == {"connections": 3, "sources": 2, "sessions": 0, "accounts": 0}
    limiter.release(a)
    assert limiter.source_count("192.0.2.1") == 1
    assert limiter.open("192.0.2.1") is not None
    assert limiter.open("192.0.2.1") is None


def test_ipv6_sources_share_their_64():
    limiter = ConnectionLimiter(per_ip=2)
    assert limiter.open("2001:db8:0:1::1") is not None
    assert limiter.open("2001:db8:0:1:aaaa::2") is not None
    assert limiter.open("2001:db8:0:1:ffff:ffff:ffff:ffff") is None
    assert limiter.open("2001:db8:0:2::1") is not None
    assert limiter.source_count("2001:db8:0:1::99") == 2


def test_trusted_networks_are_exempt_from_the_per_ip_limit_only():
    limiter = ConnectionLimiter(per_ip=1, per_account=2, trusted=LOCAL)
    leases = [limiter.open("127.0.0.1") for _ in range(100)]
    assert all(lease is not None for lease in leases)
    leases += [limiter.open("::ffff:127.0.0.2"), limiter.open("::1")]
    assert all(lease is not None for lease in leases)
    assert limiter.source_count("127.0.0.1") == 100
    assert limiter.bind_account(leases[0], "webmail-user")
    assert limiter.bind_account(leases[1], "webmail-user")
    assert not limiter.bind_account(leases[2], "webmail-user")  # per account still applies
    assert limiter.open("192.0.2.1") is not None and limiter.open("192.0.2.1") is None


def test_per_account_limit():
    limiter = ConnectionLimiter(per_ip=0, per_account=2)
    leases = [limiter.open(f"192.0.2.{i}") for i in range(4)]
    assert limiter.bind_account(leases[0], "Alice@Example.com")
    assert limiter.bind_account(leases[1], " alice@example.com")
    assert not limiter.bind_account(leases[2], "ALICE@EXAMPLE.COM")
    assert leases[2].account is None
    assert limiter.bind_account(leases[3], "bob@example.com")
    assert limiter.account_count("alice@example.com") == 2
    assert limiter.counts() == {"connections": 4, "sources": 4, "sessions": 3, "accounts": 2}
    assert limiter.bind_account(leases[0], "alice@EXAMPLE.com")  # rebinding itself: no-op
    assert limiter.account_count("alice@example.com") == 2
    limiter.release(leases[0])
    assert limiter.bind_account(leases[2], "alice@example.com")


def test_release_is_idempotent():
    limiter = ConnectionLimiter(per_ip=3, per_account=1)
    lease = limiter.open("198.51.100.1")
    keep = limiter.open("198.51.100.1")
    assert lease is not None and keep is not None
    assert limiter.bind_account(lease, "carol")
    for _ in range(3):
        limiter.release(lease)
    assert limiter.counts() == {"connections": 1, "sources": 1, "sessions": 0, "accounts": 0}
    assert limiter.source_count("198.51.100.1") == 1
    assert limiter.bind_account(keep, "carol")
    with pytest.raises(ValueError):
        limiter.bind_account(lease, "dave")
    limiter.release(keep)
    limiter.release(keep)
    assert limiter.counts() == {"connections": 0, "sources": 0, "sessions": 0, "accounts": 0}


def test_zero_is_unlimited_and_negative_is_refused():
    limiter = ConnectionLimiter(per_ip=0, per_account=0)
    leases = [limiter.open("192.0.2.1") for _ in range(500)]
    assert all(lease is not None for lease in leases)
    assert all(limiter.bind_account(lease, "same") for lease in leases if lease)
    with pytest.raises(ValueError):
        ConnectionLimiter(per_ip=-1)
    with pytest.raises(ValueError):
        limiter.open("not-an-ip")


# --- authentication gate ----------------------------------------------------------------


async def _yield(times: int = 20) -> None:
    for _ in range(times):
        await asyncio.sleep(0)  # lets every ready task run; no timing involved


def test_auth_gate_bounds_concurrency_and_is_fifo():
    async def main() -> tuple[int, list[int]]:
        gate = AuthGate(limit=3)
        release = asyncio.Event()
        inside = 0
        peak = 0
        order: list[int] = []

        async def login(i: int) -> None:
            nonlocal inside, peak
            async with gate():
                order.append(i)
                inside += 1
                peak = max(peak, inside)
                await release.wait()
                await asyncio.sleep(0)
                inside -= 1

        tasks = [asyncio.create_task(login(i)) for i in range(20)]
        await _yield()
        assert inside == 3 and gate.in_use == 3 and gate.waiting == 17
        release.set()
        await asyncio.gather(*tasks)
        assert gate.in_use == 0 and gate.waiting == 0
        return peak, order

    peak, order = asyncio.run(main())
    assert peak == 3
    assert order == list(range(20))


def test_auth_gate_cancelled_waiter_does_not_leak_a_slot():
    async def main() -> None:
        gate = AuthGate(limit=1)
        hold = asyncio.Event()
        entered: list[str] = []

        async def login(name: str) -> None:
            async with gate():
                entered.append(name)
                await hold.wait()

        a = asyncio.create_task(login("a"))
        await _yield()
        b = asyncio.create_task(login("b"))
        await _yield()
        assert gate.waiting == 1
        b.cancel()
        await _yield()
        assert b.cancelled() and gate.waiting == 0
        hold.set()
        await a
        assert gate.in_use == 0
        hold.clear()
        c = asyncio.create_task(login("c"))
        d = asyncio.create_task(login("d"))
        await _yield()
        assert entered == ["a", "c"] and gate.in_use == 1 and gate.waiting == 1
        hold.set()
        await asyncio.gather(c, d)
        assert entered == ["a", "c", "d"] and gate.in_use == 0

    asyncio.run(main())


def test_auth_gate_waiter_cancelled_after_being_handed_a_slot_passes_it_on():
    async def main() -> None:
        gate = AuthGate(limit=1)
        entered: list[str] = []
        hold = asyncio.Event()

        async def login(name: str) -> None:
            async with gate():
                entered.append(name)
                await hold.wait()

        holder = gate()
        await holder.__aenter__()
        b = asyncio.create_task(login("b"))
        c = asyncio.create_task(login("c"))
        await _yield()
        assert gate.waiting == 2
        await holder.__aexit__(None, None, None)  # hands the slot to b…
        b.cancel()  # …which is cancelled before it could run
        hold.set()
        await asyncio.gather(b, c, return_exceptions=True)
        assert b.cancelled()
        assert entered == ["c"]
        assert gate.in_use == 0 and gate.waiting == 0
        async with gate():  # the slot is still usable
            assert gate.in_use == 1

    asyncio.run(main())


def test_auth_gate_releases_on_error_and_validates_limit():
    async def main() -> None:
        gate = AuthGate(limit=2)
        with pytest.raises(RuntimeError):
            async with gate():
                raise RuntimeError("hash failed")
        assert gate.in_use == 0

    asyncio.run(main())
    with pytest.raises(ValueError):
        AuthGate(limit=0)
