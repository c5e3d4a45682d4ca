from __future__ import annotations

from store_support import msg, recount

from carteiro.store.interface import Store

SEEN = frozenset({"\\Seen"})


async def inbox_with(store: Store, *flag_sets: set[str]) -> int:
    acc = await store.create_account("user@example.org", "h")
    inbox = await store.get_mailbox(acc.id, "INBOX")
    assert inbox is not None
    await store.append(inbox.id, [msg(flags=f) for f in flag_sets])
    return inbox.id


async def flags_of(store: Store, mailbox_id: int) -> dict[int, frozenset[str]]:
    return {r.uid: r.flags for r in await store.records_range(mailbox_id, 1, 2**32 - 1, 1000)}


async def modseqs(store: Store, mailbox_id: int) -> dict[int, int]:
    return {r.uid: r.modseq for r in await store.records_range(mailbox_id, 1, 2**32 - 1, 1000)}


async def test_add_only_changes_what_changes(store: Store) -> None:
    box = await inbox_with(store, set(), {"\\Seen"}, set())
    before = await modseqs(store, box)
    highest = (await store.mailbox_status(box)).highest_modseq
    updates = await store.store_flags(box, [3, 1, 2], "+", SEEN)
    assert [u.uid for u in updates] == [1, 3]
    assert all(u.flags == SEEN for u in updates)
    assert len({u.modseq for u in updates}) == 1 and updates[0].modseq > highest
    after = await modseqs(store, box)
    assert after[2] == before[2]
    assert after[1] == after[3] == updates[0].modseq
    status = await recount(store, box)
    assert status.highest_modseq == updates[0].modseq and status.unseen == 0
    # nothing changes: no update, no new modseq
    assert await store.store_flags(box, [1, 2, 3], "+", SEEN) == []
    assert (await store.mailbox_status(box)).highest_modseq == status.highest_modseq


async def test_remove_and_replace(store: Store) -> None:
    box = await inbox_with(store, {"\\Seen", "\\Flagged", "Work"}, {"\\Draft"}, set())
    updates = await store.store_flags(box, [1, 2, 3], "-", frozenset({"\\Flagged", "\\Draft"}))
    assert [u.uid for u in updates] == [1, 2]
    assert updates[0].flags == frozenset({"\\Seen", "Work"}) and updates[1].flags == frozenset()
    updates = await store.store_flags(box, [1, 2, 3], "", frozenset({"\\Answered"}))
    assert [u.uid for u in updates] == [1, 2, 3]
    assert await flags_of(store, box) == {i: frozenset({"\\Answered"}) for i in (1, 2, 3)}
    assert await store.store_flags(box, [1, 2, 3], "", frozenset({"\\Answered"})) == []
    updates = await store.store_flags(box, [2], "", frozenset())
    assert [(u.uid, u.flags) for u in updates] == [(2, frozenset())]
    await recount(store, box)


async def test_keywords_case_insensitive_first_spelling_kept(store: Store) -> None:
    box = await inbox_with(store, {"$Forwarded"}, set(), set())
    assert await store.store_flags(box, [1], "+", frozenset({"$FORWARDED"})) == []
    updates = await store.store_flags(box, [2], "+", frozenset({"$forwarded", "Todo"}))
    assert updates[0].flags == frozenset({"$Forwarded", "Todo"})  # mailbox's spelling
    updates = await store.store_flags(box, [3], "", frozenset({"TODO", "\\Seen"}))
    assert updates[0].flags == frozenset({"Todo", "\\Seen"})
    updates = await store.store_flags(box, [1, 2, 3], "-", frozenset({"todo"}))
    assert [u.uid for u in updates] == [2, 3]
    assert await flags_of(store, box) == {
        1: frozenset({"$Forwarded"}),
        2: frozenset({"$Forwarded"}),
        3: frozenset({"\\Seen"}),
    }
    keywords = await store.mailbox_keywords(box)
    assert sorted(keywords) == ["$Forwarded", "Todo"]
    await recount(store, box)


async def test_system_flags_canonical_and_recent_not_stored(store: Store) -> None:
    box = await inbox_with(store, {"\\seen", "\\Recent", "\\DELETED"})
    assert (await flags_of(store, box))[1] == frozenset({"\\Seen", "\\Deleted"})
    assert await store.store_flags(box, [1], "+", frozenset({"\\Recent"})) == []
    updates = await store.store_flags(box, [1], "-", frozenset({"\\SEEN"}))
    assert updates[0].flags == frozenset({"\\Deleted"})
    status = await recount(store, box)
    assert status.unseen == 1 and status.deleted == 1


async def test_store_on_missing_or_no_uids(store: Store) -> None:
    box = await inbox_with(store, set(), set())
    highest = (await store.mailbox_status(box)).highest_modseq
    assert await store.store_flags(box, [], "+", SEEN) == []
    assert await store.store_flags(box, [7, 8], "+", SEEN) == []
    assert (await store.mailbox_status(box)).highest_modseq == highest
    updates = await store.store_flags(box, [2, 9], "+", frozenset({"Keyword"}))
    assert [u.uid for u in updates] == [2]


async def test_many_messages_flag_range(store: Store) -> None:
    box = await inbox_with(store, *[set() for _ in range(300)])
    updates = await store.store_flags(box, list(range(1, 301, 2)), "+", SEEN)
    assert [u.uid for u in updates] == list(range(1, 301, 2))
    updates = await store.store_flags(box, list(range(1, 301)), "+", frozenset({"\\Seen", "X"}))
    assert len(updates) == 300
    status = await recount(store, box)
    assert status.unseen == 0
    await store.store_flags(box, list(range(1, 301)), "-", frozenset({"\\Seen", "x"}))
    status = await recount(store, box)
    assert status.unseen == 300
    assert set((await flags_of(store, box)).values()) == {frozenset()}


async def test_first_unseen(store: Store) -> None:
    box = await inbox_with(store, {"\\Seen"}, set(), {"\\Seen"}, set())
    assert await store.first_unseen(box) == 2
    await store.store_flags(box, [2], "+", SEEN)
    assert await store.first_unseen(box) == 4
    await store.store_flags(box, [4], "+", SEEN)
    assert await store.first_unseen(box) is None
    await store.store_flags(box, [1], "-", SEEN)
    assert await store.first_unseen(box) == 1


async def test_unchangedsince_leaves_modified_messages_alone(store: Store) -> None:
    box = await inbox_with(store, set(), set(), set())
    base = (await store.mailbox_status(box)).highest_modseq
    await store.store_flags(box, [2], "+", frozenset({"\\Flagged"}))  # 2 now newer than base
    updates, modified = await store.store_flags_conditional(box, [1, 2, 3], "+", SEEN, base)
    assert modified == [2]
    assert [u.uid for u in updates] == [1, 3]
    flags = await flags_of(store, box)
    assert flags[1] == SEEN and flags[3] == SEEN and flags[2] == frozenset({"\\Flagged"})
    # 0 fails for every message that exists (RFC 7162 §3.1.3)
    updates, modified = await store.store_flags_conditional(box, [1, 2, 3], "-", SEEN, 0)
    assert updates == [] and modified == [1, 2, 3]
    # a large enough value lets everything through; messages already right are not "modified"
    top = (await store.mailbox_status(box)).highest_modseq
    updates, modified = await store.store_flags_conditional(box, [1, 2], "+", SEEN, top)
    assert modified == [] and [u.uid for u in updates] == [2]
    assert await store.store_flags_conditional(box, [], "+", SEEN, top) == ([], [])
    await recount(store, box)
