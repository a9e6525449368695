"""Learned termination: a per-query candidate cap predicted after a warm-up.

Follows Li, Zhang, Andersen and He, "Improving Approximate Nearest Neighbor Search through
Learned Adaptive Early Termination", SIGMOD 2020 (Sections 4 and 5): search each query until
a warm-up point, compute features of what the search has seen so far, predict with gradient
boosted trees how much more search the query needs to reach a recall target, and let it go
on exactly that far. Training runs each training query once without early termination and
labels it with the least search reaching the target; a multiplier per target, tuned on
held-out queries, turns the predicted amount into the one the search uses (the paper's
"multiplier" of its prediction, Section 5.2).

Here the amount of search is the number of verified candidates (the cap T2 enforces inside
the scans), set by :meth:`LearnedBudget.cap_after` at the warm-up view: the last round at
whose end fewer than k candidates are verified (so the cap stops the scans of the round in
which the candidates arrive), or round 0 if k arrive at once. A capped search verifies a
prefix of the candidates an uncapped one verifies, in the same order, so one permissive run
per training query gives the recall of every cap offline (:func:`collect`).

Deviations from the paper:

- The paper's quantity is the number of distance evaluations of a graph or IVF search, and its
  warm-up a fixed amount of search; here it is LSH candidates, and the warm-up the last round
  before k candidates are verified (candidates arrive only in the last one to three rounds of
  a query, mostly in one batch: a warm-up after them would leave nothing to save, and a fixed
  number of rounds would be no warm-up for some queries and all of the search for others).
  Online this is a prediction after every round with fewer than k verified candidates; the
  last one holds for the round in which they arrive.
- Features: the paper uses the query vector and distances to the 1st / 10th / k-th neighbour
  found so far, and their ratios. Here they are scale-free figures of the warm-up view
  (:data:`FEATURES`), all in :class:`lshdisk.search.RoundView`: the k-th verified distance
  and the round's radius over the index's data unit u (logarithms), candidates verified, the
  round index, and the pages read and index entries taken so far (``log1p``). The distance
  to the nearest candidate and the counts of ids at l - 1 and l - 2 collisions are left out:
  they are not in the view, the counts cost an O(n) scan of the collision counts, and on
  Mnist (QALSH, k = 10, from the traces) adding the three changed the validation
  candidates at the tuned multipliers by under 1 %.
- One model per recall target, predicting log2 of the candidates needed; the multiplier m is
  the smallest (by bisection) for which the mean recall of the validation queries with the
  cap ceil(m 2^prediction) reaches the target (the paper tunes it for the mean too).
- The cap is clamped to [k, cap limit] (at least the candidates already verified when the
  warm-up is round 0). The cap limit is T2 (k + beta n) by default, so a learned search
  never verifies more than the papers' own budget; a larger limit can be tuned where T2
  does not reach a target (``cap_limit``, at most the permissive run's cap). The k-th
  distance, unknown at a warm-up with fewer than k candidates, is the feature value
  :data:`UNKNOWN`.
- With indexed points as training queries (:func:`lshdisk.tune.tune`'s sample) the point
  itself is among its candidates (it counts as no hit) and in the features (a verified
  candidate at distance 0), unlike a held-out query.
- The trees are stored as plain numeric arrays in the index catalog and evaluated in numpy
  (:func:`predict`); scikit-learn is needed only to train (``pip install lshdisk[learn]``).
  Per target: one float64 array of shape (nodes, 7), the columns :data:`NODE_COLUMNS` of
  scikit-learn's TreePredictor nodes (a 2-D array rather than a structured dtype, which the
  catalog does not store; node indices and flags are exact in float64), the int64 tree
  offsets, and baseline and multiplier in the ``"termination"`` JSON document.
"""

import math
from dataclasses import dataclass

import numpy as np

from ._kernels.forest import predict_one

from .learned_start import StartModel, fit_start, start_labels
from .termination import CandidateBudget, paper_cap

__all__ = ["FEATURES", "TrainingSet", "TerminationModel", "LearnedBudget", "collect", "train",
           "labels", "prefix_recalls", "predict", "export_trees", "require_sklearn",
           "view_features", "MODEL_FORMAT", "MODEL_VERSION", "MODEL_DOC"]

#: The catalog's JSON document of a model, and the prefix of its arrays.
MODEL_DOC = "termination"
MODEL_FORMAT = "lshdisk-termination"
MODEL_VERSION = (1, 1)  # 1.1: the optional "start" entry (lshdisk.learned_start)

#: Features of a warm-up view, in this order (u: the index's data unit).
FEATURES = ("log_dk_over_u", "log_radius_over_u", "verified", "round", "log1p_page_reads",
            "log1p_entries")

#: Columns of a stored tree-node array (float64; sklearn's TreePredictor node fields).
NODE_COLUMNS = ("value", "feature_idx", "num_threshold", "left", "right", "is_leaf",
                "missing_go_to_left")
_V, _F, _T, _L, _R, _LEAF, _MISS = range(len(NODE_COLUMNS))

#: The value of a log-distance feature where the distance is unknown (+inf: fewer than k
#: verified). A number far outside real values, not NaN: scikit-learn refuses a feature that
#: is missing for every training query, as the k-th distance is when every warm-up has < k.
UNKNOWN = 1000.0

_EPS = 1e-9  # recall values are multiples of 1 / k
_TINY = 1e-9  # floor of distance / u before the logarithm (duplicate points: distance 0)
_M_LOW, _M_HIGH = 2.0 ** -10, 2.0 ** 12  # range of the multiplier's bisection


def _log_ratio(x, u):
    """log(x / u); :data:`UNKNOWN` for +inf (no k-th distance yet)."""
    x = float(x)
    if math.isinf(x):
        return UNKNOWN
    return math.log(max(x / u, _TINY))


def view_features(view, u):
    """Features of a round view (:data:`FEATURES`).

    Parameters
    ----------
    view : lshdisk.search.RoundView or a trace row (numpy record of TRACE_DTYPE)
    u : float
        The index's data unit (``index.data_unit``).

    Returns
    -------
    ndarray of float64, shape (len(FEATURES),)
    """
    if hasattr(view, "kth_distance"):
        dk, radius, verified, rnd = view.kth_distance, view.radius, view.n_verified, view.round
        pages, entries = view.page_reads, view.entries
    else:
        dk, radius, verified, rnd = view["dk"], view["radius"], view["verified"], view["round"]
        pages, entries = view["page_reads"], view["entries"]
    return np.array([_log_ratio(dk, u), _log_ratio(radius, u), float(verified), float(rnd),
                     math.log1p(float(pages)), math.log1p(float(entries))], dtype=np.float64)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingSet:
    """What :func:`collect` measured: one permissive run per training query.

    Attributes
    ----------
    k : int
    cap_limit : int
        The largest cap a learned search uses (default T2 of the index, k + beta n).
    features : ndarray of float64, shape (n_queries, len(FEATURES))
        Of each query's warm-up view.
    floor : ndarray of int64, shape (n_queries,)
        The least cap a learned search can have: k, or the candidates verified at the
        warm-up view if it has k or more.
    recalls : list of ndarray of float64, shape (c_i + 1,)
        recall@k of each candidate prefix (entry j: the first j candidates).
    pages : list of ndarray of int64, shape (rounds_i,)
        Pages read by the end of each round of the permissive run (for reports).
    start : tuple or None
        For a learned start radius (:mod:`lshdisk.learned_start`), where the searcher has
        start features: ``(features names, x float64 (n_queries, F), labels, first, c)``,
        labels and first from :func:`lshdisk.learned_start.start_labels`; None otherwise.
    """

    k: int
    cap_limit: int
    features: np.ndarray
    floor: np.ndarray
    recalls: list
    pages: list
    start: tuple | None = None

    def recall_at(self, caps):
        """Per-query recall@k of a learned search with the per-query caps ``caps`` (clamped
        as the search clamps them: to [floor, cap_limit], and the run's own length)."""
        caps = np.clip(np.asarray(caps, dtype=np.float64), self.floor, self.cap_limit)
        return np.array([rec[int(min(c, rec.size - 1))] for c, rec in zip(caps, self.recalls)])


def _warm_up_row(verified, k):
    """The round whose view sets a learned search's cap (see :class:`LearnedBudget`): the
    last round before k candidates are verified; round 0 if it already has k; the last
    round if the search never verifies k (no cap is ever set from it then)."""
    reached = np.flatnonzero(np.asarray(verified) >= k)
    if reached.size == 0:
        return len(verified) - 1
    return max(int(reached[0]) - 1, 0)


def prefix_recalls(dists, kth, k):
    """recall@k of each prefix of the candidates (distances in verification order): the
    tie rule of :func:`lshdisk.evaluate.recall_at_k`."""
    hits = np.zeros(len(dists) + 1, dtype=np.int64)
    hits[1:] = np.cumsum(np.asarray(dists, dtype=np.float64) <= kth * (1.0 + 1e-6) + 1e-12)
    return np.minimum(hits, k) / k


def collect(index, queries, gt_D, k, *, gt_I=None, exclude_self=None, cap_factor=100,
            cap_limit=None, threads=None, progress=None):
    """Run each training query once without early termination and record what a learned
    search needs: the warm-up view's features and the recall of every candidate prefix.

    Parameters
    ----------
    index : lshdisk.Index
    queries : ndarray of float32, shape (n_queries, d)
    gt_D : ndarray of float, shape (n_queries, >= k) (>= k + 1 with ``exclude_self``)
        Exact neighbour distances, ascending.
    k : int
    gt_I : ndarray of int64, shape like ``gt_D``, optional
        Exact neighbour ids; needed with ``exclude_self``.
    exclude_self : ndarray of int64, shape (n_queries,), optional
        When the training queries are indexed points: their ids. The id is no hit among the
        query's candidates and is dropped from its ground truth.
    cap_factor : int
        The permissive run's cap is ``cap_factor * (k + beta n)``, at most n (the brief of
        the paper: no early termination; 100 by default).
    cap_limit : int, optional
        The largest cap the learned search will use: T2 (default) or up to the permissive
        run's cap.
    threads : int or None
        As for :meth:`lshdisk.Index.search`.
    progress : callable, optional
        ``progress(queries_done, n_queries)``, as for :meth:`lshdisk.Index.search`.

    Returns
    -------
    TrainingSet

    Raises
    ------
    ValueError
        If the ground truth has too few rows or columns, ``exclude_self`` comes without
        ``gt_I``, or ``cap_limit`` is out of range.

    Notes
    -----
    Disk access: one search per query with ``termination="budget"`` and the permissive cap;
    where the method has start features, the reads of each query's search start (QALSH: the
    trees' descents; C2LSH: the directory) once more.
    """
    queries = np.asarray(queries, dtype=np.float32)
    gt_D = np.asarray(gt_D, dtype=np.float64)
    nq = queries.shape[0]
    need = k + (exclude_self is not None)
    if gt_D.ndim != 2 or gt_D.shape[0] != nq or gt_D.shape[1] < need:
        raise ValueError(f"gt_D must have shape ({nq}, >= {need}), got {gt_D.shape}")
    if exclude_self is not None and gt_I is None:
        raise ValueError("exclude_self needs gt_I, the ground truth's ids")
    n, beta = index.n, index.params.beta
    t2 = paper_cap(k, n, beta)
    cap = int(min(n, cap_factor * t2))
    limit = min(t2, n) if cap_limit is None else int(cap_limit)
    if not k <= limit <= max(cap, k):
        raise ValueError(f"cap_limit must be in [k = {k}, {max(cap, k)}] (the permissive "
                         f"run's cap), got {cap_limit}")
    _, _, traces, found = index.search(queries, k, termination="budget",
                                       max_candidates=max(cap, k), trace=True,
                                       return_candidates=True, threads=threads,
                                       progress=progress)
    u = index.data_unit
    features = np.zeros((nq, len(FEATURES)), dtype=np.float64)
    floor = np.zeros(nq, dtype=np.int64)
    recalls, pages = [], []
    for i in range(nq):
        trace, (ids, dists) = traces[i], found[i]
        dists = dists.astype(np.float64)
        if exclude_self is not None:
            own = int(exclude_self[i])
            dists = np.where(ids == own, np.inf, dists)
            row = gt_D[i][np.asarray(gt_I[i]) != own]
            kth = row[k - 1]
        else:
            kth = gt_D[i, k - 1]
        row = trace[_warm_up_row(trace["verified"], k)]
        features[i] = view_features(row, u)
        floor[i] = max(k, int(row["verified"]))
        recalls.append(prefix_recalls(dists, kth, k))
        pages.append(trace["page_reads"].astype(np.int64))
    start = None
    names = index.start_feature_names
    if names:
        labels_, first = start_labels(traces, found, index.params.c, u, exclude_self=exclude_self)
        start = (names, index.start_features(queries), labels_, first, float(index.params.c))
    return TrainingSet(k=k, cap_limit=limit, features=features, floor=floor, recalls=recalls,
                       pages=pages, start=start)


def labels(recalls, target):
    """Per query, the least candidates whose prefix reaches recall@k >= ``target``.

    Parameters
    ----------
    recalls : sequence of ndarray of float, shape (c_i + 1,)
        recall@k of each prefix (entry j: the first j candidates).
    target : float

    Returns
    -------
    counts : ndarray of int64, shape (n_queries,)
        The least count, or c_i (every candidate) where the target is never reached.
    reached : ndarray of bool, shape (n_queries,)
    """
    counts = np.zeros(len(recalls), dtype=np.int64)
    reached = np.zeros(len(recalls), dtype=bool)
    for i, rec in enumerate(recalls):
        hit = np.flatnonzero(np.asarray(rec) >= target - _EPS)
        reached[i] = hit.size > 0
        counts[i] = hit[0] if hit.size else len(rec) - 1
    return counts, reached


def export_trees(model):
    """The fitted trees of a scikit-learn ``HistGradientBoostingRegressor`` as plain arrays.

    Returns
    -------
    nodes : ndarray of float64, shape (n_nodes, len(NODE_COLUMNS))
        Every tree's nodes, concatenated (children indices are within the tree).
    offsets : ndarray of int64, shape (n_trees + 1,)
        Tree t is ``nodes[offsets[t]:offsets[t + 1]]``.
    baseline : float

    Raises
    ------
    ValueError
        If the model has categorical splits or more than one output.
    """
    trees = []
    for per_iteration in model._predictors:
        if len(per_iteration) != 1:
            raise ValueError("only single-output regressors can be exported")
        raw = per_iteration[0].nodes
        if "is_categorical" in raw.dtype.names and raw["is_categorical"].any():
            raise ValueError("categorical splits cannot be exported")
        trees.append(np.stack([raw[name].astype(np.float64) for name in NODE_COLUMNS], axis=1))
    offsets = np.zeros(len(trees) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([t.shape[0] for t in trees])
    nodes = np.concatenate(trees) if trees else np.zeros((0, len(NODE_COLUMNS)))
    baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
    return nodes, offsets, baseline


def predict(nodes, offsets, baseline, x):
    """Evaluate exported trees: ``baseline`` plus the leaf value of every tree.

    Parameters
    ----------
    nodes, offsets, baseline : as returned by :func:`export_trees`
    x : ndarray of float, shape (n_samples, n_features) or (n_features,)

    Returns
    -------
    ndarray of float64, shape (n_samples,) (a float for a 1-D ``x``)

    Notes
    -----
    The split rule of scikit-learn's TreePredictor: a NaN goes to the side
    ``missing_go_to_left`` names, else ``x <= num_threshold`` goes left.
    """
    x = np.asarray(x, dtype=np.float64)
    single = x.ndim == 1
    x = np.atleast_2d(x)
    rows = np.arange(x.shape[0])
    out = np.full(x.shape[0], baseline, dtype=np.float64)
    for t in range(offsets.shape[0] - 1):
        tree = nodes[offsets[t]:offsets[t + 1]]
        at = np.zeros(x.shape[0], dtype=np.int64)
        while True:
            node = tree[at]
            inner = node[:, _LEAF] == 0
            if not inner.any():
                break
            xv = x[rows, node[:, _F].astype(np.int64)]
            left = np.where(np.isnan(xv), node[:, _MISS] != 0, xv <= node[:, _T])
            step = np.where(left, node[:, _L], node[:, _R]).astype(np.int64)
            at = np.where(inner, step, at)
        out += node[:, _V]
    return float(out[0]) if single else out


@dataclass(frozen=True, slots=True, kw_only=True)
class _TargetModel:
    nodes: np.ndarray
    offsets: np.ndarray
    baseline: float
    multiplier: float

    def cap(self, x):
        """The cap ceil(multiplier 2^prediction) of features x (1-D), the trees evaluated by a
        compiled kernel (:func:`lshdisk._kernels.forest.predict_one`, which gives
        :func:`predict`'s values)."""
        pred = predict_one(self.nodes, self.offsets, self.baseline, x)
        return int(min(math.ceil(self.multiplier * 2.0 ** min(pred, 62.0)), 2 ** 62))


class TerminationModel:
    """A tuned learned-termination model of one index: one tree ensemble and multiplier per
    recall target, for one k.

    Attributes
    ----------
    k : int
    cap_limit : int
        The largest cap it sets (the candidate cap of its searches).
    targets : tuple of float
    figures : dict
        Training figures (JSON-ready), by target string.
    sklearn : str
        The scikit-learn version that trained it.
    start : lshdisk.learned_start.StartModel or None
        The learned start radius, where the method has one.
    """

    def __init__(self, *, k, cap_limit, per_target, figures, sklearn_version, start=None):
        self.start = start
        self.k = int(k)
        self.cap_limit = int(cap_limit)
        self._per_target = dict(per_target)
        self.targets = tuple(sorted(self._per_target))
        self.figures = figures
        self.sklearn = sklearn_version

    def target_model(self, target):
        return self._per_target[target]

    def check(self, k, target):
        """Refuse a k or target this model was not tuned for (ValueError, one line)."""
        tuned = ", ".join(f"{t:g}" for t in self.targets)
        if k != self.k:
            raise ValueError(f"the index's termination model was tuned for k = {self.k}, got "
                             f"k = {k}: run 'lshdisk tune INDEX -k {k}' first")
        if target not in self._per_target:
            raise ValueError(f"recall_target {target:g} is not tuned (tuned: {tuned}): run "
                             f"'lshdisk tune INDEX --recall {target:g}' first")

    @staticmethod
    def _name(target):
        return f"{MODEL_DOC}/r{target:g}"

    def to_catalog(self):
        """(documents, arrays): what :meth:`storage.catalog.Catalog.put_many` stores."""
        arrays, per = {}, []
        for t in self.targets:
            tm = self._per_target[t]
            arrays[self._name(t) + "/nodes"] = tm.nodes.astype("<f8")
            arrays[self._name(t) + "/offsets"] = tm.offsets.astype("<i8")
            per.append({"target": t, "baseline": tm.baseline, "multiplier": tm.multiplier,
                        "arrays": self._name(t)})
        doc = {"format": MODEL_FORMAT, "version": list(MODEL_VERSION), "k": self.k,
               "cap_limit": self.cap_limit,
               "targets": list(self.targets), "features": list(FEATURES),
               "node_columns": list(NODE_COLUMNS), "models": per, "figures": self.figures,
               "sklearn": self.sklearn}
        if self.start is not None:
            doc["start"], start_arrays = self.start.to_catalog()
            arrays.update(start_arrays)
        return {MODEL_DOC: doc}, arrays

    @classmethod
    def from_catalog(cls, doc, get_array, *, path=""):
        """Read a model stored by :meth:`to_catalog`.

        Raises
        ------
        UnsupportedIndexVersionError
            For another format or an unknown major version.
        CorruptIndexError
            If the document or its arrays are malformed.
        """
        from .errors import CorruptIndexError, UnsupportedIndexVersionError
        if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
            raise UnsupportedIndexVersionError(
                f"{path}: the catalog's {MODEL_DOC!r} document is not an {MODEL_FORMAT} model: "
                f"rerun 'lshdisk tune'")
        version = doc.get("version")
        if not isinstance(version, list) or not version or version[0] != MODEL_VERSION[0]:
            raise UnsupportedIndexVersionError(f"{path}: termination model version {version} is "
                                               f"not supported (this lshdisk reads "
                                               f"{MODEL_VERSION[0]}.x): rerun 'lshdisk tune'")
        try:
            if list(doc["features"]) != list(FEATURES) or \
                    list(doc["node_columns"]) != list(NODE_COLUMNS):
                raise ValueError("features or node columns differ from this lshdisk's")
            per = {}
            for m in doc["models"]:
                nodes = get_array(m["arrays"] + "/nodes")
                offsets = get_array(m["arrays"] + "/offsets")
                if nodes.ndim != 2 or nodes.shape[1] != len(NODE_COLUMNS) or offsets.ndim != 1 \
                        or offsets[-1] != nodes.shape[0]:
                    raise ValueError("tree arrays of the wrong shape")
                per[float(m["target"])] = _TargetModel(nodes=nodes, offsets=offsets,
                                                       baseline=float(m["baseline"]),
                                                       multiplier=float(m["multiplier"]))
            start = doc.get("start")
            if start is not None:
                start = StartModel.from_catalog(start, get_array)
            return cls(k=int(doc["k"]), cap_limit=int(doc["cap_limit"]), per_target=per,
                       figures=doc.get("figures", {}),
                       sklearn_version=str(doc.get("sklearn", "")), start=start)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CorruptIndexError(f"{path}: the termination model is damaged ({exc}): rerun "
                                    f"'lshdisk tune' (it replaces the model)") from exc


class LearnedBudget(CandidateBudget):
    """A termination policy: the model's cap limit (T2 unless tuned otherwise) until the
    warm-up, then the cap the model predicts for ``target``, at least k. Otherwise as
    :class:`lshdisk.termination.CandidateBudget` (no other stop).

    After every round with fewer than k verified candidates it sets the cap for the next
    round from that round's view (the last such view's cap is the one the round in which the
    candidates arrive stops at); if round 0 already verifies k, from round 0's view (at least
    the candidates found). Stateless (one object serves every query and thread): it decides
    from the view alone (``view.k_round``).

    Parameters
    ----------
    model : TerminationModel
    target : float
        A tuned recall target.
    u : float
        The index's data unit.
    """

    name = "learned"
    __slots__ = ("model", "target", "u", "_tm")

    def __init__(self, model, target, u):
        self.model, self.target, self.u = model, target, float(u)
        self._tm = model.target_model(target)

    def candidate_cap(self, k, n, beta):
        return min(self.model.cap_limit, n)

    def cap_after(self, view):
        if view.n_verified < view.k:  # the last such view's cap holds for the next round
            return max(self._tm.cap(view_features(view, self.u)), view.k)
        if view.round == view.k_round == 0:  # k candidates in the first round: cap from here
            return max(self._tm.cap(view_features(view, self.u)), view.n_candidates)
        return None

    def __repr__(self):
        return f"LearnedBudget(target={self.target:g})"


def _multiplier(data, pred, target):
    """The least m (bisection on log m) with mean recall of caps ceil(m 2^pred) >= target;
    the upper end of the range if none reaches it."""
    def mean_recall(m):
        return float(np.mean(data.recall_at(np.ceil(m * np.exp2(pred)))))

    lo, hi = math.log2(_M_LOW), math.log2(_M_HIGH)
    if mean_recall(2.0 ** lo) >= target - _EPS:
        return 2.0 ** lo
    if mean_recall(2.0 ** hi) < target - _EPS:
        return 2.0 ** hi
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if mean_recall(2.0 ** mid) >= target - _EPS:
            hi = mid
        else:
            lo = mid
    return 2.0 ** hi


def _subset(data, idx):
    """The queries ``idx`` of ``data`` (without the start data, which fit_start splits)."""
    return TrainingSet(k=data.k, cap_limit=data.cap_limit, features=data.features[idx],
                       floor=data.floor[idx], recalls=[data.recalls[i] for i in idx],
                       pages=[data.pages[i] for i in idx])


def _best_fixed_cap(data, target):
    """The least single cap (the cap limit at most) whose mean recall reaches target (None if none),
    with that mean recall and mean candidates."""
    longest = max(rec.size - 1 for rec in data.recalls)
    for cap in range(data.k, min(longest, data.cap_limit) + 1):
        rec = [r[min(cap, r.size - 1)] for r in data.recalls]
        if np.mean(rec) >= target - _EPS:
            cands = [min(cap, r.size - 1) for r in data.recalls]
            return cap, float(np.mean(rec)), float(np.mean(cands))
    return None, None, None


def require_sklearn():
    """The scikit-learn module, or ImportError naming the install (training needs it)."""
    try:
        import sklearn
        import sklearn.ensemble  # noqa: F401
    except ImportError as exc:
        raise ImportError("training a termination model needs scikit-learn: "
                          "pip install lshdisk[learn]") from exc
    return sklearn


def train(data, targets, *, seed=0, val_fraction=0.25, max_iter=100, max_depth=4):
    """Fit one tree ensemble per recall target and calibrate its multiplier.

    Parameters
    ----------
    data : TrainingSet
        From :func:`collect`.
    targets : sequence of float
        Recall targets in (0, 1].
    seed : int
        Seeds the train / validation split and the trees.
    val_fraction : float
        Share of the queries held out to choose the multiplier (at least one query each).
    max_iter, max_depth : int
        Of ``HistGradientBoostingRegressor``.

    Returns
    -------
    TerminationModel
        With a start model (:func:`lshdisk.learned_start.fit_start`, same split) where
        ``data.start`` is given.

    Raises
    ------
    ImportError
        Without scikit-learn (one line naming ``pip install lshdisk[learn]``).
    ValueError
        For fewer than 4 queries or a target outside (0, 1].
    """
    sklearn = require_sklearn()
    from sklearn.ensemble import HistGradientBoostingRegressor
    nq = data.features.shape[0]
    if nq < 4:
        raise ValueError(f"training needs at least 4 queries, got {nq}")
    targets = sorted({float(t) for t in targets})
    for t in targets:
        if not 0.0 < t <= 1.0:
            raise ValueError(f"recall targets must be in (0, 1], got {t}")
    order = np.random.default_rng(seed).permutation(nq)
    n_val = min(nq - 2, max(1, int(round(val_fraction * nq))))
    val_idx, fit_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    fit, val = _subset(data, fit_idx), _subset(data, val_idx)
    per, figures = {}, {}
    for t in targets:
        counts, reached = labels(fit.recalls, t)
        y = np.log2(np.maximum(counts, 1).astype(np.float64))
        model = HistGradientBoostingRegressor(max_iter=max_iter, max_depth=max_depth,
                                              random_state=seed, early_stopping=False)
        model.fit(fit.features, y)
        nodes, offsets, baseline = export_trees(model)
        pred = predict(nodes, offsets, baseline, val.features)
        m = _multiplier(val, pred, t)
        caps = np.ceil(m * np.exp2(pred))
        got = val.recall_at(caps)
        used = np.minimum(np.clip(caps, val.floor, val.cap_limit),
                          [r.size - 1 for r in val.recalls])
        fixed_cap, fixed_recall, fixed_cands = _best_fixed_cap(val, t)
        figures[f"{t:g}"] = {
            "n_train": int(fit_idx.size), "n_val": int(val_idx.size),
            "train_unreached": int((~reached).sum()),
            "multiplier": m, "val_mean_recall": float(np.mean(got)),
            "val_mean_candidates": float(np.mean(used)),
            "fixed_cap": fixed_cap, "fixed_mean_recall": fixed_recall,
            "fixed_mean_candidates": fixed_cands,
        }
        per[t] = _TargetModel(nodes=nodes, offsets=offsets, baseline=baseline, multiplier=m)
    start = None
    if data.start is not None:
        names, x, start_y, first, c = data.start
        start = fit_start(x, start_y, first, names, c, seed=seed, val_fraction=val_fraction,
                          max_iter=max_iter, max_depth=max_depth)
    return TerminationModel(k=data.k, cap_limit=data.cap_limit, per_target=per, figures=figures,
                            sklearn_version=sklearn.__version__, start=start)
