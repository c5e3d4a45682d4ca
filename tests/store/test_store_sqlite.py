"""SQLite-specific checks (the rest of tests/store is backend-independent)."""

from __future__ import annotations

import asyncio
import datetime
import re
import sqlite3
from pathlib import Path

import pytest
from store_support import msg, recount

from carteiro.store.errors import QuotaExceeded, StoreUnavailable
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


def old_schema(version: int) -> str:
    """The schema script as an older version wrote it."""
    from carteiro.store.sqlite import schema

    script = schema.SCHEMA
    if version < 9:  # the flag indexes held (mailbox_id, uid) only
        v8 = re.sub(
            r"\(mailbox_id, uid, modseq, flags\)\n +WHERE", "(mailbox_id, uid) WHERE", script
        )
        assert v8.count("(mailbox_id, uid) WHERE") == 3
        script = v8
    if version < 8:  # no partial indexes on flags
        lines = script.splitlines(keepends=True)
        v7 = "".join(ln for ln in lines if "ON messages (mailbox_id, uid) WHERE" not in ln)
        assert v7.count("\n") == script.count("\n") - 3
        script = v7
    if version < 4:  # no credentials beyond the password hash
        v3 = script.replace(
            "    quota_messages INTEGER,\n    scram          TEXT,\n    totp_secret    TEXT,\n"
            "    totp_last_step INTEGER,\n    networks       TEXT NOT NULL DEFAULT '',\n"
            "    pop3_retrieved TEXT,\n    pop3_new_only  INTEGER\n",
            "    quota_messages INTEGER\n",
        )
        for table in ("app_passwords", "domains", "aliases"):
            start = v3.index(f"CREATE TABLE IF NOT EXISTS {table}")
            v3 = v3[:start] + v3[v3.index(";", start) + 1 :]
        assert v3 != script
        script = v3
    if version < 3:  # no quota limits
        v2 = script.replace(
            "    password_hash TEXT NOT NULL,\n    quota_storage  INTEGER,\n"
            "    quota_messages INTEGER\n",
            "    password_hash TEXT NOT NULL\n",
        )
        assert v2 != script
        script = v2
    if version < 2:  # no save dates and thread ids
        v1 = script.replace(
            "    save_date     INTEGER,\n    thread_id     INTEGER NOT NULL DEFAULT 0,\n", ""
        )
        assert v1 != script
        script = v1
    return script


def write_old_schema(path: Path, version: int) -> None:
    from carteiro.store.sqlite import schema

    conn = sqlite3.connect(path, isolation_level=None)
    for statement in schema._statements(old_schema(version)):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


def test_schema_v1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    """A database written by schema 1 (before save dates and thread ids) opens, keeps its
    mail, and reports no save date for the old messages while new ones get one."""
    from carteiro.store.sqlite import schema

    path = tmp_path / "old.sqlite"
    write_old_schema(path, 1)

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
            # no Message-ID given to the store: each message is its own thread (its EMAILID)
            assert info[1].thread_id == info[1].email_id
            assert info[2].thread_id == info[2].email_id
        finally:
            await store.close()
        check = sqlite3.connect(path)
        assert check.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        check.close()

    asyncio.run(run())


def test_schema_v2_database_is_upgraded_in_place(tmp_path: Path) -> None:
    """A database written by schema 2 (before quotas) opens with its mail, unlimited
    accounts and exact usage at once (no backfill), and takes limits afterwards."""
    from carteiro.store.interface import Quota
    from carteiro.store.sqlite import schema

    path = tmp_path / "v2.sqlite"
    write_old_schema(path, 2)
    data = [b"Subject: a\r\n\r\none\r\n", b"Subject: b\r\n\r\ntwo, longer\r\n"]

    async def fill() -> None:
        # write mail with schema 2's columns only, as a version-2 program would have
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("INSERT INTO accounts (id, address, password_hash) VALUES (1, 'o@x.org', 'h')")
        conn.execute(
            "INSERT INTO mailboxes (id, account_id, name, uidvalidity) VALUES (1, 1, 'INBOX', 7)"
        )
        for uid, body in enumerate(data, 1):
            conn.execute(
                "INSERT INTO blobs (sha256, size, meta, data) VALUES (?, ?, x'', ?)",
                (bytes([uid]) * 32, len(body), body),
            )
            conn.execute(
                "INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, tz_offset,"
                " size, blob_id) VALUES (1, ?, 1, 0, 0, 0, ?, ?)",
                (uid, len(body), uid),
            )
        conn.execute("UPDATE mailboxes SET uidnext = 3, highest_modseq = 2")
        conn.close()

    async def run() -> None:
        await fill()
        store = SqliteStore(path)
        await store.open()
        try:
            assert await store.quota(1) == Quota(None, sum(map(len, data)), None, 2)
            assert await store.check() == []
            await store.set_quota("o@x.org", None, 2)
            with pytest.raises(QuotaExceeded):
                await store.append(1, [msg()])
        finally:
            await store.close()
        reopened = SqliteStore(path)
        await reopened.open()  # already at the current version: no second upgrade
        try:
            assert await reopened.quota(1) == Quota(None, sum(map(len, data)), 2, 2)
        finally:
            await reopened.close()
        check = sqlite3.connect(path)
        assert check.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        check.close()

    asyncio.run(run())


def test_failed_upgrade_leaves_the_old_database(tmp_path: Path) -> None:
    """The upgrade is one transaction: if it fails, the version-2 file is as it was."""
    path = tmp_path / "v2.sqlite"
    write_old_schema(path, 2)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("ALTER TABLE accounts ADD COLUMN quota_messages TEXT")  # makes step 3 fail
    conn.close()

    async def run() -> None:
        store = SqliteStore(path)
        with pytest.raises(StoreUnavailable):
            await store.open()

    asyncio.run(run())
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 2
    columns = [r[1] for r in check.execute("PRAGMA table_info(accounts)")]
    assert "quota_storage" not in columns
    check.close()


def test_schema_v3_database_gets_credential_columns(tmp_path: Path) -> None:
    """A version-3 account keeps its password and gains empty credentials."""
    path = tmp_path / "v3.sqlite"
    write_old_schema(path, 3)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO accounts (id, address, password_hash) VALUES (1, 'o@x.org', 'h')")
    conn.close()

    async def run() -> None:
        store = SqliteStore(path)
        await store.open()
        try:
            creds = await store.credentials("o@x.org")
            assert creds is not None and creds.account.password_hash == "h"
            assert (creds.scram, creds.totp_secret, creds.networks) == (None, None, ())
            await store.add_app_password("o@x.org", "Phone", b"x" * 32)
            assert [a.name for a in await store.list_app_passwords("o@x.org")] == ["Phone"]
        finally:
            await store.close()

    asyncio.run(run())


def test_schema_v5_database_gets_the_search_index(tmp_path: Path) -> None:
    """A database from before the full-text index opens at once; its mail is indexed in
    the background and searched completely meanwhile."""
    import time

    from carteiro.message.meta import analyse
    from carteiro.store.interface import TextMatches
    from carteiro.store.sqlite import schema

    path = tmp_path / "v5.sqlite"
    write_old_schema(path, 5)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO accounts (id, address, password_hash) VALUES (1, 'o@x.org', 'h')")
    conn.execute(
        "INSERT INTO mailboxes (id, account_id, name, uidvalidity) VALUES (1, 1, 'INBOX', 7)"
    )
    for uid in range(1, 201):
        body = b"Subject: old %d\r\n\r\nan old letter, number %d\r\n" % (uid, uid)
        conn.execute(
            "INSERT INTO blobs (sha256, size, meta, data) VALUES (?, ?, ?, ?)",
            (uid.to_bytes(32, "big"), len(body), analyse(body).to_bytes(), body),
        )
        conn.execute(
            "INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, tz_offset,"
            " size, blob_id) VALUES (1, ?, 1, 0, 0, 0, ?, ?)",
            (uid, len(body), uid),
        )
    conn.execute("UPDATE mailboxes SET uidnext = 201, highest_modseq = 2")
    conn.close()

    async def run() -> None:
        store = SqliteStore(path)
        await store.open()
        try:
            answer = await store.search_text(1, "NUMBER 17", False)
            assert answer is not None
            want = [17, *range(170, 180)]
            assert set(want) <= set(answer.matches) | set(answer.unindexed)
            deadline = time.monotonic() + 30
            while await store.index_backlog():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.005)
            assert await store.search_text(1, "NUMBER 17", False) == TextMatches(want, [])
            assert await store.search_text(1, "old 17", False) == TextMatches([], [])
            assert await store.indexed_count() == 200
            assert await store.check() == []
        finally:
            await store.close()
        check = sqlite3.connect(path)
        assert check.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        check.close()

    asyncio.run(run())


def test_search_index_text_extraction() -> None:
    """What the index stores is exactly what the scan searches; what it cannot store
    exactly is left out (and scanned)."""
    import base64

    from carteiro.imap.search_eval import Content
    from carteiro.message.meta import analyse
    from carteiro.store.sqlite import fulltext

    raw = (
        b"Subject: =?utf-8?q?Stra=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode("ΣΊΣΥΦΟΣ ﬁne".encode())
    )
    meta = analyse(raw)
    content = Content(raw, meta)
    assert fulltext.extract(raw, meta.to_bytes()) == (content.header(), content.body())
    assert content.header().startswith("subject: strasse\n")
    assert content.body() == "σίσυφοσ fine"  # full folding: final sigma too
    assert (
        fulltext.extract(
            b"Subject: x\r\n\r\na\x00b\r\n", analyse(b"Subject: x\r\n\r\na\x00b\r\n").to_bytes()
        )
        is None
    )
    assert fulltext.extract(raw, b"not metadata") is None
    packed = fulltext._pack("h\u00e9ader", "body\n\u65e5")
    assert fulltext._unpack(packed) == ("h\u00e9ader", "body\n\u65e5")
    assert fulltext._terms("abcab") == ["abc", "bca", "cab"]
    assert len(fulltext._terms("x" * 10 + "".join(chr(0x4E00 + i) for i in range(100)))) == 24


def test_schema_v6_index_is_rebuilt_for_part_headers(tmp_path: Path) -> None:
    """v7 made TEXT match part headers (attachment names, attached messages' headers):
    a v6 index lacks them, so opening a v6 database queues every message again."""
    import time

    from carteiro.message.meta import analyse
    from carteiro.store.interface import NewMessage, TextMatches

    raw = (
        b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Message-ID: <inner-4711@example.org>\r\n\r\nforwarded text\r\n--b--\r\n"
    )
    path = tmp_path / "v6.sqlite"

    async def wait_indexed(store: SqliteStore) -> None:
        deadline = time.monotonic() + 30
        while await store.index_backlog():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)

    async def first() -> int:
        store = SqliteStore(path)
        await store.open()
        try:
            acc = await store.create_account("u@x.org", "h")
            inbox = await store.get_mailbox(acc.id, "INBOX")
            assert inbox is not None
            now = datetime.datetime.now(datetime.UTC)
            await store.append(
                inbox.id, [NewMessage(raw, analyse(raw).to_bytes(), frozenset(), now)]
            )
            await wait_indexed(store)
            assert await store.search_text(inbox.id, "INNER-4711", True) == TextMatches([1], [])
            assert await store.search_text(inbox.id, "inner-4711", False) == TextMatches([], [])
            return inbox.id
        finally:
            await store.close()

    mailbox_id = asyncio.run(first())
    # a v6 index knows none of this message's part headers: model it as an index that
    # lost the message's text, which only a rebuild brings back
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DELETE FROM search_text")
    conn.execute("INSERT INTO search_fts (search_fts) VALUES ('delete-all')")
    conn.execute("PRAGMA user_version = 6")
    conn.close()

    async def second() -> None:
        store = SqliteStore(path)
        await store.open()
        try:
            await wait_indexed(store)
            assert await store.search_text(mailbox_id, "inner-4711", True) == TextMatches([1], [])
            assert await store.indexed_count() == 1
            assert await store.check() == []
        finally:
            await store.close()

    asyncio.run(second())


def test_schema_v8_flag_indexes_become_covering(tmp_path: Path) -> None:
    """v9 rebuilds the flag indexes with modseq and flags, so that SEARCH UNSEEN reads
    the index alone; the mail and its flags are kept."""
    path = tmp_path / "v8.sqlite"
    write_old_schema(path, 8)

    def columns(conn: sqlite3.Connection, index: str) -> list[str]:
        return [r[2] for r in conn.execute(f"PRAGMA index_info({index})")]

    conn = sqlite3.connect(path, isolation_level=None)
    assert columns(conn, "messages_unseen") == ["mailbox_id", "uid"]
    conn.close()

    async def run() -> None:
        store = SqliteStore(path)
        await store.open()
        try:
            acc = await store.create_account("u@x.org", "h")
            inbox = await store.get_mailbox(acc.id, "INBOX")
            assert inbox is not None
            await store.append(inbox.id, [msg(), msg(flags={"\\Seen", "\\Flagged"}), msg()])
            assert (await store.system_flag_matches(inbox.id, "\\Seen", False)).uids == [1, 3]
            assert (await store.system_flag_matches(inbox.id, "\\Flagged", True)).uids == [2]
        finally:
            await store.close()
        check = sqlite3.connect(path)
        for index in ("messages_unseen", "messages_deleted", "messages_flagged"):
            assert columns(check, index) == ["mailbox_id", "uid", "modseq", "flags"]
        plan = check.execute(
            "EXPLAIN QUERY PLAN SELECT uid, modseq FROM messages INDEXED BY messages_unseen"
            " WHERE mailbox_id = 1 AND (flags & 8) = 0 ORDER BY uid"
        ).fetchall()
        assert "COVERING INDEX messages_unseen" in plan[0][3]
        check.close()

    asyncio.run(run())


def test_schema_v7_database_gets_the_flag_indexes(tmp_path: Path) -> None:
    """v8 adds partial indexes for unseen, deleted and flagged messages; queries name
    them (INDEXED BY), so a migrated database must have them."""
    path = tmp_path / "v7.sqlite"
    write_old_schema(path, 7)
    conn = sqlite3.connect(path, isolation_level=None)
    assert not conn.execute(
        "SELECT name FROM sqlite_master WHERE name = 'messages_unseen'"
    ).fetchall()
    conn.close()

    async def run() -> None:
        store = SqliteStore(path)
        await store.open()
        try:
            acc = await store.create_account("u@x.org", "h")
            inbox = await store.get_mailbox(acc.id, "INBOX")
            assert inbox is not None
            await store.append(inbox.id, [msg(), msg(flags={"\\Seen", "\\Deleted"})])
            assert await store.first_unseen(inbox.id) == 1
            found = await store.system_flag_matches(inbox.id, "\\Deleted", True)
            assert found.uids == [2]
            assert await store.deleted_storage(inbox.id) > 0
        finally:
            await store.close()
        check = sqlite3.connect(path)
        names = {r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"messages_unseen", "messages_deleted", "messages_flagged"} <= names
        check.close()

    asyncio.run(run())
