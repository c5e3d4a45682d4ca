"""DMARC (RFC 7489): does an aligned SPF or DKIM pass vouch for the From domain?

Policy discovery (§6.6.3) looks at ``_dmarc.<from>`` and then at ``_dmarc.<organizational
domain>`` (found with the Public Suffix List, §3.2); ``sp=`` applies when the record came
from the organizational domain and the From domain is below it.

Choices where the RFC leaves room:

* ``pct=`` is honoured by sampling (§6.6.4): a failing message outside the sample gets the
  next milder disposition (reject → quarantine → none). ``pct=100`` (the default) and
  ``pct=0`` are therefore deterministic.
* A record without a valid ``p=`` is treated as ``p=none`` when it has ``rua=`` (§6.6.3
  step 6) and otherwise gives ``permerror``; several records give ``permerror`` too.
* When nothing aligned passed but an aligned SPF or DKIM check failed temporarily, the
  result is ``temperror`` (disposition none) rather than ``fail``.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from publicsuffixlist import PublicSuffixList

from carteiro.smtp.dkim import DkimResult
from carteiro.smtp.dns import NoSuchDomain, Resolver, TemporaryDnsError
from carteiro.smtp.spf import SpfResult

__all__ = ["DmarcRecord", "DmarcResult", "check_dmarc", "organizational_domain", "parse_record"]

POLICIES = ("none", "quarantine", "reject")
_MILDER = {"reject": "quarantine", "quarantine": "none", "none": "none"}


@dataclass(frozen=True)
class DmarcResult:
    """``result`` ∈ pass, fail, none, temperror, permerror; ``policy`` the published policy
    that applies to ``domain`` (the From domain); ``disposition`` what to do with the
    message: none, quarantine or reject."""

    result: str
    policy: str
    domain: str
    disposition: str


@dataclass(frozen=True)
class DmarcRecord:
    policy: str
    subdomain_policy: str
    adkim: str  # "r" or "s"
    aspf: str
    pct: int


class _Invalid(ValueError):
    pass


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """The registered domain under its public suffix (``mail.example.co.uk`` →
    ``example.co.uk``); a public suffix itself stays as it is."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def parse_record(text: str) -> DmarcRecord:
    """Tags of a DMARC record (§6.3); raises ValueError when it is not usable."""
    tags: dict[str, str] = {}
    for i, part in enumerate(text.split(";")):
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if not eq:
            raise _Invalid(f"bad tag {part!r}")
        if i == 0 and (name != "v" or value != "DMARC1"):
            raise _Invalid("not a DMARC1 record")
        tags.setdefault(name, value)
    policy = tags.get("p", "").lower()
    if policy not in POLICIES:
        if "rua" not in tags:
            raise _Invalid("missing or invalid p=")
        policy = "none"
    subdomain = tags.get("sp", "").lower()
    if subdomain not in POLICIES:
        subdomain = policy
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    pct = tags.get("pct", "100")
    return DmarcRecord(
        policy,
        subdomain,
        adkim if adkim in ("r", "s") else "r",
        aspf if aspf in ("r", "s") else "r",
        min(int(pct), 100) if re.fullmatch(r"\d{1,3}", pct) else 100,
    )


async def _records(resolver: Resolver, domain: str) -> list[str]:
    try:
        texts = await resolver.txt(f"_dmarc.{domain}")
    except NoSuchDomain:
        return []
    return [t for t in texts if re.match(r"v\s*=\s*DMARC1\s*(;|\Z)", t)]


def _aligned(identifier: str, from_domain: str, mode: str) -> bool:
    identifier = identifier.lower().rstrip(".")
    if not identifier:
        return False
    if mode == "s":
        return identifier == from_domain
    return organizational_domain(identifier) == organizational_domain(from_domain)


async def check_dmarc(
    resolver: Resolver,
    from_domain: str,
    spf: SpfResult,
    mail_from_domain: str,
    dkim: Sequence[DkimResult],
) -> DmarcResult:
    """Evaluate the From domain's DMARC policy against SPF (for ``mail_from_domain``, the
    domain SPF checked) and the DKIM results."""
    from_domain = from_domain.lower().rstrip(".")
    if not from_domain:
        return DmarcResult("none", "none", "", "none")
    org = organizational_domain(from_domain)
    try:
        found = await _records(resolver, from_domain)
        at_org = False
        if not found and org != from_domain:
            found = await _records(resolver, org)
            at_org = True
    except TemporaryDnsError:
        return DmarcResult("temperror", "none", from_domain, "none")
    if not found:
        return DmarcResult("none", "none", from_domain, "none")
    if len(found) > 1:
        return DmarcResult("permerror", "none", from_domain, "none")
    try:
        record = parse_record(found[0])
    except ValueError:
        return DmarcResult("permerror", "none", from_domain, "none")
    policy = record.subdomain_policy if at_org else record.policy

    dkim_aligned = [d for d in dkim if _aligned(d.domain, from_domain, record.adkim)]
    spf_aligned = _aligned(mail_from_domain, from_domain, record.aspf)
    if any(d.result == "pass" for d in dkim_aligned) or (spf_aligned and spf.result == "pass"):
        return DmarcResult("pass", policy, from_domain, "none")
    if any(d.result == "temperror" for d in dkim_aligned) or (
        spf_aligned and spf.result == "temperror"
    ):
        return DmarcResult("temperror", policy, from_domain, "none")
    disposition = policy
    if record.pct < 100 and secrets.randbelow(100) >= record.pct:
        disposition = _MILDER[policy]
    return DmarcResult("fail", policy, from_domain, disposition)
