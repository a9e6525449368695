"""Exact k-nearest-neighbour ground truth, computed out of core, and its file formats.

Recall and overall-ratio figures need the exact k nearest neighbours of every query.
:func:`compute_groundtruth` streams the dataset once in blocks sized from a memory budget; a
numba kernel (:mod:`lshdisk._kernels.bruteforce`) computes the squared Euclidean distance from
every query to every row of the block and merges the rows into a per-query top-k. Only the
queries, the (n_queries, k) top-k arrays and one block are in memory at a time.

:func:`read_groundtruth` and :func:`write_groundtruth` read and write ground-truth files; they
are also exported by :mod:`lshdisk.datasets`, next to the dataset readers. Formats:

======  ========================================================================  ===========
format  layout (little-endian)                                                    read/write
======  ========================================================================  ===========
qalsh   per query, K records of (float32 distance, int32 id); no header, so K     both
        is size / (n_queries * 8) (the QALSH package's ``*.gt`` files)
ivecs   per query: int32 K, then K int32 ids                                      both
npy     2-D integer array of ids                                                  read
hdf5    ann-benchmarks file: ``neighbors`` (ids), optional ``distances``          read
======  ========================================================================  ===========
"""

from __future__ import annotations

import os
import secrets

import numpy as np

from lshdisk._kernels.bruteforce import topk_sqdist_update
from storage import durable
from lshdisk.datasets import VectorSource, _file_size, open_source, read_queries
from lshdisk.errors import DatasetError

__all__ = ["compute_groundtruth", "read_groundtruth", "write_groundtruth"]

_GT_FORMATS = ("qalsh", "ivecs", "npy", "hdf5")
_QALSH_RECORD = np.dtype([("dist", "<f4"), ("id", "<i4")])
_INT32 = np.iinfo(np.int32)
_O_BINARY = getattr(os, "O_BINARY", 0)
_TILE_BYTES = 2 * 2**20  # rows scanned by all queries before moving on: fits in L2/L3


def compute_groundtruth(source, queries, k: int, *, memory_limit_bytes: int = 256 * 2**20,
                        progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each query under Euclidean distance, by brute force.

    Parameters
    ----------
    source : VectorSource, str, os.PathLike or array-like
        The dataset, shape (n, d); anything :func:`~lshdisk.datasets.open_source` accepts. A
        source opened here is closed before returning; a VectorSource passed in is left open.
    queries : array-like of float32, shape (n_queries, d)
        The queries (anything :func:`~lshdisk.datasets.read_queries` accepts).
    k : int
        Number of neighbours per query, >= 1.
    memory_limit_bytes : int, default 256 MiB
        Budget for the queries, the top-k arrays and one dataset block; the block size is
        derived from it (about ``3 * d * itemsize`` bytes per row).
    progress : callable, optional
        Called as ``progress(rows_done, n)`` after each block.

    Returns
    -------
    distances : ndarray of float32, shape (n_queries, k)
        Euclidean distances, ascending per row; ``+inf`` in padding slots.
    ids : ndarray of int64, shape (n_queries, k)
        Dataset ids; ties in distance are broken by the smaller id; -1 in padding slots
        (when n < k).

    Raises
    ------
    ValueError
        If ``k < 1``, or ``memory_limit_bytes`` cannot hold the top-k arrays and one row.
    TypeError
        If ``k`` or ``memory_limit_bytes`` is not an integer, or ``progress`` not callable.
    DatasetError
        If the queries' dimension differs from the dataset's, a query or a dataset row holds
        NaN/Inf, or the dataset cannot be read.

    Notes
    -----
    Disk access: one sequential pass over the dataset, in blocks of
    ``(memory_limit_bytes - fixed) // (3 * d * itemsize + 8)`` rows.
    Squared distances are accumulated in float64 (exact for integer data) and the square root
    is taken once, on the final k.
    """
    k = _check_int("k", k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    memory_limit_bytes = _check_int("memory_limit_bytes", memory_limit_bytes)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable progress(rows_done, n) or None, "
                        f"got {type(progress).__name__}")
    owned = not isinstance(source, VectorSource)
    src = open_source(source) if owned else source
    try:
        q = read_queries(queries)
        if q.shape[1] != src.d:
            raise DatasetError(f"queries have dimension {q.shape[1]} but the dataset has "
                               f"d = {src.d}; pass queries of dimension {src.d}")
        n_queries = q.shape[0]
        fixed = n_queries * (12 * src.d + 28 * k)  # queries f32 + f64; top-k in and out
        per_row = 3 * src.d * src.dtype.itemsize + 8  # read buffer, converted block, checks
        if memory_limit_bytes < fixed + per_row:
            raise ValueError(
                f"memory_limit_bytes={memory_limit_bytes} is too small: {n_queries} queries "
                f"with k = {k} need {fixed + per_row} bytes; raise it or query in batches"
            )
        chunk_rows = (memory_limit_bytes - fixed) // per_row
        tile_rows = max(1, _TILE_BYTES // (src.d * src.dtype.itemsize))
        q64 = np.ascontiguousarray(q, dtype=np.float64)
        top_sqdist = np.full((n_queries, k), np.inf, dtype=np.float64)
        top_ids = np.full((n_queries, k), -1, dtype=np.int64)
        for start, block in src.iter_chunks(chunk_rows):
            topk_sqdist_update(q64, block, start, top_sqdist, top_ids, tile_rows)
            if progress is not None:
                progress(start + block.shape[0], src.n)
    finally:
        if owned:
            src.close()
    return np.sqrt(top_sqdist).astype(np.float32), top_ids


def _check_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- files


def read_groundtruth(path, *, format: str = "qalsh",
                     n_queries: int | None = None) -> tuple[np.ndarray | None, np.ndarray]:
    """Read a ground-truth file: the K nearest neighbours of each query.

    Parameters
    ----------
    path : str or os.PathLike
        The file; for "hdf5", an ann-benchmarks file holding ``neighbors`` and optionally
        ``distances``.
    format : {"qalsh", "ivecs", "npy", "hdf5"}, default "qalsh"
        None infers it from the extension (.ivecs, .npy, .hdf5/.h5, anything else "qalsh").
    n_queries : int, optional
        Number of queries. Required for "qalsh", whose file has no header (K is
        size / (n_queries * 8)); checked against the file for the other formats.

    Returns
    -------
    distances : ndarray of float32, shape (n_queries, K), or None
        Distances as stored; None for "ivecs", "npy", and "hdf5" without ``distances``.
    ids : ndarray of int64, shape (n_queries, K)
        0-based dataset ids, nearest first.

    Raises
    ------
    DatasetError
        Missing, empty or malformed file; for "qalsh", n_queries missing or a size that is
        not a multiple of n_queries * 8; n_queries contradicting the file; non-integer ids.

    Notes
    -----
    Disk access: reads the whole file; ground-truth files are small.
    """
    path = os.fspath(path)
    if format is None:
        format = {".ivecs": "ivecs", ".npy": "npy", ".hdf5": "hdf5", ".h5": "hdf5"}.get(
            os.path.splitext(path)[1].lower(), "qalsh")
    if format not in _GT_FORMATS:
        raise DatasetError(f"{path}: unknown ground-truth format {format!r}; use one of "
                           f"{', '.join(_GT_FORMATS)}")
    size = _file_size(path, "ground-truth file")
    distances = None
    if format == "qalsh":
        if n_queries is None:
            raise DatasetError(
                f"{path}: a qalsh ground-truth file has no header, so K cannot be known; pass "
                f"n_queries (--n-queries), the number of queries it covers"
            )
        if int(n_queries) < 1:
            raise ValueError(f"n_queries must be >= 1, got {n_queries}")
        per_k = int(n_queries) * _QALSH_RECORD.itemsize
        k, left = divmod(size, per_k)
        if left or k == 0:
            raise DatasetError(
                f"{path} is {size} bytes, not a whole number of n_queries * 8 = {per_k} bytes "
                f"({left or size} bytes left over): n_queries is wrong or the file is truncated"
            )
        records = np.fromfile(path, dtype=_QALSH_RECORD).reshape(int(n_queries), k)
        distances = records["dist"].astype(np.float32)
        ids = records["id"].astype(np.int64)
    elif format == "ivecs":
        with open_source(path, format="ivecs") as src:
            ids = src.read_rows(0, src.n).astype(np.int64)
    elif format == "npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DatasetError(f"{path} is not a valid .npy file ({exc}); re-save it") from None
        ids = _gt_ids(array, path)
    else:
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise DatasetError(f"{path} is not a readable HDF5 file ({exc})") from None
        with f:
            if not isinstance(f.get("neighbors"), h5py.Dataset):
                raise DatasetError(f"{path} has no 'neighbors' dataset; it is not an "
                                   f"ann-benchmarks ground-truth file")
            ids = _gt_ids(f["neighbors"][()], f"{path}:neighbors")
            if isinstance(f.get("distances"), h5py.Dataset):
                distances = np.asarray(f["distances"][()], dtype=np.float32)
                if distances.shape != ids.shape:
                    raise DatasetError(f"{path}: 'distances' has shape {distances.shape} but "
                                       f"'neighbors' has {ids.shape}; the file is inconsistent")
    if n_queries is not None and ids.shape[0] != int(n_queries):
        raise DatasetError(
            f"{path} holds ground truth for {ids.shape[0]} queries but n_queries = {n_queries}; "
            f"pass the matching file or n_queries"
        )
    return distances, ids


def _gt_ids(ids, label: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or 0 in ids.shape:
        raise DatasetError(f"{label} holds ids of shape {ids.shape}; ground truth must be 2-D "
                           f"(n_queries, K) with n_queries, K >= 1")
    if ids.dtype.kind not in "iu":
        raise DatasetError(f"{label} holds {ids.dtype} values; ground-truth ids must be integers")
    return ids.astype(np.int64)


def write_groundtruth(path, distances, ids, *, format: str = "qalsh") -> None:
    """Write ground truth atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; replaced if it exists.
    distances : array-like of float, shape (n_queries, K), or None
        Stored as float32; required for "qalsh", ignored for "ivecs".
    ids : array-like of int, shape (n_queries, K)
        Dataset ids (-1 allowed as padding), stored as int32.
    format : {"qalsh", "ivecs"}, default "qalsh"

    Raises
    ------
    DatasetError
        Unsupported format, empty or mismatched shapes, missing distances, ids beyond int32.

    Notes
    -----
    Disk access: writes a temporary file in the target's directory, fsyncs it, renames it over
    ``path`` with ``os.replace``, then fsyncs the directory: readers see the old file or the
    new one, never a partial one.
    """
    path = os.fspath(path)
    if format not in ("qalsh", "ivecs"):
        raise DatasetError(f"{path}: cannot write ground truth as {format!r}; use 'qalsh' or "
                           f"'ivecs'")
    ids = _gt_ids(ids, "the ids to write")
    if ids.min() < _INT32.min or ids.max() > _INT32.max:
        raise DatasetError(f"{path}: ids do not fit in int32, which {format} stores")
    nq, k = ids.shape
    if format == "qalsh":
        if distances is None:
            raise DatasetError(f"{path}: the qalsh format stores distances; pass distances")
        distances = np.asarray(distances, dtype=np.float32)
        if distances.shape != ids.shape:
            raise DatasetError(f"{path}: distances have shape {distances.shape} but ids have "
                               f"{ids.shape}; pass arrays of the same shape")
        out = np.empty((nq, k), dtype=_QALSH_RECORD)
        out["dist"], out["id"] = distances, ids
    else:
        out = np.empty(nq, dtype=np.dtype([("k", "<i4"), ("ids", "<i4", (k,))]))
        out["k"], out["ids"] = k, ids
    _atomic_write(path, out.tobytes())


def _atomic_write(path: str, payload: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory,
                       f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 rather than mkstemp's 0o600: the file gets the usual umask permissions.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
    try:
        try:  # every write checked: a full disk is a one-line NoSpaceError naming the file
            durable.write_all(fd, payload, path=path)
            durable.fsync_fd(fd, path=path)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    durable.fsync_dir(directory)
