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

import numpy as np

__all__ = ["overall_ratio", "recall_at_k", "evaluate"]


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


def evaluate(index, queries, gt_D, ks):
    """Search ``queries`` once per k and measure quality and cost.

    Parameters
    ----------
    index : lshdisk.Index
    queries : ndarray of float32, shape (n_queries, d)
    gt_D : ndarray of float32, shape (n_queries, K)
        Exact distances, K >= max(ks).
    ks : sequence of int

    Returns
    -------
    list of dict
        One row per k: ``k, ratio, recall, page_reads, seeks, mb_read, candidates,
        cpu_ms`` (means per query; MB are 10**6 bytes).
    """
    rows = []
    for k in ks:
        D, _, stats = index.search(queries, k, return_stats=True)
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
