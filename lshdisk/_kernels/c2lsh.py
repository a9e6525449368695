"""C2LSH kernels: sort keys of projections, buckets, the unit sample, and collision counting
over sorted-run pages (layout in :mod:`storage.format`, decoders in :mod:`storage.sorted_run`).

Per-query state of hash table t, ``state[t]`` (int64), with buckets and entry positions:

- ``STARTED``: 1 once a round has visited the table;
- ``LOADED``: 1 once a page of the table was read (its boundary pages are then held);
- ``LO``, ``HI``: the level-1 buckets ``[LO, HI]`` counted so far (all their entries);
- ``PL``, ``EL``: the leftmost page read (index within the table) held in ``lpages[t]``, and
  its first counted entry (entries before ``EL`` have buckets below ``LO``);
- ``PR``, ``ER``: the rightmost page read, held in ``rpages[t]``, and one past its last
  counted entry (entries from ``ER`` on have buckets above ``HI``).

Pages are read by the Python side (counted, verified); the kernels only see payloads.
"""

from collections import namedtuple

import numba
import numpy as np

from storage import log_run, read_raw_runs
from storage.sorted_run import DATA_PAGE, entry_range, page_header

from .counting import CAP, FLOOR, MAX_COUNT, N_CANDS, N_ENTRIES, N_TOUCHED, safe_tables
from .rows import copy_row

STARTED, LOADED, LO, HI, PL, EL, PR, ER = 0, 1, 2, 3, 4, 5, 6, 7
STATE_FIELDS = 8

ROUND_DONE = 0
NEED_INIT = 1
NEED_LEFT = 2
NEED_RIGHT = 3
CAP_REACHED = 4
BAD_PAGE = 5
#: Further statuses of :func:`scan_round`.
LOG_FULL = 7
READ_ERROR = 8

#: The hash tables of an index, int64 arrays: per table its first page, page count and first
#: directory entry (``first``, ``n_pages``, ``dir_entry``, shape (m,)), and per data page its
#: first and last bucket (``dir_first``, ``dir_last``, shape (directory entries,)).
Tables = namedtuple("Tables", ["first", "n_pages", "dir_entry", "dir_first", "dir_last"])
#: A query's position in the tables: ``state`` (m, STATE_FIELDS) int64, the boundary pages
#: ``lpages``, ``rpages`` (m, payload) uint8, the query buckets ``qb`` (m,) int64 and the
#: page ``request`` (2,) int64 of :func:`advance`.
Position = namedtuple("Position", ["state", "lpages", "rpages", "qb", "request"])
#: Read-ahead: the run ``plan`` (2 m, 4) int64 (RUN_TABLE, RUN_KIND, RUN_FIRST, RUN_PAGES),
#: its pages' numbers in the file ``pages`` (2 m,) int64, the ``run_buf`` (pages,
#: page_size) uint8.
ReadAhead = namedtuple("ReadAhead", ["plan", "pages", "run_buf"])

_SIGN = np.uint32(0x80000000)


# ------------------------------------------------------------------------------ build
@numba.njit(cache=True, nogil=True)
def projection_keys(proj_bits, start, keys_out, ids_out):
    """Sort keys of projections: keys_out[t, i] = (t << 32) | order code of proj[i, t].

    proj_bits: uint32 (c, m), the bits of the float32 projections of rows start .. start+c-1
    (``proj.view(np.uint32)``); the order code is that of
    :func:`storage.extsort.float32_to_ordered_u32`. keys_out: uint64 (m, c); ids_out: uint32
    (m, c) receives start + i.
    """
    c, m = proj_bits.shape
    for t in range(m):
        hi = np.uint64(t) << np.uint64(32)
        for i in range(c):
            bits = proj_bits[i, t]
            if bits & _SIGN:
                code = ~bits
            else:
                code = bits | _SIGN
            keys_out[t, i] = hi | np.uint64(code)
            ids_out[t, i] = start + i


@numba.njit(cache=True, nogil=True, inline="always")
def bucket_of(p32, b, unit, w):
    """Level-1 bucket floor((p / unit + b) / w) of a float32 projection p, in float64."""
    return np.int64(np.floor((np.float64(p32) / unit + b) / w))


@numba.njit(cache=True, nogil=True)
def buckets_from_keys(keys, b, unit, w, tables_out, buckets_out):
    """Table and level-1 bucket of each sort key (uint64 (c,)) made by :func:`projection_keys`.

    b: float64 (m,) offsets b*; unit, w: float. The bucket is monotone in the projection, so
    (table, projection) order is (table, bucket) order.
    """
    code = np.empty(1, dtype=np.uint32)
    proj = code.view(np.float32)
    for i in range(keys.shape[0]):
        k = keys[i]
        t = np.int64(k >> np.uint64(32))
        c32 = np.uint32(k & np.uint64(0xFFFFFFFF))
        if c32 & _SIGN:
            code[0] = c32 & ~_SIGN
        else:
            code[0] = ~c32
        tables_out[i] = t
        buckets_out[i] = bucket_of(proj[0], b[t], unit, w)


@numba.njit(cache=True, nogil=True)
def query_buckets(qproj, b, unit, w, out):
    """Level-1 buckets of a query: its projections (float64 (m,)) rounded to float32 as the
    data's are, then :func:`bucket_of`."""
    for t in range(qproj.shape[0]):
        out[t] = bucket_of(np.float32(qproj[t]), b[t], unit, w)


@numba.njit(cache=True, nogil=True, parallel=True)
def sample_knn_sqdist(sample, k, out):
    """out[i, :] = the k smallest positive squared distances from sample[i] to the other
    sample rows, ascending (+inf where fewer exist). Exact duplicates (distance 0) are
    skipped. sample: float32 (s, d); out: float64 (s, k). Parallel over rows."""
    s, d = sample.shape
    for i in numba.prange(s):
        row = out[i]
        for j in range(k):
            row[j] = np.inf
        for j in range(s):
            if j == i:
                continue
            acc = 0.0
            for x in range(d):
                diff = np.float64(sample[i, x]) - np.float64(sample[j, x])
                acc += diff * diff
            if acc <= 0.0 or acc >= row[k - 1]:
                continue
            p = k - 1
            while p > 0 and row[p - 1] > acc:
                row[p] = row[p - 1]
                p -= 1
            row[p] = acc


# ------------------------------------------------------------------------------ search
@numba.njit(cache=True, nogil=True, inline="always")
def _lower_bound(a, lo, hi, x):
    """First index in [lo, hi) with a[index] >= x (hi if none); a ascending."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True, inline="always")
def _upper_bound(a, lo, hi, x):
    """First index in [lo, hi) with a[index] > x (hi if none); a ascending."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def page_spans(tables, qb, out):
    """Per table t, the level-1 buckets the data page holding bucket ``qb[t]`` spans
    (its last bucket - its first + 1; the first page whose last bucket is >= qb[t], the
    table's last page if none): a page holds a fixed number of entries, so this is the
    inverse of the table's density around the query. Fills ``out`` (float64, (m,))."""
    _, tcount, tdir, dir_first, dir_last = tables
    for t in range(qb.shape[0]):
        d0, npg = tdir[t], tcount[t]
        if npg == 0:
            out[t] = 1.0
            continue
        j = min(_lower_bound(dir_last, d0, d0 + npg, qb[t]), d0 + npg - 1)
        out[t] = float(dir_last[j] - dir_first[j] + 1)


@numba.njit(cache=True, nogil=True, inline="always")
def _interval(qb, origin, radius):
    """Level-1 buckets [lo, hi] of the level-radius bucket holding qb (virtual rehashing)."""
    lo = origin + ((qb - origin) // radius) * radius
    return lo, lo + (radius - 1)


@numba.njit(cache=True, nogil=True)
def count_ids(page, e0, e1, counting, l):
    """Collision counting over entries e0 .. e1 - 1 of a data page.

    Each id gets one more collision; at exactly ``l`` it is appended to ``cands``. An id's
    first collision appends it to ``touched`` while that list has room. ``nums`` and
    ``reached`` are the :mod:`lshdisk._kernels.counting` record's (``reached[c]`` counts the
    ids that have reached c collisions for c from ``nums[FLOOR]`` to l, for
    :func:`lshdisk._kernels.counting.safe_tables`). Returns True when n_cands reaches cap
    (the remaining entries are left uncounted).
    """
    if e1 <= e0:
        return False
    counts, touched, cands, nums, reached = counting
    _, _, id_bits, _, _, _, ids_offset = page_header(page)
    n_touched = nums[N_TOUCHED]
    n_cands = nums[N_CANDS]
    cap = nums[CAP]
    max_count = nums[MAX_COUNT]
    floor = nums[FLOOR]
    taken = e1 - e0
    watch = min(max_count, floor - 1)  # counts above it take the branch keeping the rest exact
    track_limit = touched.shape[0]
    capped = False
    aligned = id_bits == 16  # byte-aligned ids: the common case of 32,769 .. 65,536 points
    b = ids_offset + 2 * e0
    bit = e0 * id_bits
    byte = ids_offset + (bit >> 3)
    acc = np.uint64(page[byte]) >> np.uint64(bit & 7)
    have = 8 - (bit & 7)
    byte += 1
    mask = (np.uint64(1) << np.uint64(id_bits)) - np.uint64(1)
    for e in range(e0, e1):
        if aligned:
            i = np.int64(page[b]) | (np.int64(page[b + 1]) << 8)
            b += 2
        else:
            while have < id_bits:
                acc |= np.uint64(page[byte]) << np.uint64(have)
                have += 8
                byte += 1
            i = np.int64(acc & mask)
            acc >>= np.uint64(id_bits)
            have -= id_bits
        c = counts[i] + 1
        counts[i] = c
        if n_touched < track_limit:  # until the list is full (then the reset zeroes all)
            if c == 1:
                touched[n_touched] = i
                n_touched += 1
        if c > watch:  # rare: a new largest count, or a count from floor on (the same
            # bookkeeping as the QALSH scan's, lshdisk._kernels.qalsh_rounds._take, which keeps
            # its own copy in its counts' integer type: a shared helper measured slower there)
            if c > max_count:
                max_count = c
            if floor <= c <= l:  # each id reaches each count once
                reached[c] += 1
                if c == l:
                    cands[n_cands] = i
                    n_cands += 1
                    if n_cands >= cap:
                        capped = True
                        taken = e + 1 - e0
                        break
            watch = min(max_count, floor - 1)
    nums[N_TOUCHED] = n_touched
    nums[N_CANDS] = n_cands
    nums[MAX_COUNT] = max_count
    nums[N_ENTRIES] += taken
    return capped


@numba.njit(cache=True, nogil=True)
def advance(t_start, t_stop, radius, origin, tables, pos, counting, l):
    """One round of virtual rehashing at ``radius``, over tables t_start .. t_stop - 1.

    For each table, extends the counted buckets to the level-``radius`` bucket of the query
    (left and right of what was counted), counting the entries held in its boundary pages.
    Returns ``(status, t)``: NEED_INIT / NEED_LEFT / NEED_RIGHT when table t needs its pages
    ``request[0] .. request[0] + request[1] - 1`` (indices within the table): read them and
    call :func:`absorb`, then call again from t; CAP_REACHED; ROUND_DONE (t = t_stop).

    ``tables`` is the :data:`Tables` record, ``pos`` the :data:`Position` record (``request``
    among them), ``counting`` the :data:`lshdisk._kernels.counting.Counting` record.
    """
    _, tcount, tdir, dir_first, dir_last = tables
    state, lpages, rpages, qb, request = pos
    for t in range(t_start, t_stop):
        lo, hi = _interval(qb[t], origin, radius)
        d0 = tdir[t]
        npg = tcount[t]
        if state[t, LOADED] == 0:
            ps = _lower_bound(dir_last, d0, d0 + npg, lo) - d0
            pe = _upper_bound(dir_first, d0, d0 + npg, hi) - d0 - 1
            if ps <= pe:
                request[0] = ps
                request[1] = pe - ps + 1
                return NEED_INIT, t
            state[t, STARTED] = 1
            state[t, LO] = lo
            state[t, HI] = hi
            continue
        if lo < state[t, LO]:
            page = lpages[t]
            e0, _ = entry_range(page, lo, state[t, LO] - 1)
            if count_ids(page, e0, state[t, EL], counting, l):
                return CAP_REACHED, t
            state[t, EL] = e0
            pl = state[t, PL]
            if e0 == 0 and pl > 0 and dir_last[d0 + pl - 1] >= lo:
                ps = _lower_bound(dir_last, d0, d0 + pl, lo) - d0
                request[0] = ps
                request[1] = pl - ps
                return NEED_LEFT, t
            state[t, LO] = lo
        if hi > state[t, HI]:
            page = rpages[t]
            _, e1 = entry_range(page, state[t, HI] + 1, hi)
            if count_ids(page, state[t, ER], e1, counting, l):
                return CAP_REACHED, t
            state[t, ER] = e1
            pr = state[t, PR]
            count = page_header(page)[0]
            if e1 == count and pr < npg - 1 and dir_first[d0 + pr + 1] <= hi:
                pe = _upper_bound(dir_first, d0 + pr + 1, d0 + npg, hi) - d0 - 1
                request[0] = pr + 1
                request[1] = pe - pr
                return NEED_RIGHT, t
            state[t, HI] = hi
    return ROUND_DONE, t_stop


@numba.njit(cache=True, nogil=True)
def absorb(kind, t, radius, origin, block, first, pos, counting, l):
    """Count the entries of pages just read for table t (``block``: payloads of its pages
    first .. first + len(block) - 1) whose buckets are new in this round, and make the
    outermost of them the table's boundary page(s). Returns CAP_REACHED if the cap was
    reached, BAD_PAGE if a payload is not a sorted-run data page, else ROUND_DONE."""
    state, lpages, rpages, qb, _ = pos
    lo, hi = _interval(qb[t], origin, radius)
    if kind == NEED_LEFT:
        hi = state[t, LO] - 1
    elif kind == NEED_RIGHT:
        lo = state[t, HI] + 1
    nb = block.shape[0]
    for i in range(nb):
        if block[i, 0] != DATA_PAGE:
            return BAD_PAGE
    first_e0 = 0
    last_e1 = 0
    for i in range(nb):
        e0, e1 = entry_range(block[i], lo, hi)
        if i == 0:
            first_e0 = e0
        if i == nb - 1:
            last_e1 = e1
        if count_ids(block[i], e0, e1, counting, l):
            return CAP_REACHED
    if kind == NEED_INIT or kind == NEED_LEFT:
        copy_row(block[0], lpages[t])
        state[t, PL] = first
        state[t, EL] = first_e0
        state[t, LO] = lo
    if kind == NEED_INIT or kind == NEED_RIGHT:
        copy_row(block[nb - 1], rpages[t])
        state[t, PR] = first + nb - 1
        state[t, ER] = last_e1
        state[t, HI] = hi
    if kind == NEED_INIT:
        state[t, STARTED] = 1
        state[t, LOADED] = 1
    return ROUND_DONE


#: Columns of the run plan of :func:`plan_batch`: table, kind (NEED_*), first page within the
#: table, pages.
RUN_TABLE, RUN_KIND, RUN_FIRST, RUN_PAGES = 0, 1, 2, 3
#: Status of :func:`advance_batch` when the pages it was given are not the ones it needs.
PLAN_MISMATCH = 6


@numba.njit(cache=True, nogil=True)
def plan_batch(t_start, t_stop, budget, radius, origin, tables, pos, runs):
    """The runs of table pages :func:`advance` will ask for over tables t_start .. t_stop - 1
    in this round, in the order it asks, if the cap is not reached meanwhile; at most
    ``budget`` pages.

    Decided from the directory alone: a held left page is left behind (the scan goes on to
    the pages before it) when its first bucket is in the new range, a held right page when
    its last bucket is. Fills ``runs`` (int64 (>= 2 (t_stop - t_start), 4): RUN_TABLE,
    RUN_KIND, RUN_FIRST, RUN_PAGES) and returns (t_end, n_runs): the plan covers tables
    t_start .. t_end - 1 whole (t_end = t_start if the first table alone needs more than
    ``budget`` pages).
    """
    _, tcount, tdir, dir_first, dir_last = tables
    state, qb = pos.state, pos.qb
    n = 0
    pages = 0
    for t in range(t_start, t_stop):
        lo, hi = _interval(qb[t], origin, radius)
        d0 = tdir[t]
        npg = tcount[t]
        n_t = n
        if state[t, LOADED] == 0:
            ps = _lower_bound(dir_last, d0, d0 + npg, lo) - d0
            pe = _upper_bound(dir_first, d0, d0 + npg, hi) - d0 - 1
            if ps <= pe:
                runs[n_t, RUN_TABLE], runs[n_t, RUN_KIND] = t, NEED_INIT
                runs[n_t, RUN_FIRST], runs[n_t, RUN_PAGES] = ps, pe - ps + 1
                n_t += 1
        else:
            if lo < state[t, LO]:
                pl = state[t, PL]
                if dir_first[d0 + pl] >= lo and pl > 0 and dir_last[d0 + pl - 1] >= lo:
                    ps = _lower_bound(dir_last, d0, d0 + pl, lo) - d0
                    runs[n_t, RUN_TABLE], runs[n_t, RUN_KIND] = t, NEED_LEFT
                    runs[n_t, RUN_FIRST], runs[n_t, RUN_PAGES] = ps, pl - ps
                    n_t += 1
            if hi > state[t, HI]:
                pr = state[t, PR]
                if dir_last[d0 + pr] <= hi and pr < npg - 1 and dir_first[d0 + pr + 1] <= hi:
                    pe = _upper_bound(dir_first, d0 + pr + 1, d0 + npg, hi) - d0 - 1
                    runs[n_t, RUN_TABLE], runs[n_t, RUN_KIND] = t, NEED_RIGHT
                    runs[n_t, RUN_FIRST], runs[n_t, RUN_PAGES] = pr + 1, pe - pr
                    n_t += 1
        need = 0
        for r in range(n, n_t):
            need += runs[r, RUN_PAGES]
        if pages + need > budget:
            return t, n
        pages += need
        n = n_t
    return t_stop, n


@numba.njit(cache=True, nogil=True)
def advance_batch(t_start, t_stop, radius, origin, tables, pos, counting, l, runs, n_runs, buf):
    """:func:`advance` over tables t_start .. t_stop - 1 with the pages of the plan of
    :func:`plan_batch` already read, run after run, into the rows of ``buf``; each run is
    given to :func:`absorb` when advance asks for it.

    Returns (status, t, r): ROUND_DONE, CAP_REACHED (not expected: plans are made only where
    the cap cannot be reached), BAD_PAGE (run r is not made of data pages), or PLAN_MISMATCH
    (advance asked for pages other than run r's: a bug).
    """
    request = pos.request
    r = 0
    row = 0
    t = t_start
    while True:
        status, t = advance(t, t_stop, radius, origin, tables, pos, counting, l)
        if status == ROUND_DONE or status == CAP_REACHED:
            return status, t, r
        if (r >= n_runs or runs[r, RUN_TABLE] != t or runs[r, RUN_KIND] != status
                or runs[r, RUN_FIRST] != request[0] or runs[r, RUN_PAGES] != request[1]):
            return PLAN_MISMATCH, t, r
        n = request[1]
        status = absorb(status, t, radius, origin, buf[row:row + n], request[0], pos, counting,
                        l)
        if status != ROUND_DONE:
            return status, t, r
        row += n
        r += 1


@numba.njit(cache=True, nogil=True)
def all_counted(state, key_min, key_max, tcount):
    """True when every table's counted buckets cover all its entries."""
    for t in range(state.shape[0]):
        if tcount[t] == 0:
            continue
        if state[t, STARTED] == 0 or state[t, LO] > key_min[t] or state[t, HI] < key_max[t]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def all_data_pages(block):
    """True if every row of ``block`` (pages, uint8) is a sorted-run data page."""
    for i in range(block.shape[0]):
        if block[i, 0] != DATA_PAGE:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def scan_round(t_start, raw, radius, origin, tables, pos, counting, l, ahead, log, err):
    """One round of C2LSH's virtual rehashing at ``radius`` over tables t_start .. m - 1, the
    pages read in place: the loop of :meth:`lshdisk.c2lsh.C2LSHSearcher.scan_round` (plan the
    runs of a batch of T2-safe tables from the directory, read them, count; one run at a time
    near the cap or for a table larger than the run buffer), every page read through ``raw``
    (a :class:`storage.RawReader`) and logged in ``log`` (a
    :data:`storage.RunLog`) for the caller to count.

    Returns
    -------
    status, t : int
        ROUND_DONE (t = m) or CAP_REACHED; LOG_FULL (count and empty the log, call again from
        t). Errors, with ``err`` (int64 (3,)) = first page, pages and table of the run:
        READ_ERROR (the run was not read whole or failed its checks; nothing of it logged),
        BAD_PAGE (the run's pages are not sorted-run data pages), PLAN_MISMATCH (a bug).
    """
    nums, reached = counting.nums, counting.reached
    qb, req = pos.qb, pos.request
    tfirst = tables.first
    plan, pages, run_buf = ahead
    m = qb.shape[0]
    floor = nums[FLOOR]
    run_pages = run_buf.shape[0]
    t = t_start
    while t < m:
        if log.firsts.shape[0] - log.n[0] < 2 * m + 1:
            return LOG_FULL, t
        g = safe_tables(nums, l, m - t, reached, floor)
        t_end, n_runs = t, 0
        if g:
            t_end, n_runs = plan_batch(t, t + g, run_pages, radius, origin, tables, pos, plan)
        if t_end > t:
            for r in range(n_runs):
                pages[r] = tfirst[plan[r, RUN_TABLE]] + plan[r, RUN_FIRST]
            if n_runs:
                if not read_raw_runs(raw, pages[:n_runs], plan[:n_runs, RUN_PAGES], run_buf):
                    err[0], err[1], err[2] = pages[0], -n_runs, t  # the whole batch
                    return READ_ERROR, t
                for r in range(n_runs):
                    log_run(log, pages[r], plan[r, RUN_PAGES])
            status, t_at, r = advance_batch(t, t_end, radius, origin, tables, pos, counting, l,
                                            plan, n_runs, run_buf)
            if status == PLAN_MISMATCH or status == BAD_PAGE:
                err[0], err[1], err[2] = r, 0, t_at
                return status, t_at
            if status == CAP_REACHED:
                return status, t_at
            t = t_end
            continue
        # One run at a time: advance asks for the pages of table t it needs next.
        while True:
            status, t_at = advance(t, t + 1, radius, origin, tables, pos, counting, l)
            if status == ROUND_DONE or status == CAP_REACHED:
                break
            first, count = req[0], req[1]
            page_no = tfirst[t_at] + first
            if count <= run_pages:
                block = run_buf[:count]
            else:
                block = np.empty((count, run_buf.shape[1]), dtype=np.uint8)
            pages[0] = page_no
            if not read_raw_runs(raw, pages[:1], req[1:2], block):
                err[0], err[1], err[2] = page_no, count, t_at
                return READ_ERROR, t_at
            log_run(log, page_no, count)
            if not all_data_pages(block):
                err[0], err[1], err[2] = page_no, count, t_at
                return BAD_PAGE, t_at
            status = absorb(status, t_at, radius, origin, block, first, pos, counting, l)
            if status == CAP_REACHED:
                break
        if status == CAP_REACHED:
            return status, t_at
        t += 1
    return ROUND_DONE, m
