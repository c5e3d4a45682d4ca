"""The one DNS client of Carteiro: MX, A/AAAA, TXT and PTR lookups over dnspython.

Everything that needs DNS (outbound delivery, SPF, DKIM, DMARC) takes a :class:`Resolver`,
so operators can point it at a local validating resolver and tests at
``tests/dns_server.py``. Answers are not cached here: the upstream resolver caches, and a
cache would make records changed in tests (or by an operator fixing a zone) look stale.

Outcomes map to three cases callers must tell apart (RFC 5321 §5.1, RFC 7208 §5):
an empty list (NOERROR without records), :class:`NoSuchDomain` (NXDOMAIN, permanent)
and :class:`TemporaryDnsError` (SERVFAIL, timeout, nobody answered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.reversename

__all__ = ["DnsError", "NoSuchDomain", "Resolver", "TemporaryDnsError"]


class DnsError(Exception):
    """A lookup that produced no usable answer."""


class NoSuchDomain(DnsError):
    """NXDOMAIN: the name does not exist (a permanent condition)."""


class TemporaryDnsError(DnsError):
    """SERVFAIL, a timeout or no nameserver answered: worth trying again later."""


# Names that cannot exist are reported like NXDOMAIN rather than as temporary failures.
_BAD_NAME = (
    dns.name.EmptyLabel,
    dns.name.LabelTooLong,
    dns.name.NameTooLong,
    dns.name.BadEscape,
    UnicodeError,
)


def _text(name: dns.name.Name) -> str:
    """A host name as text without the final dot (the root stays ``"."``)."""
    if name == dns.name.root:
        return "."
    return str(name.to_text(omit_final_dot=True))


class Resolver:
    """All DNS of Carteiro goes through one of these (dnspython's async resolver); tests and
    operators point it at their own nameservers."""

    def __init__(self, nameservers: Sequence[tuple[str, int]] = (), timeout: float = 5.0) -> None:
        self.nameservers = tuple(nameservers)
        self.timeout = timeout
        servers = self.nameservers
        system = not servers
        if system:
            try:
                dns.resolver.Resolver(configure=True)
            except dns.resolver.NoResolverConfiguration:
                servers, system = (("127.0.0.1", 53),), False  # no resolv.conf: local resolver
        self._async = dns.asyncresolver.Resolver(configure=system)
        self._sync = dns.resolver.Resolver(configure=system)
        for r in (self._async, self._sync):
            if not system:
                r.nameservers = [
                    dns.nameserver.Do53Nameserver(host, port) for host, port in servers
                ]
            r.lifetime = timeout
            r.timeout = min(timeout, 2.0)
            # answers are kept for their TTL: SPF and DMARC ask for the same names for
            # every message, and a query costs ~1 ms of the event loop
            r.cache = dns.resolver.LRUCache(4096)
            r.use_edns(0, 0, 1232)  # long TXT (DKIM keys) fits UDP; TCP fallback still works

    def __repr__(self) -> str:
        where = ", ".join(f"{h}:{p}" for h, p in self.nameservers) or "system"
        return f"Resolver({where})"

    # --- raw queries -----------------------------------------------------------------

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        try:
            return await self._async.resolve(name, rdtype, search=False)
        except dns.resolver.NoAnswer:
            return None
        except dns.resolver.NXDOMAIN as e:
            raise NoSuchDomain(f"{name}: no such domain") from e
        except _BAD_NAME as e:
            raise NoSuchDomain(f"{name!r}: not a valid domain name") from e
        except dns.exception.DNSException as e:
            raise TemporaryDnsError(f"{name} {rdtype}: {type(e).__name__}") from e

    def _sync_query(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        try:
            return self._sync.resolve(name, rdtype, search=False)
        except dns.resolver.NoAnswer:
            return None
        except dns.resolver.NXDOMAIN as e:
            raise NoSuchDomain(f"{name}: no such domain") from e
        except _BAD_NAME as e:
            raise NoSuchDomain(f"{name!r}: not a valid domain name") from e
        except dns.exception.DNSException as e:
            raise TemporaryDnsError(f"{name} {rdtype}: {type(e).__name__}") from e

    # --- typed lookups ---------------------------------------------------------------

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        """(preference, host) sorted by preference; [] when no MX. The null MX of RFC 7505
        shows as host ``"."``."""
        answer = await self._query(domain, "MX")
        return [] if answer is None else _mx(answer)

    async def a(self, host: str) -> list[str]:
        """IPv4 addresses as text."""
        answer = await self._query(host, "A")
        return [] if answer is None else [r.to_text() for r in answer]

    async def aaaa(self, host: str) -> list[str]:
        """IPv6 addresses as text."""
        answer = await self._query(host, "AAAA")
        return [] if answer is None else [r.to_text() for r in answer]

    async def addresses(self, host: str) -> list[str]:
        """A then AAAA addresses; [] when none. One family failing temporarily is tolerated
        when the other answered with addresses."""
        v4, v6 = await asyncio.gather(self.a(host), self.aaaa(host), return_exceptions=True)
        for result in (v4, v6):
            if isinstance(result, NoSuchDomain):
                raise result
        if isinstance(v4, BaseException) and isinstance(v6, BaseException):
            raise v4
        found = [] if isinstance(v4, BaseException) else v4
        found += [] if isinstance(v6, BaseException) else v6
        if not found:
            for result in (v4, v6):
                if isinstance(result, BaseException):
                    raise result
        return found

    async def txt(self, name: str) -> list[str]:
        """Each TXT record with its strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2)."""
        answer = await self._query(name, "TXT")
        return [] if answer is None else _txt(answer)

    def sync_txt(self, name: str) -> list[str]:
        """Blocking :meth:`txt` for libraries that call back synchronously; run those in a
        worker thread, never on the event loop."""
        answer = self._sync_query(name, "TXT")
        return [] if answer is None else _txt(answer)

    def sync_mx(self, name: str) -> list[tuple[int, str]]:
        """Blocking :meth:`mx` (see :meth:`sync_txt`)."""
        answer = self._sync_query(name, "MX")
        return [] if answer is None else _mx(answer)

    def sync_addresses(self, name: str, rdtype: str) -> list[str]:
        """Blocking A or AAAA lookup (see :meth:`sync_txt`)."""
        answer = self._sync_query(name, rdtype)
        return [] if answer is None else [r.to_text() for r in answer]

    async def ptr(self, address: str) -> list[str]:
        """Names of an IP address (reverse DNS), without the final dot."""
        try:
            name = dns.reversename.from_address(address)
        except (ValueError, dns.exception.SyntaxError) as e:
            raise NoSuchDomain(f"{address!r}: not an IP address") from e
        answer = await self._query(name.to_text(), "PTR")
        return [] if answer is None else [_text(r.target) for r in answer]


def _mx(answer: dns.resolver.Answer) -> list[tuple[int, str]]:
    return sorted((int(r.preference), _text(r.exchange)) for r in answer)


def _txt(answer: dns.resolver.Answer) -> list[str]:
    return [
        b"".join(r.strings).decode("utf-8", "surrogateescape")
        for r in answer
        if r.rdtype == dns.rdatatype.TXT
    ]
