"""Leaf cursor kernels over the QALSH trees, as I-LSH's incremental walk uses them (QALSH's own
round scans are in :mod:`lshdisk._kernels.qalsh_rounds`).

The kernels read B+-tree leaf pages in place (no decoded copy). Per-query cursor state, one
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

from storage.leaf_codec import leaf_header, leaf_search_ge

from .rows import copy_row


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


@numba.njit(cache=True, nogil=True)
def reset_counts(counts, touched, n_touched):
    """Zero the collision counts of the ids touched by one query."""
    for j in range(n_touched):
        counts[touched[j]] = 0
