"""NeOPH: an order-preserving network's codes searched as QALSH's projections.

Li, Zhang, Ma, Lin, Wang, Hu, "I/O Efficient Approximate Nearest Neighbour Search based on
Learned Functions", ICDE 2020, as summarised in the survey of Li et al., "Deep Learning for
Approximate Nearest Neighbour Search: A Survey and Taxonomy" (2021), Eq. (22)-(24): a small
network f maps a point to t real values, trained so that the ranks of points in code space
match their ranks in the original space. For an anchor i and a list of points j with true
distances d_ij and true ranks g_ij (1 = nearest), the code rank is smoothed by a sigmoid,
r~_ij = 1 + sum_{k != j} sigmoid((D_ij - D_ik) / tau), and the loss is
sum_j beta_j log((r~_ij - g_ij)^2 + 1) with beta_j = exp(-d_ij / max_k d_ik). The t codes
key QALSH's trees and are searched as its projections, with w and l calibrated on the
sample exactly as for ``pca`` (:mod:`lshdisk.learned_trees`).

Network. f(o) = P z + W2 relu(W1 z + b1) + b2 with z = (o - mean) / scale (``scale``: the
sample's root mean squared distance to its mean): a linear path and one hidden ReLU layer
of ``hidden`` units. P starts at the ``pca`` family's rotated principal directions (times
scale) and W2 at zero, so training starts from the pca map's keys and moves away only
where the rank loss gains; W1 is drawn N(0, 1) from ``default_rng([seed, 6])``.

Training (PyTorch CPU, one thread, on the training sample only). A training set of
``min(s, TRAIN_SET_ROWS)`` sample rows and a pool of ``min(that, ANCHORS)`` anchors with
their ``LIST_NEAR`` exact nearest neighbours in it (brute force); each of ``steps`` Adam
steps (learning rate ``LEARNING_RATE``) takes ``BATCH`` anchors, each with its near list
and ``LIST_RANDOM`` random rows, all drawn from ``default_rng([seed, 6])``. tau is, per
function, ``TAU_SHARE`` times the median |f_t(o_i) - f_t(o_j)| over the first batch at the
start. The trained weights are kept in the catalog as float32 arrays (no pickle); the codes
of data chunks and of queries are computed from them by one numba kernel
(:mod:`lshdisk._kernels.mlp`), so searching needs no PyTorch.

Deviations and limits
---------------------
- The code distance D_ij of the rank is taken per function, D_ij = |f_t(o_i) - f_t(o_j)|,
  and the loss summed over the t functions, because collision counting tests each function
  on its own; the residual linear path initialised from PCA is ours (it makes the pca
  family the starting point).
- The lists are the anchor's nearest neighbours in the training set plus random rows, not
  the whole set; the network is small and trained for a fixed number of steps.
- No guarantee, as for pca (:mod:`lshdisk.learned_trees`). PyTorch (CPU) is the optional
  extra ``lshdisk[learn]``, needed only to build.
- Training temporaries: about 4 x BATCH L^2 t float32 (L = LIST_NEAR + LIST_RANDOM), outside
  ``memory_limit``'s accounting (2.4 MiB x 4 at t = 64).
"""

import importlib.util

import numpy as np

from ._kernels.bruteforce import topk_sqdist_update
from .errors import MissingExtraError
from .learned_trees import LearnedTreesBuilder, pca_directions
from .maps import MLPMap

__all__ = ["NeOPHBuilder", "train_neoph", "TRAIN_SET_ROWS", "ANCHORS", "LIST_NEAR",
           "LIST_RANDOM", "BATCH", "LEARNING_RATE", "TAU_SHARE"]

#: Rows of the training set (drawn from the sample).
TRAIN_SET_ROWS = 20_000
#: Anchors whose neighbour lists are computed.
ANCHORS = 2_000
#: Nearest neighbours in an anchor's list.
LIST_NEAR = 24
#: Random rows in an anchor's list.
LIST_RANDOM = 24
#: Anchors per training step.
BATCH = 16
#: Adam's learning rate.
LEARNING_RATE = 1e-4
#: tau over the median code difference at the start.
TAU_SHARE = 0.1

_NAMES = {f: f"neoph/{f}" for f in ("mean", "scale", "a", "w1", "b1", "w2", "b2")}


def _torch():
    if importlib.util.find_spec("torch") is None:
        raise MissingExtraError("the neoph method needs PyTorch (CPU) to build: "
                                "pip install lshdisk[learn]")
    import torch
    return torch


def train_neoph(sample, m, hidden, steps, seed):
    """Train the order-preserving network on the sample (see the module docstring).

    Parameters
    ----------
    sample : ndarray of float32, shape (s, d)
    m : int
        Codes (t), 1 .. d.
    hidden : int
        Hidden units, >= 0 (0: the linear path alone).
    steps : int
        Adam steps, >= 0 (0: the pca map, as an MLPMap).
    seed : int

    Returns
    -------
    hash_map : MLPMap
    info : dict
        JSON-ready: the loss at the start and the end (mean of the last 20 steps), sizes.

    Raises
    ------
    MissingExtraError
        If PyTorch is not installed.
    """
    torch = _torch()
    s, d = sample.shape
    mean, a, info = pca_directions(sample, m, seed)
    centred = sample.astype(np.float64) - mean
    scale = float(np.sqrt(np.mean(np.einsum("ij,ij->i", centred, centred))))
    if not scale > 0:
        scale = 1.0
    rng = np.random.default_rng([int(seed), 6])
    p0 = (a.astype(np.float64) * scale).astype(np.float32)
    w1 = rng.standard_normal((hidden, d)).astype(np.float32)
    b1 = np.zeros(hidden, dtype=np.float32)
    w2 = np.zeros((m, hidden), dtype=np.float32)
    b2 = np.zeros(m, dtype=np.float32)
    losses = []
    if steps > 0 and s >= 3:
        rows = int(min(s, TRAIN_SET_ROWS))
        train = np.sort(rng.choice(s, size=rows, replace=False))
        x = np.ascontiguousarray(sample[train])
        z_all = (centred[train] / scale).astype(np.float32)
        n_anchor = int(min(rows, ANCHORS))
        anchors = np.sort(rng.choice(rows, size=n_anchor, replace=False))
        near = int(min(LIST_NEAR, rows - 1))
        top_d = np.full((n_anchor, near + 1), np.inf)
        top_i = np.full((n_anchor, near + 1), -1, dtype=np.int64)
        topk_sqdist_update(x[anchors].astype(np.float64), x, 0, top_d, top_i, 512)
        own = top_i == anchors[:, None]
        keep = np.where(own.any(axis=1)[:, None], ~own, np.arange(near + 1)[None, :] < near)
        near_ids = top_i[keep].reshape(n_anchor, near)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            losses = _fit(torch, z_all, x, anchors, near_ids, (p0, w1, b1, w2, b2), steps, rng)
        finally:
            torch.set_num_threads(threads)
        info.update(train_set_rows=rows, anchors=n_anchor)
    info.update(steps=int(steps), hidden=int(hidden),
                loss_start=round(float(np.mean(losses[:20])), 6) if losses else None,
                loss_end=round(float(np.mean(losses[-20:])), 6) if losses else None)
    return MLPMap(mean, scale, p0, w1, b1, w2, b2, names=_NAMES), info


def _fit(torch, z_all, x, anchors, near_ids, weights, steps, rng):
    """Adam on the rank loss; updates ``weights`` (float32 arrays, in place) and returns the
    loss of each step."""
    params = [torch.from_numpy(wt) for wt in weights]  # shares memory with the arrays
    for p in params:
        p.requires_grad_(True)
    p_lin, w1, b1, w2, b2 = params
    opt = torch.optim.Adam(params, lr=LEARNING_RATE)
    z_t = torch.from_numpy(z_all)
    rows = z_all.shape[0]

    def codes(z):
        return z @ p_lin.T + torch.relu(z @ w1.T + b1) @ w2.T + b2

    tau, losses = None, []
    for _ in range(steps):
        pick = rng.integers(0, anchors.size, size=BATCH)
        ai = anchors[pick]
        lists = np.concatenate([near_ids[pick],
                                rng.integers(0, rows, size=(BATCH, LIST_RANDOM))], axis=1)
        diff = x[lists].astype(np.float64) - x[ai][:, None, :].astype(np.float64)
        dist = np.sqrt(np.einsum("blk,blk->bl", diff, diff))
        g = np.argsort(np.argsort(dist, axis=1, kind="stable"), axis=1) + 1.0
        beta = np.exp(-dist / np.maximum(dist.max(axis=1, keepdims=True), 1e-30))
        fa = codes(z_t[torch.from_numpy(ai)])  # (B, t)
        fl = codes(z_t[torch.from_numpy(lists.reshape(-1))]).reshape(BATCH, lists.shape[1], -1)
        delta = (fl - fa[:, None, :]).abs()  # (B, L, t)
        if tau is None:
            tau = TAU_SHARE * delta.detach().reshape(-1, delta.shape[2]).median(dim=0).values
            tau = torch.clamp(tau, min=1e-12)
        sig = torch.sigmoid((delta[:, :, None, :] - delta[:, None, :, :]) / tau)
        rank = 0.5 + sig.sum(dim=2)  # 1 + sum over k != j (the k = j term is sigmoid(0))
        err = rank - torch.from_numpy(g).float()[:, :, None]
        loss = (torch.from_numpy(beta).float()[:, :, None] * torch.log(err * err + 1.0))
        loss = loss.sum(dim=1).mean()
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            opt.step()
        losses.append(float(loss.detach()))
    return losses


class NeOPHBuilder(LearnedTreesBuilder):
    """The neoph family's builder (see the module docstring).

    Raises
    ------
    MissingExtraError
        At construction, if PyTorch is not installed (before the data are read).
    """

    family = "neoph"
    distribution = ("order-preserving network (NeOPH) trained on a seeded sample: "
                    "P z + W2 relu(W1 z + b1) + b2, z = (o - mean) / scale")

    def __init__(self, work_dir, **kw):
        _torch()
        super().__init__(work_dir, **kw)

    def learn(self, sample):
        return train_neoph(sample, self.m, self.params.hidden, self.params.steps, self.seed)
