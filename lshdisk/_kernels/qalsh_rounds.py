"""QALSH round kernels: plan the leaf runs a round of virtual rehashing needs, then scan them.

A round widens every table's bucket to ``|key - qproj[t]| <= half_width`` and moves two
cursors per table away from ``qproj[t]``, counting collisions. Which leaves a cursor enters is
known before reading them: a leftward cursor leaves leaf j for leaf j - 1 once every key of
leaf j lies in the bucket (the first key of leaf j decides), a rightward one enters leaf
j + 1 when that leaf's first key lies in the bucket. First keys of leaves are the keys of
the inner node above them (the "directory node" a cursor holds, read and counted by the
caller). :func:`plan_runs` turns this into runs of consecutive leaf pages, which the caller
reads with one ``preadv`` each; :func:`scan_sides` then takes the entries from the pages in
place. Page I/O is exactly the leaves the cursors enter, and is read in ascending page order.

Per-query state, one entry per side s (0 = left, 1 = right) and table t:

- ``pages[s, t]``: uint8, the leaf page under the cursor;
- ``state[s, t]``: int64 ``[pos, count, leaf, dir_node]``: the next entry to take (leftwards
  for s = 0, rightwards for s = 1; -1 or ``count`` once the leaf is used up), the leaf's entry
  count, the leaf's index in its tree (0 = leftmost) and the index of the directory node held
  in ``dkeys[s, t]`` (-1: none);
- ``keyfmt[s, t]``: float64 ``[key_min, key_step, key_max]`` of the leaf;
- ``dkeys[s, t, :]``: float64, the first key of each leaf under the directory node;
- ``slots[s, t]``: int64 ``[row, n]``: the side's planned pages not yet scanned, rows
  ``row .. row + n - 1`` of the run buffer (ascending leaves; a left side takes from the end).

Per table: ``tinfo[t]`` int64 ``[first_leaf_page, n_leaves, first_dir_page, fanout]``.

:func:`scan_round` runs a whole round (plan, read, count, for every table) in one call, reading
the pages itself through a :class:`storage.RawReader`; the caller counts the runs it logs.
The arrays it works on are grouped in three records: :data:`Cursors` (the state above),
:data:`ReadAhead` (the run plan, the run buffer and a node buffer) and :data:`storage.RunLog` (the
runs read, in order, for counting), beside the shared counting record
(:data:`lshdisk._kernels.counting.Counting`).
"""

from collections import namedtuple

import numba
import numpy as np

from storage import log_runs, read_raw_runs
from storage.leaf_codec import (inner_child, inner_count, inner_key, leaf_header, leaf_id_at,
                                leaf_id_bits, leaf_key, leaf_search_ge)

from .projection import project_one
from .counting import CAP, FLOOR, MAX_COUNT, N_CANDS, N_ENTRIES, N_TOUCHED, reset_counts, safe_tables
from .rows import copy_row

POS, COUNT, LEAF, DIR_NODE = 0, 1, 2, 3
FIRST_LEAF, N_LEAVES, FIRST_DIR, FANOUT = 0, 1, 2, 3

#: Status codes of plan_runs, scan_sides and scan_round.
DONE = 0
NEED_DIR = 1
NEED_PAGES = 2
CAP_REACHED = 3
LOG_FULL = 4
READ_ERROR = 5

#: A QALSH search's per-query cursor state (see the module docstring): ``pages`` (2, m,
#: page_size) uint8, ``state`` (2, m, 4) int64, ``keyfmt`` (2, m, 3) float64, ``dkeys``
#: (2, m, fanout) float64, ``slots`` (2, m, 2) int64.
Cursors = namedtuple("Cursors", ["pages", "state", "keyfmt", "dkeys", "slots"])
#: Read-ahead buffers: ``runs`` (2 m, 4) int64 (the plan: first page, pages, side, table),
#: ``run_buf`` (pages, page_size) uint8, ``node_buf`` (1, page_size) uint8.
ReadAhead = namedtuple("ReadAhead", ["runs", "run_buf", "node_buf"])


@numba.njit(cache=True, nogil=True, inline="always")
def _dir_key(dkeys, state, tinfo, s, t, i):
    """(held, first key of leaf i) from side s's directory node of table t."""
    node = state[s, t, DIR_NODE]
    fan = tinfo[t, FANOUT]
    if node < 0 or i // fan != node:
        return False, 0.0
    return True, dkeys[s, t, i - node * fan]


@numba.njit(cache=True, nogil=True, inline="always")
def _side_run(s, t, state, keyfmt, dkeys, tinfo, q, half_width, budget):
    """Leaves side s of table t enters next in this round, at most ``budget`` (>= 1).

    Returns (status, first, n, complete): leaves ``first .. first + n - 1`` (indices in the
    tree, ascending); ``complete`` is False if the side will need more after them. Status
    NEED_DIR (with ``first`` = the directory node to load) when nothing can be planned without
    another directory node.
    """
    pos = state[s, t, POS]
    j = state[s, t, LEAF]
    if s == 0:
        if j == 0 or (pos >= 0 and q - keyfmt[0, t, 0] > half_width):
            return DONE, 0, 0, True  # the cursor stops in this leaf
        n = 1  # leaf j - 1: entered once leaf j is used up, whatever its own keys
        while j - n - 1 >= 0:
            held, key = _dir_key(dkeys, state, tinfo, 0, t, j - n)
            if not held:
                # Leftwards no leaf needs a directory node to be entered, so none is read for
                # planning: the leaves of the previous node are planned one at a time.
                return DONE, j - n, n, False
            if q - key > half_width:
                return DONE, j - n, n, True
            if n == budget:
                return DONE, j - n, n, False
            n += 1
        return DONE, j - n, n, True
    count = state[s, t, COUNT]
    nl = tinfo[t, N_LEAVES]
    if j == nl - 1 or (pos < count and keyfmt[1, t, 2] - q > half_width):
        return DONE, 0, 0, True
    n = 0
    while j + n + 1 < nl:
        held, key = _dir_key(dkeys, state, tinfo, 1, t, j + n + 1)
        if not held:
            if n == 0:
                return NEED_DIR, (j + 1) // tinfo[t, FANOUT], 0, False
            return DONE, j + 1, n, False
        if key - q > half_width:
            return DONE, j + 1, n, True
        if n == budget:
            return DONE, j + 1, n, False
        n += 1
    return DONE, j + 1, n, True


@numba.njit(cache=True, nogil=True)
def plan_runs(t_start, t_stop, budget, cursors, tinfo, qproj, half_width, runs):
    """Plan the leaf runs of tables t_start .. t_stop - 1 in scan order, at most ``budget`` pages.

    Fills ``runs`` (int64 (>= 2m, 4): first page, pages, side, table) and the cursors'
    ``slots`` (a :data:`Cursors` record); stops after the first side whose run is cut short
    (budget or directory node), so that every planned page is scanned before anything is
    planned again.

    Returns
    -------
    status, t, s, node, n_runs : int
        DONE: ``n_runs`` runs planned. NEED_DIR: side s of table t needs directory node
        ``node`` loaded first (``n_runs`` is 0; call again after loading it).
    """
    state, keyfmt, dkeys, slots = cursors.state, cursors.keyfmt, cursors.dkeys, cursors.slots
    n_runs = 0
    rows = 0
    for t in range(t_start, t_stop):
        q = qproj[t]
        for s in range(2):
            assert slots[s, t, 1] == 0, "planned pages of this side are not scanned yet"
            status, first, n, complete = _side_run(s, t, state, keyfmt, dkeys, tinfo, q,
                                                   half_width, budget - rows)
            if status == NEED_DIR:
                for r in range(n_runs):  # forget this plan: nothing of it was read
                    slots[np.int64(runs[r, 2]), np.int64(runs[r, 3]), 1] = 0
                return NEED_DIR, t, s, first, 0
            if n > 0:
                runs[n_runs, 0] = tinfo[t, FIRST_LEAF] + first
                runs[n_runs, 1] = n
                runs[n_runs, 2] = s
                runs[n_runs, 3] = t
                slots[s, t, 0] = rows
                slots[s, t, 1] = n
                rows += n
                n_runs += 1
            if not complete or rows == budget:
                return DONE, t, s, -1, n_runs
    return DONE, t_stop, 0, -1, n_runs


@numba.njit(cache=True, nogil=True, inline="always")
def _enter(page, state, keyfmt, s, t, leaf):
    count, _, _, kmin, step, kmax, _ = leaf_header(page)
    state[s, t, COUNT] = count
    state[s, t, POS] = count - 1 if s == 0 else 0
    state[s, t, LEAF] = leaf
    keyfmt[s, t, 0] = kmin
    keyfmt[s, t, 1] = step
    keyfmt[s, t, 2] = kmax


@numba.njit(cache=True, nogil=True)
def _take(words, count, id_bits, p, stop, step_dir, counts, touched, n_touched, cands, n_cands,
          cap, reached, max_count, watch, floor_c, l_c):
    """Take the entries p, p + step_dir, ... up to ``stop`` (excluded) of a leaf page: the
    collision counting loop of :func:`scan_sides` (a function of its own, so that the hot
    loop is compiled apart from the cursor logic around it).

    Returns (p, n_touched, n_cands, max_count, watch, cap_reached).
    """
    one = counts.dtype.type(1)
    track_limit = touched.shape[0]
    bit_base, mask = leaf_id_bits(count, id_bits)
    while p != stop:
        i = leaf_id_at(words, bit_base, id_bits, mask, p)
        c = counts[i] + one
        counts[i] = c
        p += step_dir
        if n_touched < track_limit:  # until the list is full (then reset zeroes all)
            if c == one:
                touched[n_touched] = i
                n_touched += 1
        if c > watch:  # rare: a new largest count, or a count from floor on
            if c > max_count:
                max_count = c
            if floor_c <= c <= l_c:  # each id reaches each count once
                reached[c] += 1
                if c == l_c:
                    cands[n_cands] = i
                    n_cands += 1
                    if n_cands >= cap:
                        return p, n_touched, n_cands, max_count, watch, True
            watch = min(max_count, floor_c - one)
    return p, n_touched, n_cands, max_count, watch, False


@numba.njit(cache=True, nogil=True)
def scan_sides(t_start, t_stop, cursors, run_buf, tinfo, id_bits, qproj, half_width, counting, l):
    """Collision counting over tables t_start .. t_stop - 1 (left side, then right) for
    ``|key - qproj[t]| <= half_width``, entering planned leaves from ``run_buf``.

    ``cursors`` is the :data:`Cursors` record, ``counting`` the
    :data:`lshdisk._kernels.counting.Counting` record: ``counts`` (uint8 or uint16, one per
    point; the type must hold m) gives each point's collision count. Each entry taken gives its id one more collision; at exactly ``l``
    collisions the id is appended to ``cands``. An id's first collision appends it to ``touched`` while that list
    has room; once it is full the ids are no longer listed (zeroing every count then costs
    less than zeroing them one by one: see :func:`reset_query`). ``nums`` and ``reached``
    are the :mod:`lshdisk._kernels.counting` record's, updated in place (``reached[c]``
    counts the ids that have reached c collisions, for c from ``floor`` to l).

    Returns
    -------
    status, t : int
        DONE: every side is scanned. NEED_PAGES: side s of table t needs leaves that were not
        planned (plan again from t). NEED_DIR: a right side of table t needs the next
        directory node (load it, call again from t). CAP_REACHED: nums[1] reached nums[2].
        A third value is the side (NEED_PAGES) or the directory node to load (NEED_DIR).
    """
    pages, state, keyfmt, dkeys, slots = cursors
    counts, touched, cands, nums, reached = counting
    floor = nums[FLOOR]
    n_touched = nums[N_TOUCHED]
    n_cands = nums[N_CANDS]
    cap = nums[CAP]
    n_entries = nums[N_ENTRIES]
    one = counts.dtype.type(1)  # count arithmetic in the counts' own unsigned type
    l_c = counts.dtype.type(l)
    max_count = counts.dtype.type(nums[MAX_COUNT])
    floor_c = counts.dtype.type(floor)
    # Every count above ``watch`` takes the branch that keeps max_count and reached exact;
    # below it (nearly every entry) the loop only counts.
    watch = min(max_count, floor_c - one)
    # uint32 views of the page buffers, taken once per call: ids are read as words.
    pages32 = pages.view(np.uint32)
    run32 = run_buf.view(np.uint32)
    for t in range(t_start, t_stop):
        q = qproj[t]
        nl = tinfo[t, N_LEAVES]
        for s in range(2):
            page = pages[s, t]
            words = pages32[s, t]
            run_row = -1
            status = DONE
            extra = 0
            p = state[s, t, POS]
            while True:
                count = state[s, t, COUNT]
                kmin = keyfmt[s, t, 0]
                step = keyfmt[s, t, 1]
                kmax = keyfmt[s, t, 2]
                # The entries to take are a contiguous run from p: find its end by binary search
                # on the sorted leaf keys, then count collisions without decoding keys.
                if s == 0:
                    lo, hi = 0, p + 1  # first j in [0, p] with q - key_j <= half_width
                    while lo < hi:
                        mid = (lo + hi) >> 1
                        if q - leaf_key(page, kmin, step, kmax, mid) <= half_width:
                            hi = mid
                        else:
                            lo = mid + 1
                    stop = lo - 1
                    step_dir = -1
                else:
                    lo, hi = p, count  # first j in [p, count) with key_j - q > half_width
                    while lo < hi:
                        mid = (lo + hi) >> 1
                        if leaf_key(page, kmin, step, kmax, mid) - q <= half_width:
                            lo = mid + 1
                        else:
                            hi = mid
                    stop = lo
                    step_dir = 1
                p0 = p
                p, n_touched, n_cands, max_count, watch, full = _take(
                    words, count, id_bits, p, stop, step_dir, counts, touched, n_touched, cands,
                    n_cands, cap, reached, max_count, watch, floor_c, l_c)
                n_entries += abs(p - p0)
                if full:
                    status = CAP_REACHED
                if status != DONE or 0 <= p < count:
                    break  # the cap, or the bucket's edge inside this leaf
                # The leaf is used up: enter the neighbour if the bucket reaches it.
                j = state[s, t, LEAF]
                if s == 0:
                    if j == 0:
                        break
                    nxt = j - 1
                else:
                    if j == nl - 1:
                        break
                    held, key = _dir_key(dkeys, state, tinfo, 1, t, j + 1)
                    if not held:
                        status = NEED_DIR
                        extra = (j + 1) // tinfo[t, FANOUT]
                        break
                    if key - q > half_width:
                        break
                    nxt = j + 1
                if slots[s, t, 1] == 0:
                    status = NEED_PAGES
                    extra = s
                    break
                if s == 0:
                    run_row = slots[s, t, 0] + slots[s, t, 1] - 1
                else:
                    run_row = slots[s, t, 0]
                    slots[s, t, 0] += 1
                slots[s, t, 1] -= 1
                page = run_buf[run_row]
                words = run32[run_row]
                _enter(page, state, keyfmt, s, t, nxt)
                p = state[s, t, POS]
            state[s, t, POS] = p
            if run_row >= 0:
                copy_row(run_buf[run_row], pages[s, t])
            if status != DONE:
                break
        if status != DONE:
            break
    nums[N_TOUCHED] = n_touched
    nums[N_CANDS] = n_cands
    nums[MAX_COUNT] = max_count
    nums[N_ENTRIES] = n_entries
    if status != DONE:
        return status, t, extra
    return DONE, t_stop, 0


@numba.njit(cache=True, nogil=True)
def place_cursors(pages, state, keyfmt, qproj, leaves):
    """Position both cursors of every table around qproj[t], in the leaf loaded as pages[0, t]
    (index ``leaves[t]`` in its tree; copied to pages[1, t]): left at the last key < qproj[t],
    right at the first key >= it."""
    m = qproj.shape[0]
    for t in range(m):
        copy_row(pages[0, t], pages[1, t])
        count, _, _, kmin, step, kmax, _ = leaf_header(pages[0, t])
        p = leaf_search_ge(pages[0, t], qproj[t])
        for s in range(2):
            state[s, t, POS] = p - 1 if s == 0 else p
            state[s, t, COUNT] = count
            state[s, t, LEAF] = leaves[t]
            keyfmt[s, t, 0] = kmin
            keyfmt[s, t, 1] = step
            keyfmt[s, t, 2] = kmax


@numba.njit(cache=True, nogil=True)
def load_dir(node_page, dkeys, state, s, t, node):
    """Hold directory node ``node`` (an inner node page) for side s of table t (both sides if
    s < 0)."""
    c = inner_count(node_page)
    for side in range(2):
        if s < 0 or side == s:
            for i in range(c):
                dkeys[side, t, i] = inner_key(node_page, i)
            state[side, t, DIR_NODE] = node


@numba.njit(cache=True, nogil=True)
def hold_dirs(node_buf, node_pages, dkeys, state, tinfo):
    """Hold the inner node ``node_buf[t]`` (page ``node_pages[t]``, just above the leaves) as both
    sides' directory node of every table t."""
    for t in range(node_pages.shape[0]):
        load_dir(node_buf[t], dkeys, state, -1, t, node_pages[t] - tinfo[t, FIRST_DIR])


@numba.njit(cache=True, nogil=True)
def head_distances(pages, state, keyfmt, dkeys, tinfo, qproj, out):
    """|key - qproj[t]| of every cursor head that exists, into ``out`` (float64, >= 2m);
    returns how many (at most 2m).

    A cursor's head is the next entry it would take: in its leaf, or for a right cursor at
    the end of its leaf the first key of the next leaf (from the directory node).
    """
    m = qproj.shape[0]
    k = 0
    for t in range(m):
        for s in range(2):
            p = state[s, t, POS]
            if 0 <= p < state[s, t, COUNT]:
                key = leaf_key(pages[s, t], keyfmt[s, t, 0], keyfmt[s, t, 1], keyfmt[s, t, 2], p)
                out[k] = abs(key - qproj[t])
                k += 1
            elif s == 1 and p >= 0 and state[s, t, LEAF] + 1 < tinfo[t, N_LEAVES]:
                held, key = _dir_key(dkeys, state, tinfo, 1, t, state[s, t, LEAF] + 1)
                if held:
                    out[k] = abs(key - qproj[t])
                    k += 1
    return k


@numba.njit(cache=True, nogil=True)
def median_head_distance(pages, state, keyfmt, dkeys, tinfo, qproj):
    """Median of :func:`head_distances` (at most 2m values); -1 if no head exists.

    QALSH's radius update (authors' code) jumps to the radius whose bucket reaches this
    median, skipping rounds that would find nothing new.
    """
    buf = np.empty(2 * qproj.shape[0], dtype=np.float64)
    k = head_distances(pages, state, keyfmt, dkeys, tinfo, qproj, buf)
    if k == 0:
        return -1.0
    srt = np.sort(buf[:k])
    if k % 2 == 0:
        return 0.5 * (srt[k // 2 - 1] + srt[k // 2])
    return srt[k // 2]


@numba.njit(cache=True, nogil=True)
def descend(node_pages, qproj, next_pages):
    """One level of the root-to-leaf descent of every table: next_pages[t] is the child of inner
    node page ``node_pages[t]`` where a search for qproj[t] goes; returns nothing."""
    m = qproj.shape[0]
    for t in range(m):
        _, child = inner_child(node_pages[t], qproj[t])
        next_pages[t] = child


@numba.njit(cache=True, nogil=True)
def reset_query(counts, touched, n_touched, slots):
    """Zero the collision counts of one query's ids and the planned slots.

    The ids are ``touched[:n_touched]`` (see :func:`lshdisk._kernels.counting.reset_counts`).
    """
    reset_counts(counts, touched, n_touched)
    slots[:] = 0


@numba.njit(cache=True, nogil=True)
def _read_dir(raw, cursors, tinfo, buffers, log, s, t, node):
    """Read directory node ``node`` of table t for side s (s < 0: both) into the node
    buffer and hold it; False if the read or its checks failed (nothing logged)."""
    page = np.empty(1, dtype=np.int64)
    one = np.ones(1, dtype=np.int64)
    page[0] = tinfo[t, FIRST_DIR] + node
    if not read_raw_runs(raw, page, one, buffers.node_buf):
        buffers.runs[0, 0] = page[0]  # where the error is, for the caller
        return False
    log_runs(log, page, one)
    load_dir(buffers.node_buf[0], cursors.dkeys, cursors.state, s, t, node)
    return True


@numba.njit(cache=True, nogil=True)
def scan_round(t_start, raw, cursors, tinfo, id_bits, qproj, half_width, buffers, counting, l,
               log):
    """One round of virtual rehashing over tables t_start .. m - 1, pages read in place: the
    loop of :meth:`lshdisk.qalsh.QALSHSearcher.scan_round` (plan the leaves a batch of
    T2-safe tables needs, read them as runs, count; one leaf at a time near the cap), with
    every page read through ``raw`` and logged in ``log`` for the caller to count.

    Returns
    -------
    status, t, err : int
        DONE (t = m) or CAP_REACHED; LOG_FULL: the log has no room for another batch (count
        it, empty it, call again from t); READ_ERROR: a read or its checks failed, nothing
        of it logged: ``err`` runs of the plan (``buffers.runs[:err]``), or, with err = 0,
        the directory page ``buffers.runs[0, 0]``, should be read again by the caller to
        raise the error.
    head : float
        With DONE, :func:`median_head_distance` after the round (for the radius update);
        else -1.
    """
    nums, reached = counting.nums, counting.reached
    slots = cursors.slots
    runs, run_buf = buffers.runs, buffers.run_buf
    m = qproj.shape[0]
    floor = nums[FLOOR]
    run_pages = run_buf.shape[0]
    room = 3 * m + 2
    t = t_start
    while t < m:
        if log.firsts.shape[0] - log.n[0] < room:
            return LOG_FULL, t, 0, -1.0
        g = safe_tables(nums, l, m - t, reached, floor)
        if g:
            t_stop, budget = t + g, run_pages
        else:
            t_stop, budget = t + 1, 1
        status, t_dir, s_dir, node, n_runs = plan_runs(t, t_stop, budget, cursors, tinfo, qproj,
                                                       half_width, runs)
        if status == NEED_DIR:
            if not _read_dir(raw, cursors, tinfo, buffers, log, s_dir, t_dir, node):
                return READ_ERROR, t, 0, -1.0
            continue
        if n_runs:
            if not read_raw_runs(raw, runs[:n_runs, 0], runs[:n_runs, 1], run_buf):
                slots[:] = 0
                return READ_ERROR, t, n_runs, -1.0
            log_runs(log, runs[:n_runs, 0], runs[:n_runs, 1])
        while True:
            status, t_at, extra = scan_sides(t, t_stop, cursors, run_buf, tinfo, id_bits, qproj,
                                             half_width, counting, l)
            if status != NEED_DIR:
                break
            if not _read_dir(raw, cursors, tinfo, buffers, log, 1, t_at, extra):
                return READ_ERROR, t, 0, -1.0
        if status == CAP_REACHED:
            return CAP_REACHED, t_at, 0, -1.0
        t = t_stop if status == DONE else t_at
    return DONE, m, 0, median_head_distance(cursors.pages, cursors.state, cursors.keyfmt,
                                            cursors.dkeys, tinfo, qproj)


@numba.njit(cache=True, nogil=True)
def descend_raw(raw, a, q, qproj, roots, height, tinfo, node_buf, leaf_pages, dirs, hold, log,
                nodes):
    """The root-to-leaf descent of every tree towards a_t . q, pages read in place through
    ``raw`` (one run of m single pages per level, logged for the caller to count), as
    :meth:`lshdisk.trees.ProjectionTrees.descend` does it: project q into ``qproj``, leave
    tree t's leaf in ``leaf_pages[t]`` and its page number in ``nodes[t]``; with ``hold``, the
    inner node above each leaf becomes both cursors' directory node (``dirs``: a
    :data:`Cursors` record).

    Returns True; False if a level's read failed or its checks (``nodes`` then holds the
    pages of that level, nothing of it logged: the caller reads them again to raise).
    """
    project_one(q, a, qproj)
    return descend_raw_projected(raw, qproj, roots, height, tinfo, node_buf, leaf_pages, dirs,
                                 hold, log, nodes)


@numba.njit(cache=True, nogil=True)
def descend_raw_projected(raw, qproj, roots, height, tinfo, node_buf, leaf_pages, dirs, hold,
                          log, nodes):
    """:func:`descend_raw` for a query already projected into ``qproj`` (float64 (m,)): the
    descent of a learned map's trees, whose codes are computed by the map's own kernel."""
    m = qproj.shape[0]
    ones = np.ones(m, dtype=np.int64)
    nodes[:] = roots
    for level in range(height - 1, 0, -1):
        if not read_raw_runs(raw, nodes, ones, node_buf):
            return False
        log_runs(log, nodes, ones)
        if level == 1 and hold:
            hold_dirs(node_buf, nodes, dirs.dkeys, dirs.state, tinfo)
        descend(node_buf, qproj, nodes)
    if not read_raw_runs(raw, nodes, ones, leaf_pages):
        return False
    log_runs(log, nodes, ones)
    return True
