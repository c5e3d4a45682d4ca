"""Inbound mail authentication: SPF, DKIM and DMARC in one call, and what to do about it.

The From domain for DMARC is taken from the message (RFC 7489 §6.6.1): with no From field
or no address in it, DMARC is ``none`` (nothing to protect); with several From fields or
addresses of different domains, DMARC is ``permerror`` and, unless the policy is only to
mark, the message goes to Junk: such messages are a known way to confuse verifiers.
Several addresses of one domain are evaluated as that domain.

Actions by ``failure_policy``:

* ``mark``: always accept; the Authentication-Results field tells the tale.
* ``junk``: DMARC fail (whatever its policy), SPF fail without a DMARC pass, or the
  permerror above → Junk.
* ``enforce``: follow DMARC: disposition reject → reject, quarantine → Junk. Where the
  domain publishes no DMARC record, an SPF ``fail`` (an explicit ``-all``) → Junk; the
  several-From permerror → Junk.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from carteiro.message.headers import header_end, parse_fields, to_text
from carteiro.smtp.authresults import build
from carteiro.smtp.dkim import DkimResult, verify_dkim
from carteiro.smtp.dmarc import DmarcResult, check_dmarc
from carteiro.smtp.dns import Resolver
from carteiro.smtp.spf import SpfResult, check_spf

__all__ = [
    "FAILURE_POLICIES",
    "MailAuthPolicy",
    "Verdict",
    "authenticate",
    "mailauth_policy_from_settings",
]

FAILURE_POLICIES = ("mark", "junk", "enforce")


@dataclass(frozen=True)
class MailAuthPolicy:
    """The ``[inbound]`` table of the config."""

    check: bool = True  # run SPF/DKIM/DMARC on inbound mail
    failure_policy: str = "enforce"  # "mark" | "junk" | "enforce" (see the module docstring)


def mailauth_policy_from_settings(table: Mapping[str, Any]) -> MailAuthPolicy:
    """A :class:`MailAuthPolicy` from the ``[inbound]`` TOML table; ValueError with a
    one-line message for unknown keys or bad values."""
    if not isinstance(table, Mapping):
        raise ValueError("inbound: must be a table")
    known = sorted(f.name for f in fields(MailAuthPolicy))
    for key, value in table.items():
        if key not in known:
            raise ValueError(f"inbound.{key}: unknown setting; known ones are {', '.join(known)}")
        if key == "check" and not isinstance(value, bool):
            raise ValueError(f"inbound.check: expected true or false, not {value!r}")
        if key == "failure_policy" and value not in FAILURE_POLICIES:
            raise ValueError(
                f"inbound.failure_policy: expected one of {', '.join(FAILURE_POLICIES)}, "
                f"not {value!r}"
            )
    return MailAuthPolicy(**dict(table))


@dataclass(frozen=True)
class Verdict:
    spf: SpfResult
    dkim: list[DkimResult]
    dmarc: DmarcResult
    header: bytes  # "Authentication-Results: ...\r\n" to prepend
    action: str  # "accept" | "junk" | "reject"
    reason: str  # for the SMTP reply on reject


class _SeveralFrom(Exception):
    pass


def _from_domain(message: bytes) -> str:
    """The domain of the message's one From address, lower-case; "" when there is none.
    Raises :class:`_SeveralFrom` when From names several domains or occurs twice."""
    end = header_end(message, 0, len(message))
    values = [v for n, v in parse_fields(message, 0, end) if n.lower() == "from"]
    if not values:
        return ""
    if len(values) > 1:
        raise _SeveralFrom("several From fields")
    addresses = email.utils.getaddresses([to_text(values[0])])
    domains = {a.rpartition("@")[2].lower().rstrip(".") for _, a in addresses if "@" in a}
    domains.discard("")
    if len(domains) > 1:
        raise _SeveralFrom("From names several domains")
    return domains.pop() if domains else ""


def _action(policy: MailAuthPolicy, spf: SpfResult, dmarc: DmarcResult) -> str:
    if policy.failure_policy == "mark":
        return "accept"
    if policy.failure_policy == "junk":
        spf_fail = spf.result == "fail" and dmarc.result != "pass"
        return "junk" if dmarc.result == "fail" or spf_fail else "accept"
    if dmarc.result == "fail":
        return {"reject": "reject", "quarantine": "junk"}.get(dmarc.disposition, "accept")
    if dmarc.result == "none" and spf.result == "fail":
        return "junk"
    return "accept"


async def authenticate(
    resolver: Resolver,
    policy: MailAuthPolicy,
    *,
    message: bytes,
    ip: str,
    helo: str,
    mail_from: str,
    authserv_id: str,
) -> Verdict:
    """Check SPF and DKIM concurrently, then DMARC; build the header and decide."""
    spf, dkim = await asyncio.gather(
        check_spf(resolver, ip, mail_from, helo), verify_dkim(resolver, message)
    )
    several = False
    try:
        domain = _from_domain(message)
    except _SeveralFrom:
        domain, several = "", True
    if several:
        dmarc = DmarcResult("permerror", "none", "", "none")
    else:
        dmarc = await check_dmarc(resolver, domain, spf, spf.domain, dkim)
    header = build(authserv_id, spf=spf, mail_from=mail_from, helo=helo, dkim=dkim, dmarc=dmarc)
    if not policy.check:
        action = "accept"
    elif several:
        action = "accept" if policy.failure_policy == "mark" else "junk"
    else:
        action = _action(policy, spf, dmarc)
    reason = ""
    if action == "reject":
        reason = f"5.7.1 DMARC policy of {dmarc.domain} rejects this message"
    return Verdict(spf, dkim, dmarc, header, action, reason)
