from __future__ import annotations

import asyncio
import threading

import pytest
from store_support import Backend, msg, recount

from carteiro.store.errors import NotFound
from carteiro.store.interface import Store


async def inbox(store: Store, address: str = "user@example.org") -> tuple[int, int]:
    acc = await store.create_account(address, "h")
    box = await store.get_mailbox(acc.id, "INBOX")
    assert box is not None
    return acc.id, box.id


async def test_changes_since_reports_exactly(store: Store) -> None:
    _, box = await inbox(store)
    start = (await store.mailbox_status(box)).highest_modseq
    nothing = await store.changes_since(box, start)
    assert (nothing.updated, nothing.expunged, nothing.highest_modseq) == ([], [], start)
    await store.append(box, [msg(), msg(), msg(), msg()])
    after_append = await store.changes_since(box, start)
    assert [u.uid for u in after_append.updated] == [1, 2, 3, 4]
    assert after_append.expunged == []
    m1 = after_append.highest_modseq
    assert m1 > start
    await store.store_flags(box, [2, 4], "+", frozenset({"\\Deleted"}))
    flagged = await store.changes_since(box, m1)
    assert [(u.uid, u.flags) for u in flagged.updated] == [
        (2, frozenset({"\\Deleted"})),
        (4, frozenset({"\\Deleted"})),
    ]
    m2 = flagged.highest_modseq
    assert m2 > m1 and all(u.modseq == m2 for u in flagged.updated)
    await store.expunge(box, [4])
    expunged = await store.changes_since(box, m2)
    assert expunged.updated == [] and expunged.expunged == [4]
    m3 = expunged.highest_modseq
    assert m3 > m2
    combined = await store.changes_since(box, m1)
    assert [u.uid for u in combined.updated] == [2]
    assert combined.expunged == [4]
    everything = await store.changes_since(box, 0)
    assert [u.uid for u in everything.updated] == [1, 2, 3]
    assert everything.expunged == [4]
    assert everything.uidvalidity == (await store.mailbox_status(box)).uidvalidity
    assert (await store.changes_since(box, m3)).updated == []
    assert (await store.changes_since(box, m3 + 100)).highest_modseq == m3


async def test_modseq_strictly_increases_with_every_change(store: Store) -> None:
    acc, box = await inbox(store)
    sent = await store.get_mailbox(acc, "Sent")
    assert sent is not None
    seen: list[int] = [(await store.mailbox_status(box)).highest_modseq]

    async def step() -> None:
        now = (await store.mailbox_status(box)).highest_modseq
        assert now > seen[-1]
        seen.append(now)

    await store.append(box, [msg()])
    await step()
    await store.store_flags(box, [1], "+", frozenset({"\\Seen"}))
    await step()
    await store.store_flags(box, [1], "+", frozenset({"kw"}))
    await step()
    await store.copy(sent.id, [], box)
    assert (await store.mailbox_status(box)).highest_modseq == seen[-1]
    await store.append(sent.id, [msg()])
    await store.copy(sent.id, [1], box)
    await step()
    await store.store_flags(box, [1], "+", frozenset({"\\Deleted"}))
    await step()
    await store.expunge(box)
    await step()
    await store.move(box, [2], sent.id)
    await step()


async def test_claim_recent(store: Store) -> None:
    _, box = await inbox(store)
    await store.append(box, [msg(), msg()])
    assert (await store.mailbox_status(box)).recent == 2
    assert await store.claim_recent(box) == 1  # first session: UIDs >= 1 are \Recent
    assert (await store.mailbox_status(box)).recent == 0
    assert await store.claim_recent(box) == 3  # second session: none
    await store.append(box, [msg()])
    status = await recount(store, box)
    assert status.recent == 1
    claims = await asyncio.gather(*(store.claim_recent(box) for _ in range(5)))
    assert sorted(claims) == [3, 4, 4, 4, 4]  # exactly one session got UID 3
    assert (await store.mailbox_status(box)).recent == 0


async def test_recent_survives_restart(backend: Backend, store: Store) -> None:
    _, box = await inbox(store)
    await store.append(box, [msg(), msg()])
    await store.claim_recent(box)
    await store.append(box, [msg()])
    await store.close()
    reopened = await backend.open()
    try:
        assert (await reopened.mailbox_status(box)).recent == 1
        assert await reopened.claim_recent(box) == 3
    finally:
        await reopened.close()
    await store.open()


async def test_notifications_reach_the_right_account(store: Store) -> None:
    a, box_a = await inbox(store, "a@example.org")
    b, box_b = await inbox(store, "b@example.org")
    got_a: list[tuple[int, int | None]] = []
    got_b: list[tuple[int, int | None]] = []
    threads: set[int] = set()

    def listener_a(account_id: int, mailbox_id: int | None) -> None:
        threads.add(threading.get_ident())
        got_a.append((account_id, mailbox_id))

    def broken(account_id: int, mailbox_id: int | None) -> None:
        raise RuntimeError("listeners cannot break the store")

    unsubscribe_a = store.subscribe(a, listener_a)
    store.subscribe(a, broken)
    store.subscribe(b, lambda acc, mbox: got_b.append((acc, mbox)))

    async def settle() -> None:
        for _ in range(20):  # listeners run via call_soon_threadsafe after the commit
            await asyncio.sleep(0)

    await store.append(box_a, [msg()])
    await settle()
    assert got_a == [(a, box_a)] and got_b == []
    assert threads == {threading.get_ident()}  # on the event loop's thread
    await store.store_flags(box_a, [1], "+", frozenset({"\\Deleted"}))
    await settle()
    assert got_a[-1] == (a, box_a)
    n = len(got_a)
    await store.store_flags(box_a, [1], "+", frozenset({"\\Deleted"}))  # no change
    await settle()
    assert len(got_a) == n
    await store.expunge(box_a)
    await settle()
    assert got_a[-1] == (a, box_a)
    await store.create_mailbox(a, "New")
    await settle()
    assert got_a[-1] == (a, None)
    await store.rename_mailbox(a, "New", "Newer")
    await settle()
    assert got_a[-1] == (a, None)
    await store.set_subscribed(a, "Newer", True)
    await settle()
    assert got_a[-1] == (a, None)
    await store.delete_mailbox(a, "Newer")
    await settle()
    assert (a, None) in got_a[n + 4 :]
    assert got_b == []
    await store.append(box_b, [msg()])
    await settle()
    assert got_b == [(b, box_b)]
    unsubscribe_a()
    unsubscribe_a()  # idempotent
    n = len(got_a)
    await store.append(box_a, [msg()])
    await settle()
    assert len(got_a) == n
    await recount(store, box_a)


async def test_copy_notifies_destination_and_move_both(store: Store) -> None:
    a, box = await inbox(store)
    trash = await store.get_mailbox(a, "Trash")
    assert trash is not None
    await store.append(box, [msg(), msg()])
    got: list[int | None] = []
    store.subscribe(a, lambda acc, mbox: got.append(mbox))

    async def settle() -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    await store.copy(box, [1], trash.id)
    await settle()
    assert got == [trash.id]
    got.clear()
    await store.move(box, [2], trash.id)
    await settle()
    assert sorted(got, key=str) == sorted([box, trash.id], key=str)


async def test_expunged_since(store: Store) -> None:
    acc = await store.create_account("vanish@example.org", "h")
    box = await store.get_mailbox(acc.id, "INBOX")
    assert box is not None
    await store.append(box.id, [msg(data=b"Subject: %d\r\n\r\nx" % i) for i in range(4)])
    mark = (await store.mailbox_status(box.id)).highest_modseq
    await store.store_flags(box.id, [1, 3], "+", frozenset({"\\Deleted"}))
    await store.expunge(box.id)
    assert await store.expunged_since(box.id, mark) == [1, 3]
    assert (
        await store.expunged_since(box.id, (await store.mailbox_status(box.id)).highest_modseq)
        == []
    )
    with pytest.raises(NotFound):
        await store.expunged_since(10**9, 0)
