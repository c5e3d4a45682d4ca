"""SecurityStore conformance: every test runs against every backend in SECURITY_BACKENDS.

Async tests run on the per-test loop of conftest.py (fixture ``loop``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from carteiro.store.errors import StoreUnavailable
from carteiro.store.security import LOGIN_HISTORY, Ban, LoginRecord, SecurityStore
from carteiro.store.sqlite.security import SCHEMA_VERSION, SqliteSecurityStore

SECURITY_BACKENDS = ["sqlite"]
T0 = 1_700_000_000.0


def make_security_store(kind: str, tmp_path: Path) -> SecurityStore:
    """A new, unopened store on the same data each time it is called for a test."""
    if kind == "sqlite":
        return SqliteSecurityStore(tmp_path / "security.db")
    raise ValueError(f"unknown security store backend {kind!r}")


@pytest.fixture(params=SECURITY_BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def security(kind: str, tmp_path: Path, loop: asyncio.AbstractEventLoop) -> Iterator[SecurityStore]:
    store = make_security_store(kind, tmp_path)
    loop.run_until_complete(store.open())
    yield store
    loop.run_until_complete(store.close())


def login(account: str = "alice@example.com", n: int = 0, **kw) -> LoginRecord:
    fields = {
        "account": account,
        "when": T0 + n,
        "protocol": "imap",
        "source": f"192.0.2.{n % 250 + 1}",
        "mechanism": "PLAIN",
        "credential": "password",
        "success": n % 3 != 0,
        "tls": "TLSv1.3",
    }
    fields.update(kw)
    return LoginRecord(**fields)


# --- bans ---------------------------------------------------------------------------


async def test_bans_save_replace_delete(security):
    a = Ban("ip", "203.0.113.5", T0 + 3600, "10 failed logins", T0, 1)
    b = Ban("ip", "2001:db8:1:2::/64", T0 + 7200, "x", T0 + 1, 2)
    c = Ban("account", "mallory@example.com", T0 + 60, "operator", T0 + 2, 1)
    for ban in (a, b, c):
        await security.save_ban(ban)
    assert await security.active_bans(T0) == [a, b, c]
    a2 = Ban("ip", "203.0.113.5", T0 + 9000, "again", T0 + 5, 2)
    await security.save_ban(a2)  # upsert by (kind, key)
    assert sorted(await security.active_bans(T0), key=lambda x: x.key) == sorted(
        [a2, b, c], key=lambda x: x.key
    )
    await security.delete_ban("ip", "203.0.113.5")
    await security.delete_ban("ip", "203.0.113.5")  # nothing there: no error
    await security.delete_ban("account", "2001:db8:1:2::/64")  # wrong kind: nothing
    assert {x.key for x in await security.active_bans(T0)} == {b.key, c.key}


async def test_expired_bans_are_not_active(security):
    await security.save_ban(Ban("ip", "192.0.2.1", T0 + 10, "r", T0, 1))
    await security.save_ban(Ban("ip", "192.0.2.2", T0 + 20, "r", T0, 1))
    assert len(await security.active_bans(T0 + 9.5)) == 2
    assert [x.key for x in await security.active_bans(T0 + 10)] == ["192.0.2.2"]
    assert await security.active_bans(T0 + 20) == []


# --- counters -----------------------------------------------------------------------


async def test_counters_round_trip_filter_and_delete(security):
    stamps = [T0 + 0.125, T0 + 1.000001, T0 + 899.999]
    await security.save_counter("ip", "192.0.2.1", stamps)
    await security.save_counter("account", "alice@example.com", [T0 + 5, T0 + 3])
    await security.save_counter("ip", "2001:db8::/64", [T0 + 1000])
    loaded = await security.load_counters(T0)
    assert loaded == {
        ("ip", "192.0.2.1"): stamps,  # exact floats
        ("account", "alice@example.com"): [T0 + 3, T0 + 5],  # ascending
        ("ip", "2001:db8::/64"): [T0 + 1000],
    }
    assert await security.load_counters(T0 + 4) == {
        ("ip", "192.0.2.1"): [T0 + 899.999],
        ("account", "alice@example.com"): [T0 + 5],
        ("ip", "2001:db8::/64"): [T0 + 1000],
    }
    await security.save_counter("ip", "192.0.2.1", [T0 + 2000])  # replaces
    await security.save_counter("account", "alice@example.com", [])  # deletes
    await security.save_counter("account", "nobody", [])  # deleting nothing is fine
    assert await security.load_counters(T0) == {
        ("ip", "192.0.2.1"): [T0 + 2000],
        ("ip", "2001:db8::/64"): [T0 + 1000],
    }
    assert await security.load_counters(T0 + 5000) == {}


# --- networks -----------------------------------------------------------------------


async def test_network_history(security):
    assert not await security.seen_network("alice@example.com", "198.51.100.0/24")
    await security.remember_network("alice@example.com", "198.51.100.0/24", T0)
    await security.remember_network("alice@example.com", "198.51.100.0/24", T0 + 10)
    assert await security.seen_network("alice@example.com", "198.51.100.0/24")
    assert await security.seen_network("Alice@Example.COM", "198.51.100.0/24")
    assert not await security.seen_network("alice@example.com", "198.51.101.0/24")
    assert not await security.seen_network("bob@example.com", "198.51.100.0/24")


# --- logins -------------------------------------------------------------------------


async def test_login_history_newest_first(security):
    for n in range(5):
        await security.record_login(login(n=n))
    await security.record_login(
        login("bob@example.com", 99, credential="app-password:phone", mechanism="LOGIN")
    )
    recent = await security.recent_logins("alice@example.com")
    assert recent == [login(n=n) for n in reversed(range(5))]
    assert await security.recent_logins("ALICE@example.com", limit=2) == [login(n=4), login(n=3)]
    assert await security.recent_logins("alice@example.com", limit=0) == []
    (bob,) = await security.recent_logins("bob@example.com")
    assert bob.credential == "app-password:phone" and bob.mechanism == "LOGIN"
    assert await security.recent_logins("nobody@example.com") == []


async def test_login_history_is_pruned_to_the_newest(security):
    total = LOGIN_HISTORY + 37
    for n in range(total):
        await security.record_login(login(n=n, protocol="pop3"))
    await security.record_login(login("bob@example.com", 1))
    kept = await security.recent_logins("alice@example.com", limit=5000)
    assert len(kept) == LOGIN_HISTORY
    assert kept[0] == login(n=total - 1, protocol="pop3")
    assert kept[-1] == login(n=total - LOGIN_HISTORY, protocol="pop3")
    assert len(await security.recent_logins("bob@example.com", limit=5000)) == 1


# --- concurrency and lifecycle ------------------------------------------------------------


async def test_many_concurrent_calls(security):
    async def one(i: int) -> None:
        account = f"user{i % 7}@example.com"
        await security.record_login(login(account, i))
        await security.save_counter("ip", f"10.0.{i // 256}.{i % 256}", [T0 + i])
        await security.remember_network(account, f"10.0.{i % 5}.0/24", T0 + i)
        if i % 10 == 0:
            await security.save_ban(Ban("ip", f"10.0.{i // 256}.{i % 256}", T0 + 99, "r", T0, 1))
        assert await security.seen_network(account, f"10.0.{i % 5}.0/24")

    await asyncio.gather(*(one(i) for i in range(400)))
    counters = await security.load_counters(T0 - 1)
    assert len(counters) == 400
    assert len(await security.active_bans(T0)) == 40
    histories = await asyncio.gather(
        *(security.recent_logins(f"user{k}@example.com", limit=1000) for k in range(7))
    )
    assert sum(len(h) for h in histories) == 400
    for k, history in enumerate(histories):
        assert {r.when for r in history} == {T0 + i for i in range(400) if i % 7 == k}


async def test_data_survives_reopening(kind, tmp_path, security):
    ban = Ban("ip", "203.0.113.9", T0 + 3600, "r", T0, 3)
    await security.save_ban(ban)
    await security.save_counter("account", "carol", [T0 + 1, T0 + 2])
    await security.remember_network("carol", "2001:db8::/48", T0)
    await security.record_login(login("carol", 1))
    await security.close()
    await security.close()  # closing twice is harmless
    with pytest.raises(RuntimeError):
        await security.active_bans(T0)
    again = make_security_store(kind, tmp_path)
    await again.open()
    try:
        assert await again.active_bans(T0) == [ban]
        assert await again.load_counters(T0) == {("account", "carol"): [T0 + 1, T0 + 2]}
        assert await again.seen_network("carol", "2001:db8::/48")
        assert await again.recent_logins("carol") == [login("carol", 1)]
    finally:
        await again.close()
    await security.open()  # the fixture closes it


# --- SQLite specifics ---------------------------------------------------------------------


async def test_sqlite_file_settings_and_pruning(tmp_path, loop):
    path = tmp_path / "security.db"
    store = SqliteSecurityStore(path, login_history=3)
    await store.open()
    threads: set[str] = set()
    try:
        for n in range(10):
            await store.record_login(login(n=n))
        await store.save_ban(Ban("ip", "192.0.2.1", T0 + 1, "r", T0, 1))
        await store.save_counter("ip", "192.0.2.1", [T0])
        await store.active_bans(T0 + 5)  # expired rows are dropped here
        await store.load_counters(T0 + 5)  # and stale counters here
        await store._run(lambda conn: threads.add(threading.current_thread().name))
        await store._run(lambda conn: threads.add(threading.current_thread().name))
    finally:
        await store.close()
    assert len(threads) == 1 and threading.current_thread().name not in threads
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM logins").fetchone()[0] == 3
        assert conn.execute("SELECT min(seq), max(seq) FROM logins").fetchone() == (8, 10)
        assert conn.execute("SELECT count(*) FROM bans").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM failure_counters").fetchone()[0] == 0
    finally:
        conn.close()


async def test_sqlite_counters_are_compact(tmp_path, loop):
    path = tmp_path / "security.db"
    store = SqliteSecurityStore(path)
    await store.open()
    await store.save_counter("ip", "192.0.2.1", [T0 + i for i in range(11)])
    await store.close()
    conn = sqlite3.connect(path)
    try:
        (blob,) = conn.execute("SELECT failures FROM failure_counters").fetchone()
    finally:
        conn.close()
    assert isinstance(blob, bytes) and len(blob) == 11 * 8


async def test_sqlite_refuses_a_newer_schema_and_garbage(tmp_path, loop):
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreUnavailable, match="newer"):
        await SqliteSecurityStore(newer).open()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    store = SqliteSecurityStore(garbage)
    with pytest.raises(StoreUnavailable):
        await store.open()
    with pytest.raises(RuntimeError):
        await store.save_counter("ip", "x", [T0])
    with pytest.raises(ValueError):
        SqliteSecurityStore(tmp_path / "x.db", login_history=0)


async def test_sqlite_open_twice_is_an_error(tmp_path, loop):
    store = SqliteSecurityStore(tmp_path / "security.db")
    await store.open()
    try:
        with pytest.raises(RuntimeError):
            await store.open()
    finally:
        await store.close()
