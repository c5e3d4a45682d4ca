"""NOTIFY (RFC 5465): what one session learns about the account's other mailboxes.

The selected mailbox keeps its usual path (:meth:`SelectedMailbox.drain_updates`);
this module covers the rest. It keeps, per session, the last state it told the client
about (mailbox list, subscriptions, one STATUS per watched mailbox) and, when the store
reports a change, answers with the difference: STATUS for message events (§5.1-5.3),
LIST for MailboxName and SubscriptionChange (§5.4-5.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.wire import paren_list
from carteiro.imap.state import Session
from carteiro.store import errors as se
from carteiro.store.interface import MailboxStatus, Store

__all__ = [
    "SUPPORTED_EVENTS",
    "NotifyState",
    "initial_status",
    "mailbox_lines",
    "new_state",
    "snapshot",
    "status_lines",
]

#: what BADEVENT lists (§3.1); annotations and metadata are not implemented
SUPPORTED_EVENTS = (
    "MessageNew",
    "MessageExpunge",
    "FlagChange",
    "MailboxName",
    "SubscriptionChange",
)
_MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange"})


@dataclass(frozen=True, slots=True)
class _Box:
    name: str
    subscribed: bool


@dataclass(frozen=True, slots=True)
class _Seen:
    """The part of a mailbox's STATUS the client was last told about."""

    uidvalidity: int
    messages: int
    uidnext: int
    highest_modseq: int
    unseen: int

    @classmethod
    def of(cls, st: MailboxStatus) -> _Seen:
        return cls(st.uidvalidity, st.messages, st.uidnext, st.highest_modseq, st.unseen)


@dataclass
class NotifyState:
    groups: tuple[c.NotifyGroup, ...]
    #: the SELECTED / SELECTED-DELAYED group, when it asks for message events
    selected: c.NotifyGroup | None
    boxes: dict[int, _Box] = field(default_factory=dict)
    seen: dict[int, _Seen] = field(default_factory=dict)
    #: mailbox ids the store reported since the last look (None: the mailbox list or
    #: the subscriptions changed)
    dirty: set[int | None] = field(default_factory=set)

    @property
    def immediate_expunge(self) -> bool:
        """SELECTED (not SELECTED-DELAYED): expunges may be announced between commands."""
        return self.selected is not None and self.selected.filter == "SELECTED"

    def events_for(self, box: _Box) -> frozenset[str]:
        """Events the client asked for about a mailbox other than the selected one (§6)."""
        out: set[str] = set()
        for g in self.groups:
            if g.filter not in c.NOTIFY_SELECTED and _matches(g, box):
                out.update(g.events)
        return frozenset(out)


def _matches(group: c.NotifyGroup, box: _Box) -> bool:
    if group.filter in ("PERSONAL", "INBOXES"):
        # §6.3: a server that cannot tell which mailboxes receive mail treats
        # INBOXES as PERSONAL; every mailbox here is in the personal namespace
        return True
    if group.filter == "SUBSCRIBED":
        return box.subscribed
    if group.filter == "MAILBOXES":
        return box.name in group.mailboxes
    if group.filter == "SUBTREE":
        return any(box.name == m or box.name.startswith(m + "/") for m in group.mailboxes)
    return False


def new_state(groups: tuple[c.NotifyGroup, ...]) -> NotifyState:
    selected = next((g for g in groups if g.filter in c.NOTIFY_SELECTED and g.events), None)
    return NotifyState(groups, selected)


async def snapshot(state: NotifyState, store: Store, account_id: int) -> None:
    """Records the mailbox list and the STATUS of watched mailboxes as already known."""
    state.boxes = await _boxes(store, account_id)
    state.seen = {}
    for box_id, box in state.boxes.items():
        if state.events_for(box) & _MESSAGE_EVENTS:
            state.seen[box_id] = _Seen.of(await store.mailbox_status(box_id))


async def _boxes(store: Store, account_id: int) -> dict[int, _Box]:
    subs = set(await store.list_subscriptions(account_id))
    return {b.id: _Box(b.name, b.name in subs) for b in await store.list_mailboxes(account_id)}


def initial_status(state: NotifyState, session: Session, box_id: int) -> bytes | None:
    """§3.1 ``SET STATUS``: MESSAGES, UIDNEXT and UIDVALIDITY for MessageNew (and
    MESSAGES for MessageExpunge), HIGHESTMODSEQ when FlagChange is asked for."""
    seen = state.seen.get(box_id)
    box = state.boxes.get(box_id)
    if seen is None or box is None:
        return None
    events = state.events_for(box)
    items = [
        ("MESSAGES", seen.messages),
        ("UIDNEXT", seen.uidnext),
        ("UIDVALIDITY", seen.uidvalidity),
    ]
    if "FlagChange" in events:
        items.append(("HIGHESTMODSEQ", seen.highest_modseq))
    return _status(session, box.name, items)


def _status(session: Session, name: str, items: list[tuple[str, int]]) -> bytes:
    parts = [f"{k} {v}".encode() for k, v in items]
    return b"* STATUS " + session.mailbox_to_wire(name) + b" " + paren_list(parts) + b"\r\n"


async def status_lines(
    state: NotifyState, session: Session, store: Store, selected_id: int | None
) -> list[bytes]:
    """STATUS responses for watched mailboxes that changed (§5.1-5.3)."""
    out: list[bytes] = []
    for box_id in sorted(i for i in state.dirty if i is not None):
        state.dirty.discard(box_id)
        box = state.boxes.get(box_id)
        if box is None or box_id == selected_id:
            continue
        events = state.events_for(box)
        if not events & _MESSAGE_EVENTS:
            continue
        try:
            now = _Seen.of(await store.mailbox_status(box_id))
        except se.NotFound:
            continue
        before = state.seen.get(box_id)
        state.seen[box_id] = now
        if before == now:
            continue
        items: list[tuple[str, int]] = []
        if before is None or before.uidvalidity != now.uidvalidity:
            items = [
                ("UIDVALIDITY", now.uidvalidity),
                ("MESSAGES", now.messages),
                ("UIDNEXT", now.uidnext),
            ]
        elif (before.messages, before.uidnext) != (now.messages, now.uidnext):
            items = [("MESSAGES", now.messages), ("UIDNEXT", now.uidnext)]
            if session.condstore:
                items.append(("HIGHESTMODSEQ", now.highest_modseq))
        elif "FlagChange" in events and session.condstore:
            # §5.1: flag changes elsewhere are visible only through the modseq
            items = [("HIGHESTMODSEQ", now.highest_modseq), ("UIDVALIDITY", now.uidvalidity)]
            if before.unseen != now.unseen:
                items.append(("UNSEEN", now.unseen))
        if items:
            out.append(_status(session, box.name, items))
    return out


async def mailbox_lines(
    state: NotifyState, session: Session, store: Store, account_id: int, *, quiet: bool = False
) -> list[bytes]:
    """LIST responses for mailboxes created, deleted, renamed (MailboxName, §5.4) or
    (un)subscribed (SubscriptionChange, §5.5) since the last look. ``quiet`` absorbs the
    change without a word: the session made it itself (§5: the server SHOULD NOT tell
    a client about its own changes)."""
    if None not in state.dirty and not quiet:
        return []
    state.dirty.discard(None)
    old, new = state.boxes, await _boxes(store, account_id)
    state.boxes = new
    for box_id, box in new.items():  # watch mailboxes that appeared, from zero
        if box_id not in state.seen and state.events_for(box) & _MESSAGE_EVENTS:
            state.seen[box_id] = _Seen.of(await store.mailbox_status(box_id))
    for box_id in list(state.seen):
        if box_id not in new:
            del state.seen[box_id]
    if quiet:
        return []
    names = {b.name for b in new.values()}
    out: list[bytes] = []
    touched_parents: set[str] = set()

    def wants(box: _Box, event: str) -> bool:
        return event in state.events_for(box)

    for box_id, box in sorted(new.items(), key=lambda kv: kv[1].name):
        before = old.get(box_id)
        if before is None:
            if wants(box, "MailboxName"):
                out.append(_list(session, box, names))
                touched_parents.add(_parent(box.name))
        elif before.name != box.name:
            if wants(box, "MailboxName") or wants(before, "MailboxName"):
                oldname = b' ("OLDNAME" (' + _wire(session, before.name) + b"))"
                out.append(_list(session, box, names, oldname))
        elif before.subscribed != box.subscribed and wants(box, "SubscriptionChange"):
            out.append(_list(session, box, names))
    for box_id, box in sorted(old.items(), key=lambda kv: kv[1].name):
        if box_id not in new and wants(box, "MailboxName"):
            out.append(b'* LIST (\\NonExistent) "/" ' + _wire(session, box.name) + b"\r\n")
            touched_parents.add(_parent(box.name))
    # §5.4: creating or deleting a mailbox changes its parent's \HasChildren
    by_name = {b.name: b for b in new.values()}
    for parent in sorted(touched_parents - {""}):
        pbox = by_name.get(parent)
        if pbox is not None and wants(pbox, "MailboxName"):
            out.append(_list(session, pbox, names))
    return out


def _parent(name: str) -> str:
    return name.rsplit("/", 1)[0] if "/" in name else ""


def _wire(session: Session, name: str) -> bytes:
    return session.mailbox_to_wire(name)


def _list(session: Session, box: _Box, names: set[str], extra: bytes = b"") -> bytes:
    kids = any(n.startswith(box.name + "/") for n in names)
    attrs = ["\\HasChildren" if kids else "\\HasNoChildren"]
    if box.subscribed:
        attrs.append("\\Subscribed")
    return (
        b"* LIST (" + " ".join(attrs).encode() + b') "/" ' + _wire(session, box.name)
        + extra + b"\r\n"
    )  # fmt: skip
