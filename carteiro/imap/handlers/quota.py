"""GETQUOTA, GETQUOTAROOT and SETQUOTA (RFC 9208, resources STORAGE and MESSAGE).

Each account has at most one quota root, named ``""``, covering all its mailboxes. It
exists while the administrator has set at least one limit (``carteiro quota set``): the
``quota-list`` grammar needs at least one resource and a resource needs a limit, so an
unlimited account has no quota root and GETQUOTAROOT lists none (RFC 9208 §4.3 allows an
empty list). Limits are the administrator's: SETQUOTA is refused (§4.1 lets a server
refuse it). Over-quota APPEND/COPY/MOVE get ``NO [OVERQUOTA]`` from the store's
``QuotaExceeded`` through ``base.map_store_error``.
"""

from __future__ import annotations

from carteiro.imap.handlers.base import AUTH, Context, Result, command, no, ok
from carteiro.imap.handlers.mailboxes import account_id, name_arg
from carteiro.imap.protocol import commands as c
from carteiro.store.interface import Quota

#: the one quota root of an account
ROOT = ""


def _kib(octets: int) -> int:
    """STORAGE is in units of 1024 octets (RFC 9208 §5.1), rounded up: a non-empty
    account never shows 0, and usage within the limit never shows above it."""
    return -(-octets // 1024)


def quota_line(q: Quota) -> bytes | None:
    """``* QUOTA "" (STORAGE used limit MESSAGE used limit)`` with only the limited
    resources; None when nothing is limited."""
    parts: list[bytes] = []
    if q.storage_limit is not None:
        parts.append(b"STORAGE %d %d" % (_kib(q.storage_used), _kib(q.storage_limit)))
    if q.messages_limit is not None:
        parts.append(b"MESSAGE %d %d" % (q.messages_used, q.messages_limit))
    if not parts:
        return None
    return b'* QUOTA "" (' + b" ".join(parts) + b")\r\n"


@command(c.GetQuotaRoot, AUTH)
async def getquotaroot(ctx: Context, cmd: c.GetQuotaRoot) -> Result:
    name = name_arg(ctx, cmd.mailbox)
    if await ctx.store.get_mailbox(account_id(ctx), name) is None:
        return no("No such mailbox", "NONEXISTENT")
    line = quota_line(await ctx.store.quota(account_id(ctx)))
    wire = ctx.session.mailbox_to_wire(name)
    ctx.send(b"* QUOTAROOT " + wire + (b' ""' if line is not None else b"") + b"\r\n")
    if line is not None:
        ctx.send(line)
    return ok("GETQUOTAROOT completed")


@command(c.GetQuota, AUTH)
async def getquota(ctx: Context, cmd: c.GetQuota) -> Result:
    if cmd.root != ROOT:
        return no("No such quota root", "NONEXISTENT")
    line = quota_line(await ctx.store.quota(account_id(ctx)))
    if line is None:
        return no("No quota limits apply to this account", "NONEXISTENT")
    ctx.send(line)
    return ok("GETQUOTA completed")


@command(c.SetQuota, AUTH)
async def setquota(ctx: Context, cmd: c.SetQuota) -> Result:
    return no("Quota limits are set by the administrator", "NOPERM")
