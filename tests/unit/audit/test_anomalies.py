from __future__ import annotations

import asyncio
import dataclasses
import datetime
import random
import tracemalloc
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carteiro.audit.anomalies import (
    FIRST_LOGIN_MARKER,
    KINDS,
    Alert,
    AnomalyPolicy,
    Detectors,
    anomaly_policy_from_settings,
    network_of,
)

MONDAY = datetime.datetime(2026, 11, 23, tzinfo=datetime.UTC).timestamp()
HOUR = 3600.0
MiB = 1024 * 1024
ALICE = "alice@example.org"


class Clock:
    def __init__(self, now: float = MONDAY) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class History:
    """An in-memory NetworkHistory; yields to the loop on every call, like a store."""

    def __init__(self, known: dict[str, Iterable[str]] | None = None) -> None:
        self.networks: dict[str, set[str]] = {k: set(v) for k, v in (known or {}).items()}
        self.remembered: list[tuple[str, str, float]] = []

    async def seen_network(self, account: str, network: str) -> bool:
        await asyncio.sleep(0)
        self.lookups = getattr(self, "lookups", 0) + 1
        return network in self.networks.get(account, set())

    async def remember_network(self, account: str, network: str, when: float) -> None:
        await asyncio.sleep(0)
        self.networks.setdefault(account, set()).add(network)
        self.remembered.append((account, network, when))


def known_alice(*networks: str) -> History:
    return History({ALICE: {FIRST_LOGIN_MARKER, *networks}})


def login(detectors: Detectors, account: str, source: str) -> list[Alert]:
    return asyncio.run(detectors.login_succeeded(account, source))


# --- the scripted normal day ---------------------------------------------------------
def test_a_normal_day_raises_no_alert() -> None:
    clock = Clock(MONDAY + 7 * HOUR)
    history = History(
        {
            ALICE: {FIRST_LOGIN_MARKER, "198.51.100.0/24", "203.0.113.0/24", "2001:db8:aa::/48"},
            "bob@example.org": {FIRST_LOGIN_MARKER, "198.51.100.0/24"},
        }
    )
    detectors = Detectors(AnomalyPolicy(), history, clock=clock)
    rng = random.Random(7)
    alerts: list[Alert] = []

    async def day() -> None:
        session = 0
        while clock.now < MONDAY + 23 * HOUR:
            hour = (clock.now - MONDAY) / HOUR
            # home before 9 and after 18 (address changes within the ISP's /24), work
            # in between, the phone on IPv6 now and then, webmail through loopback
            if 9 <= hour < 18:
                source = f"203.0.113.{rng.randint(1, 254)}"
            elif rng.random() < 0.3:
                source = f"2001:db8:aa:{rng.randint(0, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"
            else:
                source = f"198.51.100.{rng.randint(1, 254)}"
            if rng.random() < 0.1:
                source = "127.0.0.1"
            session += 1
            sid = f"s{session}"
            alerts.extend(await detectors.login_succeeded(ALICE, source))
            for _ in range(rng.randint(0, 20)):  # read a few messages
                alerts.extend(detectors.downloaded(ALICE, sid, rng.randint(2_000, 300_000)))
            if rng.random() < 0.3:  # delete a few, some straight to Trash
                trash = rng.random() < 0.5
                count = rng.randint(1, 4)
                alerts.extend(detectors.deleted(ALICE, "INBOX", count, moved_to_trash=trash))
            detectors.session_closed(sid)
            alerts.extend(await detectors.login_succeeded("bob@example.org", "198.51.100.9"))
            clock.now += 10 * 60
        # two typos, one on each device, and bob's forgotten caps lock
        alerts.extend(detectors.login_failed(ALICE, "198.51.100.7"))
        alerts.extend(detectors.login_failed("Alice@Example.org", "203.0.113.5"))
        for _ in range(3):
            alerts.extend(detectors.login_failed("bob@example.org", "198.51.100.9"))
        # an attachment-heavy mailbox synced once on the laptop, and Trash emptied
        alerts.extend(detectors.downloaded(ALICE, "sync", 300 * MiB))
        alerts.extend(detectors.deleted(ALICE, "Trash", 350))
        alerts.extend(detectors.deleted(ALICE, "Archive/2019", 40))

    asyncio.run(day())
    assert alerts == []
    assert all(net != "127.0.0.0/24" for _, net, _ in history.remembered)


# --- new network -----------------------------------------------------------------------
def test_new_network_alerts_once_and_remembers() -> None:
    clock = Clock()
    history = known_alice("198.51.100.0/24")
    detectors = Detectors(AnomalyPolicy(), history, clock=clock)
    assert login(detectors, ALICE, "198.51.100.20") == []
    [alert] = login(detectors, ALICE, "192.0.2.55")
    assert alert == Alert(
        kind="new-network",
        severity="info",
        account=ALICE,
        source="192.0.2.55",
        summary=f"New sign-in to {ALICE} from 192.0.2.55 (network 192.0.2.0/24)",
        details={"network": "192.0.2.0/24", "address": "192.0.2.55"},
        at=clock.now,
    )
    assert (ALICE, "192.0.2.0/24", clock.now) in history.remembered
    assert login(detectors, ALICE, "192.0.2.99") == []  # same /24: known now


def test_the_first_login_ever_only_records() -> None:
    history = History()
    detectors = Detectors(AnomalyPolicy(), history, clock=Clock())
    assert login(detectors, ALICE, "192.0.2.1") == []
    assert history.networks[ALICE] == {FIRST_LOGIN_MARKER, "192.0.2.0/24"}
    [alert] = login(detectors, ALICE, "198.51.100.1")
    assert alert.kind == "new-network"


@pytest.mark.parametrize("source", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_never_alerts_nor_counts(source: str) -> None:
    history = known_alice("198.51.100.0/24")
    detectors = Detectors(AnomalyPolicy(), history, clock=Clock())
    assert login(detectors, ALICE, source) == []
    assert history.remembered == []


def test_not_an_ip_address_is_ignored() -> None:
    history = known_alice()
    detectors = Detectors(AnomalyPolicy(), history, clock=Clock())
    assert login(detectors, ALICE, "unix:/run/carteiro.sock") == []
    assert history.remembered == []


def test_networks_are_ipv4_24_and_ipv6_48_by_default_and_configurable() -> None:
    policy = AnomalyPolicy()
    assert network_of("192.0.2.77", policy) == "192.0.2.0/24"
    assert network_of("::ffff:192.0.2.77", policy) == "192.0.2.0/24"
    assert network_of("2001:db8:1:2::1", policy) == network_of("2001:db8:1:ffff::9", policy)
    assert network_of("2001:db8:1::1", policy) == "2001:db8:1::/48"
    assert network_of("fe80::1%eth0", policy) == "fe80::/48"
    wide = AnomalyPolicy(ipv4_prefix=16, ipv6_prefix=32)
    assert network_of("192.0.2.77", wide) == "192.0.0.0/16"
    assert network_of("2001:db8:1::1", wide) == "2001:db8::/32"

    history = known_alice("192.0.0.0/16")
    assert login(Detectors(wide, history, clock=Clock()), ALICE, "192.0.99.1") == []


def test_concurrent_logins_from_one_new_network_alert_once() -> None:
    history = known_alice("198.51.100.0/24")
    detectors = Detectors(AnomalyPolicy(), history, clock=Clock())

    async def both() -> tuple[list[Alert], list[Alert]]:
        return await asyncio.gather(
            detectors.login_succeeded(ALICE, "192.0.2.1"),
            detectors.login_succeeded(ALICE, "192.0.2.2"),
        )

    results = asyncio.run(both())
    assert sorted(len(r) for r in results) == [0, 1]


# --- targeted guessing -----------------------------------------------------------------
def test_targeted_guessing_fires_once_per_window_then_rearms() -> None:
    clock = Clock()
    detectors = Detectors(AnomalyPolicy(), History(), clock=clock)
    fired: list[Alert] = []
    for n in range(9):  # 9 failures from 3 addresses: not yet
        fired += detectors.login_failed(ALICE, f"192.0.2.{n % 3}")
        clock.now += 30
    assert fired == []
    [alert] = detectors.login_failed("ALICE@example.org", "192.0.2.200")
    assert alert.kind == "targeted-guessing" and alert.severity == "warning"
    assert alert.account == "ALICE@example.org" and alert.source == "192.0.2.200"
    assert alert.details == {
        "failures": 10,
        "threshold": 10,
        "window": 900.0,
        "sources": 4,
        "last_source": "192.0.2.200",
    }
    assert alert.summary == "10 failed logins on ALICE@example.org within 15 min"
    for _ in range(50):  # the attack goes on within the window: no storm
        clock.now += 5
        assert detectors.login_failed(ALICE, "192.0.2.200") == []
    clock.now = alert.at + 901  # re-armed; needs ten fresh failures
    again: list[Alert] = []
    for _ in range(10):
        again += detectors.login_failed(ALICE, "192.0.2.200")
    assert [a.kind for a in again] == ["targeted-guessing"]


def test_slow_failures_do_not_count_as_guessing() -> None:
    clock = Clock()
    detectors = Detectors(AnomalyPolicy(), History(), clock=clock)
    for _ in range(100):  # one every two minutes: never ten within fifteen minutes
        assert detectors.login_failed(ALICE, "192.0.2.1") == []
        clock.now += 120


# --- password spraying -----------------------------------------------------------------
def test_password_spraying_fires_once_for_one_source_on_many_accounts() -> None:
    clock = Clock()
    detectors = Detectors(AnomalyPolicy(), History(), clock=clock)
    alerts: list[Alert] = []
    for n in range(30):
        alerts += detectors.login_failed(f"user{n}@example.org", "192.0.2.66")
        clock.now += 60
    [alert] = alerts
    assert alert.kind == "password-spraying" and alert.severity == "critical"
    assert alert.account is None and alert.source == "192.0.2.66"
    assert alert.details == {
        "accounts": 10,
        "threshold": 10,
        "window": 3600.0,
        "source_key": "192.0.2.66",
    }
    assert alert.at == MONDAY + 9 * 60


def test_spraying_from_rotating_ipv6_addresses_is_one_source() -> None:
    detectors = Detectors(AnomalyPolicy(), History(), clock=Clock())
    alerts = [
        a for n in range(10) for a in detectors.login_failed(f"u{n}", f"2001:db8:5:6::{n + 1:x}")
    ]
    assert [a.details["source_key"] for a in alerts] == ["2001:db8:5:6::/64"]


def test_one_account_many_times_is_not_spraying() -> None:
    clock = Clock()
    detectors = Detectors(AnomalyPolicy(guessing_failures=1000), History(), clock=clock)
    for _ in range(50):
        assert detectors.login_failed("bob", "192.0.2.66") == []


def test_spraying_counts_only_within_the_window() -> None:
    clock = Clock()
    detectors = Detectors(AnomalyPolicy(), History(), clock=clock)
    for n in range(30):  # a new account every 7 minutes: at most 9 in an hour
        assert detectors.login_failed(f"user{n}", "192.0.2.66") == []
        clock.now += 7 * 60


# --- large downloads -------------------------------------------------------------------
def test_large_download_per_session_fires_once() -> None:
    clock = Clock()
    policy = AnomalyPolicy(download_session_bytes=100 * MiB, download_daily_bytes=10**12)
    detectors = Detectors(policy, History(), clock=clock)
    alerts: list[Alert] = []
    for _ in range(30):
        alerts += detectors.downloaded(ALICE, "s1", 10 * MiB)
    [alert] = alerts
    assert alert.kind == "large-download" and alert.account == ALICE
    assert alert.details == {"scope": "session", "bytes": 110 * MiB, "threshold": 100 * MiB}
    assert alert.summary == f"110.0 MiB downloaded from {ALICE} in one session"
    detectors.session_closed("s1")
    assert detectors.downloaded(ALICE, "s2", 50 * MiB) == []


def test_large_download_per_account_per_utc_day() -> None:
    clock = Clock(MONDAY + 20 * HOUR)
    policy = AnomalyPolicy(download_session_bytes=10**12, download_daily_bytes=500 * MiB)
    detectors = Detectors(policy, History(), clock=clock)
    alerts: list[Alert] = []
    for n in range(8):  # eight sessions of 100 MiB, each closed
        alerts += detectors.downloaded(ALICE, f"s{n}", 100 * MiB)
        detectors.session_closed(f"s{n}")
        clock.now += 60
    assert [(a.details["scope"], a.details["bytes"]) for a in alerts] == [("day", 600 * MiB)]
    assert detectors.downloaded("bob@example.org", "b", 400 * MiB) == []  # per account
    clock.now = MONDAY + 24 * HOUR + 1  # Tuesday, UTC: counted afresh
    assert detectors.downloaded(ALICE, "t1", 400 * MiB) == []
    assert [a.details["scope"] for a in detectors.downloaded(ALICE, "t2", 200 * MiB)] == ["day"]


# --- mass deletion ---------------------------------------------------------------------
def test_mass_deletion_fires_once_per_window() -> None:
    clock = Clock()
    detectors = Detectors(AnomalyPolicy(), History(), clock=clock)
    alerts: list[Alert] = []
    for n in range(12):  # 100 at a time, every 30 s; half moved to Trash
        alerts += detectors.deleted(
            ALICE, "INBOX" if n % 2 else "Archive", 100, moved_to_trash=n % 2 == 0
        )
        clock.now += 30
    [alert] = alerts
    assert alert.kind == "mass-deletion" and alert.account == ALICE
    assert alert.details == {
        "messages": 500,
        "moved_to_trash": 300,
        "threshold": 500,
        "window": 900.0,
        "mailboxes": "Archive, INBOX",
    }
    assert alert.at == MONDAY + 4 * 30
    clock.now = alert.at + 901
    assert [a.kind for a in detectors.deleted(ALICE, "INBOX", 600)] == ["mass-deletion"]


def test_slow_deletions_and_emptying_trash_are_normal() -> None:
    clock = Clock()
    detectors = Detectors(AnomalyPolicy(), History(), clock=clock)
    for _ in range(100):  # 40 every 5 minutes: at most 120 in 15 minutes
        assert detectors.deleted(ALICE, "INBOX", 40) == []
        clock.now += 300
    for trash in ("Trash", "INBOX.Trash", "Junk", "Deleted Items", "spam"):
        assert detectors.deleted(ALICE, trash, 5000) == []
    # moving everything *into* Trash is what counts
    assert [a.kind for a in detectors.deleted(ALICE, "Trash", 600, moved_to_trash=True)] == [
        "mass-deletion"
    ]


# --- policy ----------------------------------------------------------------------------
def test_disabled_detectors_stay_silent() -> None:
    policy = AnomalyPolicy(disabled=frozenset(KINDS))
    history = known_alice()
    detectors = Detectors(policy, history, clock=Clock())
    assert login(detectors, ALICE, "192.0.2.1") == []
    assert history.remembered == []
    for n in range(100):
        assert detectors.login_failed(f"u{n % 20}", "192.0.2.1") == []
    assert detectors.downloaded(ALICE, "s", 10**13) == []
    assert detectors.deleted(ALICE, "INBOX", 10**6) == []


def test_policy_from_settings() -> None:
    policy = anomaly_policy_from_settings(
        {
            "ipv4_prefix": 16,
            "guessing_failures": 5,
            "guessing_window": 60,
            "download_daily_bytes": 1_000_000,
            "disabled": ["large-download"],
            "deletion_exempt_mailboxes": ["Papierkorb"],
        }
    )
    assert policy == dataclasses.replace(
        AnomalyPolicy(),
        ipv4_prefix=16,
        guessing_failures=5,
        guessing_window=60.0,
        download_daily_bytes=1_000_000,
        disabled=frozenset({"large-download"}),
        deletion_exempt_mailboxes=frozenset({"papierkorb"}),
    )
    assert anomaly_policy_from_settings({}) == AnomalyPolicy()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"guesing_failures": 3}, "anomalies.guesing_failures: unknown setting"),
        ({"guessing_failures": "10"}, "expected a whole number"),
        ({"guessing_failures": True}, "expected a whole number"),
        ({"guessing_failures": 1}, "out of range"),
        ({"ipv6_prefix": 129}, "out of range"),
        ({"spraying_window": 0}, "not a positive number"),
        ({"spraying_window": float("nan")}, "not a positive number"),
        ({"deletion_window": "1h"}, "expected a number of seconds"),
        ({"disabled": "large-download"}, "expected a list"),
        ({"disabled": ["huge-download"]}, "unknown detector 'huge-download'"),
        ({"deletion_exempt_mailboxes": [1]}, "every item must be a string"),
    ],
)
def test_policy_errors_are_one_line(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        anomaly_policy_from_settings(raw)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("anomalies.")


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.one_of(st.text(max_size=20), st.integers()), max_size=5),
    st.lists(st.sampled_from(KINDS), max_size=5),
)
KEYS = st.sampled_from([f.name for f in dataclasses.fields(AnomalyPolicy)] + ["other"])


@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_policy_parser_returns_a_policy_or_a_one_line_value_error(raw: dict[str, Any]) -> None:
    try:
        policy = anomaly_policy_from_settings(raw)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(policy, AnomalyPolicy)
        assert policy.guessing_failures >= 2 and policy.guessing_window > 0


# --- bounded memory --------------------------------------------------------------------
def test_a_spray_of_random_names_and_sources_does_not_grow_memory() -> None:
    clock = Clock()
    detectors = Detectors(AnomalyPolicy(max_tracked=100), History(), clock=clock)
    rng = random.Random(1)

    def burst(n: int) -> None:
        for _ in range(n):
            name = f"{rng.getrandbits(64):x}"
            source = f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.0.{rng.randint(1, 254)}"
            detectors.login_failed(name, source)
            detectors.downloaded(name, f"session-{rng.getrandbits(64)}", 10)
            detectors.deleted(name, "INBOX", 1)
            clock.now += 0.01

    burst(5_000)
    assert detectors.tracked_keys() <= 7 * 100
    tracemalloc.start()
    try:
        burst(1_000)
        before, _ = tracemalloc.get_traced_memory()
        burst(5_000)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert detectors.tracked_keys() <= 7 * 100
    assert after - before < 64 * 1024


def test_one_key_hammered_from_everywhere_stays_small() -> None:
    clock = Clock()
    detectors = Detectors(AnomalyPolicy(max_tracked=100), History(), clock=clock)
    rng = random.Random(2)
    tracemalloc.start()
    try:
        for n in range(1_000):  # warm-up
            detectors.login_failed(ALICE, f"10.{rng.randint(0, 255)}.{n % 256}.1")
            detectors.login_failed(f"x{n}", "192.0.2.66")
        before, _ = tracemalloc.get_traced_memory()
        for n in range(5_000):  # one account from many sources, one source on many names
            detectors.login_failed(ALICE, f"10.{rng.randint(0, 255)}.{n % 256}.1")
            detectors.login_failed(f"y{n}", "192.0.2.66")
            clock.now += 0.01
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert detectors.tracked_keys() <= 2 * 100
    assert after - before < 64 * 1024


def test_a_known_network_is_looked_up_once() -> None:
    """Logins from a network the history knows ask the store once, then never again
    (the history never forgets a network); a new network still raises its alert."""
    history = known_alice("198.51.100.0/24")
    detectors = Detectors(AnomalyPolicy(), history, clock=Clock())

    async def run() -> None:
        for _ in range(5):
            assert await detectors.login_succeeded(ALICE, "198.51.100.7") == []
        assert history.lookups == 1
        alerts = await detectors.login_succeeded(ALICE, "203.0.113.9")
        assert [a.kind for a in alerts] == ["new-network"]

    asyncio.run(run())
