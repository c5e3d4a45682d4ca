"""Sender permissions, DKIM keys and the outbound queue (issue 6), on every backend."""

from __future__ import annotations

import pytest

from carteiro.store.errors import AlreadyExists, NotFound
from carteiro.store.interface import DkimKey, RecipientUpdate, Store


async def test_sender_permissions(store: Store) -> None:
    await store.allow_sender("sales@example.org", "alice@example.org")
    await store.allow_sender("sales@example.org", "alice@example.org")  # idempotent
    await store.allow_sender("info@example.org", "alice@example.org")
    await store.allow_sender("sales@example.org", "bob@example.org")
    assert await store.sender_addresses("ALICE@example.org") == [
        "info@example.org",
        "sales@example.org",
    ]
    assert await store.list_senders() == {
        "info@example.org": ["alice@example.org"],
        "sales@example.org": ["alice@example.org", "bob@example.org"],
    }
    await store.disallow_sender("Sales@example.org", "alice@example.org")
    with pytest.raises(NotFound):
        await store.disallow_sender("sales@example.org", "alice@example.org")
    assert await store.sender_addresses("alice@example.org") == ["info@example.org"]
    assert await store.sender_addresses("nobody@example.org") == []


async def test_dkim_keys(store: Store) -> None:
    rsa = DkimKey("example.org", "s1", "rsa-sha256", b"-----PEM rsa-----", 100.0)
    ed = DkimKey("example.org", "s2", "ed25519-sha256", b"-----PEM ed-----", 200.0)
    other = DkimKey("example.net", "s1", "rsa-sha256", b"-----PEM net-----", 50.0)
    for key in (ed, rsa, other):
        await store.add_dkim_key(key)
    with pytest.raises(AlreadyExists):
        await store.add_dkim_key(DkimKey("EXAMPLE.org", "s1", "rsa-sha256", b"x", 1.0))
    assert await store.dkim_keys("example.org") == [rsa, ed]
    assert await store.dkim_keys() == [other, rsa, ed]
    await store.delete_dkim_key("example.org", "s1")
    with pytest.raises(NotFound):
        await store.delete_dkim_key("example.org", "s1")
    assert await store.dkim_keys("example.org") == [ed]


async def test_enqueue_and_read_back(store: Store) -> None:
    data = b"From: a@example.org\r\n\r\nhello\r\n"
    mid = await store.enqueue(
        "a@example.org", ["x@remote.test", "y@remote.test"], data, account="a@example.org", now=10.0
    )
    assert await store.queue_data(mid) == data
    msg = await store.queue_get(mid)
    assert msg is not None
    assert (msg.sender, msg.account, msg.created, msg.size, msg.smtputf8) == (
        "a@example.org",
        "a@example.org",
        10.0,
        len(data),
        False,
    )
    assert [(r.address, r.state, r.attempts, r.next_attempt) for r in msg.recipients] == [
        ("x@remote.test", "queued", 0, 10.0),
        ("y@remote.test", "queued", 0, 10.0),
    ]
    bounce = await store.enqueue("", ["z@remote.test"], b"x", smtputf8=True, now=11.0)
    assert [m.id for m in await store.queue_list()] == [mid, bounce]
    assert (await store.queue_get(bounce)).smtputf8  # type: ignore[union-attr]
    assert await store.queue_get(9999) is None
    with pytest.raises(NotFound):
        await store.queue_data(9999)
    with pytest.raises(ValueError):
        await store.enqueue("a@example.org", [], b"x")


async def test_claim_takes_due_recipients_once(store: Store) -> None:
    first = await store.enqueue("a@example.org", ["x@r.test", "y@r.test"], b"1", now=10.0)
    later = await store.enqueue("a@example.org", ["z@r.test"], b"2", now=50.0)
    claimed = await store.queue_claim(now=20.0, lease=100.0, limit=10)
    assert [m.id for m in claimed] == [first]
    assert [r.address for r in claimed[0].recipients] == ["x@r.test", "y@r.test"]
    # leased: neither another claim nor one after the due time of ``later`` gets them
    again = await store.queue_claim(now=60.0, lease=100.0, limit=10)
    assert [m.id for m in again] == [later]
    assert await store.queue_claim(now=119.0, lease=100.0, limit=10) == []
    # the lease ends: retried (a crashed runner never loses its claim for good)
    assert [m.id for m in await store.queue_claim(now=120.0, lease=5.0, limit=10)] == [first]


async def test_claim_limit_and_partial_recipients(store: Store) -> None:
    ids = [await store.enqueue("a@example.org", ["x@r.test"], b"m", now=1.0) for _ in range(3)]
    assert [m.id for m in await store.queue_claim(now=5.0, lease=10.0, limit=2)] == ids[:2]
    mid = await store.enqueue("a@example.org", ["p@r.test", "q@r.test"], b"m", now=1.0)
    msg = await store.queue_get(mid)
    assert msg is not None
    p, q = msg.recipients
    await store.queue_update([RecipientUpdate(q.id, "queued", 1, 500.0, "451 later", False)])
    claimed = [m for m in await store.queue_claim(now=6.0, lease=10.0, limit=10) if m.id == mid]
    assert [r.address for r in claimed[0].recipients] == ["p@r.test"]


async def test_update_removes_finished_messages(store: Store) -> None:
    mid = await store.enqueue("a@example.org", ["x@r.test", "y@r.test"], b"m", now=1.0)
    msg = await store.queue_get(mid)
    assert msg is not None
    x, y = msg.recipients
    await store.queue_update([RecipientUpdate(x.id, "sent", 1, 0.0, None, False)])
    await store.queue_update([RecipientUpdate(y.id, "queued", 1, 99.0, "451 4.7.1 later", True)])
    msg = await store.queue_get(mid)
    assert msg is not None
    assert [(r.state, r.last_error, r.warned) for r in msg.recipients] == [
        ("sent", None, False),
        ("queued", "451 4.7.1 later", True),
    ]
    await store.queue_update([RecipientUpdate(y.id, "failed", 2, 0.0, "550 no", True)])
    assert await store.queue_get(mid) is None
    assert await store.queue_list() == []
    with pytest.raises(ValueError):
        await store.queue_update([RecipientUpdate(x.id, "bogus", 1, 0.0, None, False)])


async def test_flush_and_delete(store: Store) -> None:
    a = await store.enqueue("a@example.org", ["x@r.test", "y@r.test"], b"m", now=1.0)
    b = await store.enqueue("a@example.org", ["z@r.test"], b"m", now=1.0)
    await store.queue_claim(now=2.0, lease=1000.0, limit=10)
    assert await store.queue_claim(now=3.0, lease=1000.0, limit=10) == []
    assert await store.queue_flush(b) == 1
    assert [m.id for m in await store.queue_claim(now=3.0, lease=1000.0, limit=10)] == [b]
    assert await store.queue_flush() == 3
    await store.queue_delete(a)
    with pytest.raises(NotFound):
        await store.queue_delete(a)
    assert [m.id for m in await store.queue_list()] == [b]
