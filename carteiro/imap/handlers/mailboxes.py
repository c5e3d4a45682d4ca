"""CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS (RFC 9051 §6.3)."""

from __future__ import annotations

from carteiro.imap.handlers.base import AUTH, CommandFailed, Context, Result, bad, command, no, ok
from carteiro.imap.mailbox_names import canonical_pattern, matches, parents, valid_name
from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.wire import paren_list
from carteiro.imap.state import State
from carteiro.store import errors as se
from carteiro.store.interface import MailboxInfo

SPECIAL_USE = frozenset(
    {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
)
STATUS_ITEMS = (
    "MESSAGES",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "DELETED",
    "SIZE",
    "RECENT",
    "HIGHESTMODSEQ",
    "MAILBOXID",
    "APPENDLIMIT",
    "DELETED-STORAGE",
)


def mailbox_id(box: MailboxInfo) -> str:
    """RFC 8474 MAILBOXID: from UIDVALIDITY, which is unique per mailbox incarnation,
    kept across RENAME and never reused."""
    return f"F{box.uidvalidity}"


def account_id(ctx: Context) -> int:
    assert ctx.session.account is not None
    return ctx.session.account.id


def name_arg(ctx: Context, wire: str) -> str:
    try:
        return ctx.session.mailbox_from_wire(wire)
    except ValueError as exc:
        raise CommandFailed(no("Mailbox name is not valid modified UTF-7", "CANNOT")) from exc


@command(c.Create, AUTH)
async def create(ctx: Context, cmd: c.Create) -> Result:
    name = name_arg(ctx, cmd.mailbox)
    if name == "INBOX":
        return no("INBOX always exists", "ALREADYEXISTS")
    if not valid_name(name):
        return no("Invalid mailbox name", "CANNOT")
    uses = {
        u.capitalize() if not u.startswith("\\") else "\\" + u[1:].capitalize()
        for u in cmd.special_use
    }
    if not uses <= SPECIAL_USE:
        return no("Unsupported special-use attribute", "USEATTR")
    box = await ctx.store.create_mailbox(account_id(ctx), name, sorted(uses))
    return ok("CREATE completed", f"MAILBOXID ({mailbox_id(box)})")


@command(c.Delete, AUTH)
async def delete(ctx: Context, cmd: c.Delete) -> Result:
    name = name_arg(ctx, cmd.mailbox)
    if name == "INBOX":
        return no("INBOX cannot be deleted", "CANNOT")
    boxes = await ctx.store.list_mailboxes(account_id(ctx))
    target = next((b for b in boxes if b.name == name), None)
    if target is None:
        return no("No such mailbox", "NONEXISTENT")
    if any(b.name.startswith(name + "/") for b in boxes):
        return no("Mailbox has children, delete them first", "HASCHILDREN")
    await ctx.store.delete_mailbox(account_id(ctx), name)
    sel = ctx.session.selected
    if sel is not None and sel.info.id == target.id:  # by id: names change with RENAME
        ctx.session.selected = None
        ctx.session.state = State.AUTHENTICATED
    return ok("DELETE completed")


@command(c.Rename, AUTH)
async def rename(ctx: Context, cmd: c.Rename) -> Result:
    old = name_arg(ctx, cmd.old)
    new = name_arg(ctx, cmd.new)
    if not valid_name(new) or new == "INBOX":
        return no("Invalid mailbox name", "CANNOT")
    if new.startswith(old + "/"):
        return no("Cannot rename a mailbox into its own child", "CANNOT")
    if old == new:
        return no("Mailbox already exists", "ALREADYEXISTS")
    await ctx.store.rename_mailbox(account_id(ctx), old, new)
    return ok("RENAME completed")


@command(c.Subscribe, AUTH)
async def subscribe(ctx: Context, cmd: c.Subscribe) -> Result:
    name = name_arg(ctx, cmd.mailbox)
    if await ctx.store.get_mailbox(account_id(ctx), name) is None:
        return no("No such mailbox", "NONEXISTENT")
    await ctx.store.set_subscribed(account_id(ctx), name, True)
    return ok("SUBSCRIBE completed")


@command(c.Unsubscribe, AUTH)
async def unsubscribe(ctx: Context, cmd: c.Unsubscribe) -> Result:
    name = name_arg(ctx, cmd.mailbox)
    subs = await ctx.store.list_subscriptions(account_id(ctx))
    if name not in subs:
        return no("Not subscribed", "NONEXISTENT")
    await ctx.store.set_subscribed(account_id(ctx), name, False)
    return ok("UNSUBSCRIBE completed")


async def status_items(ctx: Context, box: MailboxInfo, items: tuple[str, ...]) -> bytes:
    if "RECENT" in items and ctx.recent is not None:
        await ctx.recent.settled(box.id)  # the store's count of recent is then exact
    st = await ctx.store.mailbox_status(box.id)
    values = {
        "MESSAGES": st.messages,
        "UIDNEXT": st.uidnext,
        "UIDVALIDITY": st.uidvalidity,
        "UNSEEN": st.unseen,
        "DELETED": st.deleted,
        "SIZE": st.size,
        "RECENT": st.recent,
        "HIGHESTMODSEQ": st.highest_modseq,
        "APPENDLIMIT": ctx.config.max_literal,
    }
    if "HIGHESTMODSEQ" in items:
        ctx.session.condstore = True  # RFC 7162 §3.1: a CONDSTORE-enabling command
    sel = ctx.session.selected
    if sel is not None and sel.info.id == box.id:
        values["RECENT"] = len(sel.recent)
    parts = []
    for item in items:
        if item == "RECENT" and ctx.session.rev2:
            continue
        if item == "MAILBOXID":
            parts.append(b"MAILBOXID (" + mailbox_id(box).encode() + b")")
        elif item == "DELETED-STORAGE":  # RFC 9208 §5.2, in units of 1024 octets
            freed = await ctx.store.deleted_storage(box.id)
            parts.append(b"DELETED-STORAGE %d" % -(-freed // 1024))
        else:
            parts.append(f"{item} {values[item]}".encode())
    return b"* STATUS " + ctx.session.mailbox_to_wire(box.name) + b" " + paren_list(parts) + b"\r\n"


@command(c.Status, AUTH)
async def status(ctx: Context, cmd: c.Status) -> Result:
    bad_items = [i for i in cmd.items if i not in STATUS_ITEMS]
    if bad_items:
        return bad(f"Unknown STATUS item {bad_items[0]}")
    name = name_arg(ctx, cmd.mailbox)
    box = await ctx.store.get_mailbox(account_id(ctx), name)
    if box is None:
        return no("No such mailbox", "NONEXISTENT")
    ctx.send(await status_items(ctx, box, cmd.items))
    return ok("STATUS completed")


def _list_line(ctx: Context, verb: bytes, attrs: list[str], name: str, extra: bytes = b"") -> bytes:
    return (
        b"* "
        + verb
        + b" ("
        + " ".join(attrs).encode()
        + b') "/" '
        + ctx.session.mailbox_to_wire(name)
        + extra
        + b"\r\n"
    )


@command(c.List, AUTH)
async def list_(ctx: Context, cmd: c.List) -> Result:
    acct = account_id(ctx)
    select = set(cmd.select_options)
    returns = set(cmd.return_options)
    unknown = select - {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
    if unknown or ("RECURSIVEMATCH" in select and not (select - {"RECURSIVEMATCH", "REMOTE"})):
        return bad("Invalid LIST selection options")
    if cmd.status_items is not None and any(i not in STATUS_ITEMS for i in cmd.status_items):
        return bad("Unknown STATUS item in LIST RETURN")
    try:
        ref = ctx.session.decode_wire(cmd.reference)
        patterns = [canonical_pattern(ref, ctx.session.decode_wire(p)) for p in cmd.patterns]
    except ValueError:
        return no("Mailbox name is not valid modified UTF-7", "CANNOT")
    if len(cmd.patterns) == 1 and cmd.patterns[0] == "" and not cmd.extended:
        ctx.send(b'* LIST (\\Noselect) "/" ""\r\n')
        return ok("LIST completed")

    boxes = {b.name: b for b in await ctx.store.list_mailboxes(acct)}
    subs = set(await ctx.store.list_subscriptions(acct))
    want_subscribed = "SUBSCRIBED" in select or "SUBSCRIBED" in returns
    only_special = "SPECIAL-USE" in select

    def pattern_hit(name: str) -> bool:
        return any(matches(p, name) for p in patterns)

    candidates = set(boxes)
    if "SUBSCRIBED" in select:
        candidates = subs | (
            {p for s in subs for p in parents(s) if p in boxes}
            if "RECURSIVEMATCH" in select
            else set()
        )
    out: list[tuple[str, list[str], bytes]] = []
    for name in sorted(candidates, key=lambda n: (n != "INBOX", n)):
        if not pattern_hit(name):
            continue
        box = boxes.get(name)
        attrs: list[str] = []
        extra = b""
        if {"SUBSCRIBED", "RECURSIVEMATCH"} <= select and any(
            s.startswith(name + "/") for s in subs
        ):
            # RFC 5258 §3.5: a child matches the selection criteria (its Example 9)
            extra = b' ("CHILDINFO" ("SUBSCRIBED"))'
        if box is None:
            attrs.append("\\NonExistent")
        else:
            has_kids = any(n.startswith(name + "/") for n in boxes)
            attrs.append("\\HasChildren" if has_kids else "\\HasNoChildren")
            attrs.extend(sorted(box.special_use))
        if only_special and (box is None or not box.special_use):
            continue
        if want_subscribed and name in subs:
            attrs.append("\\Subscribed")
        out.append((name, attrs, extra))
    for name, attrs, extra in out:
        ctx.send(_list_line(ctx, b"LIST", attrs, name, extra))
        box = boxes.get(name)
        if cmd.status_items is not None and box is not None:
            try:
                ctx.send(await status_items(ctx, box, cmd.status_items))
            except se.NotFound:
                pass
    return ok("LIST completed")


@command(c.Lsub, AUTH)
async def lsub(ctx: Context, cmd: c.Lsub) -> Result:
    acct = account_id(ctx)
    try:
        ref = ctx.session.decode_wire(cmd.reference)
        pattern = canonical_pattern(ref, ctx.session.decode_wire(cmd.pattern))
    except ValueError:
        return no("Mailbox name is not valid modified UTF-7", "CANNOT")
    if cmd.pattern == "":
        ctx.send(b'* LSUB (\\Noselect) "/" ""\r\n')
        return ok("LSUB completed")
    boxes = {b.name for b in await ctx.store.list_mailboxes(acct)}
    subs = set(await ctx.store.list_subscriptions(acct))
    shown: dict[str, list[str]] = {}
    for name in subs:
        if matches(pattern, name):
            shown[name] = [] if name in boxes else ["\\NonExistent"]
        else:
            # with %, a subscribed child makes its unsubscribed parent appear as \Noselect
            for p in parents(name):
                if p not in subs and matches(pattern, p):
                    shown.setdefault(p, ["\\Noselect"])
    for name in sorted(shown, key=lambda n: (n != "INBOX", n)):
        ctx.send(_list_line(ctx, b"LSUB", shown[name], name))
    return ok("LSUB completed")
