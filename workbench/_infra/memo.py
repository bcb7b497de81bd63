"""A bounded, thread-safe memo owned by the object that fills it.

``functools.lru_cache`` suits pure module-level functions (the families' segments use it, bounded);
per-object results (a cost estimator's segment latencies, a runtime's arena estimates) need a memo the
object owns, so it goes away with the object and two objects never share entries. :class:`BoundedMemo`
drops the least recently used entry when full, so a long search keeps what it reuses; :class:`HotMemo`,
for the scoring hot path, reads with one ``dict.get`` and drops the older half when full.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from itertools import islice
from typing import Callable, Hashable, TypeVar

V = TypeVar("V")
_MISSING = object()


class _Memo:
    """What both memos share: a size, a lock for writers, and ``len``/``clear`` over their entries."""

    _entries: dict

    def __init__(self, maxsize: int, least: int):
        if maxsize < least:
            raise ValueError(f"maxsize must be >= {least}, got {maxsize}")
        self.maxsize = maxsize
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class BoundedMemo(_Memo):
    """``key → value`` for at most ``maxsize`` keys, least recently used dropped first.

    A lock guards inserting and evicting (the live search and the export panel score from two threads);
    lookups take no lock — the search's hot path — since each dictionary call is one atomic step under
    the GIL. Values are computed outside the lock, so two threads may compute the same value once each;
    either result is kept."""

    def __init__(self, maxsize: int):
        super().__init__(maxsize, least=1)
        self._entries: OrderedDict = OrderedDict()

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



class HotMemo(_Memo):
    """``key → value`` for at most ``maxsize`` keys, read by the scoring hot path (microseconds per architecture).

    Why not :class:`BoundedMemo`: its least-recently-used bookkeeping (``move_to_end`` on every hit) costs as
    much as the lookup, and an architecture's scoring reads a dozen entries. Here a read is one
    ``dict.get`` (:attr:`lookup`, bound once by the caller); when the memo is full the older half of the
    entries (by insertion) is dropped at once, so it stays bounded and what a search keeps reusing comes
    back after one recomputation. Inserting and evicting take a lock (two threads score at once); reads
    take none, each being one atomic dictionary call under the GIL."""

    def __init__(self, maxsize: int):
        super().__init__(maxsize, least=2)
        self._entries: dict = {}
        self.lookup = self._entries.get  # ``lookup(key)``: the value, or None

    def put(self, key: Hashable, value) -> None:
        """Remember ``value`` for ``key``; when full, first drop the older half."""
        entries = self._entries
        with self._lock:
            if len(entries) >= self.maxsize and key not in entries:
                for old in list(islice(entries, len(entries) // 2)):
                    del entries[old]
            entries[key] = value



class cached_attribute:
    """Like :func:`functools.cached_property` (computed on first read, then a plain attribute of the
    instance), without its lock: on Python 3.11 every first read takes a process-wide lock, which costs
    more than lowering a memoised architecture. The computation must be pure: two threads reading at once
    may both compute it, and either (equal) value is kept."""

    def __init__(self, func):
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)
        return value
