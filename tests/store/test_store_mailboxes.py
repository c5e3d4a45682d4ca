from __future__ import annotations

import pytest
from store_support import Backend, blob_count, msg, recount, recount_account

from carteiro.store.errors import AlreadyExists, InvalidName, NotAllowed, NotFound
from carteiro.store.interface import Account, Store


async def account(store: Store) -> Account:
    return await store.create_account("user@example.org", "h")


async def names(store: Store, account_id: int) -> set[str]:
    return {m.name for m in await store.list_mailboxes(account_id)}


async def test_create_mailbox_creates_parents(store: Store) -> None:
    acc = await account(store)
    info = await store.create_mailbox(acc.id, "Projects/2024/Q1", ["\\Flagged"])
    assert info.name == "Projects/2024/Q1"
    assert info.special_use == frozenset({"\\Flagged"})
    assert info.uidnext == 1 and not info.subscribed
    assert {"Projects", "Projects/2024", "Projects/2024/Q1"} <= await names(store, acc.id)
    parent = await store.get_mailbox(acc.id, "Projects")
    assert parent is not None and parent.special_use == frozenset()
    assert await store.get_mailbox(acc.id, "Projects/2024/Q1") == info
    assert await store.get_mailbox(acc.id, "Nope") is None
    boxes = await store.list_mailboxes(acc.id)
    assert len({b.uidvalidity for b in boxes}) == len(boxes)
    # creating an inferior of an existing mailbox is fine; the same name is not
    await store.create_mailbox(acc.id, "Projects/2025")
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(acc.id, "Projects/2024")
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(acc.id, "INBOX")


async def test_create_mailbox_trailing_delimiter(store: Store) -> None:
    acc = await account(store)
    info = await store.create_mailbox(acc.id, "Lists/")
    assert info.name == "Lists"


@pytest.mark.parametrize("name", ["", "/", "a//b", "/a", "a/*", "50%", "a\x00b", "tab\tx"])
async def test_create_mailbox_invalid_names(store: Store, name: str) -> None:
    acc = await account(store)
    before = await names(store, acc.id)
    with pytest.raises(InvalidName):
        await store.create_mailbox(acc.id, name)
    assert await names(store, acc.id) == before


async def test_create_mailbox_unknown_account(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.create_mailbox(12345, "X")


async def test_recreated_mailbox_gets_new_larger_uidvalidity(store: Store) -> None:
    acc = await account(store)
    first = await store.create_mailbox(acc.id, "Box")
    await store.append(first.id, [msg(), msg()])
    await store.delete_mailbox(acc.id, "Box")
    second = await store.create_mailbox(acc.id, "Box")
    assert second.uidvalidity > first.uidvalidity
    assert second.id != first.id or second.uidvalidity != first.uidvalidity
    assert await store.uids(second.id) == []


async def test_uidvalidity_increases_across_restart(backend: Backend, store: Store) -> None:
    acc = await account(store)
    first = await store.create_mailbox(acc.id, "Box")
    await store.delete_mailbox(acc.id, "Box")
    await store.close()
    reopened = await backend.open()
    try:
        second = await reopened.create_mailbox(acc.id, "Box")
        assert second.uidvalidity > first.uidvalidity
    finally:
        await reopened.close()
    await store.open()  # the fixture closes it


async def test_delete_mailbox_removes_inferiors_only(store: Store) -> None:
    acc = await account(store)
    for name in ("a/b/c", "a/d", "ab", "a0", "b/a"):
        await store.create_mailbox(acc.id, name)
    inner = await store.get_mailbox(acc.id, "a/b/c")
    assert inner is not None
    await store.append(inner.id, [msg(), msg()])
    blobs = await blob_count(store)
    await store.delete_mailbox(acc.id, "a")
    remaining = await names(store, acc.id)
    assert not {"a", "a/b", "a/b/c", "a/d"} & remaining
    assert {"ab", "a0", "b", "b/a", "INBOX"} <= remaining
    with pytest.raises(NotFound):
        await store.mailbox_status(inner.id)
    if blobs is not None:
        assert await blob_count(store) == blobs - 2
    with pytest.raises(NotFound):
        await store.delete_mailbox(acc.id, "a")
    await recount_account(store, acc.id)


async def test_delete_inbox_not_allowed(store: Store) -> None:
    acc = await account(store)
    with pytest.raises(NotAllowed):
        await store.delete_mailbox(acc.id, "INBOX")
    await store.create_mailbox(acc.id, "INBOX/Child")
    await store.delete_mailbox(acc.id, "INBOX/Child")
    assert await store.get_mailbox(acc.id, "INBOX") is not None
    assert await store.get_mailbox(acc.id, "INBOX/Child") is None


async def test_rename_moves_hierarchy(store: Store) -> None:
    acc = await account(store)
    for name in ("a/b/c", "ab", "a0"):
        await store.create_mailbox(acc.id, name)
    before = {m.name: m for m in await store.list_mailboxes(acc.id)}
    inner = before["a/b"]
    await store.append(inner.id, [msg(flags={"\\Seen"}), msg()])
    await store.set_subscribed(acc.id, "a/b", True)
    await store.rename_mailbox(acc.id, "a", "x/y")
    after = {m.name: m for m in await store.list_mailboxes(acc.id)}
    assert not {"a", "a/b", "a/b/c"} & set(after)
    assert {"x", "x/y", "x/y/b", "x/y/b/c", "ab", "a0"} <= set(after)
    # same mailboxes, same UIDVALIDITY and content, new names
    assert after["x/y"].uidvalidity == before["a"].uidvalidity
    assert after["x/y/b"].id == inner.id
    assert after["x/y/b"].uidvalidity == inner.uidvalidity
    assert await store.uids(inner.id) == [1, 2]
    # subscriptions follow the mailbox
    subs = await store.list_subscriptions(acc.id)
    assert "x/y/b" in subs and "a/b" not in subs
    assert after["x/y/b"].subscribed
    await recount_account(store, acc.id)


async def test_rename_errors(store: Store) -> None:
    acc = await account(store)
    await store.create_mailbox(acc.id, "a/b")
    await store.create_mailbox(acc.id, "c")
    with pytest.raises(NotFound):
        await store.rename_mailbox(acc.id, "missing", "d")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(acc.id, "a", "c")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(acc.id, "c", "a/b")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(acc.id, "c", "INBOX")
    with pytest.raises(NotAllowed):
        await store.rename_mailbox(acc.id, "a", "a/b/z")
    with pytest.raises(InvalidName):
        await store.rename_mailbox(acc.id, "c", "bad//name")
    assert {"a", "a/b", "c"} <= await names(store, acc.id)


async def test_rename_inbox_moves_messages(store: Store) -> None:
    acc = await account(store)
    inbox = await store.get_mailbox(acc.id, "INBOX")
    assert inbox is not None
    await store.create_mailbox(acc.id, "INBOX/Sub")
    await store.append(inbox.id, [msg(flags={"\\Seen", "Work"}), msg(), msg(), msg()])
    await store.store_flags(inbox.id, [2], "+", frozenset({"\\Deleted"}))
    await store.expunge(inbox.id)  # uids now 1, 3, 4
    old_records = await store.records(inbox.id, [1, 3, 4])
    status_before = await store.mailbox_status(inbox.id)
    await store.rename_mailbox(acc.id, "INBOX", "Old/Mail")
    moved = await store.get_mailbox(acc.id, "Old/Mail")
    assert moved is not None and moved.id != inbox.id
    assert moved.uidvalidity not in (inbox.uidvalidity,)
    new_records = await store.records(moved.id, [1, 2, 3])
    assert [r.uid for r in new_records] == [1, 2, 3]
    assert [r.flags for r in new_records] == [r.flags for r in old_records]
    assert [r.blob_id for r in new_records] == [r.blob_id for r in old_records]
    assert [r.internal_date for r in new_records] == [r.internal_date for r in old_records]
    # INBOX stays, empty, same incarnation: UIDs are not reused
    inbox_after = await store.get_mailbox(acc.id, "INBOX")
    assert inbox_after is not None and inbox_after.uidvalidity == inbox.uidvalidity
    status = await recount(store, inbox.id)
    assert status.messages == 0
    assert status.uidnext == status_before.uidnext
    changes = await store.changes_since(inbox.id, status_before.highest_modseq)
    assert changes.expunged == [1, 3, 4]
    assert await store.get_mailbox(acc.id, "INBOX/Sub") is not None
    assert await store.get_mailbox(acc.id, "Old") is not None
    appended = await store.append(inbox.id, [msg()])
    assert appended.dest_uids == [status_before.uidnext]
    await recount_account(store, acc.id)


async def test_subscriptions_by_name(store: Store) -> None:
    acc = await account(store)
    await store.set_subscribed(acc.id, "Does/Not/Exist", True)
    await store.set_subscribed(acc.id, "Does/Not/Exist", True)  # idempotent
    await store.set_subscribed(acc.id, "Junk", False)
    await store.set_subscribed(acc.id, "Junk", False)
    subs = await store.list_subscriptions(acc.id)
    assert "Does/Not/Exist" in subs and "Junk" not in subs
    assert subs.count("Does/Not/Exist") == 1
    junk = await store.get_mailbox(acc.id, "Junk")
    assert junk is not None and not junk.subscribed
    # deleting a mailbox does not unsubscribe it (RFC 9051 §6.3.9)
    await store.create_mailbox(acc.id, "Temp")
    await store.set_subscribed(acc.id, "Temp", True)
    await store.delete_mailbox(acc.id, "Temp")
    assert "Temp" in await store.list_subscriptions(acc.id)
    created = await store.create_mailbox(acc.id, "Does/Not/Exist")
    assert created.subscribed


async def test_mailbox_operations_on_missing_mailbox(store: Store) -> None:
    acc = await account(store)
    box = await store.create_mailbox(acc.id, "Gone")
    inbox = await store.get_mailbox(acc.id, "INBOX")
    assert inbox is not None
    await store.append(inbox.id, [msg()])
    await store.delete_mailbox(acc.id, "Gone")
    missing = box.id
    with pytest.raises(NotFound):
        await store.mailbox_status(missing)
    with pytest.raises(NotFound):
        await store.append(missing, [msg()])
    with pytest.raises(NotFound):
        await store.store_flags(missing, [1], "+", frozenset({"\\Seen"}))
    with pytest.raises(NotFound):
        await store.expunge(missing)
    with pytest.raises(NotFound):
        await store.changes_since(missing, 0)
    with pytest.raises(NotFound):
        await store.claim_recent(missing)
    with pytest.raises(NotFound):
        await store.first_unseen(missing)
    with pytest.raises(NotFound):
        await store.mailbox_keywords(missing)
    with pytest.raises(NotFound):
        await store.copy(inbox.id, [1], missing)
    with pytest.raises(NotFound):
        await store.move(inbox.id, [1], missing)
    with pytest.raises(NotFound):
        await store.copy(missing, [1], inbox.id)
    assert await store.uids(inbox.id) == [1]
    await recount_account(store, acc.id)
