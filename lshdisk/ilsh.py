"""I-LSH: incremental search over QALSH's query-aware projections and B+-trees.

Liu, Wei, Zhang, Yang, Shen, "I-LSH: I/O efficient c-approximate nearest neighbor search in
high-dimensional space", ICDE 2019. Followed: the index is QALSH's (one B+-tree per Gaussian
projection a_i, same parameters m, l, w, built by :class:`lshdisk.qalsh.QALSHBuilder`); the
search replaces QALSH's exponentially growing rounds by incremental expansion (Section IV):
across the 2m leaf cursors (left and right of a_i . q in every tree) the entry with the
smallest projected distance |a_i . o - a_i . q| is always taken next (a binary heap over
the cursor heads), its id gets one more collision, and an id with l collisions becomes a
candidate whose exact distance is computed. The search radius grows with the projected
distance x just taken, R = 2x / w (the bucket [a.q - wR/2, a.q + wR/2] reaches x).
Termination: T1, k candidates within distance R (see Deviations); T2, k + beta*n
candidates.

Because each step reads the leaf of whichever tree holds the next-closest entry, I-LSH reads
fewer pages than QALSH (no round overshoots the radius it needs) but interleaves the trees,
so more of its reads are seeks; its heap also costs more algorithm time. The cost reports
show both sides.

Deviations
----------
- T1 tests the k-th candidate distance against R, not cR. R = 2x / w is the radius whose
  every point has, in each tree, collided with probability >= p1 once the walk reaches x.
  A point only gets l collisions once x is about 1.1 times its distance, so when the k-th
  candidate appears the test "within cR" (c = 2) already holds: the walk would stop with
  exactly k candidates, and on Mnist (c = 2, k = 10) that gives an overall ratio of 1.077
  and recall 0.56. Testing against R keeps the c-approximation (R <= cR) and gives 1.0017
  and 0.96 with 4 % fewer page reads than QALSH (measured with ``lshdisk evaluate``).
- The radius is continuous from the first entry taken: no assumption that the nearest
  neighbour lies at distance >= 1, so data at any scale are searched the same way.
- As in lshdisk's QALSH, leaf keys are 16-bit codes within each leaf's key range
  (:mod:`storage.btree`), so "smallest projected distance" is judged on decoded keys.
"""

import math

import numpy as np

from storage import new_run_log

from ._kernels.counting import N_CANDS, N_TOUCHED, new_counting, reset_counts
from ._kernels.ilsh import (CAP_REACHED, EXHAUSTED, FRESH, LOG_FULL, NEED_PAGE, NEIGHBOUR,
                            PENDING, RADIUS_REACHED, READ_ERROR, WALK_FIELDS, Heap, WalkCursors,
                            init_cursors, incremental_walk, walk_segment)
from .qalsh import QALSHBuilder
from .trees import ProjectionTrees

__all__ = ["ILSHBuilder", "ILSHSearcher"]

#: I-LSH indexes share QALSH's layout and builder.
ILSHBuilder = QALSHBuilder


class ILSHSearcher:
    """Incremental expansion over a QALSH-layout index (ICDE 2019), one walk segment at a
    time; the loop around it (candidates, verification, termination) is
    :class:`lshdisk.search.RoundSearch`'s.

    A "round" of I-LSH is one segment of the walk: it ends when the walk finds new
    candidates, when it reaches the radius limit the termination policy gives (T1: the k-th
    candidate distance, see Deviations), at the candidate cap (T2), or when every entry has
    been taken. Its radius is R = 2x / w for the projected distance x of the next entry (the
    limit itself when the walk stopped there). Per-round traces therefore have one record per
    segment.

    Parameters are those of :class:`lshdisk.qalsh.QALSHSearcher`.

    Notes
    -----
    Memory per searcher: 2 m pages for the cursors, the heap (16 bytes per cursor) and 9 to
    10 bytes per data point: the collision counts and the list of every point touched
    (int64; the walk lists them all).
    """

    #: None: the walk takes entries in order of projected distance, whatever its start, so
    #: a start radius has no rounds to skip (:meth:`skip_to` does nothing).
    START_FEATURES = ()

    def __init__(self, open_file, meta, arrays, params, n):
        self.trees = ProjectionTrees.open(open_file, meta, arrays)
        trees_file = self.trees.file
        self.params = params
        self.n = n
        self.m = m = self.trees.m
        self.l = params.l
        #: T1 tests the k-th candidate distance against R itself (see Deviations).
        self.c = 1.0
        ps = trees_file.page_size
        self._pages = np.zeros((2, m, ps), dtype=np.uint8)
        self._rows = [[self._pages[s, t] for t in range(m)] for s in range(2)]  # page views
        self._state = np.zeros((2, m, 4), dtype=np.int64)
        self._keyfmt = np.zeros((2, m, 3), dtype=np.float64)
        self._heap_d = np.full(2 * m + 1, np.inf, dtype=np.float64)
        self._heap_c = np.zeros(2 * m + 1, dtype=np.int64)
        self._walk = np.zeros(WALK_FIELDS, dtype=np.int64)
        self._cursors = WalkCursors(self._pages, self._state, self._keyfmt)
        self._heap = Heap(self._heap_d, self._heap_c, self._walk)
        self.counting = new_counting(n, m, params.l, n)
        self._log = new_run_log(1024)
        self._raw = None
        self._status = 0
        self.radius = 0.0
        self.c_radius = 0.0

    def describe(self):
        """The index structure, for ``lshdisk info``."""
        return self.trees.describe(self.n)

    def begin(self, q):
        """Start a query: descend every tree and place both cursors of each in its leaf."""
        self._raw = self.trees.file.raw_reader()
        self.trees.descend(q, self._pages[0], raw=self._raw)
        init_cursors(self._pages, self._state, self._keyfmt, self.trees.qproj)
        self._walk[:] = 0
        self._walk[PENDING] = -1
        self._status = 0
        self.radius = self.c_radius = 0.0

    def start_features(self, q):
        """No start features (see :attr:`START_FEATURES`): an empty float64 array."""
        return np.empty(0, dtype=np.float64)

    def skip_to(self, radius):
        """Nothing: the walk has no rounds of fixed radius to skip."""

    def scan_round(self, radius_limit=math.inf):
        """Walk until new candidates, the radius ``radius_limit``, the cap or the end.

        A leaf the walk needs when it stops for new candidates is read at the start of the
        next segment, after those candidates are verified (the order of the authors' walk).
        :attr:`radius` becomes 2 x / w for the next entry's projected distance x;
        :attr:`c_radius`, what T1 compares the k-th distance with, is ``radius_limit`` when the
        walk stopped there and NaN otherwise (T1 holds exactly where the walk reaches it).

        Returns
        -------
        bool
            True if the candidate cap was reached.
        """
        p = self.params
        x_stop = radius_limit * p.w / 2.0  # the walk stops where R = 2x / w reaches the limit
        status = self._walk_here(x_stop) if self._raw is None else self._walk_compiled(x_stop)
        self._status = status
        top = float(self._heap_d[0])
        if top < math.inf:
            self.radius = 2.0 * top / p.w
        self.c_radius = radius_limit if status == RADIUS_REACHED else math.nan
        return status == CAP_REACHED

    def _walk_compiled(self, x_stop):
        """One segment in one compiled call that reads the leaves itself
        (:func:`lshdisk._kernels.ilsh.walk_segment`); the leaves it read are counted after."""
        trees, log = self.trees, self._log
        pending = self._status == NEED_PAGE
        while True:
            status = walk_segment(self._raw, pending, self._cursors, self._heap, trees.id_bits,
                                  trees.qproj, self.counting, self.params.l, x_stop, log)
            trees.file.count_log(log)
            if status == READ_ERROR:  # read it again through the page file, to raise the error
                s, t = divmod(int(self._walk[PENDING]), self.m)
                trees.file.read_page_into(int(self._state[s, t, NEIGHBOUR]), self._rows[s][t])
                raise OSError(f"{trees.file.path}: a leaf failed to read, then read correctly")
            if status != LOG_FULL:
                return status
            pending = True

    def _walk_here(self, x_stop):
        """One segment, the leaves read through the page file's methods (with a buffer pool,
        or where the compiled reader cannot be used)."""
        state, rows = self._state, self._rows
        read_into = self.trees.file.read_page_into
        nums = self.counting.nums
        m = self.m
        n_before = int(nums[N_CANDS])
        status = self._status
        while True:
            if status == NEED_PAGE:
                s, t = divmod(int(self._walk[PENDING]), m)
                read_into(int(state[s, t, NEIGHBOUR]), rows[s][t])
                state[s, t, FRESH] = 1
            status, _ = incremental_walk(self._cursors, self._heap, self.trees.id_bits,
                                         self.trees.qproj, self.counting, self.params.l, x_stop)
            if status != NEED_PAGE or nums[N_CANDS] > n_before:
                return status

    def next_round(self):
        """False once every entry has been taken, or the walk stopped at its radius limit
        (a policy that stops there is the only kind the walk serves: see the policy
        contract in :mod:`lshdisk.termination`)."""
        return self._status not in (EXHAUSTED, RADIUS_REACHED, CAP_REACHED)

    def end(self):
        """Zero the query's collision counts."""
        rec = self.counting
        reset_counts(rec.counts, rec.touched, rec.nums[N_TOUCHED])
