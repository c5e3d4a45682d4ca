"""NOTIFY SET / NOTIFY NONE (RFC 5465 §3.1)."""

from __future__ import annotations

from carteiro.imap import notify as n
from carteiro.imap.handlers.base import AUTH, Context, Result, command, no, ok
from carteiro.imap.handlers.mailboxes import account_id, name_arg
from carteiro.imap.protocol import commands as c


@command(c.Notify, AUTH)
async def notify(ctx: Context, cmd: c.Notify) -> Result:
    if cmd.groups is None:
        # no events at all: not even between commands for the selected mailbox
        ctx.session.notify = n.new_state(())
        return ok("NOTIFY completed")
    unsupported = {e for g in cmd.groups for e in g.events} - set(n.SUPPORTED_EVENTS)
    if unsupported:
        # §3.1: NO (not BAD), listing every event this server supports
        return no(
            f"Unsupported event {sorted(unsupported)[0]}",
            "BADEVENT (" + " ".join(n.SUPPORTED_EVENTS) + ")",
        )
    groups = tuple(
        c.NotifyGroup(
            g.filter, tuple(name_arg(ctx, m) for m in g.mailboxes), g.events, g.fetch_attrs
        )
        for g in cmd.groups
    )
    state = n.new_state(groups)
    await n.snapshot(state, ctx.store, account_id(ctx))
    if cmd.status:
        selected = ctx.session.selected
        for box_id in sorted(state.seen, key=lambda i: state.boxes[i].name):
            if selected is not None and selected.info.id == box_id:
                continue
            line = n.initial_status(state, ctx.session, box_id)
            if line is not None:
                ctx.send(line)
    ctx.session.notify = state
    # §3.1: a successful NOTIFY SET is an implicit NOOP; the adapter's sync after
    # every command sends what accumulated for the selected mailbox
    return ok("NOTIFY completed")
