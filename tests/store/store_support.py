"""Backend registry and helpers of the store conformance suite.

A backend is named by a kind ("sqlite", later "postgres") and a location (a file path,
a DSN …); ``make_store`` builds a fresh, unopened store instance on that data, so tests
can close and reopen the same data (restart) and the crash test can build the same
store in a subprocess.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from carteiro.store.interface import MailboxStatus, MessageRecord, NewMessage, Store

BACKENDS = ["sqlite"]


def make_store(kind: str, location: str, retention: float = 0.0) -> Store:
    if kind == "sqlite":
        from carteiro.store.sqlite import SqliteStore

        return SqliteStore(Path(location), retention=retention)
    raise ValueError(f"unknown store backend {kind!r}")


def new_location(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return str(tmp_path / "store.sqlite")
    raise ValueError(f"unknown store backend {kind!r}")


@dataclass
class Backend:
    kind: str
    location: str

    def make(self, retention: float = 0.0) -> Store:
        """A new, unopened instance on this backend's data."""
        return make_store(self.kind, self.location, retention)

    async def open(self, retention: float = 0.0) -> Store:
        store = self.make(retention)
        await store.open()
        return store


_counter = itertools.count(1)
DATE = datetime.datetime(
    2024, 5, 17, 10, 30, 15, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
)


def msg(
    data: bytes | None = None,
    flags: Iterable[str] = (),
    date: datetime.datetime = DATE,
    meta: bytes | None = None,
) -> NewMessage:
    """A message with unique content unless ``data`` is given."""
    if data is None:
        n = next(_counter)
        data = b"Subject: test %d\r\n\r\nbody %d\r\n" % (n, n)
    return NewMessage(
        data, meta if meta is not None else b"meta:" + data[:20], frozenset(flags), date
    )


async def all_records(store: Store, mailbox_id: int, chunk: int = 7) -> list[MessageRecord]:
    out: list[MessageRecord] = []
    first = 1
    while True:
        part = await store.records_range(mailbox_id, first, 2**32 - 1, chunk)
        out.extend(part)
        if len(part) < chunk:
            return out
        first = part[-1].uid + 1


async def recount(store: Store, mailbox_id: int) -> MailboxStatus:
    """Checks the mailbox's status counters against a brute-force recount of its rows,
    and the backend's own self-check when it offers one. Returns the status."""
    status = await store.mailbox_status(mailbox_id)
    records = await all_records(store, mailbox_id)
    uids = [r.uid for r in records]
    assert uids == sorted(set(uids))
    assert await store.uids(mailbox_id) == uids
    assert status.messages == len(records)
    assert status.unseen == sum("\\Seen" not in r.flags for r in records)
    assert status.deleted == sum("\\Deleted" in r.flags for r in records)
    assert status.size == sum(r.size for r in records)
    assert all(r.uid < status.uidnext for r in records)
    assert all(0 < r.modseq <= status.highest_modseq for r in records)
    assert 0 <= status.recent <= status.messages
    assert all("\\Recent" not in r.flags for r in records)
    check = getattr(store, "check", None)
    if check is not None:
        assert await check() == []
    return status


async def recount_account(store: Store, account_id: int) -> None:
    for mailbox in await store.list_mailboxes(account_id):
        await recount(store, mailbox.id)


async def blob_count(store: Store) -> int | None:
    counter = getattr(store, "blob_count", None)
    return None if counter is None else int(await counter())


async def recount_quota(store: Store, account_id: int) -> tuple[int, int]:
    """Checks the account's reported quota usage against a brute-force recount of every
    message in every mailbox (and each mailbox's counters). Returns (octets, messages)."""
    octets = messages = 0
    for mailbox in await store.list_mailboxes(account_id):
        await recount(store, mailbox.id)
        records = await all_records(store, mailbox.id)
        octets += sum(r.size for r in records)
        messages += len(records)
    quota = await store.quota(account_id)
    assert (quota.storage_used, quota.messages_used) == (octets, messages)
    return octets, messages
