"""COPY, MOVE and their UID forms (RFC 9051 §6.4.7-8, RFC 4315 COPYUID)."""

from __future__ import annotations

from carteiro.imap.handlers.base import SELECTED, Context, Result, command, no, not_uid, ok
from carteiro.imap.handlers.mailboxes import account_id, name_arg
from carteiro.imap.handlers.messages import limit, limit_code, resolve
from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.sequence_set import ordered_uid_set
from carteiro.store.interface import CopyResult, MailboxInfo


def copyuid(res: CopyResult) -> str:
    return (
        f"COPYUID {res.uidvalidity} {ordered_uid_set(res.source_uids)} "
        f"{ordered_uid_set(res.dest_uids)}"
    )


async def _prepare(ctx: Context, cmd: c.Copy | c.Move) -> tuple[MailboxInfo, list[int]] | Result:
    sel = ctx.session.selected
    assert sel is not None
    dest = await ctx.store.get_mailbox(account_id(ctx), name_arg(ctx, cmd.mailbox))
    if dest is None:
        return no("Destination mailbox does not exist", "TRYCREATE")
    uids = [u for u in resolve(ctx, cmd.seqs, cmd.uid).uids if u not in sel.pending_expunged]
    return dest, uids


@command(c.Copy, SELECTED, uses_msn=not_uid)
async def copy(ctx: Context, cmd: c.Copy) -> Result:
    sel = ctx.session.selected
    assert sel is not None
    prep = await _prepare(ctx, cmd)
    if isinstance(prep, Result):
        return prep
    dest, uids = prep
    dest_id = dest.id
    if not uids:
        return ok("COPY completed, nothing to copy")
    _, last = limit(ctx, uids)
    if last is not None:  # RFC 9738 §3.1: COPY is atomic, so all or nothing
        return no("Too many messages to copy, try a smaller set", limit_code(ctx, last))
    res = await ctx.store.copy(sel.info.id, uids, dest_id)
    if not res.source_uids:
        return ok("COPY completed, nothing to copy")
    return ok("COPY completed", copyuid(res))


@command(c.Move, SELECTED, uses_msn=not_uid)
async def move(ctx: Context, cmd: c.Move) -> Result:
    sel = ctx.session.selected
    assert sel is not None
    if sel.readonly:
        return no("Mailbox is read-only", "READ-ONLY")
    prep = await _prepare(ctx, cmd)
    if isinstance(prep, Result):
        return prep
    dest, uids = prep
    dest_id = dest.id
    dest_is_trash = "\\Trash" in dest.special_use
    if not uids:
        return ok("MOVE completed, nothing to move")
    uids, last = limit(ctx, uids)  # RFC 9738 §3.1: the highest UIDs move, the rest wait
    res = await ctx.store.move(sel.info.id, uids, dest_id)
    if dest_is_trash:
        ctx.conn.note_deleted(sel.info.name, len(res.source_uids), moved_to_trash=True)
    if res.source_uids:
        ctx.send(b"* OK [" + copyuid(res).encode() + b"] Moved\r\n")
    for line in sel.remove_now(res.source_uids, qresync=ctx.session.vanished):
        ctx.send(line)
    if last is not None:
        return ok(f"MOVE completed for the last {len(uids)} messages", limit_code(ctx, last))
    return ok("MOVE completed")
