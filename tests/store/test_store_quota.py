"""RFC 9208 quota: per-account limits, exact usage, atomic enforcement."""

from __future__ import annotations

import asyncio

import pytest
from store_support import Backend, blob_count, msg, recount_quota

from carteiro.store.errors import NotFound, QuotaExceeded
from carteiro.store.interface import MailboxInfo, Quota, Store


async def setup(store: Store, address: str = "user@example.org") -> tuple[int, MailboxInfo]:
    acc = await store.create_account(address, "h")
    inbox = await store.get_mailbox(acc.id, "INBOX")
    assert inbox is not None
    return acc.id, inbox


def sized(n: int) -> bytes:
    """Unique content of exactly ``n`` octets."""
    head = b"Subject: %d\r\n\r\n" % next(_unique)
    return head + b"x" * (n - len(head))


_unique = iter(range(10**9))


async def test_new_account_is_unlimited_and_usage_is_exact(store: Store) -> None:
    acc, inbox = await setup(store)
    assert await store.quota(acc) == Quota(None, 0, None, 0)
    m1, m2 = msg(), msg(data=sized(1000))
    await store.append(inbox.id, [m1, m2])
    assert await store.quota(acc) == Quota(None, len(m1.data) + 1000, None, 2)
    assert await recount_quota(store, acc) == (len(m1.data) + 1000, 2)
    with pytest.raises(NotFound):
        await store.quota(10**6)


async def test_set_quota_by_address_or_id(store: Store) -> None:
    acc, _ = await setup(store)
    await store.set_quota("USER@example.org", 2048, None)
    assert await store.quota(acc) == Quota(2048, 0, None, 0)
    await store.set_quota(acc, None, 10)
    assert await store.quota(acc) == Quota(None, 0, 10, 0)
    await store.set_quota(acc, 0, 0)
    assert await store.quota(acc) == Quota(0, 0, 0, 0)
    await store.set_quota(acc, None, None)
    assert await store.quota(acc) == Quota(None, 0, None, 0)
    with pytest.raises(NotFound):
        await store.set_quota("nobody@example.org", 1, 1)
    with pytest.raises(NotFound):
        await store.set_quota(10**6, 1, 1)
    with pytest.raises(ValueError):
        await store.set_quota(acc, -1, None)
    with pytest.raises(ValueError):
        await store.set_quota(acc, None, 2**63)
    assert await store.quota(acc) == Quota(None, 0, None, 0)


async def test_quotas_are_per_account(store: Store) -> None:
    a, a_inbox = await setup(store, "a@example.org")
    b, b_inbox = await setup(store, "b@example.org")
    await store.set_quota(a, None, 1)
    await store.append(a_inbox.id, [msg()])
    await store.append(b_inbox.id, [msg(), msg(), msg()])
    with pytest.raises(QuotaExceeded):
        await store.append(a_inbox.id, [msg()])
    assert (await store.quota(a)).messages_used == 1
    assert await store.quota(b) == Quota(None, (await store.quota(b)).storage_used, None, 3)


async def test_message_limit_allows_reaching_it_not_passing_it(store: Store) -> None:
    acc, inbox = await setup(store)
    await store.set_quota(acc, None, 3)
    await store.append(inbox.id, [msg(), msg()])
    before_blobs = await blob_count(store)
    status = await store.mailbox_status(inbox.id)
    with pytest.raises(QuotaExceeded):
        await store.append(inbox.id, [msg(), msg()])  # MULTIAPPEND: all or nothing
    assert await store.uids(inbox.id) == [1, 2]
    assert await store.mailbox_status(inbox.id) == status  # not even a UID was taken
    assert await blob_count(store) == before_blobs
    await store.append(inbox.id, [msg()])  # exactly at the limit
    assert (await store.quota(acc)).messages_used == 3
    with pytest.raises(QuotaExceeded):
        await store.append(inbox.id, [msg()])
    assert await recount_quota(store, acc) == ((await store.quota(acc)).storage_used, 3)


async def test_storage_limit_counts_octets_exactly(store: Store) -> None:
    acc, inbox = await setup(store)
    await store.set_quota(acc, 10_000, None)
    await store.append(inbox.id, [msg(data=sized(4000)), msg(data=sized(5000))])
    with pytest.raises(QuotaExceeded):
        await store.append(inbox.id, [msg(data=sized(1001))])
    await store.append(inbox.id, [msg(data=sized(1000))])  # 10,000: at the limit
    with pytest.raises(QuotaExceeded):
        await store.append(inbox.id, [msg(data=sized(20))])
    assert await store.quota(acc) == Quota(10_000, 10_000, None, 3)
    await recount_quota(store, acc)


async def test_zero_limit_refuses_everything(store: Store) -> None:
    acc, inbox = await setup(store)
    await store.set_quota(acc, 0, None)
    with pytest.raises(QuotaExceeded):
        await store.append(inbox.id, [msg()])
    await store.set_quota(acc, None, 0)
    with pytest.raises(QuotaExceeded):
        await store.append(inbox.id, [msg()])
    assert await store.uids(inbox.id) == []
    assert await store.append(inbox.id, []) is not None  # nothing to add: fine


async def test_copy_is_charged_even_though_content_is_shared(store: Store) -> None:
    acc, inbox = await setup(store)
    archive = await store.get_mailbox(acc, "Archive")
    assert archive is not None
    await store.append(inbox.id, [msg(data=sized(3000)), msg(data=sized(3000))])
    await store.set_quota(acc, 9000, None)
    blobs = await blob_count(store)
    archive_status = await store.mailbox_status(archive.id)
    with pytest.raises(QuotaExceeded):
        await store.copy(inbox.id, [1, 2], archive.id)  # 12,000 > 9,000
    assert await store.uids(archive.id) == []
    assert await store.mailbox_status(archive.id) == archive_status
    result = await store.copy(inbox.id, [2], archive.id)  # 9,000: at the limit
    assert result.dest_uids == [1]
    assert await blob_count(store) == blobs  # stored once, counted twice
    assert await store.quota(acc) == Quota(9000, 9000, None, 3)
    with pytest.raises(QuotaExceeded):
        await store.copy(inbox.id, [1], inbox.id)  # into the same mailbox too
    await store.copy(inbox.id, [999], archive.id)  # nothing to copy: no error
    await recount_quota(store, acc)


async def test_move_within_account_allowed_at_and_above_limit(store: Store) -> None:
    acc, inbox = await setup(store)
    trash = await store.get_mailbox(acc, "Trash")
    assert trash is not None
    await store.append(inbox.id, [msg(), msg(), msg()])
    used = await store.quota(acc)
    await store.set_quota(acc, used.storage_used, 3)  # exactly full
    result = await store.move(inbox.id, [1, 2], trash.id)
    assert result.dest_uids == [1, 2]
    assert await store.quota(acc) == Quota(used.storage_used, used.storage_used, 3, 3)
    await store.set_quota(acc, 1, 1)  # lowered below usage: moving still works
    await store.move(trash.id, [1], inbox.id)
    assert (await store.quota(acc)).messages_used == 3
    with pytest.raises(QuotaExceeded):
        await store.copy(inbox.id, [3], trash.id)
    # renaming INBOX moves its messages within the account: allowed as well
    await store.rename_mailbox(acc, "INBOX", "Old")
    assert (await store.quota(acc)).messages_used == 3
    await recount_quota(store, acc)


async def test_move_into_another_account_is_charged_there(store: Store) -> None:
    a, a_inbox = await setup(store, "a@example.org")
    b, b_inbox = await setup(store, "b@example.org")
    await store.append(a_inbox.id, [msg(), msg()])
    await store.set_quota(b, None, 1)
    with pytest.raises(QuotaExceeded):
        await store.move(a_inbox.id, [1, 2], b_inbox.id)
    assert await store.uids(a_inbox.id) == [1, 2]
    await store.move(a_inbox.id, [1], b_inbox.id)
    assert ((await store.quota(a)).messages_used, (await store.quota(b)).messages_used) == (1, 1)
    await recount_quota(store, a)
    await recount_quota(store, b)


async def test_usage_exact_after_expunge_delete_and_rename(store: Store) -> None:
    acc, inbox = await setup(store)
    await store.create_mailbox(acc, "Work/Old")
    work = await store.get_mailbox(acc, "Work")
    old = await store.get_mailbox(acc, "Work/Old")
    assert work is not None and old is not None
    await store.append(inbox.id, [msg(data=sized(100 + i)) for i in range(5)])
    await store.copy(inbox.id, [1, 2, 3], work.id)
    await store.copy(inbox.id, [4, 5], old.id)
    total = sum(100 + i for i in range(5)) + (100 + 101 + 102) + (103 + 104)
    assert await recount_quota(store, acc) == (total, 10)
    await store.store_flags(inbox.id, [2, 4], "+", frozenset({"\\Deleted"}))
    await store.expunge(inbox.id, [4])
    assert await recount_quota(store, acc) == (total - 103, 9)
    await store.expunge(inbox.id)
    assert await recount_quota(store, acc) == (total - 103 - 101, 8)
    await store.rename_mailbox(acc, "Work", "Done")
    assert await recount_quota(store, acc) == (total - 103 - 101, 8)
    await store.delete_mailbox(acc, "Done")  # and its inferior Done/Old
    assert await recount_quota(store, acc) == (100 + 102 + 104, 3)
    await store.store_flags(inbox.id, [1, 3, 5], "+", frozenset({"\\Deleted"}))
    await store.expunge(inbox.id)
    assert await store.quota(acc) == Quota(None, 0, None, 0)
    await store.delete_account("user@example.org")
    with pytest.raises(NotFound):
        await store.quota(acc)


async def test_freeing_space_makes_room_again(store: Store) -> None:
    acc, inbox = await setup(store)
    await store.append(inbox.id, [msg(), msg()])
    await store.set_quota(acc, None, 1)  # already over: nothing is removed
    assert (await store.quota(acc)).messages_used == 2
    with pytest.raises(QuotaExceeded):
        await store.append(inbox.id, [msg()])
    await store.store_flags(inbox.id, [1, 2], "+", frozenset({"\\Deleted"}))
    assert await store.expunge(inbox.id) == [1, 2]
    await store.append(inbox.id, [msg()])
    assert (await store.quota(acc)).messages_used == 1


async def test_parallel_appends_cannot_overshoot(store: Store) -> None:
    acc, inbox = await setup(store)
    sent = await store.get_mailbox(acc, "Sent")
    assert sent is not None
    await store.set_quota(acc, 25 * 500, 20)
    tasks = [store.append((inbox if i % 2 else sent).id, [msg(data=sized(500))]) for i in range(60)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    stored = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(stored) == 20
    assert all(isinstance(r, QuotaExceeded) for r in refused)
    assert await store.quota(acc) == Quota(12_500, 10_000, 20, 20)
    await recount_quota(store, acc)
    # storage-bound this time, with MULTIAPPENDs and copies racing
    await store.set_quota(acc, 12_500, None)
    racers = [store.append(inbox.id, [msg(data=sized(500)), msg(data=sized(500))])
              for _ in range(10)] + [store.copy(inbox.id, [1], sent.id) for _ in range(10)]  # fmt: skip
    await asyncio.gather(*racers, return_exceptions=True)
    quota = await store.quota(acc)
    assert quota.storage_used == 12_500  # filled exactly: every racer adds 500 or 1000
    await recount_quota(store, acc)


async def test_quota_survives_restart(backend: Backend, store: Store) -> None:
    acc, inbox = await setup(store)
    await store.append(inbox.id, [msg(data=sized(700))])
    await store.set_quota("user@example.org", 1024, 5)
    before = await store.quota(acc)
    await store.close()
    reopened = await backend.open()
    try:
        assert await reopened.quota(acc) == before == Quota(1024, 700, 5, 1)
        with pytest.raises(QuotaExceeded):
            await reopened.append(inbox.id, [msg(data=sized(325))])
        await reopened.append(inbox.id, [msg(data=sized(324))])
        assert (await reopened.quota(acc)).storage_used == 1024
    finally:
        await reopened.close()
    await store.open()


async def test_deleted_storage(store: Store) -> None:
    acc = await store.create_account("ds@example.org", "h")
    box = await store.get_mailbox(acc.id, "INBOX")
    assert box is not None
    await store.append(box.id, [msg(data=b"x" * 1000), msg(data=b"y" * 3000), msg(data=b"z" * 10)])
    assert await store.deleted_storage(box.id) == 0
    await store.store_flags(box.id, [1, 2], "+", frozenset({"\\Deleted"}))
    assert await store.deleted_storage(box.id) == 4000
    await store.expunge(box.id)
    assert await store.deleted_storage(box.id) == 0


async def test_replace_at_full_quota_succeeds_when_the_new_version_fits(store: Store) -> None:
    """RFC 8508: REPLACE frees the old version before it charges the new one."""
    acc, inbox = await setup(store)
    old = msg(data=sized(1000))
    (old_uid,) = (await store.append(inbox.id, [old])).dest_uids
    await store.set_quota(acc, 1000, 1)  # exactly full: a plain APPEND is refused
    with pytest.raises(QuotaExceeded):
        await store.append(inbox.id, [msg(data=sized(10))])
    result = await store.replace(inbox.id, old_uid, inbox.id, msg(data=sized(900)))
    assert await store.uids(inbox.id) == result.dest_uids
    assert result.dest_uids[0] > old_uid
    assert await recount_quota(store, acc) == (900, 1)


async def test_replace_refused_for_quota_keeps_the_old_version(store: Store) -> None:
    acc, inbox = await setup(store)
    drafts = await store.create_mailbox(acc, "Edits")
    (old_uid,) = (await store.append(inbox.id, [msg(data=sized(1000))])).dest_uids
    await store.set_quota(acc, 1500, None)
    before = await store.mailbox_status(inbox.id)
    with pytest.raises(QuotaExceeded):
        await store.replace(inbox.id, old_uid, drafts.id, msg(data=sized(1501)))
    assert await store.uids(inbox.id) == [old_uid]
    assert await store.uids(drafts.id) == []
    after = await store.mailbox_status(inbox.id)
    assert after.highest_modseq == before.highest_modseq
    assert await store.expunged_since(inbox.id, 0) == []


async def test_replace_into_another_mailbox_and_missing_message(store: Store) -> None:
    acc, inbox = await setup(store)
    drafts = await store.create_mailbox(acc, "Edits")
    (old_uid,) = (await store.append(inbox.id, [msg()])).dest_uids
    result = await store.replace(inbox.id, old_uid, drafts.id, msg())
    assert await store.uids(inbox.id) == []
    assert await store.uids(drafts.id) == result.dest_uids
    assert await store.expunged_since(inbox.id, 0) == [old_uid]
    with pytest.raises(NotFound):
        await store.replace(inbox.id, old_uid, drafts.id, msg())
    assert await store.uids(drafts.id) == result.dest_uids
