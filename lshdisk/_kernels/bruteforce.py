"""Exact k-nearest-neighbour kernels: squared Euclidean distances merged into a running top-k.

Used by :func:`lshdisk.groundtruth.compute_groundtruth`, which streams the dataset in blocks and
calls :func:`topk_sqdist_update` once per block. Arrays and scalars in, arrays out; no I/O.
"""

import numba
import numpy as np

__all__ = ["topk_sqdist_update"]

# How many coordinates are summed between two early-abandon tests.
_ABANDON_STRIDE = 8


@numba.njit(cache=True, nogil=True, parallel=True)
def topk_sqdist_update(queries, block, start_row, top_sqdist, top_ids, tile_rows):
    """Merge one block of dataset rows into each query's running top-k, in place.

    Parameters
    ----------
    queries : ndarray of float64, shape (n_queries, d)
        The queries (float32 values widened to float64).
    block : ndarray, shape (rows, d)
        Dataset rows ``start_row .. start_row + rows - 1``, of any storage dtype (uint8, int8,
        uint16, int32, float32); read-only arrays (memory maps) are accepted.
    start_row : int
        Global id of ``block[0]``. Blocks must arrive in increasing row order.
    top_sqdist : ndarray of float64, shape (n_queries, k)
        Squared distances of the best k so far, ascending; ``+inf`` marks an empty slot.
        Updated in place.
    top_ids : ndarray of int64, shape (n_queries, k)
        Their dataset ids; -1 marks an empty slot. Updated in place.
    tile_rows : int
        Rows per cache tile, >= 1: all queries scan one tile before the next is touched, so
        a tile of about 2 MiB is read from memory once instead of once per query.

    Notes
    -----
    Each squared distance is summed in float64 over the coordinates in order (exact for the
    integer dtypes up to 2**53). A row enters a query's list only if strictly closer than the
    current k-th: since ids arrive in increasing order, equal distances keep the smaller id,
    and the list stays sorted by (distance, id). The sum is abandoned once its partial value
    reaches the k-th distance; partial sums of non-negative terms never decrease, so this
    never changes the result. Parallel over queries within a tile: each iteration writes its
    own rows of ``top_sqdist`` and ``top_ids``.
    """
    n_queries, d = queries.shape
    rows = block.shape[0]
    k = top_sqdist.shape[1]
    for tile_start in range(0, rows, tile_rows):
        tile_stop = min(tile_start + tile_rows, rows)
        for qi in numba.prange(n_queries):
            q = queries[qi]
            best = top_sqdist[qi]
            ids = top_ids[qi]
            worst = best[k - 1]
            for r in range(tile_start, tile_stop):
                x = block[r]
                s = 0.0
                for t in range(d):
                    diff = q[t] - np.float64(x[t])
                    s += diff * diff
                    if t % _ABANDON_STRIDE == _ABANDON_STRIDE - 1 and s >= worst:
                        break
                if s < worst:
                    p = k - 1
                    while p > 0 and best[p - 1] > s:
                        best[p] = best[p - 1]
                        ids[p] = ids[p - 1]
                        p -= 1
                    best[p] = s
                    ids[p] = start_row + r
                    worst = best[k - 1]
