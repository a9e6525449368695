"""Learned projections in QALSH's trees: the ``pca`` family, and the build and calibration
that ``neoph`` (:mod:`lshdisk.neoph`) shares with it.

Everything but the hash functions is QALSH's (Huang et al., PVLDB 2015, Sections 3-5;
:mod:`lshdisk.qalsh`): one B+-tree of keys per function, query-aware buckets
[h(q) - wR/2, h(q) + wR/2], virtual rehashing over radii u c^j, two-way leaf scans,
collision counting with threshold l, T1/T2. The builder is :class:`qalsh.QALSHBuilder`
and the searcher :class:`qalsh.QALSHSearcher`, used as they are: the builder is handed the
learned map (:mod:`lshdisk.maps`) instead of drawing Gaussian vectors, and the searcher
reads the map from the catalog as it reads QALSH's ``a``.

pca. The learned functions are h_t(o) = a_t . (o - mean): ``mean`` is the training
sample's mean and the a_t are the top m principal directions of the centred sample (PCA,
:func:`lshdisk.learning.pca`), mixed by one random rotation Q of the top-m subspace
(a = (V_m Q)^T, Q orthogonal from the QR factorisation of an m x m standard Gaussian matrix
drawn from ``default_rng([seed, 3])``, the signs of R's diagonal moved into Q). Without the
rotation the first functions would carry most of the variance and the last almost none;
with it every function carries a similar share of it. This follows the idea of learned
projections in the survey of Li et al., "Deep Learning for Approximate Nearest Neighbour
Search: A Survey and Taxonomy" (2021), Section 6.2: t learned functions under collision
counting.

Calibration (:func:`calibrate_buckets`), on the training sample only, after the map is
learned:

1. A calibration base B: ``min(s, CAL_BASE_ROWS)`` sample rows drawn from
   ``default_rng([seed, 5])`` (fewer if the memory limit says so), and Q_c:
   ``min(|B| - 1, CAL_QUERIES)`` of them as queries. Each query's exact ``CAL_K`` = 10
   nearest neighbours in B other than itself (brute force,
   :func:`lshdisk._kernels.bruteforce.topk_sqdist_update`), at distances r_ij; R_i = r_i10.
2. w: the ratios rho = |h_t(o_j) - h_t(q_i)| / r_ij over all (query, neighbour, function)
   triples (duplicates at distance 0 left out); w = 2 quantile(rho, ``share``), so that a
   share ``share`` of true neighbours fall in a bucket of radius R = their distance (QALSH's
   p1 = erf(w / (2 sqrt 2)) plays this role for Gaussian functions, and ``share`` defaults
   to it: 0.827 at c = 2).
3. p1, p2: the measured shares of (neighbour, function) and of (random point, function)
   pairs that collide at bucket half-width w R_i / 2 (``CAL_RANDOM`` = 100 random B rows per
   query). l = ceil(alpha m) with alpha = (eta p1 + p2) / (1 + eta) and
   eta = sqrt(ln(2 / beta) / ln(1 / delta)), QALSH's rule (Section 4) with the measured
   shares in place of the Gaussian ones; clamped to 1 .. m.
4. The radius grid u c^j: u is QALSH's data unit, measured by the same rule on its seeded
   sample of the data (:mod:`lshdisk.scale`), in the data's own distance units, so T1
   (k-th distance <= c R) keeps its meaning.

The calibration's figures (the ratio quantiles, p1, p2, the share of true neighbours and of
random points with >= l collisions at R_i) are kept in the index document's ``training``;
the calibrated w and l in its ``params``. A given ``w`` or ``l`` is kept, not calibrated.

Deviations and limits
---------------------
- No guarantee: the learned functions are not 2-stable, so QALSH's Lemma 1 and Theorem 1 do
  not hold; w and l are fitted to the sample and the search is a heuristic with QALSH's
  machinery. B's neighbours are farther apart than the data's (B is a subset), which makes
  p2, and so l, somewhat larger than on the full data.
- m is at most d (the top-m subspace has m directions): a larger m, the QALSH default for
  c included, is lowered to d at build time.
- Training reads one seeded sample of at most ``train_rows`` rows and at most a third of the
  build's memory, in its own pass before the hashing pass (:func:`lshdisk.build`); the
  build then streams the data as QALSH's does.
"""

import math
import time
from dataclasses import replace

import numpy as np

from ._kernels.bruteforce import topk_sqdist_update
from .learning import pca, training_ids
from .maps import LinearMap, map_from_meta
from .qalsh import QALSHBuilder

__all__ = ["LearnedTreesBuilder", "PCABuilder", "learn_pca", "pca_directions", "random_rotation",
           "calibrate_buckets", "CAL_BASE_ROWS", "CAL_QUERIES", "CAL_K", "CAL_RANDOM"]

#: Largest calibration base (sample rows).
CAL_BASE_ROWS = 50_000
#: Calibration queries (sample rows).
CAL_QUERIES = 300
#: True neighbours per calibration query.
CAL_K = 10
#: Random base rows per calibration query (for p2).
CAL_RANDOM = 100


def random_rotation(m, rng):
    """A random orthogonal (m, m) float64 matrix (QR of a Gaussian matrix, R's diagonal
    signs moved into Q: Haar-distributed)."""
    g = rng.standard_normal((m, m))
    q, r = np.linalg.qr(g)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def learn_pca(sample, m, seed):
    """The pca family's map: a_t . (o - mean) over the rotated top-m principal directions.

    Parameters
    ----------
    sample : ndarray of float32, shape (s, d)
    m : int
        1 .. d.
    seed : int

    Returns
    -------
    hash_map : LinearMap
        ``a`` float32 (m, d) with unit-norm orthogonal rows, ``offset`` float64 (m,) = a mean.
    info : dict
        JSON-ready: the share of the sample's variance in the top-m subspace.
    """
    mean, a, info = pca_directions(sample, m, seed)
    offset = a.astype(np.float64) @ mean
    return LinearMap(a, offset, names={"a": "pca/a", "offset": "pca/offset"}), info


def pca_directions(sample, m, seed):
    """(mean float64 (d,), a float32 (m, d), info): the sample's mean and its top-m
    principal directions mixed by :func:`random_rotation` (``default_rng([seed, 3])``)."""
    mean, values, directions = pca(sample)
    rot = random_rotation(m, np.random.default_rng([int(seed), 3]))
    a = (directions[:, :m] @ rot).T.astype(np.float32)
    total = float(values.sum())
    info = {"variance_share": round(float(values[:m].sum()) / total, 4) if total > 0 else 0.0}
    return mean, a, info


def calibrate_buckets(hash_map, sample, params, seed, memory_bytes):
    """w, l, p1 and p2 of a learned map, measured on the training sample (see the module
    docstring, steps 1-3).

    Parameters
    ----------
    hash_map : LinearMap or MLPMap
    sample : ndarray of float32, shape (s, d)
    params : LearnedTreesParams
        Its ``w`` / ``l`` are kept if given.
    seed : int
    memory_bytes : int
        Bound on the calibration's arrays (the base's keys, 4 m bytes per row).

    Returns
    -------
    w : float
    l : int
    figures : dict
        JSON-ready: ``p1``, ``p2``, ratio quantiles, the shares at >= l, the sizes.

    Raises
    ------
    ValueError
        If the sample has fewer than 2 distinct rows (no distance to calibrate on) and
        ``w`` is not given.
    """
    s = sample.shape[0]
    m = hash_map.m
    rng = np.random.default_rng([int(seed), 5])
    base_rows = int(min(s, CAL_BASE_ROWS, max(CAL_K + 2, memory_bytes // (8 * m + 64))))
    base_ids = np.sort(rng.choice(s, size=base_rows, replace=False))
    base = np.ascontiguousarray(sample[base_ids])
    n_q = int(min(base_rows - 1, CAL_QUERIES))
    q_ids = np.sort(rng.choice(base_rows, size=max(n_q, 1), replace=False))
    k = int(min(CAL_K, base_rows - 1))
    keys = np.empty((base_rows, m), dtype=np.float32)
    hash_map.project_rows(base, keys)
    top_d = np.full((q_ids.size, k + 1), np.inf)
    top_i = np.full((q_ids.size, k + 1), -1, dtype=np.int64)
    topk_sqdist_update(base[q_ids].astype(np.float64), base, 0, top_d, top_i, 512)
    # Drop each query itself (the first of its distance-0 entries with its own id).
    own = top_i == q_ids[:, None]
    keep = np.where(own.any(axis=1)[:, None], ~own, np.arange(k + 1)[None, :] < k)
    nn_i = top_i[keep].reshape(q_ids.size, k)
    nn_r = np.sqrt(top_d[keep].reshape(q_ids.size, k))
    diff = np.abs(keys[nn_i].astype(np.float64) - keys[q_ids][:, None, :])  # (q, k, m)
    valid = nn_r > 0
    if params.w is None:
        if not valid.any():
            raise ValueError("the training sample has fewer than 2 distinct rows: no "
                             "distance to calibrate w on; give w (--w) or more data")
        rho = diff[valid] / nn_r[valid][:, None]
        w = 2.0 * float(np.quantile(rho, params.share))
        if not w > 0:
            w = 2.0 * float(rho.max()) if rho.max() > 0 else 1.0
    else:
        w = float(params.w)
        rho = diff[valid] / nn_r[valid][:, None] if valid.any() else np.zeros(1)
    radius = nn_r[:, -1:]  # R_i: the query's k-th neighbour distance
    half = w * radius / 2.0
    near = (diff <= half[:, :, None]).sum(axis=2)  # (q, k) collisions of true neighbours
    rand = rng.integers(0, base_rows, size=(q_ids.size, CAL_RANDOM))
    far = np.empty(rand.shape, dtype=np.int64)  # collisions of random points, (q, CAL_RANDOM)
    for i in range(0, q_ids.size, 32):  # blocks of queries bound the (block, CAL_RANDOM, m) temporary
        rdiff = np.abs(keys[rand[i:i + 32]] - keys[q_ids[i:i + 32]][:, None, :])
        far[i:i + 32] = (rdiff <= half[i:i + 32, :, None]).sum(axis=2)
    p1 = float(near.mean()) / m
    p2 = float(far.mean()) / m
    if params.l is None:
        eta = math.sqrt(math.log(2.0 / params.beta)) / math.sqrt(math.log(1.0 / params.delta))
        alpha = (eta * p1 + p2) / (1.0 + eta)
        l = int(min(m, max(1, math.ceil(alpha * m))))
    else:
        l = int(params.l)
    figures = {
        "base_rows": base_rows, "queries": int(q_ids.size), "neighbours": k,
        "w": w, "l": l, "share": float(params.share), "p1": round(p1, 6), "p2": round(p2, 6),
        "ratio_quantiles": {str(p): round(float(np.quantile(rho, p)), 6)
                            for p in (0.1, 0.5, 0.9)},
        "neighbours_at_l": round(float((near >= l).mean()), 6),
        "random_at_l": round(float((far >= l).mean()), 6)}
    return w, l, figures


class LearnedTreesBuilder:
    """Trains a map on the sample, calibrates w and l, then builds QALSH's trees with it.

    A family is a subclass naming its learner: ``learn(self, sample)`` returning
    ``(hash_map, info)`` (:mod:`lshdisk.maps`). Everything else is shared.

    Parameters
    ----------
    work_dir : str
    n, d : int
    params : LearnedTreesParams
        m is lowered to d if larger; after :meth:`fit`, :attr:`params` holds the calibrated
        w, l, p1, p2 (the build records those).
    seed : int
        Fixes the training sample, the rotation or network initialisation, the calibration
        draws and the unit sample: the same seed and data give byte-identical files.
    page_size : int
    memory_limit_bytes : int
        Budget: a third for the training sample, then QALSH's sort.
    counter : storage.IOCounter, optional
    unit : float, optional
        A fixed radius unit; None measures it (:mod:`lshdisk.scale`).

    Raises
    ------
    ValueError
        If the budget holds fewer than 2 training rows.
    """

    family = "learned"
    distribution = ""

    def __init__(self, work_dir, *, n, d, params, seed, page_size, memory_limit_bytes,
                 counter=None, unit=None):
        if params.m > d:
            params = replace(params, m=d)
        self.work_dir, self.n, self.d, self.params = work_dir, n, d, params
        self.m = params.m
        self.seed = int(seed)
        self._kw = dict(page_size=page_size, memory_limit_bytes=memory_limit_bytes,
                        counter=counter, unit=unit)
        rows = min(n, params.train_rows, (memory_limit_bytes // 3) // (4 * d))
        if rows < min(n, 2):
            raise ValueError(f"memory_limit_bytes = {memory_limit_bytes} holds {rows} training "
                             f"rows of d = {d}: raise the memory limit")
        self.train_rows = rows
        self._memory = memory_limit_bytes
        self.hash_map = None
        self._training = None
        self._inner = None

    def training_ids(self):
        """Ascending ids of the rows :meth:`fit` needs (:func:`lshdisk.learning.training_ids`)."""
        return training_ids(self.seed, self.n, self.train_rows)

    def learn(self, sample):
        raise NotImplementedError

    def fit(self, sample):
        """Learn the map, calibrate w and l, and make the trees' builder.

        Parameters
        ----------
        sample : ndarray of float32, shape (s, d)
            The rows of :meth:`training_ids`, in that order.
        """
        t0 = time.perf_counter()
        self.hash_map, info = self.learn(sample)
        t1 = time.perf_counter()
        w, l, figures = calibrate_buckets(self.hash_map, sample, self.params, self.seed,
                                          self._memory // 3)
        self.params = replace(self.params, w=w, l=l, p1=figures["p1"], p2=figures["p2"])
        self._training = dict(info, rows=int(sample.shape[0]),
                              learn_seconds=round(t1 - t0, 3),
                              calibrate_seconds=round(time.perf_counter() - t1, 3),
                              calibration=figures)
        self._inner = QALSHBuilder(self.work_dir, n=self.n, d=self.d, params=self.params,
                                   seed=self.seed, hash_map=self.hash_map, **self._kw)

    def adopt(self, doc, arrays):
        """Key with an existing index's map instead of training (a segment of that index,
        :mod:`lshdisk.segments`); its calibrated w and l come with its parameters, its unit
        as ``unit`` at construction.

        Parameters
        ----------
        doc : dict
            The index document (``hash.map`` describes the map, ``training`` is kept).
        arrays : dict of ndarray
            Its catalog arrays.

        Raises
        ------
        CorruptIndexError
            If an array the map names is missing.
        """
        self.hash_map = map_from_meta(doc["hash"].get("map"), doc["hash"]["a"], arrays)
        self._training = doc.get("training")
        self._inner = QALSHBuilder(self.work_dir, n=self.n, d=self.d, params=self.params,
                                   seed=self.seed, hash_map=self.hash_map, **self._kw)

    def observe(self, start, rows):
        """After :meth:`fit`: the unit sample's rows among ``rows`` (QALSH's
        :meth:`~lshdisk.qalsh.QALSHBuilder.observe`)."""
        self._inner.observe(start, rows)

    def hash_doc(self):
        """After :meth:`fit` and :meth:`observe` of every row: ``(doc, arrays)`` of the map,
        as :meth:`adopt` takes them (with :attr:`params`' calibrated w and l)."""
        doc, _ = self._inner.hash_doc()
        doc["hash"] = {"a": self.hash_map.names["a"], "map": self.hash_map.to_meta()}
        doc["training"] = self._training
        return doc, self.arrays()

    def chunk_bytes_per_row(self, itemsize):
        """Bytes of temporaries per data row while a chunk is keyed (QALSH's)."""
        return self.d * itemsize + self.m * 32

    def arrays(self):
        """Catalog arrays: the map's (:mod:`lshdisk.maps`)."""
        return {} if self.hash_map is None else self.hash_map.arrays()

    def add_chunk(self, start, rows, source_ids=None):
        """Key ``rows`` ((c, d)) of slots ``start ..`` by the learned map and queue them for
        the trees (``source_ids``: their source rows, under a partition layout; QALSH's)."""
        if self._inner is None:
            raise RuntimeError(f"{type(self).__name__}.add_chunk before fit")
        self._inner.add_chunk(start, rows, source_ids)

    def finish(self, progress=None):
        """QALSH's trees; the metadata names the map's arrays and holds the training
        figures (JSON-ready)."""
        out = self._inner.finish(progress)
        out["hash"] = {"a": self.hash_map.names["a"], "shape": [self.m, self.d],
                       "dtype": "float32", "map": self.hash_map.to_meta(),
                       "distribution": self.distribution}
        out["training"] = self._training
        return out

    def abort(self):
        if self._inner is not None:
            self._inner.abort()


class PCABuilder(LearnedTreesBuilder):
    """The pca family's builder (see the module docstring)."""

    family = "pca"
    distribution = ("top-m principal directions of a seeded training sample, rotated by a "
                    "random orthogonal m x m matrix; keys of o - mean")

    def learn(self, sample):
        return learn_pca(sample, self.m, self.seed)
