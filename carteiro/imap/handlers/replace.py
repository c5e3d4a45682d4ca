"""REPLACE and UID REPLACE (RFC 8508): save a new version of a message (a draft being
edited) and remove the old one in one command."""

from __future__ import annotations

from carteiro.delivery import new_message
from carteiro.imap.handlers.append import now
from carteiro.imap.handlers.base import SELECTED, Context, Result, bad, command, no, not_uid, ok
from carteiro.imap.handlers.mailboxes import account_id, name_arg
from carteiro.imap.protocol import commands as c


@command(c.Replace, SELECTED, uses_msn=not_uid)
async def replace(ctx: Context, cmd: c.Replace) -> Result:
    sel = ctx.session.selected
    assert sel is not None
    if sel.readonly:
        return no("Mailbox is read-only", "READ-ONLY")
    if cmd.uid:
        if sel.msn_of(cmd.target) is None or cmd.target in sel.pending_expunged:
            return no("No such message", "NONEXISTENT")
        target = cmd.target
    else:
        if not 1 <= cmd.target <= sel.exists:
            return bad("Message sequence number out of range")
        target = sel.uids[cmd.target - 1]
        if target in sel.pending_expunged:
            return no("The message was expunged", "EXPUNGEISSUED")
    dest = await ctx.store.get_mailbox(account_id(ctx), name_arg(ctx, cmd.mailbox))
    if dest is None:
        return no("Destination mailbox does not exist", "TRYCREATE")
    m = cmd.message
    if not m.data:
        return no("Cannot store an empty message", "CANNOT")
    # one store transaction: the old version is gone exactly when the new one is saved,
    # and the quota check counts the space the old version frees (RFC 8508 §3.4)
    draft = await new_message(m.data, frozenset(m.flags), m.internal_date or now())
    saved = await ctx.store.replace(sel.info.id, target, dest.id, draft)
    ctx.send(
        b"* OK [APPENDUID %d %d] Replacement saved\r\n" % (saved.uidvalidity, saved.dest_uids[0])
    )
    for line in sel.remove_now([target], qresync=ctx.session.vanished):
        ctx.send(line)
    return ok("REPLACE completed")
