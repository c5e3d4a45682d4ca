"""STORE and UID STORE (RFC 9051 §6.4.6), with RFC 7162 UNCHANGEDSINCE and MODSEQ."""

from __future__ import annotations

from carteiro.imap.handlers.base import SELECTED, Context, Result, command, no, not_uid, ok
from carteiro.imap.handlers.fetch import load_records
from carteiro.imap.handlers.messages import limit, limit_code, resolve
from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.sequence_set import from_numbers
from carteiro.imap.uidonly import fetch_start

CHUNK = 1000


@command(c.Store, SELECTED, uses_msn=not_uid)
async def store(ctx: Context, cmd: c.Store) -> Result:
    sel = ctx.session.selected
    assert sel is not None
    if sel.readonly:
        return no("Mailbox is read-only", "READ-ONLY")
    if cmd.unchanged_since is not None:
        ctx.session.condstore = True  # RFC 7162 §3.1: a CONDSTORE-enabling command
    condstore = ctx.session.condstore
    uidonly = ctx.session.uidonly
    with_uid = cmd.uid and not uidonly  # under UIDONLY the UID heads the response
    uids = [u for u in resolve(ctx, cmd.seqs, cmd.uid).uids if u not in sel.pending_expunged]
    uids, lowest = limit(ctx, uids)  # RFC 9738: over the limit, the highest UIDs, highest first
    flags = frozenset(cmd.flags)
    modified: list[int] = []
    starts = range(0, len(uids), CHUNK)
    for done, start in enumerate(reversed(starts) if lowest is not None else starts):
        ctx.progress(done * CHUNK, len(uids))
        chunk = uids[start : start + CHUNK]
        if lowest is not None:
            chunk = chunk[::-1]
        if cmd.unchanged_since is None:
            updates = await ctx.store.store_flags(sel.info.id, chunk, cmd.mode, flags)
        else:
            updates, failed = await ctx.store.store_flags_conditional(
                sel.info.id, chunk, cmd.mode, flags, cmd.unchanged_since
            )
            modified.extend(failed)
        sel.note_own(updates)
        for line in sel.learn_keywords(u.flags for u in updates):
            ctx.send(line)
        if cmd.silent:
            # RFC 7162 §3.1.3: a silent store still tells a CONDSTORE client the new MODSEQ
            if condstore:
                for u in updates:
                    msn = sel.msn_of(u.uid)
                    if msn is not None:
                        ctx.send(
                            fetch_start(msn, u.uid, uidonly)
                            + (b"UID %d " % u.uid if with_uid else b"")
                            + b"MODSEQ (%d))\r\n" % u.modseq
                        )
            continue
        current = {u.uid: (u.flags, u.modseq) for u in updates}
        skip = set(modified)
        missing = [u for u in chunk if u not in current and u not in skip]
        if missing:
            for rec in await load_records(ctx, sel.uids, sorted(missing), sel.info.id):
                current[rec.uid] = (rec.flags, rec.modseq)
        for uid in chunk:
            if uid not in current:
                continue
            msn = sel.msn_of(uid)
            if msn is None:
                continue
            shown_flags, modseq = current[uid]
            shown = sel.flags_for_display(uid, shown_flags, ctx.session.rev1)
            uid_item = b"UID %d " % uid if with_uid else b""
            modseq_item = b" MODSEQ (%d)" % modseq if condstore else b""
            ctx.send(
                fetch_start(msn, uid, uidonly)
                + b"%sFLAGS %s%s)\r\n" % (uid_item, shown, modseq_item)
            )
        await ctx.conn.flush()
    if modified:
        numbers = modified if cmd.uid else [m for u in modified if (m := sel.msn_of(u))]
        return ok("Conditional STORE failed for some messages", f"MODIFIED {from_numbers(numbers)}")
    if lowest is not None:
        return ok(f"STORE completed for the last {len(uids)} messages", limit_code(ctx, lowest))
    return ok("STORE completed")
