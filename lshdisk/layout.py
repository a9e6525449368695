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

Build cost: one more pass over the source (each row's cell, with the rows copied to a
temporary file in the index's work directory), an external sort of (cell, id) and one of
(id, slot) within the memory limit, and reads of the temporary copy in slot order (random
within the copy, which the operating system's cache serves when it fits).
"""

import math
import os

import numpy as np

from storage import durable
from storage.extsort import ExternalSorter

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
        The build's work directory (temporary copy, sort runs, the two maps).
    n, d : int
    dtype : numpy dtype
        The storage dtype.
    page_size : int
    seed : int
    memory_limit_bytes : int
        For the two external sorts and the training sample (at most a third of it).
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
        self._sort_bytes = max(1 << 20, memory_limit_bytes // 3)
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

        Parameters
        ----------
        src : lshdisk.datasets source
            Read once here, in chunks of ``chunk_rows``.
        progress : callable, optional
            ``progress(done, total)`` in rows assigned to cells.
        """
        tmp_path = os.path.join(self.work_dir, "layout-rows.tmp")
        by_cell = ExternalSorter(self.work_dir, memory_limit_bytes=self._sort_bytes)
        by_id = None
        ids_writer = slots_writer = None
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                for start, rows in src.iter_chunks(chunk_rows):
                    c = rows.shape[0]
                    by_cell.add(self.assign(rows).astype(np.uint64),
                                np.arange(start, start + c, dtype=np.uint32))
                    durable.write_all(fd, np.ascontiguousarray(rows, dtype=self.dtype).tobytes(),
                                      path=tmp_path)
                    if progress is not None:
                        progress(start + c, self.n)
            finally:
                os.close(fd)
            copy = np.memmap(tmp_path, dtype=self.dtype, mode="r", shape=(self.n, self.d))
            ids_writer = VectorStoreWriter(os.path.join(self.work_dir, IDS_FILE), d=1,
                                           dtype=np.int64, page_size=self.page_size,
                                           counter=self.counter)
            by_id = ExternalSorter(self.work_dir, memory_limit_bytes=self._sort_bytes)
            slot = 0
            for _, ids in by_cell.sorted_chunks(max_records=max(1, chunk_rows)):
                ids = ids.astype(np.int64)
                ids_writer.append(ids[:, None])
                by_id.add(ids.astype(np.uint64),
                          np.arange(slot, slot + ids.size, dtype=np.uint32))
                yield slot, np.asarray(copy[ids]), ids
                slot += ids.size
            del copy
            by_cell.close()
            ids_writer.finish()
            ids_writer = None
            slots_writer = VectorStoreWriter(os.path.join(self.work_dir, SLOTS_FILE), d=1,
                                             dtype=np.int64, page_size=self.page_size,
                                             counter=self.counter)
            for _, slots in by_id.sorted_chunks(max_records=max(1, chunk_rows)):
                slots_writer.append(slots.astype(np.int64)[:, None])
            slots_writer.finish()
            slots_writer = None
        except BaseException:
            for w in (ids_writer, slots_writer):
                if w is not None:
                    w.abort()
            raise
        finally:
            by_cell.close()
            if by_id is not None:
                by_id.close()
            if os.path.exists(tmp_path):
                os.remove(tmp_path)

    def meta(self):
        """JSON-ready description for the index document."""
        return {"kind": "partition", "cells": int(self.cells), "rows_per_cell": ROWS_PER_CELL,
                "ids": IDS_FILE, "slots": SLOTS_FILE}
