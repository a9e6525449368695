"""The search loop every method shares: rounds, candidates, verification, termination, traces.

C2LSH (Gan et al., SIGMOD 2012, Section 4), QALSH (Huang et al., PVLDB 2015, Algorithm 2) and
I-LSH (Liu et al., ICDE 2019, Section IV) all search the same way: collision counting over m
hash tables in rounds of growing radius (virtual rehashing; for I-LSH, segments of an
incremental walk), an id becoming a candidate at l collisions, its exact distance computed
from the vector store, and a stop after k candidates within c R (T1) or k + beta n candidates
(T2). :class:`RoundSearch` owns that loop; a method supplies only its round step, a
:class:`RoundSearcher`:

- ``begin(q)`` starts a query (projections, descent or directory, first radius);
- ``scan_round(radius_limit)`` plans, reads and counts one round into the shared counting
  record (:mod:`lshdisk._kernels.counting`), stopping at the cap; returns True at the cap;
- ``next_round()`` widens the radius, False once every index entry has been counted;
- ``end()`` zeroes the query's counts;
- ``start_features(q)``: after ``begin``, what is known of the query before its first round
  (float64 array, names in the class's ``START_FEATURES``; empty where the method has no
  rounds to skip), and ``skip_to(radius)``: start the rounds at the largest radius of the
  method's schedule at most ``radius`` (a no-op below the first radius, or for I-LSH);
- attributes ``counting`` (the record), ``l``, ``c`` (the factor of T1's test),
  ``radius`` and ``c_radius`` (the round's R and what T1 compares the k-th distance with,
  in the data's units), ``n``, ``describe()``.

When to stop is a :mod:`lshdisk.termination` policy; a policy with a ``start_radius(features)``
method (:class:`lshdisk.learned_start.LearnedStart`) is asked once, after ``begin``, where the
rounds start (a radius in data units, or None), and the searcher skips the rounds below it.
The loop asks the policy after each round, once the round's candidates are verified
(candidates of a round are verified together: the distinct vector pages they need are read
once each, in ascending page order).

Per-round traces (``SearchOptions(trace=True)``) hold one :data:`TRACE_DTYPE` record per
round, as the loop sees it after verification; with tracing off nothing is recorded.
"""

import math
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ._kernels.counting import CAP, N_CANDS, N_ENTRIES, N_TOUCHED, start_counting
from .termination import PaperTermination, termination_policy

__all__ = ["SearchOptions", "RoundView", "RoundSearch", "RoundSearcher", "TRACE_DTYPE",
           "TRACE_FIELDS"]

#: Fields of a per-round trace record, with their meaning (units: the data's own for
#: distances and radii, pages and bytes as counted by storage.IOCounter).
TRACE_FIELDS = (
    ("round", "<i4", "round index, 0 first (I-LSH: walk segment)"),
    ("radius", "<f8", "the round's search radius R (C2LSH: level times the data unit u)"),
    ("c_radius", "<f8", "what T1 compares the k-th distance with: c R (I-LSH: R where the "
                        "walk reached its limit, NaN elsewhere)"),
    ("page_reads", "<i8", "pages read by the query so far (tree or table pages and vectors)"),
    ("seeks", "<i8", "seeks so far"),
    ("bytes_read", "<i8", "bytes read so far"),
    ("entries", "<i8", "index entries taken so far (one collision each)"),
    ("touched", "<i8", "distinct ids with at least one collision"),
    ("candidates", "<i8", "ids that reached l collisions"),
    ("verified", "<i8", "candidates whose exact distance is known (all, after each round)"),
    ("d1", "<f8", "smallest verified distance (+inf: none)"),
    ("dk", "<f8", "k-th smallest verified distance (+inf: fewer than k)"),
    ("at_l1", "<i8", "ids with exactly l - 1 collisions"),
    ("at_l2", "<i8", "ids with exactly l - 2 collisions"),
)
TRACE_DTYPE = np.dtype([(name, fmt) for name, fmt, _ in TRACE_FIELDS])


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchOptions:
    """What one search asks for.

    Attributes
    ----------
    k : int
        Neighbours per query, >= 1.
    termination : TerminationPolicy or str
        When to stop (:mod:`lshdisk.termination`; ``"paper"``: T1 + T2, the default;
        ``"budget"``: T2 alone).
    max_candidates : int or None
        Overrides the policy's cap (T2's k + beta n): the one knob every method shares for
        recall-versus-cost sweeps. At least k.
    trace : bool
        Record one :data:`TRACE_DTYPE` row per round.

    Raises
    ------
    TypeError, ValueError
        On construction, for a bad field (named in the message).
    """

    k: int
    termination: object = field(default_factory=PaperTermination)
    max_candidates: int | None = None
    trace: bool = False

    def __post_init__(self):
        k = self.k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        object.__setattr__(self, "k", int(k))
        object.__setattr__(self, "termination", termination_policy(self.termination))
        mc = self.max_candidates
        if mc is not None:
            if isinstance(mc, bool) or not isinstance(mc, (int, np.integer)):
                raise TypeError(f"max_candidates must be an int or None, got {type(mc).__name__}")
            if mc < k:
                raise ValueError(f"max_candidates must be >= k = {k}, got {mc}")
            object.__setattr__(self, "max_candidates", int(mc))

    def cap(self, n, beta):
        """The candidate cap of a query over n points: ``max_candidates`` or the policy's."""
        if self.max_candidates is not None:
            return self.max_candidates
        return self.termination.candidate_cap(self.k, n, beta)


#: What a termination policy sees after a round (a read-only named tuple):
#:
#: - ``round``: the round's index, 0 first;
#: - ``k``, ``cap``: neighbours asked for, candidate cap;
#: - ``c``: the factor of T1's test (c for C2LSH and QALSH, 1 for I-LSH);
#: - ``radius``, ``c_radius``: the round's R and what T1 compares the k-th distance with
#:   (data units; see :data:`TRACE_FIELDS`);
#: - ``n_candidates``, ``n_verified``: candidates found, and verified;
#: - ``kth_distance``: the k-th smallest verified distance, +inf with fewer than k;
#: - ``entries``: index entries taken so far;
#: - ``page_reads``: pages the query has read so far;
#: - ``stale_rounds``: rounds since the top-k last changed (a candidate entered it), counted
#:   once k candidates are verified (0 before);
#: - ``k_round``: the round at whose end k candidates were first verified, -1 before (so a
#:   policy sees its warm-up round, ``view.round == view.k_round``, without keeping state).
RoundView = namedtuple("RoundView", ["round", "k", "cap", "c", "radius", "c_radius",
                                     "n_candidates", "n_verified", "kth_distance", "entries",
                                     "page_reads", "stale_rounds", "k_round"], defaults=(-1,))


class RoundSearcher(Protocol):
    """A method's round step (see the module docstring)."""

    counting: tuple
    l: int
    c: float
    radius: float
    c_radius: float
    n: int

    def begin(self, q): ...

    def scan_round(self, radius_limit): ...

    def next_round(self): ...

    def end(self): ...

    def start_features(self, q): ...

    def skip_to(self, radius): ...

    def describe(self): ...


class _Lane:
    """One searcher of a :class:`RoundSearch` (one segment of an index): its round step,
    vector store, deleted rows and verification buffer."""

    __slots__ = ("step", "vectors", "dead", "cand_sq", "n_verified", "scanned", "done")

    def __init__(self, step, vectors, dead):
        self.step, self.vectors, self.dead = step, vectors, dead
        self.cand_sq = np.empty(0, dtype=np.float64)
        self.n_verified = 0
        self.scanned = self.done = False


class RoundSearch:
    """The shared search loop over one method's round step, for one thread at a time; over
    several (the segments of an index, :mod:`lshdisk.segments`), searched as one index.

    Parameters
    ----------
    searcher : RoundSearcher
    vectors : VectorStore
        The index's vectors, read through the same counter as the searcher's files.
    counter : storage.IOCounter
        The counter of this searcher's files (one head).
    beta : float
        The index's beta (T2's k + beta n).
    dead : ndarray of bool, shape (n,), optional
        Deleted points (by row of ``vectors``): they still count as candidates (T2) but
        are not read, and their distance is +inf, so T1 and the top k never see them
        (:mod:`lshdisk.segments`).

    Notes
    -----
    Several searchers (:meth:`of_lanes`) are searched as one index of their n together:
    T2's cap, k + beta n with n over all of them, is shared out by points (searcher j may
    verify ceil(cap n_j / n) candidates, and is finished when it has); each round advances
    the unfinished searcher whose radius is smallest (each in turn for its first round); the
    termination policy is asked only after a round that leaves no unfinished searcher
    behind (at a smaller radius), which ends a round of the index (``RoundView.round``,
    ``stale_rounds`` and ``k_round`` count those), and T1 then compares the k-th smallest distance over all
    of them with the smallest c R of the unfinished ones (a finished one, capped or with
    every entry counted, sets no bound). With one searcher this is the loop of the papers,
    round for round.

    Memory: the searchers', plus 16 bytes per candidate of the largest cap used.
    """

    def __init__(self, searcher, vectors, counter, beta, dead=None):
        self._lanes = [_Lane(searcher, vectors, dead)]
        self.searcher = searcher
        self.vectors = vectors
        self.counter = counter
        self.beta = beta
        self.n = searcher.n

    @classmethod
    def of_lanes(cls, lanes, counter, beta):
        """One loop over several ``(searcher, vectors, dead)`` (see the class Notes)."""
        if not lanes:
            raise ValueError("a search needs at least one searcher")
        out = cls(*lanes[0][:2], counter, beta, lanes[0][2])
        out._lanes = [_Lane(*lane) for lane in lanes]
        out.n = sum(lane.step.n for lane in out._lanes)
        return out

    def search_one(self, q, options):
        """Search one query.

        Parameters
        ----------
        q : ndarray of float32, shape (d,)
        options : SearchOptions

        Returns
        -------
        sq_dists : ndarray of float64, shape (c,)
            Squared distances of all verified candidates (c <= the cap).
        ids : ndarray of int64, shape (c,)
        trace : ndarray of TRACE_DTYPE, shape (rounds,), or None without ``options.trace``
        rounds : int
            Rounds run.
        """
        found, trace, rounds = self.search_lanes(q, options)
        return found[0][0], found[0][1], trace, rounds

    def search_lanes(self, q, options):
        """Search one query over every searcher.

        Returns
        -------
        found : list of (sq_dists float64 (c_j,), ids int64 (c_j,))
            Per searcher, its verified candidates (ids are its rows; deleted ones have
            distance +inf).
        trace : ndarray of TRACE_DTYPE, or None
            One record per round (of whichever searcher ran it).
        rounds : int
        """
        lanes = self._lanes
        k, policy, tracing = options.k, options.termination, options.trace
        cap = options.cap(self.n, self.beta)
        for lane in lanes:
            lane.step.counting = start_counting(lane.step.counting, cap, lane.step.l)
            if lane.cand_sq.shape[0] < cap:
                lane.cand_sq = np.empty(max(cap, 2 * lane.cand_sq.shape[0]), dtype=np.float64)
            lane.n_verified = 0
            lane.scanned = lane.done = False
        q64 = q.astype(np.float64)
        counter = self.counter
        reads0 = counter.page_reads
        rows = [] if tracing else None
        io0 = counter.snapshot() if tracing else None
        n_verified = n_cands = 0
        cur_cap = cap
        kth = math.inf
        view = None
        rnd = 0  # rounds run, of whichever searcher
        lvl = 0  # rounds of the index: one ends when no searcher is behind (one searcher: rnd)
        last_change = 0  # the (index) round in which the top-k last changed
        k_round = -1  # the (index) round in which k candidates were first verified
        adjust = getattr(policy, "cap_after", None)
        start = getattr(policy, "start_radius", None)
        begun = []
        try:
            for lane in lanes:
                lane.step.begin(q)
                begun.append(lane)
                if start is not None:
                    radius = start(lane.step.start_features(q))
                    if radius is not None:
                        lane.step.skip_to(radius)
            while True:
                lane = _next_lane(lanes)
                if lane is None:
                    break
                step = lane.step
                if lane.scanned and not step.next_round():
                    lane.done = True
                    continue
                lane.scanned = True
                nums = step.counting.nums
                own = int(nums[N_CANDS])
                nums[CAP] = _share(cur_cap, step.n, self.n, len(lanes))
                limit = math.inf if view is None else policy.radius_limit(view)
                if step.scan_round(limit):  # its share of the cap: the searcher is finished
                    lane.done = True
                lane_cands = int(nums[N_CANDS])
                n_cands += lane_cands - own
                if lane_cands > lane.n_verified:
                    cands, cand_sq, dead = step.counting.cands, lane.cand_sq, lane.dead
                    new = cands[lane.n_verified:lane_cands]
                    if dead is None:
                        cand_sq[lane.n_verified:lane_cands] = lane.vectors.sq_distances(new, q64)
                    else:  # deleted points are not read: +inf, never in the top k
                        live = ~dead[new]
                        block = np.full(new.size, np.inf)
                        if live.any():
                            block[live] = lane.vectors.sq_distances(new[live], q64)
                        cand_sq[lane.n_verified:lane_cands] = block
                    before, kth_before = n_verified, kth
                    n_verified += lane_cands - lane.n_verified
                    lane.n_verified = lane_cands
                    if n_verified >= k:
                        kth = math.sqrt(_kth_smallest(lanes, k))
                    if before < k or kth < kth_before:
                        last_change = lvl
                    if before < k <= n_verified:
                        k_round = lvl
                radius, c_radius = _bounds(lanes)
                view = RoundView(lvl, k, cur_cap, step.c, radius, c_radius, n_cands,
                                 n_verified, kth, sum(int(ln.step.counting.nums[N_ENTRIES])
                                                      for ln in lanes),
                                 counter.page_reads - reads0,
                                 lvl - last_change if n_verified >= k else 0, k_round)
                if tracing:
                    rows.append(self._trace_row(view, counter.snapshot().delta(io0)))
                rnd += 1
                if all(ln.done for ln in lanes):
                    break
                if not _level(lanes, lane):  # the policy is asked once all have caught up
                    continue
                lvl += 1
                if policy.should_stop(view):
                    break
                if adjust is not None:  # a policy may lower (or raise, up to T2) the cap
                    new_cap = adjust(view)
                    if new_cap is not None:
                        cur_cap = max(1, min(int(new_cap), cap))
                        if cur_cap <= n_cands:
                            break
                        for ln in lanes:  # (a searcher past its new share is finished)
                            if int(ln.step.counting.nums[N_CANDS]) >= _share(
                                    cur_cap, ln.step.n, self.n, len(lanes)):
                                ln.done = True
        finally:
            for lane in begun:
                lane.step.end()
        trace = np.array(rows, dtype=TRACE_DTYPE) if tracing else None
        found = [(lane.cand_sq[:lane.n_verified].copy(),
                  lane.step.counting.cands[:lane.n_verified].copy()) for lane in lanes]
        return found, trace, rnd

    def _trace_row(self, view, io):
        """One TRACE_DTYPE row (only when tracing: it counts ids by scanning the counts)."""
        n_touched = at_l1 = at_l2 = 0
        verified = []
        for lane in self._lanes:
            rec, l = lane.step.counting, lane.step.l
            touched = int(rec.nums[N_TOUCHED])
            if touched >= rec.touched.shape[0]:  # the list stopped: count the ids themselves
                touched = int(np.count_nonzero(rec.counts))
            n_touched += touched
            at_l1 += int(np.count_nonzero(rec.counts == l - 1))
            at_l2 += int(np.count_nonzero(rec.counts == l - 2)) if l >= 2 else 0
            verified.append(lane.cand_sq[:lane.n_verified])
        verified_sq = np.concatenate(verified)
        d1 = math.sqrt(float(verified_sq.min())) if verified_sq.size else math.inf
        return (view.round, view.radius, view.c_radius, io.page_reads, io.seeks, io.bytes_read,
                view.entries, n_touched, view.n_candidates, view.n_verified, d1,
                view.kth_distance, at_l1, at_l2)


def _share(cap, n_lane, n, lanes):
    """A searcher's part of the candidate cap: the cap itself for one searcher, else its
    share by points, ceil(cap n_j / n)."""
    return cap if lanes == 1 else max(1, -(-cap * n_lane // n))


def _next_lane(lanes):
    """The searcher to run the next round: the first not yet scanned, else the unfinished
    one of smallest radius (the first of equals); None when all are finished."""
    best = None
    for lane in lanes:
        if lane.done:
            continue
        if not lane.scanned:
            return lane
        if best is None or lane.step.radius < best.step.radius:
            best = lane
    return best


def _level(lanes, lane):
    """True when no unfinished searcher is behind ``lane``, the one that ran the round:
    every one has had its first round and none has a smaller radius."""
    if len(lanes) == 1:
        return True
    r = lane.step.radius
    for other in lanes:
        if other is lane or other.done:
            continue
        if not other.scanned or other.step.radius < r:
            return False
    return True


def _bounds(lanes):
    """(R, c R) the searchers have all reached: the smallest over the unfinished ones (NaN
    if one has none; +inf when all are finished)."""
    if len(lanes) == 1:  # one searcher: its own, NaN included
        return lanes[0].step.radius, lanes[0].step.c_radius
    radius = c_radius = math.inf
    for lane in lanes:
        if lane.done:
            continue
        r = lane.step.radius if lane.scanned else 0.0
        cr = lane.step.c_radius if lane.scanned else 0.0
        radius = min(radius, r)
        c_radius = math.nan if (math.isnan(cr) or math.isnan(c_radius)) else min(c_radius, cr)
    return radius, c_radius


def _kth_smallest(lanes, k):
    """The k-th smallest verified squared distance over every searcher."""
    if len(lanes) == 1:
        lane = lanes[0]
        return np.partition(lane.cand_sq[:lane.n_verified], k - 1)[k - 1]
    both = np.concatenate([lane.cand_sq[:lane.n_verified] for lane in lanes])
    return np.partition(both, k - 1)[k - 1]
