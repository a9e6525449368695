"""External sort of ``(key, id)`` records that do not fit in memory.

Index construction sorts one ``(table, projection value, point id)`` triple per point and hash
table, which for a large dataset is far more than RAM. The caller packs ``(table, float32
projection)`` into one ``uint64`` key (see :func:`float32_to_ordered_u32`) and feeds ``(key,
id)`` pairs to an :class:`ExternalSorter`, which returns them in lexicographic ``(key, id)``
order while holding at most ``memory_limit_bytes`` of arrays at any time.

Algorithm
---------
Classic two-phase external merge sort (Knuth, *TAOCP* vol. 3, section 5.4; Aggarwal and
Vitter, "The input/output complexity of sorting and related problems", CACM 1988):

1. *Run formation.* Records are copied into an in-memory buffer. When the buffer is full it is
   sorted and written to a temporary *run file*. If everything fits in one buffer, no file is
   written at all and :meth:`ExternalSorter.sorted_chunks` sorts in memory.
2. *Merge.* One k-way merge pass over all runs, each read through its own read block of
   ``budget / (23 k)`` records. If that would make blocks smaller than 64 KiB, the smallest
   runs are first merged together into longer runs (several passes) until few enough remain.

The merge is vectorised rather than heap based: each run holds a block, and a *window* of the
first ``block / 4`` records of what is left of it. The smallest last record of the windows of
runs that still have more data is a safe bound: every record not yet read is at least that
large. All windowed records ``<=`` the bound (compared exactly on ``(key, id)``) are gathered,
sorted and emitted. The run that gave the bound empties its window, so each step makes
progress. As every comparison is exact, the output is a deterministic function of the input
records alone: any budget gives byte-identical output, and duplicate pairs all come out.

In-memory sort: ``argsort`` on the keys alone, then, only if two adjacent sorted keys are
equal, a second ``argsort`` on ``(rank of key group << 32) | id``, which orders ties by id.

Memory plan
-----------
Only numpy arrays are counted, not Python objects (run files are read and written
unbuffered, straight from and into the arrays). Bytes per record, ``B = memory_limit_bytes``:

============================  ===============  ============================================
phase                         bytes held       arrays
============================  ===============  ============================================
adding, buffer of n records   12 n             keys ``uint64`` + ids ``uint32``
growing the buffer            12 n + 12 n'     old and new buffer while copying
sorting n records in place    12 n + 20 n      + argsort index ``intp`` (8 n), gathered
                                               keys and ids (12 n); on ties: group codes
                                               reuse the buffer, a 2nd index (8 n)
merging k runs, block b       k (12 b + 44 e)  read blocks; emitted records (12), their
                                               sort temporaries (20) and the previous
                                               emission (12), for windows ``e = b // 4``
============================  ===============  ============================================

so the buffer holds ``B // 32`` records and ``b = B // (23 k)``. Chunks yielded by
:meth:`ExternalSorter.sorted_chunks` are views of the emitted arrays counted above, and an
emission stays counted until the next one is built, so a ``for`` loop that holds one chunk at
a time stays within the budget; a caller that keeps chunks holds that memory itself. Budgets
above 64 GiB are used as 64 GiB.

Run file format
---------------
Run files are temporary, private to one sorter, and carry no header; their record count is
kept in memory. All integers little-endian:

===========  ========  ===========================================================
offset       size      meaning
===========  ========  ===========================================================
0            8 n       keys, ``<u8``, in ascending ``(key, id)`` order
8 n          4 n       ids, ``<u4``; ``ids[i]`` belongs to ``keys[i]``
===========  ========  ===========================================================

Deviations: run formation uses plain load-sort-store runs (size ``B / 32``), not replacement
selection (runs of ``2 B`` on random input); a vectorised numpy sort of a full buffer is far
faster in Python than a per-record heap.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .durable import write_all
from .errors import ClosedFileError, StorageError

__all__ = [
    "float32_to_ordered_u32", "ordered_u32_to_float32", "ExternalSorter", "MIN_MEMORY_LIMIT_BYTES"
]

MIN_MEMORY_LIMIT_BYTES = 1 << 20
"""Smallest ``memory_limit_bytes`` an :class:`ExternalSorter` accepts (1 MiB)."""

# Module-level so that tests can shrink them to force many runs and merge passes on tiny data.
_MIN_MEMORY_LIMIT_BYTES = MIN_MEMORY_LIMIT_BYTES
_MIN_BLOCK_BYTES = 64 << 10  # smallest per-run read block of a merge pass
_MAX_BUDGET_BYTES = 64 << 30  # keeps every in-memory sort below 2**32 records

_RECORD_BYTES = 12  # uint64 key + uint32 id
_SORT_TEMP_BYTES = 20  # argsort index (8) + gathered keys and ids (12), see _sort_pairs_inplace
_BUFFER_BYTES = _RECORD_BYTES + _SORT_TEMP_BYTES  # 32 bytes per buffered record
_WINDOW_DIVISOR = 4  # window = block // 4
_MERGE_BYTES_PER_BLOCK_RECORD = 23  # 12 (block) + (12 + 12 + 20) / 4, see the memory plan
_INITIAL_BUFFER_RECORDS = 1 << 14
_SIGN_BIT = np.uint32(0x8000_0000)

_KEY_DTYPE = np.dtype("<u8")
_ID_DTYPE = np.dtype("<u4")



def float32_to_ordered_u32(values: np.ndarray) -> np.ndarray:
    """Map float32 values to uint32 codes whose unsigned order is the float order.

    Non-negative floats get their sign bit set; negative floats have all bits flipped. Hence
    ``-inf < ... < -0.0 < +0.0 < ... < +inf`` in code order (``-0.0`` and ``+0.0`` keep
    distinct codes so that :func:`ordered_u32_to_float32` is an exact inverse), and
    subnormals sort between zero and the smallest normal. Pure computation, no disk access.

    Parameters
    ----------
    values : ndarray of float32, any shape
        Values to encode. Either byte order is accepted.

    Returns
    -------
    ndarray of uint32, same shape as `values`
        The order-preserving codes, in native byte order.

    Raises
    ------
    TypeError
        If `values` is not a float32 array.
    ValueError
        If any value is NaN, which has no place in the order.
    """
    values = np.asarray(values)
    if values.dtype.kind != "f" or values.dtype.itemsize != 4:
        raise TypeError(f"values must be a float32 array, got dtype {values.dtype}")
    values = values.astype(np.float32, copy=False)
    if np.isnan(values).any():
        raise ValueError("values must not contain NaN: NaN has no place in the float order")
    bits = values.view(np.uint32)
    negative = (bits & _SIGN_BIT) != 0
    return np.where(negative, ~bits, bits | _SIGN_BIT)


def ordered_u32_to_float32(codes: np.ndarray) -> np.ndarray:
    """Decode uint32 codes made by :func:`float32_to_ordered_u32` back to float32.

    The exact inverse, bit for bit, sign of zero included. Pure computation, no disk access.

    Parameters
    ----------
    codes : ndarray of uint32, any shape
        Codes to decode. Either byte order is accepted.

    Returns
    -------
    ndarray of float32, same shape as `codes`

    Raises
    ------
    TypeError
        If `codes` is not a uint32 array.
    """
    codes = np.asarray(codes)
    if codes.dtype.kind != "u" or codes.dtype.itemsize != 4:
        raise TypeError(f"codes must be a uint32 array, got dtype {codes.dtype}")
    codes = codes.astype(np.uint32, copy=False)
    was_non_negative = (codes & _SIGN_BIT) != 0
    bits = np.where(was_non_negative, codes & ~_SIGN_BIT, ~codes)
    return bits.view(np.float32)



class _Ledger:
    """Bytes of numpy arrays a sorter holds right now, and the most it ever held."""

    __slots__ = ("limit", "current", "peak")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.current = 0
        self.peak = 0

    def take(self, nbytes: int) -> None:
        self.current += nbytes
        if self.current > self.limit:
            raise RuntimeError(
                f"internal error: the external sort planned {self.current} bytes of arrays, "
                f"over memory_limit_bytes={self.limit}"
            )
        self.peak = max(self.peak, self.current)

    def give(self, nbytes: int) -> None:
        self.current -= nbytes


def _sort_pairs_inplace(keys: np.ndarray, ids: np.ndarray, ledger: _Ledger) -> None:
    """Sort records ``(keys[i], ids[i])`` in place, lexicographically on ``(key, id)``.

    Temporaries: at most 20 bytes per record (see the module's memory plan), recorded in
    `ledger`. ``len(keys)`` must be below 2**32.
    """
    n = keys.shape[0]
    if n < 2:
        return
    ledger.take(8 * n)
    order = np.argsort(keys)
    ledger.take(12 * n)
    sorted_keys = keys[order]
    sorted_ids = ids[order]
    del order
    ledger.give(8 * n)
    ledger.take(n)
    new_group = sorted_keys[1:] != sorted_keys[:-1]
    if new_group.all():  # no equal keys: the key order is the (key, id) order
        del new_group
        ledger.give(n)
        keys[...] = sorted_keys
        ids[...] = sorted_ids
        ledger.give(12 * n)
        return
    # Equal keys: rank each key group, then sort on (group rank << 32 | id). The input arrays
    # are free now and serve as scratch, then receive the result.
    keys[0] = 0
    np.cumsum(new_group, dtype=np.uint64, out=keys[1:])
    del new_group
    ledger.give(n)
    np.left_shift(keys, np.uint64(32), out=keys)
    np.bitwise_or(keys, sorted_ids, out=keys)
    ledger.take(8 * n)
    order = np.argsort(keys)
    np.take(sorted_keys, order, out=keys, mode="clip")  # mode="clip": no hidden out buffer
    np.take(sorted_ids, order, out=ids, mode="clip")
    del order, sorted_keys, sorted_ids
    ledger.give(20 * n)



@dataclass(slots=True)
class _Run:
    """A sorted run file: ``n`` keys (``<u8``) then ``n`` ids (``<u4``)."""

    path: str
    n: int


@dataclass(slots=True)
class _Cursor:
    """Read state of one run during a merge: its file, read block and window."""

    run: _Run
    file: object
    keys: np.ndarray  # block, <u8
    ids: np.ndarray  # block, <u4
    lo: int = 0  # first unconsumed record of the block
    hi: int = 0  # end of valid records in the block
    read: int = 0  # records read from the file so far


def _write_array(f, array: np.ndarray, dtype: np.dtype, path: str) -> None:
    """Write ``array`` as ``dtype`` at the position of raw file ``f``; every write checked
    (:func:`storage.durable.write_all`: short writes continued, ENOSPC/EIO raised)."""
    view = memoryview(np.ascontiguousarray(array.astype(dtype, copy=False))).cast("B")
    write_all(f.fileno(), view, path=path)


def _read_exact(f, offset: int, out: np.ndarray, path: str) -> None:
    f.seek(offset)
    view = memoryview(out).cast("B")
    got = 0
    while got < view.nbytes:
        n = f.readinto(view[got:])
        if not n:
            raise StorageError(
                f"sort run file {path} is truncated: wanted {view.nbytes} bytes at offset "
                f"{offset}, got {got}"
            )
        got += n


def _remove_paths(paths: set[str]) -> None:
    for path in sorted(paths):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        paths.discard(path)


_ADDING, _SORTING, _CLOSED = "adding", "sorting", "closed"


class ExternalSorter:
    """Sort ``(key, id)`` records of ``uint64`` keys and ``uint32`` ids, larger than memory.

    Feed records with :meth:`add`, then read them back once, in lexicographic ``(key, id)``
    order, from :meth:`sorted_chunks`. Use as a context manager, or call :meth:`close`, to
    remove the temporary run files.

    Parameters
    ----------
    tmp_dir : str or os.PathLike
        Existing directory for the temporary run files (names ``lshdisk-extsort-*.run``).
    memory_limit_bytes : int
        Most bytes of numpy arrays the sorter holds at once: its add buffer, sort
        temporaries, merge read blocks and the emitted output. At least
        :data:`MIN_MEMORY_LIMIT_BYTES` (1 MiB).
    progress : callable, optional
        Called as ``progress(event, done_records, total_records)``: ``"run"`` after a run file
        is written (records spilled so far, records added so far); ``"merge"`` while an
        intermediate merge writes a longer run (records written to it, its size); ``"emit"``
        when sorted records are yielded (records yielded so far, all records).

    Attributes
    ----------
    n_records : int
        Records added so far.
    runs_written : int
        Run files written, including those made by intermediate merge passes.
    bytes_spilled : int
        Bytes written to run files.
    peak_bytes : int
        Most bytes of numpy arrays held at once, as accounted; never above
        `memory_limit_bytes`.

    Raises
    ------
    TypeError
        If `memory_limit_bytes` is not an int or `progress` is not callable.
    ValueError
        If `tmp_dir` is not an existing directory, or `memory_limit_bytes` is below the minimum.
    """

    def __init__(
        self,
        tmp_dir: str | os.PathLike,
        *,
        memory_limit_bytes: int,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        tmp_dir = os.fspath(tmp_dir)
        if not os.path.isdir(tmp_dir):
            raise ValueError(f"tmp_dir must be an existing directory, got {tmp_dir!r}")
        min_block_records = max(4, _MIN_BLOCK_BYTES // _RECORD_BYTES)
        min_merge_bytes = 2 * _MERGE_BYTES_PER_BLOCK_RECORD * min_block_records  # 2 runs
        minimum = max(_MIN_MEMORY_LIMIT_BYTES, min_merge_bytes)
        memory_limit_bytes = _check_int("memory_limit_bytes", memory_limit_bytes, minimum, "bytes")
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be callable or None, got {type(progress).__name__}")

        self._tmp_dir = tmp_dir
        self._progress = progress
        self._budget = min(memory_limit_bytes, _MAX_BUDGET_BYTES)
        self._ledger = _Ledger(memory_limit_bytes)
        self._capacity = self._budget // _BUFFER_BYTES
        self._fan_in = max(2, self._budget // (_MERGE_BYTES_PER_BLOCK_RECORD * min_block_records))
        self._buf_keys: np.ndarray | None = None
        self._buf_ids: np.ndarray | None = None
        self._n_buffered = 0
        self._runs: list[_Run] = []
        self._paths: set[str] = set()
        self._finalizer = weakref.finalize(self, _remove_paths, self._paths)
        self._gen: Iterator | None = None
        self._state = _ADDING

        self.memory_limit_bytes = memory_limit_bytes
        self.n_records = 0
        self.runs_written = 0
        self.bytes_spilled = 0

    # -- public API -----------------------------------------------------------------------

    @property
    def peak_bytes(self) -> int:
        """Most bytes of numpy arrays the sorter held at once, as accounted."""
        return self._ledger.peak

    def add(self, keys: np.ndarray, ids: np.ndarray) -> None:
        """Add records ``(keys[i], ids[i])``.

        The records are copied; the caller may reuse its arrays. Whenever the buffer is full
        and more records arrive, the buffer is sorted and written to a new run file.

        Parameters
        ----------
        keys : ndarray of uint64, shape (n,)
        ids : ndarray of uint32, shape (n,)
            ``n`` may be 0.

        Raises
        ------
        TypeError
            If an argument is not an ndarray of the stated dtype (native byte order).
        ValueError
            If an argument is not 1-D or their lengths differ.
        ClosedFileError
            If the sorter is closed or :meth:`sorted_chunks` was already called.
        OSError
            If writing a run file fails; all run files are then removed and the sorter closed.

        Notes
        -----
        Disk access: sequential writes of ``12 * B // 32`` bytes per full buffer spilled.
        """
        self._check_state(_ADDING, "add()")
        keys, ids = _check_records(keys, ids)
        n = keys.shape[0]
        try:
            pos = 0
            while pos < n:
                if self._n_buffered == self._capacity:
                    self._spill()
                self._reserve(n - pos)
                take = min(n - pos, self._buf_keys.shape[0] - self._n_buffered)
                end = self._n_buffered + take
                self._buf_keys[self._n_buffered : end] = keys[pos : pos + take]
                self._buf_ids[self._n_buffered : end] = ids[pos : pos + take]
                self._n_buffered = end
                self.n_records += take
                pos += take
        except BaseException:
            self._discard()
            raise

    def sorted_chunks(
        self, max_records: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Return an iterator over all records in lexicographic ``(key, id)`` order.

        Call once, after the last :meth:`add`. Run files are removed as soon as they are
        merged; the last ones when the iterator is exhausted or the sorter closed.

        Parameters
        ----------
        max_records : int, optional
            Most records per chunk. By default chunks are as large as the merge step that
            produced them (at most ``memory_limit_bytes // 32`` records).

        Yields
        ------
        keys : ndarray of uint64, shape (c,)
        ids : ndarray of uint32, shape (c,)
            ``1 <= c <= max_records``; concatenated, the chunks hold every added record,
            duplicates included. Nothing is yielded when no record was added. Chunk sizes
            depend on the budget; their concatenation does not.

        Raises
        ------
        TypeError, ValueError
            If `max_records` is not a positive int (raised by this call, not on iteration).
        ClosedFileError
            If the sorter is closed or this method was already called.
        OSError, StorageError
            If a run file cannot be written or read back; all run files are then removed.

        Notes
        -----
        Disk access: none if everything fit in one buffer. Otherwise each record is written
        once to a run and read once by the final merge; intermediate passes, needed when more
        than ``B // (23 * 5461)`` runs exist, add one write and one read of the runs they
        merge. Reads are sequential per run, in blocks of ``12 * B // (23 k)`` bytes.
        """
        self._check_state(_ADDING, "sorted_chunks()")
        if max_records is not None:
            max_records = _check_int("max_records", max_records, 1, "records")
        self._state = _SORTING
        self._gen = self._generate(max_records)
        return self._gen

    def close(self) -> None:
        """Stop any iteration in progress and remove every run file. Idempotent."""
        gen, self._gen = self._gen, None
        if gen is not None and not gen.gi_running:
            gen.close()
        self._discard()

    def __enter__(self) -> ExternalSorter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ExternalSorter(n_records={self.n_records}, state={self._state!r})"


    def _check_state(self, wanted: str, what: str) -> None:
        if self._state == wanted:
            return
        if self._state == _CLOSED:
            raise ClosedFileError(f"{what} called on a closed ExternalSorter")
        raise ClosedFileError(
            f"{what} called after sorted_chunks(): the sorter takes no more records and "
            "yields its output once"
        )

    def _discard(self) -> None:
        """Release the buffer and remove all run files; the sorter is closed afterwards."""
        self._state = _CLOSED
        self._free_buffer()
        self._runs = []
        _remove_paths(self._paths)


    def _reserve(self, wanted: int) -> None:
        """Grow the buffer towards ``n_buffered + wanted`` records, at most the capacity."""
        have = 0 if self._buf_keys is None else self._buf_keys.shape[0]
        need = min(self._capacity, self._n_buffered + wanted)
        if need <= have:
            return
        new = min(self._capacity, max(need, 2 * have, _INITIAL_BUFFER_RECORDS))
        self._ledger.take(_RECORD_BYTES * new)
        keys = np.empty(new, dtype=np.uint64)
        ids = np.empty(new, dtype=np.uint32)
        if self._buf_keys is not None:
            keys[: self._n_buffered] = self._buf_keys[: self._n_buffered]
            ids[: self._n_buffered] = self._buf_ids[: self._n_buffered]
            self._ledger.give(_RECORD_BYTES * have)
        self._buf_keys, self._buf_ids = keys, ids

    def _free_buffer(self) -> None:
        if self._buf_keys is not None:
            self._ledger.give(_RECORD_BYTES * self._buf_keys.shape[0])
        self._buf_keys = self._buf_ids = None
        self._n_buffered = 0

    def _new_run_file(self):
        fd, path = tempfile.mkstemp(prefix="lshdisk-extsort-", suffix=".run", dir=self._tmp_dir)
        self._paths.add(path)
        try:
            return path, os.fdopen(fd, "wb", buffering=0)
        except BaseException:
            os.close(fd)
            raise

    def _spill(self) -> None:
        """Sort the buffer and write it as a new run; the buffer is then empty."""
        n = self._n_buffered
        keys = self._buf_keys[:n]
        ids = self._buf_ids[:n]
        _sort_pairs_inplace(keys, ids, self._ledger)
        path, f = self._new_run_file()
        with f:
            _write_array(f, keys, _KEY_DTYPE, path)
            _write_array(f, ids, _ID_DTYPE, path)
        self._runs.append(_Run(path, n))
        self._n_buffered = 0
        self.runs_written += 1
        self.bytes_spilled += _RECORD_BYTES * n
        if self._progress is not None:
            self._progress("run", sum(r.n for r in self._runs), self.n_records)


    def _generate(self, max_records: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        blocks = self._sorted_blocks()
        try:
            emitted = 0
            for keys, ids in blocks:
                n = keys.shape[0]
                step = n if max_records is None else max_records
                for start in range(0, n, step):
                    emitted += min(step, n - start)
                    if self._progress is not None:
                        self._progress("emit", emitted, self.n_records)
                    yield keys[start : start + step], ids[start : start + step]
                del keys, ids  # no stale reference while the next block is built
        finally:
            blocks.close()  # closes the run files before they are removed
            self._discard()

    def _sorted_blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield fresh sorted arrays whose concatenation is the whole output."""
        if not self._runs:
            n = self._n_buffered
            if n:
                keys, ids = self._buf_keys[:n], self._buf_ids[:n]
                _sort_pairs_inplace(keys, ids, self._ledger)
                yield keys, ids
            self._free_buffer()
            return
        if self._n_buffered:
            self._spill()
        self._free_buffer()
        runs = self._runs
        while len(runs) > self._fan_in:
            # Merge the smallest runs first, just enough of them for one final pass.
            runs.sort(key=lambda r: r.n)
            group_size = min(self._fan_in, len(runs) - self._fan_in + 1)
            group, rest = runs[:group_size], runs[group_size:]
            merged = self._merge_into_run(group)
            runs[:] = rest + [merged]
            _remove_paths({r.path for r in group})
            self._paths.difference_update(r.path for r in group)
        yield from self._merge(runs)

    def _merge_into_run(self, group: list[_Run]) -> _Run:
        total = sum(r.n for r in group)
        path, f = self._new_run_file()
        with f:
            done = 0
            for keys, ids in self._merge(group):
                f.seek(8 * done)
                _write_array(f, keys, _KEY_DTYPE, path)
                f.seek(8 * total + 4 * done)
                _write_array(f, ids, _ID_DTYPE, path)
                done += keys.shape[0]
                if self._progress is not None:
                    self._progress("merge", done, total)
        self.runs_written += 1
        self.bytes_spilled += _RECORD_BYTES * total
        return _Run(path, total)

    def _merge(self, runs: list[_Run]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """k-way merge of sorted runs; yields fresh sorted arrays (see the module docstring).

        A yielded emission stays accounted until the next one is built: a caller looping
        over the output usually still holds the previous chunk then.
        """
        block = self._budget // (_MERGE_BYTES_PER_BLOCK_RECORD * len(runs))
        window = max(1, block // _WINDOW_DIVISOR)
        cursors: list[_Cursor] = []
        blocks_bytes = previous_bytes = 0
        try:
            for run in runs:
                size = min(block, run.n)
                self._ledger.take(_RECORD_BYTES * size)
                blocks_bytes += _RECORD_BYTES * size
                keys, ids = np.empty(size, _KEY_DTYPE), np.empty(size, _ID_DTYPE)
                cursors.append(_Cursor(run, None, keys, ids))
                cursors[-1].file = open(run.path, "rb", buffering=0)
            while True:
                for c in cursors:
                    if c.lo == c.hi and c.read < c.run.n:
                        _refill(c)
                takes = _takes_below_bound(cursors, window)
                if not takes:
                    break
                total = sum(count for _, count in takes)
                self._ledger.take(_RECORD_BYTES * total)
                keys = np.empty(total, dtype=np.uint64)
                ids = np.empty(total, dtype=np.uint32)
                pos = 0
                for c, count in takes:
                    keys[pos : pos + count] = c.keys[c.lo : c.lo + count]
                    ids[pos : pos + count] = c.ids[c.lo : c.lo + count]
                    c.lo += count
                    pos += count
                if len(takes) > 1:  # records of one run are already in order
                    _sort_pairs_inplace(keys, ids, self._ledger)
                del takes
                self._ledger.give(previous_bytes)
                previous_bytes = _RECORD_BYTES * total
                yield keys, ids
                del keys, ids
        finally:
            for c in cursors:
                if c.file is not None:
                    c.file.close()
            cursors.clear()
            self._ledger.give(blocks_bytes + previous_bytes)


def _takes_below_bound(cursors: list[_Cursor], window: int) -> list[tuple[_Cursor, int]]:
    """Return ``(cursor, count)``: how many leading held records of each run to emit now.

    The bound is the smallest last windowed record among runs with more records after their
    window; a run whose window reaches its very end does not constrain it. Every record not
    yet read is ``>=`` the bound, so all windowed records ``<=`` it are safe to emit.
    """
    active = [(c, min(c.hi, c.lo + window)) for c in cursors if c.lo < c.hi]
    bound = None
    for c, end in active:
        if end < c.hi or c.read < c.run.n:
            last = (c.keys[end - 1], c.ids[end - 1])
            if bound is None or last < bound:
                bound = last
    takes = []
    for c, end in active:
        count = end - c.lo if bound is None else _count_le(c, end, bound)
        if count:
            takes.append((c, count))
    return takes


def _refill(c: _Cursor) -> None:
    """Read the next block of run ``c`` into its block arrays."""
    count = min(c.keys.shape[0], c.run.n - c.read)
    _read_exact(c.file, 8 * c.read, c.keys[:count], c.run.path)
    _read_exact(c.file, 8 * c.run.n + 4 * c.read, c.ids[:count], c.run.path)
    c.lo, c.hi = 0, count
    c.read += count


def _count_le(c: _Cursor, end: int, bound: tuple) -> int:
    """Number of records in ``c``'s window ``[lo, end)`` that are ``<= bound`` on (key, id)."""
    if (c.keys[end - 1], c.ids[end - 1]) <= bound:
        return end - c.lo
    bound_key, bound_id = bound
    keys = c.keys[c.lo : end]
    left = int(keys.searchsorted(bound_key, "left"))
    right = int(keys.searchsorted(bound_key, "right"))
    if left == right:
        return left
    return left + int(c.ids[c.lo + left : c.lo + right].searchsorted(bound_id, "right"))


def _check_int(name: str, value, minimum: int, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum} {unit}, got {value}")
    return int(value)


def _check_records(keys, ids) -> tuple[np.ndarray, np.ndarray]:
    for name, array, dtype in (("keys", keys, np.uint64), ("ids", ids, np.uint32)):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
        if array.dtype != np.dtype(dtype):
            raise TypeError(
                f"{name} must have dtype {np.dtype(dtype)} (native byte order), got {array.dtype}"
            )
        if array.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if keys.shape != ids.shape:
        raise ValueError(
            f"keys and ids must have the same length, got {keys.shape[0]} and {ids.shape[0]}"
        )
    return keys, ids
