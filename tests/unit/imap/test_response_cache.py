"""The shared cache of serialised FETCH answers: a byte budget, least recently used out."""

from __future__ import annotations

from carteiro.imap.response_cache import ResponseCache


def test_hits_misses_and_lru_eviction() -> None:
    cache = ResponseCache(max_bytes=100)
    assert cache.get("a") is None and cache.misses == 1
    cache.put("a", b"x" * 20)
    cache.put("b", b"y" * 20)
    assert cache.get("a") == b"x" * 20 and cache.hits == 1  # a is now the most recent
    cache.put("c", b"z" * 20)
    cache.put("d", b"w" * 20)
    cache.put("e", b"v" * 20)  # 100 bytes held: nothing evicted yet
    assert len(cache) == 5 and cache.size == 100
    cache.put("f", b"u" * 20)  # over budget: b, the least recently used, goes
    assert cache.get("b") is None and cache.get("a") is not None
    assert cache.size == 100


def test_replacing_and_oversized_entries() -> None:
    cache = ResponseCache(max_bytes=100)
    cache.put("a", b"1" * 10)
    cache.put("a", b"2" * 20)
    assert cache.size == 20 and cache.get("a") == b"2" * 20
    cache.put("big", b"3" * 26)  # more than a quarter of the budget: not kept
    assert cache.get("big") is None and cache.size == 20
    cache.put("a", b"4" * 30)  # an oversized replacement drops the old bytes too
    assert cache.get("a") is None and cache.size == 0
