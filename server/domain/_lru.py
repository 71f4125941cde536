"""A least-recently-used map with bounds: the one shape of every in-process cache here."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Generic, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


class LRU(Generic[_K, _V]):
    """Keeps at most `max_entries` values and, when given, `max_bytes` of their declared sizes,
    dropping the least recently used first. A value declared larger than `max_item_bytes` is not
    kept at all: it would push out everything else."""

    def __init__(
        self, *, max_entries: int, max_bytes: int | None = None, max_item_bytes: int | None = None
    ) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._max_item_bytes = max_item_bytes
        self._items: collections.OrderedDict[_K, tuple[_V, int]] = collections.OrderedDict()
        self._bytes = 0

    def get(self, key: _K) -> _V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: _K, value: _V, size: int = 0) -> None:
        if self._max_item_bytes is not None and size > self._max_item_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old[1]
        self._items[key] = (value, size)
        self._bytes += size
        while len(self._items) > self._max_entries or (
            self._max_bytes is not None and self._bytes > self._max_bytes
        ):
            _, (_, dropped) = self._items.popitem(last=False)
            self._bytes -= dropped

    def __len__(self) -> int:
        return len(self._items)

    def discard_where(self, doomed: Callable[[_K], bool]) -> None:
        """Drops every entry whose key `doomed` says is gone."""
        for key in [key for key in self._items if doomed(key)]:
            _, size = self._items.pop(key)
            self._bytes -= size
