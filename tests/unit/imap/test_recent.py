"""\\Recent claims decided in memory for one process (carteiro.imap.recent), against a
real SQLite store: exclusive, saved in the background, exact for STATUS once settled,
kept across a restart."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest

from carteiro.imap import recent as recent_module
from carteiro.imap.recent import RecentClaims
from carteiro.store.interface import NewMessage
from carteiro.store.sqlite import SqliteStore

DATE = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def _msgs(n: int, start: int = 0) -> list[NewMessage]:
    return [
        NewMessage(b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i), b"m", frozenset(), DATE)
        for i in range(start, start + n)
    ]


async def _open(path: Path) -> tuple[SqliteStore, int, int]:
    store = SqliteStore(path)
    await store.open()
    acc = await store.get_account("u@x.org") or await store.create_account("u@x.org", "h")
    box = await store.get_mailbox(acc.id, "INBOX")
    assert box is not None
    return store, acc.id, box.id


def test_claims_are_exclusive_saved_and_kept_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"

    async def first_run() -> None:
        store, _, box = await _open(path)
        try:
            await store.append(box, _msgs(5))
            claims = RecentClaims(store)
            assert await claims.claim(box, 5) == 1  # the store decides the first claim
            assert await claims.claim(box, 5) is None  # another session: nothing left
            await store.append(box, _msgs(3, 5))
            assert (await store.mailbox_status(box)).recent == 3
            assert await claims.claim(box, 7) == 6  # in memory: UIDs 6 and 7
            assert await claims.claim(box, 8) == 8
            assert await claims.claim(box, 8) is None
            await claims.settled(box)
            assert (await store.mailbox_status(box)).recent == 0
            await store.append(box, _msgs(2, 8))
            assert await claims.claim(box, 10) == 9
            await claims.flush()  # what shutdown does
        finally:
            await store.close()

    async def second_run() -> None:
        store, _, box = await _open(path)
        try:
            assert (await store.mailbox_status(box)).recent == 0
            claims = RecentClaims(store)
            assert await claims.claim(box, 10) is None
        finally:
            await store.close()

    asyncio.run(first_run())
    asyncio.run(second_run())


def test_concurrent_claims_give_each_message_to_one_session(tmp_path: Path) -> None:
    async def run() -> None:
        store, _, box = await _open(tmp_path / "c.sqlite")
        try:
            await store.append(box, _msgs(4))
            claims = RecentClaims(store)
            # two first claims race to the store, then many in memory
            got = await asyncio.gather(claims.claim(box, 2), claims.claim(box, 4))
            owned = [
                set(range(f, n + 1)) if f is not None else set()
                for f, n in zip(got, (2, 4), strict=True)
            ]
            assert owned[0] | owned[1] == {1, 2, 3, 4} and not owned[0] & owned[1]
            for i in range(20):
                await store.append(box, _msgs(1, 100 + i))
                newest = 5 + i
                results = await asyncio.gather(*(claims.claim(box, newest) for _ in range(5)))
                assert sorted(results, key=lambda r: r or 0) == [None] * 4 + [newest]
            await claims.settled(box)
            assert (await store.mailbox_status(box)).recent == 0
        finally:
            await store.close()

    asyncio.run(run())


def test_deleted_mailbox_and_forgotten_markers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pending claim on a mailbox deleted meanwhile is dropped quietly; a mailbox
    forgotten (too many remembered) asks the store again without giving a message
    twice, even while its last claim is unsaved."""
    monkeypatch.setattr(recent_module, "MAX_MAILBOXES", 1)

    async def run() -> None:
        store, acc, box = await _open(tmp_path / "d.sqlite")
        try:
            other = await store.create_mailbox(acc, "Other")
            await store.append(box, _msgs(3))
            await store.append(other.id, _msgs(2, 10))
            claims = RecentClaims(store)
            assert await claims.claim(box, 2) == 1
            await store.append(box, _msgs(1, 20))
            assert await claims.claim(box, 4) == 3  # pending in memory
            assert await claims.claim(other.id, 2) == 1  # forgets INBOX's marker
            assert await claims.claim(box, 4) is None  # asks the store, knows the pending
            await claims.settled(box)
            assert (await store.mailbox_status(box)).recent == 0
            await store.append(other.id, _msgs(1, 30))
            assert await claims.claim(other.id, 3) == 3
            await store.delete_mailbox(acc, "Other")
            await claims.flush()  # the save finds no mailbox: no error, marker dropped
            assert await claims.claim(box, 4) is None
        finally:
            await store.close()

    asyncio.run(run())


def test_claims_gather_into_one_write_and_settled_does_not_wait_for_the_delay(
    tmp_path: Path,
) -> None:
    """Claims made within the delay go to the store in one batch (not one commit per
    APPEND); a STATUS that needs the store's count gets it at once, not after the
    delay; left alone, the claims are saved when the delay ends."""

    async def run() -> None:
        store, acc, box = await _open(tmp_path / "g.sqlite")
        try:
            others = [(await store.create_mailbox(acc, f"B{i}")).id for i in range(3)]
            boxes = [box, *others]
            for b in boxes:
                await store.append(b, _msgs(2))
            claims = RecentClaims(store, save_delay=60)
            for b in boxes:  # first claims: the store decides, one write each
                assert await claims.claim(b, 1) == 1
            before = store._writer.batches
            for b in boxes:
                assert await claims.claim(b, 2) == 2  # in memory, pending
            await asyncio.sleep(0.05)
            assert store._writer.batches == before  # nothing written yet
            assert (await store.mailbox_status(box)).recent == 1
            t0 = asyncio.get_running_loop().time()
            await claims.settled(box)
            assert asyncio.get_running_loop().time() - t0 < 10  # not the 60 s delay
            assert store._writer.batches == before + 1  # every mailbox in one batch
            for b in boxes:
                assert (await store.mailbox_status(b)).recent == 0

            quick = RecentClaims(store, save_delay=0.05)
            for b in boxes:
                await store.append(b, _msgs(2, 10))
                assert await quick.claim(b, 3) == 3  # the store decides the first claim
                assert await quick.claim(b, 4) == 4  # pending in memory
            assert (await store.mailbox_status(box)).recent == 1
            await asyncio.sleep(0.5)
            for b in boxes:
                assert (await store.mailbox_status(b)).recent == 0  # saved after the delay
        finally:
            await store.close()

    asyncio.run(run())
