"""Sharded build and search on Dask, for data one machine does not build in time.

:func:`build` partitions the source's rows into contiguous ranges, fixes the hash functions
once on the client (one read pass over the source: a learned family's training sample, the
unit sample, C2LSH's largest coordinate; so they are the hash functions a one-machine build
of all the points would draw), and has each Dask worker build one range into a segment of
the index (:mod:`lshdisk.segments`) in a directory every worker sees; each segment is
verified page by page before its worker publishes it. Only when every partition has
succeeded does the client write the manifest, open the whole index (every file's header
against its catalog) and publish it atomically; a failed worker fails the build and leaves no index (and an old
index at the target untouched). :func:`search` sends batches of queries to the workers,
each searching every segment as :meth:`lshdisk.Index.search` does, so the answers and
per-query counts equal a local search's.

With ``client=None`` both run in this process, one partition or batch after the other: the
"local multi-segment build" whose index a cluster's build equals file for file.

Needs ``lshdisk[distributed]`` (dask.distributed). A cluster is used as it is given::

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")      # or Client(LocalCluster(n_workers=2))
    lshdisk.distributed.build("/shared/sift.bvecs", "/shared/sift.idx", client=client,
                              partitions=16, memory_limit="4GiB")

Deviations: the index is segmented (one segment per partition), with the search costs and
per-segment termination described in :mod:`lshdisk.updates`; ``lshdisk compact`` makes it
one segment. Each worker's build keeps within ``memory_limit`` of its own, and its
parallel kernels use as many cores as the worker has threads (a worker of one thread
projects on one core).
"""

import os
import shutil
import time
from concurrent.futures import CancelledError

import numba
import numpy as np

from storage import durable

from . import registry
from .datasets import open_source, read_queries
from .errors import MissingExtraError
from .index import (HashBase, Index, SearchStats, _build_locked, build_job, method_share,
                    sample_rows)
from .segments import SEGMENTS_DIR, Manifest, SegmentEntry, commit_manifest, segment_name

__all__ = ["build", "search", "RowRange"]


def _dask():
    try:
        import distributed
    except ImportError:
        raise MissingExtraError("a Dask client needs dask.distributed: pip install "
                                "'lshdisk[distributed]'") from None
    return distributed


class RowRange:
    """Rows ``start .. stop - 1`` of an open source, as a source of their own (ids from 0).

    Parameters
    ----------
    src : lshdisk.datasets.VectorSource
        Closed with this one.
    start, stop : int
    """

    def __init__(self, src, start, stop):
        if not 0 <= start < stop <= src.n:
            raise ValueError(f"rows {start} .. {stop} are not within the source's {src.n}")
        self._src, self.start, self.stop = src, int(start), int(stop)
        self.n, self.d, self.dtype = self.stop - self.start, src.d, src.dtype
        self.format, self.path = src.format, src.path

    def fingerprint(self):
        return f"{self._src.fingerprint()}[{self.start}:{self.stop}]"

    def iter_chunks(self, max_rows):
        max_rows = int(max_rows)
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        for s in range(self.start, self.stop, max_rows):
            yield s - self.start, self._src.read_rows(s, min(self.stop, s + max_rows))

    def close(self):
        self._src.close()


def _hash_base(src, job, c, seed, page_size, layout, work, progress):
    """The hash functions of a build of all of ``src`` (:class:`lshdisk.index.HashBase`),
    fixed in one read pass (after a training pass for a learned family)."""
    method = job.method
    params = method.params_fn(src.n, c=c, **job.overrides)
    limit = job.memory_limit_bytes
    builder = method.builder(work, n=src.n, d=src.d, params=params, seed=int(seed),
                             page_size=page_size,
                             memory_limit_bytes=int(method_share(layout) * limit),
                             counter=None, unit=None if job.unit == "auto" else job.unit)
    try:
        chunk_rows = max(1, int(0.15 * limit) // (src.d * 8 + 64))
        if hasattr(builder, "fit"):
            builder.fit(sample_rows(src, builder.training_ids(), chunk_rows, progress))
        for start, rows in src.iter_chunks(chunk_rows):
            builder.observe(start, rows)
            if progress is not None:
                progress("hash", start + rows.shape[0], src.n)
        doc, arrays = builder.hash_doc()
    finally:
        builder.abort()
    unit = doc.get("unit")
    return HashBase(doc=doc, arrays=arrays, params=builder.params,
                    unit=None if unit is None else float(unit["u"]))


def _build_partition(source, open_kw, start, stop, target, settings, base):
    """Build rows ``start .. stop - 1`` of ``source`` into the segment ``target`` (run on
    a worker); returns (target, rows, seconds)."""
    t0 = time.perf_counter()
    if isinstance(source, (str, os.PathLike)):
        src = RowRange(open_source(source, **open_kw), start, stop)
    else:  # the rows themselves, sent by the client
        src = open_source(source)
    s = settings
    method = registry.method(s["algorithm"])
    threads = numba.get_num_threads()
    numba.set_num_threads(min(threads, _worker_threads()))  # (this thread's kernels only)
    try:
        _build_locked(None, target, s["algorithm"], s["c"], s["page_size"],
                      s["memory_limit_bytes"], s["seed"], s["unit"], None, None, None, None,
                      s["preset"], method.params_fn, method.builder, s["overrides"], s["layout"],
                      arguments=s["arguments"], base=base, src=src)
    finally:
        numba.set_num_threads(threads)
    return target, stop - start, time.perf_counter() - t0


def _worker_threads():
    """The threads of the Dask worker running this task (the cores it was given, which its
    parallel kernels then use), or every core outside a worker."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return numba.config.NUMBA_NUM_THREADS
    state = getattr(worker, "state", worker)
    return max(1, int(getattr(state, "nthreads", 1)))


def _run(client, fn, calls):
    """``fn(*call)`` for each call: on the Dask ``client``'s workers, or here one after the
    other without one; every call finishes (or fails) before this returns or raises."""
    if client is None:
        return [fn(*call) for call in calls]
    dist = _dask()
    futures = [client.submit(fn, *call, pure=False) for call in calls]
    dist.wait(futures)
    errors = [f.exception() for f in futures if f.status == "error"]
    if errors:
        raise errors[0]
    try:
        return client.gather(futures)
    except CancelledError as exc:
        raise RuntimeError(f"a Dask task was cancelled ({exc}): the cluster lost a worker; "
                           f"run again") from exc


def build(source, index_dir, *, client=None, partitions=None, algorithm="qalsh", c=2.0,
          page_size=4096, memory_limit="1GiB", seed=0, progress=None, overwrite=False,
          format=None, dtype=None, dim=None, delta=None, beta=None, w=None, preset=None,
          unit="auto", options=None, layout="source"):
    """Build an index of ``source`` as segments built in parallel by Dask workers.

    Parameters
    ----------
    source : str, os.PathLike or 2-D array-like
        As for :func:`lshdisk.build`. A path must name the same file on every worker; an
        array's partitions are sent to the workers.
    index_dir : str or os.PathLike
        On a file system every worker sees (the workers write the segments there).
    client : dask.distributed.Client, optional
        None: build the partitions here, one after the other.
    partitions : int, optional
        Row ranges, one segment each (default: the cluster's worker threads; 1 without a
        client). At most n.
    algorithm, c, page_size, memory_limit, seed, overwrite, format, dtype, dim, delta, beta,
    w, preset, unit, options, layout
        As for :func:`lshdisk.build`; ``memory_limit`` bounds each worker's build. Parameters
        derived from n (beta = 100/n, m, l) are derived from the whole source's n.
    progress : callable, optional
        ``progress(stage, done, total)`` on the client: ``"sample"``, ``"hash"`` (rows read
        to fix the hash functions) and ``"partitions"`` (partitions built, at the end).

    Returns
    -------
    Index
        The new index, open.

    Raises
    ------
    As :func:`lshdisk.build`; MissingExtraError with a client but no dask.distributed; the
    first worker's error if a partition fails (no index is left).
    """
    job = build_job(index_dir, algorithm=algorithm, c=c, page_size=page_size,
                    memory_limit=memory_limit, seed=seed, overwrite=overwrite, delta=delta,
                    beta=beta, w=w, preset=preset, unit=unit, options=options, layout=layout)
    if client is not None:
        _dask()
    index_dir = job.index_dir
    parent = os.path.dirname(index_dir)
    open_kw = {"format": format, "dtype": dtype, "dim": dim}
    with durable.TargetLock(index_dir) as lock:
        durable.remove_leftovers(parent, holding=lock)
        work = durable.work_path(index_dir)  # the index (partition 0 is built into it)
        shards = durable.work_path(index_dir)  # the other partitions, then work/segments
        os.mkdir(shards)
        try:
            src = open_source(source, **open_kw)
            try:
                n = src.n
                if partitions is None:
                    partitions = 1 if client is None else max(
                        1, sum(client.nthreads().values()))
                if isinstance(partitions, bool) or not isinstance(partitions, (int, np.integer)) \
                        or not 1 <= partitions <= n:
                    raise ValueError(f"partitions must be an int from 1 to n = {n}, got "
                                     f"{partitions!r}")
                base = _hash_base(src, job, c, seed, page_size, layout, shards, progress)
                bounds = np.linspace(0, n, int(partitions) + 1).astype(np.int64).tolist()
                in_memory = not isinstance(source, (str, os.PathLike))
                calls = []
                settings = {"algorithm": algorithm, "c": c, "page_size": page_size,
                            "memory_limit_bytes": job.memory_limit_bytes, "seed": int(seed),
                            "unit": job.unit, "preset": preset,
                            "overrides": job.overrides, "layout": layout,
                            "arguments": job.arguments}
                for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
                    target = work if i == 0 else os.path.join(shards, segment_name(i).split("/")[1])
                    part = src.read_rows(a, b) if in_memory else os.fspath(source)
                    calls.append((part, open_kw, a, b, target, settings, base))
            finally:
                src.close()
            _run(client, _build_partition, calls)
            if progress is not None:
                progress("partitions", len(calls), len(calls))
            entries = [SegmentEntry(name=".", n=bounds[1] - bounds[0], id_start=0)]
            entries += [SegmentEntry(name=segment_name(i), n=b - a, id_start=a)
                        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])) if i > 0]
            manifest = Manifest(generation=len(calls) - 1, next_id=n, segments=tuple(entries))
            os.rename(shards, os.path.join(work, SEGMENTS_DIR))
            commit_manifest(work, manifest)
            durable.fault_point("distributed:manifest-written")
            # Each partition was verified page by page before its build published it; here
            # the whole opens: every file's header against its catalog, the manifest's
            # counts against the segments'.
            Index(work).close()
            durable.publish_dir(work, index_dir)
        except BaseException:
            shutil.rmtree(shards, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
            raise
    return Index(index_dir)


def _search_batch(index_dir, queries, k, kw):
    """Search ``queries`` on the index at ``index_dir`` (run on a worker)."""
    with Index(index_dir) as index:
        D, I, stats = index.search(queries, k, return_stats=True, threads=1, **kw)
    return D, I, {name: stats[name] for name in stats.keys()}


def search(index_dir, queries, k, *, client=None, batches=None, return_stats=False, **kw):
    """Search an index from Dask workers, in batches of queries.

    Parameters
    ----------
    index_dir : str or os.PathLike
        On a file system every worker sees.
    queries : array-like, shape (n_queries, d) or (d,)
    k : int
    client : dask.distributed.Client, optional
        None: search here, batch after batch.
    batches : int, optional
        Query batches (default: the cluster's worker threads, at most one per query).
    return_stats : bool
        Also return the per-query :class:`lshdisk.index.SearchStats`.
    **kw
        ``max_candidates``, ``termination`` (a name), ``recall_target``, ``start_radius``:
        as for :meth:`lshdisk.Index.search`.

    Returns
    -------
    D, I[, stats]
        As :meth:`lshdisk.Index.search` returns them for the same queries: each query is
        searched over every segment, as there.

    Raises
    ------
    As :meth:`lshdisk.Index.search`; MissingExtraError with a client but no
    dask.distributed.
    """
    index_dir = os.path.abspath(os.fspath(index_dir))
    if client is not None:
        _dask()
    with Index(index_dir) as index:
        q = read_queries(queries, expected_dim=index.d)
    nq = q.shape[0]
    if batches is None:
        batches = 1 if client is None else max(1, sum(client.nthreads().values()))
    if isinstance(batches, bool) or not isinstance(batches, (int, np.integer)) or batches < 1:
        raise ValueError(f"batches must be an int >= 1, got {batches!r}")
    bounds = np.linspace(0, nq, min(int(batches), max(nq, 1)) + 1).astype(np.int64).tolist()
    calls = [(index_dir, q[a:b], k, kw) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    parts = _run(client, _search_batch, calls)
    D = np.concatenate([p[0] for p in parts])
    I = np.concatenate([p[1] for p in parts])
    if not return_stats:
        return D, I
    stats = SearchStats(**{name: np.concatenate([p[2][name] for p in parts])
                           for name in parts[0][2]})
    return D, I, stats
