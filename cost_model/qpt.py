"""Query processing time (QPT) from I/O counts and a device profile.

The model is that of Jafari & Nagarkar (2021, ADC, Section 4.2): the time of a query on a
device is the time its seeks take, plus the time its bytes take to transfer, plus the CPU time
of the algorithm itself (candidate generation and false-positive removal)::

    QPT = seeks * seek_ms + MB_read / read_mb_per_ms + algorithm_ms        (1 MB = 10**6 B)

Each term is kept on its own (:class:`QueryCost`), per query and as means over queries. The
linear scan of the same data costs one seek, ``n * d * bytes_per_coordinate`` bytes and the
scan's CPU time (:func:`linear_scan_cost`), so a report can say when LSH did not pay off.

Read-ahead term
---------------
The counts the formula uses are the engine's own: every page the index asks for, and a seek
whenever that page is not the one right after the previous read (one head across the index's
files). An engine that reads through the operating system's page cache does not issue those
reads to the device one for one: Linux's on-demand read-ahead turns sequential and
"interleaved sequential" accesses into larger, fewer requests, and fetches pages the query
later asks for "at random" (measured on this project's virtual disk: 0.55-0.95 device
requests per counted seek, 2-4 times the counted bytes). :func:`readahead_io` replays a
query's page-access trace through a model of that read-ahead and returns the device requests
and bytes it causes; applying the same formula to them (``query_cost(io.requests,
io.bytes_read, ...)``) is the read-ahead-aware QPT. It needs the trace, which the plain
counts do not hold, so the study's formula stays the default everywhere.

The read-ahead model follows ``mm/readahead.c`` of Linux 6.x (``page_cache_sync_ra`` and
``page_cache_async_ra``): a miss right after the previous read of the same open file starts an
initial window (4 pages for a 1-page read); a miss preceded by more cached pages than requested
starts a window as long as that history (doubled if cached from the start of the file); any
other miss reads only the requested pages; touching the page marked ``PG_readahead`` pushes the
window forward and ramps it up (x4 while small, then x2, up to the device's
``read_ahead_kb``), its end aligned to the folio order, which grows by 2 per ramp.
Folios of the window are allocated as ``page_cache_ra_order`` does (up to the window's
order, aligned, ``PG_readahead`` on the folio holding the mark; touching any page of a marked
folio triggers the next window). Deviations: the page cache starts empty and nothing is
evicted during a query; a request is one contiguous run of newly fetched pages (the block
layer may split a run larger than ``max_sectors_kb`` or merge neighbouring runs); asynchronous
requests are charged like synchronous ones although they overlap the CPU; the kernel's
backward scan of cached history stops early across large folios in some cases, which is not
modelled. Checked against the VM kernel of this project (Linux 6.18, ``read_ahead_kb`` 8192)
with ``mincore`` on hand-made access patterns (the same pages on 11 of 12) and against
``/sys/block/vda/stat`` on real queries: device requests within 8 %, bytes exact on Mnist
indexes and within -21 % / +45 % on 300-640 MB indexes.
"""

from array import array
from dataclasses import dataclass

import numpy as np

from .profiles import DeviceProfile

__all__ = ["QueryCost", "DeviceIO", "query_cost", "linear_scan_cost", "readahead_io", "MB"]

#: Bytes per MB in the model (decimal, as the study's MB/ms rates).
MB = 1e6


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryCost:
    """Per-query terms of the QPT model on one device; every array is float64 (n_queries,).

    Attributes
    ----------
    device : str
        Profile name.
    seeks : ndarray
        Seeks per query.
    mb_read : ndarray
        MB read per query (10**6 bytes).
    seek_term_ms : ndarray
        ``seeks * seek_ms``, ms.
    read_term_ms : ndarray
        ``mb_read / read_mb_per_ms``, ms.
    algorithm_ms : ndarray
        Measured CPU time of candidate generation and false-positive removal, ms.
    qpt_ms : ndarray
        ``seek_term_ms + read_term_ms + algorithm_ms``, ms.
    """

    device: str
    seeks: np.ndarray
    mb_read: np.ndarray
    seek_term_ms: np.ndarray
    read_term_ms: np.ndarray
    algorithm_ms: np.ndarray
    qpt_ms: np.ndarray

    def __len__(self):
        return int(self.qpt_ms.shape[0])

    def mean(self):
        """Means over the queries: dict of ``seeks, mb_read, seek_term_ms, read_term_ms,
        algorithm_ms, qpt_ms`` (floats; 0.0 for no queries)."""
        keys = ("seeks", "mb_read", "seek_term_ms", "read_term_ms", "algorithm_ms", "qpt_ms")
        return {k: float(np.mean(getattr(self, k))) if len(self) else 0.0 for k in keys}


def _column(name, values):
    a = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if a.ndim != 1:
        raise ValueError(f"{name} must be a scalar or 1-D, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"{name} must be finite and >= 0")
    return a


def query_cost(seeks, bytes_read, algorithm_ms, profile):
    """QPT terms per query (Jafari & Nagarkar 2021, Section 4.2).

    Parameters
    ----------
    seeks : array-like of int or float, shape (n_queries,) or scalar
        Seeks per query (e.g. ``SearchStats.seeks``).
    bytes_read : array-like, shape (n_queries,) or scalar
        Bytes read per query (``SearchStats.bytes_read``).
    algorithm_ms : array-like, shape (n_queries,) or scalar
        CPU time per query in ms (``SearchStats.cpu_seconds * 1e3``).
    profile : DeviceProfile

    Returns
    -------
    QueryCost
        ``qpt_ms = seeks * profile.seek_ms + bytes_read / 1e6 / profile.read_mb_per_ms
        + algorithm_ms``, each term kept.

    Raises
    ------
    ValueError
        If an input is negative, not finite, not 1-D, or the lengths differ.
    TypeError
        If ``profile`` is not a DeviceProfile.
    """
    if not isinstance(profile, DeviceProfile):
        raise TypeError(f"profile must be a DeviceProfile, got {type(profile).__name__}")
    s = _column("seeks", seeks)
    mb = _column("bytes_read", bytes_read) / MB
    alg = _column("algorithm_ms", algorithm_ms)
    n = max(s.size, mb.size, alg.size)
    cols = []
    for name, a in (("seeks", s), ("bytes_read", mb), ("algorithm_ms", alg)):
        if a.size not in (1, n):
            raise ValueError(f"{name} has {a.size} values but another input has {n}")
        cols.append(np.broadcast_to(a, (n,)).copy())
    s, mb, alg = cols
    seek_term = s * profile.seek_ms
    read_term = mb / profile.read_mb_per_ms
    return QueryCost(device=profile.name, seeks=s, mb_read=mb, seek_term_ms=seek_term,
                     read_term_ms=read_term, algorithm_ms=alg,
                     qpt_ms=seek_term + read_term + alg)


def linear_scan_cost(n, d, bytes_per_coordinate, algorithm_ms, profile):
    """QPT of a linear scan of n points of dimension d on ``profile``.

    One seek, then ``n * d * bytes_per_coordinate`` bytes read sequentially, plus the scan's
    measured CPU time per query.

    Parameters
    ----------
    n, d : int
        Points and dimension, >= 0.
    bytes_per_coordinate : int
        Storage bytes per coordinate (1 for uint8, 4 for float32).
    algorithm_ms : float
        CPU time of the scan per query, ms.
    profile : DeviceProfile

    Returns
    -------
    QueryCost
        Of length 1.
    """
    for name, v in (("n", n), ("d", d), ("bytes_per_coordinate", bytes_per_coordinate)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    return query_cost(1, int(n) * int(d) * int(bytes_per_coordinate), algorithm_ms, profile)


# --------------------------------------------------------------------------- read-ahead


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceIO:
    """The device I/O that one query's page accesses cause through the page cache.

    Attributes
    ----------
    requests : int
        Read requests issued (synchronous and asynchronous read-ahead).
    sync_requests : int
        Requests the reader waited for (a miss on the page it asked for).
    bytes_read : int
        Bytes fetched from the device, read-ahead included.
    """

    requests: int
    sync_requests: int
    bytes_read: int


def _init_window(req, max_pages):
    size = 1
    while size < req:
        size <<= 1
    if size <= max_pages // 32:
        return 4 * size
    if size <= max_pages // 4:
        return 2 * size
    return max_pages


def _next_window(cur, max_pages):
    if cur < max_pages // 16:
        return 4 * cur
    if cur <= max_pages // 2:
        return 2 * cur
    return max_pages


_MAX_FOLIO_ORDER = 9  # MAX_PAGECACHE_ORDER on x86-64: a PMD-sized folio


class _FileState:
    """Page-cache contents and read-ahead state of one open file (``struct file_ra_state``)."""

    __slots__ = ("cached", "marked", "folio", "folio_order", "pages", "start", "size",
                 "async_size", "order", "prev")

    def __init__(self, pages):
        self.pages = pages
        self.cached = bytearray(pages)
        self.marked = bytearray(pages)  # PG_readahead, set on a folio's first page
        self.folio = array("l", range(pages))  # first page of the folio holding each page
        self.folio_order = bytearray(pages)  # log2(pages) of the folio starting at a page
        self.start = self.size = self.async_size = self.order = 0
        self.prev = -2  # page after the previous read; -2: none yet


class _Readahead:
    """The page cache of one query's files and Linux's on-demand read-ahead over them."""

    def __init__(self, file_pages, max_pages):
        self.files = {key: _FileState(int(n)) for key, n in file_pages.items()}
        self.max_pages = max_pages
        self.requests = self.sync_requests = self.pages = 0

    def _fetch(self, f, lo, hi, mark, sync):
        hi = min(hi, f.pages)
        i = lo
        while i < hi:
            i = f.cached.find(0, i, hi)
            if i < 0:
                return
            j = f.cached.find(1, i, hi)
            j = hi if j < 0 else j
            f.cached[i:j] = b"\x01" * (j - i)
            if i <= mark < j:
                f.marked[mark] = 1
            self.requests += 1
            self.sync_requests += sync
            self.pages += j - i
            i = j

    def _sync(self, f, index, req):
        mx = self.max_pages
        if mx <= 0:
            self._fetch(f, index, index + req, -1, 1)
            return
        if index == 0 or req > mx or 0 <= index - f.prev <= 1:
            f.start, f.size = index, _init_window(req, mx)
            f.async_size = f.size - req if f.size > req else f.size >> 1
        else:
            lo = max(0, index - mx)
            gap = f.cached.rfind(0, lo, index)
            if gap >= 0:
                contig = index - 1 - gap
            else:
                contig = index * 2 if lo == 0 else mx  # cached from the start of the file
            if contig <= req:  # standalone random read
                self._fetch(f, index, index + req, -1, 1)
                return
            f.start, f.size, f.async_size = index, min(contig + req, mx), 1
        f.order = 0
        self._fetch(f, f.start, f.start + f.size, f.start + f.size - f.async_size, 1)

    def _async(self, f, index, req):
        mx = self.max_pages
        expected = f.start + f.size - f.async_size
        if index == expected - expected % (1 << f.folio_order[index]):
            f.start += f.size
            f.size = max(f.size, _next_window(f.size, mx))
        else:  # a marked page without valid state: interleaved streams
            hi = min(index + 1 + mx, f.pages)
            start = f.cached.find(0, index + 1, hi)
            if start < 0:
                start = index + 1 + mx if hi < f.pages else f.pages
            if start - index > mx:
                return
            f.start = start
            f.size = _next_window(start - index + req, mx)
        f.order += 2
        align = 1 << min(f.order, (mx & -mx).bit_length() - 1)
        end = f.start + f.size
        aligned = end - end % align
        if aligned > f.start:
            f.size -= end - aligned
        f.async_size = f.size
        self._ra_order(f)

    def _ra_order(self, f):
        """``page_cache_ra_order``: the window in folios of up to ``f.order``, then order-0
        pages (``do_page_cache_ra``) past the first page already cached."""
        start, size = f.start, f.size
        limit = min(f.pages - 1, start + size - 1)
        mark = start + size - f.async_size
        new_order = min(_MAX_FOLIO_ORDER, f.order, size.bit_length() - 1)
        f.order = new_order
        index = start
        while index <= limit:
            order = new_order
            if index & ((1 << order) - 1):
                order = (index & -index).bit_length() - 1
            while order > 0 and index + (1 << order) - 1 > limit:
                order -= 1
            n = 1 << order
            if f.cached.find(1, index, index + n) >= 0:
                break
            f.cached[index:index + n] = b"\x01" * n
            f.folio[index:index + n] = array("l", [index]) * n
            f.folio_order[index] = order
            if index == mark - mark % n:
                f.marked[index] = 1
            self.pages += n
            index += n
        if index > start:
            self.requests += 1
        if index <= limit and size > index - start:
            lookahead = f.async_size
            nr = size - (index - start)
            rel = nr - lookahead if lookahead <= nr else -1
            self._fetch(f, index, index + nr, index + rel if rel >= 0 else -1, 0)

    def read(self, key, first, count):
        f = self.files[key]
        for i in range(first, first + count):
            if not f.cached[i]:
                self._sync(f, i, first + count - i)
                if not f.cached[i]:
                    self._fetch(f, i, i + 1, -1, 1)
            head = f.folio[i]
            if f.marked[head]:
                f.marked[head] = 0
                if self.max_pages > 0:
                    self._async(f, head, first + count - head)
        f.prev = first + count


def readahead_io(trace, file_pages, *, page_size_bytes, readahead_bytes, os_page_bytes=4096):
    """Device requests and bytes of one query's page accesses under Linux read-ahead.

    Parameters
    ----------
    trace : iterable of (file_key, first_page, n_pages)
        The query's page reads in order, in the index's pages (``n_pages`` > 1 for a run
        read with one call); ``file_key`` is any hashable naming the file.
    file_pages : dict
        ``{file_key: pages in the file}`` (index pages).
    page_size_bytes : int
        The index's page size.
    readahead_bytes : int
        The device's read-ahead window (``DeviceProfile.readahead_bytes``; Linux
        ``read_ahead_kb * 1024``); 0 disables read-ahead (one request per run of missed pages).
    os_page_bytes : int
        The page-cache page size (4096 on x86-64 Linux).

    Returns
    -------
    DeviceIO

    Notes
    -----
    The page cache is taken to be empty when the query starts (as after
    ``posix_fadvise(POSIX_FADV_DONTNEED)``) and large enough to keep every page the query
    touches. Pure computation: no file is opened.
    """
    for name, v in (("page_size_bytes", page_size_bytes), ("os_page_bytes", os_page_bytes)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if isinstance(readahead_bytes, bool) or not isinstance(readahead_bytes, (int, np.integer)) \
            or readahead_bytes < 0:
        raise ValueError(f"readahead_bytes must be an integer >= 0, got {readahead_bytes!r}")
    page_size_bytes, os_page_bytes = int(page_size_bytes), int(os_page_bytes)

    def os_span(first, count):
        lo = first * page_size_bytes // os_page_bytes
        hi = -(-(first + count) * page_size_bytes // os_page_bytes)
        return lo, hi - lo

    sim = _Readahead({k: os_span(0, int(n))[1] for k, n in file_pages.items()},
                     int(readahead_bytes) // os_page_bytes)
    for key, first, count in trace:
        if count <= 0:
            continue
        lo, n = os_span(int(first), int(count))
        if lo + n > sim.files[key].pages:
            raise ValueError(f"trace reads pages {first}..{first + count - 1} of {key!r}, which "
                             f"has {file_pages[key]} pages")
        sim.read(key, lo, n)
    return DeviceIO(requests=sim.requests, sync_requests=sim.sync_requests,
                    bytes_read=sim.pages * os_page_bytes)
