"""Vector layout: the data's vectors stored in the order of a learned partition.

With the default layout (``"source"``) point i is row i of ``vectors.pages``, and the
candidates of one query, which lie near each other in space, lie anywhere in the file: each
costs a random page read. With ``layout="partition"`` the build learns a partition of the
space from the training sample (two-level k-means over whole vectors, :data:`ROWS_PER_CELL`
points a cell on average; cells ordered along greedy nearest-centroid chains, so that
neighbouring cells are neighbouring runs of pages) and stores the vectors cell by cell (by id within a
cell): the candidates of a query then share pages and form runs, so verification reads fewer
pages with fewer seeks. Every method is built over the reordered rows: its hash tables
hold *slots* (row numbers in the reordered file), which the search verifies directly.

Ids stay the source's row numbers. Two maps are kept on disk as vector page files of one
int64 column (:mod:`lshdisk.vector_store`): ``ids.pages`` (slot -> source id: a search reads
the pages of its k answers' slots, counted with the query) and ``slots.pages`` (source id ->
slot: for tools that address points by id, such as ``tune`` and the ground-truth check).

Build cost: two more sequential passes over the source, and a sequential distribution of
the rows within the memory limit, with no sort and no random reads. Slot order is (cell, id)
order. Pass 1 assigns each row its cell, writes the cell numbers (4 bytes a row) to a
temporary file in the work directory and counts the rows of each cell; the counts give each
cell its first slot. Pass 2 reads the source again with its cell numbers: in id order, each
row takes the next free slot of its cell, which also writes ``slots.pages`` in order, and
the row (with its slot and id, 12 bytes more) is spilled into one of G buckets of
consecutive slots (G = n / :attr:`PartitionLayout.bucket_rows`, a bucket being three
quarters of the layout's memory), each bucket a region of one temporary file filled in
order: one write per chunk and bucket. Pass 3 reads the buckets one after the other, each
whole, puts its rows in slot order by their stored slots (an inverse permutation in
memory), writes ``ids.pages`` and yields the rows to the build. Temporary disk: ``n (16 + d
itemsize)`` bytes; the rows are written once and read once, sequentially. Any memory limit
gives the same files (the buckets only change how the same order is reached).
"""

import math
import os

import numpy as np

from storage import durable

from .errors import CorruptIndexError
from .learning import chain_order, kmeans, nearest_cells
from .vector_store import VectorStoreWriter

__all__ = ["LAYOUTS", "IDS_FILE", "SLOTS_FILE", "ROWS_PER_CELL", "PartitionLayout",
           "check_layout"]

LAYOUTS = ("source", "partition")
IDS_FILE = "ids.pages"
SLOTS_FILE = "slots.pages"
#: Average points per cell of the layout's partition.
ROWS_PER_CELL = 64
#: Lloyd iterations of the layout's k-means, and its training rows per cell.
_ITERATIONS = 10
_TRAIN_PER_CELL = 16
_MAX_TRAIN_ROWS = 200_000
_MAX_CELLS = 1 << 20
# Slots within a bucket are stored as uint32. Module-level so that tests can shrink it to
# force many buckets on tiny data.
_MAX_BUCKET_ROWS = 1 << 31
_CELLS_FILE = "layout-cells.tmp"
_ROWS_FILE = "layout-rows.tmp"
_CELL_DTYPE = np.dtype("<u4")


def check_layout(layout):
    """``layout`` if it is one of :data:`LAYOUTS`, else ValueError naming them."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return layout


class PartitionLayout:
    """Learns the partition and streams the source in its order (see the module docstring).

    The partition has two levels, so that its cost stays near-linear in the number of cells:
    ``top`` = ceil(sqrt(cells)) k-means cells of the sample, each split by a k-means of its
    own sample rows into cells in proportion to its share of them. Cells are numbered top
    cell by top cell, each level in its greedy nearest-centroid chain.

    Parameters
    ----------
    work_dir : str
        The build's work directory (the two temporary files of :meth:`reorder`, the two maps).
    n, d : int
    dtype : numpy dtype
        The storage dtype.
    page_size : int
    seed : int
    memory_limit_bytes : int
        For the training sample (at most a third of it) and, later, the bucket of rows that
        :meth:`reorder` holds (at most three quarters of it).
    counter : storage.IOCounter, optional
    """

    def __init__(self, work_dir, *, n, d, dtype, page_size, seed, memory_limit_bytes,
                 counter=None):
        self.work_dir, self.n, self.d = work_dir, n, d
        self.dtype = np.dtype(dtype)
        self.page_size, self.seed, self.counter = page_size, int(seed), counter
        self.cells = int(max(1, min(_MAX_CELLS, round(n / ROWS_PER_CELL))))
        self.train_rows = int(max(1, min(n, self.cells * _TRAIN_PER_CELL, _MAX_TRAIN_ROWS,
                                         (memory_limit_bytes // 3) // (4 * d))))
        self._record = np.dtype([("slot", "<u4"), ("id", "<i8"), ("row", self.dtype, (d,))])
        # One bucket and its inverse permutation, after the two per-cell int64 arrays.
        bucket_bytes = max(1 << 20, (3 * memory_limit_bytes) // 4 - 16 * self.cells)
        #: Slots a bucket of the distribution (rows held in memory at once by :meth:`reorder`).
        self.bucket_rows = int(max(1, min(_MAX_BUCKET_ROWS, bucket_bytes // (
            self._record.itemsize + np.dtype(np.intp).itemsize))))
        self.top = self.sub = None  # top centroids (t, d); per top cell its sub-centroids
        self._first = None  # first cell number of each top cell

    def fit(self, sample):
        """Two-level k-means of the sample (float32 (s, d); at most ``train_rows`` of it)."""
        rng = np.random.default_rng([self.seed, 3])
        s = sample.shape[0]
        x = sample if s <= self.train_rows else sample[np.sort(
            rng.choice(s, size=self.train_rows, replace=False))]
        x = np.ascontiguousarray(x, dtype=np.float32)
        cells = min(self.cells, x.shape[0])
        n_top = int(min(x.shape[0], max(1, math.ceil(math.sqrt(cells)))))
        top, _ = kmeans(x, n_top, _ITERATIONS, rng)
        top = top[chain_order(top)]
        labels = np.empty(x.shape[0], dtype=np.int64)
        nearest_cells(x, top, labels)
        self.top, self.sub, firsts, total = top, [], [], 0
        for t in range(n_top):
            rows = x[labels == t]
            k = int(min(rows.shape[0], max(1, round(cells * rows.shape[0] / x.shape[0]))))
            if k <= 1:
                sub = top[t:t + 1].copy()
            else:
                sub, _ = kmeans(rows, k, _ITERATIONS, rng)
                sub = sub[chain_order(sub)]
            self.sub.append(sub)
            firsts.append(total)
            total += sub.shape[0]
        self._first = np.asarray(firsts, dtype=np.int64)
        self.cells = total

    def assign(self, rows):
        """Cell numbers (int64 (c,)) of rows (c, d) of any numeric dtype."""
        x = np.ascontiguousarray(rows, dtype=np.float32)
        top = np.empty(x.shape[0], dtype=np.int64)
        nearest_cells(x, self.top, top)
        out = np.empty(x.shape[0], dtype=np.int64)
        for t in np.unique(top).tolist():
            sel = np.flatnonzero(top == t)
            local = np.empty(sel.size, dtype=np.int64)
            nearest_cells(x[sel], self.sub[t], local)
            out[sel] = self._first[t] + local
        return out

    def reorder(self, src, chunk_rows, progress=None):
        """Yield ``(slot_start, rows, source_ids)`` chunks of the source in slot order, and
        write the two maps.

        Slot order is ``(cell, source id)`` order. Three sequential passes (see the module
        docstring): the cells of the rows, then the rows spilled into buckets of consecutive
        slots, then each bucket read back whole and yielded in slot order.

        Parameters
        ----------
        src : lshdisk.datasets source
            Read twice here, sequentially, in chunks of ``chunk_rows``.
        chunk_rows : int
            Rows per source read and per yielded chunk, >= 1.
        progress : callable, optional
            ``progress(done, total)`` in rows through the two source passes (total ``2 n``).

        Yields
        ------
        slot_start : int
            Slot of the chunk's first row.
        rows : ndarray of the storage dtype, shape (c, d)
            The source rows of slots ``slot_start`` to ``slot_start + c - 1``.
        source_ids : ndarray of int64, shape (c,)
            Their source row numbers.

        Notes
        -----
        Disk access: two sequential reads of the source; ``4 n`` bytes of cell numbers written
        to ``layout-cells.tmp`` and read back; ``n (12 + d itemsize)`` bytes written to
        ``layout-rows.tmp`` (one write per chunk and bucket, each bucket's region filled in
        order) and read back one bucket at a time; ``ids.pages`` and ``slots.pages`` written
        (counted in ``counter``). Both temporary files are removed on return and on error.
        Memory: one bucket (:attr:`bucket_rows` records of ``20 + d itemsize`` bytes with its
        inverse permutation) and two int64 arrays of one entry a cell.
        """
        chunk_rows = max(1, int(chunk_rows))
        cells_path = os.path.join(self.work_dir, _CELLS_FILE)
        rows_path = os.path.join(self.work_dir, _ROWS_FILE)
        rec = self._record
        per_bucket = self.bucket_rows
        n_buckets = -(-self.n // per_bucket)
        ids_writer = slots_writer = None
        cells_fd = rows_fd = None
        try:
            # Pass 1: each row's cell (to a temporary file) and the number of rows a cell.
            cells_fd = os.open(cells_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            rows_fd = os.open(rows_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            sizes = np.zeros(self.cells, dtype=np.int64)
            for start, rows in src.iter_chunks(chunk_rows):
                cells = self.assign(rows)
                sizes += np.bincount(cells, minlength=self.cells)
                durable.write_all(cells_fd, cells.astype(_CELL_DTYPE), path=cells_path)
                if progress is not None:
                    progress(start + rows.shape[0], 2 * self.n)
            # Pass 2: each row's slot (the next free one of its cell), spilled into its
            # bucket's region of the rows file; the slot map (in id order) on the way.
            next_slot = np.cumsum(sizes) - sizes
            del sizes
            filled = np.arange(n_buckets, dtype=np.int64) * per_bucket  # records per region
            slots_writer = VectorStoreWriter(os.path.join(self.work_dir, SLOTS_FILE), d=1,
                                             dtype=np.int64, page_size=self.page_size,
                                             counter=self.counter)
            for start, rows in src.iter_chunks(chunk_rows):
                c = rows.shape[0]
                cells = np.empty(c, dtype=_CELL_DTYPE)
                _read_exact(cells_fd, cells, start * _CELL_DTYPE.itemsize, cells_path)
                slots = _take_slots(cells.astype(np.int64), next_slot)
                slots_writer.append(slots[:, None])
                bucket = slots // per_bucket
                order = np.argsort(bucket, kind="stable")
                chunk = np.empty(c, dtype=rec)
                chunk["slot"] = slots[order] - bucket[order] * per_bucket
                chunk["id"] = start + order
                np.take(rows, order, axis=0, out=chunk["row"], mode="clip")
                counts = np.bincount(bucket, minlength=n_buckets)
                lo = 0
                for b in np.flatnonzero(counts).tolist():
                    hi = lo + int(counts[b])
                    durable.pwrite_all(rows_fd, chunk[lo:hi].view(np.uint8),
                                       int(filled[b]) * rec.itemsize, path=rows_path)
                    filled[b] += hi - lo
                    lo = hi
                del chunk, order, bucket, slots, cells
                if progress is not None:
                    progress(self.n + start + c, 2 * self.n)
            slots_writer.finish()
            slots_writer = None
            os.close(cells_fd)
            cells_fd = None
            os.remove(cells_path)
            del next_slot, filled
            # Pass 3: each bucket read whole, permuted into slot order, yielded.
            ids_writer = VectorStoreWriter(os.path.join(self.work_dir, IDS_FILE), d=1,
                                           dtype=np.int64, page_size=self.page_size,
                                           counter=self.counter)
            held = min(per_bucket, self.n)
            buf = np.empty(held, dtype=rec)
            where = np.empty(held, dtype=np.intp)  # slot within the bucket -> record
            for b in range(n_buckets):
                first = b * per_bucket
                count = min(per_bucket, self.n - first)
                _read_exact(rows_fd, buf[:count].view(np.uint8), first * rec.itemsize, rows_path)
                where[buf["slot"][:count]] = np.arange(count)
                for lo in range(0, count, chunk_rows):
                    pick = where[lo:min(count, lo + chunk_rows)]
                    ids = buf["id"][pick]
                    ids_writer.append(ids[:, None])
                    yield first + lo, buf["row"][pick], ids
            del buf, where
            ids_writer.finish()
            ids_writer = None
        except BaseException:
            for w in (ids_writer, slots_writer):
                if w is not None:
                    w.abort()
            raise
        finally:
            for fd in (cells_fd, rows_fd):
                if fd is not None:
                    os.close(fd)
            for path in (cells_path, rows_path):
                if os.path.exists(path):
                    os.remove(path)

    def meta(self):
        """JSON-ready description for the index document."""
        return {"kind": "partition", "cells": int(self.cells), "rows_per_cell": ROWS_PER_CELL,
                "ids": IDS_FILE, "slots": SLOTS_FILE}


def _take_slots(cells, next_slot):
    """Slots (int64 (c,)) of a chunk's rows, in id order, whose cells are ``cells`` (int64
    (c,)): each row takes the next free slot of its cell; ``next_slot`` (int64, one entry a
    cell) is advanced past them. No disk access."""
    order = np.argsort(cells, kind="stable")
    ordered = cells[order]
    first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    rank = np.arange(ordered.size) - np.repeat(first, np.diff(np.r_[first, ordered.size]))
    slots = np.empty(cells.size, dtype=np.int64)
    slots[order] = next_slot[ordered] + rank
    next_slot += np.bincount(cells, minlength=next_slot.size)
    return slots


def _read_exact(fd, out, offset, path):
    """Fill ``out`` (a C-contiguous array) from ``offset`` of the open file ``fd``
    (``os.preadv``, short reads continued); a file that ends first raises CorruptIndexError."""
    view = memoryview(out).cast("B")
    got = 0
    while got < view.nbytes:
        n = os.preadv(fd, [view[got:]], offset + got)
        if n <= 0:
            raise CorruptIndexError(f"{path} ends at {offset + got} bytes, {view.nbytes - got} "
                                    f"short of the build's own temporary data: another process "
                                    f"changed the work directory; build again")
        got += n
