"""The data unit: a length measured from a seeded sample at build time, so that searches do
not depend on the units the data happen to be in.

The papers assume the nearest neighbour of a query lies at distance >= 1 and start their
radii at R = 1 (C2LSH, Gan et al. 2012, Section 3; QALSH, Huang et al. 2015, Section 4). A
fixed grid 1, c, c^2, ... makes the search depend on the data's units: the same data
multiplied by 1.5 meet the grid elsewhere and give other rounds, answers and costs. Here the
build measures a unit u from the data and the radii are u c^j: multiplying the data by any
positive factor multiplies u by the same factor, so the search is the same up to float
rounding.

The unit is u = r_nn / sqrt(c): the typical nearest-neighbour distance r_nn then lies at the
geometric middle of a cell [u c^j, u c^(j+1)] of the radius grid, as far as can be from the
radii where the termination test T1 (k-th distance <= c R) changes its answer. (Rounding
r_nn down to a power of c, as earlier versions did for C2LSH, put u anywhere in
(r_nn / c, r_nn], r_nn / sqrt(c) on geometric average, and depended on the data's units.)

The estimate r_nn (the data's typical nearest-neighbour distance): from a sample of min(n, 1000)
points, ids drawn from the build's seeded generator and rows copied as the chunks stream by,
take the 10th percentile r of each sample point's distance to its nearest other sample point
(exact duplicates skipped) and scale it to the full set's density, r (s / n)^(1 / D), with D
the intrinsic dimension estimated from the sample's 10-NN distances (Levina and Bickel,
NIPS 2004, averaged as MacKay and Ghahramani propose; clamped to [1, d]).
"""

import numpy as np

from ._kernels.c2lsh import sample_knn_sqdist

__all__ = ["SAMPLE_SIZE", "SAMPLE_NEIGHBOURS", "UNIT_PERCENTILE", "UnitSample",
           "data_unit", "draw_sample_ids", "nn_scale"]

#: Points in the unit sample (all of them when n is smaller).
SAMPLE_SIZE = 1000
#: Neighbours per sample point for the intrinsic-dimension estimate.
SAMPLE_NEIGHBOURS = 10
#: Percentile of the sample's nearest-neighbour distances taken as the scale.
UNIT_PERCENTILE = 10


def draw_sample_ids(rng, n):
    """Ascending ids of the unit sample: min(n, SAMPLE_SIZE) of 0 .. n - 1 without
    replacement, from ``rng`` (a ``numpy.random.Generator``). int64 (s,)."""
    return np.sort(rng.choice(n, size=min(n, SAMPLE_SIZE), replace=False)).astype(np.int64)


def nn_scale(sample, n):
    """The data's nearest-neighbour scale, from its sample (see the module docstring).

    Parameters
    ----------
    sample : ndarray of float32, shape (s, d)
    n : int
        Points in the full data set.

    Returns
    -------
    scaled : float or None
        r (s / n)^(1 / D); None where undefined (fewer than 2 distinct sample points).
    info : dict
        JSON-ready: sample size, the percentile, r, D and the scaled distance.
    """
    s, d = sample.shape
    info = {"sample_size": int(s), "nn_percentile": UNIT_PERCENTILE, "nn_distance": None,
            "intrinsic_dim": None, "scaled_distance": None}
    if s < 2:
        return None, info
    k = min(SAMPLE_NEIGHBOURS, s - 1)
    sq = np.empty((s, k), dtype=np.float64)
    sample_knn_sqdist(np.ascontiguousarray(sample, dtype=np.float32), k, sq)
    nn = np.sqrt(sq[:, 0])
    nn = nn[np.isfinite(nn)]
    if nn.size == 0:  # every sample point is the same point
        return None, info
    r = float(np.percentile(nn, UNIT_PERCENTILE))
    full = np.sqrt(sq[np.all(np.isfinite(sq), axis=1)])
    dim = float(d)
    if k >= 2 and full.shape[0]:
        mean_log = float(np.mean(np.log(full[:, -1:] / full[:, :-1])))
        if mean_log > 0:
            dim = min(max(1.0 / mean_log, 1.0), float(d))
    scaled = r * (s / n) ** (1.0 / dim)
    info.update(nn_distance=r, intrinsic_dim=dim, scaled_distance=scaled)
    if not (scaled > 0 and np.isfinite(scaled)):
        return None, info
    return scaled, info


class UnitSample:
    """The rows of the unit sample, copied as the build's chunks stream by.

    Parameters
    ----------
    ids : ndarray of int64, shape (s,)
        Ascending sample ids (:func:`draw_sample_ids`).
    d : int

    Notes
    -----
    Memory: 4 d bytes per sample point, and 8 x SAMPLE_NEIGHBOURS more while estimating.
    """

    def __init__(self, ids, d):
        self.ids = ids
        self.rows = np.zeros((ids.size, d), dtype=np.float32)

    @staticmethod
    def bytes_needed(n, d):
        """Peak bytes of a sample for n points in d dimensions."""
        s = min(n, SAMPLE_SIZE)
        return 4 * s * d + 8 * s * SAMPLE_NEIGHBOURS

    def add_chunk(self, start, rows, source_ids=None):
        """Copy the sample rows among ``rows``: points start .. start + len(rows) - 1, or the
        points ``source_ids`` (int64 (len(rows),), any order) when given."""
        ids = self.ids
        if source_ids is not None:
            pos = np.minimum(np.searchsorted(ids, source_ids), ids.size - 1)
            hit = ids[pos] == source_ids if ids.size else np.zeros(len(rows), dtype=bool)
            self.rows[pos[hit]] = rows[hit]
            return
        i0, i1 = np.searchsorted(ids, [start, start + rows.shape[0]])
        if i1 > i0:
            self.rows[i0:i1] = rows[ids[i0:i1] - start]

    def unit(self, n, c, given=None):
        """(u, info): the data unit r_nn / sqrt(c) for approximation ratio c (1.0 where the
        sample defines no scale) and the estimate's figures (:func:`nn_scale`), or ``given``
        (a positive float) with the figures all the same; frees the rows."""
        scaled, info = nn_scale(self.rows, n)
        self.rows = None
        if given is not None:
            return float(given), dict(info, given=True)
        return data_unit(scaled, c), dict(info, given=False)


def data_unit(scaled, c):
    """u = scaled / sqrt(c), or 1.0 when ``scaled`` is None (see the module docstring)."""
    return 1.0 if scaled is None else float(scaled) / float(c) ** 0.5
