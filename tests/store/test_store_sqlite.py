"""SQLite-specific checks (the rest of tests/store is backend-independent)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from store_support import msg, recount

from carteiro.store.sqlite import SqliteStore


@pytest.fixture
def sqlite_store(tmp_path: Path, loop: asyncio.AbstractEventLoop):
    store = SqliteStore(tmp_path / "db.sqlite")
    loop.run_until_complete(store.open())
    yield store
    loop.run_until_complete(store.close())


async def test_wal_and_schema(sqlite_store: SqliteStore) -> None:
    conn = sqlite3.connect(sqlite_store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"messages", "blobs", "expunged", "mailboxes", "messages_modseq"} <= tables
    finally:
        conn.close()


async def test_group_commit_batches_concurrent_writes(sqlite_store: SqliteStore) -> None:
    acc = await sqlite_store.create_account("u@example.org", "h")
    box = await sqlite_store.get_mailbox(acc.id, "INBOX")
    assert box is not None
    commits0, ops0 = sqlite_store.writer_stats
    await asyncio.gather(*(sqlite_store.append(box.id, [msg()]) for _ in range(200)))
    commits, ops = sqlite_store.writer_stats
    assert ops - ops0 == 200
    assert commits - commits0 < 200  # several operations shared a commit
    await recount(sqlite_store, box.id)


async def test_cancelled_callers_do_not_break_the_writer(sqlite_store: SqliteStore) -> None:
    acc = await sqlite_store.create_account("u@example.org", "h")
    box = await sqlite_store.get_mailbox(acc.id, "INBOX")
    assert box is not None
    tasks = [asyncio.ensure_future(sqlite_store.append(box.id, [msg()])) for _ in range(50)]
    await asyncio.sleep(0)
    for task in tasks[::2]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    result = await sqlite_store.append(box.id, [msg()])
    uids = await sqlite_store.uids(box.id)
    assert uids[-1] == result.dest_uids[0]
    assert len(uids) >= 26  # the uncancelled ones (cancelled ones may or may not land)
    await recount(sqlite_store, box.id)


async def test_closed_store_refuses_work(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    with pytest.raises(RuntimeError):
        await store.create_account("u@example.org", "h")
    await store.open()
    await store.create_account("u@example.org", "h")
    await store.close()
    with pytest.raises(RuntimeError):
        await store.list_accounts()
    with pytest.raises(RuntimeError):
        await store.create_account("v@example.org", "h")
