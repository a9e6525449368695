"""Learned partitions as hash functions: k-means cells of PCA subspaces, searched by
query-aware multi-probe rounds with collision counting, fully out of core.

Followed: the formulation of learned hashing as candidate generation in Li, Zhang, Hu, Ma,
Wang, Lin, "Deep Learning for Approximate Nearest Neighbour Search: A Survey and
Taxonomy" (2021), Section 6.2, Eq. (39): t learned hash functions, a point a candidate once
its collision count over them reaches a threshold (here l of the m tables), verified
exactly. The hash functions are those of product quantization's subspaces (Jegou, Douze,
Schmid, TPAMI 2011): the data are centred and rotated by the principal directions of a
training sample, the directions dealt to m subspaces by OPQ's eigenvalue allocation (Ge et
al., TPAMI 2014, Section 3.2; :mod:`lshdisk.learning`), and hash function t maps a point to
the nearest of K centroids of subspace t (k-means on the sample's sub-vectors).

Search. A query's sub-vectors rank each table's K cells by distance (query-aware
multi-probe, as multi-probe LSH, Lv et al., VLDB 2007, ranks perturbed buckets). Round j
probes the p_j nearest cells of every table, p_j = probes 2^j (1, 2, 4, 8, ... by default):
the widening of virtual rehashing, in probe space. Each probed cell adds one collision to
every id stored in it; an id with l collisions is a candidate, verified exactly by the
shared loop (:class:`lshdisk.search.RoundSearch`). The search stops at the candidate cap
(T2: k + beta n, or ``max_candidates``) or when every cell of every table is probed.

Pool (``pool`` = p > 1). The collision count says which ids to consider, not which are
nearest; the cells counted say more. The rounds then gather up to p times the cap, and only
the cap's worth with the smallest lower bounds of their asymmetric distance (product
quantization's ADC: the sum over tables of the query's squared distance to the id's
centroid) are verified, in that order. The bound of an id uses, in each table, the query's
distance to the id's centroid if that cell was counted, else to the first cell not counted
(no nearer cell is left), so it needs neither the ids' codes nor, while the query's pages
fit its cache (:data:`CACHE_BYTES`), any read: the counted cells are walked again from the
cache (:func:`lshdisk._kernels.kmeans.bounds_walk`; a page past the cache is read again,
counted). The search loop sees no candidate until
the pool is complete; ``max_candidates`` still counts verified candidates (vector reads).

Disk layout. Each table is a sorted run of (cell, id) entries in ``tables.pages``
(:mod:`storage.sorted_run`, layout in :mod:`storage.format`), so a cell is a contiguous page
range (usually part of one page: n / K ids, bit-packed). A table's cells are numbered along
a nearest-centroid chain (:func:`lshdisk.learning.chain_order`), so the cells a query probes,
which are near each other, tend to be near in the file too and share pages and runs. The run directory (first and last
cell of each data page) is read once when the index is opened (counted then) and turned
into each cell's page range, as an inverted file holds its list offsets. A query keeps the
pages it has read (up to :data:`CACHE_BYTES`), so a page holding several probed cells is
read once.

Deviations and limits
---------------------
- No guarantee: the cells are learned, not locality-sensitive in the sense of p1 > p2 for
  any data, so T1 (k candidates within c R) has no meaning here and is never met;
  ``termination="paper"`` is T2 with the round limit. The trace's ``radius`` is p_j, the
  cells probed per table; ``c_radius`` is NaN.
- Training reads a seeded sample of at most ``train_rows`` rows (and at most a third of the
  build's memory), in one pass before the hashing pass; the PCA uses all of it, each
  table's k-means a seeded subsample of :data:`ROWS_PER_CENTROID` K rows; the mean,
  rotation and centroids are kept in the catalog as arrays.
"""

import math
import time

import numpy as np

from storage import new_run_log
from storage.extsort import MIN_MEMORY_LIMIT_BYTES, ExternalSorter
from storage.sorted_run import (MAX_PAGE_ENTRIES, DirectoryInfo, check_data_pages,
                                directory_entries_per_page, read_directory)
from ._kernels.counting import (CAP, MAX_COUNT, N_CANDS, N_ENTRIES, N_TOUCHED, NUMS_FIELDS,
                                Counting, new_counting, reset_counts, start_counting)
from ._kernels.kmeans import (BAD_PAGE, CAP_REACHED, ENTRY, LOG_FULL, NEED_PAGES, PROBE_FIELDS,
                              RANK, RANK0, RANK1, ROUND_DONE, TABLE, CellTables,
                              PageCache, Probe, Walk, absorb_pages, bounds_absorb, bounds_begin,
                              bounds_walk, cell_keys, cell_pages, probe_round, probe_step,
                              reset_cache, split_keys)
from .c2lsh import TABLES_FILE, TABLES_KIND, table_columns, write_tables_file
from .errors import CorruptIndexError
from .learning import (TrainingSample, allocate_subspaces, chain_order, kmeans,
                       nearest_cells, pca, subspace_rotation, training_ids)
from .metadata import catalog_array

__all__ = ["KMeansBuilder", "KMeansSearcher", "CACHE_BYTES", "hash_rows", "rank_cells"]

#: Bytes of table pages a query keeps after reading them (per open searcher): pages past
#: it are read again when needed (counted).
CACHE_BYTES = 16 << 20
#: Training rows per centroid of each table's k-means (a subsample of the training sample
#: when it is larger; faiss caps its k-means at 256 a centroid).
ROWS_PER_CENTROID = 100
#: Bytes of one read of consecutive table pages.
RUN_BUFFER_BYTES = 1 << 20
_MIB = 1 << 20


def hash_rows(rows, mean, rotation, centroids, sq_norms, out):
    """The cell of each row in every table.

    Parameters
    ----------
    rows : ndarray, shape (c, d)
        Any numeric dtype (converted to float32).
    mean : ndarray of float32, shape (d,)
    rotation : ndarray of float32, shape (d, m width)
    centroids : ndarray of float32, shape (m, K, width)
    sq_norms : ndarray of float32, shape (m, K)
    out : ndarray of uint16, shape (c, m)
    """
    m, _, width = centroids.shape
    sub = (rows.astype(np.float32) - mean) @ rotation
    cells = np.empty(rows.shape[0], dtype=np.int64)
    for t in range(m):
        nearest_cells(np.ascontiguousarray(sub[:, t * width:(t + 1) * width]), centroids[t],
                      cells, sq_norms[t])
        out[:, t] = cells


def rank_cells(q, mean, rotation, centroids):
    """Each table's cells by increasing distance to the query's sub-vector (ties: smaller
    cell first).

    Parameters
    ----------
    q : ndarray, shape (d,)

    Returns
    -------
    order : ndarray of int64, shape (m, K)
    d2 : ndarray of float64, shape (m, K)
        Squared distances of the query's sub-vectors to the centroids.
    """
    m, _, width = centroids.shape
    sub = ((q.astype(np.float32) - mean) @ rotation).reshape(m, 1, width)
    diff = (centroids - sub).astype(np.float64)
    d2 = np.einsum("tkw,tkw->tk", diff, diff)
    return np.argsort(d2, axis=1, kind="stable").astype(np.int64), d2


class KMeansBuilder:
    """Trains the cells on a sample, then streams the data into m sorted tables of (cell, id).

    Parameters
    ----------
    work_dir : str
        The (temporary) index directory.
    n, d : int
    params : KMeansParams
    seed : int
        Fixes the training sample and the k-means starts: the same seed and data give
        byte-identical files.
    page_size : int
    memory_limit_bytes : int
        Budget for the training sample (at most a third of it), the external sort and the
        merge temporaries.
    counter : storage.IOCounter, optional
    unit : ignored
        (Learned cells need no data unit.)

    Raises
    ------
    ValueError
        If m > d, or the budget cannot hold the sorter's minimum and a sample of K rows.
    """

    def __init__(self, work_dir, *, n, d, params, seed, page_size, memory_limit_bytes,
                 counter=None, unit=None):
        if params.m > d:
            raise ValueError(f"m = {params.m} tables need at least m dimensions, the data have "
                             f"d = {d}: choose m <= {d}")
        self.work_dir, self.n, self.d, self.params = work_dir, n, d, params
        self.m, self.k = params.m, params.centroids
        self.seed = int(seed)
        self.page_size = page_size
        self.counter = counter
        rows = min(n, params.train_rows,
                   (memory_limit_bytes // 3) // TrainingSample.bytes_per_row(d))
        if rows < min(n, self.k):
            raise ValueError(f"memory_limit_bytes = {memory_limit_bytes} holds {rows} training "
                             f"rows of d = {d}, fewer than the {self.k} centroids: raise the "
                             f"memory limit or lower the centroids parameter")
        self.train_rows = rows
        sorter_bytes = memory_limit_bytes - rows * TrainingSample.bytes_per_row(d) - 2 * _MIB
        if sorter_bytes < MIN_MEMORY_LIMIT_BYTES:
            raise ValueError(f"memory_limit_bytes = {memory_limit_bytes} is too small for the "
                             f"kmeans build with d = {d}: raise the memory limit")
        self.sorter = ExternalSorter(work_dir, memory_limit_bytes=sorter_bytes)
        self._merge_records = 1 << 16
        self.mean = self.rotation = self.centroids = self._sq_norms = None
        self._training = None

    # -------------------------------------------------------------- training
    def training_ids(self):
        """Ascending ids of the rows :meth:`fit` needs (:func:`lshdisk.learning.training_ids`)."""
        return training_ids(self.seed, self.n, self.train_rows)

    def fit(self, sample):
        """Learn the rotation and each table's centroids from the training rows.

        Parameters
        ----------
        sample : ndarray of float32, shape (s, d)
            The rows of :meth:`training_ids`, in that order.
        """
        t0 = time.perf_counter()
        p = self.params
        mean, values, directions = pca(sample)
        groups = allocate_subspaces(values, self.m)
        rotation, width = subspace_rotation(directions, groups)
        self.mean = mean.astype(np.float32)
        self.rotation = rotation
        sub = (sample - self.mean) @ rotation
        k = min(self.k, sample.shape[0])
        centroids = np.zeros((self.m, self.k, width), dtype=np.float32)
        rng = np.random.default_rng([self.seed, 2])
        inertia = []
        rows = sub.shape[0]
        for t in range(self.m):
            x = sub[:, t * width:(t + 1) * width]
            if rows > ROWS_PER_CENTROID * k:  # each table's k-means on a subsample of its own
                x = x[np.sort(rng.choice(rows, size=ROWS_PER_CENTROID * k, replace=False))]
            x = np.ascontiguousarray(x)
            c, e = kmeans(x, k, p.iterations, rng)
            centroids[t, :k] = c[chain_order(c)]  # near cells get near numbers (and pages)
            if k < self.k:  # fewer rows than cells: the extra cells repeat the last centroid
                centroids[t, k:] = c[-1]
            inertia.append(e / max(1, x.shape[0]))
        self.centroids = centroids
        self._sq_norms = np.einsum("tkw,tkw->tk", centroids, centroids)
        total = float(values.sum())
        self._training = {
            "rows": int(sample.shape[0]), "seconds": round(time.perf_counter() - t0, 3),
            "width": int(width), "dims": [len(g) for g in groups],
            "variance_share": [round(float(values[g].sum()) / total, 4) if total > 0 else 0.0
                               for g in groups],
            "quantization_error": [round(float(e), 6) for e in inertia],
            "iterations": p.iterations}

    def adopt(self, doc, arrays):
        """Hash with an existing index's cells instead of training (a segment of that index,
        :mod:`lshdisk.segments`): no training pass is needed.

        Parameters
        ----------
        doc : dict
            The index document (``hash`` names the arrays; ``training`` is kept).
        arrays : dict of ndarray
            Its catalog arrays.

        Raises
        ------
        CorruptIndexError
            If an array is missing or of another shape.
        """
        h = doc["hash"]
        mean = np.ascontiguousarray(catalog_array(arrays, h["mean"]), dtype=np.float32)
        rotation = np.ascontiguousarray(catalog_array(arrays, h["a"]), dtype=np.float32)
        centroids = np.ascontiguousarray(catalog_array(arrays, h["centroids"]), dtype=np.float32)
        if mean.shape != (self.d,) or rotation.ndim != 2 or rotation.shape[0] != self.d or \
                centroids.shape != (self.m, self.k, rotation.shape[1] // max(1, self.m)):
            raise CorruptIndexError(f"index metadata: the cells' arrays have shapes {mean.shape}, "
                                    f"{rotation.shape} and {centroids.shape}, which do not fit "
                                    f"m = {self.m}, K = {self.k}, d = {self.d}: rebuild the index")
        self.mean, self.rotation, self.centroids = mean, rotation, centroids
        self._sq_norms = np.einsum("tkw,tkw->tk", centroids, centroids)
        self._training = doc.get("training")

    def observe(self, start, rows):
        """Nothing: the cells are learned by :meth:`fit` alone (the hash-fixing pass of a
        sharded build, :mod:`lshdisk.distributed`)."""

    def hash_doc(self):
        """After :meth:`fit`: ``(doc, arrays)`` of the cells, as :meth:`adopt` takes them."""
        return ({"hash": {"a": "kmeans/rotation", "mean": "kmeans/mean",
                          "centroids": "kmeans/centroids"}, "training": self._training},
                self.arrays())

    # -------------------------------------------------------------- hashing
    def chunk_bytes_per_row(self, itemsize):
        """Temporaries per data row in :meth:`add_chunk`: the row as float32 and rotated, a
        block of centroid distances, the m cells, sort keys and ids."""
        width = self.rotation.shape[1] if self.rotation is not None else self.d + self.m
        return self.d * (itemsize + 4) + 4 * width + 4 * self.k + 16 * self.m

    def arrays(self):
        """Catalog arrays: ``kmeans/mean`` float32 (d,), ``kmeans/rotation`` float32
        (d, m width), ``kmeans/centroids`` float32 (m, K, width)."""
        if self.centroids is None:
            return {}
        return {"kmeans/mean": self.mean, "kmeans/rotation": self.rotation,
                "kmeans/centroids": self.centroids}

    def add_chunk(self, start, rows, source_ids=None):
        """Hash ``rows`` ((c, d)) of points ``start ..`` to their cells and queue the m
        (table, cell, id) entries of each for sorting."""
        c = rows.shape[0]
        if c == 0:
            return
        if self.centroids is None:
            raise RuntimeError("KMeansBuilder.add_chunk before fit")
        cells = np.empty((c, self.m), dtype=np.uint16)
        hash_rows(rows, self.mean, self.rotation, self.centroids, self._sq_norms, cells)
        keys = np.empty((self.m, c), dtype=np.uint64)
        ids = np.empty((self.m, c), dtype=np.uint32)
        cell_keys(cells, start, keys, ids)
        self.sorter.add(keys.reshape(-1), ids.reshape(-1))

    def finish(self, progress=None):
        """Merge the sorted entries into ``tables.pages`` (one sorted run per table, then the
        directory); returns the method's JSON-ready metadata."""
        def split(keys):
            tables = np.empty(keys.size, dtype=np.int64)
            cells = np.empty(keys.size, dtype=np.int64)
            split_keys(keys, tables, cells)
            return tables, cells

        try:
            runs, directory, bits = write_tables_file(
                self.work_dir, algorithm="kmeans", n=self.n, m=self.m, page_size=self.page_size,
                chunks=self.sorter.sorted_chunks(max_records=self._merge_records), split=split,
                counter=self.counter, progress=progress)
        finally:
            self.sorter.close()
        return {
            "files": {"tables": TABLES_FILE},
            "hash": {"a": "kmeans/rotation", "mean": "kmeans/mean",
                     "centroids": "kmeans/centroids", "shape": list(self.rotation.shape),
                     "dtype": "float32", "cells": self.k,
                     "distribution": "PCA of a seeded training sample, OPQ eigenvalue "
                                     "allocation, k-means per subspace"},
            "training": self._training,
            "id_bits": bits,
            "tables": table_columns(runs),
            "directory": directory.to_dict(),
        }

    def abort(self):
        """Release the sorter's run files (:meth:`finish` closes its own files)."""
        self.sorter.close()


class KMeansSearcher:
    """One multi-probe round at a time over an open kmeans index (see the module docstring).

    Parameters
    ----------
    open_file : callable
        ``open_file(name, kind)`` opens one of the index's page files with the searcher's
        counter and the index's buffer pool.
    meta : lshdisk.metadata.PartitionsMeta
    arrays : dict of ndarray
        The catalog arrays the metadata names (mean, rotation, centroids).
    params : KMeansParams
    n : int

    Notes
    -----
    Opening reads the run directory (counted). Memory per searcher: the cells' page ranges
    (16 bytes per cell and table), 4 bytes per table page (the cache slots), the page cache
    (at most :data:`CACHE_BYTES`), a 1 MiB read buffer, 512 KiB of decoding scratch, and 2
    to 3 bytes per data point (collision counts, the list of touched ids), 4 more with a pool
    (the lower bounds).
    """

    def __init__(self, open_file, meta, arrays, params, n):
        self.tables_file = pf = open_file(meta.tables_file, TABLES_KIND)
        self.mean = np.ascontiguousarray(catalog_array(arrays, meta.mean), dtype=np.float32)
        self.rotation = np.ascontiguousarray(catalog_array(arrays, meta.rotation),
                                             dtype=np.float32)
        self.centroids = np.ascontiguousarray(catalog_array(arrays, meta.centroids),
                                              dtype=np.float32)
        self.params, self.meta, self.n = params, meta, n
        self.m, self.k = params.m, params.centroids
        self.l = params.l
        if self.centroids.shape[:2] != (self.m, self.k) or self.rotation.shape != (
                self.mean.shape[0], self.m * self.centroids.shape[2]):
            raise CorruptIndexError(f"kmeans arrays disagree with the parameters (m = {self.m}, "
                                    f"K = {self.k}): rebuild the index")
        col = {name: np.asarray(v, dtype=np.int64) for name, v in meta.tables.items()}
        directory = DirectoryInfo.from_dict(meta.directory)
        if directory.entries_per_page != directory_entries_per_page(pf.payload_size):
            raise CorruptIndexError("kmeans directory metadata disagree with the tables file's "
                                    "page size: rebuild the index")
        first_keys, last_keys = read_directory(pf, directory, (col["dir_entry"], col["n_pages"],
                                                              col["key_min"]))
        cell_first = np.empty((self.m, self.k), dtype=np.int64)
        cell_last = np.empty((self.m, self.k), dtype=np.int64)
        cell_pages(first_keys, last_keys, col["dir_entry"], col["n_pages"], cell_first,
                   cell_last)
        self._tables = CellTables(col["first_page"], col["dir_entry"], cell_first, cell_last)
        n_entries = directory.n_entries
        capacity = max(1, min(n_entries, CACHE_BYTES // pf.page_size))
        self._cache = PageCache(np.full(n_entries, -1, dtype=np.int32),
                                np.zeros(capacity, dtype=np.int64),
                                np.zeros((capacity, pf.payload_size), dtype=np.uint8),
                                np.zeros(1, dtype=np.int64))
        self._state = np.zeros(PROBE_FIELDS, dtype=np.int64)
        self._request = np.zeros(2, dtype=np.int64)
        self._probe = None
        self._run_buf = np.zeros((max(1, RUN_BUFFER_BYTES // pf.page_size), pf.page_size),
                                 dtype=np.uint8)
        self._log = new_run_log(256)
        self._err = np.zeros(2, dtype=np.int64)
        self._raw = None
        self.counting = new_counting(n, self.m, self.l, max(64, n // 8))
        self._gen = None  # the record the rounds count into: counting, or the pool's
        self._d2 = None
        self._score = None  # float32 (n,): the pool's lower bounds (pool > 1)
        self._scratch = np.empty(MAX_PAGE_ENTRIES, dtype=np.int64)
        self._walk = Walk(np.zeros(3, dtype=np.int64), np.zeros(self.m, dtype=np.int64),
                          np.zeros(self.m, dtype=np.float64))
        #: No T1 (see the module docstring): NaN makes its test false.
        self.c = math.nan
        self.c_radius = math.nan
        self.radius = float(min(self.k, params.probes))

    #: No start features: the first round probes one cell per table, nothing to skip.
    START_FEATURES = ()

    def start_features(self, q):
        """No start features (:attr:`START_FEATURES`): an empty float64 array."""
        return np.empty(0, dtype=np.float64)

    def skip_to(self, radius):
        """Nothing: the rounds widen in probes, not in a radius."""

    def describe(self):
        """The index structure, for ``lshdisk info``."""
        pages = np.asarray(self.meta.tables["n_pages"])
        return {"kind": "learned cells (sorted runs)", "count": self.m, "cells": self.k,
                "pages_per_table": round(float(pages.mean()), 1),
                "entries_per_page": round(self.n * self.m / max(1, int(pages.sum())), 1),
                "training": self.meta.training}

    def begin(self, q):
        """Start a query: rank each table's cells by distance to its sub-vector; the first
        round probes ``probes`` cells per table; with ``pool`` > 1 the rounds count into a
        pool of ``pool`` times the cap (the search loop's cap, set before this call). Disk
        access: none (the round reads)."""
        order, self._d2 = rank_cells(q, self.mean, self.rotation, self.centroids)
        self._probe = Probe(order, self._state, self._request)
        rec = self.counting
        if self.params.pool > 1:
            size = int(min(self.n, self.params.pool * int(rec.nums[CAP])))
            gen = self._gen
            if gen is None or gen.counts is not rec.counts:
                gen = Counting(rec.counts, rec.touched, np.empty(0, dtype=np.int64),
                               np.zeros(NUMS_FIELDS, dtype=np.int64), np.zeros_like(rec.reached))
            self._gen = start_counting(gen, size, self.l)
        else:
            self._gen = rec
        s = self._state
        s[TABLE], s[RANK], s[ENTRY], s[RANK0] = 0, 0, -1, 0
        s[RANK1] = min(self.k, self.params.probes)
        self.radius = float(s[RANK1])
        self._raw = self.tables_file.raw_reader()

    def scan_round(self, radius_limit=math.inf):
        """Count the round's cells of every table (``radius_limit`` is not used).

        Disk access: per probed cell, the pages of it not read before by this query (one
        run, one seek at most). Without a buffer pool the round is one compiled call reading
        through :meth:`storage.PageFile.raw_reader`; with one, the pages are read here.

        Returns
        -------
        bool
            True if the candidate cap was reached.
        """
        capped = self._scan_round_here() if self._raw is None else self._scan_round_raw()
        gen, rec = self._gen, self.counting
        if gen is rec:
            return capped
        for field in (N_TOUCHED, N_ENTRIES, MAX_COUNT):
            rec.nums[field] = gen.nums[field]
        if not capped and self._state[RANK1] < self.k:
            return False
        self._select()
        return True

    def _select(self):
        """Move the cap's worth of the pool with the smallest lower bounds (ascending) into
        the search loop's candidates."""
        gen, rec = self._gen, self.counting
        pool = gen.cands[:int(gen.nums[N_CANDS])]
        if self._score is None:
            self._score = np.zeros(self.n, dtype=np.float32)
        score, walk, req = self._score, self._walk, self._request
        bounds_begin(self._probe, self._d2, pool, walk, score)
        pf, max_run = self.tables_file, self._run_buf.shape[0]
        tables = self._tables
        # Pages beyond the query's cache are read again (counted), a run at a time.
        while bounds_walk(tables, self._probe, self._cache, rec.counts, self.l, self._d2, walk,
                          req, self._scratch, score, max_run) == NEED_PAGES:
            t = int(walk.state[0])
            page_no = int(tables.first[t] + req[0] - tables.dir_entry[t])
            count = int(req[1])
            block = self._run_buf[:count]
            pf.read_runs_into(np.array([page_no], dtype=np.int64),
                              np.array([count], dtype=np.int64), block)
            check_data_pages(pf, block[:, :pf.payload_size], page_no)
            bounds_absorb(block, self._probe, rec.counts, self.l, self._d2, walk, req,
                          self._scratch, score)
        keep = pool[np.argsort(score[pool], kind="stable")[:int(rec.nums[CAP])]]
        rec.cands[:keep.shape[0]] = keep
        rec.nums[N_CANDS] = keep.shape[0]

    def _scan_round_raw(self):
        """The round as one compiled call (no buffer pool); True at the counting cap."""
        pf, log = self.tables_file, self._log
        while True:
            status = probe_round(self._raw, self._tables, self._probe, self._cache,
                                 self._gen, self.l, self._run_buf, log, self._err)
            pf.count_log(log)
            if status == LOG_FULL:
                continue
            if status in (ROUND_DONE, CAP_REACHED):
                return status == CAP_REACHED
            first, count = int(self._err[0]), int(self._err[1])
            block = pf.read_run(first, count)  # raises the checked path's error
            if status == BAD_PAGE:
                check_data_pages(pf, block, first)
            raise OSError(f"{pf.path}: pages from {first} failed to read, then read correctly")

    def _scan_round_here(self):
        """:meth:`scan_round` through the page file's read methods (with a buffer pool: the
        cells' pages go through it, as random reads)."""
        pf, tables, probe = self.tables_file, self._tables, self._probe
        max_run = self._run_buf.shape[0]
        while True:
            status = probe_step(tables, probe, self._cache, self._gen, self.l, max_run)
            if status != NEED_PAGES:
                return status == CAP_REACHED
            t = int(self._state[TABLE])
            page_no = int(tables.first[t] + self._request[0] - tables.dir_entry[t])
            count = int(self._request[1])
            block = self._run_buf[:count]
            pf.read_runs_into(np.array([page_no], dtype=np.int64),
                              np.array([count], dtype=np.int64), block)
            check_data_pages(pf, block[:, :pf.payload_size], page_no)
            if absorb_pages(block, tables, probe, self._cache, self._gen,
                            self.l) == CAP_REACHED:
                return True

    def next_round(self):
        """Double the cells probed per table. False once every cell is probed."""
        s = self._state
        if s[RANK1] >= self.k:
            return False
        s[RANK0] = s[RANK1]
        s[RANK1] = min(self.k, 2 * s[RANK1])
        s[TABLE], s[RANK], s[ENTRY] = 0, s[RANK0], -1
        self.radius = float(s[RANK1])
        return True

    def end(self):
        """Zero the query's collision counts and forget its pages."""
        rec = self._gen if self._gen is not None else self.counting
        reset_counts(rec.counts, rec.touched, rec.nums[N_TOUCHED])
        reset_cache(self._cache)
