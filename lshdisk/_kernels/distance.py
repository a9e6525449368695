"""Exact distance kernels for false-positive removal."""

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def sqdist_rows(rows, q, out):
    """out[i] = ||rows[i] - q||^2 in float64; rows (c, d) of any storage dtype, q float64 (d,)."""
    c, d = rows.shape
    for i in range(c):
        s = 0.0
        for k in range(d):
            diff = np.float64(rows[i, k]) - q[k]
            s += diff * diff
        out[i] = s


@numba.njit(cache=True, nogil=True)
def plan_point_pages(ids, points_per_page, row_of, slot_of, firsts, n_pages):
    """Pages holding points ``ids`` (int64 (c,)), ``points_per_page`` to a page, point i in
    page ``1 + i // points_per_page``: the distinct pages in ascending order as runs of
    consecutive pages (``firsts``, ``n_pages``: int64, length >= c), and for each id the row
    of its page among the pages read (``row_of``) and its slot in that page (``slot_of``).

    Returns the number of runs.
    """
    c = ids.shape[0]
    if c == 0:
        return 0
    pages = np.empty(c, dtype=np.int64)
    for j in range(c):
        pages[j] = 1 + ids[j] // points_per_page
        slot_of[j] = ids[j] - (pages[j] - 1) * points_per_page
    order = np.argsort(pages)
    n_runs = 0
    row = -1
    last = -2
    for j in order:
        page = pages[j]
        if page != last:
            row += 1
            if page == last + 1:
                n_pages[n_runs - 1] += 1
            else:
                firsts[n_runs] = page
                n_pages[n_runs] = 1
                n_runs += 1
            last = page
        row_of[j] = row
    return n_runs


@numba.njit(cache=True, nogil=True)
def sqdist_slots(blocks, row_of, slot_of, q, out):
    """out[j] = ||blocks[row_of[j], slot_of[j]] - q||^2 in float64; blocks (pages, points per
    page, d) of any storage dtype (a strided view of page rows), q float64 (d,)."""
    d = blocks.shape[2]
    for j in range(row_of.shape[0]):
        row, slot = row_of[j], slot_of[j]
        s = 0.0
        for k in range(d):
            diff = np.float64(blocks[row, slot, k]) - q[k]
            s += diff * diff
        out[j] = s
