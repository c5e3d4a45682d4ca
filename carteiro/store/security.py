"""Persistence of the defence and audit state, kept apart from the mail store.

Why a second interface (and, for SQLite, a second database file): this data is written
on every failed login, so an attack must not compete with mail for the mail store's
writer, and losing the last second of it in a power cut is harmless (a few counters),
which lets a backend trade durability for speed. It is also the data an operator may
wipe without touching mail.

Conventions:

* Times are POSIX seconds (``float``) from the caller's clock; a backend never reads the
  clock itself, so tests can inject time.
* ``kind`` is ``"ip"`` (the key is a source key: an IPv4 address or an IPv6 /64, see
  :func:`carteiro.net.limits.source_key`) or ``"account"`` (a case-folded address).
* Accounts in the network and login history are compared without regard to ASCII case.
* Reads may drop what they would never return again (expired bans, stale counters):
  that is how this state stays bounded without a separate cleaning job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["LOGIN_HISTORY", "Ban", "LoginRecord", "SecurityStore"]

#: login records kept per account (``carteiro user activity``)
LOGIN_HISTORY = 1000


@dataclass(frozen=True, slots=True)
class Ban:
    """A temporary refusal of a source (or, by an operator, of an account)."""

    kind: Literal["ip", "account"]
    key: str
    until: float
    reason: str
    created: float
    #: 1 for a first offence; each repeat within the memory period adds one
    strikes: int


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """One authentication attempt, for the account owner's activity report."""

    account: str
    when: float
    protocol: str  # "imap", "pop3", "smtp", …
    source: str  # the peer's address as seen by the server
    mechanism: str  # "LOGIN", "PLAIN", "SCRAM-SHA-256", …
    credential: str  # "password" | "app-password:<name>" | "oauth"
    success: bool
    tls: str  # e.g. "TLSv1.3"; "" when the session was not encrypted


class SecurityStore(Protocol):
    """What the guard and the audit features need from a backend.

    A coroutine returns once the change is applied; writes from one task are applied in
    the order they were made (the guard relies on it: its last write of a key wins).
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # --- bans ----------------------------------------------------------------------
    async def save_ban(self, ban: Ban) -> None:
        """Inserts or replaces the ban of ``(ban.kind, ban.key)``."""
        ...

    async def delete_ban(self, kind: str, key: str) -> None:
        """Forgets that ban; nothing happens when there is none."""
        ...

    async def active_bans(self, now: float) -> list[Ban]:
        """Bans with ``until > now``; a backend may delete the others."""
        ...

    # --- failure counters ----------------------------------------------------------
    async def save_counter(self, kind: str, key: str, failures: list[float]) -> None:
        """Replaces the failure timestamps of a key (ascending); ``[]`` deletes it."""
        ...

    async def load_counters(self, since: float) -> dict[tuple[str, str], list[float]]:
        """Every counter with a failure after ``since``, only those timestamps
        (ascending); a backend may delete counters with none."""
        ...

    # --- network history -----------------------------------------------------------
    async def seen_network(self, account: str, network: str) -> bool:
        """True when :meth:`remember_network` was called for this pair."""
        ...

    async def remember_network(self, account: str, network: str, when: float) -> None:
        """Records (or refreshes the last-seen time of) a network the account used."""
        ...

    # --- login history -------------------------------------------------------------
    async def record_login(self, entry: LoginRecord) -> None:
        """Appends an attempt; only the newest :data:`LOGIN_HISTORY` per account stay."""
        ...

    async def recent_logins(self, account: str, limit: int = 50) -> list[LoginRecord]:
        """The account's newest attempts first, in the order they were recorded."""
        ...
