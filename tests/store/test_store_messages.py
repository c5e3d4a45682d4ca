from __future__ import annotations

import asyncio
import datetime

import pytest
from store_support import Backend, all_records, blob_count, msg, recount, recount_account

from carteiro.store.errors import NotFound
from carteiro.store.interface import MailboxInfo, Store


async def setup(store: Store) -> tuple[int, MailboxInfo]:
    acc = await store.create_account("user@example.org", "h")
    inbox = await store.get_mailbox(acc.id, "INBOX")
    assert inbox is not None
    return acc.id, inbox


async def test_append_and_read_back(store: Store) -> None:
    _, inbox = await setup(store)
    m1 = msg(flags={"\\Seen", "\\Flagged"})
    m2 = msg(data=b"x" * 100_000, meta=b"\x00\x01meta")
    result = await store.append(inbox.id, [m1, m2])
    assert result.uidvalidity == inbox.uidvalidity
    assert result.source_uids == []
    assert result.dest_uids == [1, 2]
    r1, r2 = await store.records(inbox.id, [1, 2])
    assert r1.flags == frozenset({"\\Seen", "\\Flagged"}) and r2.flags == frozenset()
    assert (r1.size, r2.size) == (len(m1.data), 100_000)
    assert r1.internal_date == m1.internal_date
    assert r1.internal_date.utcoffset() == datetime.timedelta(hours=2)
    assert await store.read_blob(r1.blob_id) == m1.data
    assert await store.read_blob(r2.blob_id) == m2.data
    assert await store.read_meta([r1.blob_id, r2.blob_id]) == {
        r1.blob_id: m1.meta,
        r2.blob_id: m2.meta,
    }
    assert await store.read_meta([]) == {}
    assert await store.read_blobs([r2.blob_id, r1.blob_id, 10**9]) == {
        r1.blob_id: m1.data,
        r2.blob_id: m2.data,
    }
    assert await store.read_blobs([]) == {}
    assert r1.modseq > inbox.highest_modseq
    status = await recount(store, inbox.id)
    assert (status.messages, status.unseen, status.uidnext) == (2, 1, 3)
    assert status.highest_modseq >= r1.modseq
    with pytest.raises(NotFound):
        await store.read_blob(10**9)


async def test_internal_date_roundtrip_timezones(store: Store) -> None:
    _, inbox = await setup(store)
    dates = [
        datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC),
        datetime.datetime(
            2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(-datetime.timedelta(hours=7, minutes=30))
        ),
    ]
    await store.append(inbox.id, [msg(date=d) for d in dates])
    records = await store.records(inbox.id, [1, 2])
    assert [r.internal_date for r in records] == dates
    assert [r.internal_date.utcoffset() for r in records] == [d.utcoffset() for d in dates]


async def test_identical_content_stored_once(store: Store) -> None:
    acc, inbox = await setup(store)
    sent = await store.get_mailbox(acc, "Sent")
    assert sent is not None
    same = msg()
    await store.append(inbox.id, [same, same])
    await store.append(sent.id, [same])
    records = await store.records(inbox.id, [1, 2]) + await store.records(sent.id, [1])
    assert len({r.blob_id for r in records}) == 1
    assert await blob_count(store) in (None, 1)
    # removing some references keeps the content; removing the last drops it
    await store.store_flags(inbox.id, [1, 2], "+", frozenset({"\\Deleted"}))
    await store.expunge(inbox.id)
    assert await store.read_blob(records[0].blob_id) == same.data
    assert await blob_count(store) in (None, 1)
    await store.store_flags(sent.id, [1], "+", frozenset({"\\Deleted"}))
    await store.expunge(sent.id)
    assert await blob_count(store) in (None, 0)
    with pytest.raises(NotFound):
        await store.read_blob(records[0].blob_id)
    await recount_account(store, acc)


async def test_failed_append_leaves_nothing(store: Store) -> None:
    acc, inbox = await setup(store)
    box = await store.create_mailbox(acc, "Gone")
    await store.delete_mailbox(acc, "Gone")
    before = await blob_count(store)
    with pytest.raises(NotFound):
        await store.append(box.id, [msg(), msg()])
    assert await blob_count(store) == before
    assert await store.mailbox_status(inbox.id) == await store.mailbox_status(inbox.id)


async def test_failing_operation_does_not_disturb_concurrent_ones(store: Store) -> None:
    acc, inbox = await setup(store)
    box = await store.create_mailbox(acc, "Gone")
    await store.delete_mailbox(acc, "Gone")
    tasks = [store.append(inbox.id, [msg()]) for _ in range(20)]
    tasks.insert(10, store.append(box.id, [msg()]))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[10], NotFound)
    ok = [r for i, r in enumerate(results) if i != 10]
    assert not any(isinstance(r, BaseException) for r in ok)
    assert await store.uids(inbox.id) == list(range(1, 21))
    await recount(store, inbox.id)


async def test_concurrent_appends_get_unique_ascending_uids(store: Store) -> None:
    _, inbox = await setup(store)

    async def worker(n: int) -> list[int]:
        got: list[int] = []
        for _ in range(n):
            got.extend((await store.append(inbox.id, [msg()])).dest_uids)
        return got

    per_worker = await asyncio.gather(*(worker(10) for _ in range(30)))
    for got in per_worker:
        assert got == sorted(got)  # each session sees its own appends ascend
    everything = [uid for got in per_worker for uid in got]
    assert sorted(everything) == list(range(1, 301))
    multi = await asyncio.gather(
        *(store.append(inbox.id, [msg(), msg(), msg()]) for _ in range(10))
    )
    for result in multi:
        uids = result.dest_uids
        assert uids == list(range(uids[0], uids[0] + 3))  # MULTIAPPEND: consecutive
    assert await store.uids(inbox.id) == list(range(1, 331))
    status = await recount(store, inbox.id)
    assert status.messages == 330 and status.uidnext == 331


async def test_uids_and_modseq_survive_restart(backend: Backend, store: Store) -> None:
    acc, inbox = await setup(store)
    await store.append(inbox.id, [msg(), msg(), msg()])
    await store.store_flags(inbox.id, [3], "+", frozenset({"\\Deleted"}))
    assert await store.expunge(inbox.id) == [3]  # the highest UID is gone
    before = await store.mailbox_status(inbox.id)
    await store.close()
    reopened = await backend.open()
    try:
        after = await reopened.mailbox_status(inbox.id)
        assert after == before
        result = await reopened.append(inbox.id, [msg()])
        assert result.dest_uids == [4]  # never reused
        (record,) = await reopened.records(inbox.id, [4])
        assert record.modseq > before.highest_modseq
        mailbox = await reopened.get_mailbox(acc, "INBOX")
        assert mailbox is not None and mailbox.uidvalidity == inbox.uidvalidity
        await recount(reopened, inbox.id)
    finally:
        await reopened.close()
    await store.open()


async def test_records_and_ranges(store: Store) -> None:
    _, inbox = await setup(store)
    await store.append(inbox.id, [msg() for _ in range(20)])
    await store.store_flags(inbox.id, [5, 6, 7], "+", frozenset({"\\Deleted"}))
    await store.expunge(inbox.id)
    got = await store.records(inbox.id, [1, 5, 6, 8, 19, 500])
    assert [r.uid for r in got] == [1, 8, 19]
    assert await store.records(inbox.id, []) == []
    chunk = await store.records_range(inbox.id, 3, 15, 4)
    assert [r.uid for r in chunk] == [3, 4, 8, 9]
    assert [r.uid for r in await store.records_range(inbox.id, 16, 100, 100)] == [
        16,
        17,
        18,
        19,
        20,
    ]
    assert await store.records_range(inbox.id, 21, 100, 10) == []
    everything = await all_records(store, inbox.id, chunk=3)
    assert [r.uid for r in everything] == [u for u in range(1, 21) if u not in (5, 6, 7)]
    assert await store.uids(inbox.id) == [r.uid for r in everything]


async def test_empty_mailbox_reads(store: Store) -> None:
    _, inbox = await setup(store)
    assert await store.uids(inbox.id) == []
    assert await store.records_range(inbox.id, 1, 2**32 - 1, 100) == []
    status = await recount(store, inbox.id)
    assert (status.messages, status.unseen, status.deleted, status.size) == (0, 0, 0, 0)
    assert status.recent == 0 and status.uidnext == 1
    assert status.highest_modseq >= 1


async def test_copy_shares_content_and_preserves_flags(store: Store) -> None:
    acc, inbox = await setup(store)
    archive = await store.get_mailbox(acc, "Archive")
    assert archive is not None
    await store.append(inbox.id, [msg(flags={"\\Seen", "Todo"}), msg(), msg(flags={"\\Answered"})])
    blobs = await blob_count(store)
    result = await store.copy(inbox.id, [3, 99, 1], archive.id)
    assert result.uidvalidity == archive.uidvalidity
    assert result.source_uids == [1, 3]
    assert result.dest_uids == [1, 2]
    src = await store.records(inbox.id, [1, 3])
    dst = await store.records(archive.id, [1, 2])
    assert [r.flags for r in dst] == [r.flags for r in src]
    assert [r.internal_date for r in dst] == [r.internal_date for r in src]
    assert [r.blob_id for r in dst] == [r.blob_id for r in src]
    assert [r.size for r in dst] == [r.size for r in src]
    assert await blob_count(store) == blobs
    assert await store.uids(inbox.id) == [1, 2, 3]  # the source is untouched
    again = await store.copy(inbox.id, [2], archive.id)
    assert again.dest_uids == [3]
    nothing = await store.copy(inbox.id, [77], archive.id)
    assert (nothing.source_uids, nothing.dest_uids) == ([], [])
    assert nothing.uidvalidity == archive.uidvalidity
    same = await store.copy(inbox.id, [1], inbox.id)  # copy into the same mailbox
    assert same.dest_uids == [4]
    await recount_account(store, acc)


async def test_move_is_copy_plus_expunge(store: Store) -> None:
    acc, inbox = await setup(store)
    trash = await store.get_mailbox(acc, "Trash")
    assert trash is not None
    await store.append(inbox.id, [msg(), msg(flags={"\\Seen"}), msg()])
    before = await store.mailbox_status(inbox.id)
    blobs = await blob_count(store)
    result = await store.move(inbox.id, [2, 3], trash.id)
    assert (result.source_uids, result.dest_uids) == ([2, 3], [1, 2])
    assert result.uidvalidity == trash.uidvalidity
    assert await store.uids(inbox.id) == [1]
    assert await store.uids(trash.id) == [1, 2]
    (moved,) = await store.records(trash.id, [1])
    assert moved.flags == frozenset({"\\Seen"})
    changes = await store.changes_since(inbox.id, before.highest_modseq)
    assert changes.expunged == [2, 3] and changes.updated == []
    assert await blob_count(store) == blobs
    empty = await store.move(inbox.id, [42], trash.id)
    assert empty.source_uids == [] and await store.uids(inbox.id) == [1]
    await recount_account(store, acc)


async def test_expunge(store: Store) -> None:
    _, inbox = await setup(store)
    await store.append(inbox.id, [msg() for _ in range(6)])
    assert await store.expunge(inbox.id) == []  # nothing \Deleted
    await store.store_flags(inbox.id, [2, 3, 5, 6], "+", frozenset({"\\Deleted"}))
    await recount(store, inbox.id)
    assert await store.expunge(inbox.id, [3, 4, 6]) == [3, 6]  # UID EXPUNGE
    assert await store.uids(inbox.id) == [1, 2, 4, 5]
    assert await store.expunge(inbox.id, []) == []
    assert await store.expunge(inbox.id) == [2, 5]
    assert await store.uids(inbox.id) == [1, 4]
    status = await recount(store, inbox.id)
    assert status.deleted == 0 and status.messages == 2


async def test_flag_rows_match_records(store: Store) -> None:
    _, inbox = await setup(store)
    await store.append(inbox.id, [msg(flags={"\\Seen"}) for _ in range(10)])
    await store.store_flags(inbox.id, [2, 3], "+", frozenset({"\\Flagged", "$Work"}))
    await store.store_flags(inbox.id, [4], "+", frozenset({"\\Deleted"}))
    await store.expunge(inbox.id)
    rows = await store.flag_rows(inbox.id, 1, 2**32 - 1)
    records = await all_records(store, inbox.id)
    assert rows == [(r.uid, r.flags, r.modseq) for r in records]
    assert rows[1][1] == frozenset({"\\Seen", "\\Flagged", "$Work"})
    assert [r[0] for r in await store.flag_rows(inbox.id, 3, 6)] == [3, 5, 6]
    assert await store.flag_rows(inbox.id, 11, 20) == []
    with pytest.raises(NotFound):
        await store.flag_rows(inbox.id + 1000, 1, 10)


async def test_system_flag_matches(store: Store) -> None:
    _, inbox = await setup(store)
    await store.append(inbox.id, [msg(flags={"\\Seen"} if i % 2 else set()) for i in range(8)])
    await store.store_flags(inbox.id, [2, 3], "+", frozenset({"\\Flagged"}))
    status = await store.mailbox_status(inbox.id)
    unseen = await store.system_flag_matches(inbox.id, "\\Seen", False)
    assert (unseen.text, unseen.uids) == ("1,3,5,7", [1, 3, 5, 7])
    assert unseen.highest_modseq == status.highest_modseq
    assert (await store.system_flag_matches(inbox.id, "\\Seen", True)).uids == [2, 4, 6, 8]
    assert (await store.system_flag_matches(inbox.id, "\\Flagged", True)).uids == [2, 3]
    unflagged = await store.system_flag_matches(inbox.id, "\\Flagged", False)
    assert unflagged.uids == [1, 4, 5, 6, 7, 8]
    assert (await store.system_flag_matches(inbox.id, "\\Deleted", False)).uids == list(range(1, 9))
    none = await store.system_flag_matches(inbox.id, "\\Draft", True)
    assert (none.text, none.uids) == ("", [])
    assert none.highest_modseq == status.highest_modseq
    with pytest.raises(NotFound):
        await store.system_flag_matches(inbox.id + 1000, "\\Seen", False)


async def test_system_flag_matches_follow_changes_in_uid_order(store: Store) -> None:
    """Flags changed out of UID order still come back ascending, and HIGHESTMODSEQ moves
    with every change."""
    _, inbox = await setup(store)
    await store.append(inbox.id, [msg(flags={"\\Seen"}) for _ in range(30)])
    before = (await store.system_flag_matches(inbox.id, "\\Seen", False)).highest_modseq
    for uid in (29, 3, 17, 11, 1, 30):
        await store.store_flags(inbox.id, [uid], "-", frozenset({"\\Seen"}))
    await store.store_flags(inbox.id, [17], "+", frozenset({"\\Deleted"}))
    found = await store.system_flag_matches(inbox.id, "\\Seen", False)
    assert found.uids == [1, 3, 11, 17, 29, 30]
    assert found.highest_modseq == before + 7
    assert found.highest_modseq == (await store.mailbox_status(inbox.id)).highest_modseq
    assert (await store.system_flag_matches(inbox.id, "\\Deleted", True)).uids == [17]


async def test_meta_rows(store: Store) -> None:
    """One read gives what records plus read_meta give, for any UID list: ascending,
    missing UIDs skipped, deduplicated content shared, flags and keywords decoded."""
    _, inbox = await setup(store)
    shared = msg(data=b"Subject: same\r\n\r\nsame\r\n", meta=b"shared-meta")
    await store.append(inbox.id, [msg(flags={"\\Seen"} if i % 2 else {"$Work"}) for i in range(9)])
    await store.append(inbox.id, [shared, shared])
    await store.store_flags(inbox.id, [4], "+", frozenset({"\\Flagged"}))
    await store.store_flags(inbox.id, [6], "+", frozenset({"\\Deleted"}))
    assert await store.expunge(inbox.id, [6]) == [6]
    records = {r.uid: r for r in await all_records(store, inbox.id)}
    metas = await store.read_meta([r.blob_id for r in records.values()])
    asked = [1, 3, 4, 6, 7, 10, 11, 12, 500]
    rows = await store.meta_rows(inbox.id, asked)
    expected = [
        (u, records[u].flags, records[u].modseq, records[u].size, metas[records[u].blob_id])
        for u in asked
        if u in records
    ]
    assert rows == expected
    assert [r[4] for r in rows if r[0] in (10, 11)] == [b"shared-meta", b"shared-meta"]
    assert rows[1][1] == frozenset({"$Work"}) and "\\Flagged" in rows[2][1]
    ranged = await store.meta_rows(inbox.id, range(2, 8))
    assert [r[0] for r in ranged] == [2, 3, 4, 5, 7]
    assert ranged[1] == expected[1]
    assert await store.meta_rows(inbox.id, []) == []
    with pytest.raises(NotFound):
        await store.meta_rows(inbox.id + 1000, [1])
