"""Recoverable expunges (issue 4): with a retention period, expunged messages and the
content of deleted mailboxes can be restored; they cost no quota, expire, and leave no
content behind once gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from store_support import Backend, blob_count, msg, recount_quota

from carteiro.store.errors import NotFound, QuotaExceeded
from carteiro.store.interface import Store


@pytest.fixture
def keeping(backend: Backend, loop: asyncio.AbstractEventLoop) -> Iterator[Store]:
    opened = loop.run_until_complete(backend.open(retention=3600))
    yield opened
    loop.run_until_complete(opened.close())


async def flagged(store: Store, mailbox_id: int, count: int) -> list[int]:
    uids = (
        await store.append(mailbox_id, [msg(flags=("\\Deleted", "$Work")) for _ in range(count)])
    ).dest_uids
    return uids


async def test_expunged_messages_can_be_restored(keeping: Store) -> None:
    acc = await keeping.create_account("r@example.org", "h")
    inbox = await keeping.get_mailbox(acc.id, "INBOX")
    assert inbox is not None
    start = time.time() - 1
    await flagged(keeping, inbox.id, 3)
    assert len(await keeping.expunge(inbox.id)) == 3
    assert await keeping.recoverable(acc.id, start) == {"INBOX": 3}
    assert await recount_quota(keeping, acc.id) == (0, 0)  # kept, but not charged
    assert await keeping.restore_expunged(acc.id, start) == {"INBOX": 3}
    assert await keeping.recoverable(acc.id, start) == {}
    uids = await keeping.uids(inbox.id)
    assert uids == [4, 5, 6]  # new messages, new UIDs (RFC 9051: UIDs never reused)
    records = await keeping.records(inbox.id, uids)
    assert all("$Work" in r.flags and "\\Deleted" not in r.flags for r in records)
    assert await recount_quota(keeping, acc.id) == (sum(r.size for r in records), 3)


async def test_deleted_mailboxes_come_back(keeping: Store) -> None:
    acc = await keeping.create_account("r2@example.org", "h")
    box = await keeping.create_mailbox(acc.id, "Projects/2024")
    start = time.time() - 1
    await keeping.append(box.id, [msg(), msg()])
    await keeping.delete_mailbox(acc.id, "Projects")
    assert await keeping.get_mailbox(acc.id, "Projects/2024") is None
    assert await keeping.recoverable(acc.id, start) == {"Projects/2024": 2}
    assert await keeping.restore_expunged(acc.id, start, mailbox="Projects/2024") == {
        "Projects/2024": 2
    }
    again = await keeping.get_mailbox(acc.id, "Projects/2024")
    assert again is not None and len(await keeping.uids(again.id)) == 2
    assert await keeping.get_mailbox(acc.id, "Projects") is not None  # parent recreated


async def test_restore_respects_quota_and_since(keeping: Store) -> None:
    acc = await keeping.create_account("r3@example.org", "h")
    inbox = await keeping.get_mailbox(acc.id, "INBOX")
    assert inbox is not None
    await flagged(keeping, inbox.id, 2)
    await keeping.expunge(inbox.id)
    assert await keeping.recoverable(acc.id, time.time() + 60) == {}  # "since" is later
    await keeping.set_quota(acc.id, None, 1)
    with pytest.raises(QuotaExceeded):
        await keeping.restore_expunged(acc.id, 0)
    assert await keeping.recoverable(acc.id, 0) == {"INBOX": 2}  # nothing lost
    with pytest.raises(NotFound):
        await keeping.restore_expunged(10**6, 0)


async def test_content_is_released_when_recoverable_rows_go(keeping: Store) -> None:
    acc = await keeping.create_account("r4@example.org", "h")
    inbox = await keeping.get_mailbox(acc.id, "INBOX")
    assert inbox is not None
    before = await blob_count(keeping)
    await flagged(keeping, inbox.id, 2)
    await keeping.expunge(inbox.id)
    assert await blob_count(keeping) == before + 2  # held for recovery
    await keeping.delete_account("r4@example.org")
    assert await blob_count(keeping) == before


async def test_without_retention_nothing_is_kept(store: Store) -> None:
    acc = await store.create_account("r5@example.org", "h")
    inbox = await store.get_mailbox(acc.id, "INBOX")
    assert inbox is not None
    before = await blob_count(store)
    await flagged(store, inbox.id, 2)
    await store.expunge(inbox.id)
    assert await store.recoverable(acc.id, 0) == {}
    assert await blob_count(store) == before
