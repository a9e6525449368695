"""Sorted runs of (integer key, id) entries in consecutive pages, with a page directory.

A *run* is a sequence of entries sorted by key (an ``int64``; ties keep the order given),
each carrying an integer id below ``2**id_bits``. Several runs share one page file: each run
occupies consecutive data pages, so a key range of a run is one contiguous page range, read
with one :meth:`storage.page_file.PageFile.read_run` (one seek, then sequential pages). After
the last run's data pages comes the *directory*: one 8-byte entry per data page, in page
order, giving the page's first and last key, so a reader can find the pages holding a key
range without touching data pages. Byte layouts are in :mod:`storage.format` ("Sorted-run
pages").

Data pages are compact: a page stores its distinct keys once, as (key delta, run length)
pairs bit-packed with widths chosen for that page, and its ids bit-packed with ``id_bits``
bits each. With 16-bit ids a 4 KiB page holds up to 2,035 entries (one key) and about 2,000
when keys repeat a few hundred times each; (int64, uint32) pairs would fit 340.

Writing (:class:`SortedRunWriter`) is sequential and holds at most one page of pending
entries beyond the chunk being added; directory entries are spilled to a temporary file and
copied into directory pages by :meth:`SortedRunWriter.finish`, so memory does not grow with
the number of pages. Reading: :func:`read_directory` (counted page reads) and the numba
page decoders (:func:`page_header`, :func:`entry_range`, :func:`decode_page`), which search
kernels call on page payloads in place.
"""

import os
import tempfile
from dataclasses import asdict, dataclass

import numba
import numpy as np

from .durable import write_all
from .errors import CorruptPageError

__all__ = [
    "DATA_PAGE", "DIRECTORY_PAGE", "DATA_HEADER_SIZE", "DIRECTORY_HEADER_SIZE",
    "DIRECTORY_ENTRY_SIZE", "MAX_PAGE_ENTRIES", "MAX_KEY_SPAN", "RunInfo", "DirectoryInfo",
    "SortedRunWriter", "read_directory", "directory_entries_per_page", "page_header",
    "entry_range", "decode_ids", "decode_page", "check_data_pages",
]

DATA_PAGE = 3
DIRECTORY_PAGE = 4
DATA_HEADER_SIZE = 16
DIRECTORY_HEADER_SIZE = 8
DIRECTORY_ENTRY_SIZE = 8
#: Entries per data page are a u16.
MAX_PAGE_ENTRIES = 65535
#: Keys of one run must span less than this: directory offsets and key deltas are u32.
MAX_KEY_SPAN = 1 << 32


def directory_entries_per_page(payload_size):
    """Directory entries (one per data page) that fit one directory page."""
    return (payload_size - DIRECTORY_HEADER_SIZE) // DIRECTORY_ENTRY_SIZE


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    """Where one run lives in its page file.

    Attributes
    ----------
    first_page, n_pages : int
        Its data pages are ``first_page .. first_page + n_pages - 1`` (``n_pages = 0`` for an
        empty run).
    n_entries : int
    key_min, key_max : int
        Smallest and largest key (0 for an empty run). Directory entries are offsets from
        ``key_min``.
    dir_entry : int
        Index of the run's first page in the directory (entries are in data-page order).
    """

    first_page: int
    n_pages: int
    n_entries: int
    key_min: int
    key_max: int
    dir_entry: int

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectoryInfo:
    """Where the directory lives: pages ``first_page .. first_page + n_pages - 1``, holding
    ``n_entries`` entries (one per data page of every run), ``entries_per_page`` per page."""

    first_page: int
    n_pages: int
    n_entries: int
    entries_per_page: int

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


# ------------------------------------------------------------------------------ page codec
@numba.njit(cache=True, nogil=True, inline="always")
def _bit_length(v):
    b = 0
    while v > 0:
        v >>= 1
        b += 1
    return b


@numba.njit(cache=True, nogil=True, inline="always")
def _put_bits(out, bit, value, nbits):
    """OR ``nbits`` (<= 32) low bits of ``value`` into ``out`` at bit position ``bit``, LSB first."""
    if nbits == 0:
        return
    v = np.uint64(value) << np.uint64(bit & 7)
    byte = bit >> 3
    nb = ((bit & 7) + nbits + 7) >> 3
    for t in range(nb):
        out[byte + t] |= np.uint8((v >> np.uint64(8 * t)) & np.uint64(0xFF))


@numba.njit(cache=True, nogil=True, inline="always")
def _get_bits(page, bit, nbits):
    """The ``nbits`` (<= 32) bits of ``page`` at bit position ``bit``, LSB first, as int64."""
    if nbits == 0:
        return np.int64(0)
    byte = bit >> 3
    shift = bit & 7
    nb = (shift + nbits + 7) >> 3
    v = np.uint64(0)
    for t in range(nb):
        v |= np.uint64(page[byte + t]) << np.uint64(8 * t)
    mask = (np.uint64(1) << np.uint64(nbits)) - np.uint64(1)
    return np.int64((v >> np.uint64(shift)) & mask)


@numba.njit(cache=True, nogil=True, inline="always")
def _page_bytes(n_runs, n_entries, delta_bits, len_bits, id_bits):
    table_bits = (n_runs - 1) * delta_bits + n_runs * len_bits
    return DATA_HEADER_SIZE + ((table_bits + 7) >> 3) + ((n_entries * id_bits + 7) >> 3)


@numba.njit(cache=True, nogil=True)
def _plan_pages(keys, id_bits, payload_size, max_entries, final, cuts):
    """Greedy page cuts: cuts[p] is the end (exclusive) of page p; returns the page count.

    A page takes entries while its encoded size fits ``payload_size`` and it holds at most
    ``max_entries``. Unless ``final``, the last page is left out if it reaches the end of
    ``keys`` (more entries may still join it).
    """
    n = keys.shape[0]
    n_pages = 0
    i = 0
    while i < n:
        start = i
        runs = 1
        run_len = 1
        delta_bits = 0
        len_bits = 0
        i += 1
        while i < n and i - start < max_entries:
            if keys[i] == keys[i - 1]:
                nl = max(len_bits, _bit_length(run_len))  # stored: length - 1 = run_len
                if _page_bytes(runs, i - start + 1, delta_bits, nl, id_bits) > payload_size:
                    break
                len_bits = nl
                run_len += 1
            else:
                nd = max(delta_bits, _bit_length(keys[i] - keys[i - 1]))
                if _page_bytes(runs + 1, i - start + 1, nd, len_bits, id_bits) > payload_size:
                    break
                delta_bits = nd
                runs += 1
                run_len = 1
            i += 1
        if i == n and not final:
            break
        cuts[n_pages] = i
        n_pages += 1
    return n_pages


@numba.njit(cache=True, nogil=True)
def _encode_pages(keys, ids, cuts, n_pages, id_bits, out):
    """Encode pages [cuts[p-1], cuts[p]) of (keys, ids) into out[p] (zeroed payloads)."""
    start = 0
    for p in range(n_pages):
        end = cuts[p]
        page = out[p]
        runs = 1
        delta_bits = 0
        len_bits = 0
        run_len = 1
        for i in range(start + 1, end):
            if keys[i] == keys[i - 1]:
                run_len += 1
            else:
                delta_bits = max(delta_bits, _bit_length(keys[i] - keys[i - 1]))
                len_bits = max(len_bits, _bit_length(run_len - 1))
                runs += 1
                run_len = 1
        len_bits = max(len_bits, _bit_length(run_len - 1))
        count = end - start
        page[0] = DATA_PAGE
        page[1] = id_bits
        page[2] = delta_bits
        page[3] = len_bits
        page[4] = count & 0xFF
        page[5] = count >> 8
        page[6] = runs & 0xFF
        page[7] = runs >> 8
        first = np.uint64(keys[start])
        for t in range(8):
            page[8 + t] = np.uint8((first >> np.uint64(8 * t)) & np.uint64(0xFF))
        # Run table: runs - 1 key deltas, then runs lengths - 1.
        bit = 8 * DATA_HEADER_SIZE
        len_bit = bit + (runs - 1) * delta_bits
        run_len = 1
        for i in range(start + 1, end + 1):
            if i < end and keys[i] == keys[i - 1]:
                run_len += 1
                continue
            _put_bits(page, len_bit, run_len - 1, len_bits)
            len_bit += len_bits
            if i < end:
                _put_bits(page, bit, keys[i] - keys[i - 1], delta_bits)
                bit += delta_bits
                run_len = 1
        id_bit = 8 * ((len_bit + 7) >> 3)
        for i in range(start, end):
            _put_bits(page, id_bit, ids[i], id_bits)
            id_bit += id_bits
        start = end


@numba.njit(cache=True, nogil=True, inline="always")
def page_header(page):
    """Header of a data page (uint8 payload): ``(n_entries, n_runs, id_bits, delta_bits,
    len_bits, first_key, ids_offset)``, ``ids_offset`` being the byte where the ids start."""
    count = np.int64(page[4]) | (np.int64(page[5]) << 8)
    runs = np.int64(page[6]) | (np.int64(page[7]) << 8)
    id_bits = np.int64(page[1])
    delta_bits = np.int64(page[2])
    len_bits = np.int64(page[3])
    first = np.uint64(0)
    for t in range(8):
        first |= np.uint64(page[8 + t]) << np.uint64(8 * t)
    table_bits = (runs - 1) * delta_bits + runs * len_bits
    ids_offset = DATA_HEADER_SIZE + ((table_bits + 7) >> 3)
    return count, runs, id_bits, delta_bits, len_bits, np.int64(first), ids_offset


@numba.njit(cache=True, nogil=True)
def entry_range(page, lo, hi):
    """``(e0, e1)``: the entries of a data page whose key lies in [lo, hi] are e0 .. e1 - 1
    (e0 = first entry with key >= lo, e1 = first entry with key > hi; e1 >= e0 when lo <= hi).

    Walks the page's run table, no scratch memory.
    """
    count, runs, _, delta_bits, len_bits, key, _ = page_header(page)
    bit = 8 * DATA_HEADER_SIZE
    len_bit = bit + (runs - 1) * delta_bits
    e0 = -1
    pos = 0
    for r in range(runs):
        if r > 0:
            key += _get_bits(page, bit, delta_bits)
            bit += delta_bits
        if key > hi:
            if e0 < 0:
                e0 = pos
            return e0, pos
        if e0 < 0 and key >= lo:
            e0 = pos
        pos += _get_bits(page, len_bit, len_bits) + 1
        len_bit += len_bits
    if e0 < 0:
        e0 = count
    return e0, count


@numba.njit(cache=True, nogil=True)
def decode_ids(page, e0, e1, ids_out):
    """The ids of entries e0 .. e1 - 1 of a data page into ``ids_out[:e1 - e0]`` (int64);
    returns their number."""
    _, _, id_bits, _, _, _, ids_offset = page_header(page)
    bit = 8 * ids_offset + e0 * id_bits
    for j in range(e1 - e0):
        ids_out[j] = _get_bits(page, bit, id_bits)
        bit += id_bits
    return max(e1 - e0, 0)


@numba.njit(cache=True, nogil=True)
def decode_page(page, keys_out, ids_out):
    """Decode every entry of a data page into keys_out (int64) and ids_out (int64); return
    the entry count. Both outputs need room for :data:`MAX_PAGE_ENTRIES` or the page's count."""
    count, runs, id_bits, delta_bits, len_bits, key, ids_offset = page_header(page)
    bit = 8 * DATA_HEADER_SIZE
    len_bit = bit + (runs - 1) * delta_bits
    pos = 0
    for r in range(runs):
        if r > 0:
            key += _get_bits(page, bit, delta_bits)
            bit += delta_bits
        length = _get_bits(page, len_bit, len_bits) + 1
        len_bit += len_bits
        for j in range(pos, pos + length):
            keys_out[j] = key
        pos += length
    id_bit = 8 * ids_offset
    for j in range(count):
        ids_out[j] = _get_bits(page, id_bit, id_bits)
        id_bit += id_bits
    return count


@numba.njit(cache=True, nogil=True)
def _decode_directory(pages, per_page, run_first_entry, run_n_pages, run_key_min, first_out,
                      last_out):
    for r in range(run_first_entry.shape[0]):
        base = run_key_min[r]
        for j in range(run_n_pages[r]):
            e = run_first_entry[r] + j
            page = pages[e // per_page]
            off = DIRECTORY_HEADER_SIZE + DIRECTORY_ENTRY_SIZE * (e % per_page)
            first_out[e] = base + _get_bits(page, 8 * off, 32)
            last_out[e] = base + _get_bits(page, 8 * off + 32, 32)


# ------------------------------------------------------------------------------ writing
class SortedRunWriter:
    """Append sorted runs of (key, id) entries, then their directory, to a page file.

    Call :meth:`begin_run`, :meth:`add` (any number of chunks, keys ascending across them),
    :meth:`end_run`; repeat per run; then :meth:`finish` once. Nothing else may be appended
    to the page file meanwhile. The pages written depend only on the entries, never on how
    they were split into chunks.

    Parameters
    ----------
    page_file : PageFile
        Writable.
    id_bits : int
        Bits per id, 1..32 (:func:`storage.btree.id_bits_for`).
    tmp_dir : str or os.PathLike
        Existing directory for the temporary directory-entry spill file.
    page_entries : int, optional
        Most entries per data page (default: as many as fit, at most 65,535); small values
        make page boundaries easy to reason about in tests.

    Raises
    ------
    ValueError
        Bad ``id_bits`` or ``page_entries``, or a page too small for one entry.
    """

    def __init__(self, page_file, *, id_bits, tmp_dir, page_entries=None):
        if isinstance(id_bits, bool) or not isinstance(id_bits, (int, np.integer)) \
                or not 1 <= id_bits <= 32:
            raise ValueError(f"id_bits must be an int in 1..32, got {id_bits!r}")
        if page_entries is None:
            page_entries = MAX_PAGE_ENTRIES
        if not 1 <= page_entries <= MAX_PAGE_ENTRIES:
            raise ValueError(f"page_entries must be in 1..{MAX_PAGE_ENTRIES}, got {page_entries}")
        if DATA_HEADER_SIZE + 1 + 4 > page_file.payload_size:
            raise ValueError(f"page payload of {page_file.payload_size} bytes is too small")
        self._pf = page_file
        self.id_bits = int(id_bits)
        self.page_entries = int(page_entries)
        fd, self._spill_path = tempfile.mkstemp(prefix="lshdisk-sortedrun-", suffix=".dir",
                                                dir=os.fspath(tmp_dir))
        self._spill = os.fdopen(fd, "w+b", buffering=0)  # unbuffered: every write is checked
        self._n_dir = 0
        self._runs = []
        self._in_run = False
        self._keys = np.empty(0, dtype=np.int64)
        self._ids = np.empty(0, dtype=np.uint32)

    # -------------------------------------------------------------------- runs
    def begin_run(self):
        """Start a new run; the previous one must have ended."""
        if self._in_run:
            raise RuntimeError("begin_run() called inside a run: call end_run() first")
        self._check_open()
        self._in_run = True
        self._run_first_page = self._pf.page_count
        self._run_dir_entry = self._n_dir
        self._run_n = 0
        self._run_key_min = None
        self._last_key = None

    def add(self, keys, ids):
        """Append entries to the current run.

        Parameters
        ----------
        keys : ndarray of int64, shape (c,)
            Ascending, and not below the last key added to this run.
        ids : ndarray of integers, shape (c,)
            Each in ``0 .. 2**id_bits - 1``.

        Raises
        ------
        ValueError
            Keys out of order, ids out of range, mismatched lengths, or keys of the run
            spanning ``2**32`` or more.
        """
        if not self._in_run:
            raise RuntimeError("add() called outside a run: call begin_run() first")
        keys = np.asarray(keys)
        ids = np.asarray(ids)
        if keys.ndim != 1 or ids.shape != keys.shape:
            raise ValueError(f"keys and ids must be 1-D of equal length, got shapes {keys.shape} "
                             f"and {ids.shape}")
        if keys.size == 0:
            return
        if keys.dtype.kind not in "iu" or ids.dtype.kind not in "iu":
            raise TypeError(f"keys and ids must be integer arrays, got {keys.dtype} and {ids.dtype}")
        keys = keys.astype(np.int64, copy=False)
        if np.any(keys[1:] < keys[:-1]) or (self._last_key is not None
                                           and keys[0] < self._last_key):
            raise ValueError("keys must be ascending within a run")
        if ids.min() < 0 or int(ids.max()) >> self.id_bits:
            raise ValueError(f"ids must be in 0..{(1 << self.id_bits) - 1} for id_bits = "
                             f"{self.id_bits}, got {int(ids.min())}..{int(ids.max())}")
        if self._run_key_min is None:
            self._run_key_min = int(keys[0])
        if int(keys[-1]) - self._run_key_min >= MAX_KEY_SPAN:
            raise ValueError(f"keys of one run must span less than 2**32, got "
                             f"{self._run_key_min} .. {int(keys[-1])}")
        self._last_key = int(keys[-1])
        self._run_n += keys.size
        if self._keys.size:
            self._keys = np.concatenate([self._keys, keys])
            self._ids = np.concatenate([self._ids, ids.astype(np.uint32, copy=False)])
        else:
            self._keys = keys.copy()
            self._ids = ids.astype(np.uint32)
        self._flush_pages(final=False)

    def end_run(self):
        """Write the run's last page; return its :class:`RunInfo`."""
        if not self._in_run:
            raise RuntimeError("end_run() called outside a run")
        self._flush_pages(final=True)
        self._in_run = False
        info = RunInfo(first_page=self._run_first_page,
                       n_pages=self._pf.page_count - self._run_first_page,
                       n_entries=self._run_n,
                       key_min=0 if self._run_key_min is None else self._run_key_min,
                       key_max=0 if self._last_key is None else self._last_key,
                       dir_entry=self._run_dir_entry)
        self._runs.append(info)
        return info

    def _flush_pages(self, *, final):
        keys, ids = self._keys, self._ids
        if keys.size == 0:
            return
        cuts = np.empty(keys.size, dtype=np.int64)
        n_pages = _plan_pages(keys, self.id_bits, self._pf.payload_size, self.page_entries,
                              final, cuts)
        if n_pages == 0:
            return
        out = np.zeros((n_pages, self._pf.payload_size), dtype=np.uint8)
        _encode_pages(keys, ids, cuts, n_pages, self.id_bits, out)
        for p in range(n_pages):
            self._pf.append_page(out[p])
        starts = np.concatenate(([0], cuts[:n_pages - 1]))
        entries = np.empty((n_pages, 2), dtype="<u4")
        entries[:, 0] = keys[starts] - self._run_key_min
        entries[:, 1] = keys[cuts[:n_pages] - 1] - self._run_key_min
        write_all(self._spill.fileno(), entries.tobytes(), path=self._spill_path)
        self._n_dir += n_pages
        done = int(cuts[n_pages - 1])
        self._keys = keys[done:].copy()
        self._ids = ids[done:].copy()

    # -------------------------------------------------------------------- directory
    def finish(self):
        """Write the directory pages after the last run; return (runs, :class:`DirectoryInfo`).

        Returns
        -------
        runs : list of RunInfo
        directory : DirectoryInfo
        """
        if self._in_run:
            raise RuntimeError("finish() called inside a run: call end_run() first")
        self._check_open()
        per_page = directory_entries_per_page(self._pf.payload_size)
        first_page = self._pf.page_count
        try:
            self._spill.flush()
            self._spill.seek(0)
            remaining = self._n_dir
            while remaining:
                c = min(per_page, remaining)
                raw = self._spill.read(c * DIRECTORY_ENTRY_SIZE)
                if len(raw) != c * DIRECTORY_ENTRY_SIZE:
                    raise OSError(f"directory spill file {self._spill_path} is truncated")
                head = np.zeros(DIRECTORY_HEADER_SIZE, dtype=np.uint8)
                head[0] = DIRECTORY_PAGE
                head[4:8] = np.frombuffer(np.uint32(c).astype("<u4").tobytes(), np.uint8)
                self._pf.append_page(head.tobytes() + raw)
                remaining -= c
        finally:
            self._close_spill()
        directory = DirectoryInfo(first_page=first_page, n_pages=self._pf.page_count - first_page,
                                  n_entries=self._n_dir, entries_per_page=per_page)
        return list(self._runs), directory

    def abort(self):
        """Drop the temporary spill file (the page file is the caller's)."""
        self._close_spill()

    def _check_open(self):
        if self._spill is None:
            raise RuntimeError("the SortedRunWriter is finished or aborted")

    def _close_spill(self):
        if self._spill is not None:
            self._spill.close()
            self._spill = None
            try:
                os.remove(self._spill_path)
            except FileNotFoundError:
                pass


# ------------------------------------------------------------------------------ reading
def read_directory(page_file, directory, runs, buffer=None, first_out=None, last_out=None):
    """Read the directory and decode every page's first and last key.

    Disk access: ``directory.n_pages`` counted page reads of consecutive pages (through the
    buffer pool, if any), i.e. one seek when the pages are not cached.

    Parameters
    ----------
    page_file : PageFile
    directory : DirectoryInfo
    runs : tuple of ndarray of int64, shape (n_runs,) each
        ``(dir_entry, n_pages, key_min)`` of every run, as in their :class:`RunInfo`.
    buffer : ndarray of uint8, shape (directory.n_pages, page_size), optional
        Scratch for the pages (allocated if not given).
    first_out, last_out : ndarray of int64, shape (directory.n_entries,), optional
        Receive the keys (allocated if not given).

    Returns
    -------
    first_keys, last_keys : ndarray of int64, shape (directory.n_entries,)
        First and last key of each data page, indexed by directory entry.

    Raises
    ------
    CorruptPageError
        If a page fails its checks or is not a directory page.
    """
    n_pages = directory.n_pages
    ps = page_file.page_size
    if buffer is None:
        buffer = np.empty((n_pages, ps), dtype=np.uint8)
    for i in range(n_pages):
        page_file.read_page_into(directory.first_page + i, buffer[i])
    if n_pages and np.any(buffer[:n_pages, 0] != DIRECTORY_PAGE):
        raise CorruptPageError(f"{page_file.path}: a page of the directory "
                               f"({directory.first_page}..{directory.first_page + n_pages - 1}) "
                               f"is not a sorted-run directory page; rebuild the index")
    if first_out is None:
        first_out = np.empty(directory.n_entries, dtype=np.int64)
    if last_out is None:
        last_out = np.empty(directory.n_entries, dtype=np.int64)
    dir_entry, n_run_pages, key_min = runs
    _decode_directory(buffer[:n_pages], directory.entries_per_page, dir_entry, n_run_pages,
                      key_min, first_out, last_out)
    return first_out, last_out


def check_data_pages(page_file, block, first_page):
    """Raise :class:`CorruptPageError` unless every payload of ``block`` (as returned by
    :meth:`PageFile.read_run`) is a sorted-run data page."""
    if block.shape[0] and np.any(block[:, 0] != DATA_PAGE):
        raise CorruptPageError(f"{page_file.path}: pages {first_page}..{first_page + block.shape[0] - 1} "
                               f"are expected to be sorted-run data pages; rebuild the index")
