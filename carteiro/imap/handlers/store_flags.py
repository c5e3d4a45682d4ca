"""STORE and UID STORE (RFC 9051 §6.4.6)."""

from __future__ import annotations

from carteiro.imap.handlers.base import SELECTED, Context, Result, bad, command, no, not_uid, ok
from carteiro.imap.handlers.fetch import load_records
from carteiro.imap.handlers.messages import resolve
from carteiro.imap.protocol import commands as c

CHUNK = 1000


@command(c.Store, SELECTED, uses_msn=not_uid)
async def store(ctx: Context, cmd: c.Store) -> Result:
    sel = ctx.session.selected
    assert sel is not None
    if cmd.modifiers:
        return bad("STORE modifiers are not supported")
    if sel.readonly:
        return no("Mailbox is read-only", "READ-ONLY")
    uids = [u for u in resolve(ctx, cmd.seqs, cmd.uid).uids if u not in sel.pending_expunged]
    flags = frozenset(cmd.flags)
    for start in range(0, len(uids), CHUNK):
        chunk = uids[start : start + CHUNK]
        updates = await ctx.store.store_flags(sel.info.id, chunk, cmd.mode, flags)
        sel.note_own(updates)
        for line in sel.learn_keywords(u.flags for u in updates):
            ctx.send(line)
        if cmd.silent:
            continue
        current = {u.uid: u.flags for u in updates}
        missing = [u for u in chunk if u not in current]
        if missing:
            for rec in await load_records(ctx, sel.uids, missing, sel.info.id):
                current[rec.uid] = rec.flags
        for uid in chunk:
            if uid not in current:
                continue
            msn = sel.msn_of(uid)
            if msn is None:
                continue
            shown = sel.flags_for_display(uid, current[uid], ctx.session.rev1)
            if cmd.uid:
                ctx.send(b"* %d FETCH (UID %d FLAGS %s)\r\n" % (msn, uid, shown))
            else:
                ctx.send(b"* %d FETCH (FLAGS %s)\r\n" % (msn, shown))
        await ctx.conn.flush()
    return ok("STORE completed")
