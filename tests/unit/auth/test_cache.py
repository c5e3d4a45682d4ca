"""The verified-password cache on its own: expiry, size bound, keyed digests, and that
it holds neither passwords nor stored hashes."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from carteiro.auth.cache import CredentialCache

PASSWORD = "correct horse battery staple"
STORED = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(ttl: float = 60, size: int = 100) -> tuple[CredentialCache, Clock]:
    clock = Clock()
    return CredentialCache(ttl, size, clock=clock), clock


def test_a_remembered_password_hits_and_others_miss() -> None:
    cache, _ = make()
    good = cache.digest(1, "a@example.org", STORED, PASSWORD)
    assert not cache.verified(1, good)  # nothing remembered yet
    cache.remember(1, good)
    assert cache.verified(1, good)
    assert not cache.verified(1, cache.digest(1, "a@example.org", STORED, "guess"))
    assert not cache.verified(2, good)  # another account
    assert cache.verified(1, good)  # a wrong guess did not evict the owner's entry
    assert (cache.stats.hits, cache.stats.misses, cache.stats.stores) == (2, 3, 1)


def test_entries_expire_a_fixed_ttl_after_the_verification() -> None:
    cache, clock = make(ttl=60)
    good = cache.digest(1, "a@example.org", STORED, PASSWORD)
    cache.remember(1, good)
    clock.t += 59
    assert cache.verified(1, good)  # a hit does not extend the entry's life
    clock.t += 1
    assert not cache.verified(1, good)
    assert len(cache) == 0  # the expired entry is gone
    cache.remember(1, good)  # a fresh verification starts a new period
    clock.t += 30
    assert cache.verified(1, good)


def test_size_is_bounded_least_recently_used_first() -> None:
    cache, _ = make(size=3)
    digests = {i: cache.digest(i, f"u{i}@example.org", STORED, PASSWORD) for i in range(1, 5)}
    for i in (1, 2, 3):
        cache.remember(i, digests[i])
    assert cache.verified(1, digests[1])  # 1 is now the most recently used
    cache.remember(4, digests[4])
    assert len(cache) == 3 and cache.stats.evictions == 1
    assert not cache.verified(2, digests[2])  # the least recently used went
    assert all(cache.verified(i, digests[i]) for i in (1, 3, 4))


def test_one_entry_per_account_and_forget() -> None:
    cache, _ = make()
    old = cache.digest(1, "a@example.org", STORED, PASSWORD)
    new = cache.digest(1, "a@example.org", STORED + "x", "new password")
    cache.remember(1, old)
    cache.remember(1, new)  # a later verification replaces the earlier one
    assert len(cache) == 1
    assert not cache.verified(1, old) and cache.verified(1, new)
    cache.forget(1)
    cache.forget(99)  # unknown: nothing happens
    assert not cache.verified(1, new)
    cache.remember(1, new)
    cache.clear()
    assert len(cache) == 0


def test_digests_are_keyed_and_bind_every_field() -> None:
    a = CredentialCache(60, 10, secret=b"k" * 32)
    same = CredentialCache(60, 10, secret=b"k" * 32)
    other = CredentialCache(60, 10)  # a random secret, as every process makes
    base = a.digest(1, "a@example.org", STORED, PASSWORD)
    assert len(base) == 32
    assert same.digest(1, "a@example.org", STORED, PASSWORD) == base
    assert other.digest(1, "a@example.org", STORED, PASSWORD) != base
    assert a.digest(1, "A@Example.org", STORED, PASSWORD) == base  # addresses fold case
    variants = {
        a.digest(2, "a@example.org", STORED, PASSWORD),
        a.digest(1, "b@example.org", STORED, PASSWORD),
        a.digest(1, "a@example.org", STORED + "A", PASSWORD),
        a.digest(1, "a@example.org", STORED, PASSWORD + "!"),
        # field boundaries: moving characters from one field to the next changes it
        a.digest(1, "a@example.org", STORED + PASSWORD[:3], PASSWORD[3:]),
    }
    assert base not in variants and len(variants) == 5


def _reachable_data(root: object) -> list[Any]:
    """Every str, bytes and number reachable from the cache's own data (not code)."""
    seen: set[int] = set()
    out: list[Any] = []
    todo: list[object] = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, str | bytes | bytearray | int | float):
            out.append(obj)
        elif isinstance(obj, dict | list | tuple | set | frozenset) or type(obj).__module__ in {
            "carteiro.auth.cache",
            "collections",
        }:
            todo.extend(gc.get_referents(obj))
    return out


def test_the_cache_holds_neither_passwords_nor_stored_hashes() -> None:
    cache, _ = make()
    for i in range(1, 4):
        cache.remember(i, cache.digest(i, f"u{i}@example.org", STORED, f"{PASSWORD}-{i}"))
    assert cache.verified(2, cache.digest(2, "u2@example.org", STORED, f"{PASSWORD}-2"))
    data = _reachable_data(cache)
    # the walk saw the three digests and the secret
    assert sum(isinstance(x, bytes) and len(x) == 32 for x in data) == 4
    for x in data:
        text = x.decode("latin-1") if isinstance(x, bytes | bytearray) else str(x)
        assert PASSWORD not in text
        assert STORED not in text and "argon2" not in text
        assert "@example.org" not in text  # not even the addresses


def test_a_cache_needs_a_positive_ttl_and_size() -> None:
    with pytest.raises(ValueError):
        CredentialCache(0, 10)
    with pytest.raises(ValueError):
        CredentialCache(60, 0)
