"""Domains and aliases of the SQLite store (issue 6: mail in and out)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from carteiro.store.errors import AlreadyExists, NotFound
from carteiro.store.sqlite.writer import Events

__all__ = [
    "add_alias",
    "add_domain",
    "alias_targets",
    "delete_domain",
    "list_aliases",
    "list_domains",
    "remove_alias",
    "set_catch_all",
]


def add_domain(conn: sqlite3.Connection, events: Events, name: str) -> None:
    if conn.execute("SELECT 1 FROM domains WHERE name = ?", (name,)).fetchone():
        raise AlreadyExists("domain exists")
    conn.execute("INSERT INTO domains (name) VALUES (?)", (name,))


def delete_domain(conn: sqlite3.Connection, events: Events, name: str) -> None:
    if not conn.execute("DELETE FROM domains WHERE name = ?", (name,)).rowcount:
        raise NotFound("no such domain")


def list_domains(conn: sqlite3.Connection) -> list[tuple[str, str | None]]:
    return [
        (str(n), c) for n, c in conn.execute("SELECT name, catch_all FROM domains ORDER BY name")
    ]


def set_catch_all(
    conn: sqlite3.Connection, events: Events, domain: str, target: str | None
) -> None:
    if not conn.execute(
        "UPDATE domains SET catch_all = ? WHERE name = ?", (target, domain)
    ).rowcount:
        raise NotFound("no such domain")


def add_alias(
    conn: sqlite3.Connection, events: Events, address: str, targets: Sequence[str]
) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO aliases (address, target) VALUES (?, ?)",
        [(address, t) for t in targets],
    )


def remove_alias(
    conn: sqlite3.Connection, events: Events, address: str, target: str | None
) -> None:
    if target is None:
        gone = conn.execute("DELETE FROM aliases WHERE address = ?", (address,)).rowcount
    else:
        gone = conn.execute(
            "DELETE FROM aliases WHERE address = ? AND target = ?", (address, target)
        ).rowcount
    if not gone:
        raise NotFound("no such alias")


def alias_targets(conn: sqlite3.Connection, address: str) -> list[str]:
    rows = conn.execute("SELECT target FROM aliases WHERE address = ? ORDER BY target", (address,))
    return [str(r[0]) for r in rows]


def list_aliases(conn: sqlite3.Connection) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for address, target in conn.execute("SELECT address, target FROM aliases ORDER BY 1, 2"):
        out.setdefault(str(address), []).append(str(target))
    return out
