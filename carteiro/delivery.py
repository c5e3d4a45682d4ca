"""Local delivery into an account's INBOX: the path used by ``carteiro deliver`` and,
later, by SMTP/LMTP."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterable

from carteiro.message.meta import analyse
from carteiro.message.thread_keys import thread_keys
from carteiro.store.errors import NotFound
from carteiro.store.interface import NewMessage, Store

#: messages above this are analysed in a worker thread so the loop stays responsive
BIG_MESSAGE = 32 * 1024

_SYSTEM = {f.lower(): f for f in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")}


def _intake(data: bytes) -> tuple[bytes, tuple[str, ...]]:
    meta = analyse(data)
    return meta.to_bytes(), thread_keys(data, meta)


async def new_message(
    data: bytes, flags: frozenset[str], internal_date: datetime.datetime
) -> NewMessage:
    """Everything computed once per message before it is stored: metadata (ENVELOPE,
    BODYSTRUCTURE, part offsets) and thread keys. Shared by APPEND and delivery."""
    if len(data) > BIG_MESSAGE:
        meta, keys = await asyncio.to_thread(_intake, data)
    else:
        meta, keys = _intake(data)
    return NewMessage(data, meta, flags, internal_date, keys)


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
    account; ValueError for an empty message; QuotaExceeded (nothing stored) when the
    account has no room for it — the store checks that atomically with the append."""
    if not raw:
        raise ValueError("empty message")
    account = await store.get_account(address)
    if account is None:
        raise NotFound(f"no account {address}")
    box = await store.get_mailbox(account.id, mailbox)
    if box is None:
        raise NotFound(f"no mailbox {mailbox}")
    when = internal_date or datetime.datetime.now(datetime.UTC).astimezone()
    msg = await new_message(raw, canonical_flags(flags), when.replace(microsecond=0))
    result = await store.append(box.id, [msg])
    return result.dest_uids[0]
