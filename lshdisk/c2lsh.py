"""C2LSH: dynamic collision counting over m sorted hash tables on disk, fully out of core.

Gan, Feng, Fang, Ng, "Locality-Sensitive Hashing Scheme Based on Dynamic Collision
Counting", SIGMOD 2012. Followed: Section 3 (m base functions h(o) = floor((a . o + b*) / w),
a ~ N(0, I), b* uniform in [0, c^floor(log_c(t d)) w^2] with t the largest absolute
coordinate; collision counting with threshold l; virtual rehashing: at radius R = 1, c, c^2,
... the bucket of q is floor(h(q) / R), i.e. R consecutive level-1 buckets) and Section 4
(m and l from delta and beta, :func:`lshdisk.params.c2lsh_params`; the c-k-ANN search that
counts, per round, only the level-1 buckets newly covered, verifies each candidate's exact
distance, and stops at the end of a round with k candidates within distance cR (terminating
condition C1, "T1") or as soon as k + beta*n candidates are found (C2, "T2")).

Disk layout. Each hash table is a sorted run of (level-1 bucket, id) entries in consecutive
pages of ``tables.pages`` (:mod:`storage.sorted_run`, byte layout in :mod:`storage.format`):
a page stores its distinct buckets once, as (delta, run length) pairs, and its ids
bit-packed (16 bits for n <= 65,536: about 2,000 entries per 4 KiB page). No B+-tree: the
buckets a round adds to a table are one contiguous page range, read with one ``read_run``
(one seek, then sequential pages). Per table the searcher keeps a cursor: the leftmost and
rightmost pages read so far, held in memory with the position counted up to in each, so a
round reads only pages it has not read yet, and a boundary page holding both old and new
buckets is counted from memory, never read twice.

Batches. Which runs a round needs is known from the directory alone (a held boundary page
is left behind when its first or last bucket is in the new range), so the runs of several
tables are planned, read with one call in the order the scan takes them, then counted by
one kernel. Tables are batched only while fewer ids than the candidates still allowed are
within reach of l collisions (an id gains at most one collision per table), so T2 cannot
stop the search inside a batch; near that point, one run at a time. The pages read and their
order are the same either way (tested).

Directory. After the last table come directory pages: for every data page, its first and
last bucket (8 bytes). A query reads the whole directory region once, at its start, with
counted page reads (``ceil(data pages / 510)`` pages with 4 KiB pages, one seek: 23 pages on
Mnist), then finds each round's page range by binary search in memory. Only per-table
constants (first page, page count, smallest and largest bucket) live in the catalog
metadata, as a B+-tree's root page would. Reading it per query rather than holding it in
memory keeps the promise that every byte of the index a query depends on is a counted read.

Deviations
----------
- Data unit. The paper assumes the nearest neighbour lies at distance >= 1 and starts at
  R = 1. R cannot go below 1 here (a level-R bucket is R whole level-1 buckets), so the build
  chooses a data unit ``u = c^j`` (j any integer, negative for data with small distances)
  and hashes o / u. From a sample of min(n, 1000) points, drawn from the seed (ids from
  ``default_rng(seed)`` after a and b*) and copied as the chunks stream by, it takes the
  10th percentile r of the distances to each sample point's nearest other sample point
  (exact duplicates skipped), scales it to the full data set's density, r (s / n)^(1 / D),
  with D the intrinsic dimension estimated from the sample's 10-NN distances (Levina and
  Bickel, NIPS 2004, averaged as MacKay and Ghahramani propose; clamped to [1, d]); see
  :mod:`lshdisk.scale`. u is that estimate over sqrt(c), not rounded to a power of c:
  multiplying the data by any positive factor multiplies u by it, so the hashes o / u, the
  search, its answers and its I/O are the same up to float rounding. A search with unit u is the paper's search on
  o / u. Too large a u starts with radii wider than the nearest neighbour (more candidates,
  worse ratio); too small a u costs empty rounds (seeks and CPU, not page reads: no page is
  read twice). The estimate follows the data's true nearest-neighbour distances (Mnist,
  seed 0: 161, where the 10th percentile over the 100 queries is 182). Indexes built before
  the unit was continuous store a power of c (u = 128 on Mnist) and are searched with it.
  u is stored in the metadata; distances, results and the termination test are in the
  data's own units (T1: k-th distance <= c R u).
- Origin of the virtual buckets. ``floor(h / R)`` always has a boundary at 0, so buckets of
  opposite signs would never merge and a table could never be counted completely. Level-R
  buckets are taken relative to an origin ``O = -c^J``, c^J the smallest power of c at
  least minus the smallest stored bucket (O = 0 if no bucket is negative):
  ``O + floor((h - O) / R) R``. For R <= c^J
  this is the paper's partition (O is a multiple of R); beyond, it lets the interval grow to
  cover every bucket, so the search ends at the latest when all tables are counted. A query
  bucket below O is raised to O.
- b*: its uniform fractions are drawn from the seed at construction; they are scaled by
  c^floor(log_c(t d / u)) w^2 once t, the largest absolute coordinate (tracked while the
  data stream by), and u are known (with t = 0 the scale is w^2).
- Build: projections are sorted by (table, float32 projection, id) with an external merge
  sort under ``memory_limit``; buckets are computed during the merge (the bucket is
  monotone in the projection), so the tables are written sequentially. A query's
  projections are rounded to float32 as the data's are, so a query equal to a data point
  shares its bucket in every table.
- Candidates found in a round are verified at the end of the round (T2 is a count, T1 is
  checked per round), their vector pages read in ascending page order; a point becomes a
  candidate at exactly l collisions.
- The directory is read at the start of each query, before the first round.
"""

import json
import math
import os

import numpy as np

from storage import PageFile, id_bits_for, new_run_log
from storage.extsort import MIN_MEMORY_LIMIT_BYTES, ExternalSorter
from storage.sorted_run import (DirectoryInfo, SortedRunWriter, check_data_pages,
                                directory_entries_per_page, read_directory)
from ._kernels.c2lsh import (BAD_PAGE, CAP_REACHED, LOG_FULL, PLAN_MISMATCH, READ_ERROR,
                             ROUND_DONE, RUN_FIRST, RUN_PAGES, RUN_TABLE, STATE_FIELDS, Position,
                             ReadAhead, Tables, absorb, advance, advance_batch, all_counted,
                             buckets_from_keys, page_spans, plan_batch, projection_keys,
                             query_buckets, scan_round)
from ._kernels.counting import FLOOR, N_TOUCHED, new_counting, reset_counts, safe_tables
from ._kernels.projection import project_one, project_rows
from .errors import CorruptIndexError
from .metadata import TABLE_COLUMNS, catalog_array
from .scale import UnitSample, draw_sample_ids

__all__ = ["C2LSHBuilder", "C2LSHSearcher", "TABLES_FILE", "TABLES_KIND", "draw_hash",
           "b_scale", "bucket_origin", "write_tables_file", "table_columns"]

#: Bytes of table pages one planned batch of a round may read ahead (per open searcher).
RUN_BUFFER_BYTES = 1 << 20

TABLES_FILE = "tables.pages"
TABLES_KIND = "sortedrun"
_MIB = 1 << 20


def draw_hash(seed, m, d, n):
    """The random choices of an index, from ``np.random.default_rng(seed)``, in this order.

    Returns
    -------
    a : ndarray of float32, shape (m, d)
        The projection vectors, N(0, 1) per coordinate.
    b_fraction : ndarray of float64, shape (m,)
        Uniform in [0, 1): b* = b_fraction * :func:`b_scale`.
    sample_ids : ndarray of int64, shape (min(n, 1000),)
        Ascending ids of the unit sample, drawn without replacement.
    """
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, d), dtype=np.float32)
    b_fraction = rng.random(m)
    sample_ids = draw_sample_ids(rng, n)
    return a, b_fraction, sample_ids


def _floor_log(x, c):
    """The integer j with c^j <= x < c^(j+1), for x > 0 and an integer c >= 2."""
    j = math.floor(math.log(x) / math.log(c))
    while float(c) ** (j + 1) <= x:
        j += 1
    while float(c) ** j > x:
        j -= 1
    return j


def b_scale(t_abs, unit, d, c, w):
    """Range of b*: c^floor(log_c(t d)) w^2 with t = t_abs / unit (w^2 when t = 0)."""
    td = (t_abs / unit) * d
    if not td > 0:
        return w * w
    return float(c) ** _floor_log(td, c) * w * w


def bucket_origin(key_min, c):
    """Origin of the virtual buckets: 0 if key_min >= 0, else -c^J with c^J >= -key_min."""
    if key_min >= 0:
        return 0
    power = 1
    while power < -key_min:
        power *= c
    return -power


def write_tables_file(work_dir, *, algorithm, n, m, page_size, chunks, split, counter=None,
                      progress=None, add_error=None):
    """Write ``tables.pages``: m sorted runs (one per hash table) from a sorted stream of
    (key, id) chunks, then the run directory and the header; the file is closed (and the
    writer's spill file removed) whatever happens.

    Parameters
    ----------
    work_dir : str
        The (temporary) index directory; the directory spill file goes there too.
    algorithm : str
        Named in the file's header.
    n, m : int
        Points and tables (each table a run of n entries, in order 0 .. m - 1).
    page_size : int
    chunks : iterable of (ndarray of uint64, ndarray of uint32)
        The external sort's output, in (table, key) order.
    split : callable
        ``split(keys)`` -> (tables int64, run keys int64) of a chunk.
    counter : storage.IOCounter, optional
    progress : callable, optional
        ``progress(done, n m)`` in entries written.
    add_error : callable, optional
        ``add_error(t)`` -> the message of the ValueError raised when the writer refuses
        table t's keys (their span), else the writer's own error.

    Returns
    -------
    runs : list of storage.sorted_run.RunInfo
    directory : storage.sorted_run.DirectoryInfo
    id_bits : int

    Raises
    ------
    RuntimeError
        If the stream skips a table or holds other than m of them (a bug).
    """
    pf = PageFile.create(os.path.join(work_dir, TABLES_FILE), kind=TABLES_KIND,
                         page_size=page_size, counter=counter)
    writer = None
    try:
        bits = id_bits_for(n)
        writer = SortedRunWriter(pf, id_bits=bits, tmp_dir=work_dir)
        table, n_runs, done, total = -1, 0, 0, n * m
        for keys, ids in chunks:
            tables, run_keys = split(keys)
            cuts = (np.flatnonzero(tables[1:] != tables[:-1]) + 1).tolist()
            for s, e in zip([0, *cuts], [*cuts, keys.size]):
                t = int(tables[s])
                if t != table:
                    if table >= 0:
                        writer.end_run()
                        n_runs += 1
                    if t != n_runs:
                        raise RuntimeError(f"sorted stream skipped table {n_runs}")
                    writer.begin_run()
                    table = t
                try:
                    writer.add(run_keys[s:e], ids[s:e])
                except ValueError as exc:
                    if add_error is None:
                        raise
                    raise ValueError(add_error(t)) from exc
            done += keys.size
            if progress is not None:
                progress(done, total)
        if table >= 0:
            writer.end_run()
            n_runs += 1
        if n_runs != m:
            raise RuntimeError(f"built {n_runs} tables, expected m = {m}")
        runs, directory = writer.finish()
        header = {"algorithm": algorithm, "m": m, "n": n, "id_bits": bits,
                  "directory": directory.to_dict()}
        pf.finalize(json.dumps(header, sort_keys=True).encode())
    finally:
        pf.close()
        if writer is not None:
            writer.abort()
    return runs, directory, bits


def table_columns(runs):
    """The per-table lists of the index document (:data:`lshdisk.metadata.TABLE_COLUMNS`)."""
    return {name: [getattr(r, name) for r in runs] for name in TABLE_COLUMNS}

class C2LSHBuilder:
    """Streams data chunks into m sorted hash tables of (bucket, id), within a memory budget.

    Parameters
    ----------
    work_dir : str
        The (temporary) index directory; ``tables.pages``, sort runs and a directory spill
        file go there.
    n, d : int
    params : C2LSHParams
    seed : int
        Fixes a, b* and the unit sample (:func:`draw_hash`): the same seed and data give a
        byte-identical ``tables.pages`` whatever the memory limit or chunking.
    page_size : int
    memory_limit_bytes : int
        Budget for the external sort, the unit sample (4 d bytes per sample point) and the
        merge temporaries; chunk temporaries are given by :meth:`chunk_bytes_per_row`.
    counter : storage.IOCounter, optional
    unit : float, optional
        A fixed data unit u; None (default) measures it (:mod:`lshdisk.scale`).

    Raises
    ------
    ValueError
        If the budget cannot hold the sample and the sorter's minimum (1 MiB).
    """

    def __init__(self, work_dir, *, n, d, params, seed, page_size, memory_limit_bytes,
                 counter=None, unit=None):
        self.work_dir = work_dir
        self._given_unit = unit
        self.n, self.d, self.params = n, d, params
        self.m = params.m
        self.page_size = page_size
        self.counter = counter
        self.a, self._b_fraction, self._sample_ids = draw_hash(seed, self.m, d, n)
        self.b = None
        self._adopted_scale = None
        sample_bytes = UnitSample.bytes_needed(n, d)
        self._reserve = max(_MIB, min(memory_limit_bytes // 4, 8 * _MIB))
        sorter_bytes = memory_limit_bytes - sample_bytes - self._reserve
        if sorter_bytes < MIN_MEMORY_LIMIT_BYTES:
            need = MIN_MEMORY_LIMIT_BYTES + sample_bytes + _MIB
            raise ValueError(f"memory_limit_bytes must be at least {need} for C2LSH with d = {d} "
                             f"(sort buffer and unit sample), got {memory_limit_bytes}")
        self._sample = UnitSample(self._sample_ids, d)
        self._t_abs = 0.0
        self.sorter = ExternalSorter(work_dir, memory_limit_bytes=sorter_bytes)
        # Merge chunks: keys, tables, buckets, ids and the writer's copies, ~64 bytes a record.
        self._merge_records = int(max(1024, min(1 << 16, self._reserve // 64)))

    def chunk_bytes_per_row(self, itemsize):
        """Bytes of temporaries per data row in :meth:`add_chunk`: the row, its m float32
        projections, m uint64 sort keys and m uint32 ids."""
        return self.d * itemsize + 16 * self.m

    def arrays(self):
        """Arrays to keep in the catalog: projection vectors a (float32 (m, d)) and, after
        :meth:`finish`, the offsets b* (float64 (m,))."""
        out = {"c2lsh/a": self.a}
        if self.b is not None:
            out["c2lsh/b"] = self.b
        return out

    def adopt(self, doc, arrays):
        """Hash with an existing index's a and b instead of this seed's and the data's (a
        segment of that index, :mod:`lshdisk.segments`): b is kept as it is, not scaled to
        this data's largest coordinate; give the index's unit as ``unit`` at construction.

        Parameters
        ----------
        doc : dict
            The index document (``hash.a``, ``hash.b``, ``hash.b_max`` name and scale them).
        arrays : dict of ndarray
            Its catalog arrays.

        Raises
        ------
        CorruptIndexError
            If an array is missing or of another shape.
        """
        a = np.ascontiguousarray(catalog_array(arrays, doc["hash"]["a"]), dtype=np.float32)
        b = np.ascontiguousarray(catalog_array(arrays, doc["hash"]["b"]), dtype=np.float64)
        if a.shape != (self.m, self.d) or b.shape != (self.m,):
            raise CorruptIndexError(f"index metadata: the hash functions have shapes {a.shape} "
                                    f"and {b.shape}, expected ({self.m}, {self.d}) and "
                                    f"({self.m},): rebuild the index")
        self.a, self.b = a, b
        self._adopted_scale = float(doc["hash"]["b_max"])

    def observe(self, start, rows):
        """Take from rows ``start ..`` what the build learns of the data besides their
        buckets (the largest absolute coordinate, the unit sample), without hashing them: the
        pass of a sharded build (:mod:`lshdisk.distributed`) that fixes a, b and the unit
        every shard adopts."""
        if rows.shape[0]:
            self._t_abs = max(self._t_abs, float(rows.max()), -float(rows.min()))
            self._sample.add_chunk(start, rows, None)

    def hash_doc(self):
        """After :meth:`observe` of every row: ``(doc, arrays)`` of the hash functions, as
        :meth:`adopt` takes them (``doc``: ``hash`` with b's scale, and ``unit``)."""
        p = self.params
        unit, info = self._sample.unit(self.n, p.c, self._given_unit)
        scale = b_scale(self._t_abs, unit, self.d, p.c, p.w)
        b = self._b_fraction * scale
        return ({"hash": {"a": "c2lsh/a", "b": "c2lsh/b", "b_max": scale},
                 "unit": dict(info, u=unit)}, {"c2lsh/a": self.a, "c2lsh/b": b})

    def add_chunk(self, start, rows, source_ids=None):
        """Project ``rows`` ((c, d), storage dtype) of points ``start .. start+c-1`` and queue
        the m (table, projection, id) entries of each for sorting; track the largest absolute
        coordinate and copy the sample rows among them."""
        c = rows.shape[0]
        if c == 0:
            return
        self._t_abs = max(self._t_abs, float(rows.max()), -float(rows.min()))
        self._sample.add_chunk(start, rows, source_ids)
        proj = np.empty((c, self.m), dtype=np.float32)
        project_rows(rows, self.a, proj)
        keys = np.empty((self.m, c), dtype=np.uint64)
        point_ids = np.empty((self.m, c), dtype=np.uint32)
        projection_keys(proj.view(np.uint32), start, keys, point_ids)
        del proj
        self.sorter.add(keys.reshape(-1), point_ids.reshape(-1))

    def finish(self, progress=None):
        """Choose the unit, scale b*, merge the sorted projections into ``tables.pages``.

        Parameters
        ----------
        progress : callable, optional
            ``progress(done, total)`` in entries written (total n m).

        Returns
        -------
        dict
            JSON-ready metadata: ``files``, ``hash``, ``unit``, ``tables``, ``directory``, ...
        """
        p = self.params
        unit, unit_info = self._sample.unit(self.n, p.c, self._given_unit)
        if self._adopted_scale is None:
            scale = b_scale(self._t_abs, unit, self.d, p.c, p.w)
            self.b = self._b_fraction * scale
        else:  # another index's b, as it is
            scale = self._adopted_scale
        def split(keys):
            tables = np.empty(keys.size, dtype=np.int64)
            buckets = np.empty(keys.size, dtype=np.int64)
            buckets_from_keys(keys, self.b, unit, p.w, tables, buckets)
            return tables, buckets

        def add_error(t):
            return (f"C2LSH table {t}: the buckets of w = {p.w} (data unit {unit}) span "
                    f"2**32 or more; choose a larger w")

        try:
            runs, directory, bits = write_tables_file(
                self.work_dir, algorithm="c2lsh", n=self.n, m=self.m, page_size=self.page_size,
                chunks=self.sorter.sorted_chunks(max_records=self._merge_records), split=split,
                counter=self.counter, progress=progress, add_error=add_error)
        finally:
            self.sorter.close()
        origin = bucket_origin(min(r.key_min for r in runs), p.c)
        tables_meta = table_columns(runs)
        return {
            "files": {"tables": TABLES_FILE},
            "hash": {"a": "c2lsh/a", "b": "c2lsh/b", "shape": [self.m, self.d],
                     "dtype": "float32",
                     "distribution": "a: N(0, 1) per coordinate; b*: uniform [0, b_max); "
                                     "numpy default_rng(seed), a then b* then the unit sample",
                     "b_max": scale},
            "unit": dict(unit_info, u=unit),
            "max_abs_coordinate": self._t_abs,
            "origin": origin,
            "id_bits": bits,
            "tables": tables_meta,
            "directory": directory.to_dict(),
        }

    def abort(self):
        """Release the sorter's run files (:meth:`finish` closes its own files)."""
        self.sorter.close()


class C2LSHSearcher:
    """One round of C2LSH's virtual rehashing at a time, over an open C2LSH index (SIGMOD
    2012, Section 4; see the module docstring for the disk layout and deviations). The loop
    around the rounds (candidates, verification, termination) is
    :class:`lshdisk.search.RoundSearch`'s.

    Parameters
    ----------
    open_file : callable
        ``open_file(name, kind)`` opens one of the index's page files with the searcher's
        counter and the index's buffer pool.
    meta : lshdisk.metadata.TablesMeta
        The index's tables (what :meth:`C2LSHBuilder.finish` wrote).
    arrays : dict of ndarray
        ``"c2lsh/a"`` (float32 (m, d)) and ``"c2lsh/b"`` (float64 (m,)).
    params : C2LSHParams
    n : int
        Points in the index.

    Notes
    -----
    Memory per searcher: 2 m pages (the tables' boundary pages), 16 bytes per data page
    (the decoded directory) plus the directory pages, a read-ahead buffer of
    ``RUN_BUFFER_BYTES`` (1 MiB), and 2 to 3 bytes per data point (uint8 or uint16 collision
    counts, an int64 list of the first n / 8 points a query touched).
    """

    #: What :meth:`start_features` returns, in this order (u: the data unit; spans: per
    #: table, the level-1 buckets of the data page holding q's bucket, the inverse of the
    #: table's density around q, from the directory; their 10th, 50th, 90th percentiles).
    START_FEATURES = ("log_norm_over_u", "log_span_q10", "log_span_q50", "log_span_q90")

    def __init__(self, open_file, meta, arrays, params, n):
        self.tables_file = pf = open_file(meta.tables_file, TABLES_KIND)
        self.a = np.ascontiguousarray(catalog_array(arrays, meta.a), dtype=np.float32)
        self.b = np.ascontiguousarray(catalog_array(arrays, meta.b), dtype=np.float64)
        self.params = params
        self.meta = meta
        self.m = self.a.shape[0]
        self.n = n
        self.l = params.l
        #: T1 holds when the k-th candidate lies within c R u.
        self.c = params.c
        self.unit = meta.unit.u
        self.origin = meta.origin
        tables = meta.tables
        if self.m != params.m or len(tables["first_page"]) != self.m or self.b.shape != (self.m,):
            raise CorruptIndexError(f"C2LSH metadata disagree: m = {params.m} in the "
                                    f"parameters, {self.m} projections, "
                                    f"{len(tables['first_page'])} tables: rebuild the index")
        col = {name: np.asarray(tables[name], dtype=np.int64) for name in tables}
        self._tfirst, self._tcount, self._tdir = col["first_page"], col["n_pages"], col["dir_entry"]
        self._kmin, self._kmax = col["key_min"], col["key_max"]
        self.directory = DirectoryInfo.from_dict(meta.directory)
        if self.directory.entries_per_page != directory_entries_per_page(pf.payload_size):
            raise CorruptIndexError("C2LSH directory metadata disagree with the tables file's "
                                    "page size: rebuild the index")
        self._runs = (self._tdir, self._tcount, self._kmin)
        self._dir_buf = np.empty((self.directory.n_pages, pf.page_size), dtype=np.uint8)
        self._dir_first = np.empty(self.directory.n_entries, dtype=np.int64)
        self._dir_last = np.empty(self.directory.n_entries, dtype=np.int64)
        self._lpages = np.zeros((self.m, pf.payload_size), dtype=np.uint8)
        self._rpages = np.zeros((self.m, pf.payload_size), dtype=np.uint8)
        self._state = np.zeros((self.m, STATE_FIELDS), dtype=np.int64)
        self._qproj = np.empty(self.m, dtype=np.float64)
        self._qb = np.empty(self.m, dtype=np.int64)
        self._spans = np.empty(self.m, dtype=np.float64)
        self._request = np.zeros(2, dtype=np.int64)
        # Ids a query touched, listed up to n / 8 of them (then all counts are zeroed).
        self.counting = new_counting(n, self.m, params.l, max(64, n // 8))
        self._plan = np.zeros((2 * self.m, 4), dtype=np.int64)
        self._run_pages = max(1, RUN_BUFFER_BYTES // pf.page_size)
        self._run_buf = np.zeros((self._run_pages, pf.page_size), dtype=np.uint8)
        self._tables = Tables(self._tfirst, self._tcount, self._tdir, self._dir_first,
                              self._dir_last)
        self._position = Position(self._state, self._lpages, self._rpages, self._qb,
                                  self._request)
        self._pages = np.zeros(2 * self.m, dtype=np.int64)
        log_size = 4 * self.m + 16
        self._log = new_run_log(log_size)
        self._err = np.zeros(3, dtype=np.int64)
        self._raw = None
        self._level = 1
        self.radius = self.unit
        self.c_radius = params.c * self.unit

    def describe(self):
        """The index structure, for ``lshdisk info``."""
        pages = self._tcount
        return {"kind": "sorted runs", "count": self.m,
                "pages_per_table": round(float(pages.mean()), 1),
                "entries_per_page": round(self.n * self.m / max(1, int(pages.sum())), 1),
                "directory_pages": self.directory.n_pages,
                "unit": self.unit, "origin": self.origin}

    def _set_level(self, level):
        """Round radius ``level`` (a power of c, in bucket units): R = level u in data units."""
        self._level = level
        self.radius = level * self.unit
        self.c_radius = self.params.c * level * self.unit

    def begin(self, q):
        """Start a query: read the directory pages (one run), project q, take its buckets.

        Disk access of a whole query: the directory pages, then per round and table at most
        one run of table pages not read before (one seek each); the vector pages of each
        round's candidates are read by the search loop.
        """
        p = self.params
        read_directory(self.tables_file, self.directory, self._runs, buffer=self._dir_buf,
                       first_out=self._dir_first, last_out=self._dir_last)
        project_one(q, self.a, self._qproj)
        query_buckets(self._qproj, self.b, self.unit, p.w, self._qb)
        np.maximum(self._qb, self.origin, out=self._qb)
        self._state[:] = 0
        self._set_level(1)
        self._raw = self.tables_file.raw_reader()

    def start_features(self, q):
        """Features of the query known before its first round (:attr:`START_FEATURES`), after
        :meth:`begin` (from its directory and buckets; no disk access).

        Returns
        -------
        ndarray of float64, shape (len(START_FEATURES),)
        """
        spans = self._spans
        page_spans(self._tables, self._qb, spans)
        q10, q50, q90 = np.quantile(spans, (0.1, 0.5, 0.9))
        norm = float(np.sqrt(np.dot(q.astype(np.float64), q.astype(np.float64))))
        return np.log(np.maximum(np.array([norm / self.unit, q10, q50, q90]), 1e-30))

    def skip_to(self, radius):
        """Start the query's rounds at the largest level c^j with c^j u <= ``radius`` (data
        units) instead of level 1, if that is larger; after :meth:`begin`, before the first
        round. The first round then counts every bucket of the rounds it skips."""
        c, level = self.params.c, self._level
        while level * c * self.unit <= radius * (1.0 + 1e-9):
            level = level * c
        if level > self._level:
            self._set_level(level)

    def scan_round(self, radius_limit=math.inf):
        """Count the buckets newly covered at the current radius in every table.

        Tables whose runs cannot bring the candidates to the cap are planned from the
        directory and read together; near the cap, or for a table larger than the run
        buffer, one run at a time (the same pages, in the same order, either way). Without a
        buffer pool the whole round is one compiled call that reads the pages itself
        (:func:`lshdisk._kernels.c2lsh.scan_round`, through :meth:`storage.PageFile.raw_reader`;
        the runs it read are counted after it). With a buffer pool the loop runs here, one run
        at a time: read_run bypasses the pool (a scan must not flush it), read_runs_into goes
        through it page by page. ``radius_limit`` is not used.

        Returns
        -------
        bool
            True if the candidate cap was reached.
        """
        if self._raw is None:
            return self._scan_round_here()
        pf, log, err = self.tables_file, self._log, self._err
        ahead = ReadAhead(self._plan, self._pages, self._run_buf[:self._run_pages])
        t = 0
        while True:
            status, t = scan_round(t, self._raw, self._level, self.origin, self._tables,
                                   self._position, self.counting, self.params.l, ahead, log,
                                   err)
            pf.count_log(log)
            if status == LOG_FULL:
                continue
            if status in (ROUND_DONE, CAP_REACHED):
                return status == CAP_REACHED
            self._raise_scan_error(status, t)

    def _raise_scan_error(self, status, t):
        """Raise the error the compiled round met (see its ``err`` record): the pages are
        read again through the page file's checked methods, which word the error."""
        pf, err, plan = self.tables_file, self._err, self._plan
        first, count = int(err[0]), int(err[1])
        if status == PLAN_MISMATCH:
            raise RuntimeError(f"C2LSH planned pages disagree with the scan at table {t}, "
                               f"run {first}")
        if status == READ_ERROR and count < 0:  # a planned batch of -count runs
            pf.read_runs_into(self._pages[:-count], plan[:-count, RUN_PAGES], self._run_buf)
        elif status == BAD_PAGE and count == 0:  # run number ``first`` of the planned batch
            row = int(plan[:first, RUN_PAGES].sum())
            n = int(plan[first, RUN_PAGES])
            check_data_pages(pf, self._run_buf[row:row + n, :pf.payload_size],
                             int(self._pages[first]))
        else:
            check_data_pages(pf, pf.read_run(first, count), first)
        raise OSError(f"{pf.path}: pages from {first} failed to read, then read correctly")

    def _scan_round_here(self):
        """:meth:`scan_round` through the page file's read methods (with a buffer pool, or
        where the compiled reader cannot be used)."""
        p = self.params
        l, m = p.l, self.m
        pf = self.tables_file
        tables, pos, rec = self._tables, self._position, self.counting
        nums, reached = rec.nums, rec.reached
        floor = int(nums[FLOOR])
        tfirst, plan, run_buf = self._tfirst, self._plan, self._run_buf
        origin, radius = self.origin, self._level
        t = 0
        while t < m:
            g = safe_tables(nums, l, m - t, reached, floor)
            t_end, n_runs = t, 0
            if g and not pf.pooled:
                t_end, n_runs = plan_batch(t, t + g, self._run_pages, radius, origin, tables, pos,
                                           plan)
            if t_end > t:
                if n_runs:
                    runs = plan[:n_runs]
                    pf.read_runs_into(tfirst[runs[:, RUN_TABLE]] + runs[:, RUN_FIRST],
                                      runs[:, RUN_PAGES], run_buf)
                status, t_at, r = advance_batch(t, t_end, radius, origin, tables, pos, rec, l,
                                                plan, n_runs, run_buf)
                if status == PLAN_MISMATCH:
                    raise RuntimeError(f"C2LSH planned pages disagree with the scan at table "
                                       f"{t_at}, run {r}")
                if status == BAD_PAGE:
                    row = int(plan[:r, RUN_PAGES].sum())
                    n = int(plan[r, RUN_PAGES])
                    check_data_pages(pf, run_buf[row:row + n, :pf.payload_size],
                                     int(tfirst[t_at] + plan[r, RUN_FIRST]))
                t = t_end
            else:
                status, t = self._advance_runs(t, t + 1, radius)
            if status == CAP_REACHED:
                return True
        return False

    def next_round(self):
        """Widen the radius by c. False once every table's counted buckets cover all its
        entries."""
        if all_counted(self._state, self._kmin, self._kmax, self._tcount):
            return False
        self._set_level(self._level * self.params.c)
        return True

    def end(self):
        """Zero the query's collision counts."""
        rec = self.counting
        reset_counts(rec.counts, rec.touched, rec.nums[N_TOUCHED])

    def _advance_runs(self, t_start, t_stop, radius):
        """:func:`advance` over tables t_start .. t_stop - 1, reading each run it asks for
        when it asks (one :meth:`PageFile.read_run`, bypassing the buffer pool). Returns
        (status, t): ROUND_DONE (t = t_stop) or CAP_REACHED."""
        pf, req = self.tables_file, self._request
        l = self.params.l
        t = t_start
        while True:
            status, t = advance(t, t_stop, radius, self.origin, self._tables, self._position,
                                self.counting, l)
            if status in (ROUND_DONE, CAP_REACHED):
                return status, t
            first, count = int(req[0]), int(req[1])
            page_no = int(self._tfirst[t]) + first
            block = pf.read_run(page_no, count)
            status = absorb(status, t, radius, self.origin, block, first, self._position,
                            self.counting, l)
            if status == CAP_REACHED:
                return status, t
            if status == BAD_PAGE:
                check_data_pages(pf, block, page_no)  # raises CorruptPageError
