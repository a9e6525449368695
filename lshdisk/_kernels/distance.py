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
