"""Evaluation of an exported gradient-boosted tree ensemble, one sample at a time.

The nodes are those of :func:`lshdisk.learned_termination.export_trees`: a float64 array
(nodes, 7) whose columns are value, feature index, threshold, left child, right child, leaf
flag and missing-goes-left flag (scikit-learn's TreePredictor layout), tree t's nodes being
rows ``offsets[t] .. offsets[t + 1] - 1`` with child indices relative to the tree's first
row.
"""

import numba
import numpy as np

_V, _F, _T, _L, _R, _LEAF, _MISS = 0, 1, 2, 3, 4, 5, 6


@numba.njit(cache=True, nogil=True)
def predict_one(nodes, offsets, baseline, x):
    """``baseline`` plus the leaf value every tree gives to the sample ``x`` (float64
    (features,)): a NaN feature goes where the node's missing flag says, else x <= threshold
    goes left."""
    out = baseline
    for t in range(offsets.shape[0] - 1):
        base = offsets[t]
        at = base
        while nodes[at, _LEAF] == 0:
            v = x[np.int64(nodes[at, _F])]
            if np.isnan(v):
                left = nodes[at, _MISS] != 0
            else:
                left = v <= nodes[at, _T]
            at = base + np.int64(nodes[at, _L] if left else nodes[at, _R])
        out += nodes[at, _V]
    return out
