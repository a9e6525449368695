"""Training pieces of the learned hash families: the seeded training sample, PCA with a
balanced split of the principal directions into subspaces, and k-means.

The sample is drawn once per build from the build's seed, ``min(n, train_rows)`` rows
without replacement (further bounded by the memory given to it), and copied out of the data
as they stream by in one read pass (:class:`TrainingSample`), before the pass that hashes
them. Everything here is deterministic given the seed and the data.

PCA: the eigenvectors of the sample's covariance (float64), by decreasing eigenvalue.
Subspaces: the d directions are dealt to m subspaces of ``ceil(d / m)`` or ``floor(d / m)``
directions by the eigenvalue allocation of Ge, He, Ke, Sun, "Optimized Product Quantization",
TPAMI 2014, Section 3.2 (each direction, largest first, goes to the non-full subspace whose
product of eigenvalues is smallest), so that every subspace carries a similar share of the
variance and no table dominates. k-means: Lloyd's algorithm from k distinct sample rows,
distances by matrix products in row blocks, an emptied cell re-seeded by splitting the
largest (as faiss does).
"""

import math

import numpy as np

from ._kernels.kmeans import accumulate_cells

__all__ = ["TrainingSample", "training_ids", "pca", "allocate_subspaces", "subspace_rotation",
           "kmeans", "nearest_cells", "chain_order", "TRAIN_BLOCK_ROWS"]

#: Rows per block of the distance products (bounds their temporaries: rows x K float32).
TRAIN_BLOCK_ROWS = 8192


def training_ids(seed, n, rows):
    """Ascending ids of the training sample: ``min(n, rows)`` of 0 .. n - 1 without
    replacement, from ``np.random.default_rng([seed, 1])`` (a stream apart from the hash
    functions'). int64 (s,)."""
    rng = np.random.default_rng([int(seed), 1])
    s = min(int(n), int(rows))
    if s >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(rng.choice(n, size=s, replace=False)).astype(np.int64)


class TrainingSample:
    """The training rows, copied as chunks of the data stream by.

    Parameters
    ----------
    ids : ndarray of int64, shape (s,)
        Ascending ids (:func:`training_ids`).
    d : int

    Notes
    -----
    Memory: 4 d bytes per sample row (float32).
    """

    def __init__(self, ids, d):
        self.ids = ids
        self.rows = np.zeros((ids.size, d), dtype=np.float32)

    @staticmethod
    def bytes_per_row(d):
        return 4 * d

    def add_chunk(self, start, rows):
        """Copy the sample rows among ``rows`` (points start .. start + len(rows) - 1)."""
        ids = self.ids
        i0, i1 = np.searchsorted(ids, [start, start + rows.shape[0]])
        if i1 > i0:
            self.rows[i0:i1] = rows[ids[i0:i1] - start]


def pca(sample):
    """Mean and principal directions of a sample.

    Parameters
    ----------
    sample : ndarray of float32, shape (s, d)

    Returns
    -------
    mean : ndarray of float64, shape (d,)
    eigenvalues : ndarray of float64, shape (d,)
        Variances along the directions, decreasing (clipped at 0).
    directions : ndarray of float64, shape (d, d)
        Column j is the j-th principal direction (unit norm; its sign fixed so that its
        largest-magnitude coordinate is positive, for reproducible files).
    """
    s, d = sample.shape
    mean = sample.mean(axis=0, dtype=np.float64)
    cov = np.zeros((d, d), dtype=np.float64)
    for i in range(0, s, TRAIN_BLOCK_ROWS):
        block = sample[i:i + TRAIN_BLOCK_ROWS].astype(np.float64) - mean
        cov += block.T @ block
    cov /= max(1, s - 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(-values, kind="stable")
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    flip = vectors[np.argmax(np.abs(vectors), axis=0), np.arange(d)] < 0
    vectors[:, flip] *= -1.0
    return mean, values, vectors


def allocate_subspaces(eigenvalues, m):
    """Deal d directions (by decreasing eigenvalue) to m subspaces, balancing the product of
    their eigenvalues (OPQ's eigenvalue allocation, TPAMI 2014, Section 3.2).

    Returns
    -------
    list of list of int
        The directions of each subspace; the first ``d % m`` subspaces hold ``ceil(d / m)``,
        the others ``floor(d / m)``.

    Raises
    ------
    ValueError
        If m > d.
    """
    d = len(eigenvalues)
    if m > d:
        raise ValueError(f"m = {m} tables need at least m dimensions, the data have d = {d}: "
                         f"choose m <= {d}")
    sizes = [d // m + (1 if t < d % m else 0) for t in range(m)]
    groups = [[] for _ in range(m)]
    log_product = [0.0] * m
    floor = 1e-12 * max(float(eigenvalues[0]), 1e-300)
    for j in range(d):
        t = min((t for t in range(m) if len(groups[t]) < sizes[t]),
                key=lambda t: (log_product[t], t))
        groups[t].append(j)
        log_product[t] += math.log(max(float(eigenvalues[j]), floor))
    return groups


def subspace_rotation(directions, groups):
    """The (d, m width) float32 matrix taking a centred point to its m sub-vectors, each
    padded with zeros to ``width = max group size`` (padding changes no distance)."""
    d = directions.shape[0]
    width = max(len(g) for g in groups)
    rot = np.zeros((d, len(groups) * width), dtype=np.float64)
    for t, g in enumerate(groups):
        rot[:, t * width:t * width + len(g)] = directions[:, g]
    return rot.astype(np.float32), width


def nearest_cells(x, centroids, out, sq_norms=None):
    """Index of the nearest centroid of each row, by blocks of matrix products.

    Parameters
    ----------
    x : ndarray of float32, shape (s, w)
    centroids : ndarray of float32, shape (K, w)
    out : ndarray of integer type, shape (s,)
        Receives the cell ids (ties: the smaller id).
    sq_norms : ndarray of float32, shape (K,), optional
        ``(centroids ** 2).sum(1)``, if already known.

    Returns
    -------
    float
        Sum of the squared distances to the nearest centroids (float64).
    """
    if sq_norms is None:
        sq_norms = np.einsum("ij,ij->i", centroids, centroids)
    inertia = 0.0
    ct = np.ascontiguousarray(centroids.T)
    for i in range(0, x.shape[0], TRAIN_BLOCK_ROWS):
        block = x[i:i + TRAIN_BLOCK_ROWS]
        dist = block @ ct
        dist *= -2.0
        dist += sq_norms
        best = np.argmin(dist, axis=1)
        out[i:i + block.shape[0]] = best
        row_sq = np.einsum("ij,ij->i", block, block, dtype=np.float64)
        inertia += float(np.maximum(dist[np.arange(block.shape[0]), best] + row_sq, 0).sum())
    return inertia


def kmeans(x, k, iterations, rng):
    """Lloyd's k-means.

    Parameters
    ----------
    x : ndarray of float32, shape (s, w)
    k : int
        Cells; at most s (fewer distinct rows than k leave duplicate centroids).
    iterations : int
    rng : numpy.random.Generator
        Draws the initial centroids (k distinct rows) and the splits of emptied cells.

    Returns
    -------
    centroids : ndarray of float32, shape (k, w)
    inertia : float
        Sum of squared distances to the nearest centroid after the last assignment.

    Raises
    ------
    ValueError
        If the sample has fewer than k rows.
    """
    s, w = x.shape
    if s < k:
        raise ValueError(f"k-means with {k} cells needs at least {k} training rows, got {s}: "
                         f"lower the centroids parameter or train on more rows")
    centroids = x[np.sort(rng.choice(s, size=k, replace=False))].astype(np.float32)
    labels = np.empty(s, dtype=np.int64)
    sums = np.empty((k, w), dtype=np.float64)
    counts = np.empty(k, dtype=np.int64)
    inertia = math.inf
    for _ in range(iterations):
        inertia = nearest_cells(x, centroids, labels)
        accumulate_cells(x, labels, sums, counts)
        nonempty = counts > 0
        centroids[nonempty] = (sums[nonempty] / counts[nonempty, None]).astype(np.float32)
        for j in np.flatnonzero(~nonempty):  # split the largest cell (faiss's rule)
            big = int(np.argmax(counts))
            noise = rng.standard_normal(w).astype(np.float32) * 1e-3 * (
                float(np.abs(centroids[big]).max()) + 1e-6)
            centroids[j] = centroids[big] + noise
            centroids[big] = centroids[big] - noise
            counts[j] = counts[big] // 2
            counts[big] -= counts[j]
    inertia = nearest_cells(x, centroids, labels)
    return centroids, inertia


def chain_order(centroids):
    """An order of k centroids ((k, w)) in which neighbours in space tend to be neighbours:
    from the centroid nearest their mean, repeatedly the nearest one not taken (a greedy
    chain; O(k^2) time, O(k) memory). int64 (k,)."""
    k = centroids.shape[0]
    c = centroids.astype(np.float64)
    sq = np.einsum("ij,ij->i", c, c)
    taken = np.zeros(k, dtype=bool)
    order = np.empty(k, dtype=np.int64)
    cur = int(np.argmin(((c - c.mean(0)) ** 2).sum(1)))
    for j in range(k):
        order[j] = cur
        taken[cur] = True
        if j + 1 == k:
            break
        d2 = sq - 2.0 * (c @ c[cur]) + sq[cur]
        d2[taken] = np.inf
        cur = int(np.argmin(d2))
    return order
