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

import numba
import numpy as np

from storage.sorted_run import DATA_PAGE, entry_range, page_header

from .rows import copy_row

STARTED, LOADED, LO, HI, PL, EL, PR, ER = 0, 1, 2, 3, 4, 5, 6, 7
STATE_FIELDS = 8

ROUND_DONE = 0
NEED_INIT = 1
NEED_LEFT = 2
NEED_RIGHT = 3
CAP_REACHED = 4
BAD_PAGE = 5

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


@numba.njit(cache=True, nogil=True, inline="always")
def _interval(qb, origin, radius):
    """Level-1 buckets [lo, hi] of the level-radius bucket holding qb (virtual rehashing)."""
    lo = origin + ((qb - origin) // radius) * radius
    return lo, lo + (radius - 1)


@numba.njit(cache=True, nogil=True)
def count_ids(page, e0, e1, counts, l, touched, cands, nums):
    """Collision counting over entries e0 .. e1 - 1 of a data page.

    Each id gets one more collision; at exactly ``l`` it is appended to ``cands``. ``nums``
    is int64 ``[n_touched, n_cands, cap]``. Returns True when n_cands reaches cap (the
    remaining entries are left uncounted).
    """
    if e1 <= e0:
        return False
    _, _, id_bits, _, _, _, ids_offset = page_header(page)
    n_touched = nums[0]
    n_cands = nums[1]
    cap = nums[2]
    capped = False
    if id_bits == 16:  # byte-aligned ids: the common case of 32,769 .. 65,536 points
        b = ids_offset + 2 * e0
        for _ in range(e0, e1):
            i = np.int64(page[b]) | (np.int64(page[b + 1]) << 8)
            b += 2
            c = counts[i] + 1
            counts[i] = c
            if c == 1:
                touched[n_touched] = i
                n_touched += 1
            if c == l:
                cands[n_cands] = i
                n_cands += 1
                if n_cands >= cap:
                    capped = True
                    break
    else:
        bit = e0 * id_bits
        byte = ids_offset + (bit >> 3)
        acc = np.uint64(page[byte]) >> np.uint64(bit & 7)
        have = 8 - (bit & 7)
        byte += 1
        mask = (np.uint64(1) << np.uint64(id_bits)) - np.uint64(1)
        for _ in range(e0, e1):
            while have < id_bits:
                acc |= np.uint64(page[byte]) << np.uint64(have)
                have += 8
                byte += 1
            i = np.int64(acc & mask)
            acc >>= np.uint64(id_bits)
            have -= id_bits
            c = counts[i] + 1
            counts[i] = c
            if c == 1:
                touched[n_touched] = i
                n_touched += 1
            if c == l:
                cands[n_cands] = i
                n_cands += 1
                if n_cands >= cap:
                    capped = True
                    break
    nums[0] = n_touched
    nums[1] = n_cands
    return capped


@numba.njit(cache=True, nogil=True)
def advance(t_start, radius, origin, qb, state, lpages, rpages, tdir, tcount, dir_first,
            dir_last, counts, l, touched, cands, nums, request):
    """One round of virtual rehashing at ``radius``, over tables t_start, t_start + 1, ...

    For each table, extends the counted buckets to the level-``radius`` bucket of the query
    (left and right of what was counted), counting the entries held in its boundary pages.
    Returns ``(status, t)``: NEED_INIT / NEED_LEFT / NEED_RIGHT when table t needs its pages
    ``request[0] .. request[0] + request[1] - 1`` (indices within the table): read them and
    call :func:`absorb`, then call again from t; CAP_REACHED; ROUND_DONE (t = m).

    tdir, tcount: int64 (m,), each table's first directory entry and page count; dir_first,
    dir_last: int64, first and last bucket of every data page (by directory entry).
    """
    m = qb.shape[0]
    for t in range(t_start, m):
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
            if count_ids(page, e0, state[t, EL], counts, l, touched, cands, nums):
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
            if count_ids(page, state[t, ER], e1, counts, l, touched, cands, nums):
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
    return ROUND_DONE, m


@numba.njit(cache=True, nogil=True)
def absorb(kind, t, radius, origin, qb, block, first, state, lpages, rpages, counts, l,
           touched, cands, nums):
    """Count the entries of pages just read for table t (``block``: payloads of its pages
    first .. first + len(block) - 1) whose buckets are new in this round, and make the
    outermost of them the table's boundary page(s). Returns CAP_REACHED if the cap was
    reached, BAD_PAGE if a payload is not a sorted-run data page, else ROUND_DONE."""
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
        if count_ids(block[i], e0, e1, counts, l, touched, cands, nums):
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
def reset_counts(counts, touched, n_touched):
    """Zero the collision counts of the ids touched by one query."""
    for j in range(n_touched):
        counts[touched[j]] = 0
