"""Forward pass of the order-preserving network (lshdisk.neoph), from its stored weights.

f(x) = P z + W2 relu(W1 z + b1) + b2, z = (x - mean) / scale: a linear path (initialised
to the centred PCA projection) plus one hidden ReLU layer. Accumulated in float64 so that
the codes do not depend on thread counts or BLAS builds (same seed, same files).
"""

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def _forward(x_row, mean, scale, p, w1, b1, w2, b2, z, h, out_row):
    d = mean.shape[0]
    for k in range(d):
        z[k] = (np.float64(x_row[k]) - mean[k]) / scale
    hidden = w1.shape[0]
    for u in range(hidden):
        s = np.float64(b1[u])
        for k in range(d):
            s += np.float64(w1[u, k]) * z[k]
        h[u] = s if s > 0.0 else 0.0
    t_out = p.shape[0]
    for j in range(t_out):
        s = np.float64(b2[j])
        for k in range(d):
            s += np.float64(p[j, k]) * z[k]
        for u in range(hidden):
            s += np.float64(w2[j, u]) * h[u]
        out_row[j] = s


@numba.njit(cache=True, nogil=True, parallel=True)
def mlp_rows(x, mean, scale, p, w1, b1, w2, b2, out):
    """Codes of data rows.

    x: (rows, d) any storage dtype (read-only allowed); mean: float64 (d,); scale: float;
    p: float32 (t, d); w1: float32 (h, d); b1: float32 (h,); w2: float32 (t, h);
    b2: float32 (t,); out: float32 (rows, t). Parallel over rows (each writes its own row).
    """
    rows, d = x.shape
    t_out = p.shape[0]
    hidden = w1.shape[0]
    for i in numba.prange(rows):
        z = np.empty(d, dtype=np.float64)
        h = np.empty(max(hidden, 1), dtype=np.float64)
        row = np.empty(t_out, dtype=np.float64)
        _forward(x[i], mean, scale, p, w1, b1, w2, b2, z, h, row)
        for j in range(t_out):
            out[i, j] = np.float32(row[j])


@numba.njit(cache=True, nogil=True)
def mlp_one(q, mean, scale, p, w1, b1, w2, b2, out):
    """Codes of one query (d,) into out (float64 (t,)), as :func:`mlp_rows` computes a row
    (the same float64 sums, not rounded to float32)."""
    d = mean.shape[0]
    z = np.empty(d, dtype=np.float64)
    h = np.empty(max(w1.shape[0], 1), dtype=np.float64)
    _forward(q, mean, scale, p, w1, b1, w2, b2, z, h, out)
