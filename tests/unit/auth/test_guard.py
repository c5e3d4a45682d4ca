"""The brute-force guard: delays, bans, lists, grouping, bounds and restart."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carteiro.auth.guard import (
    Guard,
    GuardPolicy,
    GuardVerdict,
    Refusal,
    guard_policy_from_settings,
)
from carteiro.store.security import Ban, LoginRecord
from carteiro.store.sqlite.security import SqliteSecurityStore

T0 = 1_700_000_000.0
ATTACKER = "203.0.113.5"


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class MemoryStore:
    """An in-memory SecurityStore that records what the guard wrote."""

    def __init__(self) -> None:
        self.bans: dict[tuple[str, str], Ban] = {}
        self.counters: dict[tuple[str, str], list[float]] = {}
        self.writes = 0
        self.fail = False

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def save_ban(self, ban: Ban) -> None:
        self._check()
        self.bans[(ban.kind, ban.key)] = ban

    async def delete_ban(self, kind: str, key: str) -> None:
        self._check()
        self.bans.pop((kind, key), None)

    async def active_bans(self, now: float) -> list[Ban]:
        return [b for b in self.bans.values() if b.until > now]

    async def save_counter(self, kind: str, key: str, failures: list[float]) -> None:
        self._check()
        self.writes += 1
        if failures:
            self.counters[(kind, key)] = list(failures)
        else:
            self.counters.pop((kind, key), None)

    async def load_counters(self, since: float) -> dict[tuple[str, str], list[float]]:
        out = {}
        for k, v in self.counters.items():
            recent = [t for t in v if t > since]
            if recent:
                out[k] = recent
        return out

    async def seen_network(self, account: str, network: str) -> bool:
        return False

    async def remember_network(self, account: str, network: str, when: float) -> None:
        pass

    async def record_login(self, entry: LoginRecord) -> None:
        pass

    async def recent_logins(self, account: str, limit: int = 50) -> list[LoginRecord]:
        return []

    def _check(self) -> None:
        if self.fail:
            raise OSError("disk on fire")


def make(policy: GuardPolicy | None = None, **kw):
    clock = Clock()
    store = MemoryStore()
    banned: list[Ban] = []
    guard = Guard(store, policy or GuardPolicy(), clock=clock, on_ban=banned.append, **kw)
    return guard, store, clock, banned


def fail_n(guard: Guard, n: int, ip: str = ATTACKER, account: str | None = None):
    async def go() -> list[GuardVerdict]:
        out = []
        for i in range(n):
            out.append(await guard.failure(ip, account if account is not None else f"u{i}@x"))
        return out

    return asyncio.run(go())


# --- delays -----------------------------------------------------------------------


def test_ip_delays_start_at_threshold_double_and_cap():
    guard, _, _, banned = make()
    verdicts = fail_n(guard, 9)  # distinct accounts: only the source counter grows
    assert [v.delay for v in verdicts] == [0, 0, 1, 2, 4, 8, 15, 15, 15]
    assert all(v.banned is None for v in verdicts)
    assert banned == []
    # delay_before agrees with the last verdict, whatever the account
    assert guard.delay_before(ATTACKER, "someone@else") == 15
    assert guard.delay_before("198.51.100.1", "someone@else") == 0


def test_delay_before_matches_failure_delay_each_step():
    guard, *_ = make()
    assert guard.delay_before(ATTACKER, "a@x") == 0
    for i in range(8):
        v = asyncio.run(guard.failure(ATTACKER, f"n{i}"))
        assert guard.delay_before(ATTACKER, f"other{i}") == v.delay


def test_custom_base_and_cap():
    policy = GuardPolicy(ip_delay_after=1, base_delay=0.5, max_delay=3.0, ip_ban_after=0)
    guard, *_ = make(policy)
    assert [v.delay for v in fail_n(guard, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_zero_thresholds_turn_mechanisms_off():
    policy = GuardPolicy(ip_delay_after=0, ip_ban_after=0, account_delay_after=0)
    guard, store, _, banned = make(policy)
    verdicts = fail_n(guard, 50, account="victim")
    assert {v.delay for v in verdicts} == {0}
    assert banned == [] and guard.check_connection(ATTACKER) is None
    assert store.counters  # still counted


def test_delay_does_not_depend_on_the_account_existing():
    # the guard cannot know; callers record both failures the same way
    guard, *_ = make()
    real = [v.delay for v in fail_n(guard, 9, ip="198.51.100.1", account="alice@example.com")]
    ghost = [v.delay for v in fail_n(guard, 9, ip="198.51.100.2", account="nobody@example.com")]
    assert real == ghost
    assert guard.delay_before("192.0.2.9", "alice@example.com") == guard.delay_before(
        "192.0.2.9", "nobody@example.com"
    )


# --- bans ---------------------------------------------------------------------------


def test_ban_at_threshold_refuses_connections_and_is_persisted():
    guard, store, clock, banned = make()
    verdicts = fail_n(guard, 10)
    assert all(v.banned is None for v in verdicts[:9])
    ban = verdicts[9].banned
    assert ban is not None
    assert (ban.kind, ban.key, ban.strikes) == ("ip", ATTACKER, 1)
    assert ban.created == T0 and ban.until == T0 + 3600
    assert banned == [ban]
    assert store.bans[("ip", ATTACKER)] == ban
    assert ("ip", ATTACKER) not in store.counters  # counter reset once banned
    refusal = guard.check_connection(ATTACKER)
    assert refusal == Refusal(ban.reason, T0 + 3600)
    assert "10 failed logins" in refusal.reason
    assert guard.check_connection("203.0.113.6") is None
    assert guard.bans() == [ban]
    clock.advance(3599)
    assert guard.check_connection(ATTACKER) is not None
    clock.advance(1)
    assert guard.check_connection(ATTACKER) is None
    assert guard.bans() == []


def test_failures_on_a_banned_connection_do_not_rebann():
    guard, _, _, banned = make()
    fail_n(guard, 10)
    verdicts = fail_n(guard, 15)  # a session opened before the ban keeps trying
    assert all(v.banned is None for v in verdicts)
    assert len(banned) == 1


def test_repeat_offenders_get_doubling_bans_up_to_the_cap():
    policy = GuardPolicy(ban_duration=3600, max_ban_duration=10_000)
    guard, _, clock, banned = make(policy)
    durations = []
    for _ in range(4):
        ban = fail_n(guard, 10)[-1].banned
        assert ban is not None
        durations.append((ban.strikes, ban.until - ban.created))
        clock.advance(ban.until - clock.t)  # serve the ban
    assert durations == [(1, 3600), (2, 7200), (3, 10_000), (4, 10_000)]
    assert "strike 4" in banned[-1].reason


def test_strikes_are_forgiven_after_the_memory_period():
    policy = GuardPolicy(ban_duration=100, max_ban_duration=1000)
    guard, _, clock, _ = make(policy)
    first = fail_n(guard, 10)[-1].banned
    clock.advance(100 + 1000)  # ban over, then max_ban_duration of good behaviour
    again = fail_n(guard, 10)[-1].banned
    assert first is not None and again is not None
    assert again.strikes == 1 and again.until - again.created == 100


def test_unban():
    guard, store, _, _ = make()
    fail_n(guard, 10)
    assert asyncio.run(guard.unban(ATTACKER)) is True
    assert guard.check_connection(ATTACKER) is None
    assert store.bans == {}
    assert asyncio.run(guard.unban(ATTACKER)) is False
    # strikes were forgotten too
    assert fail_n(guard, 10)[-1].banned.strikes == 1
    with pytest.raises(ValueError):
        asyncio.run(guard.unban("not an address"))
    with pytest.raises(ValueError):
        asyncio.run(guard.unban("10.0.0.0/8"))


def test_unban_accepts_the_ipv6_key():
    guard, *_ = make()
    fail_n(guard, 10, ip="2001:db8:5:6::1")
    assert asyncio.run(guard.unban("2001:db8:5:6::/64")) is True
    assert guard.check_connection("2001:db8:5:6::99") is None


# --- windows ------------------------------------------------------------------------


def test_window_expiry_is_sliding():
    guard, store, clock, _ = make()
    for step in (0, 500, 600):
        clock.t = T0 + step
        asyncio.run(guard.failure(ATTACKER, f"u{step}"))
    assert guard.delay_before(ATTACKER, "x") == 1
    clock.t = T0 + 901  # the first failure left the window
    assert guard.delay_before(ATTACKER, "x") == 0
    v = asyncio.run(guard.failure(ATTACKER, "y"))
    assert v.delay == 1
    assert store.counters[("ip", ATTACKER)] == [T0 + 500, T0 + 600, T0 + 901]
    clock.t = T0 + 901 + 900
    assert guard.delay_before(ATTACKER, "x") == 0
    # nine failures spread wider than the window never ban
    guard2, _, clock2, banned = make()
    for _ in range(30):
        asyncio.run(guard2.failure(ATTACKER, "z"))
        clock2.advance(100)
    assert banned == []


def test_lists_per_key_are_bounded():
    guard, store, _, _ = make()
    fail_n(guard, 1000, ip="127.0.0.1", account="victim")  # trusted: never banned
    assert 10 <= len(store.counters[("ip", "127.0.0.1")]) <= 11
    assert len(store.counters[("account", "victim")]) <= 5 + 4 + 1


# --- trusted networks and lists ---------------------------------------------------------


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_never_ban_networks_are_counted_but_not_delayed_or_banned(ip):
    guard, store, _, banned = make()
    verdicts = fail_n(guard, 40, ip=ip, account="alice")
    assert {v.delay for v in verdicts} == {0}
    assert all(v.banned is None for v in verdicts)
    assert banned == []
    assert guard.check_connection(ip) is None
    assert guard.delay_before(ip, "alice") == 0
    assert any(kind == "ip" for kind, _ in store.counters)  # counted, for audit
    # the account is slowed down for everybody else
    assert guard.delay_before("198.51.100.1", "alice") == 15


def test_custom_never_ban():
    policy = GuardPolicy(never_ban=(ipaddress.ip_network("10.0.0.0/8"),))
    guard, *_ = make(policy)
    assert all(v.banned is None for v in fail_n(guard, 20, ip="10.1.2.3"))
    assert fail_n(guard, 10, ip="127.0.0.1")[-1].banned is not None  # no longer trusted


def test_deny_and_allow_lists():
    net = ipaddress.ip_network
    policy = GuardPolicy(
        allow=(net("198.51.100.0/24"), net("2001:db8::/32"), net("127.0.0.1/32")),
        deny=(net("198.51.100.128/25"), net("127.0.0.1/32")),
    )
    guard, *_ = make(policy)
    assert guard.check_connection("198.51.100.1") is None
    assert guard.check_connection("2001:db8:ffff::1") is None
    assert guard.check_connection("::ffff:198.51.100.2") is None
    outside = guard.check_connection("203.0.113.1")
    assert outside is not None and outside.until is None and "allow" in outside.reason
    denied = guard.check_connection("198.51.100.200")  # deny wins over allow
    assert denied is not None and denied.until is None and "deny" in denied.reason
    assert guard.check_connection("127.0.0.1") is not None  # deny applies to trusted too
    with pytest.raises(ValueError):
        guard.check_connection("garbage")


def test_empty_allow_list_allows_everybody():
    guard, *_ = make(GuardPolicy(deny=(ipaddress.ip_network("192.0.2.0/24"),)))
    assert guard.check_connection("203.0.113.1") is None
    assert guard.check_connection("192.0.2.55") is not None


# --- address grouping -----------------------------------------------------------------


def test_ipv6_sources_are_grouped_by_64():
    guard, store, _, _ = make()
    verdicts = []
    for i in range(10):
        verdicts.append(asyncio.run(guard.failure(f"2001:db8:1:2::{i + 1:x}", f"u{i}")))
    assert [v.delay for v in verdicts[:7]] == [0, 0, 1, 2, 4, 8, 15]
    ban = verdicts[-1].banned
    assert ban is not None and ban.key == "2001:db8:1:2::/64"
    assert guard.check_connection("2001:db8:1:2:ffff:ffff:ffff:ffff") is not None
    assert guard.check_connection("2001:db8:1:3::1") is None
    assert ("ip", "2001:db8:1:2::/64") in store.bans


def test_ipv4_mapped_addresses_count_as_ipv4():
    guard, *_ = make()
    for i in range(5):
        asyncio.run(guard.failure("::ffff:192.0.2.1", f"a{i}"))
    for i in range(5):
        last = asyncio.run(guard.failure("192.0.2.1", f"b{i}"))
    assert last.banned is not None and last.banned.key == "192.0.2.1"
    assert guard.check_connection("::ffff:192.0.2.1") is not None
    assert guard.check_connection("192.0.2.1") is not None


# --- accounts -----------------------------------------------------------------------


def test_account_counters_slow_down_but_never_ban():
    guard, _, _, banned = make()
    delays = []
    for i in range(30):  # a distributed attack: every attempt from a new source
        v = asyncio.run(guard.failure(f"198.51.{i // 250}.{i % 250 + 1}", " Alice@Example.COM "))
        delays.append(v.delay)
        assert v.banned is None
    assert delays[:9] == [0, 0, 0, 0, 1, 2, 4, 8, 15]
    assert set(delays[9:]) == {15}
    assert banned == [] and guard.bans() == []
    assert guard.delay_before("192.0.2.200", "alice@example.com") == 15  # normalised
    assert guard.delay_before("192.0.2.200", "bob@example.com") == 0


def test_success_clears_the_source_but_not_other_sources_failures_on_the_account():
    guard, store, _, _ = make()
    a, b, c = "192.0.2.1", "192.0.2.2", "192.0.2.3"

    async def go() -> None:
        for _ in range(4):
            await guard.failure(b, "carol")
        for _ in range(2):
            await guard.failure(a, "carol")

    asyncio.run(go())
    assert guard.delay_before(c, "carol") == 2  # 6 failures on the account
    assert guard.delay_before(a, "x") == 0  # 2 from a: below the source threshold
    assert guard.delay_before(b, "x") == 2  # 4 from b
    asyncio.run(guard.success(a, "Carol"))
    assert guard.delay_before(c, "carol") == 0  # b's 4 remain, below 5
    assert len(store.counters[("account", "carol")]) == 4
    assert ("ip", a) not in store.counters
    assert guard.delay_before(b, "x") == 2  # b's own counter is untouched
    asyncio.run(guard.failure(b, "carol"))
    assert guard.delay_before(c, "carol") == 1  # 5: b's failures were kept


def test_success_clears_the_source_counter():
    guard, store, _, _ = make()
    fail_n(guard, 6)
    assert guard.delay_before(ATTACKER, "x") == 8
    writes = store.writes
    asyncio.run(guard.success(ATTACKER, "me@x"))
    assert guard.delay_before(ATTACKER, "x") == 0
    assert ("ip", ATTACKER) not in store.counters
    assert store.writes == writes + 1
    asyncio.run(guard.success(ATTACKER, "me@x"))  # nothing to clear: no write
    assert store.writes == writes + 1


# --- memory bounds ------------------------------------------------------------------


def test_small_caps_evict_the_oldest_keys_and_their_stored_counters():
    policy = GuardPolicy(max_ip_keys=2, max_account_keys=3)
    guard, store, _, _ = make(policy)

    async def go() -> None:
        for i in range(6):
            await guard.failure(f"192.0.2.{i}", f"user{i}")

    asyncio.run(go())
    assert guard.stats()["ip_keys"] == 2 and guard.stats()["account_keys"] == 3
    assert sorted(k for kind, k in store.counters if kind == "account") == [
        "user3",
        "user4",
        "user5",
    ]
    assert sorted(k for kind, k in store.counters if kind == "ip") == ["192.0.2.4", "192.0.2.5"]


@pytest.mark.slow
def test_spray_of_random_usernames_stays_bounded():
    guard, store, _, _ = make()
    rng = random.Random(7)

    async def go() -> None:
        for i in range(200_000):
            ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
            await guard.failure(ip, f"{rng.getrandbits(64):x}@example.com" + "x" * 500)

    asyncio.run(go())
    stats = guard.stats()
    assert stats["account_keys"] == 100_000
    assert stats["ip_keys"] == 100_000
    assert len(store.counters) == 200_000  # evicted keys were deleted from the store too
    assert max(len(k) for _, k in store.counters) <= 320  # long names are hashed


# --- persistence ----------------------------------------------------------------------


def test_store_errors_are_logged_not_raised(caplog):
    guard, store, _, banned = make()
    store.fail = True
    with caplog.at_level(logging.ERROR, logger="carteiro.auth.guard"):
        verdicts = fail_n(guard, 10)
    assert verdicts[-1].banned is not None and banned  # the defence still works
    assert guard.check_connection(ATTACKER) is not None
    assert "cannot save" in caplog.text


def test_bans_and_counters_survive_a_restart(tmp_path):
    clock = Clock()
    path = tmp_path / "security.db"

    async def before() -> tuple[Ban, float, float]:
        store = SqliteSecurityStore(path)
        await store.open()
        guard = Guard(store, GuardPolicy(), clock=clock)
        await guard.load()
        for i in range(10):
            v = await guard.failure(ATTACKER, f"u{i}")
        assert v.banned is not None
        for _ in range(4):
            await guard.failure("2001:db8:7::1", "Dave@Example.com")
        for _ in range(3):
            await guard.failure("198.51.100.7", "dave@example.com")
        ip_delay = guard.delay_before("2001:db8:7::2", "nobody")
        account_delay = guard.delay_before("192.0.2.1", "dave@example.com")
        await store.close()
        return v.banned, ip_delay, account_delay

    async def after() -> tuple[Guard, SqliteSecurityStore]:
        store = SqliteSecurityStore(path)
        await store.open()
        guard = Guard(store, GuardPolicy(), clock=clock)
        await guard.load()
        return guard, store

    ban, ip_delay, account_delay = asyncio.run(before())
    assert (ip_delay, account_delay) == (2, 4)
    clock.advance(60)
    guard, store = asyncio.run(after())
    assert guard.bans() == [ban]
    assert guard.check_connection(ATTACKER) == Refusal(ban.reason, ban.until)
    assert guard.delay_before("2001:db8:7::2", "nobody") == ip_delay
    assert guard.delay_before("192.0.2.1", "DAVE@example.com") == account_delay
    asyncio.run(store.close())

    # after the window the counters are gone, the ban still holds
    clock.advance(900)
    guard, store = asyncio.run(after())
    assert guard.delay_before("2001:db8:7::2", "nobody") == 0
    assert guard.delay_before("192.0.2.1", "dave@example.com") == 0
    assert guard.check_connection(ATTACKER) is not None
    asyncio.run(store.close())

    # after the ban, a restart still remembers the strike
    clock.t = ban.until + 10
    guard, store = asyncio.run(after())
    assert guard.check_connection(ATTACKER) is None

    async def again() -> Ban | None:
        for i in range(10):
            v = await guard.failure(ATTACKER, f"w{i}")
        await store.close()
        return v.banned

    second = asyncio.run(again())
    assert second is not None and second.strikes == 2
    assert second.until - second.created == 7200


# --- settings -----------------------------------------------------------------------


def test_policy_from_settings():
    policy = guard_policy_from_settings(
        {
            "ip_delay_after": 2,
            "ip_ban_after": 6,
            "account_delay_after": 4,
            "window": 600,
            "base_delay": 0.5,
            "max_delay": 8,
            "ban_duration": 1800,
            "max_ban_duration": 86400.0,
            "never_ban": ["10.0.0.0/8", "fd00::/8"],
            "allow": [],
            "deny": ["192.0.2.7", "192.0.2.9/24"],
        }
    )
    assert policy.ip_ban_after == 6 and policy.window == 600.0
    assert isinstance(policy.window, float) and policy.max_delay == 8.0
    assert policy.never_ban == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert policy.deny == (
        ipaddress.ip_network("192.0.2.7/32"),
        ipaddress.ip_network("192.0.2.0/24"),
    )
    assert guard_policy_from_settings({}) == GuardPolicy()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"ip_ban_after": -1}, "ip_ban_after"),
        ({"ip_ban_after": 2.5}, "ip_ban_after"),
        ({"ip_ban_after": True}, "ip_ban_after"),
        ({"ip_ban_after": "10"}, "ip_ban_after"),
        ({"window": 0}, "window"),
        ({"window": -5}, "window"),
        ({"window": float("nan")}, "window"),
        ({"base_delay": 5, "max_delay": 1}, "max_delay"),
        ({"ban_duration": 100, "max_ban_duration": 10}, "max_ban_duration"),
        ({"max_ip_keys": 0}, "max_ip_keys"),
        ({"never_ban": "10.0.0.0/8"}, "never_ban"),
        ({"deny": ["10.0.0.0/33"]}, "deny"),
        ({"allow": [10]}, "allow"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_policy_from_settings_rejects_bad_values(raw, fragment):
    with pytest.raises(ValueError) as info:
        guard_policy_from_settings(raw)
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert message.startswith("[defence]")


def _settings_of(policy: GuardPolicy) -> dict:
    out = {}
    for name in GuardPolicy.__dataclass_fields__:
        value = getattr(policy, name)
        out[name] = [str(n) for n in value] if isinstance(value, tuple) else value
    return out


_networks = st.lists(
    st.one_of(
        st.builds(
            lambda a, p: ipaddress.ip_network(f"{ipaddress.IPv4Address(a)}/{p}", strict=False),
            st.integers(0, 2**32 - 1),
            st.integers(0, 32),
        ),
        st.builds(
            lambda a, p: ipaddress.ip_network(f"{ipaddress.IPv6Address(a)}/{p}", strict=False),
            st.integers(0, 2**128 - 1),
            st.integers(0, 128),
        ),
    ),
    max_size=4,
).map(tuple)


@settings(max_examples=150, deadline=None)
@given(
    counts=st.tuples(*[st.integers(0, 10**6)] * 3),
    base=st.floats(0, 100),
    extra=st.floats(0, 100),
    ban=st.floats(0.001, 1e6),
    ban_extra=st.floats(0, 1e6),
    window=st.floats(0.001, 1e6),
    nets=st.tuples(_networks, _networks, _networks),
)
def test_policy_settings_round_trip(counts, base, extra, ban, ban_extra, window, nets):
    policy = GuardPolicy(
        ip_delay_after=counts[0],
        ip_ban_after=counts[1],
        account_delay_after=counts[2],
        window=window,
        base_delay=base,
        max_delay=base + extra,
        ban_duration=ban,
        max_ban_duration=ban + ban_extra,
        never_ban=nets[0],
        allow=nets[1],
        deny=nets[2],
    )
    assert guard_policy_from_settings(_settings_of(policy)) == policy


_toml_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.text(max_size=20),
    ),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=8,
)
_keys = st.sampled_from(list(GuardPolicy.__dataclass_fields__) + ["other", ""])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _toml_values, max_size=5))
def test_policy_from_random_settings_returns_a_policy_or_value_error(raw):
    try:
        policy = guard_policy_from_settings(raw)
    except ValueError as exc:
        assert str(exc).startswith("[defence]") and "\n" not in str(exc)
    else:
        assert isinstance(policy, GuardPolicy)


def test_concurrent_failures_ban_once_and_persist_the_last_state(tmp_path):
    clock = Clock()
    banned: list[Ban] = []

    async def main() -> tuple[float, float]:
        store = SqliteSecurityStore(tmp_path / "security.db")
        await store.open()
        guard = Guard(store, GuardPolicy(), clock=clock, on_ban=banned.append)
        verdicts = await asyncio.gather(
            *(guard.failure(f"2001:db8:9:9::{i + 1:x}", "eve@example.com") for i in range(30))
        )
        assert sum(v.banned is not None for v in verdicts) == 1
        before = (
            guard.delay_before("2001:db8:9:9::ffff", "x"),
            guard.delay_before("192.0.2.1", "eve@example.com"),
        )
        await store.close()
        await store.open()  # a restart: what was written last is what memory holds
        restarted = Guard(store, GuardPolicy(), clock=clock)
        await restarted.load()
        after = (
            restarted.delay_before("2001:db8:9:9::ffff", "x"),
            restarted.delay_before("192.0.2.1", "eve@example.com"),
        )
        assert restarted.bans() == banned
        await store.close()
        return before, after

    before, after = asyncio.run(main())
    assert len(banned) == 1 and banned[0].key == "2001:db8:9:9::/64"
    assert before == after == (15, 15)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=50))
def test_check_connection_of_random_text(text):
    guard, *_ = make(GuardPolicy(deny=(ipaddress.ip_network("10.0.0.0/8"),)))
    try:
        refusal = guard.check_connection(text)
    except ValueError:
        return
    assert refusal is None or isinstance(refusal, Refusal)
