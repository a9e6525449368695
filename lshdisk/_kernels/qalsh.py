"""QALSH search kernels: two-way leaf scans with collision counting, and the radius update.

The kernels scan B+-tree leaf pages in place (no decoded copy). Per-query cursor state, one
entry per side (0 = left, 1 = right) and hash table t:

- ``pages[s, t]``: uint8, the leaf page under the cursor (filled by the Python side, which
  reads, verifies and counts every page);
- ``state[s, t]``: int64 ``[pos, count, neighbour_page, fresh]``: the next entry to take
  (leftwards for s = 0, rightwards for s = 1), the leaf's entry count, the page of the next
  leaf in the cursor's direction (-1: none) and 1 if the page was just loaded and its header
  not parsed yet;
- ``keyfmt[s, t]``: float64 ``[key_min, key_step, key_max]`` of the leaf.
"""

import numba
import numpy as np

from storage.leaf_codec import leaf_header, leaf_id, leaf_key, leaf_search_ge

ROUND_DONE = 0
NEED_LEFT = 1
NEED_RIGHT = 2
CAP_REACHED = 3
TABLE_DONE = 4

POS, COUNT, NEIGHBOUR, FRESH = 0, 1, 2, 3


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
        pages[1, t, :] = pages[0, t, :]
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


@numba.njit(cache=True, nogil=True)
def scan_tables(t_start, pages, state, keyfmt, id_bits, qproj, half_width, counts, l, touched,
                cands, nums):
    """Collision counting over tables t_start, t_start + 1, ... for |key - qproj[t]| <= half_width.

    Each entry taken gives its id one more collision; at exactly ``l`` collisions the id is
    appended to ``cands``. ``nums`` is int64 ``[n_touched, n_cands, cap]``, updated in place.

    Returns
    -------
    status, t, page : int
        NEED_LEFT / NEED_RIGHT: table t's cursor used up its leaf and the neighbour leaf
        ``page`` exists (load it into pages[s, t] and call again from t; the kernel has marked
        the cursor so that it parses the new page);
        TABLE_DONE: table t produced candidates (verify them, call again from t + 1);
        CAP_REACHED: nums[1] reached nums[2]; ROUND_DONE: every table is done.
    """
    m = qproj.shape[0]
    n_touched = nums[0]
    n_cands = nums[1]
    cap = nums[2]
    for t in range(t_start, m):
        q = qproj[t]
        before = n_cands
        for s in range(2):
            if state[s, t, FRESH]:
                _parse(pages, state, keyfmt, s, t)
            page = pages[s, t]
            p = state[s, t, POS]
            count = state[s, t, COUNT]
            kmin = keyfmt[s, t, 0]
            step = keyfmt[s, t, 1]
            kmax = keyfmt[s, t, 2]
            step_dir = -1 if s == 0 else 1
            # The entries to take are a contiguous run from p: find its end by binary search on
            # the sorted leaf keys, then count collisions without decoding keys.
            if s == 0:
                lo, hi = 0, p + 1  # first j in [0, p] with q - key_j <= half_width
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if q - leaf_key(page, kmin, step, kmax, mid) <= half_width:
                        hi = mid
                    else:
                        lo = mid + 1
                stop = lo - 1
            else:
                lo, hi = p, count  # first j in [p, count) with key_j - q > half_width
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if leaf_key(page, kmin, step, kmax, mid) - q <= half_width:
                        lo = mid + 1
                    else:
                        hi = mid
                stop = lo
            while p != stop:
                i = leaf_id(page, count, id_bits, p)
                c = counts[i] + 1
                counts[i] = c
                if c == 1:
                    touched[n_touched] = i
                    n_touched += 1
                p += step_dir
                if c == l:
                    cands[n_cands] = i
                    n_cands += 1
                    if n_cands >= cap:
                        state[s, t, POS] = p
                        nums[0] = n_touched
                        nums[1] = n_cands
                        return CAP_REACHED, t, -1
            state[s, t, POS] = p
            if (p < 0 or p >= count) and state[s, t, NEIGHBOUR] >= 0:  # ran off the leaf
                nums[0] = n_touched
                nums[1] = n_cands
                state[s, t, FRESH] = 1  # the caller loads the neighbour before calling again
                return (NEED_LEFT if s == 0 else NEED_RIGHT), t, state[s, t, NEIGHBOUR]
        if n_cands > before:
            nums[0] = n_touched
            nums[1] = n_cands
            return TABLE_DONE, t, -1
    nums[0] = n_touched
    nums[1] = n_cands
    return ROUND_DONE, m, -1


@numba.njit(cache=True, nogil=True)
def median_head_distance(pages, state, keyfmt, qproj):
    """Median of |key - qproj[t]| over the cursor heads that exist (at most 2m); -1 if none.

    QALSH's radius update (authors' code) jumps to the radius whose bucket reaches this median,
    skipping rounds that would find nothing new.
    """
    m = qproj.shape[0]
    buf = np.empty(2 * m, dtype=np.float64)
    k = 0
    for t in range(m):
        for s in range(2):
            p = state[s, t, POS]
            if 0 <= p < state[s, t, COUNT]:
                key = leaf_key(pages[s, t], keyfmt[s, t, 0], keyfmt[s, t, 1], keyfmt[s, t, 2], p)
                buf[k] = abs(key - qproj[t])
                k += 1
    if k == 0:
        return -1.0
    srt = np.sort(buf[:k])
    if k % 2 == 0:
        return 0.5 * (srt[k // 2 - 1] + srt[k // 2])
    return srt[k // 2]


@numba.njit(cache=True, nogil=True)
def reset_counts(counts, touched, n_touched):
    """Zero the collision counts of the ids touched by one query."""
    for j in range(n_touched):
        counts[touched[j]] = 0
