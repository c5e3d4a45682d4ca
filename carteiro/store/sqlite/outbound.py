"""The outbound queue and DKIM keys of the SQLite store (issue 6: mail in and out).

The queue keeps one row per message and one per recipient, so each recipient has its
own state, attempt count and next attempt; a claim moves ``next_attempt`` forward by a
lease in the same transaction that reads it, so two runners (or a runner restarted
after a crash) never take the same recipient while an attempt may be in flight.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from carteiro.store.errors import AlreadyExists, NotFound
from carteiro.store.interface import DkimKey, QueuedMessage, QueuedRecipient, RecipientUpdate
from carteiro.store.sqlite.writer import Events

__all__ = [
    "add_dkim_key",
    "allow_sender",
    "claim",
    "delete_dkim_key",
    "disallow_sender",
    "dkim_keys",
    "enqueue",
    "flush",
    "get",
    "list_all",
    "list_senders",
    "message_data",
    "remove",
    "sender_addresses",
    "update",
]

_MESSAGE = "SELECT id, sender, account, created, size, smtputf8 FROM queue"
_RCPT = "SELECT id, address, state, attempts, next_attempt, last_error, warned FROM queue_rcpts"


# --- senders ---------------------------------------------------------------------------
def allow_sender(conn: sqlite3.Connection, events: Events, address: str, account: str) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO senders (address, account) VALUES (?, ?)", (address, account)
    )


def disallow_sender(conn: sqlite3.Connection, events: Events, address: str, account: str) -> None:
    if not conn.execute(
        "DELETE FROM senders WHERE address = ? AND account = ?", (address, account)
    ).rowcount:
        raise NotFound("no such sender permission")


def sender_addresses(conn: sqlite3.Connection, account: str) -> list[str]:
    rows = conn.execute("SELECT address FROM senders WHERE account = ? ORDER BY 1", (account,))
    return [str(r[0]) for r in rows]


def list_senders(conn: sqlite3.Connection) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for address, account in conn.execute("SELECT address, account FROM senders ORDER BY 1, 2"):
        out.setdefault(str(address), []).append(str(account))
    return out


# --- DKIM keys -------------------------------------------------------------------------
def add_dkim_key(conn: sqlite3.Connection, events: Events, key: DkimKey) -> None:
    try:
        conn.execute(
            "INSERT INTO dkim_keys (domain, selector, algorithm, private_key, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (key.domain, key.selector, key.algorithm, key.private_key, key.created),
        )
    except sqlite3.IntegrityError:
        raise AlreadyExists("a DKIM key with this selector exists") from None


def dkim_keys(conn: sqlite3.Connection, domain: str | None) -> list[DkimKey]:
    sql = "SELECT domain, selector, algorithm, private_key, created FROM dkim_keys"
    rows = (
        conn.execute(sql + " ORDER BY domain, created, selector")
        if domain is None
        else conn.execute(sql + " WHERE domain = ? ORDER BY created, selector", (domain,))
    )
    return [DkimKey(str(d), str(s), str(a), bytes(k), float(c)) for d, s, a, k, c in rows]


def delete_dkim_key(conn: sqlite3.Connection, events: Events, domain: str, selector: str) -> None:
    if not conn.execute(
        "DELETE FROM dkim_keys WHERE domain = ? AND selector = ?", (domain, selector)
    ).rowcount:
        raise NotFound("no such DKIM key")


# --- queue -----------------------------------------------------------------------------
def enqueue(
    conn: sqlite3.Connection,
    events: Events,
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    account: str | None,
    smtputf8: bool,
    now: float,
) -> int:
    if not recipients:
        raise ValueError("a queued message needs a recipient")
    cur = conn.execute(
        "INSERT INTO queue (sender, account, created, smtputf8, size, data)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (sender, account, now, int(smtputf8), len(data), data),
    )
    message_id = int(cur.lastrowid or 0)
    conn.executemany(
        "INSERT INTO queue_rcpts (message_id, address, next_attempt) VALUES (?, ?, ?)",
        [(message_id, r, now) for r in recipients],
    )
    return message_id


def _recipient(row: Sequence[object]) -> QueuedRecipient:
    rid, address, state, attempts, next_attempt, last_error, warned = row
    return QueuedRecipient(
        int(rid),  # type: ignore[call-overload]
        str(address),
        str(state),
        int(attempts),  # type: ignore[call-overload]
        float(next_attempt),  # type: ignore[arg-type]
        None if last_error is None else str(last_error),
        bool(warned),
    )


def _message(row: Sequence[object], recipients: list[QueuedRecipient]) -> QueuedMessage:
    mid, sender, account, created, size, smtputf8 = row
    return QueuedMessage(
        int(mid),  # type: ignore[call-overload]
        str(sender),
        None if account is None else str(account),
        float(created),  # type: ignore[arg-type]
        int(size),  # type: ignore[call-overload]
        bool(smtputf8),
        tuple(recipients),
    )


def _load(conn: sqlite3.Connection, where: str, args: tuple[object, ...]) -> list[QueuedMessage]:
    out = []
    for row in conn.execute(f"{_MESSAGE} {where}", args).fetchall():
        rcpts = conn.execute(f"{_RCPT} WHERE message_id = ? ORDER BY id", (row[0],))
        out.append(_message(row, [_recipient(r) for r in rcpts]))
    return out


def list_all(conn: sqlite3.Connection) -> list[QueuedMessage]:
    return _load(conn, "ORDER BY id", ())


def get(conn: sqlite3.Connection, message_id: int) -> QueuedMessage | None:
    found = _load(conn, "WHERE id = ?", (message_id,))
    return found[0] if found else None


def message_data(conn: sqlite3.Connection, message_id: int) -> bytes:
    row = conn.execute("SELECT data FROM queue WHERE id = ?", (message_id,)).fetchone()
    if row is None:
        raise NotFound("no such queued message")
    return bytes(row[0])


def claim(
    conn: sqlite3.Connection, events: Events, now: float, lease: float, limit: int
) -> list[QueuedMessage]:
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT DISTINCT message_id FROM queue_rcpts"
            " WHERE state = 'queued' AND next_attempt <= ? ORDER BY message_id LIMIT ?",
            (now, limit),
        )
    ]
    out = []
    for message_id in ids:
        rows = conn.execute(
            f"{_RCPT} WHERE message_id = ? AND state = 'queued' AND next_attempt <= ? ORDER BY id",
            (message_id, now),
        ).fetchall()
        conn.execute(
            "UPDATE queue_rcpts SET next_attempt = ?"
            " WHERE message_id = ? AND state = 'queued' AND next_attempt <= ?",
            (now + lease, message_id, now),
        )
        head = conn.execute(f"{_MESSAGE} WHERE id = ?", (message_id,)).fetchone()
        out.append(_message(head, [_recipient(r) for r in rows]))
    return out


def update(conn: sqlite3.Connection, events: Events, updates: Sequence[RecipientUpdate]) -> None:
    for u in updates:
        if u.state not in ("queued", "sent", "failed"):
            raise ValueError(f"unknown recipient state {u.state!r}")
    conn.executemany(
        "UPDATE queue_rcpts SET state = ?, attempts = ?, next_attempt = ?, last_error = ?,"
        " warned = ? WHERE id = ?",
        [(u.state, u.attempts, u.next_attempt, u.last_error, int(u.warned), u.id) for u in updates],
    )
    touched = {
        int(r[0])
        for u in updates
        for r in conn.execute("SELECT message_id FROM queue_rcpts WHERE id = ?", (u.id,))
    }
    for message_id in touched:
        pending = conn.execute(
            "SELECT 1 FROM queue_rcpts WHERE message_id = ? AND state = 'queued' LIMIT 1",
            (message_id,),
        ).fetchone()
        if pending is None:
            conn.execute("DELETE FROM queue WHERE id = ?", (message_id,))


def flush(conn: sqlite3.Connection, events: Events, message_id: int | None) -> int:
    if message_id is None:
        cur = conn.execute("UPDATE queue_rcpts SET next_attempt = 0 WHERE state = 'queued'")
    else:
        cur = conn.execute(
            "UPDATE queue_rcpts SET next_attempt = 0 WHERE state = 'queued' AND message_id = ?",
            (message_id,),
        )
    return cur.rowcount


def remove(conn: sqlite3.Connection, events: Events, message_id: int) -> None:
    if not conn.execute("DELETE FROM queue WHERE id = ?", (message_id,)).rowcount:
        raise NotFound("no such queued message")
