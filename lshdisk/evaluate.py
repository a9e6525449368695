"""Quality and cost metrics of a search against exact ground truth.

Definitions follow the QALSH and C2LSH papers and the reference codes:

- overall ratio: the mean over queries and ranks j = 1..k of ``D[q, j] / D*[q, j]``, the
  returned over the true j-th nearest distance (ranks whose true distance is 0 count as 1 when
  the returned distance is 0 too, and are left out otherwise; ranks past the dataset's size,
  padded with +inf in the ground truth, are left out; a missing result where the ground truth
  has one makes the ratio +inf);
- recall@k: the share of returned points within the true k-th nearest distance, as the
  reference QALSH code prints it (ties at that distance count as hits).
"""

import os

import numpy as np

from .errors import GroundTruthMismatchError

__all__ = ["overall_ratio", "recall_at_k", "evaluate", "check_groundtruth"]

_SAMPLE_QUERIES = 8  # queries whose ground-truth distances are recomputed from the index
_DISTANCE_RTOL = 1e-3  # float32 distances computed in another order agree far closer


def _check(D, gt_D, k):
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if gt_D.shape[0] != D.shape[0]:
        raise ValueError(f"ground truth has {gt_D.shape[0]} queries, results have {D.shape[0]}")
    if gt_D.shape[1] < k or D.shape[1] < k:
        raise ValueError(f"k = {k} exceeds the ground truth's {gt_D.shape[1]} neighbours per "
                         f"query or the results' {D.shape[1]}: compute ground truth with -k >= {k}")


def overall_ratio(D, gt_D, k):
    """Overall ratio over the first k ranks.

    Parameters
    ----------
    D : ndarray of float, shape (n_queries, >= k)
        Returned distances, ascending (+inf for missing results).
    gt_D : ndarray of float, shape (n_queries, >= k)
        Exact distances, ascending.
    k : int

    Returns
    -------
    float
        >= 1; +inf if a query returned fewer than k points.
    """
    D = np.asarray(D, dtype=np.float64)[:, :k]
    gt_D = np.asarray(gt_D, dtype=np.float64)
    _check(D, gt_D, k)
    truth = gt_D[:, :k]
    exists = np.isfinite(truth)  # ranks beyond n are padded with +inf in both
    if np.any(exists & ~np.isfinite(D)):
        return float("inf")
    zero = exists & (truth <= 0.0)
    ratios = np.where(zero, 1.0, D / np.where(exists & ~zero, truth, 1.0))
    keep = exists & (~zero | (D <= 0.0))
    return float(np.mean(ratios[keep])) if keep.any() else 1.0


def recall_at_k(D, gt_D, k):
    """Mean share of the k returned points whose distance is <= the true k-th distance."""
    D = np.asarray(D, dtype=np.float64)[:, :k]
    gt_D = np.asarray(gt_D, dtype=np.float64)
    _check(D, gt_D, k)
    kth = gt_D[:, k - 1:k]
    hits = D <= kth * (1.0 + 1e-6) + 1e-12
    return float(np.mean(np.sum(hits, axis=1) / k))


def check_groundtruth(index, queries, gt_D, gt_I, *, label="the ground truth"):
    """Refuse a ground truth that cannot belong to ``queries`` and the data of ``index``.

    Checks that it has one row per query, that its ids are below the index's n, and that
    for a sample of queries (up to 8, spread over the set) the distances it states agree
    with the distances recomputed from the index's own vectors (relative tolerance 1e-3).

    Parameters
    ----------
    index : lshdisk.Index
    queries : ndarray of float32, shape (n_queries, d)
    gt_D : ndarray of float32, shape (n_queries, K), or None
        Distances as stored (None: only the ids are checked).
    gt_I : ndarray of int64, shape (n_queries, K)
        Ids; -1 marks padding.
    label : str
        Names the ground truth in errors (its path).

    Raises
    ------
    GroundTruthMismatchError
        One line: "this ground truth does not belong to these queries/this data", and why.

    Notes
    -----
    Disk access: the vector pages of the sampled queries' ground-truth neighbours, read
    through a handle of their own (the index's counters and buffer pool are untouched).
    """
    nq = queries.shape[0]
    prefix = f"{label}: this ground truth does not belong to these queries/this data"
    if gt_I.shape[0] != nq:
        raise GroundTruthMismatchError(f"{prefix}: it has {gt_I.shape[0]} queries, the query "
                                       f"file {nq}; pass the ground truth of these queries")
    top = index.manifest.next_id  # ids are never reused: after deletes some lie above n
    if gt_I.size and (gt_I.max() >= top or gt_I.min() < -1):
        bad = int(gt_I.max() if gt_I.max() >= top else gt_I.min())
        raise GroundTruthMismatchError(f"{prefix}: it names point {bad}, the index holds points "
                                       f"0..{top - 1}; compute it with 'lshdisk groundtruth' "
                                       f"on the indexed data")
    if gt_D is None:
        return
    sampled = np.unique(np.linspace(0, nq - 1, min(nq, _SAMPLE_QUERIES)).astype(np.int64))
    wanted = gt_I[sampled]
    try:  # every sampled neighbour in one read
        fetched = index.fetch(wanted[wanted >= 0]).astype(np.float64)
    except ValueError as exc:  # a deleted point
        raise GroundTruthMismatchError(f"{prefix}: {exc}") from None
    starts = np.concatenate(([0], np.cumsum((wanted >= 0).sum(axis=1))))
    for j, q in enumerate(sampled.tolist()):
        ids = gt_I[q]
        keep = ids >= 0
        if not keep.any():
            continue
        rows = fetched[starts[j]:starts[j + 1]]
        true = np.sqrt(((rows - queries[q].astype(np.float64)) ** 2).sum(axis=1))
        stated = gt_D[q][keep].astype(np.float64)
        off = ~np.isclose(stated, true, rtol=_DISTANCE_RTOL, atol=1e-6)
        if off.any():
            j = int(np.flatnonzero(off)[0])
            raise GroundTruthMismatchError(
                f"{prefix}: query {q}'s neighbour {int(ids[keep][j])} is at distance "
                f"{true[j]:.6g} in the index, the ground truth says {stated[j]:.6g}; compute "
                f"it with 'lshdisk groundtruth' on the indexed data and these queries")


def evaluate(index, queries, gt_D, ks, *, progress=None, threads=None, max_candidates=None,
             termination=None, recall_target=None, start_radius=False):
    """Search ``queries`` once per k and measure quality and cost.

    Parameters
    ----------
    index : lshdisk.Index
    queries : ndarray of float32, shape (n_queries, d)
    gt_D : ndarray of float32, shape (n_queries, K)
        Exact distances, K >= max(ks).
    ks : sequence of int
    progress : callable, optional
        ``progress(done, total)`` after each query, over all k (total = len(ks) * n_queries).
    threads, max_candidates, termination, recall_target, start_radius : optional
        Passed to :meth:`lshdisk.Index.search` (``cpu_ms`` is each query's own thread's CPU
        time; pass ``threads=1`` to measure it on an otherwise idle machine).

    Returns
    -------
    list of dict
        One row per k: ``k, ratio, recall, page_reads, seeks, mb_read, candidates,
        cpu_ms`` (means per query; MB are 10**6 bytes).
    """
    rows = []
    nq = queries.shape[0]
    for i, k in enumerate(ks):
        step = None if progress is None else (
            lambda done, _total, base=i * nq: progress(base + done, len(ks) * nq))
        D, _, stats = index.search(queries, k, return_stats=True, progress=step, threads=threads,
                                   max_candidates=max_candidates, termination=termination,
                                   recall_target=recall_target, start_radius=start_radius)
        mean = stats.mean()
        rows.append({
            "algorithm": index.algorithm,
            "k": int(k),
            "ratio": overall_ratio(D, gt_D, k),
            "recall": recall_at_k(D, gt_D, k),
            "page_reads": mean["page_reads"],
            "seeks": mean["seeks"],
            "mb_read": mean["bytes_read"] / 1e6,
            "candidates": mean["candidates"],
            "cpu_ms": mean["cpu_seconds"] * 1e3,
        })
    return rows
