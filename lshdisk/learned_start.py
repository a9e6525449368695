"""Learned start radius: skip the rounds of virtual rehashing that would find no candidate.

Follows the idea of roLSH (Jafari, Nagarkar and Montano, 2020, its "learned early start"):
a model predicts, from the query alone, the radius at which its search would find its
answers, and the search starts there instead of at the smallest radius. Here the model is
gradient-boosted trees, trained beside the learned termination model
(:func:`lshdisk.learned_termination.train`) on the same permissive runs, and stored with it.

What is predicted. A query's rounds before its first candidate find nothing but cost seeks
(QALSH: up to two leaf runs per tree and round; C2LSH: up to two page runs per table and
round) and a round's CPU; their pages are the ones the next rounds read anyway. Starting at
the radius of the last round with no candidate gives the same search from there on: the same
entries are counted by the end of that round, so the same candidates, answers and page reads
follow, with fewer seeks and rounds (tested). Starting one round later, at the radius R_f of
the first round with a candidate (the round in which, on these sets, the search ends), saves
that round's seeks too at a small price: the first round then widens every table at once, so
the cap is reached after a slightly different share of the tables (on Mnist, QALSH and C2LSH
at c = 2: the same pages under T1/T2, 1-2 % more with the learned cap, 30-45 % fewer seeks).
Starting beyond R_f costs pages (the candidate round is wider than needed). So the label of
a training query is log_c(R_f / u) (an integer: radii are u c^j, C2LSH levels c^j), its
last round's if it never finds a candidate; a training query that is an indexed point does
not count itself.

The model regresses the label on the searcher's start features (``START_FEATURES`` of
:class:`lshdisk.qalsh.QALSHSearcher` and :class:`lshdisk.c2lsh.C2LSHSearcher`: the query's
norm, and its neighbourhood's density as the index shows it before any round: upper
quantiles of the cursor heads' projected distances, or the bucket spans of the pages holding
its buckets). The start is u c^floor(prediction - shift), the shift the least (in steps of
0.05) for which at most ``overshoot`` (5 %) of the validation queries would start beyond
their R_s.

Deviations from roLSH: roLSH trains a neural network on the query vector to predict the
radius where a query's search ends, and searches there with one round; here trees on a few
scale-free features, predicting the first round with a candidate, shifted down (a
conservative start, so the answers stay close to those of the search without it). I-LSH has
no rounds to skip (its walk takes entries in order of projected distance from any start),
so it has no start model. Stored as plain
arrays (the layout of :func:`lshdisk.learned_termination.export_trees`) in the
``"termination"`` document's ``"start"`` entry (format version 1.1).
"""

import math

import numpy as np

from ._kernels.forest import predict_one

__all__ = ["StartModel", "LearnedStart", "start_labels", "fit_start", "START_ARRAYS"]

#: Prefix of the start model's arrays in the catalog (``/nodes``, ``/offsets``).
START_ARRAYS = "termination/start"
_STEP = 0.05  # grid of the shift, in steps of c


def start_labels(traces, found, c, u, *, exclude_self=None):
    """Per query, log_c of (the radius of its first round with a candidate, else its last
    round's) over u, and log_c of its first round's radius over u.

    Parameters
    ----------
    traces : list of ndarray of TRACE_DTYPE
        Permissive runs (no T1), one per query.
    found : list of (ids, dists)
        Their candidates in verification order (``return_candidates=True``).
    c, u : float
        The index's c and data unit.
    exclude_self : ndarray of int64, shape (n_queries,), optional
        The queries' own ids when they are indexed points (not counted as candidates).

    Returns
    -------
    labels, first : ndarray of float64, shape (n_queries,)
    """
    labels = np.zeros(len(traces))
    first = np.zeros(len(traces))
    for i, (trace, (ids, _)) in enumerate(zip(traces, found)):
        cands = trace["candidates"].astype(np.int64)
        if exclude_self is not None:  # rounds by whose end the query itself was verified
            own = np.flatnonzero(np.asarray(ids) == exclude_self[i])
            if own.size:
                cands = cands - (trace["verified"] > own[0])
        hit = np.flatnonzero(cands > 0)
        radii = trace["radius"]
        first[i] = math.log(radii[0] / u) / math.log(c)
        labels[i] = math.log(radii[int(hit[0]) if hit.size else len(trace) - 1] / u) / math.log(c)
    return np.round(labels, 6), np.round(first, 6)


class StartModel:
    """The tuned start radius of one index (see the module docstring).

    Attributes
    ----------
    features : tuple of str
        The searcher's ``START_FEATURES`` it was trained on.
    nodes, offsets, baseline :
        The trees (:func:`lshdisk.learned_termination.export_trees`).
    shift : float
        Subtracted from the prediction before it is floored.
    c : float
        The index's c (radii u c^j).
    figures : dict
        Training figures (JSON-ready).
    """

    def __init__(self, *, features, nodes, offsets, baseline, shift, c, figures):
        self.features = tuple(features)
        self.nodes = np.ascontiguousarray(nodes, dtype=np.float64)
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        self.baseline, self.shift, self.c = float(baseline), float(shift), float(c)
        self.figures = figures

    def steps(self, x):
        """floor(prediction - shift) for the features x (float64, shape (len(features),))."""
        return math.floor(predict_one(self.nodes, self.offsets, self.baseline, x) - self.shift)

    def radius(self, x, u):
        """The start radius u c^steps(x), data units."""
        return u * self.c ** min(self.steps(x), 600)

    def to_catalog(self):
        """(document entry, arrays) for the termination model's catalog document."""
        doc = {"features": list(self.features), "baseline": self.baseline, "shift": self.shift,
               "c": self.c, "arrays": START_ARRAYS, "figures": self.figures}
        return doc, {START_ARRAYS + "/nodes": self.nodes.astype("<f8"),
                     START_ARRAYS + "/offsets": self.offsets.astype("<i8")}

    @classmethod
    def from_catalog(cls, doc, get_array):
        """From :meth:`to_catalog`'s entry; KeyError, TypeError or ValueError if malformed."""
        nodes = get_array(doc["arrays"] + "/nodes")
        offsets = get_array(doc["arrays"] + "/offsets")
        if nodes.ndim != 2 or offsets.ndim != 1 or offsets[-1] != nodes.shape[0]:
            raise ValueError("start tree arrays of the wrong shape")
        return cls(features=doc["features"], nodes=nodes, offsets=offsets,
                   baseline=doc["baseline"], shift=doc["shift"], c=doc["c"],
                   figures=doc.get("figures", {}))


def fit_start(x, labels, first, features, c, *, seed=0, val_fraction=0.25, max_iter=100,
              max_depth=4, overshoot=0.05):
    """Fit the start model and its shift.

    Parameters
    ----------
    x : ndarray of float64, shape (n_queries, len(features))
        Start features.
    labels, first : ndarray of float64, shape (n_queries,)
        From :func:`start_labels`.
    features : sequence of str
    c : float
    seed, val_fraction, max_iter, max_depth :
        As :func:`lshdisk.learned_termination.train` (the same split for the same seed).
    overshoot : float
        Largest share of validation queries allowed to start beyond their label.

    Returns
    -------
    StartModel
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    from .learned_termination import export_trees, predict
    nq = x.shape[0]
    order = np.random.default_rng(seed).permutation(nq)
    n_val = min(nq - 2, max(1, int(round(val_fraction * nq))))
    val, fit = np.sort(order[:n_val]), np.sort(order[n_val:])
    model = HistGradientBoostingRegressor(max_iter=max_iter, max_depth=max_depth,
                                          random_state=seed, early_stopping=False)
    model.fit(x[fit], labels[fit])
    nodes, offsets, baseline = export_trees(model)
    pred = predict(nodes, offsets, baseline, x[val])
    shift = 0.0
    while np.mean(np.floor(pred - shift) > labels[val] + 1e-6) > overshoot:
        shift += _STEP
    steps = np.floor(pred - shift)
    figures = {
        "n_train": int(fit.size), "n_val": int(val.size), "shift": shift,
        "val_overshoot": float(np.mean(steps > labels[val] + 1e-6)),
        "val_mean_steps_skipped": float(np.mean(np.maximum(0.0, np.minimum(steps, labels[val])
                                                           - first[val]))),
        "val_mean_steps_skippable": float(np.mean(np.maximum(0.0, labels[val] - first[val]))),
    }
    return StartModel(features=features, nodes=nodes, offsets=offsets, baseline=baseline,
                      shift=shift, c=c, figures=figures)


class LearnedStart:
    """A termination policy with a learned start radius: ``policy`` (any termination policy)
    decides when to stop and the candidate cap; the search starts its rounds at the radius
    ``model`` predicts from the searcher's start features (see
    :class:`lshdisk.search.RoundSearch`).

    Parameters
    ----------
    policy : TerminationPolicy
    model : StartModel
    u : float
        The index's data unit.
    """

    __slots__ = ("policy", "model", "u")

    def __init__(self, policy, model, u):
        self.policy, self.model, self.u = policy, model, float(u)

    @property
    def name(self):
        return f"{self.policy.name}+start"

    def candidate_cap(self, k, n, beta):
        return self.policy.candidate_cap(k, n, beta)

    def should_stop(self, view):
        return self.policy.should_stop(view)

    def radius_limit(self, view):
        return self.policy.radius_limit(view)

    def cap_after(self, view):
        adjust = getattr(self.policy, "cap_after", None)
        return None if adjust is None else adjust(view)

    def start_radius(self, features):
        """The radius (data units) the rounds start at."""
        return self.model.radius(features, self.u)

    def __repr__(self):
        return f"LearnedStart({self.policy!r})"
