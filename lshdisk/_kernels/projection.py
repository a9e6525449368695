"""Random-projection kernel: a . o for every hash function and point."""

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, parallel=True)
def project_rows(x, a, out):
    """out[i, j] = sum_k a[j, k] * x[i, k], accumulated in float64, stored float32.

    x: (rows, d) of any storage dtype (read-only allowed); a: float32 (m, d); out: float32 (rows, m).
    Parallel over rows: each iteration writes its own output row.
    """
    rows, d = x.shape
    m = a.shape[0]
    for i in numba.prange(rows):
        for j in range(m):
            s = 0.0
            for k in range(d):
                s += np.float64(a[j, k]) * np.float64(x[i, k])
            out[i, j] = np.float32(s)


@numba.njit(cache=True, nogil=True)
def project_one(q, a, out):
    """out[j] = a[j] . q for one float32 query (d,), accumulated in float64."""
    m, d = a.shape
    for j in range(m):
        s = 0.0
        for k in range(d):
            s += np.float64(a[j, k]) * np.float64(q[k])
        out[j] = s


@numba.njit(cache=True, nogil=True, parallel=True)
def project_rows_offset(x, a, offset, out):
    """out[i, j] = a[j] . x[i] - offset[j], accumulated in float64, stored float32.

    x: (rows, d) of any storage dtype; a: float32 (m, d); offset: float64 (m,) (a . mean for
    centred projections); out: float32 (rows, m). Parallel over rows.
    """
    rows, d = x.shape
    m = a.shape[0]
    for i in numba.prange(rows):
        for j in range(m):
            s = -offset[j]
            for k in range(d):
                s += np.float64(a[j, k]) * np.float64(x[i, k])
            out[i, j] = np.float32(s)


@numba.njit(cache=True, nogil=True)
def project_one_offset(q, a, offset, out):
    """out[j] = a[j] . q - offset[j] for one query (d,), accumulated in float64."""
    m, d = a.shape
    for j in range(m):
        s = -offset[j]
        for k in range(d):
            s += np.float64(a[j, k]) * np.float64(q[k])
        out[j] = s
