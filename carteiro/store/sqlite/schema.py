"""SQLite schema of the embedded store, and the pragmas every connection gets.

Design notes
------------
* ``messages`` is a WITHOUT ROWID table clustered on ``(mailbox_id, uid)``: the MSN map
  (``uids()``) and ``FETCH 1:* (FLAGS)`` are one range scan over small rows. System flags
  are a bitmask (``flags``), keywords a space-separated text column that is NULL for
  the vast majority of messages, so neither costs a join.
* Per-mailbox counters (messages, unseen, deleted, size) live in the ``mailboxes`` row
  and are maintained by triggers in the same transaction as the change, so STATUS and
  SELECT never count rows. Blob reference counts are maintained the same way, and a
  blob whose count drops to zero is deleted in that transaction.
* Message content is stored once per distinct sha256 inside this database, so a commit
  is atomic for content and metadata alike. ``meta`` precedes ``data`` in the row so
  reading the metadata never walks the overflow pages of the content.
* ``expunged`` keeps (mailbox, uid, modseq) of every expunge for ``changes_since``
  (and QRESYNC VANISHED later).
* Credentials: the argon2id hash, the SCRAM-SHA-256 keys (RFC 5802 StoredKey and
  ServerKey, never the password), the TOTP secret with the last time step used (a code
  is accepted once), and the networks the main password may be used from are columns
  of ``accounts``; app passwords are rows of their own, keyed by a SHA-256 of the
  server-generated secret (120 random bits: a slow hash would add nothing but cost).
* Quotas (RFC 9208): the limits are two nullable columns of ``accounts`` (NULL is
  unlimited). Usage is not stored a second time: it is the sum of the per-mailbox
  ``messages`` and ``size`` counters above, which the triggers already keep exact in
  the same transaction as every change. Summing an account's few mailbox rows (on the
  ``(account_id, name)`` index) costs microseconds, adds no write to the message hot
  path and cannot drift from the counters STATUS reports.
* The full-text index of SEARCH TEXT/BODY (v6) is described in fulltext.py.
"""

from __future__ import annotations

import sqlite3

from carteiro.store.flags import DELETED, SEEN
from carteiro.store.sqlite import fulltext

SCHEMA_VERSION = 9

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS accounts (
    id            INTEGER PRIMARY KEY,
    address       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    quota_storage  INTEGER,
    quota_messages INTEGER,
    scram          TEXT,
    totp_secret    TEXT,
    totp_last_step INTEGER,
    networks       TEXT NOT NULL DEFAULT '',
    pop3_retrieved TEXT,
    pop3_new_only  INTEGER
);

CREATE TABLE IF NOT EXISTS app_passwords (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    protocols    TEXT NOT NULL DEFAULT '',
    networks     TEXT NOT NULL DEFAULT '',
    created      REAL NOT NULL,
    expires      REAL,
    last_used    REAL,
    last_address TEXT,
    UNIQUE (account_id, name)
);

CREATE TABLE IF NOT EXISTS mailboxes (
    id               INTEGER PRIMARY KEY,
    account_id       INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    uidvalidity      INTEGER NOT NULL UNIQUE,
    uidnext          INTEGER NOT NULL DEFAULT 1,
    highest_modseq   INTEGER NOT NULL DEFAULT 1,
    first_recent_uid INTEGER NOT NULL DEFAULT 1,
    special_use      TEXT NOT NULL DEFAULT '',
    messages         INTEGER NOT NULL DEFAULT 0,
    unseen           INTEGER NOT NULL DEFAULT 0,
    deleted          INTEGER NOT NULL DEFAULT 0,
    size             INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, name)
);

CREATE TABLE IF NOT EXISTS subscriptions (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS blobs (
    id       INTEGER PRIMARY KEY,
    sha256   BLOB NOT NULL UNIQUE,
    refcount INTEGER NOT NULL DEFAULT 0,
    size     INTEGER NOT NULL,
    meta     BLOB NOT NULL,
    data     BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS messages (
    mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid           INTEGER NOT NULL,
    modseq        INTEGER NOT NULL,
    flags         INTEGER NOT NULL,
    keywords      TEXT,
    internal_date INTEGER NOT NULL,
    tz_offset     INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    blob_id       INTEGER NOT NULL REFERENCES blobs(id),
    save_date     INTEGER,
    thread_id     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS messages_modseq ON messages (mailbox_id, modseq);
CREATE INDEX IF NOT EXISTS messages_blob ON messages (blob_id);
-- v8: the few messages with a state clients ask for by itself (SEARCH UNSEEN, the first
-- unseen at SELECT, EXPUNGE's deleted ones, SEARCH FLAGGED), found without a scan; the
-- queries spell the condition exactly like this, or SQLite will not use the index.
-- v9: they hold modseq and flags too, so that reading them never touches the table
-- (SQLite 3.40 re-checks the condition on the row unless the index holds the column)
CREATE INDEX IF NOT EXISTS messages_unseen ON messages (mailbox_id, uid, modseq, flags)
    WHERE (flags & 8) = 0;
CREATE INDEX IF NOT EXISTS messages_deleted ON messages (mailbox_id, uid, modseq, flags)
    WHERE (flags & 4) != 0;
CREATE INDEX IF NOT EXISTS messages_flagged ON messages (mailbox_id, uid, modseq, flags)
    WHERE (flags & 2) != 0;

CREATE TABLE IF NOT EXISTS expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged (mailbox_id, modseq);

-- unused since THREADID became a hash of the thread's root id (kept: part of schema v2/v3)
CREATE TABLE IF NOT EXISTS thread_ids (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    thread_id  INTEGER NOT NULL,
    PRIMARY KEY (account_id, message_id)
) WITHOUT ROWID;

-- local mail domains (issue 6), each with an optional catch-all target address
CREATE TABLE IF NOT EXISTS domains (
    name      TEXT PRIMARY KEY COLLATE NOCASE,
    catch_all TEXT
) WITHOUT ROWID;

-- alias address -> target addresses (accounts or further aliases)
CREATE TABLE IF NOT EXISTS aliases (
    address TEXT NOT NULL COLLATE NOCASE,
    target  TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (address, target)
) WITHOUT ROWID;

-- accounts allowed to send as an address that is not their own (an alias)
CREATE TABLE IF NOT EXISTS senders (
    address TEXT NOT NULL COLLATE NOCASE,
    account TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (address, account)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS senders_account ON senders (account);

-- DKIM signing keys per domain (PEM, PKCS#8)
CREATE TABLE IF NOT EXISTS dkim_keys (
    domain      TEXT NOT NULL COLLATE NOCASE,
    selector    TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    private_key BLOB NOT NULL,
    created     REAL NOT NULL,
    PRIMARY KEY (domain, selector)
) WITHOUT ROWID;

-- the outbound queue: one row per message, one per recipient with its own state
CREATE TABLE IF NOT EXISTS queue (
    id       INTEGER PRIMARY KEY,
    sender   TEXT NOT NULL,
    account  TEXT,
    created  REAL NOT NULL,
    smtputf8 INTEGER NOT NULL DEFAULT 0,
    size     INTEGER NOT NULL,
    data     BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS queue_rcpts (
    id           INTEGER PRIMARY KEY,
    message_id   INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
    address      TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'queued',
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error   TEXT,
    warned       INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS queue_rcpts_due ON queue_rcpts (state, next_attempt);
CREATE INDEX IF NOT EXISTS queue_rcpts_message ON queue_rcpts (message_id);

-- expunged (and deleted-mailbox) messages kept for the retention period, so that a
-- mass deletion can be undone (carteiro restore-expunged); they hold a blob reference
CREATE TABLE IF NOT EXISTS recoverable (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    mailbox       TEXT NOT NULL,
    flags         INTEGER NOT NULL,
    keywords      TEXT,
    internal_date INTEGER NOT NULL,
    tz_offset     INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    blob_id       INTEGER NOT NULL REFERENCES blobs(id),
    thread_id     INTEGER NOT NULL DEFAULT 0,
    expunged_at   REAL NOT NULL
);

CREATE INDEX IF NOT EXISTS recoverable_account ON recoverable (account_id, expunged_at);
CREATE INDEX IF NOT EXISTS recoverable_age ON recoverable (expunged_at);

CREATE TRIGGER IF NOT EXISTS recoverable_ai AFTER INSERT ON recoverable BEGIN
    UPDATE blobs SET refcount = refcount + 1 WHERE id = NEW.blob_id;
END;

CREATE TRIGGER IF NOT EXISTS recoverable_ad AFTER DELETE ON recoverable BEGIN
    UPDATE blobs SET refcount = refcount - 1 WHERE id = OLD.blob_id;
    DELETE FROM blobs WHERE id = OLD.blob_id AND refcount <= 0;
END;

-- keywords ever used in a mailbox, first-seen spelling (FLAGS / PERMANENTFLAGS)
CREATE TABLE IF NOT EXISTS keywords (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    name       TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (mailbox_id, name)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS messages_ai AFTER INSERT ON messages BEGIN
    UPDATE mailboxes SET
        messages = messages + 1,
        unseen = unseen + ((NEW.flags & {SEEN}) = 0),
        deleted = deleted + ((NEW.flags & {DELETED}) != 0),
        size = size + NEW.size
    WHERE id = NEW.mailbox_id;
    UPDATE blobs SET refcount = refcount + 1 WHERE id = NEW.blob_id;
END;

CREATE TRIGGER IF NOT EXISTS messages_ad AFTER DELETE ON messages BEGIN
    UPDATE mailboxes SET
        messages = messages - 1,
        unseen = unseen - ((OLD.flags & {SEEN}) = 0),
        deleted = deleted - ((OLD.flags & {DELETED}) != 0),
        size = size - OLD.size
    WHERE id = OLD.mailbox_id;
    UPDATE blobs SET refcount = refcount - 1 WHERE id = OLD.blob_id;
    DELETE FROM blobs WHERE id = OLD.blob_id AND refcount <= 0;
END;

CREATE TRIGGER IF NOT EXISTS messages_au AFTER UPDATE OF flags ON messages
WHEN (OLD.flags & {SEEN | DELETED}) != (NEW.flags & {SEEN | DELETED}) BEGIN
    UPDATE mailboxes SET
        unseen = unseen + ((NEW.flags & {SEEN}) = 0) - ((OLD.flags & {SEEN}) = 0),
        deleted = deleted + ((NEW.flags & {DELETED}) != 0) - ((OLD.flags & {DELETED}) != 0)
    WHERE id = NEW.mailbox_id;
END;
"""


#: the most of the database file each reader maps (SQLite's usual build caps it just
#: under 2 GiB; beyond that, pages are read as before)
READER_MMAP_BYTES = 2 << 30


#: how long a connection waits for a lock another one holds (ms)
BUSY_TIMEOUT_MS = 30_000
#: the WAL file is cut back to this size when the log starts over (bytes)
WAL_SIZE_LIMIT = 64 << 20


def configure(conn: sqlite3.Connection, *, writer: bool) -> None:
    """Pragmas for every connection; the writer also owns journal mode and schema."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -32768")  # 32 MiB
    conn.execute("PRAGMA temp_store = MEMORY")
    if writer:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"cannot enable WAL journal mode (got {mode!r})")
    else:
        conn.execute("PRAGMA query_only = ON")
        # readers map the database file instead of copying each page in with a read
        # call: FETCH ENVELOPE of 10,000 scattered messages went from 70 to 51 ms. The
        # mapping is read-only and only grows with the file (nothing here truncates it:
        # no VACUUM, no auto_vacuum); the pages touched count in the process's PSS as
        # shared file pages, as Dovecot's mapped index files do
        conn.execute(f"PRAGMA mmap_size = {READER_MMAP_BYTES}")


def migrate(conn: sqlite3.Connection) -> None:
    """Creates or upgrades the schema (autocommit connection)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"database schema {version} is newer than this program")
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if 1 <= version < 2:
            # v2: RFC 8514 save dates and RFC 8474 thread ids (NULL / 0 for older mail)
            conn.execute("ALTER TABLE messages ADD COLUMN save_date INTEGER")
            conn.execute("ALTER TABLE messages ADD COLUMN thread_id INTEGER NOT NULL DEFAULT 0")
        if 1 <= version < 3:
            # v3: RFC 9208 quota limits per account (NULL: unlimited); usage needs no
            # backfill, it is summed from the per-mailbox counters
            conn.execute("ALTER TABLE accounts ADD COLUMN quota_storage INTEGER")
            conn.execute("ALTER TABLE accounts ADD COLUMN quota_messages INTEGER")
        if 1 <= version < 4:
            # v4: credentials beyond the password: SCRAM keys, TOTP, networks allowed
            # for the main password (app passwords get their own table below)
            conn.execute("ALTER TABLE accounts ADD COLUMN scram TEXT")
            conn.execute("ALTER TABLE accounts ADD COLUMN totp_secret TEXT")
            conn.execute("ALTER TABLE accounts ADD COLUMN totp_last_step INTEGER")
            conn.execute("ALTER TABLE accounts ADD COLUMN networks TEXT NOT NULL DEFAULT ''")
            # and the account's POP3 choices (NULL: the server's setting)
            conn.execute("ALTER TABLE accounts ADD COLUMN pop3_retrieved TEXT")
            conn.execute("ALTER TABLE accounts ADD COLUMN pop3_new_only INTEGER")
        # v5 (issue 6: sender permissions, DKIM keys, the outbound queue) only adds
        # tables, which the script below creates
        if 8 <= version < 9:
            # v9: the flag indexes of v8 become covering; the script recreates them
            for name in ("messages_unseen", "messages_deleted", "messages_flagged"):
                conn.execute(f"DROP INDEX IF EXISTS {name}")
        for statement in _statements(SCHEMA + fulltext.SCHEMA):
            conn.execute(statement)
        if 1 <= version < 6:
            # v6: the full-text index; what is stored already is indexed in the
            # background (the writer resumes the queue at every start)
            conn.execute(fulltext.BACKFILL)
        elif version == 6:
            # v7: SEARCH TEXT also matches part headers, so the indexed text changed
            for statement in fulltext.REINDEX:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Splits the schema script into statements, keeping trigger bodies whole."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
