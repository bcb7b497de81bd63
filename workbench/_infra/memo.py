"""A bounded, thread-safe memo owned by the object that fills it.

``functools.lru_cache`` suits pure module-level functions (the families' segments use it, bounded);
per-object results (a cost estimator's segment latencies, a runtime's arena estimates) need a memo the
object owns, so it goes away with the object and two objects never share entries. The least recently
used entry is dropped when the memo is full, so a long search keeps what it reuses.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

V = TypeVar("V")
_MISSING = object()


class BoundedMemo:
    """``key → value`` for at most ``maxsize`` keys, least recently used dropped first.

    A lock guards inserting and evicting (the live search and the export panel score from two threads);
    lookups take no lock — the search's hot path — since each dictionary call is one atomic step under
    the GIL. Values are computed outside the lock, so two threads may compute the same value once each;
    either result is kept."""

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The value for ``key``, computed by ``compute()`` and remembered on a miss."""
        value = self.peek(key, _MISSING)
        if value is _MISSING:
            value = compute()
            self.put(key, value)
        return value

    def peek(self, key: Hashable, default=None):
        """The value remembered for ``key`` (counts as a use), or ``default``."""
        value = self._entries.get(key, _MISSING)
        if value is _MISSING:
            return default
        try:
            self._entries.move_to_end(key)
        except KeyError:  # evicted by another thread just now: the value is still right
            pass
        return value

    def put(self, key: Hashable, value) -> None:
        """Remember ``value`` for ``key`` (replacing what was there)."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            if len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
