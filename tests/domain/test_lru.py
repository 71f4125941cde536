"""The one bounded least-recently-used map behind the server's in-process caches."""

from __future__ import annotations

from server.domain._lru import LRU


def test_the_least_recently_used_goes_first_when_entries_or_bytes_run_over() -> None:
    cache: LRU[str, int] = LRU(max_entries=3, max_bytes=100, max_item_bytes=60)
    cache.put("a", 1, size=40)
    cache.put("b", 2, size=40)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3, size=40)  # 120 bytes: over, so "b" goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    cache.put("d", 4, size=61)  # larger than any item may be: not kept, nothing dropped
    assert (cache.get("d"), cache.get("a"), cache.get("c")) == (None, 1, 3)
    cache.put("c", 30, size=10)  # replacing a key counts its new size only
    for key in ("e", "f"):
        cache.put(key, 0, size=10)
    assert (cache.get("a"), cache.get("c")) == (None, 30)  # four entries: the oldest went
