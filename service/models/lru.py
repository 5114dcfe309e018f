"""A thread-safe LRU map bounded in bytes (the embedding and CAM caches keep their values in one)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BytesLRU(Generic[V]):
    """Keeps the most recently used values while their ``size_of`` sum stays within ``max_bytes``;
    a value larger than ``max_bytes`` is never kept."""

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self.size_of = size_of
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V, evict: bool = True) -> None:
        """Keep ``value`` (the least recently used ones make room, or with ``evict`` False it is
        kept only if it fits as things are)."""
        size = self.size_of(value)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items or (not evict and self._bytes + size > self.max_bytes):
                return
            self._items[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= self.size_of(old)

    def items(self) -> list[tuple[Hashable, V]]:
        with self._lock:
            return list(self._items.items())
