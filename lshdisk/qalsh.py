"""QALSH: query-aware LSH with one disk B+-tree per hash function, fully out-of-core.

Huang, Feng, Zhang, Fang, Ng, "Query-Aware Locality-Sensitive Hashing for Approximate
Nearest Neighbor Search", PVLDB 9(1):1-12, 2015. Followed: Section 3 (query-aware hash
family h_a(o) = a . o with a ~ N(0, I), bucket [a.q - wR/2, a.q + wR/2]), Section 4
(parameters m, l, collision counting, virtual rehashing over R = 1, c, c^2, ...), Section 5
(B+-trees over the projections, two-way leaf scans from a.q, the two termination conditions:
T1 at least k candidates within distance cR, T2 k + beta*n candidates) and the radius update
of the authors' code that jumps to the radius where the median cursor head falls in the
bucket, skipping rounds that would find nothing.

Deviations
----------
- Scale: the paper assumes the nearest neighbour lies at distance >= 1 and starts at R = 1
  (the authors' code clamps the first radius to >= 1). Here the radii are u c^j, j any
  integer (negative too), with u the data unit the build measures from a seeded sample
  (:mod:`lshdisk.scale`: the data's typical nearest-neighbour distance over sqrt(c)), starting
  from the radius update rule applied to the first cursor heads. The rounds then run at the data's
  own scale: uint8 pixels with neighbour distances in the hundreds and unit-norm embeddings
  with distances well below 1 give the same quality with no rescaling, and multiplying the
  data by any positive factor gives the same search up to float rounding. Indexes built
  without a unit (before it was measured) are searched with u = 1.
- Build: the projections are sorted with an external merge sort under ``memory_limit`` and
  bulk-loaded, instead of sorting each table in RAM.
- Leaves store 16-bit key codes and bit-packed ids (see :mod:`storage.btree`); the reference
  code stores one key per 32 ids, so its bucket test is per group of 32 entries, ours is per
  entry.
- A point becomes a candidate at ``l`` collisions, as in the paper (the code uses > l).
- Within a round the tables are scanned one after another, each fully (left then right).
  The leaves a round's buckets reach are known before they are read: a leftward cursor
  enters leaf j - 1 once leaf j is used up, a rightward one enters leaf j + 1 only if that
  leaf's first key (from the inner node above the leaves, held per cursor) lies in the
  bucket; the authors' code instead reads the next leaf to find out, one page more per
  table and side now and then. So the leaves of several tables are planned together and
  read as runs of consecutive pages in ascending order (one ``preadv`` per run, one seek at
  most), leftward runs included, then scanned in place. Read-ahead never passes the point
  where T2 could stop the search: tables are batched only while fewer than the remaining
  k + beta*n - candidates ids are within reach of l collisions, and near that point the
  leaves are read one at a time. Page reads are therefore exactly the leaves the cursors
  enter (tested against the one-leaf-at-a-time walk).
- Candidates are verified at the end of each round, where T1 is tested, or when T2 stops the
  search: the distinct vector pages of the round's new candidates are read once each, in
  ascending page order, as runs of consecutive pages. The authors' code reads a candidate's
  vector as soon as it is found, so a page holding several candidates of a round may be read
  more than once there. The answers are the same.
- Trees of height >= 3: a rightward cursor that leaves the part of the tree under its held
  inner node reads the next one (one counted page); leftward cursors never read inner nodes
  for planning and take the leaves beyond their node one plan at a time.
"""

import math
import os
from dataclasses import asdict

import numpy as np

from storage import BulkLoader, PageFile, id_bits_for, new_run_log
from storage.extsort import ExternalSorter, float32_to_ordered_u32, ordered_u32_to_float32
from ._kernels.counting import FLOOR, N_TOUCHED, new_counting, safe_tables
from ._kernels.qalsh_rounds import (CAP_REACHED, DIR_NODE, DONE, LOG_FULL, NEED_DIR,
                                    READ_ERROR, Cursors, ReadAhead, head_distances, load_dir,
                                    median_head_distance, place_cursors, plan_runs, reset_query,
                                    scan_round, scan_sides)
from .errors import CorruptIndexError
from .maps import LinearMap
from .metadata import catalog_array
from .scale import UnitSample, draw_sample_ids
from .trees import TREES_FILE, TREES_KIND, ProjectionTrees

__all__ = ["QALSHBuilder", "QALSHSearcher", "TREES_FILE", "TREES_KIND", "draw_projections"]

_TINY = 1e-30
#: Bytes of leaf pages one scan of a round may plan and read ahead (per open searcher).
RUN_BUFFER_BYTES = 1 << 20


def draw_projections(seed, m, d):
    """The m x d Gaussian projection vectors (float32), from ``np.random.default_rng(seed)``."""
    return np.random.default_rng(seed).standard_normal((m, d), dtype=np.float32)


class QALSHBuilder:
    """Streams data chunks into m B+-trees of (a_i . o, id), within a memory budget.

    Parameters
    ----------
    work_dir : str
        The (temporary) index directory; ``trees.pages`` and sort runs go there.
    n, d : int
    params : QALSHParams
    seed : int
        Seed of the m x d Gaussian projection vectors (:func:`draw_projections`) and, from
        the same generator after them, of the unit sample's ids.
    page_size : int
    memory_limit_bytes : int
        Budget for the sort buffers and the unit sample.
    counter : storage.IOCounter, optional
    unit : float, optional
        A fixed radius unit u; None (default) measures it (:mod:`lshdisk.scale`).
    hash_map : lshdisk.maps.LinearMap or MLPMap, optional
        A learned map of m keys (:mod:`lshdisk.learned_trees`) keying the trees instead of
        Gaussian projections; the unit sample's ids then come from
        ``np.random.default_rng([seed, 4])``.
    """

    def __init__(self, work_dir, *, n, d, params, seed, page_size, memory_limit_bytes,
                 counter=None, unit=None, hash_map=None):
        self.work_dir = work_dir
        self._given_unit = unit
        self.n, self.d, self.params = n, d, params
        if hash_map is None:
            rng = np.random.default_rng(seed)
            self.a = rng.standard_normal((params.m, d), dtype=np.float32)  # = draw_projections
            hash_map = LinearMap(self.a)
        else:
            rng = np.random.default_rng([int(seed), 4])
            self.a = hash_map.a
        self._map = hash_map
        self._sample = UnitSample(draw_sample_ids(rng, n), d)
        self.m = params.m
        self.page_size = page_size
        self.counter = counter
        sorter_bytes = max(memory_limit_bytes - UnitSample.bytes_needed(n, d),
                           memory_limit_bytes // 2)
        self.sorter = ExternalSorter(work_dir, memory_limit_bytes=sorter_bytes)
        self._table_codes = (np.arange(self.m, dtype=np.uint64) << np.uint64(32))[:, None]

    def chunk_bytes_per_row(self, itemsize):
        """Bytes of temporaries per data row while a chunk is projected and keyed."""
        return self.d * itemsize + self.m * 32

    def arrays(self):
        """Arrays to keep in the catalog: the projection vectors."""
        return {"qalsh/a": self.a}

    def adopt(self, doc, arrays):
        """Hash with an existing index's projections instead of this seed's (a segment of
        that index, :mod:`lshdisk.segments`); give its unit as ``unit`` at construction.

        Parameters
        ----------
        doc : dict
            The index document (``hash.a`` names the array).
        arrays : dict of ndarray
            Its catalog arrays.

        Raises
        ------
        CorruptIndexError
            If the array is missing or of another shape than (m, d).
        """
        a = np.ascontiguousarray(catalog_array(arrays, doc["hash"]["a"]), dtype=np.float32)
        if a.shape != (self.m, self.d):
            raise CorruptIndexError(f"index metadata: the projections have shape {a.shape}, "
                                    f"expected ({self.m}, {self.d}): rebuild the index")
        self.a = a
        self._map = LinearMap(a)

    def observe(self, start, rows):
        """Take from rows ``start ..`` what the build learns of the data besides their keys
        (the unit sample), without keying them: the pass of a sharded build
        (:mod:`lshdisk.distributed`) that fixes the hash functions every shard adopts."""
        self._sample.add_chunk(start, rows, None)

    def hash_doc(self):
        """After :meth:`observe` of every row: ``(doc, arrays)`` of the hash functions, as
        :meth:`adopt` takes them (``doc``: ``hash`` and ``unit``)."""
        unit, info = self._sample.unit(self.n, self.params.c, self._given_unit)
        return ({"hash": {"a": "qalsh/a"}, "unit": dict(info, u=unit)}, self.arrays())

    def add_chunk(self, start, rows, source_ids=None):
        """Project ``rows`` ((c, d), storage dtype) of points ``start .. start+c-1`` and queue
        the m (key, id) entries of each for sorting."""
        c = rows.shape[0]
        self._sample.add_chunk(start, rows, source_ids)
        proj = np.empty((c, self.m), dtype=np.float32)
        self._map.project_rows(rows, proj)
        keys = float32_to_ordered_u32(np.ascontiguousarray(proj.T)).astype(np.uint64)
        del proj
        keys |= self._table_codes
        ids = np.broadcast_to(np.arange(start, start + c, dtype=np.uint32), (self.m, c))
        self.sorter.add(keys.ravel(), ids.ravel())

    def finish(self, progress=None):
        """Merge the sorted runs into ``trees.pages``; return the trees' metadata and the data
        unit (JSON-ready)."""
        unit, unit_info = self._sample.unit(self.n, self.params.c, self._given_unit)
        path = os.path.join(self.work_dir, TREES_FILE)
        pf = PageFile.create(path, kind=TREES_KIND, page_size=self.page_size, counter=self.counter)
        infos = []
        bits = id_bits_for(self.n)
        loader, table = None, -1
        done = 0
        total = self.n * self.m
        try:
            for keys, ids in self.sorter.sorted_chunks():
                tables = (keys >> np.uint64(32)).astype(np.int64)
                cuts = np.flatnonzero(np.diff(tables)) + 1
                starts = np.concatenate(([0], cuts)).tolist()
                stops = np.concatenate((cuts, [keys.size])).tolist()
                for s, e in zip(starts, stops):
                    t = int(tables[s])
                    if t != table:
                        if loader is not None:
                            infos.append(loader.finish())
                        if t != len(infos):
                            raise RuntimeError(f"sorted stream skipped table {len(infos)}")
                        loader, table = BulkLoader(pf, id_bits=bits), t
                    codes = (keys[s:e] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
                    loader.add(ordered_u32_to_float32(codes), ids[s:e])
                done += keys.size
                if progress is not None:
                    progress(done, total)
            if loader is not None:
                infos.append(loader.finish())
            if len(infos) != self.m:
                raise RuntimeError(f"built {len(infos)} trees, expected m = {self.m}")
            pf.finalize(b'{"algorithm": "qalsh"}')
        finally:
            pf.close()
            self.sorter.close()
        return {"files": {"trees": TREES_FILE},
                "hash": {"a": "qalsh/a", "shape": [self.m, self.d], "dtype": "float32",
                         "distribution": "N(0, 1) per coordinate, numpy default_rng(seed)"},
                "unit": dict(unit_info, u=unit),
                "trees": [asdict(i) for i in infos]}

    def abort(self):
        self.sorter.close()


class QALSHSearcher:
    """One round of QALSH's virtual rehashing at a time, over an open QALSH index (PVLDB 2015,
    Algorithm 2 with the radius update of the authors' code; see the module docstring for
    deviations). The loop around the rounds (candidates, verification, termination) is
    :class:`lshdisk.search.RoundSearch`'s.

    Parameters
    ----------
    open_file : callable
        ``open_file(name, kind)`` opens one of the index's page files with the searcher's
        counter and the index's buffer pool.
    meta : lshdisk.metadata.TreesMeta
        The index's trees (what :meth:`QALSHBuilder.finish` wrote).
    arrays : dict of ndarray
        The catalog arrays (``"qalsh/a"``: float32 (m, d) projection vectors).
    params : QALSHParams
    n : int
        Points in the index.

    Notes
    -----
    Memory per searcher: 2 m pages for the cursors, 2 m inner-node key arrays (8 bytes per
    child, 8 KiB per cursor at 4 KiB pages), a read-ahead buffer of ``RUN_BUFFER_BYTES``
    (1 MiB), and 2 to 3 bytes per data point: the collision counts (uint8, uint16 if
    m > 255) and the list of the first n / 8 points touched by a query (int64).
    """

    #: What :meth:`start_features` returns, in this order (u: the data unit; heads: the
    #: projected distances of the cursor heads after the descent, their upper quantiles,
    #: which a query equal to an indexed point does not move).
    START_FEATURES = ("log_norm_over_u", "log_head_q75_over_u", "log_head_q90_over_u")

    def __init__(self, open_file, meta, arrays, params, n):
        self.trees = ProjectionTrees.open(open_file, meta, arrays)
        self._training = meta.training
        trees_file = self.trees.file
        self.params = params
        self.n = n
        self.m = m = self.trees.m
        self.l = params.l
        self._heads = np.empty(2 * m, dtype=np.float64)
        #: T1 holds when the k-th candidate lies within c R.
        self.c = params.c
        #: The data unit: radii are u c^j (1 for indexes built without one).
        self.unit = meta.unit.u
        ps = trees_file.page_size
        self._pages = np.zeros((2, m, ps), dtype=np.uint8)
        self._keyfmt = np.zeros((2, m, 3), dtype=np.float64)
        self.counting = new_counting(n, m, params.l, max(64, n // 8))
        self._dkeys = np.zeros((2, m, self.trees.max_fanout), dtype=np.float64)
        self._cur = np.zeros((2, m, 4), dtype=np.int64)
        self._slots = np.zeros((2, m, 2), dtype=np.int64)
        self._runs = np.zeros((2 * m, 4), dtype=np.int64)
        self._run_pages = max(1, RUN_BUFFER_BYTES // ps)
        self._run_buf = np.zeros((self._run_pages, ps), dtype=np.uint8)
        self._node_buf = np.zeros((1, ps), dtype=np.uint8)
        self._cursors = Cursors(self._pages, self._cur, self._keyfmt, self._dkeys, self._slots)
        log_size = 6 * m + 16
        self._log = new_run_log(log_size)
        self._raw = None
        self._next_head = None  # the median cursor head after the round, if the kernel gave it
        self._log_c = math.log(params.c)
        self.radius = 1.0
        self.c_radius = params.c

    def describe(self):
        """The index structure, for ``lshdisk info`` (a learned map's kind and training
        figures too)."""
        out = self.trees.describe(self.n)
        if self._training is not None:
            out.update(map=self.trees.map.kind, training=self._training)
        return out

    def _radius_for(self, head):
        """The radius u c^j, smallest j, whose bucket (width w R) reaches a projected
        distance ``head``."""
        p, u = self.params, self.unit
        return u * p.c ** math.ceil(math.log(2.0 * max(head, _TINY) / (p.w * u)) / self._log_c)

    def _head(self):
        return median_head_distance(self._pages, self._cur, self._keyfmt, self._dkeys,
                                    self.trees.tinfo, self.trees.qproj)

    def _set_radius(self, radius):
        self.radius = radius
        self.c_radius = self.params.c * radius

    def begin(self, q):
        """Start a query: descend every tree holding the inner node above each leaf as both
        cursors' directory node, place the cursors, and take the first radius (the radius
        update applied to the first cursor heads)."""
        cur = self._cur
        cur[:] = 0
        cur[:, :, DIR_NODE] = -1
        trees = self.trees
        self._raw = raw = trees.file.raw_reader()
        leaves = trees.descend(q, self._pages[0], dirs=self._cursors, raw=raw)
        place_cursors(self._pages, cur, self._keyfmt, trees.qproj, leaves - trees.tinfo[:, 0])
        head = self._head()
        self._set_radius(self._radius_for(head) if head >= 0 else self.unit)

    def start_features(self, q):
        """Features of the query known before its first round (:attr:`START_FEATURES`), after
        :meth:`begin`; no disk access.

        Returns
        -------
        ndarray of float64, shape (len(START_FEATURES),)
        """
        heads = self._heads
        n_heads = head_distances(self._pages, self._cur, self._keyfmt, self._dkeys,
                                 self.trees.tinfo, self.trees.qproj, heads)
        u = self.unit
        q75, q90 = np.quantile(heads[:n_heads], (0.75, 0.9)) if n_heads else (u, u)
        norm = float(np.sqrt(np.dot(q.astype(np.float64), q.astype(np.float64))))
        return np.log(np.maximum(np.array([norm, q75, q90]) / u, _TINY))

    def skip_to(self, radius):
        """Start the query's rounds at the largest radius u c^j <= ``radius`` (data units)
        instead of the first one, if that is larger; after :meth:`begin`, before the first
        round. The first round then counts every entry of the rounds it skips."""
        u, c = self.unit, self.params.c
        if not radius > self.radius:
            return
        start = u * c ** math.floor(math.log(radius / u) / self._log_c + 1e-9)
        if start > self.radius:
            self._set_radius(start)

    def _load_dir(self, s, t, node):
        """Read directory node ``node`` of table t (one counted page read) for side s."""
        self.trees.read_node(int(self.trees.tinfo[t, 2] + node), self._node_buf)
        load_dir(self._node_buf[0], self._dkeys, self._cur, s, t, node)

    def scan_round(self, radius_limit=math.inf):
        """Plan, read and count one round at the current radius.

        Each round scans the tables in order, both sides of each; the leaves the round's
        buckets reach are planned from the directory nodes, read as runs of consecutive pages,
        then scanned. Tables are planned and read together as long as they cannot produce the
        last of the candidates the cap allows (T2); near that point one leaf at a time, so no
        page is read that the scan does not enter. The whole round is one compiled call
        (:func:`lshdisk._kernels.qalsh_rounds.scan_round`) that reads the pages itself, when
        the trees file allows it (:meth:`storage.PageFile.raw_reader`: no buffer pool);
        otherwise the same loop runs here, reading through the page file's methods. The pages,
        their order and the counts are the same either way. ``radius_limit`` is not used
        (rounds have fixed radii).

        Returns
        -------
        bool
            True if the candidate cap was reached (the round stopped there).
        """
        if self._raw is None:
            return self._scan_round_here()
        p, trees, log = self.params, self.trees, self._log
        buffers = ReadAhead(self._runs, self._run_buf[:self._run_pages], self._node_buf)
        half_width = p.w * self.radius / 2.0
        t = 0
        while True:
            status, t, err, self._next_head = scan_round(
                t, self._raw, self._cursors, trees.tinfo, trees.id_bits, trees.qproj,
                half_width, buffers, self.counting, p.l, log)
            trees.file.count_log(log)
            if status == LOG_FULL:
                continue
            if status == READ_ERROR:
                self._raise_read_error(err)
            return status == CAP_REACHED

    def _raise_read_error(self, n_runs):
        """Read again, through the page file's checked path, what the compiled round failed to
        read (``n_runs`` runs of the plan, or the directory page in the plan's first row), so
        that the error is raised and the pages before it are counted."""
        f = self.trees.file
        if n_runs:
            f.read_runs_into(self._runs[:n_runs, 0], self._runs[:n_runs, 1], self._run_buf)
        else:
            f.read_runs_into(self._runs[:1, 0], (1,), self._node_buf)
        raise OSError(f"{f.path}: a page read failed, then succeeded when read again")

    def _scan_round_here(self):
        """:meth:`scan_round` through the page file's read methods (with a buffer pool, or
        where the compiled reader cannot be used)."""
        self._next_head = None  # next_round takes the median head itself
        p = self.params
        l, m = p.l, self.m
        qproj, tinfo, runs = self.trees.qproj, self.trees.tinfo, self._runs
        rec = self.counting
        nums, reached = rec.nums, rec.reached
        run_buf, id_bits = self._run_buf, self.trees.id_bits
        floor = int(nums[FLOOR])
        read_runs = self.trees.file.read_runs_into
        half_width = p.w * self.radius / 2.0
        t = 0
        while t < m:
            g = safe_tables(nums, l, m - t, reached, floor)
            t_stop, budget = (t + g, self._run_pages) if g else (t + 1, 1)
            status, t_dir, s_dir, node, n_runs = plan_runs(
                t, t_stop, budget, self._cursors, tinfo, qproj, half_width, runs)
            if status == NEED_DIR:
                self._load_dir(s_dir, t_dir, node)
                continue
            if n_runs:
                read_runs(runs[:n_runs, 0], runs[:n_runs, 1], run_buf)
            while True:
                status, t_at, extra = scan_sides(t, t_stop, self._cursors, run_buf, tinfo, id_bits,
                                                 qproj, half_width, rec, l)
                if status != NEED_DIR:
                    break
                self._load_dir(1, t_at, extra)
            if status == CAP_REACHED:
                return True
            t = t_stop if status == DONE else t_at
        return False

    def next_round(self):
        """Widen to the next radius: c R, or further, where the median cursor head falls in
        the bucket (the authors' radius update). False if every entry has been counted."""
        head = self._head() if self._next_head is None else self._next_head
        if head < 0:
            return False
        self._set_radius(max(self.params.c * self.radius, self._radius_for(head)))
        return True

    def end(self):
        """Zero the query's collision counts and planned slots."""
        rec = self.counting
        reset_query(rec.counts, rec.touched, rec.nums[N_TOUCHED], self._slots)
