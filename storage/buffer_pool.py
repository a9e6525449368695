"""A bounded LRU buffer pool of page payloads, shared by the page files of one index."""

import threading
from collections import OrderedDict

__all__ = ["BufferPool"]


class BufferPool:
    """Least-recently-used cache of verified page payloads, bounded in bytes.

    Parameters
    ----------
    capacity_bytes : int
        Most bytes of page payload held at once. ``0`` (the default at query time) disables
        caching: every page access is a device read, which is how the reference QALSH code
        counts page I/O.

    Raises
    ------
    ValueError
        If ``capacity_bytes`` is negative.

    Notes
    -----
    Thread-safe: :meth:`get`, :meth:`put` and :meth:`clear` hold one lock while they read or
    change the pool, so threads searching one index may share it. With ``capacity_bytes = 0``
    they return at once, without taking the lock (and page files do not call them at all).
    """

    __slots__ = ("capacity_bytes", "_pages", "_bytes", "_lock")

    def __init__(self, capacity_bytes=0):
        if isinstance(capacity_bytes, bool) or not isinstance(capacity_bytes, int):
            raise TypeError(f"capacity_bytes must be an int, got {type(capacity_bytes).__name__}")
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be >= 0, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self._pages = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def used_bytes(self):
        """Bytes of payload currently held."""
        return self._bytes

    def __len__(self):
        return len(self._pages)

    def get(self, key):
        """The payload cached under ``key`` (marked most recently used), or ``None``."""
        if not self.capacity_bytes:
            return None
        with self._lock:
            payload = self._pages.get(key)
            if payload is not None:
                self._pages.move_to_end(key)
            return payload

    def put(self, key, payload):
        """Cache ``payload`` (a read-only array) under ``key``, evicting the least recently used."""
        if not self.capacity_bytes:
            return
        size = payload.nbytes
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            if size > self.capacity_bytes:
                return
            while self._bytes + size > self.capacity_bytes:
                _, evicted = self._pages.popitem(last=False)
                self._bytes -= evicted.nbytes
            self._pages[key] = payload
            self._bytes += size

    def clear(self):
        """Drop every cached page."""
        with self._lock:
            self._pages.clear()
            self._bytes = 0
