"""Kernels of the learned-partition family (:mod:`lshdisk.kmeans`): k-means sums, sort keys
of cell assignments, and the multi-probe scan of sorted-run tables with collision counting.

A query's probe state, ``Probe.state`` (int64, PROBE_FIELDS):

- ``TABLE``, ``RANK``: the table and the rank (in the query's order of that table's cells)
  of the cell being counted;
- ``ENTRY``: the directory entry (global page index) of the next page of that cell to count,
  -1 before its first;
- ``RANK0``, ``RANK1``: the round counts ranks ``RANK0 .. RANK1 - 1`` of every table.

Pages a query has read are kept, up to the cache's capacity, in a :data:`PageCache`: a
page holding several cells is read once per query however many of its cells are probed.
"""

from collections import namedtuple

import numba
import numpy as np

from storage import log_run, read_raw_runs
from storage.sorted_run import decode_ids, entry_range

from .c2lsh import all_data_pages, count_ids

TABLE, RANK, ENTRY, RANK0, RANK1 = 0, 1, 2, 3, 4
PROBE_FIELDS = 5

ROUND_DONE = 0
NEED_PAGES = 1
CAP_REACHED = 2
LOG_FULL = 3
READ_ERROR = 4
BAD_PAGE = 5

#: The tables: per table its first page number and first directory entry (``first``,
#: ``dir_entry``, int64 (m,)); per table and cell the directory entries of the cell's first
#: and last page (``cell_first``, ``cell_last``, int64 (m, K); first > last: an empty cell).
CellTables = namedtuple("CellTables", ["first", "dir_entry", "cell_first", "cell_last"])
#: A query's probes: ``order`` int64 (m, K), each table's cells nearest first; ``state``
#: int64 (PROBE_FIELDS,); ``request`` int64 (2,): the directory entry and count of the pages
#: to read next (:func:`probe_step`).
Probe = namedtuple("Probe", ["order", "state", "request"])
#: Pages read by the query: ``slot`` int32 (directory entries,), the cache row holding each
#: page or -1; ``held`` int64 (capacity,), the entry in each row; ``pages`` uint8 (capacity,
#: payload); ``n_held`` int64 (1,).
PageCache = namedtuple("PageCache", ["slot", "held", "pages", "n_held"])


# ------------------------------------------------------------------------------ training
@numba.njit(cache=True, nogil=True)
def accumulate_cells(x, labels, sums, counts):
    """Per cell, the sum of its rows (float64 (K, w)) and their number (int64 (K,))."""
    sums[:] = 0.0
    counts[:] = 0
    for i in range(x.shape[0]):
        c = labels[i]
        counts[c] += 1
        for j in range(x.shape[1]):
            sums[c, j] += x[i, j]


@numba.njit(cache=True, nogil=True)
def cell_keys(cells, start, keys_out, ids_out):
    """Sort keys of cell assignments: ``keys_out[t, i] = (t << 16) | cells[i, t]`` and
    ``ids_out[t, i] = start + i``, for cells (rows, m) of uint16."""
    rows, m = cells.shape
    for t in range(m):
        base = np.uint64(t) << np.uint64(16)
        for i in range(rows):
            keys_out[t, i] = base | np.uint64(cells[i, t])
            ids_out[t, i] = start + i


@numba.njit(cache=True, nogil=True)
def split_keys(keys, tables_out, cells_out):
    """Inverse of :func:`cell_keys` on a sorted key stream: table and cell of each key."""
    for i in range(keys.shape[0]):
        tables_out[i] = np.int64(keys[i] >> np.uint64(16))
        cells_out[i] = np.int64(keys[i] & np.uint64(0xFFFF))


@numba.njit(cache=True, nogil=True)
def cell_pages(dir_first, dir_last, dir_entry, n_pages, cell_first, cell_last):
    """Fill each cell's first and last directory entry from the pages' key ranges."""
    cell_first[:] = np.iinfo(np.int64).max
    cell_last[:] = -1
    k = cell_first.shape[1]
    for t in range(dir_entry.shape[0]):
        for e in range(dir_entry[t], dir_entry[t] + n_pages[t]):
            lo = max(dir_first[e], 0)
            hi = min(dir_last[e], k - 1)
            for c in range(lo, hi + 1):
                if e < cell_first[t, c]:
                    cell_first[t, c] = e
                if e > cell_last[t, c]:
                    cell_last[t, c] = e


# ------------------------------------------------------------------------------ search
@numba.njit(cache=True, nogil=True)
def reset_cache(cache):
    """Forget the pages a query read."""
    slot, held, _, n_held = cache
    for r in range(n_held[0]):
        slot[held[r]] = -1
    n_held[0] = 0


@numba.njit(cache=True, nogil=True, inline="always")
def _uncached_run(slot, e, last, max_run):
    """Pages from directory entry e (not held) up to the next held one, ``last`` or
    ``max_run`` of them: how many."""
    e2 = e + 1
    while e2 <= last and e2 - e < max_run and slot[e2] < 0:
        e2 += 1
    return e2 - e


@numba.njit(cache=True, nogil=True)
def probe_step(tables, probe, cache, counting, l, max_run):
    """Count the cells of the round (ranks RANK0 .. RANK1 - 1 of every table) from the probe
    state on, until a page must be read.

    Returns
    -------
    int
        ROUND_DONE; CAP_REACHED (the candidates reached the cap); or NEED_PAGES, with
        ``probe.request`` = (first directory entry, count <= max_run) of consecutive pages not
        held: read them and pass them to :func:`absorb_pages`, then call again.
    """
    order, state, request = probe
    slot, _, pages, _ = cache
    cell_first, cell_last = tables.cell_first, tables.cell_last
    m = order.shape[0]
    t, r, e = state[TABLE], state[RANK], state[ENTRY]
    r1 = state[RANK1]
    while t < m:
        while r < r1:
            c = order[t, r]
            last = cell_last[t, c]
            if e < cell_first[t, c]:
                e = cell_first[t, c]
            while e <= last:
                s = slot[e]
                if s < 0:
                    request[0], request[1] = e, _uncached_run(slot, e, last, max_run)
                    state[TABLE], state[RANK], state[ENTRY] = t, r, e
                    return NEED_PAGES
                e0, e1 = entry_range(pages[s], c, c)
                e += 1
                if count_ids(pages[s], e0, e1, counting, l):
                    state[TABLE], state[RANK], state[ENTRY] = t, r, e
                    return CAP_REACHED
            r += 1
            e = -1
        t += 1
        r = state[RANK0]
    state[TABLE], state[RANK], state[ENTRY] = t, r, e
    return ROUND_DONE


@numba.njit(cache=True, nogil=True)
def absorb_pages(block, tables, probe, cache, counting, l):
    """Count the pages of ``probe.request`` (payloads in the rows of ``block``) for the cell
    being probed, keeping each in the cache while it has room. Returns CAP_REACHED or
    NEED_PAGES (call :func:`probe_step` again)."""
    order, state, request = probe
    slot, held, pages, n_held = cache
    c = order[state[TABLE], state[RANK]]
    first, count = request[0], request[1]
    width = pages.shape[1]
    for i in range(count):
        page = block[i]
        if n_held[0] < held.shape[0]:
            row = n_held[0]
            pages[row, :] = page[:width]
            held[row] = first + i
            slot[first + i] = row
            n_held[0] = row + 1
        e0, e1 = entry_range(page, c, c)
        state[ENTRY] = first + i + 1
        if count_ids(page, e0, e1, counting, l):
            return CAP_REACHED
    return NEED_PAGES


@numba.njit(cache=True, nogil=True)
def probe_round(raw, tables, probe, cache, counting, l, run_buf, log, err):
    """One round of :func:`probe_step`, reading the pages it asks for through ``raw`` (a
    :class:`storage.RawReader`) and logging them in ``log`` (a :data:`storage.RunLog`) for
    the caller to count.

    Returns
    -------
    int
        ROUND_DONE or CAP_REACHED; LOG_FULL (count and empty the log, call again); READ_ERROR
        or BAD_PAGE, with ``err`` (int64 (2,)) = first page number and count of the run
        (nothing of it logged or counted).
    """
    request = probe.request
    pages = np.empty(1, dtype=np.int64)
    first_page = tables.first
    dir_entry = tables.dir_entry
    max_run = run_buf.shape[0]
    while True:
        if log.n[0] >= log.firsts.shape[0]:
            return LOG_FULL
        status = probe_step(tables, probe, cache, counting, l, max_run)
        if status != NEED_PAGES:
            return status
        t = probe.state[TABLE]
        entry, count = request[0], request[1]
        pages[0] = first_page[t] + entry - dir_entry[t]
        block = run_buf[:count]
        if not read_raw_runs(raw, pages, request[1:2], block):
            err[0], err[1] = pages[0], count
            return READ_ERROR
        if not all_data_pages(block):
            err[0], err[1] = pages[0], count
            return BAD_PAGE
        log_run(log, pages[0], count)
        if absorb_pages(block, tables, probe, cache, counting, l) == CAP_REACHED:
            return CAP_REACHED


#: The walk of :func:`bounds_walk` over the counted cells: ``Walk.state`` int64 (3,) =
#: (table, rank, directory entry of the next page, -1 before the cell's first); per table the
#: ranks counted ``probed`` int64 (m,) and the bound ``bound`` float64 (m,).
Walk = namedtuple("Walk", ["state", "probed", "bound"])


@numba.njit(cache=True, nogil=True)
def bounds_begin(probe, d2, pool, walk, score):
    """Start the lower bounds of the pool's ids (ids with >= l collisions) on the asymmetric
    distance to the query, from the cells counted so far.

    For table t with its first ``p_t`` ranks counted, an id in one of them has sub-distance
    ``d2[t, cell]`` (the query's squared distance to that centroid); an id in none lies in a
    cell at least as far as the first one not counted, ``B_t = d2[t, order[t, p_t]]`` (0 once
    every cell is counted). The bound is ``sum_t B_t + sum over counted cells holding the id
    of (d2[t, cell] - B_t)``: this sets ``score[pool] = sum_t B_t``; :func:`bounds_walk`
    adds the rest.
    """
    order, state, _ = probe
    m, k = order.shape
    total = 0.0
    for t in range(m):
        if t < state[TABLE]:
            p = state[RANK1]
        elif t == state[TABLE]:
            p = state[RANK]
        else:
            p = state[RANK0]
        walk.probed[t] = p
        walk.bound[t] = d2[t, order[t, p]] if p < k else 0.0
        total += walk.bound[t]
    for j in range(pool.shape[0]):
        score[pool[j]] = total
    walk.state[0], walk.state[1], walk.state[2] = 0, 0, -1


@numba.njit(cache=True, inline="always")
def _add_bounds(page, c, delta, counts, l, scratch, score):
    e0, e1 = entry_range(page, c, c)
    n_ids = decode_ids(page, e0, e1, scratch)
    for j in range(n_ids):
        i = scratch[j]
        if counts[i] >= l:
            score[i] += delta


@numba.njit(cache=True, nogil=True)
def bounds_walk(tables, probe, cache, counts, l, d2, walk, request, scratch, score, max_run):
    """Walk the counted cells from ``walk.state`` on, adding ``d2[t, cell] - B_t`` to the
    bound of every pool id in them (see :func:`bounds_begin`), the pages from the cache.
    Returns ROUND_DONE, or NEED_PAGES with ``request`` = (first directory entry, count <=
    max_run) of pages not held: read them, pass them to :func:`bounds_absorb`, call again."""
    order = probe.order
    slot, _, pages, _ = cache
    cell_first, cell_last = tables.cell_first, tables.cell_last
    m = order.shape[0]
    ws = walk.state
    t, r, e = ws[0], ws[1], ws[2]
    while t < m:
        while r < walk.probed[t]:
            c = order[t, r]
            delta = d2[t, c] - walk.bound[t]
            last = cell_last[t, c]
            if e < cell_first[t, c]:
                e = cell_first[t, c]
            while e <= last:
                s = slot[e]
                if s < 0:
                    request[0], request[1] = e, _uncached_run(slot, e, last, max_run)
                    ws[0], ws[1], ws[2] = t, r, e
                    return NEED_PAGES
                _add_bounds(pages[s], c, delta, counts, l, scratch, score)
                e += 1
            r += 1
            e = -1
        t += 1
        r = 0
    ws[0], ws[1], ws[2] = t, r, e
    return ROUND_DONE


@numba.njit(cache=True, nogil=True)
def bounds_absorb(block, probe, counts, l, d2, walk, request, scratch, score):
    """Add the bounds of the pages of ``request`` (payloads in the rows of ``block``) for
    the cell being walked; the walk goes on after them."""
    ws = walk.state
    t, r = ws[0], ws[1]
    c = probe.order[t, r]
    delta = d2[t, c] - walk.bound[t]
    for i in range(request[1]):
        _add_bounds(block[i], c, delta, counts, l, scratch, score)
    ws[2] = request[0] + request[1]
