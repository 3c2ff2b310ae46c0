"""List totals remembered per filter while the catalogue revision stays the same.

Counting the rows a view shows is most of a list request's database time on a large
catalogue; the answer only changes when a host image changes, which bumps the revision
(:mod:`hostimage.db.revision`). Entries also expire after ``TTL_S`` so that a process that
died between a commit and its bump cannot leave a wrong total for long.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable

TTL_S = 60.0
MAX_ENTRIES = 4096


class TotalsCache:
    """A small thread-safe LRU of ``key → (revision, total, taken at)``."""

    def __init__(self, max_entries: int = MAX_ENTRIES, ttl_s: float = TTL_S) -> None:
        self._entries: OrderedDict[Hashable, tuple[int, int, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries
        self._ttl = ttl_s

    def get(self, key: Hashable, revision: int) -> int | None:
        """The total counted for ``key`` at ``revision``, if still fresh."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            rev, total, taken = hit
            if rev != revision or time.monotonic() - taken > self._ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return total

    def put(self, key: Hashable, revision: int, total: int) -> None:
        """Remember ``total`` for ``key`` as counted at ``revision`` (or later)."""
        with self._lock:
            self._entries[key] = (revision, total, time.monotonic())
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


TOTALS = TotalsCache()
