"""Credential operations of the SQLite store: SCRAM keys, TOTP, networks, app
passwords. Writes run on the writer thread like every other change; reads on the pool."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from carteiro.store.errors import AlreadyExists, NotFound
from carteiro.store.interface import Account, AppPassword, Credentials
from carteiro.store.sqlite.writer import Events

_APP_COLUMNS = (
    "id, name, secret_hash, protocols, networks, created, expires, last_used, last_address"
)


def _split(text: str) -> tuple[str, ...]:
    return tuple(x for x in text.split(",") if x)


def _app(row: Sequence[object]) -> AppPassword:
    id_, name, secret, protocols, networks, created, expires, used, address = row
    assert isinstance(secret, bytes)
    return AppPassword(
        int(id_),  # type: ignore[call-overload]
        str(name),
        secret,
        _split(str(protocols)),
        _split(str(networks)),
        float(created),  # type: ignore[arg-type]
        None if expires is None else float(expires),  # type: ignore[arg-type]
        None if used is None else float(used),  # type: ignore[arg-type]
        None if address is None else str(address),
    )


def _account_id(conn: sqlite3.Connection, address: str) -> int:
    row = conn.execute("SELECT id FROM accounts WHERE address = ?", (address,)).fetchone()
    if row is None:
        raise NotFound("no such account")
    return int(row[0])


def read_credentials(conn: sqlite3.Connection, address: str) -> Credentials | None:
    row = conn.execute(
        "SELECT id, address, password_hash, scram, totp_secret, totp_last_step, networks"
        " FROM accounts WHERE address = ?",
        (address,),
    ).fetchone()
    if row is None:
        return None
    apps = conn.execute(
        f"SELECT {_APP_COLUMNS} FROM app_passwords WHERE account_id = ? ORDER BY created, id",
        (row[0],),
    ).fetchall()
    return Credentials(
        Account(row[0], row[1], row[2]),
        row[3],
        row[4],
        row[5],
        _split(row[6]),
        tuple(_app(a) for a in apps),
    )


def set_scram(conn: sqlite3.Connection, events: Events, address: str, record: str | None) -> None:
    if conn.execute("UPDATE accounts SET scram = ? WHERE address = ?", (record, address)).rowcount:
        return
    raise NotFound("no such account")


def set_totp(conn: sqlite3.Connection, events: Events, address: str, secret: str | None) -> None:
    if conn.execute(
        "UPDATE accounts SET totp_secret = ?, totp_last_step = NULL WHERE address = ?",
        (secret, address),
    ).rowcount:
        return
    raise NotFound("no such account")


def use_totp_step(conn: sqlite3.Connection, events: Events, account_id: int, step: int) -> bool:
    """Compare-and-set in one statement: two logins with the same code cannot both win."""
    return bool(
        conn.execute(
            "UPDATE accounts SET totp_last_step = ? WHERE id = ?"
            " AND (totp_last_step IS NULL OR totp_last_step < ?)",
            (step, account_id, step),
        ).rowcount
    )


def set_networks(
    conn: sqlite3.Connection, events: Events, address: str, networks: Sequence[str]
) -> None:
    if conn.execute(
        "UPDATE accounts SET networks = ? WHERE address = ?", (",".join(networks), address)
    ).rowcount:
        return
    raise NotFound("no such account")


def add_app_password(
    conn: sqlite3.Connection,
    events: Events,
    address: str,
    name: str,
    secret_hash: bytes,
    protocols: Sequence[str],
    networks: Sequence[str],
    expires: float | None,
) -> AppPassword:
    account_id = _account_id(conn, address)
    if conn.execute(
        "SELECT 1 FROM app_passwords WHERE account_id = ? AND name = ?", (account_id, name)
    ).fetchone():
        raise AlreadyExists("an app password with this name exists")
    cur = conn.execute(
        "INSERT INTO app_passwords (account_id, name, secret_hash, protocols, networks,"
        " created, expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            account_id,
            name,
            secret_hash,
            ",".join(protocols),
            ",".join(networks),
            time.time(),
            expires,
        ),
    )
    row = conn.execute(
        f"SELECT {_APP_COLUMNS} FROM app_passwords WHERE id = ?", (cur.lastrowid,)
    ).fetchone()
    return _app(row)


def list_app_passwords(conn: sqlite3.Connection, address: str) -> list[AppPassword]:
    account_id = _account_id(conn, address)
    rows = conn.execute(
        f"SELECT {_APP_COLUMNS} FROM app_passwords WHERE account_id = ? ORDER BY created, id",
        (account_id,),
    ).fetchall()
    return [_app(r) for r in rows]


def revoke_app_password(conn: sqlite3.Connection, events: Events, address: str, name: str) -> None:
    account_id = _account_id(conn, address)
    if not conn.execute(
        "DELETE FROM app_passwords WHERE account_id = ? AND name = ?", (account_id, name)
    ).rowcount:
        raise NotFound("no such app password")


def app_password_used(
    conn: sqlite3.Connection, events: Events, app_password_id: int, when: float, source: str
) -> None:
    conn.execute(
        "UPDATE app_passwords SET last_used = ?, last_address = ? WHERE id = ?",
        (when, source, app_password_id),
    )


def pop3_options(conn: sqlite3.Connection, address: str) -> tuple[str | None, bool | None]:
    row = conn.execute(
        "SELECT pop3_retrieved, pop3_new_only FROM accounts WHERE address = ?", (address,)
    ).fetchone()
    if row is None:
        raise NotFound("no such account")
    return row[0], None if row[1] is None else bool(row[1])


def set_pop3_options(
    conn: sqlite3.Connection,
    events: Events,
    address: str,
    retrieved: str | None,
    new_only: bool | None,
) -> None:
    if retrieved not in (None, "keep", "delete"):
        raise ValueError("retrieved must be keep, delete or None")
    flag = None if new_only is None else int(new_only)
    if conn.execute(
        "UPDATE accounts SET pop3_retrieved = ?, pop3_new_only = ? WHERE address = ?",
        (retrieved, flag, address),
    ).rowcount:
        return
    raise NotFound("no such account")
