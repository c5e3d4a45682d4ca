"""Recoverable expunges: messages removed by EXPUNGE or by deleting a mailbox stay in
``recoverable`` for the retention period (Dovecot's lazy_expunge idea, without a
shadow mailbox), so that a mass deletion by a thief or a mistake can be undone.

They hold a reference to their content, count towards no quota and are dropped when
the period ends (at the next expunge, with an index on the age).
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from typing import Any

from carteiro.store.errors import NotFound
from carteiro.store.flags import DELETED, join_keywords, split_keywords
from carteiro.store.sqlite.writer import Events

__all__ = ["keep", "purge", "restore", "summary"]


def keep(conn: sqlite3.Connection, mailbox_id: int, cond: str, params: list[object]) -> None:
    """Copies the rows of ``mailbox_id`` matching ``cond`` before they are deleted."""
    conn.execute(
        "INSERT INTO recoverable (account_id, mailbox, flags, keywords, internal_date,"
        " tz_offset, size, blob_id, thread_id, expunged_at)"
        " SELECT b.account_id, b.name, m.flags, m.keywords, m.internal_date, m.tz_offset,"
        " m.size, m.blob_id, m.thread_id, ?"
        " FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
        f" WHERE m.mailbox_id = ? AND {cond}",
        [time.time(), mailbox_id, *params],
    )


def purge(conn: sqlite3.Connection, retention: float) -> None:
    conn.execute("DELETE FROM recoverable WHERE expunged_at < ?", (time.time() - retention,))


def summary(conn: sqlite3.Connection, account_id: int, since: float) -> dict[str, int]:
    """Recoverable messages per mailbox name, expunged at or after ``since``."""
    rows = conn.execute(
        "SELECT mailbox, count(*) FROM recoverable WHERE account_id = ? AND expunged_at >= ?"
        " GROUP BY mailbox ORDER BY mailbox",
        (account_id, since),
    ).fetchall()
    return {str(name): int(n) for name, n in rows}


def restore(
    conn: sqlite3.Connection,
    events: Events,
    account_id: int,
    since: float,
    mailbox: str | None,
) -> dict[str, int]:
    """Puts recoverable messages back into their mailboxes (recreated if gone), as new
    messages with new UIDs; the quota is checked as for any append."""
    from carteiro.store.sqlite import ops  # imported here: ops imports this module

    if not conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone():
        raise NotFound("no such account")
    sql = (
        "SELECT id, mailbox, flags, keywords, internal_date, tz_offset, size, blob_id,"
        " thread_id FROM recoverable WHERE account_id = ? AND expunged_at >= ?"
    )
    params: list[object] = [account_id, since]
    if mailbox is not None:
        sql += " AND mailbox = ?"
        params.append(mailbox)
    rows = conn.execute(sql + " ORDER BY internal_date, id", params).fetchall()
    if not rows:
        return {}
    ops.check_quota(conn, account_id, len(rows), sum(int(r[6]) for r in rows))
    restored: Counter[str] = Counter()
    by_box: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_box.setdefault(str(row[1]), []).append(row)
    now = int(time.time())
    for name, items in by_box.items():
        box_id = ops.mailbox_for_restore(conn, account_id, name)
        _acc, _uv, first_uid, modseq = ops.bump(conn, box_id, len(items))
        keywords = ops.Keywords(conn, box_id)
        out = []
        for i, (_id, _name, mask, text, stamp, offset, size, blob_id, thread) in enumerate(items):
            if text:
                text = join_keywords(keywords.canon(split_keywords(str(text))))
            # back without \Deleted: the next EXPUNGE must not take them away again
            flags = int(mask) & ~DELETED
            out.append((box_id, first_uid + i, modseq, flags, text or None, stamp, offset,
                        size, blob_id, now, thread))  # fmt: skip
        conn.executemany(ops.INSERT_MESSAGE, out)
        events.add((account_id, box_id))
        restored[name] += len(items)
    conn.executemany("DELETE FROM recoverable WHERE id = ?", [(r[0],) for r in rows])
    events.add((account_id, None))
    return dict(restored)
