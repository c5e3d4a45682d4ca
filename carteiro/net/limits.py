"""Connection limits per source and per account, and the gate on concurrent logins.

Why these limits exist: a server that accepts unlimited connections from one source
can be emptied of file descriptors by one host, and unlimited sessions of one account
let a leaked password fan out; the :class:`AuthGate` bounds the memory and CPU that
password hashing takes (argon2id holds 64 MiB per hash) however many clients try at once.

Sources are keyed as the guard keys them (:func:`source_key`): an IPv4 address, or the
/64 of an IPv6 address, because one IPv6 host normally has a whole /64 (RFC 4291 §2.5.1,
RFC 7934) and could otherwise open each connection from a fresh address. IPv4-mapped
IPv6 addresses (``::ffff:a.b.c.d``, RFC 4291 §2.5.5.2, what a dual-stack socket reports)
are IPv4 sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager

__all__ = [
    "AuthGate",
    "ConnectionLimiter",
    "IPAddress",
    "IPNetwork",
    "Lease",
    "NetworkSet",
    "account_key",
    "parse_address",
    "source_key",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: RFC 5321 §4.5.3.1.3: a path is at most 256 octets; longer "names" are attacker noise
MAX_ACCOUNT_KEY = 320
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def parse_address(ip: str | IPAddress) -> IPAddress:
    """The address a peer string denotes, IPv4-mapped IPv6 turned into IPv4.

    Raises ValueError for anything that is not an IP address.
    """
    addr = ip if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address) else None
    if addr is None:
        addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def source_key(ip: str | IPAddress) -> str:
    """``"192.0.2.7"`` or ``"2001:db8:1:2::/64"``: the unit that is counted and banned."""
    addr = parse_address(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        return str(addr)
    prefix = int(addr) >> 64 << 64
    return f"{ipaddress.IPv6Address(prefix)}/64"


def account_key(account: str) -> str:
    """Case-folded, stripped; absurdly long names are hashed so that a client cannot make
    each tracked key cost kilobytes."""
    key = account.strip().casefold()
    if len(key) > MAX_ACCOUNT_KEY:
        key = "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key


class NetworkSet:
    """Membership of an address in a list of networks in O(number of distinct prefix
    lengths), not O(number of networks): one set lookup per prefix length."""

    __slots__ = ("_v4", "_v6", "networks")

    def __init__(self, networks: Iterable[IPNetwork] = ()) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(networks)
        v4: dict[int, set[int]] = {}
        v6: dict[int, set[int]] = {}
        for net in self.networks:
            if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(_MAPPED):
                # addresses are unmapped before lookup, so the network must be too
                mapped = net.network_address.ipv4_mapped
                assert mapped is not None
                net = ipaddress.IPv4Network((mapped, net.prefixlen - 96))
            table = v4 if net.version == 4 else v6
            shift = net.max_prefixlen - net.prefixlen
            table.setdefault(shift, set()).add(int(net.network_address) >> shift)
        self._v4 = tuple(v4.items())
        self._v6 = tuple(v6.items())

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        addr = parse_address(address)
        value = int(addr)
        tables = self._v4 if addr.version == 4 else self._v6
        return any(value >> shift in prefixes for shift, prefixes in tables)

    def __bool__(self) -> bool:
        return bool(self.networks)


class Lease:
    """One accepted connection; give it back with :meth:`ConnectionLimiter.release`."""

    __slots__ = ("account", "released", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.account: str | None = None
        self.released = False

    def __repr__(self) -> str:
        state = " released" if self.released else ""
        return f"<Lease {self.source} {self.account or '-'}{state}>"


class ConnectionLimiter:
    """Counts open connections per source and logged-in sessions per account.

    Synchronous and single-threaded (call it from the event loop). A limit of 0 is
    unlimited. Trusted networks are exempt from the per-source limit only: a webmail or
    proxy on localhost carries many users, but each account still has its own limit.
    """

    def __init__(
        self, per_ip: int = 20, per_account: int = 50, trusted: Sequence[IPNetwork] = ()
    ) -> None:
        if per_ip < 0 or per_account < 0:
            raise ValueError("connection limits must be 0 (unlimited) or more")
        self.per_ip = per_ip
        self.per_account = per_account
        self._trusted = NetworkSet(trusted)
        self._sources: dict[str, int] = {}
        self._accounts: dict[str, int] = {}
        self._open = 0

    def open(self, ip: str) -> Lease | None:
        """A lease for a new connection, or None when the source has too many."""
        addr = parse_address(ip)
        key = source_key(addr)
        count = self._sources.get(key, 0)
        if self.per_ip and count >= self.per_ip and addr not in self._trusted:
            return None
        self._sources[key] = count + 1
        self._open += 1
        return Lease(key)

    def bind_account(self, lease: Lease, account: str) -> bool:
        """Counts the session against ``account`` once it logged in; False (and nothing
        counted) when the account already has ``per_account`` sessions."""
        if lease.released:
            raise ValueError("the lease was released")
        key = account_key(account)
        if lease.account == key:
            return True
        count = self._accounts.get(key, 0)
        if self.per_account and count >= self.per_account:
            return False
        self._unbind(lease)
        self._accounts[key] = count + 1
        lease.account = key
        return True

    def release(self, lease: Lease) -> None:
        """Gives the connection back; calling it again does nothing."""
        if lease.released:
            return
        lease.released = True
        self._unbind(lease)
        self._open -= 1
        left = self._sources.get(lease.source, 0) - 1
        if left > 0:
            self._sources[lease.source] = left
        else:
            self._sources.pop(lease.source, None)

    def _unbind(self, lease: Lease) -> None:
        if lease.account is None:
            return
        left = self._accounts.get(lease.account, 0) - 1
        if left > 0:
            self._accounts[lease.account] = left
        else:
            self._accounts.pop(lease.account, None)
        lease.account = None

    def counts(self) -> dict[str, int]:
        """Totals for metrics: open connections, distinct sources, logged-in sessions and
        distinct accounts."""
        return {
            "connections": self._open,
            "sources": len(self._sources),
            "sessions": sum(self._accounts.values()),
            "accounts": len(self._accounts),
        }

    def source_count(self, ip: str) -> int:
        """Open connections from the source of ``ip`` (its /64 for IPv6)."""
        return self._sources.get(source_key(ip), 0)

    def account_count(self, account: str) -> int:
        """Logged-in sessions of ``account``."""
        return self._accounts.get(account_key(account), 0)


class AuthGate:
    """At most ``limit`` authentications at once, served first come, first served.

    Written out rather than :class:`asyncio.Semaphore` to make two properties explicit:
    a released slot is handed directly to the oldest waiter (no barging by newcomers),
    and a waiter cancelled after being handed a slot passes it on instead of leaking it.
    """

    def __init__(self, limit: int = 8) -> None:
        if limit < 1:
            raise ValueError("the authentication limit must be at least 1")
        self.limit = limit
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_use(self) -> int:
        return self.limit - self._free

    @property
    def waiting(self) -> int:
        return sum(1 for fut in self._waiters if not fut.done())

    def __call__(self) -> AbstractAsyncContextManager[None]:
        return self._slot()

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def _acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # handed a slot, then cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot moves to this waiter; _free is unchanged
                return
        self._free += 1
