"""One outbound SMTP delivery: a queued message to the recipients of one domain.

Routing (RFC 5321 §5.1): a configured relay host if there is one; else the domain's MX
hosts by preference (equal preferences in random order, so load spreads); a domain
without MX is its own implicit MX (its A/AAAA addresses); the null MX of RFC 7505
(``0 .``) means the domain accepts no mail at all. Each host's addresses are tried in
order until one gives a definite answer.

TLS is opportunistic, as between most MTAs today: STARTTLS whenever the server offers
it, without verifying the certificate (an unverified channel still defeats passive
eavesdropping). A server that offers STARTTLS but then fails the handshake is tried once
more in cleartext, as Postfix and Exim do, since otherwise a broken TLS setup at the
receiver would stop mail that plain SMTP would deliver. With ``tls_verify`` TLS becomes
mandatory: the certificate must verify for the MX name, and a host without (working)
STARTTLS is skipped, never used in cleartext.

Failures are classified once, here: a 2xx reply to the DATA body means sent; 4xx
temporary and 5xx permanent, per recipient at RCPT and for the whole transaction at MAIL
or DATA; a connection that cannot be made or breaks, a timeout, a bad greeting, a TLS
failure or a 421 move on to the next host, and if none is left the recipients stay
temporarily failed with the last such error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import aiosmtplib
from aiosmtplib import SMTPResponse

from carteiro.smtp.dns import NoSuchDomain, Resolver, TemporaryDnsError

__all__ = ["Outcome", "OutboundOptions", "deliver_domain", "needs_smtputf8"]

log = logging.getLogger("carteiro.queue")

Kind = Literal["sent", "temporary", "permanent"]

#: addresses tried per delivery at most (Postfix's smtp_mx_address_limit is 5)
MAX_ADDRESSES = 10
#: a server that gives up after QUIT is not waited for longer than this
QUIT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one recipient: ``reply`` is the remote reply (``"550 5.1.1 <bob@x>:
    no such user"``) or our own description in the same form; ``host`` is
    ``"name[address]"`` of the server that gave it, or None when no server did."""

    kind: Kind
    reply: str
    host: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundOptions:
    hostname: str  # ours, for EHLO
    port: int = 25
    relay_host: tuple[str, int] | None = None
    connect_timeout: float = 30.0
    command_timeout: float = 300.0
    tls_verify: bool = False


class _HostFailed(Exception):
    """This host gave no definite answer: try the next one."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class _TlsFailed(_HostFailed):
    """STARTTLS was offered but did not work."""


def needs_smtputf8(sender: str, recipients: Sequence[str]) -> bool:
    """Whether the envelope itself needs SMTPUTF8 (RFC 6531)."""
    return not all(a.isascii() for a in (sender, *recipients))


async def deliver_domain(
    resolver: Resolver,
    options: OutboundOptions,
    domain: str,
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    *,
    smtputf8: bool = False,
) -> list[tuple[str, Outcome]]:
    """Delivers ``data`` to ``recipients`` (all at ``domain``); one outcome per recipient,
    in order. Never raises for a delivery problem."""
    try:
        targets = await _route(resolver, options, domain)
    except _Fail as f:
        return [(r, f.outcome) for r in recipients]
    smtputf8 = smtputf8 or needs_smtputf8(sender, recipients)
    pending = list(dict.fromkeys(recipients))
    done: dict[str, Outcome] = {}
    last = Outcome("temporary", "451 4.4.1 no host could be reached")
    for name, address in targets[:MAX_ADDRESSES]:
        label = f"{name}[{address}]"
        try:
            results = await _session(options, name, address, sender, pending, data, smtputf8)
        except _TlsFailed as e:
            if options.tls_verify:
                last = Outcome("temporary", e.reply, label)
                continue
            log.info("TLS with %s failed (%s); retrying in cleartext", label, e.reply)
            try:
                results = await _session(
                    options, name, address, sender, pending, data, smtputf8, tls=False
                )
            except _HostFailed as e2:
                last = Outcome("temporary", e2.reply, label)
                continue
        except _HostFailed as e:
            last = Outcome("temporary", e.reply, label)
            log.info("%s: %s", label, e.reply)
            continue
        retry: list[str] = []
        for rcpt, outcome in results:
            if outcome is None:
                retry.append(rcpt)
            else:
                done[rcpt] = outcome
        if not retry:
            break
        pending = retry
        last = Outcome("temporary", "421 4.4.2 connection closed by the server", label)
    return [(r, done.get(r, last)) for r in recipients]


# --- routing -------------------------------------------------------------------------


class _Fail(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reply)
        self.outcome = outcome


async def _route(
    resolver: Resolver, options: OutboundOptions, domain: str
) -> list[tuple[str, str]]:
    """(host name, address) pairs to try, in order."""
    if options.relay_host is not None:
        host = options.relay_host[0]
        addresses = await _relay_addresses(resolver, host)
        if not addresses:
            raise _Fail(Outcome("temporary", f"451 4.4.4 relay host {host} has no address"))
        return [(host, a) for a in addresses]
    literal = _address_literal(domain)
    if literal is not None:
        return [(domain, literal)]
    try:
        mx = await resolver.mx(domain)
    except NoSuchDomain:
        raise _Fail(Outcome("permanent", f"550 5.1.2 domain {domain} does not exist")) from None
    except TemporaryDnsError as e:
        raise _Fail(Outcome("temporary", f"451 4.4.3 MX lookup for {domain} failed: {e}")) from e
    hosts = [(p, h.rstrip(".")) for p, h in mx]
    if hosts and all(h == "" for _, h in hosts):
        raise _Fail(Outcome("permanent", f"556 5.1.10 domain {domain} accepts no mail (null MX)"))
    names = _ordered([(p, h) for p, h in hosts if h]) if hosts else [domain]
    out: list[tuple[str, str]] = []
    errors: list[str] = []
    for name in names:
        try:
            found = await resolver.addresses(name)
        except NoSuchDomain:
            errors.append(f"{name}: no such host")
            continue
        except TemporaryDnsError as e:
            errors.append(f"{name}: {e}")
            continue
        out += [(name, a) for a in found if (name, a) not in out]
        if len(out) >= MAX_ADDRESSES:
            break
    if out:
        return out
    if not hosts and not errors:
        raise _Fail(Outcome("permanent", f"550 5.1.2 domain {domain} has no MX and no address"))
    detail = "; ".join(errors) or "no address"
    raise _Fail(Outcome("temporary", f"451 4.4.4 no mail host of {domain} found ({detail})"))


def _ordered(mx: list[tuple[int, str]]) -> list[str]:
    """By preference; hosts of equal preference shuffled (RFC 5321 §5.1)."""
    groups: dict[int, list[str]] = {}
    for pref, host in sorted(mx):
        groups.setdefault(pref, [])
        if host not in groups[pref]:
            groups[pref].append(host)
    out: list[str] = []
    for pref in sorted(groups):
        group = groups[pref]
        random.shuffle(group)
        out += [h for h in group if h not in out]
    return out


def _address_literal(domain: str) -> str | None:
    """``[192.0.2.1]`` or ``[IPv6:2001:db8::1]`` (RFC 5321 §4.1.3)."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    if inner[:5].lower() == "ipv6:":
        inner = inner[5:]
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        return None


async def _relay_addresses(resolver: Resolver, host: str) -> list[str]:
    """The relay is the operator's: an IP address, a name in DNS or one the system knows
    (``/etc/hosts``)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        found = await resolver.addresses(host)
    except (NoSuchDomain, TemporaryDnsError):
        found = []
    if found:
        return found
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, None, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except OSError:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# --- one SMTP session ----------------------------------------------------------------


def _reply(response: SMTPResponse) -> str:
    return " ".join(f"{response.code} {response.message}".split())


def _err_reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return " ".join(f"{exc.code} {exc.message}".split())


def _tls_context(verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _session(
    options: OutboundOptions,
    name: str,
    address: str,
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    smtputf8: bool,
    *,
    tls: bool = True,
) -> list[tuple[str, Outcome | None]]:
    """One connection to ``address``. Outcome None: not concluded here (a 421 or a broken
    connection after the envelope), try the next host. Raises _HostFailed when nothing
    was concluded at all."""
    label = f"{name}[{address}]"
    port = options.relay_host[1] if options.relay_host is not None else options.port
    client = aiosmtplib.SMTP(
        hostname=address,
        port=port,
        local_hostname=options.hostname,
        timeout=options.command_timeout,
        start_tls=False,
        validate_certs=options.tls_verify,
    )
    try:
        try:
            await client.connect(timeout=options.connect_timeout)
        except aiosmtplib.SMTPConnectResponseError as e:
            raise _HostFailed(_err_reply(e)) from e
        except (aiosmtplib.SMTPException, OSError) as e:
            raise _HostFailed(f"451 4.4.1 cannot connect to {label}: {e}") from e
        client.timeout = options.command_timeout
        return await _transaction(
            client, options, name, label, sender, recipients, data, smtputf8, tls
        )
    except (asyncio.CancelledError, _TlsFailed):  # no polite QUIT to wait for
        client.close()
        raise
    finally:
        if client.is_connected:
            try:
                await client.quit(timeout=QUIT_TIMEOUT)
            except (aiosmtplib.SMTPException, OSError):
                pass
            client.close()


async def _hello(client: aiosmtplib.SMTP) -> None:
    try:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError as e:
            if e.code == 421 or not client.is_connected:
                raise
            await client.helo()
    except aiosmtplib.SMTPResponseException as e:
        raise _HostFailed(_err_reply(e)) from e


async def _transaction(
    client: aiosmtplib.SMTP,
    options: OutboundOptions,
    name: str,
    label: str,
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    smtputf8: bool,
    tls: bool,
) -> list[tuple[str, Outcome | None]]:
    def every(outcome: Outcome | None) -> list[tuple[str, Outcome | None]]:
        return [(r, outcome) for r in recipients]

    try:
        await _hello(client)
        if tls and client.supports_extension("starttls"):
            # with TLS 1.3 a server that refuses us (a client certificate it wanted)
            # says so only after the handshake: the EHLO that follows is part of the test
            try:
                await client.starttls(
                    server_hostname=name, tls_context=_tls_context(options.tls_verify)
                )
                await _hello(client)
            except _HostFailed as e:
                raise _TlsFailed(e.reply) from e
            except aiosmtplib.SMTPResponseException as e:
                raise _TlsFailed(_err_reply(e)) from e
            except (aiosmtplib.SMTPException, OSError) as e:
                raise _TlsFailed(f"454 4.7.0 TLS with {label} failed: {e}") from e
        elif options.tls_verify:
            raise _TlsFailed(f"454 4.7.4 {label} does not offer STARTTLS")
        if smtputf8 and not client.supports_extension("smtputf8"):
            return every(
                Outcome(
                    "permanent",
                    f"553 5.6.7 {label} does not support SMTPUTF8, which this message needs",
                    label,
                )
            )
        mail_options: list[str] = []
        if client.supports_extension("size"):
            limit = client.esmtp_extensions.get("size", "")
            if limit.isdigit() and 0 < int(limit) < len(data):
                return every(
                    Outcome("permanent", f"552 5.3.4 message too big for {label} ({limit})", label)
                )
            mail_options.append(f"SIZE={len(data)}")
        if client.supports_extension("8bitmime") and not data.isascii():
            mail_options.append("BODY=8BITMIME")
        if smtputf8:
            mail_options.append("SMTPUTF8")
        encoding = "utf-8" if smtputf8 else "ascii"

        response = await client.execute_command(
            b"MAIL", b"FROM:<" + sender.encode(encoding) + b">", *map(str.encode, mail_options)
        )
        if response.code == 421:
            raise _HostFailed(_reply(response))
        if not 200 <= response.code < 300:
            return every(Outcome(_kind(response.code), _reply(response), label))

        outcomes: dict[str, Outcome | None] = {}
        accepted: list[str] = []
        for rcpt in recipients:
            response = await client.execute_command(b"RCPT", b"TO:<" + rcpt.encode(encoding) + b">")
            if response.code == 421:
                return [(r, outcomes.get(r)) for r in recipients]
            if 200 <= response.code < 300:
                accepted.append(rcpt)
            else:
                outcomes[rcpt] = Outcome(_kind(response.code), _reply(response), label)
        if not accepted:
            await _rset(client)
            return [(r, outcomes[r]) for r in recipients]

        try:
            response = await client.data(data)
            result = Outcome("sent", _reply(response), label)
        except aiosmtplib.SMTPDataError as e:
            if e.code == 421:
                result = None
            else:
                result = Outcome(_kind(e.code), _err_reply(e), label)
        for rcpt in accepted:
            outcomes[rcpt] = result
        return [(r, outcomes[r]) for r in recipients]
    except aiosmtplib.SMTPTimeoutError as e:
        raise _HostFailed(f"451 4.4.2 timeout talking to {label}: {e}") from e
    except aiosmtplib.SMTPServerDisconnected as e:
        raise _HostFailed(f"451 4.4.2 {label} closed the connection: {e}") from e
    except (aiosmtplib.SMTPException, OSError) as e:
        if isinstance(e, _HostFailed):
            raise
        raise _HostFailed(f"451 4.4.2 error talking to {label}: {e}") from e


def _kind(code: int) -> Kind:
    return "permanent" if 500 <= code < 600 else "temporary"


async def _rset(client: aiosmtplib.SMTP) -> None:
    try:
        await client.rset(timeout=QUIT_TIMEOUT)
    except (aiosmtplib.SMTPException, OSError):
        pass
