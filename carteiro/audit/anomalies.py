"""Anomaly detectors: decide, from the servers' events, when an administrator or an
account owner should hear about unusual access.

Design:

* Pure decisions with an injected clock, no I/O of their own: the one piece of
  persistent state (which networks an account has used) sits behind
  :class:`NetworkHistory`, implemented by the security store.
* Memory is bounded whatever the traffic: every table is an LRU capped at
  ``max_tracked`` keys, and each entry holds at most a threshold's worth of
  timestamps — a spray of random usernames from random addresses evicts old entries
  instead of growing.
* Each detector fires once per window per key and then re-arms, so an attack in
  progress produces one alert per window, not one per attempt.
* Networks, not addresses: a phone changes address within its provider's range all the
  time, so the "new network" is the IPv4 /24 or IPv6 /48 (RFC 6177's typical site
  assignment). Loopback (webmail on the same host) is never judged.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol, TypeVar

__all__ = [
    "FIRST_LOGIN_MARKER",
    "KINDS",
    "Alert",
    "AlertKind",
    "AnomalyPolicy",
    "Detectors",
    "NetworkHistory",
    "Severity",
    "anomaly_policy_from_settings",
    "network_of",
]

AlertKind = Literal[
    "new-network", "targeted-guessing", "password-spraying", "large-download", "mass-deletion"
]
Severity = Literal["info", "warning", "critical"]
KINDS: tuple[AlertKind, ...] = (
    "new-network",
    "targeted-guessing",
    "password-spraying",
    "large-download",
    "mass-deletion",
)
#: remembered as a "network" on an account's first login: ``seen_network(account,
#: FIRST_LOGIN_MARKER)`` then tells "has logged in before" without a third store method
FIRST_LOGIN_MARKER = "*"
_DAY = 86400.0
_SHOWN = 200  # characters of an attacker-chosen name shown in a summary
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    severity: Severity
    account: str | None  # None for spraying, which targets many accounts
    source: str | None
    summary: str  # one line: the subject of the alert mail
    details: Mapping[str, str | int | float]
    at: float


class NetworkHistory(Protocol):
    async def seen_network(self, account: str, network: str) -> bool: ...
    async def remember_network(self, account: str, network: str, when: float) -> None: ...


@dataclass(frozen=True, slots=True)
class AnomalyPolicy:
    """Thresholds; the defaults aim at zero alerts for ordinary use (see the tests'
    scripted normal day) while catching the attacks they are named after."""

    disabled: frozenset[str] = frozenset()
    ipv4_prefix: int = 24
    ipv6_prefix: int = 48
    guessing_failures: int = 10
    guessing_window: float = 900.0
    spraying_accounts: int = 10
    spraying_window: float = 3600.0
    download_session_bytes: int = 1024**3
    download_daily_bytes: int = 4 * 1024**3
    deletion_count: int = 500
    deletion_window: float = 900.0
    #: emptying these (case-insensitive name or last hierarchy level) is housekeeping;
    #: the move into Trash that preceded it was already counted
    deletion_exempt_mailboxes: frozenset[str] = field(
        default=frozenset({"trash", "junk", "spam", "deleted items", "deleted messages"})
    )
    max_tracked: int = 10_000


_INT_LIMITS: dict[str, tuple[int, int]] = {
    "ipv4_prefix": (0, 32),
    "ipv6_prefix": (0, 128),
    "guessing_failures": (2, 1_000_000),
    "spraying_accounts": (2, 1_000_000),
    "download_session_bytes": (1, 2**62),
    "download_daily_bytes": (1, 2**62),
    "deletion_count": (1, 2**31),
    "max_tracked": (10, 10_000_000),
}
_WINDOWS = ("guessing_window", "spraying_window", "deletion_window")


def anomaly_policy_from_settings(raw: Mapping[str, Any]) -> AnomalyPolicy:
    """The ``[anomalies]`` TOML table; a ValueError (one line) names the bad key."""
    known = {f.name for f in fields(AnomalyPolicy)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"anomalies.{key}"
        if key not in known:
            raise ValueError(f"{where}: unknown setting; known are {', '.join(sorted(known))}.")
        if key in _INT_LIMITS:
            low, high = _INT_LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{where}: expected a whole number, got {value!r}.")
            if not low <= value <= high:
                raise ValueError(f"{where}: {value} is out of range; use {low} to {high}.")
            values[key] = value
        elif key in _WINDOWS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where}: expected a number of seconds, got {value!r}.")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{where}: {value} is not a positive number of seconds.")
            values[key] = float(value)
        else:  # disabled, deletion_exempt_mailboxes: lists of strings
            if isinstance(value, str) or not isinstance(value, list | tuple | frozenset | set):
                raise ValueError(f'{where}: expected a list of strings, e.g. ["large-download"].')
            if not all(isinstance(item, str) for item in value):
                raise ValueError(f"{where}: every item must be a string, got {value!r}.")
            if key == "disabled":
                unknown = sorted(set(value) - set(KINDS))
                if unknown:
                    raise ValueError(
                        f"{where}: unknown detector {unknown[0]!r}; known are {', '.join(KINDS)}."
                    )
                values[key] = frozenset(value)
            else:
                values[key] = frozenset(item.casefold() for item in value)
    return AnomalyPolicy(**values)


def network_of(source: str, policy: AnomalyPolicy) -> str | None:
    """The source's network (``192.0.2.0/24``) or None for loopback and for sources
    that are not IP addresses (a Unix socket). IPv4-mapped IPv6 counts as IPv4."""
    try:
        address = ipaddress.ip_address(source.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None
    prefix = policy.ipv4_prefix if address.version == 4 else policy.ipv6_prefix
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _spray_key(source: str) -> str:
    """IPv6 clients can take a fresh address per attempt within their /64."""
    try:
        address = ipaddress.ip_address(source.split("%", 1)[0])
    except ValueError:
        return source[:_SHOWN]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else address)


def _shown(text: str) -> str:
    """An attacker-chosen name fit for a one-line summary (and a mail Subject)."""
    text = _UNPRINTABLE.sub("?", text)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024:
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


_V = TypeVar("_V")


class _Table(OrderedDict[str, _V]):
    """An LRU map holding at most ``cap`` keys: the memory bound of every detector."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap

    def touch(self, key: str, make: Callable[[], _V]) -> _V:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        while len(self) > self.cap:
            self.popitem(last=False)
        return value


@dataclass(slots=True)
class _Failures:
    """Recent failure times of one account (the last N only) and where from."""

    times: deque[float]
    sources: set[str] = field(default_factory=set)
    quiet_until: float = -math.inf


@dataclass(slots=True)
class _Spray:
    """Usernames one source failed on recently, each with its latest failure time."""

    names: OrderedDict[str, float] = field(default_factory=OrderedDict)
    quiet_until: float = -math.inf


@dataclass(slots=True)
class _Download:
    total: int = 0
    period: float = 0.0  # the UTC day number for per-account totals
    fired: bool = False


@dataclass(slots=True)
class _Deletions:
    events: deque[tuple[float, int, bool]] = field(default_factory=deque)
    mailboxes: OrderedDict[str, None] = field(default_factory=OrderedDict)
    quiet_until: float = -math.inf


class Detectors:
    """All five detectors over one policy; feed it events, dispatch what it returns."""

    def __init__(
        self,
        policy: AnomalyPolicy,
        history: NetworkHistory,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.history = history
        self._clock = clock
        cap = policy.max_tracked
        self._alerted_networks: _Table[None] = _Table(cap)
        #: account/network pairs the history already knows (it never forgets one), so
        #: a repeated login asks no store
        self._known_networks: _Table[None] = _Table(cap)
        self._failures: _Table[_Failures] = _Table(cap)
        self._sprays: _Table[_Spray] = _Table(cap)
        self._sessions: _Table[_Download] = _Table(cap)
        self._days: _Table[_Download] = _Table(cap)
        self._deletions: _Table[_Deletions] = _Table(cap)

    def tracked_keys(self) -> int:
        """How many keys all tables hold together (at most 7 × ``max_tracked``)."""
        tables = (
            self._alerted_networks,
            self._known_networks,
            self._failures,
            self._sprays,
            self._sessions,
            self._days,
            self._deletions,
        )
        return sum(len(t) for t in tables)

    def _on(self, kind: AlertKind) -> bool:
        return kind not in self.policy.disabled

    # --- new network --------------------------------------------------------------
    async def login_succeeded(self, account: str, source: str) -> list[Alert]:
        if not self._on("new-network"):
            return []
        network = network_of(source, self.policy)
        if network is None:
            return []
        known = f"{account.lower()}\0{network}"
        if known in self._known_networks:
            return []
        if await self.history.seen_network(account, network):
            self._known_networks.touch(known, lambda: None)
            return []
        now = self._clock()
        if not await self.history.seen_network(account, FIRST_LOGIN_MARKER):
            await self.history.remember_network(account, FIRST_LOGIN_MARKER, now)
            await self.history.remember_network(account, network, now)
            return []
        key = f"{account.lower()}\0{network}"
        if key in self._alerted_networks:  # a concurrent login already reported it
            return []
        self._alerted_networks.touch(key, lambda: None)
        await self.history.remember_network(account, network, now)
        return [
            Alert(
                kind="new-network",
                severity="info",
                account=account,
                source=source,
                summary=f"New sign-in to {_shown(account)} from {source} (network {network})",
                details={"network": network, "address": source},
                at=now,
            )
        ]

    # --- failed logins ------------------------------------------------------------
    def login_failed(self, username: str, source: str) -> list[Alert]:
        now = self._clock()
        name = username[:256]
        alerts: list[Alert] = []
        if self._on("targeted-guessing"):
            alerts += self._guessing(name, source, now)
        if self._on("password-spraying"):
            alerts += self._spraying(name, source, now)
        return alerts

    def _guessing(self, name: str, source: str, now: float) -> list[Alert]:
        policy = self.policy
        key = name.casefold()
        entry = self._failures.touch(key, lambda: _Failures(deque(maxlen=policy.guessing_failures)))
        if now < entry.quiet_until:
            return []
        if entry.times and now - entry.times[-1] > policy.guessing_window:
            entry.sources.clear()  # the last burst is over: start counting afresh
        entry.times.append(now)
        if len(entry.sources) < 64:
            entry.sources.add(source)
        if len(entry.times) < policy.guessing_failures:
            return []
        if now - entry.times[0] > policy.guessing_window:
            return []
        count, sources = len(entry.times), len(entry.sources)
        entry.times.clear()
        entry.sources.clear()
        entry.quiet_until = now + policy.guessing_window
        window = _duration(policy.guessing_window)
        return [
            Alert(
                kind="targeted-guessing",
                severity="warning",
                account=name,
                source=source,
                summary=f"{count} failed logins on {_shown(name)} within {window}",
                details={
                    "failures": count,
                    "threshold": policy.guessing_failures,
                    "window": policy.guessing_window,
                    "sources": sources,
                    "last_source": source,
                },
                at=now,
            )
        ]

    def _spraying(self, name: str, source: str, now: float) -> list[Alert]:
        policy = self.policy
        key = _spray_key(source)
        entry = self._sprays.touch(key, _Spray)
        if now < entry.quiet_until:
            return []
        names = entry.names
        while names and now - next(iter(names.values())) > policy.spraying_window:
            names.popitem(last=False)
        names[name.casefold()] = now
        names.move_to_end(name.casefold())
        if len(names) < policy.spraying_accounts:
            return []
        count = len(names)
        names.clear()
        entry.quiet_until = now + policy.spraying_window
        window = _duration(policy.spraying_window)
        return [
            Alert(
                kind="password-spraying",
                severity="critical",
                account=None,
                source=source,
                summary=f"{key} failed logins on {count} different accounts within {window}",
                details={
                    "accounts": count,
                    "threshold": policy.spraying_accounts,
                    "window": policy.spraying_window,
                    "source_key": key,
                },
                at=now,
            )
        ]

    # --- downloads ----------------------------------------------------------------
    def downloaded(self, account: str, session: str, nbytes: int) -> list[Alert]:
        if nbytes <= 0 or not self._on("large-download"):
            return []
        policy, now = self.policy, self._clock()
        alerts: list[Alert] = []
        per_session = self._sessions.touch(session, _Download)
        per_session.total += nbytes
        if not per_session.fired and per_session.total > policy.download_session_bytes:
            per_session.fired = True
            alerts.append(
                self._download_alert(
                    account, "session", per_session.total, policy.download_session_bytes, now
                )
            )
        day = math.floor(now / _DAY)
        per_day = self._days.touch(account, _Download)
        if per_day.period != day:
            per_day.period, per_day.total, per_day.fired = day, 0, False
        per_day.total += nbytes
        if not per_day.fired and per_day.total > policy.download_daily_bytes:
            per_day.fired = True
            alerts.append(
                self._download_alert(
                    account, "day", per_day.total, policy.download_daily_bytes, now
                )
            )
        return alerts

    def _download_alert(
        self, account: str, scope: Literal["session", "day"], total: int, limit: int, now: float
    ) -> Alert:
        when = "in one session" if scope == "session" else "today (UTC)"
        return Alert(
            kind="large-download",
            severity="warning",
            account=account,
            source=None,
            summary=f"{_size(total)} downloaded from {_shown(account)} {when}",
            details={"scope": scope, "bytes": total, "threshold": limit},
            at=now,
        )

    def session_closed(self, session: str) -> None:
        self._sessions.pop(session, None)

    # --- deletions ----------------------------------------------------------------
    def deleted(
        self, account: str, mailbox: str, count: int, *, moved_to_trash: bool = False
    ) -> list[Alert]:
        if count <= 0 or not self._on("mass-deletion"):
            return []
        policy = self.policy
        folded = mailbox.casefold()
        leaf = re.split(r"[/.]", folded)[-1]
        exempt = policy.deletion_exempt_mailboxes
        if not moved_to_trash and (folded in exempt or leaf in exempt):
            return []
        now = self._clock()
        entry = self._deletions.touch(account, _Deletions)
        if now < entry.quiet_until:
            return []
        events = entry.events
        while events and now - events[0][0] > policy.deletion_window:
            events.popleft()
        if not events:
            entry.mailboxes.clear()
        events.append((now, count, moved_to_trash))
        entry.mailboxes[mailbox[:100]] = None
        entry.mailboxes.move_to_end(mailbox[:100])
        while len(entry.mailboxes) > 5:
            entry.mailboxes.popitem(last=False)
        total = sum(n for _, n, _ in events)
        if total < policy.deletion_count:
            return []
        trashed = sum(n for _, n, trash in events if trash)
        mailboxes = ", ".join(sorted(_shown(m) for m in entry.mailboxes))
        events.clear()
        entry.mailboxes.clear()
        entry.quiet_until = now + policy.deletion_window
        window = _duration(policy.deletion_window)
        return [
            Alert(
                kind="mass-deletion",
                severity="warning",
                account=account,
                source=None,
                summary=f"{total} messages deleted from {_shown(account)} within {window}",
                details={
                    "messages": total,
                    "moved_to_trash": trashed,
                    "threshold": policy.deletion_count,
                    "window": policy.deletion_window,
                    "mailboxes": mailboxes,
                },
                at=now,
            )
        ]
