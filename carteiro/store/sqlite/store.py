"""The embedded default backend: one SQLite database file (WAL, synchronous=FULL).

Writes go through one writer thread with group commit (writer.py, ops.py); reads run
on a small pool of reader threads. No SQL runs on the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from carteiro.store.errors import NotFound, StoreUnavailable
from carteiro.store.flags import DELETED, FLAG_BITS, SEEN, decode, decode_date
from carteiro.store.interface import (
    Account,
    AppPassword,
    Changes,
    CopyResult,
    Credentials,
    DkimKey,
    FlagMatches,
    FlagRow,
    FlagUpdate,
    Listener,
    MailboxInfo,
    MailboxStatus,
    MessageRecord,
    MetaRow,
    NewMessage,
    ObjectInfo,
    QueuedMessage,
    Quota,
    RecipientUpdate,
    TextMatches,
)
from carteiro.store.notify import Notifier
from carteiro.store.sqlite import credentials, domains, fulltext, ops, outbound, retention
from carteiro.store.sqlite.writer import Readers, Writer

_RECORD_COLUMNS = "uid, flags, keywords, internal_date, tz_offset, size, modseq, blob_id"
#: reads of at most this many rows (message records, metadata) run on the loop's thread
SMALL_READ = 64
#: ... and lists of at most this many UIDs, and message bodies up to this many bytes
SMALL_LIST = 5000
SMALL_BYTES = 256 * 1024
#: the partial indexes of schema v8, by (system flag, present)
_FLAG_INDEXES = {
    ("\\Seen", False): "messages_unseen",
    ("\\Deleted", True): "messages_deleted",
    ("\\Flagged", True): "messages_flagged",
}


#: the mailbox counter (an SQL expression) that counts the messages with / without a flag
_FLAG_COUNTS = {
    ("\\Seen", False): "unseen",
    ("\\Seen", True): "messages - unseen",
    ("\\Deleted", True): "deleted",
    ("\\Deleted", False): "messages - deleted",
}


# FETCH 1:* builds one MessageRecord per message; a frozen dataclass's __init__ is a
# large share of that cost, so records are assembled slot by slot (what __init__ does,
# without the per-call overhead). The guard keeps this honest if the dataclass changes.
_RECORD_FIELDS = ("uid", "flags", "internal_date", "size", "modseq", "blob_id")
assert tuple(f.name for f in dataclasses.fields(MessageRecord)) == _RECORD_FIELDS
_new = object.__new__
_set = object.__setattr__


def _records(rows: Iterable[Sequence[Any]]) -> list[MessageRecord]:
    out: list[MessageRecord] = []
    append = out.append
    for uid, mask, kws, stamp, off, size, modseq, blob_id in rows:
        rec = _new(MessageRecord)
        _set(rec, "uid", uid)
        _set(rec, "flags", decode(mask, kws))
        _set(rec, "internal_date", decode_date(stamp, off))
        _set(rec, "size", size)
        _set(rec, "modseq", modseq)
        _set(rec, "blob_id", blob_id)
        append(rec)
    return out


def _mailbox_must_exist(conn: sqlite3.Connection, mailbox_id: int) -> None:
    if conn.execute("SELECT 1 FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone() is None:
        raise NotFound("no such mailbox")


class SqliteStore:
    """Implements :class:`carteiro.store.interface.Store` (and ``Diagnostics``)."""

    def __init__(self, path: Path, *, readers: int = 4, retention: float = 0.0) -> None:
        """``retention``: seconds expunged messages stay recoverable (0: not kept)."""
        self.path = Path(path)
        self.retention = retention
        self._notifier = Notifier()
        self._writer = Writer(self.path, self._notifier.post, idle=self._index_step)
        self._index_started = False
        self._reader_count = readers
        self._readers: Readers | None = None

    # --- lifecycle -------------------------------------------------------------------
    async def open(self) -> None:
        self._notifier.bind(asyncio.get_running_loop())
        try:
            await asyncio.to_thread(self._writer.start)
            self._readers = Readers(self.path, self._reader_count)
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc

    async def close(self) -> None:
        readers, self._readers = self._readers, None
        await asyncio.to_thread(self._writer.stop)
        if readers is not None:
            await asyncio.to_thread(readers.close)
        self._notifier.bind(None)

    async def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        if self._readers is None:
            raise RuntimeError("store is not open")
        return await self._readers.run(fn)

    async def _read_or_small(self, fn: Callable[[sqlite3.Connection], Any], rows: int) -> Any:
        """:meth:`_read_small` for at most :data:`SMALL_READ` rows, else :meth:`_read`."""
        if rows <= SMALL_READ:
            return await self._read_small(fn)
        return await self._read(fn)

    async def _read_if(
        self,
        probe: Callable[[sqlite3.Connection], int],
        fn: Callable[[sqlite3.Connection], Any],
        limit: int,
    ) -> Any:
        """``fn`` on the loop's thread when ``probe`` (a count or size read from a counter
        or an index, itself run here) is within ``limit``; else on a reader thread."""
        if self._readers is None:
            raise RuntimeError("store is not open")
        if self._readers.run_here(probe) <= limit:
            return self._readers.run_here(fn)
        return await self._readers.run(fn)

    async def _read_small(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """A read of a few indexed rows, run on the event loop's thread (see
        :meth:`Readers.run_here`); anything that may touch many rows or big blobs goes
        through :meth:`_read`, so the loop is never held for long."""
        if self._readers is None:
            raise RuntimeError("store is not open")
        return self._readers.run_here(fn)

    def _index_step(self, conn: sqlite3.Connection) -> bool:
        """Writer thread, when idle: keeps the full-text index up to date."""
        if not self._index_started:
            self._index_started = True
            fulltext.on_start(conn)
        return fulltext.index_some(conn)

    @property
    def writer_stats(self) -> tuple[int, int]:
        """(commits, operations) since open: operations per commit shows group commit."""
        return self._writer.batches, self._writer.ops

    # --- accounts ------------------------------------------------------------------
    async def create_account(self, address: str, password_hash: str) -> Account:
        account: Account = await self._writer.submit(
            partial(ops.create_account, address=address, password_hash=password_hash)
        )
        return account

    async def get_account(self, address: str) -> Account | None:
        def q(conn: sqlite3.Connection) -> Account | None:
            row = conn.execute(
                "SELECT id, address, password_hash FROM accounts WHERE address = ?", (address,)
            ).fetchone()
            return Account(*row) if row else None

        result: Account | None = await self._read_small(q)
        return result

    async def list_accounts(self) -> list[Account]:
        def q(conn: sqlite3.Connection) -> list[Account]:
            rows = conn.execute("SELECT id, address, password_hash FROM accounts ORDER BY id")
            return [Account(*row) for row in rows]

        result: list[Account] = await self._read(q)
        return result

    async def set_password(self, address: str, password_hash: str) -> None:
        await self._writer.submit(partial(ops.set_password, address=address, pw_hash=password_hash))

    async def delete_account(self, address: str) -> None:
        await self._writer.submit(partial(ops.delete_account, address=address))

    # --- domains and aliases -----------------------------------------------------------
    async def add_domain(self, name: str) -> None:
        await self._writer.submit(partial(domains.add_domain, name=name))

    async def delete_domain(self, name: str) -> None:
        await self._writer.submit(partial(domains.delete_domain, name=name))

    async def list_domains(self) -> list[tuple[str, str | None]]:
        result: list[tuple[str, str | None]] = await self._read(domains.list_domains)
        return result

    async def set_catch_all(self, domain: str, target: str | None) -> None:
        await self._writer.submit(partial(domains.set_catch_all, domain=domain, target=target))

    async def add_alias(self, address: str, targets: Sequence[str]) -> None:
        await self._writer.submit(
            partial(domains.add_alias, address=address, targets=list(targets))
        )

    async def remove_alias(self, address: str, target: str | None = None) -> None:
        await self._writer.submit(partial(domains.remove_alias, address=address, target=target))

    async def alias_targets(self, address: str) -> list[str]:
        result: list[str] = await self._read_small(partial(domains.alias_targets, address=address))
        return result

    async def list_aliases(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = await self._read(domains.list_aliases)
        return result

    # --- senders, DKIM keys, outbound queue ---------------------------------------------
    async def allow_sender(self, address: str, account: str) -> None:
        await self._writer.submit(partial(outbound.allow_sender, address=address, account=account))

    async def disallow_sender(self, address: str, account: str) -> None:
        await self._writer.submit(
            partial(outbound.disallow_sender, address=address, account=account)
        )

    async def sender_addresses(self, account: str) -> list[str]:
        result: list[str] = await self._read_small(
            partial(outbound.sender_addresses, account=account)
        )
        return result

    async def list_senders(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = await self._read(outbound.list_senders)
        return result

    async def add_dkim_key(self, key: DkimKey) -> None:
        await self._writer.submit(partial(outbound.add_dkim_key, key=key))

    async def dkim_keys(self, domain: str | None = None) -> list[DkimKey]:
        result: list[DkimKey] = await self._read_small(partial(outbound.dkim_keys, domain=domain))
        return result

    async def delete_dkim_key(self, domain: str, selector: str) -> None:
        await self._writer.submit(
            partial(outbound.delete_dkim_key, domain=domain, selector=selector)
        )

    async def enqueue(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        account: str | None = None,
        smtputf8: bool = False,
        now: float | None = None,
    ) -> int:
        result: int = await self._writer.submit(
            partial(
                outbound.enqueue,
                sender=sender,
                recipients=list(recipients),
                data=data,
                account=account,
                smtputf8=smtputf8,
                now=time.time() if now is None else now,
            )
        )
        return result

    async def queue_list(self) -> list[QueuedMessage]:
        result: list[QueuedMessage] = await self._read(outbound.list_all)
        return result

    async def queue_get(self, message_id: int) -> QueuedMessage | None:
        result: QueuedMessage | None = await self._read(
            partial(outbound.get, message_id=message_id)
        )
        return result

    async def queue_data(self, message_id: int) -> bytes:
        result: bytes = await self._read(partial(outbound.message_data, message_id=message_id))
        return result

    async def queue_claim(self, now: float, lease: float, limit: int) -> list[QueuedMessage]:
        result: list[QueuedMessage] = await self._writer.submit(
            partial(outbound.claim, now=now, lease=lease, limit=limit)
        )
        return result

    async def queue_update(self, updates: Sequence[RecipientUpdate]) -> None:
        await self._writer.submit(partial(outbound.update, updates=list(updates)))

    async def queue_flush(self, message_id: int | None = None) -> int:
        result: int = await self._writer.submit(partial(outbound.flush, message_id=message_id))
        return result

    async def queue_delete(self, message_id: int) -> None:
        await self._writer.submit(partial(outbound.remove, message_id=message_id))

    # --- recoverable expunges -----------------------------------------------------------
    async def recoverable(self, account_id: int, since: float) -> dict[str, int]:
        result: dict[str, int] = await self._read(
            partial(retention.summary, account_id=account_id, since=since)
        )
        return result

    async def restore_expunged(
        self, account_id: int, since: float, mailbox: str | None = None
    ) -> dict[str, int]:
        result: dict[str, int] = await self._writer.submit(
            partial(retention.restore, account_id=account_id, since=since, mailbox=mailbox)
        )
        return result

    # --- credentials -----------------------------------------------------------------
    async def credentials(self, address: str) -> Credentials | None:
        result: Credentials | None = await self._read_small(
            partial(credentials.read_credentials, address=address)
        )
        return result

    async def set_scram(self, address: str, record: str | None) -> None:
        await self._writer.submit(partial(credentials.set_scram, address=address, record=record))

    async def set_totp(self, address: str, secret: str | None) -> None:
        await self._writer.submit(partial(credentials.set_totp, address=address, secret=secret))

    async def use_totp_step(self, account_id: int, step: int) -> bool:
        result: bool = await self._writer.submit(
            partial(credentials.use_totp_step, account_id=account_id, step=step)
        )
        return result

    async def pop3_options(self, address: str) -> tuple[str | None, bool | None]:
        result: tuple[str | None, bool | None] = await self._read_small(
            partial(credentials.pop3_options, address=address)
        )
        return result

    async def set_pop3_options(
        self, address: str, retrieved: str | None, new_only: bool | None
    ) -> None:
        await self._writer.submit(
            partial(
                credentials.set_pop3_options,
                address=address,
                retrieved=retrieved,
                new_only=new_only,
            )
        )

    async def set_networks(self, address: str, networks: Sequence[str]) -> None:
        await self._writer.submit(
            partial(credentials.set_networks, address=address, networks=list(networks))
        )

    async def add_app_password(
        self,
        address: str,
        name: str,
        secret_hash: bytes,
        protocols: Sequence[str] = (),
        networks: Sequence[str] = (),
        expires: float | None = None,
    ) -> AppPassword:
        result: AppPassword = await self._writer.submit(
            partial(
                credentials.add_app_password,
                address=address,
                name=name,
                secret_hash=secret_hash,
                protocols=list(protocols),
                networks=list(networks),
                expires=expires,
            )
        )
        return result

    async def list_app_passwords(self, address: str) -> list[AppPassword]:
        result: list[AppPassword] = await self._read(
            partial(credentials.list_app_passwords, address=address)
        )
        return result

    async def revoke_app_password(self, address: str, name: str) -> None:
        await self._writer.submit(
            partial(credentials.revoke_app_password, address=address, name=name)
        )

    async def app_password_used(self, app_password_id: int, when: float, source: str) -> None:
        await self._writer.submit(
            partial(
                credentials.app_password_used,
                app_password_id=app_password_id,
                when=when,
                source=source,
            )
        )

    # --- quota ---------------------------------------------------------------------
    async def set_quota(
        self, address_or_account: str | int, storage: int | None, messages: int | None
    ) -> None:
        await self._writer.submit(
            partial(ops.set_quota, account=address_or_account, storage=storage, messages=messages)
        )

    async def quota(self, account_id: int) -> Quota:
        result: Quota = await self._read_small(partial(ops.read_quota, account_id=account_id))
        return result

    # --- mailboxes -----------------------------------------------------------------
    async def list_mailboxes(self, account_id: int) -> list[MailboxInfo]:
        def q(conn: sqlite3.Connection) -> list[MailboxInfo]:
            rows = conn.execute(
                f"SELECT {ops.MAILBOX_COLUMNS} FROM mailboxes b WHERE b.account_id = ?"
                " ORDER BY b.name",
                (account_id,),
            )
            return [ops.mailbox_info(row) for row in rows]

        result: list[MailboxInfo] = await self._read_small(q)
        return result

    async def get_mailbox(self, account_id: int, name: str) -> MailboxInfo | None:
        def q(conn: sqlite3.Connection) -> MailboxInfo | None:
            row = conn.execute(
                f"SELECT {ops.MAILBOX_COLUMNS} FROM mailboxes b"
                " WHERE b.account_id = ? AND b.name = ?",
                (account_id, name),
            ).fetchone()
            return ops.mailbox_info(row) if row else None

        result: MailboxInfo | None = await self._read_small(q)
        return result

    async def create_mailbox(
        self, account_id: int, name: str, special_use: Iterable[str] = ()
    ) -> MailboxInfo:
        info: MailboxInfo = await self._writer.submit(
            partial(
                ops.create_mailbox,
                account_id=account_id,
                name=name,
                special_use=frozenset(special_use),
            )
        )
        return info

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        await self._writer.submit(
            partial(ops.delete_mailbox, account_id=account_id, name=name, retention=self.retention)
        )

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        await self._writer.submit(
            partial(ops.rename_mailbox, account_id=account_id, old=old, new=new)
        )

    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None:
        await self._writer.submit(
            partial(ops.set_subscribed, account_id=account_id, name=name, subscribed=subscribed)
        )

    async def list_subscriptions(self, account_id: int) -> list[str]:
        def q(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name", (account_id,)
            )
            return [row[0] for row in rows]

        result: list[str] = await self._read_small(q)
        return result

    async def mailbox_status(self, mailbox_id: int) -> MailboxStatus:
        def q(conn: sqlite3.Connection) -> MailboxStatus:
            row = conn.execute(
                "SELECT messages, unseen, deleted, size, uidnext, uidvalidity, highest_modseq,"
                " (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id"
                "  AND m.uid >= b.first_recent_uid)"
                " FROM mailboxes b WHERE b.id = ?",
                (mailbox_id,),
            ).fetchone()
            if row is None:
                raise NotFound("no such mailbox")
            return MailboxStatus(*row)

        result: MailboxStatus = await self._read_small(q)
        return result

    async def first_unseen(self, mailbox_id: int) -> int | None:
        def q(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT unseen FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if row is None:
                raise NotFound("no such mailbox")
            if row[0] == 0:  # the counter spares a scan in the common all-seen case
                return None
            found = conn.execute(
                "SELECT uid FROM messages INDEXED BY messages_unseen"
                f" WHERE mailbox_id = ? AND (flags & {SEEN}) = 0 ORDER BY uid LIMIT 1",
                (mailbox_id,),
            ).fetchone()
            return None if found is None else int(found[0])

        result: int | None = await self._read_small(q)
        return result

    async def deleted_storage(self, mailbox_id: int) -> int:
        def q(conn: sqlite3.Connection) -> int:
            _mailbox_must_exist(conn, mailbox_id)
            row = conn.execute(
                "SELECT coalesce(sum(size), 0) FROM messages INDEXED BY messages_deleted"
                f" WHERE mailbox_id = ? AND (flags & {DELETED}) != 0",
                (mailbox_id,),
            ).fetchone()
            return int(row[0])

        result: int = await self._read(q)
        return result

    async def mailbox_keywords(self, mailbox_id: int) -> list[str]:
        def q(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT name FROM keywords WHERE mailbox_id = ? ORDER BY name", (mailbox_id,)
            ).fetchall()
            if not rows:
                _mailbox_must_exist(conn, mailbox_id)
            return [row[0] for row in rows]

        result: list[str] = await self._read_small(q)
        return result

    # --- messages ------------------------------------------------------------------
    async def append(self, mailbox_id: int, messages: Sequence[NewMessage]) -> CopyResult:
        result: CopyResult = await self._writer.submit(
            partial(ops.append, mailbox_id=mailbox_id, messages=list(messages))
        )
        return result

    async def uids(self, mailbox_id: int) -> list[int]:
        def q(conn: sqlite3.Connection) -> list[int]:
            # one JSON text instead of 100,000 row tuples: several times faster in Python
            (text,) = conn.execute(
                "SELECT json_group_array(uid) FROM"
                " (SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid)",
                (mailbox_id,),
            ).fetchone()
            uids: list[int] = json.loads(text)
            if not uids:
                _mailbox_must_exist(conn, mailbox_id)
            uids.sort()  # already ascending: linear, and guarantees the contract
            return uids

        def count(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT messages FROM mailboxes WHERE id = ?", (mailbox_id,))
            found = row.fetchone()
            return int(found[0]) if found else 0

        result: list[int] = await self._read_if(count, q, SMALL_LIST)
        return result

    async def records(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageRecord]:
        wanted = ops.normalise_uids(uids)

        def q(conn: sqlite3.Connection) -> list[MessageRecord]:
            if not wanted:
                _mailbox_must_exist(conn, mailbox_id)
                return []
            cond, params = ops.uid_filter(wanted)
            rows = conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM messages WHERE mailbox_id = ? AND {cond}"
                " ORDER BY uid",
                [mailbox_id, *params],
            ).fetchall()
            if not rows:
                _mailbox_must_exist(conn, mailbox_id)
            return _records(rows)

        result: list[MessageRecord] = await self._read_or_small(q, len(wanted))
        return result

    async def records_range(
        self, mailbox_id: int, first_uid: int, last_uid: int, limit: int
    ) -> list[MessageRecord]:
        def q(conn: sqlite3.Connection) -> list[MessageRecord]:
            rows = conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM messages WHERE mailbox_id = ?"
                " AND uid BETWEEN ? AND ? ORDER BY uid LIMIT ?",
                (mailbox_id, first_uid, last_uid, limit),
            ).fetchall()
            if not rows:
                _mailbox_must_exist(conn, mailbox_id)
            return _records(rows)

        result: list[MessageRecord] = await self._read_or_small(q, limit)
        return result

    async def flag_rows(self, mailbox_id: int, first_uid: int, last_uid: int) -> list[FlagRow]:
        def q(conn: sqlite3.Connection) -> list[FlagRow]:
            rows = conn.execute(
                "SELECT uid, flags, keywords, modseq FROM messages WHERE mailbox_id = ?"
                " AND uid BETWEEN ? AND ? ORDER BY uid",
                (mailbox_id, first_uid, last_uid),
            ).fetchall()
            if not rows:
                _mailbox_must_exist(conn, mailbox_id)
            return [(uid, decode(mask, kws), modseq) for uid, mask, kws, modseq in rows]

        result: list[FlagRow] = await self._read(q)
        return result

    async def meta_rows(self, mailbox_id: int, uids: Sequence[int]) -> list[MetaRow]:
        wanted = ops.normalise_uids(uids)

        def q(conn: sqlite3.Connection) -> list[MetaRow]:
            if not wanted:
                _mailbox_must_exist(conn, mailbox_id)
                return []
            cond, params = ops.uid_filter(wanted, column="m.uid")
            rows = conn.execute(
                "SELECT m.uid, m.flags, m.keywords, m.modseq, m.size, b.meta"
                " FROM messages AS m JOIN blobs AS b ON b.id = m.blob_id"
                f" WHERE m.mailbox_id = ? AND {cond} ORDER BY m.uid",
                [mailbox_id, *params],
            ).fetchall()
            if not rows:
                _mailbox_must_exist(conn, mailbox_id)
            return [
                (uid, decode(mask, kws), modseq, size, meta)
                for uid, mask, kws, modseq, size, meta in rows
            ]

        result: list[MetaRow] = await self._read_or_small(q, len(wanted))
        return result

    async def system_flag_matches(self, mailbox_id: int, flag: str, present: bool) -> FlagMatches:
        # literal conditions, spelled as the partial indexes' (schema v8)
        cond = f"(flags & {FLAG_BITS[flag]}) " + ("!= 0" if present else "= 0")
        index = _FLAG_INDEXES.get((flag, present))
        table = f"messages INDEXED BY {index}" if index else "messages"
        # the mailbox's counters bound the rows; a flag they do not count may match all
        bound = _FLAG_COUNTS.get((flag, present), "messages")

        def count(conn: sqlite3.Connection) -> int:
            row = conn.execute(f"SELECT {bound} FROM mailboxes WHERE id = ?", (mailbox_id,))
            found = row.fetchone()
            return 0 if found is None else int(found[0])

        def q(conn: sqlite3.Connection) -> FlagMatches:
            # one statement, so one snapshot; SQLite joins the UIDs (no row objects for
            # thousands of matches), in the order of the index scan: ascending
            row = conn.execute(
                "SELECT (SELECT highest_modseq FROM mailboxes WHERE id = ?1), group_concat(uid)"
                f" FROM (SELECT uid FROM {table} WHERE mailbox_id = ?1 AND {cond} ORDER BY uid)",
                (mailbox_id,),
            ).fetchone()
            if row[0] is None:
                raise NotFound("no such mailbox")
            return FlagMatches(row[1] or "", int(row[0]))

        result: FlagMatches = await self._read_if(count, q, SMALL_LIST)
        return result

    async def read_blob(self, blob_id: int) -> bytes:
        def q(conn: sqlite3.Connection) -> bytes:
            row = conn.execute("SELECT data FROM blobs WHERE id = ?", (blob_id,)).fetchone()
            if row is None:
                raise NotFound("no such message content")
            return bytes(row[0])

        def size(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT size FROM blobs WHERE id = ?", (blob_id,)).fetchone()
            return 0 if row is None else int(row[0])

        result: bytes = await self._read_if(size, q, SMALL_BYTES)
        return result

    async def read_blobs(self, blob_ids: Sequence[int]) -> dict[int, bytes]:
        return await self._blob_column("data", blob_ids)

    async def read_meta(self, blob_ids: Sequence[int]) -> dict[int, bytes]:
        return await self._blob_column("meta", blob_ids)

    async def _blob_column(self, column: str, blob_ids: Sequence[int]) -> dict[int, bytes]:
        assert column in ("data", "meta")
        wanted = sorted(set(blob_ids))

        def q(conn: sqlite3.Connection) -> dict[int, bytes]:
            if not wanted:
                return {}
            cond, params = ops.uid_filter(wanted, column="id")
            rows = conn.execute(f"SELECT id, {column} FROM blobs WHERE {cond}", params)
            return {row[0]: bytes(row[1]) for row in rows}

        if column == "meta":
            result: dict[int, bytes] = await self._read_or_small(q, len(wanted))
            return result

        def size(conn: sqlite3.Connection) -> int:
            if not wanted or len(wanted) > SMALL_READ:
                return 0 if not wanted else SMALL_BYTES + 1
            cond, params = ops.uid_filter(wanted, column="id")
            row = conn.execute(f"SELECT coalesce(sum(size), 0) FROM blobs WHERE {cond}", params)
            return int(row.fetchone()[0])

        result = await self._read_if(size, q, SMALL_BYTES)
        return result

    async def store_flags(
        self, mailbox_id: int, uids: Sequence[int], mode: str, flags: frozenset[str]
    ) -> list[FlagUpdate]:
        result: list[FlagUpdate] = await self._writer.submit(
            partial(
                ops.store_flags,
                mailbox_id=mailbox_id,
                uids=list(uids),
                mode=mode,
                flags=frozenset(flags),
            )
        )
        return result

    async def store_flags_conditional(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: str,
        flags: frozenset[str],
        unchanged_since: int,
    ) -> tuple[list[FlagUpdate], list[int]]:
        result: tuple[list[FlagUpdate], list[int]] = await self._writer.submit(
            partial(
                ops.store_flags_conditional,
                mailbox_id=mailbox_id,
                uids=list(uids),
                mode=mode,
                flags=frozenset(flags),
                unchanged_since=unchanged_since,
            )
        )
        return result

    async def copy(self, source_id: int, uids: Sequence[int], dest_id: int) -> CopyResult:
        result: CopyResult = await self._writer.submit(
            partial(ops.copy, source_id=source_id, uids=list(uids), dest_id=dest_id, move=False)
        )
        return result

    async def move(self, source_id: int, uids: Sequence[int], dest_id: int) -> CopyResult:
        result: CopyResult = await self._writer.submit(
            partial(ops.copy, source_id=source_id, uids=list(uids), dest_id=dest_id, move=True)
        )
        return result

    async def replace(
        self, mailbox_id: int, uid: int, dest_id: int, message: NewMessage
    ) -> CopyResult:
        result: CopyResult = await self._writer.submit(
            partial(ops.replace, mailbox_id=mailbox_id, uid=uid, dest_id=dest_id, message=message)
        )
        return result

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        result: list[int] = await self._writer.submit(
            partial(
                ops.expunge,
                mailbox_id=mailbox_id,
                uids=None if uids is None else list(uids),
                retention=self.retention,
            )
        )
        return result

    async def changes_since(self, mailbox_id: int, modseq: int) -> Changes:
        def q(conn: sqlite3.Connection) -> Changes:
            row = conn.execute(
                "SELECT highest_modseq, uidvalidity FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if row is None:
                raise NotFound("no such mailbox")
            highest, uidvalidity = row
            if modseq >= highest:
                return Changes(highest, [], [], uidvalidity)
            # no ORDER BY: lets the planner walk the (mailbox_id, modseq) index; sort here
            rows = conn.execute(
                "SELECT uid, flags, keywords, modseq FROM messages"
                " WHERE mailbox_id = ? AND modseq > ?",
                (mailbox_id, modseq),
            ).fetchall()
            rows.sort()
            updated = [FlagUpdate(uid, decode(mask, kws), mod) for uid, mask, kws, mod in rows]
            expunged = sorted(
                r[0]
                for r in conn.execute(
                    "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?",
                    (mailbox_id, modseq),
                )
            )
            return Changes(highest, updated, expunged, uidvalidity)

        def count(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT count(*) FROM messages WHERE mailbox_id = ? AND modseq > ?",
                (mailbox_id, modseq),
            ).fetchone()
            return int(row[0])

        result: Changes = await self._read_if(count, q, SMALL_READ)
        return result

    async def expunged_since(self, mailbox_id: int, modseq: int) -> list[int]:
        def q(conn: sqlite3.Connection) -> list[int]:
            _mailbox_must_exist(conn, mailbox_id)
            rows = conn.execute(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?",
                (mailbox_id, modseq),
            )
            return sorted(r[0] for r in rows)

        result: list[int] = await self._read(q)
        return result

    async def object_info(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, ObjectInfo]:
        wanted = ops.normalise_uids(uids)

        def q(conn: sqlite3.Connection) -> dict[int, ObjectInfo]:
            if not wanted:
                return {}
            cond, params = ops.uid_filter(wanted, column="m.uid")
            rows = conn.execute(
                "SELECT m.uid, b.sha256, m.thread_id, m.save_date FROM messages m"
                f" JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND {cond}",
                [mailbox_id, *params],
            )
            return {
                uid: ObjectInfo(
                    "M" + bytes(digest[:12]).hex(),
                    f"T{thread}" if thread else "M" + bytes(digest[:12]).hex(),
                    None if saved is None else datetime.datetime.fromtimestamp(saved, datetime.UTC),
                )
                for uid, digest, thread, saved in rows
            }

        result: dict[int, ObjectInfo] = await self._read_or_small(q, len(uids))
        return result

    async def claim_recent(self, mailbox_id: int, upto: int | None = None) -> int:
        result: int = await self._writer.submit(
            partial(ops.claim_recent, mailbox_id=mailbox_id, upto=upto)
        )
        return result

    # --- full-text search -----------------------------------------------------------
    async def search_text(self, mailbox_id: int, needle: str, headers: bool) -> TextMatches | None:
        result: TextMatches | None = await self._read(
            partial(fulltext.query, mailbox_id=mailbox_id, needle=needle, headers=headers)
        )
        return result

    async def index_backlog(self) -> int:
        result: int = await self._read(fulltext.backlog)
        return result

    # --- notifications -------------------------------------------------------------
    def subscribe(self, account_id: int, listener: Listener) -> Callable[[], None]:
        return self._notifier.subscribe(account_id, listener)

    # --- diagnostics ---------------------------------------------------------------
    async def blob_count(self) -> int:
        result: int = await self._read(
            lambda conn: conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
        )
        return result

    async def indexed_count(self) -> int:
        result: int = await self._read(
            lambda conn: conn.execute("SELECT count(*) FROM search_text").fetchone()[0]
        )
        return result

    async def check(self) -> list[str]:
        result: list[str] = await self._read(check_database)
        return result


def check_database(conn: sqlite3.Connection) -> list[str]:
    """Every invariant the store maintains, verified the slow way."""
    problems: list[str] = []
    integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    if integrity != ["ok"]:
        problems.extend(f"integrity: {line}" for line in integrity)
    for row in conn.execute("PRAGMA foreign_key_check"):
        problems.append(f"foreign key: {tuple(row)}")
    for row in conn.execute(
        "SELECT b.id, b.name, b.messages, b.unseen, b.deleted, b.size,"
        " count(m.uid), coalesce(sum((m.flags & 8) = 0), 0), coalesce(sum((m.flags & 4) != 0), 0),"
        " coalesce(sum(m.size), 0), coalesce(max(m.uid), 0), coalesce(max(m.modseq), 0),"
        " b.uidnext, b.highest_modseq,"
        " (SELECT coalesce(max(e.uid), 0) FROM expunged e WHERE e.mailbox_id = b.id),"
        " (SELECT coalesce(max(e.modseq), 0) FROM expunged e WHERE e.mailbox_id = b.id)"
        " FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id GROUP BY b.id"
    ):
        (mid, name, n, unseen, deleted, size, n2, unseen2, deleted2, size2, max_uid, max_mod,
         uidnext, highest, max_exp_uid, max_exp_mod) = row  # fmt: skip
        if (n, unseen, deleted, size) != (n2, unseen2, deleted2, size2):
            problems.append(
                f"mailbox {mid} {name!r}: counters {(n, unseen, deleted, size)}"
                f" != rows {(n2, unseen2, deleted2, size2)}"
            )
        if max(max_uid, max_exp_uid) >= uidnext:
            problems.append(f"mailbox {mid} {name!r}: uid >= uidnext {uidnext}")
        if max(max_mod, max_exp_mod) > highest:
            problems.append(f"mailbox {mid} {name!r}: modseq > highest {highest}")
    for row in conn.execute(
        "SELECT e.mailbox_id, e.uid FROM expunged e JOIN messages m"
        " ON m.mailbox_id = e.mailbox_id AND m.uid = e.uid"
    ):
        problems.append(f"expunged message still present: {tuple(row)}")
    for blob_id, refcount, refs in conn.execute(
        "SELECT b.id, b.refcount, (SELECT count(*) FROM messages m WHERE m.blob_id = b.id)"
        " + (SELECT count(*) FROM recoverable r WHERE r.blob_id = b.id) FROM blobs b"
    ):
        if refs == 0:
            problems.append(f"blob {blob_id}: unreferenced")
        if refcount != refs:
            problems.append(f"blob {blob_id}: refcount {refcount} != references {refs}")
    for row in conn.execute(
        "SELECT b.id, b.sha256, length(b.data), b.size FROM blobs b WHERE length(b.data) != b.size"
    ):
        problems.append(f"blob {row[0]}: size mismatch")
    problems.extend(fulltext.check(conn))
    return problems
