"""Parameter derivation for the LSH schemes, as pure functions of (n, c, delta, beta, w).

QALSH: Huang, Feng, Zhang, Fang, Ng, "Query-Aware Locality-Sensitive Hashing for Approximate
Nearest Neighbor Search", PVLDB 9(1), 2015, Section 4 (Theorem 1 and Eqs. for m, l), with the
defaults of the authors' code: delta = 1/e, beta = 100/n, w = sqrt(8 c^2 ln c / (c^2 - 1)).
"""

import math
from dataclasses import dataclass

__all__ = ["QALSHParams", "qalsh_params", "qalsh_default_w", "gaussian_bucket_prob",
           "DEFAULT_CANDIDATES", "PRESETS", "C2LSHParams", "c2lsh_params",
           "c2lsh_collision_prob", "KMeansParams", "kmeans_params", "KMEANS_DEFAULTS",
           "LearnedTreesParams", "pca_params", "neoph_params", "PCA_DEFAULTS",
           "NEOPH_DEFAULTS"]

#: beta * n: the candidate budget of the reference codes (beta = 100 / n).
DEFAULT_CANDIDATES = 100

#: Named parameter settings per algorithm. "jafari2021": Jafari & Nagarkar, "Experimental
#: analysis of locality sensitive hashing techniques for high-dimensional approximate nearest
#: neighbor searches", 2021: delta = 0.1 and c = 2 for all methods, w = 2.781 for QALSH (and
#: I-LSH, which uses QALSH's hash functions), w = 2.184 for C2LSH.
PRESETS = {
    "jafari2021": {
        "qalsh": {"delta": 0.1, "w": 2.781},
        "ilsh": {"delta": 0.1, "w": 2.781},
        "c2lsh": {"delta": 0.1, "w": 2.184},
    },
}


def gaussian_bucket_prob(half_width):
    """P(|Z| <= half_width) for Z ~ N(0, 1): the collision probability of a query-aware
    bucket of half-width ``half_width`` measured in units of the distance (QALSH, Lemma 1)."""
    return math.erf(half_width / math.sqrt(2.0))


def qalsh_default_w(c):
    """Bucket width minimising m for the Euclidean QALSH: sqrt(8 c^2 ln c / (c^2 - 1))."""
    return math.sqrt(8.0 * c * c * math.log(c) / (c * c - 1.0))


@dataclass(frozen=True, slots=True, kw_only=True)
class QALSHParams:
    """QALSH parameters, given and derived (PVLDB 2015, Section 4).

    Attributes
    ----------
    n : int
        Number of data points.
    c : float
        Approximation ratio, > 1.
    delta : float
        Error probability, in (0, 1/2).
    beta : float
        Share of points allowed as candidates (false-positive budget), in (0, 1).
    w : float
        Bucket width (in units of the search radius).
    p1, p2 : float
        Collision probabilities at distances 1 and c.
    eta, alpha : float
        ``eta = sqrt(ln(2/beta)) / sqrt(ln(1/delta))``, ``alpha = (eta p1 + p2) / (1 + eta)``.
    m : int
        Number of hash functions (B+-trees).
    l : int
        Collision threshold: a point with at least ``l`` collisions is a candidate.
    """

    n: int
    c: float
    delta: float
    beta: float
    w: float
    p1: float
    p2: float
    eta: float
    alpha: float
    m: int
    l: int

    def __post_init__(self):
        _check_common(self.n, self.c, self.delta, self.beta)
        if not 1 <= self.l <= self.m:
            raise ValueError(f"l must be in 1..m={self.m}, got {self.l}")

    def to_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


def _check_common(n, c, delta, beta):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 1.0):
        raise ValueError(f"c (approximation ratio) must be a finite number > 1, got {c!r}")
    if not (isinstance(delta, (int, float)) and 0.0 < delta < 0.5):
        raise ValueError(f"delta (error probability) must be in (0, 0.5), got {delta!r}")
    if not (isinstance(beta, (int, float)) and 0.0 < beta < 1.0):
        raise ValueError(f"beta (false-positive share) must be in (0, 1), got {beta!r}; "
                         f"the default is 100/n")


def _default_beta(n):
    """beta = 100 / n (the reference codes' candidate budget), capped at 0.5 for tiny n."""
    return min(DEFAULT_CANDIDATES / n, 0.5) if isinstance(n, int) and n > 0 else 0.5


def _check_w(w):
    if isinstance(w, bool) or not (isinstance(w, (int, float)) and math.isfinite(w) and w > 0):
        raise ValueError(f"w (bucket width) must be a finite number > 0, got {w!r}")


def qalsh_params(n, *, c=2.0, delta=1.0 / math.e, beta=None, w=None):
    """Derive QALSH's m and l (PVLDB 2015, Section 4, Eq. 6 and 7).

    Parameters
    ----------
    n : int
        Number of data points.
    c : float
        Approximation ratio, > 1.
    delta : float
        Error probability; default 1/e as in the paper and the authors' code.
    beta : float, optional
        Default ``100 / n`` (at most 100 false positives), capped below 1 for tiny n.
    w : float, optional
        Default :func:`qalsh_default_w` (c).

    Returns
    -------
    QALSHParams

    Raises
    ------
    ValueError
        If a value is outside its range (``c <= 1``, ``delta`` not in (0, 0.5), ...).
    """
    if beta is None:
        beta = _default_beta(n)
    _check_common(n, c, delta, beta)
    if w is None:
        w = qalsh_default_w(c)
    _check_w(w)
    p1 = gaussian_bucket_prob(w / 2.0)
    p2 = gaussian_bucket_prob(w / (2.0 * c))
    para1 = math.sqrt(math.log(2.0 / beta))
    para2 = math.sqrt(math.log(1.0 / delta))
    eta = para1 / para2
    alpha = (eta * p1 + p2) / (1.0 + eta)
    m = math.ceil((para1 + para2) ** 2 / (2.0 * (p1 - p2) ** 2))
    l = math.ceil(alpha * m)
    return QALSHParams(n=n, c=float(c), delta=float(delta), beta=float(beta), w=float(w),
                       p1=p1, p2=p2, eta=eta, alpha=alpha, m=m, l=l)


# --------------------------------------------------------------------------------- C2LSH
# Gan, Feng, Fang, Ng, "Locality-Sensitive Hashing Scheme Based on Dynamic Collision
# Counting", SIGMOD 2012, Section 4 (m and l from delta and beta, Eq. for alpha), with the
# defaults of the authors' code: w = 1, delta = 0.01, beta = 100/n.

#: Collision counts are kept as uint16 by the searcher.
_C2LSH_MAX_M = 65535


def c2lsh_collision_prob(s, w):
    """p(s): the probability that two points at distance ``s`` fall in the same bucket of
    ``h(o) = floor((a . o + b) / w)`` (Datar et al. 2004; C2LSH, Section 3):
    ``1 - 2 Phi(-w/s) - 2 / (sqrt(2 pi) w/s) (1 - exp(-(w/s)^2 / 2))``."""
    x = w / s
    phi_neg = 0.5 * math.erfc(x / math.sqrt(2.0))
    return 1.0 - 2.0 * phi_neg - 2.0 / (math.sqrt(2.0 * math.pi) * x) * (1.0 - math.exp(-x * x / 2.0))


def _check_c2lsh_c(c):
    """c as an int >= 2, or ValueError: virtual rehashing merges c consecutive buckets."""
    ok = (isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
          and float(c).is_integer() and c >= 2)
    if not ok:
        raise ValueError(f"c (approximation ratio) must be an integer >= 2 for C2LSH, whose "
                         f"virtual rehashing merges c consecutive buckets into one; got {c!r}")
    return int(c)


@dataclass(frozen=True, slots=True, kw_only=True)
class C2LSHParams:
    """C2LSH parameters, given and derived (SIGMOD 2012, Section 4).

    Attributes
    ----------
    n : int
        Number of data points.
    c : int
        Approximation ratio, an integer >= 2 (virtual rehashing merges c buckets).
    delta : float
        Error probability, in (0, 1/2).
    beta : float
        Share of points allowed as candidates (false-positive budget), in (0, 1).
    w : float
        Bucket width of the base functions (in units of the data unit, see lshdisk.c2lsh).
    p1, p2 : float
        Collision probabilities p(1), p(c) of a base function.
    z, alpha : float
        ``z = sqrt(ln(2/beta) / ln(1/delta))``, ``alpha = (z p1 + p2) / (1 + z)``.
    m : int
        Number of base hash functions (hash tables).
    l : int
        Collision threshold: a point with ``l`` collisions is a candidate.
    """

    n: int
    c: int
    delta: float
    beta: float
    w: float
    p1: float
    p2: float
    z: float
    alpha: float
    m: int
    l: int

    def __post_init__(self):
        _check_c2lsh_c(self.c)
        _check_common(self.n, self.c, self.delta, self.beta)
        _check_w(self.w)
        if not 1 <= self.m <= _C2LSH_MAX_M:
            raise ValueError(f"m must be in 1..{_C2LSH_MAX_M}, got {self.m}")
        if not 1 <= self.l <= self.m:
            raise ValueError(f"l must be in 1..m={self.m}, got {self.l}")

    def to_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


def c2lsh_params(n, *, c=2, delta=0.01, beta=None, w=1.0):
    """Derive C2LSH's m and l (SIGMOD 2012, Section 4).

    ``p1 = p(1)``, ``p2 = p(c)`` (:func:`c2lsh_collision_prob`),
    ``z = sqrt(ln(2/beta) / ln(1/delta))``, ``alpha = (z p1 + p2) / (1 + z)``,
    ``m = ceil(max(ln(1/delta) / (2 (alpha - p1)^2), ln(2/beta) / (2 (alpha - p2)^2)))``,
    ``l = ceil(alpha m)``. On Mnist (n = 60,000, c = 2, defaults): m = 385, l = 113.

    Parameters
    ----------
    n : int
        Number of data points.
    c : int
        Approximation ratio: an integer >= 2 (a float with an integer value is accepted).
    delta : float
        Error probability in (0, 0.5); default 0.01 as in the authors' code.
    beta : float, optional
        Default ``100 / n`` (at most 100 false positives), capped at 0.5 for tiny n.
    w : float
        Bucket width; default 1 as in the authors' code.

    Returns
    -------
    C2LSHParams

    Raises
    ------
    ValueError
        If c is not an integer >= 2, delta not in (0, 0.5), beta not in (0, 1), w not a
        finite number > 0, or n not a positive int.
    """
    c = _check_c2lsh_c(c)
    if beta is None:
        beta = _default_beta(n)
    _check_common(n, c, delta, beta)
    _check_w(w)
    p1 = c2lsh_collision_prob(1.0, w)
    p2 = c2lsh_collision_prob(float(c), w)
    ln_delta = math.log(1.0 / delta)
    ln_beta = math.log(2.0 / beta)
    z = math.sqrt(ln_beta / ln_delta)
    alpha = (z * p1 + p2) / (1.0 + z)
    m = math.ceil(max(ln_delta / (2.0 * (alpha - p1) ** 2), ln_beta / (2.0 * (alpha - p2) ** 2)))
    l = math.ceil(alpha * m)
    return C2LSHParams(n=n, c=c, delta=float(delta), beta=float(beta), w=float(w), p1=p1, p2=p2,
                       z=z, alpha=alpha, m=m, l=l)


# -------------------------------------------------------------------------------- k-means
# Learned partitions as hash functions (lshdisk.kmeans): m subspaces of a PCA rotation, each
# hashed to the nearest of K centroids; a point is a candidate once its centroid is among the
# probed ones in l of the m tables (Li et al., "Deep Learning for Approximate Nearest
# Neighbour Search", survey, Section 6.2, Eq. (39): collision count >= ceil(alpha t)).

#: The defaults: 16 tables of 256 centroids, threshold 4, one probe per table first.
KMEANS_DEFAULTS = {"m": 16, "centroids": 256, "l": 4, "probes": 1, "pool": 1,
                   "train_rows": 200_000, "iterations": 10}
#: Centroid ids are stored in 16 bits of the tables' sort keys.
_KMEANS_MAX_CENTROIDS = 65536


@dataclass(frozen=True, slots=True, kw_only=True)
class KMeansParams:
    """Parameters of the learned-partition family (:mod:`lshdisk.kmeans`).

    Attributes
    ----------
    n : int
        Number of data points.
    m : int
        Hash tables (subspaces of the rotated data), 1 .. 255.
    centroids : int
        Centroids per table (K), 2 .. 65,536.
    l : int
        Collision threshold: a point is a candidate once it lies in a probed cell of l tables.
    beta : float
        Candidate budget share: the default cap is k + beta n (T2), in (0, 1).
    probes : int
        Cells probed per table in the first round (doubled each round).
    pool : int
        1: candidates are verified as they are found. p > 1: the rounds gather up to p times
        the candidate cap, and the cap's worth with the smallest lower bounds of their
        asymmetric distances are verified (:mod:`lshdisk.kmeans`).
    train_rows : int
        Largest training sample (rows; also bounded by the memory limit).
    iterations : int
        Lloyd iterations of each table's k-means.
    """

    n: int
    m: int
    centroids: int
    l: int
    beta: float
    probes: int
    pool: int
    train_rows: int
    iterations: int

    def __post_init__(self):
        for name, lo, hi in (("n", 1, None), ("m", 1, 255),
                             ("centroids", 2, _KMEANS_MAX_CENTROIDS), ("probes", 1, None),
                             ("pool", 1, None),
                             ("train_rows", 1, None), ("iterations", 1, None)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
                bound = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
                raise ValueError(f"{name} must be an int {bound}, got {v!r}")
        if isinstance(self.l, bool) or not isinstance(self.l, int) or not 1 <= self.l <= self.m:
            raise ValueError(f"l must be an int in 1..m={self.m}, got {self.l!r}")
        if not (isinstance(self.beta, (int, float)) and 0.0 < self.beta < 1.0):
            raise ValueError(f"beta (candidate share) must be in (0, 1), got {self.beta!r}")

    def to_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


def kmeans_params(n, *, c=None, beta=None, delta=None, w=None, **options):
    """Parameters of the learned-partition family for n points.

    Parameters
    ----------
    n : int
    c, delta, w : None
        Not used: learned partitions have no approximation ratio, error probability or bucket
        width (accepted so that every method takes the same call; ``delta`` and ``w`` must be
        None).
    beta : float, optional
        Default 100 / n, as the LSH methods (the cap k + beta n is what ``max_candidates``
        overrides).
    **options
        ``m``, ``centroids``, ``l``, ``probes``, ``pool``, ``train_rows``, ``iterations`` (defaults in
        :data:`KMEANS_DEFAULTS`).

    Raises
    ------
    ValueError
        For an unknown option, ``delta`` or ``w`` given, or a value out of range.
    """
    for name, value in (("delta", delta), ("w", w)):
        if value is not None:
            raise ValueError(f"{name} does not apply to the kmeans method (it has no "
                             f"{'error probability' if name == 'delta' else 'bucket width'}); "
                             f"leave it out")
    unknown = sorted(set(options) - set(KMEANS_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown kmeans parameter {unknown[0]!r}: the parameters are "
                         f"{', '.join(KMEANS_DEFAULTS)}")
    values = dict(KMEANS_DEFAULTS, **options)
    if beta is None:
        beta = _default_beta(n)
    return KMeansParams(n=n, beta=float(beta), **values)


# -------------------------------------------------------------- learned maps in QALSH's trees
# The pca and neoph families (lshdisk.learned_trees, lshdisk.neoph): QALSH's trees and search
# keyed by m learned real-valued functions; w and l are calibrated on the training sample in
# the build (the parameters below hold None for them until then, unless given).

#: Options of the pca family (None: derived; see :func:`pca_params`).
PCA_DEFAULTS = {"m": None, "l": None, "share": None, "train_rows": 200_000}
#: Options of the neoph family: those of pca, the hidden width and the training steps.
NEOPH_DEFAULTS = dict(PCA_DEFAULTS, hidden=128, steps=300)


@dataclass(frozen=True, slots=True, kw_only=True)
class LearnedTreesParams:
    """Parameters of a learned map searched as QALSH's projections (``pca``, ``neoph``).

    Attributes
    ----------
    n : int
    c : float
        Ratio of the radius grid u c^j (> 1) and T1's factor.
    delta : float
        Error budget of the threshold rule, in (0, 1/2) (see :mod:`lshdisk.learned_trees`).
    beta : float
        Candidate budget share (T2: k + beta n), in (0, 1).
    m : int
        Functions (trees), 1 .. d.
    w : float or None
        Bucket width in units of R; None until calibrated (or given).
    l : int or None
        Collision threshold; None until calibrated (or given).
    share : float
        Target share of (true 10-NN, function) pairs that collide at R = their distance: the
        calibration's p1, in (0, 1).
    train_rows : int
        Largest training sample.
    hidden : int
        Hidden units of the network (neoph; 0 for pca).
    steps : int
        Training steps of the network (neoph; 0 for pca).
    p1, p2 : float or None
        Measured collision shares of true neighbours and of random points (calibration).
    """

    n: int
    c: float
    delta: float
    beta: float
    m: int
    w: float | None
    l: int | None
    share: float
    train_rows: int
    hidden: int
    steps: int
    p1: float | None = None
    p2: float | None = None

    def __post_init__(self):
        _check_common(self.n, self.c, self.delta, self.beta)
        for name, lo in (("m", 1), ("train_rows", 2), ("hidden", 0), ("steps", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        if self.w is not None:
            _check_w(self.w)
        if self.l is not None and (isinstance(self.l, bool) or not isinstance(self.l, int)
                                   or not 1 <= self.l <= self.m):
            raise ValueError(f"l must be an int in 1..m={self.m}, got {self.l!r}")
        if not (isinstance(self.share, (int, float)) and 0.0 < self.share < 1.0):
            raise ValueError(f"share (target collision share of true neighbours) must be in "
                             f"(0, 1), got {self.share!r}")

    def to_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


def _learned_trees_params(family, defaults, n, c, delta, beta, w, options, **fixed):
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {family} parameter {unknown[0]!r}: the parameters are "
                         f"{', '.join(defaults)}")
    values = dict(defaults, **options, **fixed)
    if beta is None:
        beta = _default_beta(n)
    _check_common(n, c, delta, beta)
    if values["m"] is None:
        values["m"] = qalsh_params(n, c=c, delta=delta, beta=beta).m
    if values["share"] is None:
        values["share"] = gaussian_bucket_prob(qalsh_default_w(c) / 2.0)
    return LearnedTreesParams(n=n, c=float(c), delta=float(delta), beta=float(beta),
                              w=None if w is None else float(w), **values)


def pca_params(n, *, c=2.0, delta=1.0 / math.e, beta=None, w=None, **options):
    """Parameters of the pca family (:mod:`lshdisk.learned_trees`) for n points.

    Parameters
    ----------
    n : int
    c : float
        Radius ratio, > 1 (default 2, as QALSH).
    delta : float
        Default 1/e, as QALSH; used by the threshold rule.
    beta : float, optional
        Default 100 / n.
    w : float, optional
        Bucket width; default: calibrated on the training sample.
    **options
        ``m`` (default QALSH's m for c; lowered to d at build if larger), ``l`` (default
        calibrated), ``share`` (default QALSH's p1 at c: erf(w_c / (2 sqrt 2)), 0.827 at
        c = 2), ``train_rows`` (200,000).

    Raises
    ------
    ValueError
        For an unknown option or a value out of range.
    """
    return _learned_trees_params("pca", PCA_DEFAULTS, n, c, delta, beta, w, options,
                                 hidden=0, steps=0)


def neoph_params(n, *, c=2.0, delta=1.0 / math.e, beta=None, w=None, **options):
    """Parameters of the neoph family (:mod:`lshdisk.neoph`): those of :func:`pca_params`
    and ``hidden`` (units of the hidden layer, default 128) and ``steps`` (training steps,
    default 300).

    Raises
    ------
    ValueError
        For an unknown option or a value out of range.
    """
    return _learned_trees_params("neoph", NEOPH_DEFAULTS, n, c, delta, beta, w, options)
