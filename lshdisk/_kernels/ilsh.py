"""I-LSH search kernel: incremental expansion over the 2m leaf cursors with a binary heap.

Cursor state is shared with the QALSH kernels (see :mod:`lshdisk._kernels.qalsh`): per side
s (0 = left, 1 = right) and table t, ``pages[s, t]`` holds the leaf under the cursor,
``state[s, t] = [pos, count, neighbour_page, fresh]`` and ``keyfmt[s, t] = [key_min,
key_step, key_max]``. The heap holds one entry per cursor that has a head: its projected
distance |key - qproj[t]| and the cursor number ``s * m + t``.

The heap arrays have 2m + 1 slots: slot ``heap_size`` is always +inf (a sentinel).
``nums`` (int64) carries the walk between calls:
``[n_touched, n_cands, cap, heap_size, pending_cursor, heap_built]``.
"""

import numba
import numpy as np

from storage.leaf_codec import leaf_id, leaf_key
from .qalsh import COUNT, FRESH, NEIGHBOUR, POS, _parse

NEED_PAGE = 1
NEW_CANDIDATES = 2
CAP_REACHED = 3
RADIUS_REACHED = 4
EXHAUSTED = 5

N_TOUCHED, N_CANDS, CAP, HEAP_SIZE, PENDING, HEAP_BUILT = 0, 1, 2, 3, 4, 5


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
def incremental_walk(pages, state, keyfmt, id_bits, qproj, heap_d, heap_c, counts, l, touched,
                     cands, nums, x_stop):
    """Take index entries in ascending projected distance across all 2m cursors.

    Each entry taken gives its id one more collision; an id reaching ``l`` collisions is
    appended to ``cands``. Stops, returning (status, x), where x is the projected distance of
    the last entry taken:

    NEED_PAGE: cursor ``nums[PENDING]`` (= s * m + t) used up its leaf and has a neighbour: load
    it into pages[s, t], set state[s, t, FRESH] = 1 and call again;
    NEW_CANDIDATES: candidates were added (verify them, update x_stop, call again);
    CAP_REACHED: nums[N_CANDS] reached nums[CAP];
    RADIUS_REACHED: the next entry's projected distance is >= x_stop (termination T1);
    EXHAUSTED: every entry of every table has been taken.
    """
    m = qproj.shape[0]
    size = nums[HEAP_SIZE]
    if nums[HEAP_BUILT] == 0:
        heap_d[:] = np.inf
        size = 0
        for t in range(m):
            for s in range(2):
                p = state[s, t, POS]
                if 0 <= p < state[s, t, COUNT]:
                    size = _push(heap_d, heap_c, size, _head_distance(pages, state, keyfmt, qproj, s, t),
                                 s * m + t)
        nums[HEAP_BUILT] = 1
    pending = nums[PENDING]
    if pending >= 0:
        s = pending // m
        t = pending - s * m
        if state[s, t, FRESH]:
            _parse(pages, state, keyfmt, s, t)
        if 0 <= state[s, t, POS] < state[s, t, COUNT]:
            size = _push(heap_d, heap_c, size, _head_distance(pages, state, keyfmt, qproj, s, t), pending)
        nums[PENDING] = -1
    n_touched = nums[N_TOUCHED]
    n_cands = nums[N_CANDS]
    cap = nums[CAP]
    before = n_cands
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
                nums[PENDING] = cursor
                status = NEED_PAGE
                break
        if n_cands >= cap:
            status = CAP_REACHED
            break
        if n_cands > before:
            status = NEW_CANDIDATES
            break
    nums[HEAP_SIZE] = size
    nums[N_TOUCHED] = n_touched
    nums[N_CANDS] = n_cands
    if status == NEED_PAGE and n_cands >= cap:
        status = CAP_REACHED
    return status, x
