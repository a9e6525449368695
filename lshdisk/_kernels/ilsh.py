"""I-LSH search kernel: incremental expansion over the 2m leaf cursors with a binary heap.

The kernels read B+-tree leaf pages in place (no decoded copy). Per-query cursor state, one
entry per side s (0 = left, 1 = right) and hash table t:

- ``pages[s, t]``: uint8, the leaf page under the cursor (filled by the Python side, which
  reads, verifies and counts every page);
- ``state[s, t]``: int64 ``[pos, count, neighbour_page, fresh]``: the next entry to take
  (leftwards for s = 0, rightwards for s = 1), the leaf's entry count, the page of the next
  leaf in the cursor's direction (-1: none) and 1 if the page was just loaded and its header
  not parsed yet;
- ``keyfmt[s, t]``: float64 ``[key_min, key_step, key_max]`` of the leaf.

The heap holds one entry per cursor that has a head: its projected distance |key - qproj[t]|
and the cursor number ``s * m + t``. The heap arrays have 2m + 1 slots: slot ``heap_size`` is
always +inf (a sentinel). ``walk`` (int64) carries the walk between calls:
``[heap_size, pending_cursor, heap_built]``; the collision counting is the shared
:mod:`lshdisk._kernels.counting` record.
"""

from collections import namedtuple

import numba
import numpy as np

from storage import log_run, read_raw_runs
from storage.leaf_codec import leaf_header, leaf_id, leaf_key, leaf_search_ge

from .counting import CAP, N_CANDS, N_ENTRIES, N_TOUCHED
from .rows import copy_row

POS, COUNT, NEIGHBOUR, FRESH = 0, 1, 2, 3

#: The walk's cursors (see the module docstring): ``pages`` (2, m, page_size) uint8,
#: ``state`` (2, m, 4) int64, ``keyfmt`` (2, m, 3) float64.
WalkCursors = namedtuple("WalkCursors", ["pages", "state", "keyfmt"])
#: The heap over the cursor heads: distances ``d`` (2 m + 1,) float64, cursor numbers ``c``
#: (2 m + 1,) int64, and ``walk`` (WALK_FIELDS,) int64.
Heap = namedtuple("Heap", ["d", "c", "walk"])

NEED_PAGE = 1
NEW_CANDIDATES = 2
CAP_REACHED = 3
RADIUS_REACHED = 4
EXHAUSTED = 5
LOG_FULL = 6
READ_ERROR = 7

#: Columns of ``walk``.
HEAP_SIZE, PENDING, HEAP_BUILT = 0, 1, 2
WALK_FIELDS = 3


@numba.njit(cache=True, nogil=True)
def _parse(pages, state, keyfmt, s, t):
    count, prev, nxt, kmin, step, kmax, _ = leaf_header(pages[s, t])
    state[s, t, COUNT] = count
    state[s, t, NEIGHBOUR] = prev if s == 0 else nxt
    state[s, t, POS] = count - 1 if s == 0 else 0
    state[s, t, FRESH] = 0
    keyfmt[s, t, 0] = kmin
    keyfmt[s, t, 1] = step
    keyfmt[s, t, 2] = kmax


@numba.njit(cache=True, nogil=True)
def init_cursors(pages, state, keyfmt, qproj):
    """Position both cursors of every table around qproj[t], in the leaf loaded as pages[0, t]
    (copied to pages[1, t]): left at the last key < qproj[t], right at the first key >= it."""
    m = qproj.shape[0]
    for t in range(m):
        copy_row(pages[0, t], pages[1, t])
        count, prev, nxt, kmin, step, kmax, _ = leaf_header(pages[0, t])
        p = leaf_search_ge(pages[0, t], qproj[t])
        state[0, t, POS] = p - 1
        state[0, t, COUNT] = count
        state[0, t, NEIGHBOUR] = prev
        state[0, t, FRESH] = 0
        state[1, t, POS] = p
        state[1, t, COUNT] = count
        state[1, t, NEIGHBOUR] = nxt
        state[1, t, FRESH] = 0
        for s in range(2):
            keyfmt[s, t, 0] = kmin
            keyfmt[s, t, 1] = step
            keyfmt[s, t, 2] = kmax


@numba.njit(cache=True, nogil=True, inline="always")
def _head_distance(pages, state, keyfmt, qproj, s, t):
    """|key - qproj[t]| of the entry under cursor (s, t)."""
    key = leaf_key(pages[s, t], keyfmt[s, t, 0], keyfmt[s, t, 1], keyfmt[s, t, 2], state[s, t, POS])
    return abs(key - qproj[t])


@numba.njit(cache=True, nogil=True, inline="always")
def _push(heap_d, heap_c, size, d, c):
    """Insert (d, c) into the min-heap of ``size`` items; return the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if heap_d[parent] <= d:
            break
        heap_d[i] = heap_d[parent]
        heap_c[i] = heap_c[parent]
        i = parent
    heap_d[i] = d
    heap_c[i] = c
    return size + 1


@numba.njit(cache=True, nogil=True, inline="always")
def _sift_down(heap_d, heap_c, size, d, c):
    """Put (d, c) at the root of a heap of ``size`` items whose root slot is free.

    ``heap_d[size]`` must be +inf (a sentinel), so the right child can be read unguarded and
    the smaller child picked without a branch.
    """
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        child += np.int64(heap_d[child + 1] < heap_d[child])
        if d <= heap_d[child]:
            break
        heap_d[i] = heap_d[child]
        heap_c[i] = heap_c[child]
        i = child
    heap_d[i] = d
    heap_c[i] = c


@numba.njit(cache=True, nogil=True)
def incremental_walk(cursors, heap, id_bits, qproj, counting, l, x_stop):
    """Take index entries in ascending projected distance across all 2m cursors.

    Each entry taken gives its id one more collision; an id reaching ``l`` collisions is
    appended to ``cands``. Stops, returning (status, x), where x is the projected distance of
    the last entry taken:

    NEED_PAGE: cursor ``walk[PENDING]`` (= s * m + t) used up its leaf and has a neighbour: load
    it into pages[s, t], set state[s, t, FRESH] = 1 and call again;
    NEW_CANDIDATES: candidates were added (verify them, update x_stop, call again);
    CAP_REACHED: nums[N_CANDS] reached nums[CAP];
    RADIUS_REACHED: the next entry's projected distance is >= x_stop (termination T1);
    EXHAUSTED: every entry of every table has been taken.
    """
    pages, state, keyfmt = cursors
    heap_d, heap_c, walk = heap
    counts, touched, cands, nums, _ = counting
    m = qproj.shape[0]
    size = walk[HEAP_SIZE]
    if walk[HEAP_BUILT] == 0:
        heap_d[:] = np.inf
        size = 0
        for t in range(m):
            for s in range(2):
                p = state[s, t, POS]
                if 0 <= p < state[s, t, COUNT]:
                    size = _push(heap_d, heap_c, size, _head_distance(pages, state, keyfmt, qproj, s, t),
                                 s * m + t)
        walk[HEAP_BUILT] = 1
    pending = walk[PENDING]
    if pending >= 0:
        s = pending // m
        t = pending - s * m
        if state[s, t, FRESH]:
            _parse(pages, state, keyfmt, s, t)
        if 0 <= state[s, t, POS] < state[s, t, COUNT]:
            size = _push(heap_d, heap_c, size, _head_distance(pages, state, keyfmt, qproj, s, t), pending)
        walk[PENDING] = -1
    n_touched = nums[N_TOUCHED]
    n_cands = nums[N_CANDS]
    cap = nums[CAP]
    before = n_cands
    n_entries = nums[N_ENTRIES]
    x = 0.0
    status = EXHAUSTED
    while size > 0:
        x_top = heap_d[0]
        if x_top >= x_stop:
            status = RADIUS_REACHED
            break
        cursor = heap_c[0]
        s = cursor // m
        t = cursor - s * m
        x = x_top
        p = state[s, t, POS]
        count = state[s, t, COUNT]
        i = leaf_id(pages[s, t], count, id_bits, p)
        c = counts[i] + 1
        counts[i] = c
        if c == 1:
            touched[n_touched] = i
            n_touched += 1
        if c == l:
            cands[n_cands] = i
            n_cands += 1
        n_entries += 1
        p += -1 if s == 0 else 1
        state[s, t, POS] = p
        if 0 <= p < count:  # the cursor's next head replaces the root
            _sift_down(heap_d, heap_c, size, _head_distance(pages, state, keyfmt, qproj, s, t), cursor)
        else:  # the cursor leaves the heap: the last item replaces the root
            size -= 1
            last_d = heap_d[size]
            heap_d[size] = np.inf  # the sentinel moves down with the size
            if size > 0:
                _sift_down(heap_d, heap_c, size, last_d, heap_c[size])
            if state[s, t, NEIGHBOUR] >= 0:
                walk[PENDING] = cursor
                status = NEED_PAGE
                break
        if n_cands >= cap:
            status = CAP_REACHED
            break
        if n_cands > before:
            status = NEW_CANDIDATES
            break
    walk[HEAP_SIZE] = size
    nums[N_TOUCHED] = n_touched
    nums[N_CANDS] = n_cands
    nums[N_ENTRIES] = n_entries
    if status == NEED_PAGE and n_cands >= cap:
        status = CAP_REACHED
    return status, x


@numba.njit(cache=True, nogil=True)
def walk_segment(raw, read_pending, cursors, heap, id_bits, qproj, counting, l, x_stop, log):
    """One segment of the walk with the leaves it enters read in place: call
    :func:`incremental_walk` and read the leaf it asks for (NEED_PAGE) through ``raw`` (a
    :class:`storage.RawReader`), logging it in ``log`` (a
    :data:`storage.RunLog`) for the caller to count, until the walk
    stops for another reason or finds new candidates. With ``read_pending`` the leaf the
    previous segment stopped before (NEED_PAGE with new candidates) is read first.

    Returns
    -------
    status : int
        That of the last :func:`incremental_walk` call (NEED_PAGE: new candidates were found
        with a leaf still to read; call again with ``read_pending``), or LOG_FULL (count and
        empty the log, call again with ``read_pending``), or READ_ERROR (the leaf of cursor
        ``walk[PENDING]`` failed to read or its checks; nothing of it logged).
    """
    pages, state = cursors.pages, cursors.state
    walk, nums = heap.walk, counting.nums
    m = qproj.shape[0]
    n_before = nums[N_CANDS]
    page = np.empty(1, dtype=np.int64)
    one = np.ones(1, dtype=np.int64)
    status = NEED_PAGE
    while True:
        if read_pending:
            if log.n[0] >= log.firsts.shape[0]:
                return LOG_FULL
            cursor = walk[PENDING]
            s = cursor // m
            t = cursor - s * m
            page[0] = state[s, t, NEIGHBOUR]
            if not read_raw_runs(raw, page, one, pages[s, t:t + 1]):
                return READ_ERROR
            log_run(log, page[0], 1)
            state[s, t, FRESH] = 1
        status, _ = incremental_walk(cursors, heap, id_bits, qproj, counting, l, x_stop)
        read_pending = True
        if status != NEED_PAGE or nums[N_CANDS] > n_before:
            return status
