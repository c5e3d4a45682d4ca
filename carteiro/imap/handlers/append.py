"""APPEND with MULTIAPPEND (RFC 9051 §6.3.12, RFC 3502) and APPENDUID (RFC 4315)."""

from __future__ import annotations

import datetime

from carteiro.delivery import new_message
from carteiro.imap.handlers.base import AUTH, Context, Result, command, no, ok
from carteiro.imap.handlers.mailboxes import account_id, name_arg
from carteiro.imap.handlers.messages import limit_code
from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.sequence_set import ordered_uid_set
from carteiro.store.errors import NotFound
from carteiro.store.interface import MailboxInfo, NewMessage


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).astimezone().replace(microsecond=0)


#: ctx.extra key: mailbox name -> MailboxInfo, so that APPEND does not ask the store (a
#: reader-thread round trip, ~2 ms under load) every time; the connection drops it on
#: every mailbox-list change of the account (store notification with mailbox_id None)
MAILBOX_CACHE = "append_mailboxes"


async def _mailbox(ctx: Context, name: str) -> MailboxInfo | None:
    cache: dict[str, MailboxInfo] = ctx.extra.setdefault(MAILBOX_CACHE, {})
    box = cache.get(name)
    if box is None:
        box = await ctx.store.get_mailbox(account_id(ctx), name)
        if box is not None and len(cache) < 64:
            cache[name] = box
    return box


@command(c.Append, AUTH)
async def append(ctx: Context, cmd: c.Append) -> Result:
    if len(cmd.messages) > ctx.config.message_limit:
        # RFC 9738 §3.1: MULTIAPPEND is atomic, so nothing is appended
        return no(f"At most {ctx.config.message_limit} messages per APPEND", limit_code(ctx))
    box = await _mailbox(ctx, name_arg(ctx, cmd.mailbox))
    if box is None:
        return no("Mailbox does not exist", "TRYCREATE")
    new: list[NewMessage] = []
    for m in cmd.messages:
        if not m.data:
            return no("Cannot store an empty message", "CANNOT")
        if len(m.data) > ctx.config.max_literal:
            return no("Message is larger than APPENDLIMIT", "TOOBIG")
        new.append(await new_message(m.data, frozenset(m.flags), m.internal_date or now()))
    try:
        res = await ctx.store.append(box.id, new)
    except NotFound:  # deleted since it was cached
        ctx.extra.pop(MAILBOX_CACHE, None)
        return no("Mailbox does not exist", "TRYCREATE")
    return ok("APPEND completed", f"APPENDUID {res.uidvalidity} {ordered_uid_set(res.dest_uids)}")
