from __future__ import annotations

import pytest
from store_support import blob_count, msg, recount_account

from carteiro.store.errors import AlreadyExists, NotFound
from carteiro.store.interface import Store

DEFAULTS = {
    "INBOX": frozenset(),
    "Sent": frozenset({"\\Sent"}),
    "Drafts": frozenset({"\\Drafts"}),
    "Trash": frozenset({"\\Trash"}),
    "Junk": frozenset({"\\Junk"}),
    "Archive": frozenset({"\\Archive"}),
}


async def test_create_account_has_default_mailboxes(store: Store) -> None:
    account = await store.create_account("Alice@Example.org", "hash1")
    assert account.address == "Alice@Example.org"
    assert account.password_hash == "hash1"
    boxes = await store.list_mailboxes(account.id)
    assert {b.name: b.special_use for b in boxes} == DEFAULTS
    assert all(b.subscribed for b in boxes)
    assert all(b.account_id == account.id for b in boxes)
    assert len({b.uidvalidity for b in boxes}) == len(boxes)
    assert all(b.uidnext == 1 and b.highest_modseq >= 1 for b in boxes)
    assert sorted(await store.list_subscriptions(account.id)) == sorted(DEFAULTS)
    await recount_account(store, account.id)


async def test_address_is_case_insensitive(store: Store) -> None:
    account = await store.create_account("Bob@Example.org", "h")
    assert await store.get_account("bob@example.ORG") == account
    assert await store.get_account("nobody@example.org") is None
    with pytest.raises(AlreadyExists):
        await store.create_account("BOB@example.org", "h2")
    assert await store.list_accounts() == [account]


async def test_set_password(store: Store) -> None:
    await store.create_account("carol@example.org", "old")
    await store.set_password("CAROL@example.org", "new")
    account = await store.get_account("carol@example.org")
    assert account is not None and account.password_hash == "new"
    with pytest.raises(NotFound):
        await store.set_password("nobody@example.org", "x")


async def test_delete_account_removes_all_mail(store: Store) -> None:
    a = await store.create_account("a@example.org", "h")
    b = await store.create_account("b@example.org", "h")
    inbox_a = await store.get_mailbox(a.id, "INBOX")
    inbox_b = await store.get_mailbox(b.id, "INBOX")
    assert inbox_a and inbox_b
    shared = msg()
    await store.append(inbox_a.id, [shared, msg(), msg()])
    await store.append(inbox_b.id, [shared])
    assert await blob_count(store) in (None, 3)
    await store.delete_account("A@example.org")
    assert await store.get_account("a@example.org") is None
    assert await store.list_accounts() == [b]
    assert await store.list_mailboxes(a.id) == []
    with pytest.raises(NotFound):
        await store.mailbox_status(inbox_a.id)
    assert await blob_count(store) in (None, 1)
    (record,) = await store.records(inbox_b.id, [1])
    assert await store.read_blob(record.blob_id) == shared.data
    with pytest.raises(NotFound):
        await store.delete_account("a@example.org")
    await recount_account(store, b.id)


async def test_accounts_are_isolated(store: Store) -> None:
    a = await store.create_account("a@example.org", "h")
    b = await store.create_account("b@example.org", "h")
    await store.create_mailbox(a.id, "Only/A")
    assert await store.get_mailbox(b.id, "Only/A") is None
    assert {m.name for m in await store.list_mailboxes(b.id)} == set(DEFAULTS)
    await store.set_subscribed(a.id, "Ghost", True)
    assert "Ghost" not in await store.list_subscriptions(b.id)
