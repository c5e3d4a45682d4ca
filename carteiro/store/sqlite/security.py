"""SQLite backend of :class:`carteiro.store.security.SecurityStore` (its own file,
e.g. ``<data_dir>/security.db``).

Design notes
------------
* Every statement runs on ONE dedicated thread that owns the only connection: the event
  loop never blocks, writes need no locking, and operations are applied strictly in the
  order they were submitted (the executor's queue is FIFO), which the guard relies on.
* WAL with ``synchronous=NORMAL``: a commit does not wait for fsync. A power cut may lose
  the last moments of counters and history — acceptable for this data, and it keeps a
  password-spraying attack from turning into an fsync storm.
* Failure timestamps are one BLOB of little-endian doubles per key (8 octets a failure)
  plus the newest timestamp in its own indexed column, so stale counters are found and
  deleted with one index range.
* Login history is clustered on ``(account, seq)``: appending is one max() lookup on the
  primary key, and pruning to the newest N is a range delete of usually one row — no
  count, no scan, however long the history.
"""

from __future__ import annotations

import asyncio
import sqlite3
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from carteiro.store.errors import StoreUnavailable
from carteiro.store.security import LOGIN_HISTORY, Ban, LoginRecord

__all__ = ["SCHEMA_VERSION", "SqliteSecurityStore"]

T = TypeVar("T")
SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS bans (
        kind    TEXT NOT NULL,
        key     TEXT NOT NULL,
        until   REAL NOT NULL,
        reason  TEXT NOT NULL,
        created REAL NOT NULL,
        strikes INTEGER NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS bans_until ON bans (until)",
    """CREATE TABLE IF NOT EXISTS failure_counters (
        kind     TEXT NOT NULL,
        key      TEXT NOT NULL,
        last     REAL NOT NULL,
        failures BLOB NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS failure_counters_last ON failure_counters (last)",
    """CREATE TABLE IF NOT EXISTS networks (
        account    TEXT NOT NULL COLLATE NOCASE,
        network    TEXT NOT NULL,
        first_seen REAL NOT NULL,
        last_seen  REAL NOT NULL,
        PRIMARY KEY (account, network)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS logins (
        account    TEXT NOT NULL COLLATE NOCASE,
        seq        INTEGER NOT NULL,
        at         REAL NOT NULL,
        protocol   TEXT NOT NULL,
        source     TEXT NOT NULL,
        mechanism  TEXT NOT NULL,
        credential TEXT NOT NULL,
        success    INTEGER NOT NULL,
        tls        TEXT NOT NULL,
        PRIMARY KEY (account, seq)
    ) WITHOUT ROWID""",
)


def _pack(failures: list[float]) -> bytes:
    return struct.pack(f"<{len(failures)}d", *failures)


def _unpack(blob: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(blob) // 8}d", blob[: len(blob) // 8 * 8]))


def _ban(row: tuple[str, str, float, str, float, int]) -> Ban | None:
    kind, key, until, reason, created, strikes = row
    if kind == "ip":
        return Ban("ip", key, until, reason, created, strikes)
    if kind == "account":
        return Ban("account", key, until, reason, created, strikes)
    return None  # written by a newer program: not ours to enforce


def _write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Runs ``fn`` in one IMMEDIATE transaction (the connection is in autocommit mode)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _migrate(conn: sqlite3.Connection) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"security database schema {version} is newer than this program ({SCHEMA_VERSION})"
        )
    if version == SCHEMA_VERSION:
        return

    def create(c: sqlite3.Connection) -> None:
        for statement in _SCHEMA:
            c.execute(statement)
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    _write(conn, create)


class SqliteSecurityStore:
    """Implements :class:`carteiro.store.security.SecurityStore` on one SQLite file."""

    def __init__(self, path: Path | str, *, login_history: int = LOGIN_HISTORY) -> None:
        if login_history < 1:
            raise ValueError("login_history must be at least 1")
        self.path = Path(path)
        self._keep = login_history
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread

    # --- lifecycle -----------------------------------------------------------------
    async def open(self) -> None:
        if self._executor is not None:
            raise RuntimeError("security store is already open")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carteiro-security")
        self._executor = executor
        try:
            await self._call(self._connect)
        except BaseException as exc:
            self._executor = None
            executor.shutdown(wait=True)
            self._disconnect()  # the thread is gone: a late connect is closed here
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
            raise

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        try:
            # queued after every pending operation, so they all finish first
            await loop.run_in_executor(executor, self._disconnect)
        finally:
            executor.shutdown(wait=True)  # the thread is idle: returns at once

    def _connect(self, _: sqlite3.Connection | None) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, cached_statements=64)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")  # the CLI may read concurrently
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailable(f"cannot enable WAL journal mode (got {mode!r})")
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _on_thread(self, fn: Callable[[sqlite3.Connection | None], T]) -> T:
        return fn(self._conn)

    async def _call(self, fn: Callable[[sqlite3.Connection | None], T]) -> T:
        executor = self._executor
        if executor is None:
            raise RuntimeError("security store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self._on_thread, fn)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def checked(conn: sqlite3.Connection | None) -> T:
            if conn is None:
                raise RuntimeError("security store is not open")
            return fn(conn)

        return await self._call(checked)

    # --- bans ----------------------------------------------------------------------
    async def save_ban(self, ban: Ban) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO bans (kind, key, until, reason, created, strikes)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (ban.kind, ban.key, ban.until, ban.reason, ban.created, ban.strikes),
            )

        await self._run(op)

    async def delete_ban(self, kind: str, key: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM bans WHERE kind = ? AND key = ?", (kind, key))

        await self._run(op)

    async def active_bans(self, now: float) -> list[Ban]:
        def op(conn: sqlite3.Connection) -> list[Ban]:
            conn.execute("DELETE FROM bans WHERE until <= ?", (now,))
            rows = conn.execute(
                "SELECT kind, key, until, reason, created, strikes FROM bans ORDER BY created"
            ).fetchall()
            return [ban for row in rows if (ban := _ban(row)) is not None]

        return await self._run(lambda conn: _write(conn, op))

    # --- failure counters ----------------------------------------------------------
    async def save_counter(self, kind: str, key: str, failures: list[float]) -> None:
        ordered = sorted(failures)

        def op(conn: sqlite3.Connection) -> None:
            if not ordered:
                conn.execute("DELETE FROM failure_counters WHERE kind = ? AND key = ?", (kind, key))
                return
            conn.execute(
                "INSERT OR REPLACE INTO failure_counters (kind, key, last, failures)"
                " VALUES (?, ?, ?, ?)",
                (kind, key, ordered[-1], _pack(ordered)),
            )

        await self._run(op)

    async def load_counters(self, since: float) -> dict[tuple[str, str], list[float]]:
        def op(conn: sqlite3.Connection) -> dict[tuple[str, str], list[float]]:
            conn.execute("DELETE FROM failure_counters WHERE last <= ?", (since,))
            out: dict[tuple[str, str], list[float]] = {}
            for kind, key, blob in conn.execute("SELECT kind, key, failures FROM failure_counters"):
                recent = [t for t in _unpack(blob) if t > since]
                if recent:
                    out[(kind, key)] = recent
            return out

        return await self._run(lambda conn: _write(conn, op))

    # --- network history -----------------------------------------------------------
    async def seen_network(self, account: str, network: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM networks WHERE account = ? AND network = ?", (account, network)
            ).fetchone()
            return row is not None

        return await self._run(op)

    async def remember_network(self, account: str, network: str, when: float) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO networks (account, network, first_seen, last_seen)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (account, network) DO UPDATE SET"
                " last_seen = max(last_seen, excluded.last_seen),"
                " first_seen = min(first_seen, excluded.first_seen)",
                (account, network, when, when),
            )

        await self._run(op)

    # --- login history -------------------------------------------------------------
    async def record_login(self, entry: LoginRecord) -> None:
        keep = self._keep

        def op(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT max(seq) FROM logins WHERE account = ?", (entry.account,)
            ).fetchone()
            seq = (row[0] or 0) + 1
            conn.execute(
                "INSERT INTO logins (account, seq, at, protocol, source, mechanism,"
                " credential, success, tls) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.account,
                    seq,
                    entry.when,
                    entry.protocol,
                    entry.source,
                    entry.mechanism,
                    entry.credential,
                    int(entry.success),
                    entry.tls,
                ),
            )
            if seq > keep:
                conn.execute(
                    "DELETE FROM logins WHERE account = ? AND seq <= ?",
                    (entry.account, seq - keep),
                )

        await self._run(lambda conn: _write(conn, op))

    async def recent_logins(self, account: str, limit: int = 50) -> list[LoginRecord]:
        if limit <= 0:
            return []

        def op(conn: sqlite3.Connection) -> list[LoginRecord]:
            rows = conn.execute(
                "SELECT account, at, protocol, source, mechanism, credential, success, tls"
                " FROM logins WHERE account = ? ORDER BY seq DESC LIMIT ?",
                (account, limit),
            ).fetchall()
            return [
                LoginRecord(a, at, proto, src, mech, cred, bool(ok), tls)
                for a, at, proto, src, mech, cred, ok, tls in rows
            ]

        return await self._run(op)
