"""The collision-counting record every search method shares, and the kernels over it.

One query's collision counting is one :class:`Counting` record of arrays, made once per
searcher and reused query after query:

- ``counts``: uint8 or uint16, shape (n,), each point's collision count (the type must hold
  m: a point collides at most once per hash table);
- ``touched``: int64, the ids whose count went from 0 to 1, in order, while the list has
  room; a full list means the scan stopped listing them and every count is zeroed at the end
  of the query (:func:`reset_counts`: cheaper than zeroing them one by one past n / 8 ids);
- ``cands``: int64, shape (>= cap,), the candidates (ids that reached l collisions), in the
  order found;
- ``nums``: int64, shape (NUMS_FIELDS,), the scalars below;
- ``reached``: int64, shape (l + 1,), ``reached[c]`` counts the ids that have reached c
  collisions, for c from ``nums[FLOOR]`` to l (for :func:`safe_tables`).

``nums`` columns: ``N_TOUCHED`` ids listed in ``touched``; ``N_CANDS`` candidates;
``CAP`` the candidate cap (T2: k + beta n, or ``max_candidates``); ``MAX_COUNT`` the largest
collision count so far; ``FLOOR`` the smallest count ``reached`` tracks; ``N_ENTRIES`` index
entries taken so far (each one collision).
"""

from collections import namedtuple

import numba
import numpy as np

__all__ = ["Counting", "NUMS_FIELDS", "N_TOUCHED", "N_CANDS", "CAP", "MAX_COUNT", "FLOOR",
           "N_ENTRIES", "NEAR_TABLES", "new_counting", "start_counting", "reset_counts",
           "safe_tables"]

N_TOUCHED, N_CANDS, CAP, MAX_COUNT, FLOOR, N_ENTRIES = 0, 1, 2, 3, 4, 5
NUMS_FIELDS = 6
#: safe_tables counts exactly how many ids may become candidates within this many tables.
NEAR_TABLES = 8

#: One query's collision counting (see the module docstring for each field).
Counting = namedtuple("Counting", ["counts", "touched", "cands", "nums", "reached"])


def new_counting(n, m, l, touched_capacity):
    """A :class:`Counting` record for n points and m hash tables with threshold l.

    Counts are uint8 when m <= 255 (half the cache footprint of uint16 in the scans' random
    count updates), else uint16. ``cands`` starts empty: :func:`start_counting` sizes it.
    """
    counts = np.zeros(n, dtype=np.uint8 if m <= 255 else np.uint16)
    return Counting(counts=counts, touched=np.empty(touched_capacity, dtype=np.int64),
                    cands=np.empty(0, dtype=np.int64), nums=np.zeros(NUMS_FIELDS, dtype=np.int64),
                    reached=np.zeros(l + 1, dtype=np.int64))


def start_counting(rec, cap, l):
    """Ready ``rec`` for a new query with candidate cap ``cap``; returns the record (a new one
    if ``cands`` had to grow). The counts must be zero (:func:`reset_counts` after each query)."""
    if rec.cands.shape[0] < cap:
        rec = rec._replace(cands=np.empty(max(cap, 2 * rec.cands.shape[0]), dtype=np.int64))
    nums = rec.nums
    nums[:] = 0
    nums[CAP] = cap
    nums[FLOOR] = max(1, l - NEAR_TABLES)
    rec.reached[:] = 0
    return rec


@numba.njit(cache=True, nogil=True)
def reset_counts(counts, touched, n_touched):
    """Zero the collision counts of one query's ids: ``touched[:n_touched]``, or every count
    if the list is full (the scan stopped listing ids)."""
    if n_touched >= touched.shape[0]:
        counts[:] = 0
    else:
        for j in range(n_touched):
            counts[touched[j]] = 0


@numba.njit(cache=True, nogil=True)
def safe_tables(nums, l, max_tables, reached, floor):
    """How many more tables (<= max_tables) can be scanned whole with fewer new candidates
    than the ``cap - n_cands`` still allowed, so that their pages can be read ahead.

    An id gains at most one collision per table, so g tables can only promote ids that
    already have l - g collisions or more: none while the largest count is below l - g, and
    for l - g >= ``floor`` at most ``reached[l - g] - n_cands`` of them.
    """
    g = min(max(l - 1 - nums[MAX_COUNT], 0), max_tables)
    room = nums[CAP] - nums[N_CANDS]
    while g < max_tables and l - g - 1 >= floor and reached[l - g - 1] - nums[N_CANDS] < room:
        g += 1
    return g
