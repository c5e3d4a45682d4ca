"""Brute-force defence shared by every protocol: delays, temporary bans, allow/deny lists.

Design reasons:

* Two counters per failed login: one for the source and one for the account. A source
  that keeps failing is slowed down, then banned; an account that keeps failing (a
  distributed attack) is only slowed down, from everywhere, and never locked: a lock
  would let anyone lock its owner out.
* Sources are IPv4 addresses or IPv6 /64s (see :func:`carteiro.net.limits.source_key`):
  one IPv6 host normally has a whole /64, so banning single addresses would be useless.
* The guard never learns whether an account exists. Callers record a failure the same
  way for an unknown account as for a wrong password, so every delay (``delay_before``,
  ``failure().delay``) is the same for both and cannot be used to enumerate accounts.
* Counters are sliding windows of failure timestamps, each list bounded by the number
  of failures that can still change the outcome; the tables are bounded too (oldest
  key evicted first), so a spray of random user names cannot exhaust memory.
* Bans and counters are written through to a :class:`SecurityStore` so they survive a
  restart. Expired bans are kept (not enforced) for ``max_ban_duration`` more, to
  recognise a repeat offender, whose ban doubles with each strike.
* Trusted (``never_ban``) sources are counted but never delayed or banned.

Delays: with ``n`` failures in the window and threshold ``T``, an attempt waits
``min(max_delay, base_delay * 2 ** (n - T))`` when ``n >= T``; the source and the account
each give a delay and the larger applies. Call :meth:`Guard.delay_before` before
evaluating each attempt; ``failure().delay`` is the same figure for the next attempt, for
a caller that prefers to hold back the failure response instead — use one, not both.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from carteiro.net.limits import IPNetwork, NetworkSet, account_key, parse_address, source_key
from carteiro.store.security import Ban, SecurityStore

__all__ = [
    "DEFAULT_NEVER_BAN",
    "Guard",
    "GuardPolicy",
    "GuardVerdict",
    "Refusal",
    "guard_policy_from_settings",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_NEVER_BAN: tuple[IPNetwork, ...] = (
    ipaddress.IPv4Network("127.0.0.0/8"),
    ipaddress.IPv6Network("::1/128"),
)
_COUNTS = ("ip_delay_after", "ip_ban_after", "account_delay_after")
_SIZES = ("max_ip_keys", "max_account_keys")
_SECONDS = ("window", "base_delay", "max_delay", "ban_duration", "max_ban_duration")
_NETWORKS = ("never_ban", "allow", "deny")


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """Thresholds count failures within ``window`` seconds; a threshold of 0 turns that
    mechanism off."""

    ip_delay_after: int = 3
    ip_ban_after: int = 10
    account_delay_after: int = 5  # accounts are never banned, only slowed down
    window: float = 900.0
    base_delay: float = 1.0
    max_delay: float = 15.0
    ban_duration: float = 3600.0
    max_ban_duration: float = 7 * 86400.0
    never_ban: tuple[IPNetwork, ...] = DEFAULT_NEVER_BAN
    allow: tuple[IPNetwork, ...] = ()  # when non-empty, every other source is refused
    deny: tuple[IPNetwork, ...] = ()  # always refused; wins over allow
    max_ip_keys: int = 100_000  # tracked sources (and, separately, remembered bans)
    max_account_keys: int = 100_000

    def __post_init__(self) -> None:
        for name in _COUNTS + _SIZES:
            value, low = getattr(self, name), 1 if name in _SIZES else 0
            if type(value) is not int or value < low:
                raise ValueError(f"{name}: expected a whole number >= {low}, got {value!r}")
        for name in _SECONDS:
            value = getattr(self, name)
            if type(value) not in (int, float) or not _finite(value) or value < 0:
                raise ValueError(f"{name}: expected a number of seconds, got {value!r}")
        if self.window <= 0 or self.ban_duration <= 0:
            raise ValueError("window and ban_duration must be more than 0 seconds")
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must not be less than base_delay")
        if self.max_ban_duration < self.ban_duration:
            raise ValueError("max_ban_duration must not be less than ban_duration")
        for name in _NETWORKS:
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(
                isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) for n in value
            ):
                raise ValueError(f"{name}: expected a tuple of networks, got {value!r}")


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def guard_policy_from_settings(raw: Mapping[str, Any]) -> GuardPolicy:
    """The policy of a TOML ``[defence]`` table (field names as keys, networks as CIDR
    strings); ValueError with a one-line message for anything wrong."""
    if not isinstance(raw, Mapping):
        raise ValueError("[defence] must be a table")
    known = _COUNTS + _SIZES + _SECONDS + _NETWORKS
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in known:
            raise ValueError(f"[defence] unknown key {name!r}; known keys: {', '.join(known)}")
        if name in _NETWORKS:
            values[name] = _networks(name, value)
        elif name in _SECONDS and type(value) is int and _finite(value):
            values[name] = float(value)
        else:
            values[name] = value
    try:
        return GuardPolicy(**values)
    except ValueError as exc:
        raise ValueError(f"[defence] {exc}") from None


def _networks(name: str, value: Any) -> tuple[IPNetwork, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f'[defence] {name}: expected a list of networks, e.g. ["10.0.0.0/8"]')
    out: list[IPNetwork] = []
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"[defence] {name}: expected a network in quotes, got {item!r}")
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"[defence] {name}: {item!r} is not a network; write ADDRESS or ADDRESS/PREFIX"
            ) from None
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a connection is refused; ``until`` is None for a permanent (list) refusal."""

    reason: str
    until: float | None


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """After a failure: the delay the next attempt costs, and the ban it caused if any
    (the caller then closes the connection)."""

    delay: float
    banned: Ban | None


class Guard:
    """Throttling and ban state of one server process (single event loop, not threads)."""

    def __init__(
        self,
        store: SecurityStore,
        policy: GuardPolicy,
        *,
        clock: Callable[[], float] = time.time,
        on_ban: Callable[[Ban], None] | None = None,
    ) -> None:
        self.policy = policy
        self._store = store
        self._clock = clock
        self._on_ban = on_ban
        self._never_ban = NetworkSet(policy.never_ban)
        self._allow = NetworkSet(policy.allow)
        self._deny = NetworkSet(policy.deny)
        # longest lists that can still change a delay or a ban: the cap is reached
        # ``steps`` failures past a threshold
        capped = policy.base_delay <= 0 or policy.max_delay <= policy.base_delay
        steps = 0 if capped else math.ceil(math.log2(policy.max_delay / policy.base_delay))
        ip_delay = policy.ip_delay_after + steps + 1 if policy.ip_delay_after else 0
        self._ip_bound = max(1, policy.ip_ban_after, ip_delay)
        acc_delay = policy.account_delay_after + steps + 1 if policy.account_delay_after else 0
        self._account_bound = max(1, acc_delay)
        self._ips: OrderedDict[str, list[float]] = OrderedDict()
        # (when, source key) so that a success can take back its own source's failures
        self._accounts: OrderedDict[str, list[tuple[float, str]]] = OrderedDict()
        self._bans: OrderedDict[str, Ban] = OrderedDict()  # ip bans, also recently expired

    # --- startup -------------------------------------------------------------------
    async def load(self) -> None:
        """Restores bans and counters from the store; call once, before serving.

        After a restart an account's failures no longer know their source, so a success
        does not take them back; they expire with the window.
        """
        p = self.policy
        now = self._clock()
        self._ips.clear()
        self._accounts.clear()
        self._bans.clear()
        for ban in await self._store.active_bans(now - p.max_ban_duration):
            if ban.kind == "ip":  # the guard never bans accounts, nor enforces such bans
                self._bans[ban.key] = ban
        _trim(self._bans, p.max_ip_keys)
        counters = await self._store.load_counters(now - p.window)
        for (kind, key), stamps in sorted(counters.items(), key=lambda kv: max(kv[1], default=0.0)):
            recent = sorted(t for t in stamps if t > now - p.window)
            if not recent:
                continue
            if kind == "ip":
                self._ips[key] = _newest(recent, self._ip_bound)
            elif kind == "account":
                self._accounts[key] = [(t, "") for t in _newest(recent, self._account_bound)]
        _trim(self._ips, p.max_ip_keys)
        _trim(self._accounts, p.max_account_keys)

    # --- at connect time -----------------------------------------------------------
    def check_connection(self, ip: str) -> Refusal | None:
        """None when a connection from ``ip`` may proceed (ValueError: not an address)."""
        addr = parse_address(ip)
        if addr in self._deny:
            return Refusal("address is on the deny list", None)
        if self._allow and addr not in self._allow:
            return Refusal("address is not on the allow list", None)
        if addr in self._never_ban:
            return None
        key = source_key(addr)
        ban = self._bans.get(key)
        if ban is None:
            return None
        now = self._clock()
        if ban.until > now:
            return Refusal(ban.reason, ban.until)
        if ban.until + self.policy.max_ban_duration <= now:
            del self._bans[key]  # expired and forgiven: dropped lazily
        return None

    # --- around each authentication ------------------------------------------------
    def delay_before(self, ip: str, account: str) -> float:
        """Seconds to wait before evaluating this attempt (0 normally)."""
        addr = parse_address(ip)
        if addr in self._never_ban:
            return 0.0
        cutoff = self._clock() - self.policy.window
        ip_n = sum(1 for t in self._ips.get(source_key(addr), ()) if t > cutoff)
        account_n = sum(1 for e in self._accounts.get(account_key(account), ()) if e[0] > cutoff)
        return self._delay(ip_n, account_n)

    async def failure(self, ip: str, account: str) -> GuardVerdict:
        """Records a failed attempt (a wrong password or an unknown account alike)."""
        p = self.policy
        now = self._clock()
        addr = parse_address(ip)
        trusted = addr in self._never_ban
        ip_key = source_key(addr)
        acc_key = account_key(account)
        gone_ips = _touch(self._ips, ip_key, p.max_ip_keys, [])
        ip_list = self._ips[ip_key]
        ip_list[:] = _newest([t for t in ip_list if t > now - p.window], self._ip_bound - 1)
        ip_list.append(now)
        gone_accounts = _touch(self._accounts, acc_key, p.max_account_keys, [])
        acc_list = self._accounts[acc_key]
        recent = [e for e in acc_list if e[0] > now - p.window]
        acc_list[:] = _newest(recent, self._account_bound - 1)
        acc_list.append((now, ip_key))
        delay = 0.0 if trusted else self._delay(len(ip_list), len(acc_list))
        ban: Ban | None = None
        current = self._bans.get(ip_key)
        already = current is not None and current.until > now
        if not trusted and p.ip_ban_after and len(ip_list) >= p.ip_ban_after and not already:
            ban = self._new_ban(ip_key, len(ip_list), now)
            del self._ips[ip_key]  # a fresh start once the ban is over; strikes remember
        await self._persist("ip", ip_key, [] if ban else list(ip_list))
        await self._persist("account", acc_key, [t for t, _ in acc_list])
        for key in gone_ips:
            await self._persist("ip", key, [])
        for key in gone_accounts:
            await self._persist("account", key, [])
        if ban is not None:
            try:
                await self._store.save_ban(ban)
            except Exception:
                log.exception("guard: cannot save the ban of %s", ban.key)
            log.info("guard: banned %s until %.0f (%s)", ban.key, ban.until, ban.reason)
            if self._on_ban is not None:
                try:
                    self._on_ban(ban)
                except Exception:
                    log.exception("guard: on_ban callback failed")
        return GuardVerdict(delay, ban)

    async def success(self, ip: str, account: str) -> None:
        """Clears the source's counter and the account's failures from that source; the
        account's failures from other sources stay (they may be an attack)."""
        ip_key = source_key(ip)
        acc_key = account_key(account)
        if self._ips.pop(ip_key, None) is not None:
            await self._persist("ip", ip_key, [])
        entries = self._accounts.get(acc_key)
        if entries is None:
            return
        kept = [e for e in entries if e[1] != ip_key]
        if len(kept) == len(entries):
            return
        if kept:
            self._accounts[acc_key] = kept
        else:
            del self._accounts[acc_key]
        await self._persist("account", acc_key, [t for t, _ in kept])

    # --- administration ------------------------------------------------------------
    async def unban(self, ip: str) -> bool:
        """Lifts the ban of an address's source (or of ``"2001:db8::/64"``) and forgets
        its strikes and failures; True when an active ban was lifted. Store errors are
        raised (an operator should see them)."""
        key = _ban_key(ip)
        ban = self._bans.pop(key, None)
        self._ips.pop(key, None)
        await self._store.delete_ban("ip", key)
        await self._store.save_counter("ip", key, [])
        return ban is not None and ban.until > self._clock()

    def bans(self) -> list[Ban]:
        """Active bans, oldest first."""
        now = self._clock()
        return sorted((b for b in self._bans.values() if b.until > now), key=lambda b: b.created)

    def stats(self) -> dict[str, int]:
        """Sizes of the tracked state, for metrics and memory tests."""
        return {
            "ip_keys": len(self._ips),
            "account_keys": len(self._accounts),
            "ban_records": len(self._bans),
        }

    # --- internals -----------------------------------------------------------------
    def _delay(self, ip_n: int, account_n: int) -> float:
        p = self.policy
        ip_delay = _backoff(ip_n, p.ip_delay_after, p)
        return max(ip_delay, _backoff(account_n, p.account_delay_after, p))

    def _new_ban(self, key: str, failures: int, now: float) -> Ban:
        p = self.policy
        previous = self._bans.pop(key, None)
        repeat = previous is not None and previous.until + p.max_ban_duration > now
        strikes = previous.strikes + 1 if previous is not None and repeat else 1
        duration = min(p.max_ban_duration, p.ban_duration * 2.0 ** min(strikes - 1, 64))
        reason = f"{failures} failed logins within {p.window:g} s"
        if strikes > 1:
            reason += f" (strike {strikes})"
        ban = Ban("ip", key, now + duration, reason, now, strikes)
        self._bans[key] = ban
        _trim(self._bans, p.max_ip_keys)
        return ban

    async def _persist(self, kind: str, key: str, failures: list[float]) -> None:
        """Writes a counter; a store failure is logged, never raised: the defence keeps
        working from memory."""
        try:
            await self._store.save_counter(kind, key, failures)
        except Exception:
            log.exception("guard: cannot save the %s counter of %s", kind, key)


def _backoff(n: int, threshold: int, p: GuardPolicy) -> float:
    if threshold <= 0 or n < threshold or p.base_delay <= 0:
        return 0.0
    return min(p.max_delay, p.base_delay * 2.0 ** min(n - threshold, 64))


def _newest(items: list[T], n: int) -> list[T]:
    return items[max(0, len(items) - n) :] if n > 0 else []


def _touch(table: OrderedDict[str, Any], key: str, cap: int, empty: Any) -> list[str]:
    """Marks ``key`` as the newest entry (creating it as ``empty``) and evicts the oldest
    over ``cap``; returns the evicted keys."""
    if key in table:
        table.move_to_end(key)
    else:
        table[key] = empty
    return _trim(table, cap)


def _trim(table: OrderedDict[str, Any], cap: int) -> list[str]:
    gone: list[str] = []
    while len(table) > cap:
        key, _ = table.popitem(last=False)
        gone.append(key)
    return gone


def _ban_key(text: str) -> str:
    """The source key of an address, or of a network no wider than one source."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is neither an address nor an IPv6 /64") from None
    if net.prefixlen < (32 if net.version == 4 else 64):
        raise ValueError(f"{text!r}: bans are per IPv4 address or IPv6 /64")
    return source_key(net.network_address)
