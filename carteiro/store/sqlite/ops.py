"""Write operations of the SQLite store. Each runs on the writer thread inside its own
SAVEPOINT (see writer.py): raising rolls back that operation alone. ``events`` collects
the (account_id, mailbox_id | None) pairs whose listeners run after the commit."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from carteiro.store.errors import AlreadyExists, NotAllowed, NotFound, QuotaExceeded
from carteiro.store.flags import (
    DELETED,
    decode,
    encode,
    encode_date,
    join_keywords,
    split_keywords,
)
from carteiro.store.interface import (
    Account,
    CopyResult,
    FlagUpdate,
    MailboxInfo,
    NewMessage,
    Quota,
)
from carteiro.store.names import INBOX, check_name, inferior_bounds, is_inferior, parents
from carteiro.store.sqlite import retention as retention_ops
from carteiro.store.sqlite.writer import Events

DEFAULT_MAILBOXES = (
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)
MAX_UID = 2**32 - 1
#: the largest limit SQLite's INTEGER holds (RFC 9208 number64 is no larger)
MAX_QUOTA = 2**63 - 1

MAILBOX_COLUMNS = (
    "b.id, b.account_id, b.name, b.uidvalidity, b.uidnext, b.highest_modseq, b.special_use,"
    " EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = b.account_id"
    " AND s.name = b.name)"
)


def mailbox_info(row: Sequence[Any]) -> MailboxInfo:
    special = str(row[6])
    return MailboxInfo(
        id=int(row[0]),
        account_id=int(row[1]),
        name=str(row[2]),
        uidvalidity=int(row[3]),
        uidnext=int(row[4]),
        highest_modseq=int(row[5]),
        special_use=frozenset(special.split()) if special else frozenset(),
        subscribed=bool(row[7]),
    )


def uid_filter(uids: Sequence[int], column: str = "uid") -> tuple[str, list[object]]:
    """SQL condition selecting ``uids`` (sorted, unique): a range when contiguous."""
    if not uids:
        return "0", []
    if uids[-1] - uids[0] + 1 == len(uids):
        return f"{column} BETWEEN ? AND ?", [uids[0], uids[-1]]
    return f"{column} IN (SELECT value FROM json_each(?))", [json.dumps(list(uids))]


def normalise_uids(uids: Iterable[int]) -> list[int]:
    return sorted({uid for uid in uids if 0 < uid <= MAX_UID})


# --- helpers -------------------------------------------------------------------------
def _one(conn: sqlite3.Connection, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...]:
    rows = conn.execute(sql, params).fetchall()
    return tuple(rows[0]) if rows else ()


def _account_exists(conn: sqlite3.Connection, account_id: int) -> None:
    if not _one(conn, "SELECT 1 FROM accounts WHERE id = ?", (account_id,)):
        raise NotFound("no such account")


def _mailbox_id(conn: sqlite3.Connection, account_id: int, name: str) -> int | None:
    row = _one(
        conn, "SELECT id FROM mailboxes WHERE account_id = ? AND name = ?", (account_id, name)
    )
    return int(row[0]) if row else None


def _next_uidvalidity(conn: sqlite3.Connection) -> int:
    """Globally unique and increasing, seeded from the clock (so a re-created database
    still hands out larger values than the previous one most likely did)."""
    row = _one(conn, "SELECT value FROM counters WHERE name = 'uidvalidity'")
    last = int(row[0]) if row else 0
    value = max(last + 1, int(time.time()))
    if value > MAX_UID:
        raise RuntimeError("UIDVALIDITY space exhausted")
    conn.execute(
        "INSERT INTO counters (name, value) VALUES ('uidvalidity', ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (value,),
    )
    return value


def _insert_mailbox(
    conn: sqlite3.Connection, account_id: int, name: str, special_use: Iterable[str] = ()
) -> int:
    uidvalidity = _next_uidvalidity(conn)
    cur = conn.execute(
        "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use) VALUES (?, ?, ?, ?)",
        (account_id, name, uidvalidity, " ".join(sorted(set(special_use)))),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def _ensure_parents(conn: sqlite3.Connection, account_id: int, name: str) -> None:
    for parent in parents(name):
        if _mailbox_id(conn, account_id, parent) is None:
            _insert_mailbox(conn, account_id, parent)


def get_mailbox(conn: sqlite3.Connection, mailbox_id: int) -> MailboxInfo:
    row = _one(conn, f"SELECT {MAILBOX_COLUMNS} FROM mailboxes b WHERE b.id = ?", (mailbox_id,))
    if not row:
        raise NotFound("no such mailbox")
    return mailbox_info(row)


def _bump(
    conn: sqlite3.Connection, mailbox_id: int, new_uids: int = 0
) -> tuple[int, int, int, int]:
    """Takes the next modseq (and ``new_uids`` UIDs): (account, uidvalidity, first uid, modseq)."""
    row = _one(
        conn,
        "UPDATE mailboxes SET uidnext = uidnext + ?, highest_modseq = highest_modseq + 1"
        " WHERE id = ? RETURNING account_id, uidvalidity, uidnext, highest_modseq",
        (new_uids, mailbox_id),
    )
    if not row:
        raise NotFound("no such mailbox")
    account_id, uidvalidity, uidnext, modseq = (int(v) for v in row)
    if uidnext - 1 > MAX_UID:
        raise NotAllowed("mailbox UID space exhausted")
    return account_id, uidvalidity, uidnext - new_uids, modseq


class _Keywords:
    """Canonical (first-seen) spelling of keywords in one mailbox, recorded as used."""

    def __init__(self, conn: sqlite3.Connection, mailbox_id: int) -> None:
        self._conn = conn
        self._mailbox_id = mailbox_id
        self._known: dict[str, str] = {}

    def canon(self, keywords: Iterable[str]) -> list[str]:
        out: list[str] = []
        for kw in keywords:
            low = kw.lower()
            spelled = self._known.get(low)
            if spelled is None:
                row = _one(
                    self._conn,
                    "SELECT name FROM keywords WHERE mailbox_id = ? AND name = ?",
                    (self._mailbox_id, kw),
                )
                if row:
                    spelled = str(row[0])
                else:
                    self._conn.execute(
                        "INSERT INTO keywords (mailbox_id, name) VALUES (?, ?)",
                        (self._mailbox_id, kw),
                    )
                    spelled = kw
                self._known[low] = spelled
            out.append(spelled)
        return out


# --- accounts ------------------------------------------------------------------------
def create_account(
    conn: sqlite3.Connection, events: Events, address: str, password_hash: str
) -> Account:
    if _one(conn, "SELECT 1 FROM accounts WHERE address = ?", (address,)):
        raise AlreadyExists("account exists")
    cur = conn.execute(
        "INSERT INTO accounts (address, password_hash) VALUES (?, ?)", (address, password_hash)
    )
    assert cur.lastrowid is not None
    account_id = cur.lastrowid
    _insert_mailbox(conn, account_id, INBOX)
    for name, use in DEFAULT_MAILBOXES:
        _insert_mailbox(conn, account_id, name, (use,))
    conn.executemany(
        "INSERT INTO subscriptions (account_id, name) VALUES (?, ?)",
        [(account_id, INBOX)] + [(account_id, name) for name, _ in DEFAULT_MAILBOXES],
    )
    events.add((account_id, None))
    return Account(account_id, address, password_hash)


def set_password(conn: sqlite3.Connection, events: Events, address: str, pw_hash: str) -> None:
    if (
        conn.execute(
            "UPDATE accounts SET password_hash = ? WHERE address = ?", (pw_hash, address)
        ).rowcount
        == 0
    ):
        raise NotFound("no such account")


def delete_account(conn: sqlite3.Connection, events: Events, address: str) -> None:
    row = _one(conn, "SELECT id FROM accounts WHERE address = ?", (address,))
    if not row:
        raise NotFound("no such account")
    account_id = int(row[0])
    ids = [
        r[0] for r in conn.execute("SELECT id FROM mailboxes WHERE account_id = ?", (account_id,))
    ]
    _drop_mailboxes(conn, ids)
    # explicit, so the trigger releases the content they hold
    conn.execute("DELETE FROM recoverable WHERE account_id = ?", (account_id,))
    conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
    events.add((account_id, None))
    events.update((account_id, mid) for mid in ids)


def _drop_mailboxes(conn: sqlite3.Connection, ids: list[int], retention: float = 0.0) -> None:
    for mid in ids:
        if retention > 0:
            retention_ops.keep(conn, mid, "1", [])
        # explicit, so the triggers release blob references
        conn.execute("DELETE FROM messages WHERE mailbox_id = ?", (mid,))
        conn.execute("DELETE FROM mailboxes WHERE id = ?", (mid,))


# --- quota (RFC 9208) ----------------------------------------------------------------
def set_quota(
    conn: sqlite3.Connection,
    events: Events,
    account: str | int,
    storage: int | None,
    messages: int | None,
) -> None:
    for name, value in (("storage", storage), ("messages", messages)):
        if value is not None and not 0 <= value <= MAX_QUOTA:
            raise ValueError(f"{name} limit {value} is out of range")
    column = "address" if isinstance(account, str) else "id"
    cur = conn.execute(
        f"UPDATE accounts SET quota_storage = ?, quota_messages = ? WHERE {column} = ?",
        (storage, messages, account),
    )
    if cur.rowcount == 0:
        raise NotFound("no such account")


def read_quota(conn: sqlite3.Connection, account_id: int) -> Quota:
    """Limits and usage: the sum of the account's per-mailbox counters (exact, kept by
    the triggers), over the few rows of the ``(account_id, name)`` index."""
    row = _one(
        conn,
        "SELECT a.quota_storage, coalesce(sum(b.size), 0),"
        " a.quota_messages, coalesce(sum(b.messages), 0)"
        " FROM accounts a LEFT JOIN mailboxes b ON b.account_id = a.id"
        " WHERE a.id = ? GROUP BY a.id",
        (account_id,),
    )
    if not row:
        raise NotFound("no such account")
    return Quota(row[0], int(row[1]), row[2], int(row[3]))


def check_quota(conn: sqlite3.Connection, account_id: int, messages: int, octets: int) -> None:
    """Raises QuotaExceeded if adding ``messages`` messages of ``octets`` in total would
    take the account over a limit. Called by the writer inside the change's own
    transaction, before the change: check and change are one atomic step."""
    if messages <= 0 and octets <= 0:
        return
    limits = _one(
        conn, "SELECT quota_storage, quota_messages FROM accounts WHERE id = ?", (account_id,)
    )
    if not limits or (limits[0] is None and limits[1] is None):
        return  # unlimited: no need to sum the usage
    q = read_quota(conn, account_id)
    if q.messages_limit is not None and q.messages_used + messages > q.messages_limit:
        raise QuotaExceeded(
            f"message quota of {q.messages_limit} exceeded"
            f" ({q.messages_used} stored, {messages} more refused)"
        )
    if q.storage_limit is not None and q.storage_used + octets > q.storage_limit:
        raise QuotaExceeded(
            f"storage quota of {q.storage_limit} octets exceeded"
            f" ({q.storage_used} used, {octets} more refused)"
        )


# --- mailboxes -----------------------------------------------------------------------
def create_mailbox(
    conn: sqlite3.Connection,
    events: Events,
    account_id: int,
    name: str,
    special_use: frozenset[str],
) -> MailboxInfo:
    name = check_name(name)
    _account_exists(conn, account_id)
    if _mailbox_id(conn, account_id, name) is not None:
        raise AlreadyExists("mailbox exists")
    _ensure_parents(conn, account_id, name)
    mailbox_id = _insert_mailbox(conn, account_id, name, special_use)
    events.add((account_id, None))
    return get_mailbox(conn, mailbox_id)


def delete_mailbox(
    conn: sqlite3.Connection, events: Events, account_id: int, name: str, retention: float = 0.0
) -> None:
    if name == INBOX:
        raise NotAllowed("INBOX cannot be deleted")
    mailbox_id = _mailbox_id(conn, account_id, name)
    if mailbox_id is None:
        raise NotFound("no such mailbox")
    lo, hi = inferior_bounds(name)
    ids = [mailbox_id] + [
        r[0]
        for r in conn.execute(
            "SELECT id FROM mailboxes WHERE account_id = ? AND name >= ? AND name < ?",
            (account_id, lo, hi),
        )
    ]
    _drop_mailboxes(conn, ids, retention)
    if retention > 0:
        retention_ops.purge(conn, retention)
    events.add((account_id, None))
    events.update((account_id, mid) for mid in ids)


def mailbox_for_restore(conn: sqlite3.Connection, account_id: int, name: str) -> int:
    """The id of ``name``, created again (with its parents) if it was deleted."""
    found = _mailbox_id(conn, account_id, name)
    if found is not None:
        return found
    _ensure_parents(conn, account_id, name)
    return _insert_mailbox(conn, account_id, name)


def rename_mailbox(
    conn: sqlite3.Connection, events: Events, account_id: int, old: str, new: str
) -> None:
    new = check_name(new)
    old_id = _mailbox_id(conn, account_id, old)
    if old_id is None:
        raise NotFound("no such mailbox")
    if new == old or _mailbox_id(conn, account_id, new) is not None:
        raise AlreadyExists("target mailbox exists")
    events.add((account_id, None))
    if old == INBOX:
        _ensure_parents(conn, account_id, new)
        new_id = _insert_mailbox(conn, account_id, new)
        uids = [
            r[0]
            for r in conn.execute(
                "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (old_id,)
            )
        ]
        if uids:
            _copy_rows(conn, old_id, uids, new_id, quota_account=None)
            _expunge_rows(conn, old_id, uids)
            events.add((account_id, old_id))
        return
    if is_inferior(new, old):
        raise NotAllowed("cannot rename a mailbox into its own hierarchy")
    _ensure_parents(conn, account_id, new)
    lo, hi = inferior_bounds(old)
    # binary collation: move the hierarchy with one statement on the unique index
    conn.execute(
        "UPDATE mailboxes SET name = ? || substr(name, ?)"
        " WHERE account_id = ? AND (name = ? OR (name >= ? AND name < ?))",
        (new, len(old) + 1, account_id, old, lo, hi),
    )
    # subscriptions follow the mailboxes, as the user expects
    moved = conn.execute(
        "DELETE FROM subscriptions WHERE account_id = ? AND (name = ? OR (name >= ? AND name < ?))"
        " RETURNING name",
        (account_id, old, lo, hi),
    ).fetchall()
    conn.executemany(
        "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)",
        [(account_id, new + str(r[0])[len(old) :]) for r in moved],
    )


def set_subscribed(
    conn: sqlite3.Connection, events: Events, account_id: int, name: str, subscribed: bool
) -> None:
    _account_exists(conn, account_id)
    if subscribed:
        conn.execute(
            "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)",
            (account_id, name),
        )
    else:
        conn.execute(
            "DELETE FROM subscriptions WHERE account_id = ? AND name = ?", (account_id, name)
        )
    events.add((account_id, None))


def claim_recent(
    conn: sqlite3.Connection, events: Events, mailbox_id: int, upto: int | None = None
) -> int:
    row = _one(conn, "SELECT first_recent_uid, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,))
    if not row:
        raise NotFound("no such mailbox")
    first, uidnext = int(row[0]), int(row[1])
    marker = uidnext if upto is None else max(first, min(uidnext, upto + 1))
    if first != marker:
        conn.execute("UPDATE mailboxes SET first_recent_uid = ? WHERE id = ?", (marker, mailbox_id))
    return first


# --- messages ------------------------------------------------------------------------
def _blob(conn: sqlite3.Connection, data: bytes, meta: bytes) -> int:
    digest = hashlib.sha256(data).digest()
    row = _one(conn, "SELECT id FROM blobs WHERE sha256 = ?", (digest,))
    if row:
        return int(row[0])
    cur = conn.execute(
        "INSERT INTO blobs (sha256, size, meta, data) VALUES (?, ?, ?, ?)",
        (digest, len(data), meta, data),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


_INSERT_MESSAGE = (
    "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, internal_date, tz_offset,"
    " size, blob_id, save_date, thread_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


#: for the retention module, which restores rows the way appends write them
INSERT_MESSAGE = _INSERT_MESSAGE


def _thread_for(keys: Sequence[str]) -> int:
    """RFC 8474 THREADID from the thread's root: the oldest id the message refers to
    (``keys`` is the own Message-ID, then references newest first), else its own id.
    A pure function of the headers: no table to write, so a delivery costs no extra
    random B-tree pages in the commit, and copies keep their thread. 0: no ids at all
    (the message is its own thread; its EMAILID serves)."""
    if not keys:
        return 0
    root = keys[-1].encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.sha256(b"thread:" + root).digest()[:7], "big") or 1


def append(
    conn: sqlite3.Connection, events: Events, mailbox_id: int, messages: Sequence[NewMessage]
) -> CopyResult:
    if not messages:
        return CopyResult(get_mailbox(conn, mailbox_id).uidvalidity, [], [])
    account_id, uidvalidity, first_uid, modseq = _bump(conn, mailbox_id, len(messages))
    # raising here rolls back the bump with the rest of this operation's savepoint
    check_quota(conn, account_id, len(messages), sum(len(m.data) for m in messages))
    keywords = _Keywords(conn, mailbox_id)
    rows = []
    saved = int(time.time())
    for i, msg in enumerate(messages):
        mask, kws = encode(msg.flags)
        stamp, offset = encode_date(msg.internal_date)
        blob_id = _blob(conn, msg.data, msg.meta)
        thread = _thread_for(msg.thread_keys)
        rows.append((
            mailbox_id, first_uid + i, modseq, mask, join_keywords(keywords.canon(kws)),
            stamp, offset, len(msg.data), blob_id, saved, thread,
        ))  # fmt: skip
    conn.executemany(_INSERT_MESSAGE, rows)
    events.add((account_id, mailbox_id))
    return CopyResult(uidvalidity, [], [first_uid + i for i in range(len(messages))])


def store_flags(
    conn: sqlite3.Connection,
    events: Events,
    mailbox_id: int,
    uids: Sequence[int],
    mode: str,
    flags: frozenset[str],
) -> list[FlagUpdate]:
    if mode not in ("+", "-", ""):
        raise ValueError(f"bad flag mode {mode!r}")
    row = _one(conn, "SELECT account_id, highest_modseq FROM mailboxes WHERE id = ?", (mailbox_id,))
    if not row:
        raise NotFound("no such mailbox")
    account_id, modseq = int(row[0]), int(row[1]) + 1
    wanted = normalise_uids(uids)
    if not wanted:
        return []
    cond, params = uid_filter(wanted)
    mask, kws = encode(flags)
    changed: list[tuple[int, int, str | None]]
    if not kws and mode == "+":
        changed = conn.execute(
            f"UPDATE messages SET flags = flags | ?, modseq = ? WHERE mailbox_id = ? AND {cond}"
            " AND (flags & ?) != ? RETURNING uid, flags, keywords",
            [mask, modseq, mailbox_id, *params, mask, mask],
        ).fetchall()
    elif not kws and mode == "-":
        changed = conn.execute(
            f"UPDATE messages SET flags = flags & ~?, modseq = ? WHERE mailbox_id = ? AND {cond}"
            " AND (flags & ?) != 0 RETURNING uid, flags, keywords",
            [mask, modseq, mailbox_id, *params, mask],
        ).fetchall()
    elif not kws:
        changed = conn.execute(
            f"UPDATE messages SET flags = ?, keywords = NULL, modseq = ? WHERE mailbox_id = ?"
            f" AND {cond} AND (flags != ? OR keywords IS NOT NULL) RETURNING uid, flags, keywords",
            [mask, modseq, mailbox_id, *params, mask],
        ).fetchall()
    else:
        changed = _store_keywords(conn, mailbox_id, cond, params, mode, mask, kws, modseq)
    if not changed:
        return []
    conn.execute("UPDATE mailboxes SET highest_modseq = ? WHERE id = ?", (modseq, mailbox_id))
    events.add((account_id, mailbox_id))
    changed.sort()
    return [FlagUpdate(uid, decode(f, k), modseq) for uid, f, k in changed]


def store_flags_conditional(
    conn: sqlite3.Connection,
    events: Events,
    mailbox_id: int,
    uids: Sequence[int],
    mode: str,
    flags: frozenset[str],
    unchanged_since: int,
) -> tuple[list[FlagUpdate], list[int]]:
    """RFC 7162 UNCHANGEDSINCE, checked and applied in one transaction."""
    wanted = normalise_uids(uids)
    if not wanted:
        return [], []
    cond, params = uid_filter(wanted)
    modified = [
        int(r[0])
        for r in conn.execute(
            f"SELECT uid FROM messages WHERE mailbox_id = ? AND {cond} AND modseq > ? ORDER BY uid",
            [mailbox_id, *params, unchanged_since],
        )
    ]
    skip = set(modified)
    updates = store_flags(
        conn, events, mailbox_id, [u for u in wanted if u not in skip], mode, flags
    )
    return updates, modified


def _store_keywords(
    conn: sqlite3.Connection,
    mailbox_id: int,
    cond: str,
    params: list[object],
    mode: str,
    mask: int,
    kws: list[str],
    modseq: int,
) -> list[tuple[int, int, str | None]]:
    if mode == "-":
        drop = {kw.lower() for kw in kws}
        given: list[str] = []
    else:
        drop = set()
        given = _Keywords(conn, mailbox_id).canon(kws)
    changed: list[tuple[int, int, str | None]] = []
    for uid, old_mask, old_text in conn.execute(
        f"SELECT uid, flags, keywords FROM messages WHERE mailbox_id = ? AND {cond}",
        [mailbox_id, *params],
    ).fetchall():
        old = split_keywords(old_text)
        if mode == "+":
            new_mask = old_mask | mask
            have = {kw.lower() for kw in old}
            new = old + [kw for kw in given if kw.lower() not in have]
        elif mode == "-":
            new_mask = old_mask & ~mask
            new = [kw for kw in old if kw.lower() not in drop]
        else:
            new_mask = mask
            new = given
        new_text = join_keywords(new)
        if new_mask != old_mask or new_text != old_text:
            changed.append((uid, new_mask, new_text))
    conn.executemany(
        "UPDATE messages SET flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
        [(f, k, modseq, mailbox_id, uid) for uid, f, k in changed],
    )
    return changed


def _copy_rows(
    conn: sqlite3.Connection,
    source_id: int,
    uids: list[int],
    dest_id: int,
    quota_account: int | None,
) -> tuple[int, list[int], list[int]]:
    """Copies the existing ``uids`` (sorted) of ``source_id``: (uidvalidity, src, dest).
    The copies are charged to ``quota_account`` (None: a move within one account)."""
    cond, params = uid_filter(uids)
    rows = conn.execute(
        "SELECT uid, flags, keywords, internal_date, tz_offset, size, blob_id, thread_id"
        f" FROM messages WHERE mailbox_id = ? AND {cond} ORDER BY uid",
        [source_id, *params],
    ).fetchall()
    saved = int(time.time())
    if not rows:
        dest = get_mailbox(conn, dest_id)
        return dest.uidvalidity, [], []
    if quota_account is not None:
        check_quota(conn, quota_account, len(rows), sum(int(r[5]) for r in rows))
    _account_id, uidvalidity, first_uid, modseq = _bump(conn, dest_id, len(rows))
    keywords = _Keywords(conn, dest_id) if dest_id != source_id else None
    out = []
    for i, (_uid, mask, text, stamp, offset, size, blob_id, thread) in enumerate(rows):
        if text and keywords is not None:
            text = join_keywords(keywords.canon(split_keywords(text)))
        out.append((
            dest_id, first_uid + i, modseq, mask, text, stamp, offset, size, blob_id, saved,
            thread,
        ))  # fmt: skip
    conn.executemany(_INSERT_MESSAGE, out)
    return uidvalidity, [r[0] for r in rows], [first_uid + i for i in range(len(rows))]


def _expunge_rows(
    conn: sqlite3.Connection, mailbox_id: int, uids: list[int], retention: float = 0.0
) -> None:
    _account_id, _uv, _first, modseq = _bump(conn, mailbox_id)
    cond, params = uid_filter(uids)
    if retention > 0:
        retention_ops.keep(conn, mailbox_id, cond, params)
        retention_ops.purge(conn, retention)
    conn.execute(f"DELETE FROM messages WHERE mailbox_id = ? AND {cond}", [mailbox_id, *params])
    conn.executemany(
        "INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
        [(mailbox_id, uid, modseq) for uid in uids],
    )


def _account_of(conn: sqlite3.Connection, mailbox_id: int) -> int:
    row = _one(conn, "SELECT account_id FROM mailboxes WHERE id = ?", (mailbox_id,))
    if not row:
        raise NotFound("no such mailbox")
    return int(row[0])


def copy(
    conn: sqlite3.Connection,
    events: Events,
    source_id: int,
    uids: Sequence[int],
    dest_id: int,
    move: bool,
) -> CopyResult:
    source_account = _account_of(conn, source_id)
    dest_account = _account_of(conn, dest_id)
    # a move within one account leaves its usage as it was: never refused for quota
    charged = None if move and source_account == dest_account else dest_account
    uidvalidity, src, dest = _copy_rows(conn, source_id, normalise_uids(uids), dest_id, charged)
    if src:
        events.add((dest_account, dest_id))
        if move:
            _expunge_rows(conn, source_id, src)
            events.add((source_account, source_id))
    return CopyResult(uidvalidity, src, dest)


def replace(
    conn: sqlite3.Connection,
    events: Events,
    mailbox_id: int,
    uid: int,
    dest_id: int,
    message: NewMessage,
) -> CopyResult:
    """Expunges ``uid`` and appends ``message`` in one transaction (RFC 8508): the quota
    check sees the old version gone, and a refusal leaves the old version in place."""
    account_id = _account_of(conn, mailbox_id)
    if not _one(conn, "SELECT 1 FROM messages WHERE mailbox_id = ? AND uid = ?", (mailbox_id, uid)):
        raise NotFound("no such message")
    _expunge_rows(conn, mailbox_id, [uid])
    events.add((account_id, mailbox_id))
    return append(conn, events, dest_id, [message])


def expunge(
    conn: sqlite3.Connection,
    events: Events,
    mailbox_id: int,
    uids: Sequence[int] | None,
    retention: float = 0.0,
) -> list[int]:
    row = _one(conn, "SELECT account_id, deleted FROM mailboxes WHERE id = ?", (mailbox_id,))
    if not row:
        raise NotFound("no such mailbox")
    account_id, deleted = int(row[0]), int(row[1])
    if deleted == 0:
        return []
    params: list[object]
    if uids is None:
        cond, params = "1", []
    else:
        wanted = normalise_uids(uids)
        if not wanted:
            return []
        cond, params = uid_filter(wanted)
    gone = sorted(
        r[0]
        for r in conn.execute(
            "SELECT uid FROM messages INDEXED BY messages_deleted"
            f" WHERE mailbox_id = ? AND (flags & {DELETED}) != 0 AND {cond}",
            [mailbox_id, *params],
        )
    )
    if gone:
        _expunge_rows(conn, mailbox_id, gone, retention)
        events.add((account_id, mailbox_id))
    return gone


# the retention module shares these with append and copy
bump = _bump
Keywords = _Keywords
