"""Tuning an index's learned termination (:mod:`lshdisk.learned_termination`): pick training
queries, measure them, fit, and store the model in the index catalog in one transaction."""

import os

import numpy as np

from storage.catalog import Catalog
from .groundtruth import compute_groundtruth
from .learned_termination import MODEL_DOC, collect, require_sklearn, train
from .segments import catalog_lock

__all__ = ["tune", "training_sample", "write_model"]


class _StoreRows:
    """The index's vector store as a 2-D array-like (shape, dtype, row slicing), for the
    ground truth of training queries (reads count on the index's first reader)."""

    def __init__(self, store):
        self._store = store
        self.shape = (store.n, store.d)
        self.dtype = store.dtype

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError("only row slices are supported")
        start, stop, step = key.indices(self.shape[0])
        return self._store.fetch(np.arange(start, stop, step, dtype=np.int64))


def training_sample(index, k, *, sample=2000, seed=0, progress=None):
    """The seeded sample of indexed points :func:`tune` trains on, with its ground truth.

    Parameters
    ----------
    index : lshdisk.Index
    k : int
        Neighbours per query; the ground truth holds k + 1 (the point itself among them).
    sample : int
        Points to draw (at most n), >= 4.
    seed : int
        Of ``np.random.default_rng``, which draws the ids without replacement.
    progress : callable, optional
        ``progress(rows_done, n)`` during the ground truth's scan.

    Returns
    -------
    ids : ndarray of int64, shape (s,)
        The points drawn, ascending.
    queries : ndarray of float32, shape (s, d)
        Their vectors.
    gt_D : ndarray of float32, shape (s, k + 1)
    gt_I : ndarray of int64, shape (s, k + 1)
        Exact neighbours over the index's own vectors (each point itself at distance 0,
        unless a duplicate ties with it).

    Raises
    ------
    ValueError
        If ``sample`` is not an int >= 4.

    Notes
    -----
    Disk access: the sample's vector pages, then every vector page once per block of queries.
    """
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 4:
        raise ValueError(f"sample must be an int >= 4, got {sample!r}")
    ids = np.sort(np.random.default_rng(seed).choice(index.n, size=min(int(sample), index.n),
                                                     replace=False)).astype(np.int64)
    queries = index.vectors.fetch(index.slots_of(ids)).astype(np.float32)
    gt_D, gt_I = compute_groundtruth(_StoreRows(index.vectors), queries, k + 1,
                                     progress=progress)
    # The store's rows are slots with a partition layout (lshdisk.layout): ids are source rows.
    return ids, queries, gt_D, index.source_ids(gt_I)


def tune(index, targets, *, k=10, queries=None, gt=None, sample=2000, seed=0, threads=None,
         cap_factor=100, cap_limit=None, progress=None):
    """Train a learned-termination model for ``index`` (not yet stored; see
    :func:`write_model`).

    Parameters
    ----------
    index : lshdisk.Index
    targets : sequence of float
        Recall targets, each in (0, 1].
    k : int
    queries : ndarray of float32, shape (n_queries, d), optional
        Training queries; without them, ``sample`` indexed points drawn with ``seed`` (each
        one's own id is excluded from its candidates and ground truth).
    gt : (gt_D, gt_I), optional
        Exact ground truth of ``queries`` (>= k neighbours); computed by brute force over the
        index's own vectors when not given.
    sample : int
        Indexed points to train on when no queries are given (at most n).
    seed : int
        Of the sample, the train / validation split and the trees.
    threads : int or None
        Search threads (as :meth:`lshdisk.Index.search`).
    cap_factor : int
        The permissive run's cap in units of T2 (:func:`lshdisk.learned_termination.collect`).
    cap_limit : int, optional
        The largest cap the learned search may use (default T2, k + beta n).
    progress : callable, optional
        ``progress(stage, done, total)``: stage ``"groundtruth"`` (rows of the index scanned)
        while the ground truth is computed, then ``"search"`` (training queries searched).

    Returns
    -------
    TerminationModel
        From :func:`lshdisk.learned_termination.train`, which also names the errors (an
        ImportError without scikit-learn, checked first; ValueError for a bad target); and
        ValueError for a bad sample or ground-truth shape.

    Notes
    -----
    Disk access: the ground truth, when computed, reads every vector page once per block of
    queries; then one permissive search per training query.
    """
    require_sklearn()  # fail before the long measurement, not after it
    index._require_plain("tuning")  # its sample and ground truth read one segment
    exclude = gt_I = None
    scanned = search = None
    if progress is not None:
        def scanned(done, total):
            progress("groundtruth", done, total)

        def search(done, total):
            progress("search", done, total)
    if queries is None:
        exclude, queries, gt_D, gt_I = training_sample(index, k, sample=sample, seed=seed,
                                                       progress=scanned)
    elif gt is None:
        gt_D, gt_I = compute_groundtruth(_StoreRows(index.vectors), queries, k, progress=scanned)
        gt_I = index.source_ids(gt_I)  # the store's rows are slots with a partition layout
    else:
        gt_D, gt_I = gt
    data = collect(index, queries, gt_D, k, gt_I=gt_I, exclude_self=exclude,
                   cap_factor=cap_factor, cap_limit=cap_limit, threads=threads, progress=search)
    return train(data, targets, seed=seed)


def write_model(index_dir, model):
    """Store ``model`` in the catalog of the index at ``index_dir``, replacing any earlier
    model, in one LMDB write transaction (the old model's arrays are removed in it too).

    No handle of that catalog may be open in this process (close the :class:`Index` first;
    an open Index holds none, it reads the catalog at open).

    Raises
    ------
    storage.errors.CatalogInUseError
        If this process has the catalog open.
    """
    docs, arrays = model.to_catalog()
    path = os.path.join(os.fspath(index_dir), "catalog")
    with catalog_lock(path), Catalog.open(path, readonly=False) as cat:
        stale = [name for name in cat.names()
                 if name.startswith(MODEL_DOC + "/") and name not in arrays]
        cat.put_many(documents=docs, arrays=arrays, delete=stale)

