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


def test_schema_v1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    """A database written by schema 1 (before save dates and thread ids) opens, keeps its
    mail, and reports no save date for the old messages while new ones get one."""
    from carteiro.store.sqlite import schema

    path = tmp_path / "old.sqlite"
    v1 = schema.SCHEMA.replace(
        "    save_date     INTEGER,\n    thread_id     INTEGER NOT NULL DEFAULT 0,\n", ""
    )
    assert v1 != schema.SCHEMA
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in schema._statements(v1):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.close()

    async def run() -> None:
        store = SqliteStore(path)
        await store.open()
        try:
            acc = await store.create_account("old@example.org", "h")
            box = await store.get_mailbox(acc.id, "INBOX")
            assert box is not None
            # a row as schema 1 wrote it: no save_date, no thread_id
            await store.append(box.id, [msg()])
            raw = sqlite3.connect(path)
            raw.execute("UPDATE messages SET save_date = NULL, thread_id = 0")
            raw.commit()
            raw.close()
            await store.append(box.id, [msg(data=b"Message-ID: <n@x>\r\n\r\nnew")])
            info = await store.object_info(box.id, [1, 2])
            assert info[1].save_date is None and info[2].save_date is not None
            assert info[1].thread_id.startswith("M") and info[2].thread_id.startswith("T")
        finally:
            await store.close()
        check = sqlite3.connect(path)
        assert check.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        check.close()

    asyncio.run(run())
