"""SELECT, EXAMINE, CLOSE, UNSELECT, CHECK, EXPUNGE, UID EXPUNGE (RFC 9051 §6.3.2, §6.4)."""

from __future__ import annotations

from carteiro.imap.handlers.base import AUTH, SELECTED, Context, Result, bad, command, no, ok
from carteiro.imap.handlers.mailboxes import account_id, mailbox_id, name_arg
from carteiro.imap.handlers.messages import limit, limit_code
from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.sequence_set import from_numbers
from carteiro.imap.selected import SelectedMailbox
from carteiro.imap.state import State
from carteiro.imap.uidonly import fetch_start


def selected(ctx: Context) -> SelectedMailbox:
    assert ctx.session.selected is not None
    return ctx.session.selected


def deselect(ctx: Context) -> None:
    ctx.session.selected = None
    ctx.session.state = State.AUTHENTICATED
    ctx.extra.pop("unwatch", None)


@command(c.Select, AUTH)
async def select(ctx: Context, cmd: c.Select) -> Result:
    if cmd.qresync is not None and not ctx.session.qresync:
        return bad("QRESYNC must be enabled first (ENABLE QRESYNC)")
    had_selection = ctx.session.selected is not None
    deselect(ctx)
    if cmd.condstore:
        ctx.session.condstore = True
    if had_selection and (ctx.session.rev2 or ctx.session.qresync):
        # RFC 9051 §6.3.2: tells the client the previous mailbox is closed
        ctx.send(b"* OK [CLOSED] Previous mailbox closed\r\n")
    name = name_arg(ctx, cmd.mailbox)
    box = await ctx.store.get_mailbox(account_id(ctx), name)
    if box is None:
        return no("No such mailbox", "NONEXISTENT")
    if cmd.readonly and ctx.recent is not None:
        await ctx.recent.settled(box.id)  # the store's count of recent is then exact
    # The order matters: the snapshot's modseq must not be newer than the UID list.
    status = await ctx.store.mailbox_status(box.id)
    uids = await ctx.store.uids(box.id)
    if cmd.readonly:
        # EXAMINE shows \Recent but must not take it away (RFC 3501 §6.3.2): the
        # unclaimed recent messages are the last status.recent UIDs (UID >= marker)
        first_recent = uids[-status.recent] if 0 < status.recent <= len(uids) else None
    else:
        newest = uids[-1] if uids else 0
        if ctx.recent is not None:
            first_recent = await ctx.recent.claim(box.id, newest)
        else:
            first_recent = await ctx.store.claim_recent(box.id, newest)
    sel = SelectedMailbox(
        box,
        uids,
        readonly=cmd.readonly,
        known_modseq=status.highest_modseq,
        first_recent=first_recent,
        keywords=await ctx.store.mailbox_keywords(box.id),
    )
    ctx.send(b"* %d EXISTS\r\n" % len(uids))
    if ctx.session.rev1:
        ctx.send(b"* %d RECENT\r\n" % len(sel.recent))
    for line in sel.flags_responses():
        ctx.send(line)
    if ctx.session.rev1 and not ctx.session.uidonly:  # [UNSEEN n] is a sequence number
        first_unseen = await ctx.store.first_unseen(box.id)
        msn = sel.msn_of(first_unseen) if first_unseen is not None else None
        if msn is not None:
            ctx.send(b"* OK [UNSEEN %d] First unseen\r\n" % msn)
    ctx.send(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % box.uidvalidity)
    ctx.send(b"* OK [UIDNEXT %d] Predicted next UID\r\n" % status.uidnext)
    # RFC 7162 §3.1.2.1: mod-sequences are persistent here, so always announced
    ctx.send(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % status.highest_modseq)
    ctx.send(b"* OK [MAILBOXID (" + mailbox_id(box).encode() + b")] Ok\r\n")
    if ctx.session.rev2:
        attrs = " ".join(sorted(box.special_use)).encode()
        ctx.send(b"* LIST (" + attrs + b') "/" ' + ctx.session.mailbox_to_wire(box.name) + b"\r\n")
    if cmd.qresync is not None and cmd.qresync.uidvalidity == box.uidvalidity:
        await _qresync(ctx, sel, cmd.qresync)
    ctx.session.selected = sel
    ctx.session.state = State.SELECTED
    sel.mark_announced()
    if cmd.readonly:
        return ok("EXAMINE completed", "READ-ONLY")
    return ok("SELECT completed", "READ-WRITE")


async def _qresync(ctx: Context, sel: SelectedMailbox, params: c.QresyncParams) -> None:
    """RFC 7162 §3.2.5: what changed since the client's modseq — expunges first as
    VANISHED (EARLIER), then the flags of changed messages — limited to the UIDs the
    client says it knows, when it says so."""
    changes = await ctx.store.changes_since(sel.info.id, params.modseq)
    known = params.known_uids
    star = max(sel.max_uid, changes.expunged[-1] if changes.expunged else 0)

    def wanted(uid: int) -> bool:
        return known is None or known.contains(uid, star)

    vanished = [u for u in changes.expunged if wanted(u)]
    if vanished:
        ctx.send(b"* VANISHED (EARLIER) " + str(from_numbers(vanished)).encode() + b"\r\n")
    for upd in changes.updated:
        msn = sel.msn_of(upd.uid)
        if msn is None or not wanted(upd.uid):
            continue
        flags = sel.flags_for_display(upd.uid, upd.flags, ctx.session.rev1)
        head = fetch_start(msn, upd.uid, ctx.session.uidonly)
        if not ctx.session.uidonly:
            head += b"UID %d " % upd.uid
        ctx.send(head + b"FLAGS %s MODSEQ (%d))\r\n" % (flags, upd.modseq))


@command(c.Close, SELECTED)
async def close(ctx: Context, cmd: c.Close) -> Result:
    sel = selected(ctx)
    if not sel.readonly:
        # silent expunge: no untagged EXPUNGE responses (RFC 9051 §6.4.1)
        ctx.conn.note_deleted(sel.info.name, len(await ctx.store.expunge(sel.info.id)))
    deselect(ctx)
    return ok("CLOSE completed")


@command(c.Unselect, SELECTED)
async def unselect(ctx: Context, cmd: c.Unselect) -> Result:
    deselect(ctx)
    return ok("UNSELECT completed")


@command(c.Check, SELECTED)
async def check(ctx: Context, cmd: c.Check) -> Result:
    return ok("CHECK completed")


@command(c.Expunge, SELECTED)
async def expunge(ctx: Context, cmd: c.Expunge) -> Result:
    sel = selected(ctx)
    if sel.readonly:
        return no("Mailbox is read-only", "READ-ONLY")
    restrict = None
    last = None
    if cmd.uids is not None:
        restrict = list(cmd.uids.select_from(sel.uids, sel.max_uid))
        if not restrict:
            return ok("UID EXPUNGE completed")
        if len(restrict) > ctx.config.message_limit:
            # RFC 9738 §3.1: UID EXPUNGE counts only \Deleted messages (plain EXPUNGE
            # and CLOSE are never limited)
            deleted = [
                r.uid for r in await ctx.store.records(sel.info.id, restrict)
                if "\\Deleted" in r.flags
            ]  # fmt: skip
            restrict, last = limit(ctx, deleted)
    gone = await ctx.store.expunge(sel.info.id, restrict)
    ctx.conn.note_deleted(sel.info.name, len(gone))
    for line in sel.remove_now(gone, qresync=ctx.session.vanished):
        ctx.send(line)
    if last is not None:
        return ok(f"UID EXPUNGE completed for the last {len(gone)} messages", limit_code(ctx, last))
    return ok("EXPUNGE completed")
