"""Local delivery into an account's INBOX: the path used by ``carteiro deliver`` and,
later, by SMTP/LMTP."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from carteiro.imap.handlers.append import message_meta
from carteiro.store.errors import NotFound
from carteiro.store.interface import NewMessage, Store

_SYSTEM = {f.lower(): f for f in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")}


def canonical_flags(flags: Iterable[str]) -> frozenset[str]:
    return frozenset(_SYSTEM.get(f.lower(), f) for f in flags)


async def deliver(
    store: Store,
    address: str,
    raw: bytes,
    flags: Iterable[str] = (),
    mailbox: str = "INBOX",
    internal_date: datetime.datetime | None = None,
) -> int:
    """Stores ``raw`` and returns its UID once it is durable. NotFound for an unknown
    account; ValueError for an empty message."""
    if not raw:
        raise ValueError("empty message")
    account = await store.get_account(address)
    if account is None:
        raise NotFound(f"no account {address}")
    box = await store.get_mailbox(account.id, mailbox)
    if box is None:
        raise NotFound(f"no mailbox {mailbox}")
    when = internal_date or datetime.datetime.now(datetime.UTC).astimezone()
    msg = NewMessage(
        raw, await message_meta(raw), canonical_flags(flags), when.replace(microsecond=0)
    )
    result = await store.append(box.id, [msg])
    return result.dest_uids[0]
