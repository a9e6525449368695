"""Building and opening lshdisk indexes: the Python API.

An index is a directory::

    INDEX_DIR/
        catalog/        LMDB environment: versioned JSON metadata and the hash functions
        vectors.pages   the data vectors, for false-positive removal (lshdisk.vector_store)
        trees.pages     the m B+-trees of the projections (QALSH)

It is built under a temporary sibling name, under a lock on the target, verified, and
published in one atomic step only when complete (:mod:`storage.durable`), so a failed or
interrupted build leaves no index behind and never damages an existing one; page files are
tied to their catalog by a build id (:mod:`lshdisk.verify`).
"""

import inspect
import math
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from storage import BufferPool, IOCounter, PageFile, durable
from storage.catalog import Catalog
from storage.errors import (CorruptCatalogError, NoSpaceError, StorageError,
                            UnsupportedVersionError)
from . import __version__
from .datasets import open_source, read_queries
from .errors import CorruptIndexError, IndexExistsError, NotAnIndexError
from . import registry
from .learned_start import LearnedStart
from .learned_termination import MODEL_DOC, LearnedBudget, TerminationModel
from .layout import IDS_FILE, SLOTS_FILE, PartitionLayout, check_layout
from .learning import TrainingSample, training_ids
from .metadata import INDEX_FORMAT, INDEX_VERSION, IndexMeta
from .segments import MANIFEST_DOC, catalog_lock, read_id_file, read_manifest
from .search import RoundSearch, SearchOptions
from .termination import termination_policy
from .vector_store import VECTORS_KIND, VectorStore, VectorStoreWriter
from .verify import check_file, seal_build, verify_index
from ._units import parse_bytes

__all__ = ["build", "open", "Index", "SearchStats", "HashBase", "BuildJob", "build_job", "ALGORITHMS", "INDEX_FORMAT",
           "INDEX_VERSION"]

#: Registered method names (:mod:`lshdisk.registry`).
ALGORITHMS = registry.names()


CATALOG_DIR = "catalog"
VECTORS_FILE = "vectors.pages"
_MIN_MEMORY = 16 * 2**20
#: Reads of an index's catalog and segments an open makes while changes replace them.
_LOAD_ATTEMPTS = 3


def _report(progress, stage, done, total):
    if progress is not None:
        progress(stage, done, total)


def build(source, index_dir, *, algorithm="qalsh", c=2.0, page_size=4096, memory_limit="1GiB",
          seed=0, progress=None, overwrite=False, format=None, dtype=None, dim=None,
          delta=None, beta=None, w=None, preset=None, unit="auto", options=None,
          layout="source"):
    """Build an index of ``source`` in ``index_dir``, out of core, and open it.

    Parameters
    ----------
    source : str, os.PathLike or 2-D array-like
        Anything :func:`lshdisk.datasets.open_source` reads: .fvecs/.bvecs/.ivecs, .fbin/.u8bin/
        .i8bin, .npy, ``file.hdf5:train``, a raw headerless file (with ``dtype`` and ``dim``), or
        an array / ``np.memmap`` of shape (n, d). Read once, in chunks.
    index_dir : str or os.PathLike
        Directory to create.
    algorithm : {"qalsh", "ilsh", "c2lsh", "kmeans", "pca", "neoph"}
        QALSH (Huang et al., PVLDB 2015), I-LSH (Liu et al., ICDE 2019; same index layout
        and parameters as QALSH, incremental search), C2LSH (Gan et al., SIGMOD 2012;
        sorted bucket runs, integer c >= 2), learned partitions (:mod:`lshdisk.kmeans`:
        trained on a seeded sample in a pass of its own; c is not used) or learned maps in
        QALSH's trees (:mod:`lshdisk.learned_trees`, :mod:`lshdisk.neoph`: trained likewise,
        w and l calibrated on the sample; neoph needs ``lshdisk[learn]``).
    c : float
        Approximation ratio, > 1.
    page_size : int
        Bytes per page, a power of two from 512 to 1 MiB.
    memory_limit : int or str
        Peak memory of the build's own buffers, e.g. ``"256MiB"`` (at least 16 MiB); the data
        are streamed and the projections sorted with an external merge sort within it.
    seed : int
        Seed of the hash functions; the same seed and data give byte-identical page files.
    progress : callable, optional
        ``progress(stage, done, total)`` with stage ``"read"`` (rows), ``"tables"`` (entries
        written to the hash tables) and, for a learned method first, ``"sample"`` (rows
        read for training) and ``"train"``.
    overwrite : bool
        Replace an existing index at ``index_dir`` (only once the new one is complete).
    format, dtype, dim : optional
        Passed to :func:`lshdisk.datasets.open_source`.
    delta, beta, w : float, optional
        Override the defaults of the algorithm's paper and code (QALSH and I-LSH: delta = 1/e,
        beta = 100/n, w from c; C2LSH: delta = 0.01, beta = 100/n, w = 1).
    preset : {None, "jafari2021"}
        Named parameter settings: ``"jafari2021"`` is the setting of Jafari & Nagarkar's 2021
        experimental study (delta = 0.1, c = 2, w = 2.781 for QALSH and I-LSH, w = 2.184 for
        C2LSH). Explicit ``delta``, ``beta``, ``w`` override it.
    options : dict, optional
        Further parameters of the method, by name: for ``"kmeans"`` ``m`` (tables),
        ``centroids`` (K), ``l``, ``probes``, ``train_rows``, ``iterations``
        (:func:`lshdisk.params.kmeans_params`); for ``"pca"`` ``m``, ``l``, ``share``,
        ``train_rows`` (:func:`lshdisk.params.pca_params`), for ``"neoph"`` those and
        ``hidden``, ``steps``. An unknown name is a ValueError.
    layout : {"source", "partition"}
        Order of the vectors in ``vectors.pages``: the source's (default), or cell by cell of
        a partition learned from a seeded sample, so that a query's candidates share pages
        (:mod:`lshdisk.layout`; one more pass over the source and two external sorts at
        build; ids stay the source's row numbers).
    unit : "auto" or float
        The radius unit u (radii are u c^j; C2LSH hashes o / u). ``"auto"`` (default): the
        data's nearest-neighbour scale over sqrt(c), measured from a seeded sample
        (:mod:`lshdisk.scale`), so that the search does not depend on the data's units. A
        positive number fixes it: 1 gives the papers' and the authors' codes' radii
        R = 1, c, c^2, ... (I-LSH's radius is continuous and needs no unit).

    Returns
    -------
    Index
        The new index, open with no buffer pool.

    Notes
    -----
    Disk access: reads the source once; writes the vector file, the hash tables (and the
    external sort's runs if the projections outgrow ``memory_limit``) and the catalog
    under ``INDEX_DIR.building-PID-TOKEN``, every write checked; rewrites each page file's
    header page (build id); fsyncs every file and directory; reads every page once to
    verify it; then publishes the index atomically (:func:`storage.durable.publish_dir`).

    Raises
    ------
    IndexExistsError
        If ``index_dir`` exists and ``overwrite`` is false.
    LockedError
        If another build of ``index_dir`` is running (``storage.errors``).
    NoSpaceError
        If the file system lacks the space the build needs (checked before it starts, and
        on every write); nothing is left behind and an old index is untouched.
    CorruptIndexError
        If the new index fails verification before it would replace the old one.
    DatasetError
        If the source is empty, truncated, malformed or holds NaN/Inf.
    ValueError
        For a bad parameter (unknown algorithm, c <= 1, page size, memory limit, ...).
    """
    job = build_job(index_dir, algorithm=algorithm, c=c, page_size=page_size,
                    memory_limit=memory_limit, seed=seed, overwrite=overwrite, delta=delta,
                    beta=beta, w=w, preset=preset, unit=unit, options=options, layout=layout)
    with durable.TargetLock(job.index_dir) as lock:
        durable.remove_leftovers(os.path.dirname(job.index_dir), holding=lock)
        _build_locked(source, job.index_dir, algorithm, c, page_size, job.memory_limit_bytes,
                      seed, job.unit, progress, format, dtype, dim, preset, job.method.params_fn,
                      job.method.builder, job.overrides, layout, arguments=job.arguments)
    return Index(job.index_dir)


@dataclass(frozen=True, slots=True)
class BuildJob:
    """A build's checked settings (:func:`build_job`): the method, the parameter overrides
    (a preset's, then those given), the arguments to record, the memory limit in bytes, the
    unit and the absolute target directory."""

    method: object
    overrides: dict
    arguments: dict
    memory_limit_bytes: int
    unit: object
    index_dir: str


def build_job(index_dir, *, algorithm, c, page_size, memory_limit, seed, overwrite, delta,
              beta, w, preset, unit, options, layout):
    """Check :func:`build`'s arguments (its errors) and return a :class:`BuildJob`."""
    method = registry.method(algorithm)
    params_fn, builder_cls = method.params_fn, method.builder
    overrides = {}
    if preset is not None:
        if preset not in method.presets:
            raise ValueError(f"preset must be one of {', '.join(method.presets) or 'none'} for "
                             f"{algorithm}, got {preset!r}")
        overrides.update(method.presets[preset])
    overrides.update({k: v for k, v in (("delta", delta), ("beta", beta), ("w", w)) if v is not None})
    if options:
        if not isinstance(options, dict):
            raise TypeError(f"options must be a dict of parameter names to values, got "
                            f"{type(options).__name__}")
        clash = sorted(set(options) & {"c", "delta", "beta", "w"})
        if clash:
            raise ValueError(f"pass {clash[0]} as its own argument, not in options")
        accepted = inspect.signature(params_fn).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            unknown = sorted(set(options) - set(accepted))
            if unknown:
                raise ValueError(f"{algorithm} has no parameter {unknown[0]!r} (it takes c, "
                                 f"delta, beta and w): leave it out")
        overrides.update(options)
    if not (isinstance(unit, str) and unit == "auto"):
        if isinstance(unit, bool) or not isinstance(unit, (int, float, np.integer, np.floating)) \
                or not math.isfinite(unit) or unit <= 0:
            raise ValueError(f"unit must be 'auto' or a positive number, got {unit!r}")
        unit = float(unit)
    check_layout(layout)
    memory_limit_bytes = parse_bytes(memory_limit, name="memory_limit")
    if memory_limit_bytes < _MIN_MEMORY:
        raise ValueError(f"memory_limit must be at least 16MiB, got {memory_limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    from storage.format import check_page_size
    check_page_size(page_size)
    index_dir = os.path.abspath(os.fspath(index_dir))
    if os.path.exists(index_dir):
        if not overwrite:
            raise IndexExistsError(f"{index_dir} already exists: choose another path, remove it, "
                                   f"or pass overwrite=True (--overwrite)")
        if not _looks_like_index(index_dir):
            raise IndexExistsError(f"{index_dir} exists and is not an lshdisk index: refusing to "
                                   f"replace it; choose another path")
    parent = os.path.dirname(index_dir)
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"the parent directory of {index_dir} does not exist: create it first")
    explicit = {k: v for k, v in (("delta", delta), ("beta", beta), ("w", w)) if v is not None}
    explicit.update(options or {})
    arguments = {"c": c, "preset": preset, "overrides": explicit, "unit": unit,
                 "layout": layout}
    return BuildJob(method=method, overrides=overrides, arguments=arguments,
                    memory_limit_bytes=memory_limit_bytes, unit=unit, index_dir=index_dir)




def method_share(layout):
    """The share of a build's memory limit its method's builder gets: 60 %, or 45 % with a
    partition layout (whose buckets take 15 %)."""
    return 0.6 if layout == "source" else 0.45


def _space_needed(n, d, itemsize, m, page_size, memory_limit_bytes):
    """Estimated peak bytes a build writes: vector pages, hash tables (16-bit keys and
    bit-packed ids), the external sort's runs if its records outgrow its memory, catalog."""
    payload = page_size - 8
    vectors = n * d * itemsize * page_size // payload + 2 * page_size
    entries = n * m
    tables = entries * (16 + max(1, math.ceil(math.log2(max(n, 2))))) // 8 * page_size // payload
    spill = 12 * entries if 12 * entries > 0.6 * memory_limit_bytes else 0
    return vectors + tables + spill + 8 * m * d + (1 << 20)


@dataclass(frozen=True, slots=True)
class HashBase:
    """The hash functions and parameters of an existing index, for a segment built with them
    (:mod:`lshdisk.updates`): its document, catalog arrays, parameters and data unit."""

    doc: dict
    arrays: dict
    params: object
    unit: float | None

    @classmethod
    def of(cls, index):
        """Those of the open ``index``'s first segment."""
        unit = index.meta.get("unit")
        return cls(doc=index.meta, arrays=index._arrays, params=index.params,
                   unit=None if not isinstance(unit, dict) else float(unit["u"]))


def _build_locked(source, index_dir, algorithm, c, page_size, memory_limit_bytes, seed, unit,
                  progress, format, dtype, dim, preset, params_fn, builder_cls, overrides,
                  layout="source", *, arguments=None, base=None, extra=None, src=None):
    """The body of :func:`build`, run while the target's lock is held.

    ``arguments``: the build's own arguments, recorded for a compaction to repeat; ``base``:
    a :class:`HashBase` whose hash functions and parameters the build uses instead of drawing
    or training its own (a segment); ``extra(work, meta)``: called before the files are
    sealed, may write files into ``work`` and add them to ``meta``, returns catalog
    documents to store beside the index document; ``src``: an open source to read (and
    close) instead of opening ``source``."""
    parent = os.path.dirname(index_dir)
    started = time.perf_counter()
    if src is None:
        src = open_source(source, format=format, dtype=dtype, dim=dim)
    try:
        params = base.params if base is not None else params_fn(src.n, c=c, **overrides)
        needed = _space_needed(src.n, src.d, src.dtype.itemsize, params.m, page_size,
                               memory_limit_bytes)
        if layout == "partition":  # the spilled rows (with slot and id), cells, two id maps
            needed += src.n * (src.d * src.dtype.itemsize + 28) + 4 * page_size
        durable.check_free_space(parent, needed, what=f"building {index_dir}")
    except BaseException:
        src.close()
        raise
    work = durable.work_path(index_dir)
    os.mkdir(work)
    durable.fault_point("build:started")
    builder = writer = None
    try:
        counter = IOCounter()
        # Budget: 60 % the method (45 % with a partition layout, whose buckets take 15 %),
        # 15 % chunk temporaries, the rest for writers and slack.
        share = method_share(layout)
        builder = builder_cls(work, n=src.n, d=src.d, params=params, seed=int(seed),
                              page_size=page_size,
                              memory_limit_bytes=int(share * memory_limit_bytes),
                              counter=counter,
                              unit=(base.unit if base is not None else
                                    None if unit == "auto" else unit))
        if base is not None:
            builder.adopt(base.doc, base.arrays)
        arranger = None
        if layout == "partition":
            arranger = PartitionLayout(work, n=src.n, d=src.d, dtype=src.dtype,
                                       page_size=page_size, seed=int(seed),
                                       memory_limit_bytes=int(0.15 * memory_limit_bytes),
                                       counter=counter)
        per_row = builder.chunk_bytes_per_row(src.dtype.itemsize)
        chunk_rows = max(1, int(0.15 * memory_limit_bytes) // per_row)
        train_seconds = None
        learned = hasattr(builder, "fit") and base is None
        if learned or arranger is not None:  # one pass for the training sample
            t_train = time.perf_counter()
            # (A learned method's sample serves the layout too, trained or adopted.)
            ids = builder.training_ids() if hasattr(builder, "training_ids") else \
                training_ids(seed, src.n, arranger.train_rows)
            sample = sample_rows(src, ids, chunk_rows, progress)
            _report(progress, "train", 0, 1)
            if learned:
                builder.fit(sample)
            if arranger is not None:
                arranger.fit(sample)
            del sample
            if learned:
                params = builder.params  # as calibrated by the training (learned w, l, ...)
            _report(progress, "train", 1, 1)
            train_seconds = round(time.perf_counter() - t_train, 3)
            per_row = builder.chunk_bytes_per_row(src.dtype.itemsize)
            chunk_rows = max(1, int(0.15 * memory_limit_bytes) // per_row)
        writer = VectorStoreWriter(os.path.join(work, VECTORS_FILE), d=src.d, dtype=src.dtype,
                                   page_size=page_size, counter=counter)
        if arranger is None:
            stream = ((start, rows, None) for start, rows in src.iter_chunks(chunk_rows))
        else:  # rows (and the ids the method sees) in slot order
            per_row += src.d * src.dtype.itemsize  # the chunk's rows in slot order
            chunk_rows = max(1, int(0.15 * memory_limit_bytes) // per_row)
            stream = arranger.reorder(
                src, chunk_rows, lambda done, total: _report(progress, "layout", done, total))
        for start, rows, source_ids in stream:
            writer.append(rows)
            builder.add_chunk(start, rows, source_ids)
            _report(progress, "read", start + rows.shape[0], src.n)
        writer.finish()
        durable.fault_point("build:vectors-written")
        structure = builder.finish(progress=lambda done, total: _report(progress, "tables", done, total))
        durable.fault_point("build:tables-written")
        meta = {
            "format": INDEX_FORMAT,
            "format_version": list(INDEX_VERSION),
            "lshdisk_version": __version__,
            "algorithm": algorithm,
            "preset": preset,
            "params": params.to_dict(),
            "seed": int(seed),
            "page_size": page_size,
            "dataset": {"n": src.n, "d": src.d, "dtype": src.dtype.name, "format": src.format,
                        "source": src.path, "fingerprint": src.fingerprint()},
            "build": {"memory_limit_bytes": memory_limit_bytes,
                      "seconds": round(time.perf_counter() - started, 3),
                      "bytes_written": counter.snapshot().bytes_written},
        }
        if train_seconds is not None:
            meta["build"]["train_seconds"] = train_seconds
        if arguments is not None:
            meta["build"]["arguments"] = arguments
        meta.update(structure)
        meta["files"] = dict(structure["files"], vectors=VECTORS_FILE)
        if arranger is not None:
            meta["layout"] = arranger.meta()
            meta["files"].update(ids=IDS_FILE, slots=SLOTS_FILE)
        documents = extra(work, meta) if extra is not None else {}
        meta.update(seal_build(work, meta))
        durable.fault_point("build:sealed")
        catalog = Catalog.create(os.path.join(work, CATALOG_DIR))
        try:
            for name, array in builder.arrays().items():
                catalog.put_array(name, array)
            for name, doc in documents.items():
                catalog.put_json(name, doc)
            catalog.put_json("index", meta)
        finally:
            catalog.close()
        durable.fault_point("build:catalog-written")
        _install(work, index_dir)
    except NoSpaceError as exc:
        _abort(builder, writer, work)
        raise NoSpaceError(f"{exc.path}: no space left on the device while building {index_dir}: "
                           f"the build needs about {needed / 2**20:.1f} MiB in {parent}, "
                           f"{durable.free_bytes(parent) / 2**20:.1f} MiB are free now; free "
                           f"space or build on another disk", errno=exc.errno, path=exc.path,
                           bytes_needed=needed) from exc
    except BaseException:
        _abort(builder, writer, work)
        raise
    finally:
        src.close()


def sample_rows(src, ids, chunk_rows, progress=None):
    """Rows ``ids`` (ascending int64) of the open source ``src``, as float32 (s, d), read in
    one pass of chunks of ``chunk_rows`` (``progress("sample", done, n)`` after each)."""
    sample = TrainingSample(ids, src.d)
    for start, rows in src.iter_chunks(chunk_rows):
        sample.add_chunk(start, rows)
        _report(progress, "sample", start + rows.shape[0], src.n)
    return sample.rows


def _abort(builder, writer, work):
    """Close what a failed build holds open (so that its space is freed) and remove it."""
    if writer is not None:
        writer.abort()
    if builder is not None:
        builder.abort()
    shutil.rmtree(work, ignore_errors=True)


def _install(work, index_dir):
    """Verify the finished build in ``work`` and publish it at ``index_dir`` atomically (an
    old index is swapped out in the same step, then removed)."""
    result = verify_index(work)
    if not result.ok:
        raise CorruptIndexError(f"the new index fails verification ({result.problems[0]}); "
                                f"{index_dir} is unchanged: check the disk and rebuild")
    durable.fault_point("build:verified")
    if os.path.exists(index_dir) and not _looks_like_index(index_dir):
        raise IndexExistsError(f"{index_dir} exists and is not an lshdisk index: refusing to "
                               f"replace it; choose another path")
    durable.publish_dir(work, index_dir)


def _looks_like_index(path):
    """True if ``path`` holds an lshdisk catalog whose metadata says it is an index, or an
    lshdisk catalog that is damaged or of another format version (an index that
    ``--overwrite`` may replace: rebuilding is the fix its errors name)."""
    if not os.path.isdir(os.path.join(path, CATALOG_DIR)):
        return False
    try:
        with catalog_lock(os.path.join(path, CATALOG_DIR)), \
                Catalog.open(os.path.join(path, CATALOG_DIR)) as catalog:
            return catalog.get_json("index").get("format") == INDEX_FORMAT
    except (CorruptCatalogError, UnsupportedVersionError):
        return True
    except (StorageError, KeyError, TypeError, ValueError, AttributeError):
        return False


def _is_model_entry(name):
    """True for the catalog entries of a termination model (not the method's arrays)."""
    return name == MODEL_DOC or name.startswith(MODEL_DOC + "/")


def _read_catalog(path, root=False):
    """(index document, method arrays) of the catalog in ``path``; with ``root``, also the
    termination model's document and arrays and the segment manifest."""
    try:
        with catalog_lock(os.path.join(path, CATALOG_DIR)), \
                Catalog.open(os.path.join(path, CATALOG_DIR)) as catalog:
            meta = catalog.get_json("index")
            names = catalog.names()
            arrays = {name: catalog.get_array(name) for name in names
                      if name not in ("index", MANIFEST_DOC) and not _is_model_entry(name)}
            if not root:
                return meta, arrays
            model_doc = catalog.get_json(MODEL_DOC) if MODEL_DOC in names else None
            model_arrays = {name: catalog.get_array(name) for name in names
                            if name.startswith(MODEL_DOC + "/")}
            n = meta.get("dataset", {}).get("n") if isinstance(meta, dict) else None
            manifest = read_manifest(catalog, n if isinstance(n, int) else 0, path)
    except CorruptCatalogError as exc:
        raise CorruptIndexError(str(exc)) from exc
    except (StorageError, KeyError) as exc:
        raise NotAnIndexError(f"{path} is not a readable lshdisk index ({exc}); rebuild "
                              f"it with 'lshdisk build'") from exc
    return meta, arrays, model_doc, model_arrays, manifest


def open(index_dir, *, cache_bytes=0, termination_model=True):  # noqa: A001 - as faiss.read_index
    """Open an index for searching.

    Parameters
    ----------
    index_dir : str or os.PathLike
    cache_bytes : int or str
        Buffer-pool capacity shared by the index's files; 0 (default) means every page access
        is a counted device read, as in the reference codes.
    termination_model : bool
        Read the tuned learned-termination model, if the catalog holds one (False: leave it
        out, e.g. to tune again an index whose model this lshdisk cannot read).

    Returns
    -------
    Index

    Raises
    ------
    NotAnIndexError
        If ``index_dir`` does not hold an lshdisk index.
    """
    return Index(index_dir, cache_bytes=cache_bytes, termination_model=termination_model)


def _search_segments(reader, q, options):
    """Search one query over every segment of ``reader`` as one index (one loop, one
    counter: :meth:`lshdisk.search.RoundSearch.search_lanes`) and merge: each segment's top
    k live points, mapped to ids (their maps' pages counted), then the k best of those.

    Returns
    -------
    sq : float64 (c,), ids : int64 (c,), order : int64 (<= k,)
        Merged squared distances and ids, and the positions of the k best.
    trace : TRACE_DTYPE array or None
    rounds : int
    kept : list of (part, sq, slots)
        Per segment, the live points verified (:func:`_segment_candidates` maps them).
    """
    k = options.k
    sqs, gids, kept = [], [], []
    found, trace, rounds = reader.search.search_lanes(q, options)
    for part, (sq, slots) in zip(reader.searched, found):
        dead = part.segment.dead
        if dead is not None:  # (verification skipped them: their distance is +inf)
            live = ~dead[slots]
            sq, slots = sq[live], slots[live]
        order = np.lexsort((slots, sq))[:k]
        sqs.append(sq[order])
        gids.append(part.ids_of(slots[order]))
        kept.append((part, sq, slots))
    sq = np.concatenate(sqs)
    ids = np.concatenate(gids)
    # Equal distances: by segment, then by row within it (as the one-segment search does,
    # so a compacted index answers as a fresh build of its points).
    order = np.argsort(sq, kind="stable")[:k]
    return sq, ids, order, trace, rounds, kept


def _segment_candidates(kept):
    """(ids int64, distances float32) of the verified live points ``kept`` by
    :func:`_search_segments` (their maps' pages read now, after the query's counts)."""
    return (np.concatenate([p.ids_of(s) for p, _, s in kept]),
            np.sqrt(np.concatenate([d for _, d, _ in kept])).astype(np.float32))


@dataclass(frozen=True, slots=True)
class SearchStats:
    """Per-query costs of one :meth:`Index.search` call; each field is an array (n_queries,).

    Every count is the query's own, as if it ran alone on the index (one disk head per
    query), whichever thread ran it.

    Attributes
    ----------
    page_reads : int64
        Pages read from the device: B+-tree nodes or table pages, and vector pages.
    seeks : int64
        Reads that were not the page right after the previous read (see storage.iostats).
    bytes_read : int64
    candidates : int64
        Points whose exact distance was computed (false-positive removal).
    cpu_seconds : float64
        CPU time of the query's thread (candidate generation and verification, I/O calls
        included).
    cache_hits : int64
        Page accesses served by the buffer pool.
    rounds : int64
        Rounds of the search (I-LSH: walk segments, see :mod:`lshdisk.ilsh`).
    """

    page_reads: np.ndarray
    seeks: np.ndarray
    bytes_read: np.ndarray
    candidates: np.ndarray
    cpu_seconds: np.ndarray
    cache_hits: np.ndarray
    rounds: np.ndarray

    def __getitem__(self, name):
        return getattr(self, name)

    def keys(self):
        return list(self.__slots__)

    def mean(self):
        """Means over the queries, as a dict."""
        return {k: float(np.mean(getattr(self, k))) if len(getattr(self, k)) else 0.0
                for k in self.__slots__}


class _ReaderPart:
    """One segment's view inside a reader: its vector store, slot -> local id map (a
    partition layout), local id -> id map (a compacted segment that dropped ids), search
    loop and segment."""

    __slots__ = ("vectors", "id_map", "global_map", "searcher", "segment")

    def __init__(self, vectors, id_map, global_map, searcher, segment):
        self.vectors, self.id_map, self.global_map = vectors, id_map, global_map
        self.searcher, self.segment = searcher, segment

    def ids_of(self, slots):
        """Ids of the points in rows ``slots`` (int64 (c,)) of this segment's vector file
        (the maps' pages read through the reader's counter)."""
        local = slots if self.id_map is None else self.id_map.fetch(slots)[:, 0]
        if self.global_map is not None:
            return self.global_map.fetch(local)[:, 0]
        return local + self.segment.entry.id_start


class _Reader:
    """One thread's view of an open index: its own page-file handles (one shared buffer
    pool), one I/O counter over every segment's files, and per segment a vector store,
    searcher state and search loop. Used by one thread at a time."""

    def __init__(self, index, segments, generation):
        self.counter = IOCounter()
        self.files = []
        self.generation = generation
        self.parts = []
        try:
            for seg in segments:
                files = seg.metadata.files

                def open_file(name, kind, seg=seg):
                    return self._open_file(seg, name, kind)

                vectors = VectorStore(open_file(files["vectors"], VECTORS_KIND))
                id_map = (VectorStore(open_file(files["ids"], VECTORS_KIND))
                          if "ids" in files else None)
                global_map = (VectorStore(open_file(files["global_ids"], VECTORS_KIND))
                              if seg.entry.id_map is not None else None)
                searcher = seg.method.searcher(open_file, seg.metadata.method, seg.arrays,
                                               seg.params, vectors.n)
                self.parts.append(_ReaderPart(vectors, id_map, global_map, searcher, seg))
            first = self.parts[0]
            #: True when answers need no mapping beyond the layout's (one segment of ids
            #: 0 .. n - 1, nothing deleted): the search path of an index without segments.
            self.plain = len(self.parts) == 1 and first.global_map is None and \
                first.segment.dead is None and first.segment.entry.id_start == 0
            beta = first.segment.params.beta
            #: The segments searched: those with a live point (all, if none has).
            self.searched = [p for p in self.parts
                             if p.segment.dead is None or not p.segment.dead.all()] or self.parts
            self.search = RoundSearch.of_lanes(
                [(p.searcher, p.vectors, p.segment.dead) for p in self.searched],
                self.counter, beta)
            self.vectors = first.vectors
            #: slot -> source id (a partition layout), read through this reader's counter.
            self.id_map = first.id_map
        except BaseException:
            self.close()
            raise

    def _open_file(self, seg, name, kind):
        pf = PageFile.open(os.path.join(seg.path, name), counter=self.counter,
                           buffer_pool=seg.buffer_pool, kind=kind)
        self.files.append(pf)
        check_file(pf, seg.meta, name)
        return pf

    def close(self):
        for pf in self.files:
            pf.close()


class _Segment:
    """One segment of an open index (shared by its readers): where it is, its typed
    metadata, parameters and catalog arrays, its manifest entry and its deleted slots."""

    def __init__(self, path, entry, meta, arrays, buffer_pool, index_path):
        self.path, self.entry, self.meta, self.arrays = path, entry, meta, arrays
        self.buffer_pool = buffer_pool
        self.metadata = IndexMeta.from_dict(meta, path=path,
                                            method_meta=lambda a: registry.method(a).meta_cls)
        self.method = registry.method(self.metadata.algorithm)
        try:
            self.dtype = np.dtype(self.metadata.dataset.dtype)
            self.params = self.method.params_cls(**self.metadata.params)
        except (TypeError, ValueError) as exc:
            raise CorruptIndexError(f"{path}: the index metadata's dtype or parameters are "
                                    f"damaged ({exc}); rebuild the index") from exc
        self.n = self.metadata.dataset.n
        if self.n != entry.n:
            raise CorruptIndexError(f"{index_path}: segment {entry.name} holds {self.n} points, "
                                    f"the manifest says {entry.n}: the index is damaged; "
                                    f"rebuild it")
        #: bool (n,) over the segment's slots, True where the point is deleted; or None.
        self.dead = None

    def local_ids(self, ids):
        """(positions, local ids) of those of ``ids`` (ascending int64) this segment holds."""
        e = self.entry
        if e.id_start is not None:
            lo, hi = np.searchsorted(ids, [e.id_start, e.id_start + e.n])
            return np.arange(lo, hi), ids[lo:hi] - e.id_start
        own = read_id_file(os.path.join(self.path, self.metadata.files["global_ids"]),
                           self.meta["file_facts"][self.metadata.files["global_ids"]])
        pos = np.searchsorted(own, ids)
        pos_c = np.minimum(pos, own.size - 1)
        hit = own[pos_c] == ids
        return np.flatnonzero(hit), pos[hit]

    def slots(self, local):
        """Rows of the vector file of local ids ``local`` (int64): the layout's id -> slot
        map, only the pages that hold them read."""
        if "ids" not in self.metadata.files:
            return local
        name = self.metadata.files["slots"]
        with PageFile.open(os.path.join(self.path, name), kind=VECTORS_KIND) as pf:
            check_file(pf, self.meta, name)
            return VectorStore(pf).fetch(np.asarray(local, dtype=np.int64))[:, 0]


class Index:
    """An open lshdisk index. Use :func:`lshdisk.open` or :func:`lshdisk.build`.

    Any number of threads may call :meth:`search` at once: each call takes a reader of its
    own (page-file handles, counter, searcher state), made on first need and kept for later
    calls, so results and per-query counts do not depend on what other threads do (with a
    buffer pool, which accesses are hits does).

    Attributes
    ----------
    path : str
    algorithm : str
    n, d : int
    dtype : numpy dtype
        Storage dtype of the vectors.
    params : QALSHParams or C2LSHParams
    meta : dict
        The catalog's metadata.
    counter : storage.IOCounter
        I/O of the first reader only; with several readers (threads) use :meth:`io_total`
        or the per-query :class:`SearchStats`, and :meth:`set_trace` to observe every read.
    """

    def __init__(self, index_dir, *, cache_bytes=0, termination_model=True):
        self.path = os.path.abspath(os.fspath(index_dir))
        self._readers = []
        self._idle = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._changing = False
        self._closed = False
        self._trace = None
        self._generation = 0
        self._maps = {}
        self._options = {"cache_bytes": parse_bytes(cache_bytes, name="cache_bytes"),
                         "termination_model": termination_model}
        durable.remove_leftovers(os.path.dirname(self.path))  # and rolls back a cut replacement
        self._load()

    def _load(self):
        """Read the catalog, the manifest, every segment's catalog and the tombstones; make
        the first reader."""
        if not os.path.isdir(self.path):
            raise NotAnIndexError(f"{self.path} is not a directory: pass the INDEX_DIR given to "
                                  f"'lshdisk build'")
        if not os.path.isdir(os.path.join(self.path, CATALOG_DIR)):
            raise NotAnIndexError(f"{self.path} is not an lshdisk index (no catalog/): pass the "
                                  f"INDEX_DIR given to 'lshdisk build'")
        for attempt in range(_LOAD_ATTEMPTS):
            meta, arrays, model_doc, model_arrays, manifest = _read_catalog(self.path,
                                                                            root=True)
            buffer_pool = BufferPool(self._options["cache_bytes"])
            try:
                segments = self._read_segments(meta, arrays, manifest, buffer_pool)
                with self._lock:
                    generation = self._generation + (1 if hasattr(self, "_segments") else 0)
                first = _Reader(self, segments, generation)  # opens every segment's files
                break
            except (CorruptIndexError, NotAnIndexError, FileNotFoundError):
                # A change by another process may have replaced what this manifest names
                # between the two reads: read again if the manifest moved.
                if attempt + 1 == _LOAD_ATTEMPTS or not self._moved(meta, manifest):
                    raise
        root = segments[0]
        model = None
        if model_doc is not None and self._options["termination_model"]:
            def get_model_array(name):
                if name not in model_arrays:
                    raise KeyError(name)
                return model_arrays[name]
            model = TerminationModel.from_catalog(model_doc, get_model_array, path=self.path)
        with self._lock:  # one step: a reader made meanwhile sees the old view or the new
            self._generation = generation
            self.manifest = manifest
            self.buffer_pool = buffer_pool
            self._segments = segments
            self.metadata = root.metadata
            self.meta = meta
            self.algorithm = self.metadata.algorithm
            self._method = root.method
            self.d = root.metadata.dataset.d
            #: Points a search can return (over every segment, deleted ones left out).
            self.n = manifest.live
            self.dtype, self.params = root.dtype, root.params
            self._arrays = arrays
            #: The tuned learned-termination model (lshdisk tune), or None.
            self.termination_model = model
            first.counter.set_trace(self._trace)
            self._readers.append(first)
        self._release(first)
        self.counter = first.counter
        self.vectors = first.vectors
        self._searcher = first.search.searcher

    def _moved(self, meta, manifest):
        """True if the index on disk is no longer the one ``meta`` and ``manifest`` describe
        (another build id, or another manifest generation)."""
        try:
            now_meta, _, _, _, now = _read_catalog(self.path, root=True)
        except (NotAnIndexError, CorruptIndexError):
            return True
        return (now_meta.get("build_id"), now.generation) != (meta.get("build_id"),
                                                              manifest.generation)

    def _read_segments(self, meta, arrays, manifest, buffer_pool):
        """The :class:`_Segment` list of ``manifest``, each with its deleted rows."""
        segments = []
        for entry in manifest.segments:
            if entry.name == ".":
                seg_meta, seg_arrays = meta, arrays
            else:
                seg_meta, seg_arrays = _read_catalog(os.path.join(self.path, entry.name))[:2]
            segments.append(_Segment(os.path.join(self.path, entry.name) if entry.name != "."
                                     else self.path, entry, seg_meta, seg_arrays,
                                     buffer_pool, self.path))
        root = segments[0]
        for seg in segments[1:]:
            if (seg.metadata.algorithm, seg.metadata.dataset.d, seg.metadata.dataset.dtype,
                    seg.metadata.page_size) != (root.metadata.algorithm, root.metadata.dataset.d,
                                                root.metadata.dataset.dtype,
                                                root.metadata.page_size):
                raise CorruptIndexError(f"{self.path}: segment {seg.entry.name} is not of this "
                                        f"index's method, dimension, dtype or page size: the "
                                        f"index is damaged; rebuild it")
        if manifest.tombstones is not None:
            dead = read_id_file(os.path.join(self.path, manifest.tombstones),
                                manifest.tombstone_facts)
            for seg in segments:
                _, local = seg.local_ids(dead)
                if local.size:
                    mask = np.zeros(seg.n, dtype=bool)
                    mask[seg.slots(local)] = True
                    seg.dead = mask
        return segments

    @property
    def segment_count(self):
        """Segments of the index (1 for an index as built, :mod:`lshdisk.segments`)."""
        return len(self._segments)

    def _require_plain(self, what):
        """ValueError unless the index is one segment of ids 0 .. n - 1 with nothing
        deleted (what ``what`` needs)."""
        m = self.manifest
        if len(m.segments) > 1 or m.tombstones is not None or m.segments[0].id_map is not None:
            raise ValueError(f"{what} needs an index of one segment with no deletions; "
                             f"{self.path} has {len(m.segments)} segment(s) and "
                             f"{m.tombstone_count} deleted id(s): run 'lshdisk compact "
                             f"{self.path}' first")

    def _reload(self):
        """See the index as it is on disk now (after an insert, delete or compaction through
        this handle): idle readers are closed, busy ones when their search ends."""
        with self._lock:
            if self._closed:
                raise ValueError(f"index {self.path} is closed")
        self._load()
        with self._lock:
            gen = self._generation
            idle = [r for r in self._idle if r.generation != gen]
            self._idle = [r for r in self._idle if r.generation == gen]
            self._readers = [r for r in self._readers if r.generation == gen]
            maps, self._maps = self._maps, {}
        for reader in idle:
            reader.close()
        for store in maps.values():
            store.page_file.close()

    @property
    def layout(self):
        """``"source"`` or ``"partition"`` (:mod:`lshdisk.layout`)."""
        return self.metadata.doc.get("layout", {}).get("kind", "source")

    def _id_map(self, role):
        """The slot/id map page file of ``role`` ("ids" or "slots"), opened once, with a
        counter of its own (tools' lookups are not search I/O)."""
        with self._lock:
            store = self._maps.get(role)
            if store is None:
                pf = PageFile.open(os.path.join(self.path, self.metadata.files[role]),
                                   counter=IOCounter(), kind=VECTORS_KIND)
                check_file(pf, self.meta, self.metadata.files[role])
                store = self._maps[role] = VectorStore(pf)
            return store

    def fetch(self, ids):
        """The stored vectors of live points ``ids`` over every segment.

        Parameters
        ----------
        ids : array-like of int
            Any order, repeats allowed.

        Returns
        -------
        ndarray of the index's dtype, shape (c, d)

        Raises
        ------
        ValueError
            For an id that is not a live point (never given, or deleted).

        Notes
        -----
        Disk access: the points' vector pages (and a layout's or compaction's id maps), read
        through a reader of its own: the handle's counters are untouched.
        """
        self._check_open()
        ids = np.asarray(ids, dtype=np.int64).ravel()
        order = np.argsort(ids, kind="stable")
        wanted = ids[order]
        out = np.empty((ids.size, self.d), dtype=self.dtype)
        found = np.zeros(ids.size, dtype=bool)
        with self._lock:
            segments = self._segments
        reader = _Reader(self, segments, -1)  # of its own (never pooled): no search counts
        try:
            for part in reader.parts:
                seg = part.segment
                pos, local = seg.local_ids(wanted)
                if pos.size == 0:
                    continue
                slots = seg.slots(local)
                if seg.dead is not None:
                    live = ~seg.dead[slots]
                    pos, slots = pos[live], slots[live]
                out[order[pos]] = part.vectors.fetch(slots)
                found[order[pos]] = True
        finally:
            reader.close()
        if not found.all():
            bad = int(ids[np.flatnonzero(~found)[0]])
            raise ValueError(f"id {bad} is not a live point of {self.path} (ids 0 .. "
                             f"{self.manifest.next_id - 1}, {self.manifest.tombstone_count} "
                             f"deleted): pass ids a search returned")
        return out

    def slots_of(self, ids):
        """Rows of ``vectors.pages`` holding points ``ids`` (int64 array of source row
        numbers); the ids themselves with the source layout."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.layout == "source":
            return ids
        return self._id_map("slots").fetch(ids.ravel())[:, 0].reshape(ids.shape)

    def source_ids(self, slots):
        """Source row numbers of rows ``slots`` of ``vectors.pages`` (-1 stays -1); the slots
        themselves with the source layout."""
        slots = np.asarray(slots, dtype=np.int64)
        if self.layout == "source":
            return slots
        out = slots.copy()
        keep = slots >= 0
        out[keep] = self._id_map("ids").fetch(slots[keep])[:, 0]
        return out

    def _new_reader(self):
        with self._lock:
            segments, generation = self._segments, self._generation
        reader = _Reader(self, segments, generation)
        with self._lock:
            reader.counter.set_trace(self._trace)
            if generation == self._generation:
                self._readers.append(reader)
        return reader

    def set_trace(self, sink):
        """Send every page access of every reader (every thread's searches, now and later) to
        ``sink(file_id, first_page, n_pages, access)`` (see
        :meth:`storage.IOCounter.set_trace`; ``file_id`` is that of the reader's counter, its
        path ``index.file_path(file_id)``); None stops tracing. With several threads the sink is
        called from each of them, at the same time."""
        with self._lock:
            self._trace = sink
            for reader in self._readers:
                reader.counter.set_trace(sink)

    def file_path(self, file_id):
        """The path of the page file with ``file_id`` in any reader's counter (readers open
        the index's files in one order, so an id names the same file in each)."""
        return self._readers[0].counter.file_path(file_id)

    def io_total(self):
        """The I/O of this handle so far, all readers together (storage.IOStats)."""
        with self._lock:
            readers = list(self._readers)
        total = readers[0].counter.snapshot()
        for reader in readers[1:]:
            total = total + reader.counter.snapshot()
        return total

    def _acquire(self):
        """An idle reader (a new one if every reader is busy: after the change this handle
        is making, if any; after reading the index again if another process changed it)."""
        with self._changed:
            if self._closed:
                raise ValueError(f"index {self.path} is closed")
            if self._idle:
                return self._idle.pop()
            while self._changing:  # its files are being replaced: wait for the new view
                self._changed.wait()
                if self._idle:
                    return self._idle.pop()
            meta, manifest = self.meta, self.manifest
        try:
            return self._new_reader()
        except (CorruptIndexError, FileNotFoundError):
            if not self._moved(meta, manifest):
                raise
        self._reload()  # another process changed the index since this handle read it
        return self._acquire()

    def _change(self, fn):
        """Run ``fn()`` (an insert, delete or compaction of this index), then see the index
        as it is after it; searches meanwhile use idle readers of the old view, and new
        readers wait for the new one."""
        self._check_open()
        with self._changed:
            while self._changing:
                self._changed.wait()
            self._changing = True
        try:
            result = fn()
            self._reload()
        finally:
            with self._changed:
                self._changing = False
                self._changed.notify_all()
        return result

    def _release(self, reader):
        with self._lock:
            stale = self._closed or reader.generation != self._generation
            if not stale:
                self._idle.append(reader)
        if stale:
            reader.close()

    def search(self, queries, k, *, return_stats=False, progress=None, max_candidates=None,
               termination=None, trace=False, threads=None, return_candidates=False,
               recall_target=None, start_radius=False):
        """c-approximate k-nearest-neighbour search under Euclidean distance.

        Parameters
        ----------
        queries : array-like, shape (n_queries, d) or (d,)
            Any real dtype; converted to float32.
        k : int
            Neighbours per query, >= 1.
        return_stats : bool
            Also return a :class:`SearchStats` of per-query costs.
        progress : callable, optional
            ``progress(queries_done, n_queries)``, called after each query (from the
            searching threads, one call at a time).
        max_candidates : int, optional
            Candidate cap (>= k) instead of T2's k + beta n: the knob that trades page reads
            for recall in every method.
        termination : str or TerminationPolicy
            ``"paper"`` (T1 and T2, the default), ``"budget"`` (T2 alone) or a policy object
            (:mod:`lshdisk.termination`).
        recall_target : float, optional
            Stop each query at the candidate cap the index's tuned model predicts for this
            mean recall@k (:mod:`lshdisk.learned_termination`; tune with ``lshdisk tune``).
            Only for a tuned target and the tuned k; not with ``termination`` or
            ``max_candidates``.
        start_radius : bool
            Start each query's rounds at the radius the index's tuned start model predicts,
            skipping the rounds below it (:mod:`lshdisk.learned_start`; QALSH and C2LSH,
            tuned by ``lshdisk tune``), with any termination.
        trace : bool
            Also return, per query, a structured array of one record per round
            (:data:`lshdisk.search.TRACE_DTYPE`, documented field by field there).
        return_candidates : bool
            Also return, per query, every verified candidate in the order verified: a pair
            (ids int64 (c,), distances float32 (c,)); with a trace, the first
            ``trace["verified"][r]`` of them are those verified by the end of round r.
        threads : int or None
            Threads searching the batch in parallel; None (default): one per core, at most one
            per query; 1: the calling thread alone. Each thread uses a reader of its own: 2 to
            10 bytes per indexed point (collision counts and the list of touched ids) plus
            about 1 MiB of page buffers and 2 m pages. Answers and per-query counts are those
            of ``threads=1``.

        Returns
        -------
        D : ndarray of float32, shape (n_queries, k)
            Euclidean distances, ascending; +inf where fewer than k points were found.
        I : ndarray of int64, shape (n_queries, k)
            Ids (row numbers of the source), -1 where fewer than k points were found.
        stats : SearchStats
            Only with ``return_stats=True``.
        traces : list of ndarray
            Only with ``trace=True``: one structured array per query.
        candidates : list of (ndarray, ndarray)
            Only with ``return_candidates=True``, last.

        Raises
        ------
        ValueError
            If k < 1, max_candidates < k, threads < 1, or queries have the wrong dimension or
            hold NaN/Inf; if the index is closed; for a ``recall_target`` with no tuned
            model, not tuned, for another k, or given with ``termination`` or
            ``max_candidates``; for ``start_radius`` without a tuned start model.
        TypeError
            If k, max_candidates or threads is not an int, or termination not a policy.
        """
        if recall_target is not None:
            termination = self._learned_policy(k, recall_target, termination, max_candidates)
        elif termination is None:
            termination = "paper"
        if start_radius:
            termination = self._start_policy(termination)
        options = SearchOptions(k=k, termination=termination, max_candidates=max_candidates,
                                trace=bool(trace))
        k = options.k
        if threads is None:
            threads = os.cpu_count() or 1
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
            raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._check_open()
        q = read_queries(queries, expected_dim=self.d)
        nq = q.shape[0]
        D = np.full((nq, k), np.inf, dtype=np.float32)
        I = np.full((nq, k), -1, dtype=np.int64)
        cols = {name: np.zeros(nq, dtype=np.int64) for name in
                ("page_reads", "seeks", "bytes_read", "candidates", "cache_hits", "rounds")}
        cpu = np.zeros(nq, dtype=np.float64)
        traces = [None] * nq if options.trace else None
        found = [None] * nq if return_candidates else None
        page_reads, seek_col = cols["page_reads"], cols["seeks"]
        bytes_col, hit_col = cols["bytes_read"], cols["cache_hits"]
        done = [0]
        lock = threading.Lock()

        def run(next_query):
            reader = self._acquire()
            try:
                counter, loop = reader.counter, reader.search
                while True:
                    i = next_query()
                    if i >= nq:
                        return
                    reads, seeks = counter.page_reads, counter.seeks
                    n_bytes, hits = counter.bytes_read, counter.cache_hits
                    counter.reset_head()
                    t0 = time.thread_time()
                    if reader.plain:
                        sq, ids, tr, rounds = loop.search_one(q[i], options)
                        order = np.lexsort((ids, sq))[:k]
                        D[i, :order.size] = np.sqrt(sq[order])
                        id_map = reader.id_map
                        # A partition layout: slots to source ids (the answers' map pages,
                        # counted).
                        I[i, :order.size] = ids[order] if id_map is None else \
                            id_map.fetch(ids[order])[:, 0]
                    else:
                        sq, gids, order, tr, rounds, kept = _search_segments(reader, q[i],
                                                                             options)
                        D[i, :order.size] = np.sqrt(sq[order])
                        I[i, :order.size] = gids[order]
                        ids = np.empty(sum(s.size for _, _, s in kept), dtype=np.int64)
                    cpu[i] = time.thread_time() - t0
                    page_reads[i] = counter.page_reads - reads
                    seek_col[i] = counter.seeks - seeks
                    bytes_col[i] = counter.bytes_read - n_bytes
                    hit_col[i] = counter.cache_hits - hits
                    cols["candidates"][i] = ids.size
                    cols["rounds"][i] = rounds
                    if traces is not None:
                        traces[i] = tr
                    if found is not None and reader.plain:  # (mapped after the counts)
                        found[i] = (ids if id_map is None else id_map.fetch(ids)[:, 0],
                                    np.sqrt(sq).astype(np.float32))
                    elif found is not None:
                        found[i] = _segment_candidates(kept)
                    if progress is not None:
                        with lock:
                            done[0] += 1
                            progress(done[0], nq)
            finally:
                self._release(reader)

        it, it_lock = iter(range(nq)), threading.Lock()

        def next_query():
            with it_lock:
                return next(it, nq)

        workers = min(int(threads), nq)
        if workers <= 1:
            run(next_query)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for f in [pool.submit(run, next_query) for _ in range(workers)]:
                    f.result()
        out = [D, I]
        if return_stats:
            out.append(SearchStats(cpu_seconds=cpu, **cols))
        if traces is not None:
            out.append(traces)
        if found is not None:
            out.append(found)
        return tuple(out)

    def add(self, vectors, *, memory_limit="1GiB", progress=None, format=None, dtype=None,
            dim=None):
        """Insert points as a new segment (:func:`lshdisk.updates.add`, whose parameters,
        errors and disk access these are); this handle then sees them.

        Returns
        -------
        ndarray of int64, shape (n_new,)
            The new points' ids.
        """
        from .updates import add
        return self._change(lambda: add(self.path, vectors, memory_limit=memory_limit,
                                        progress=progress, format=format, dtype=dtype,
                                        dim=dim))

    def delete(self, ids):
        """Delete points by id (:func:`lshdisk.updates.delete`); returns how many were newly
        deleted. This handle's later searches never return them."""
        from .updates import delete
        return self._change(lambda: delete(self.path, ids))

    def compact(self, *, memory_limit="1GiB", progress=None):
        """Merge the segments into one without the deleted points
        (:func:`lshdisk.updates.compact`); returns the points kept."""
        from .updates import compact
        return self._change(lambda: compact(self.path, memory_limit=memory_limit,
                                            progress=progress))

    def _learned_policy(self, k, recall_target, termination, max_candidates):
        """The LearnedBudget of ``recall_target`` (errors: see :meth:`search`)."""
        if termination is not None or max_candidates is not None:
            raise ValueError("recall_target sets the termination itself: do not pass "
                             "termination or max_candidates with it")
        self._require_plain("recall_target (a model tuned on one segment)")
        if isinstance(recall_target, bool) or \
                not isinstance(recall_target, (int, float, np.integer, np.floating)):
            raise TypeError(f"recall_target must be a float, got {type(recall_target).__name__}")
        model = self.termination_model
        if model is None:
            raise ValueError(f"{self.path} has no tuned termination model: run 'lshdisk tune "
                             f"INDEX --recall {float(recall_target):g}' first")
        model.check(k, float(recall_target))
        return LearnedBudget(model, float(recall_target), self.data_unit)

    def _start_policy(self, termination):
        """``termination`` with the tuned start radius (errors: see :meth:`search`)."""
        self._require_plain("start_radius (a model tuned on one segment)")
        model = self.termination_model
        start = None if model is None else model.start
        if start is None:
            if not self.start_feature_names:
                raise ValueError(f"{self.algorithm} has no rounds to skip: search without "
                                 f"start_radius")
            raise ValueError(f"{self.path} has no tuned start radius: run 'lshdisk tune INDEX' "
                             f"first")
        if start.features != self.start_feature_names:
            raise ValueError(f"{self.path}: the start model's features differ from this "
                             f"lshdisk's: run 'lshdisk tune INDEX' again")
        return LearnedStart(termination_policy(termination), start, self.data_unit)

    @property
    def data_unit(self):
        """The index's data unit u (:mod:`lshdisk.scale`); 1.0 for a method without one (the
        learned partitions), whose learned-termination features are then in the data's
        units."""
        unit = getattr(self.metadata.method, "unit", None)
        return 1.0 if unit is None else float(unit.u)

    @property
    def start_feature_names(self):
        """tuple of str: the searcher's start features (empty: the method has none)."""
        return tuple(self._searcher.START_FEATURES)

    def start_features(self, queries):
        """What a search knows of each query before its first round (the searcher's
        ``start_features``, the inputs of a learned start radius).

        Parameters
        ----------
        queries : array-like, shape (n_queries, d) or (d,)

        Returns
        -------
        ndarray of float64, shape (n_queries, len(start_feature_names))

        Raises
        ------
        ValueError
            If the queries have the wrong dimension or hold NaN/Inf, or the index is closed.

        Notes
        -----
        Disk access: what the start of a search reads, per query (QALSH: every tree's
        root-to-leaf descent; C2LSH: the directory pages); counted on one reader.
        """
        self._check_open()
        q = read_queries(queries, expected_dim=self.d)
        reader = self._acquire()
        try:
            step = reader.search.searcher
            out = np.zeros((q.shape[0], len(step.START_FEATURES)), dtype=np.float64)
            for i in range(q.shape[0]):
                step.begin(q[i])
                try:
                    out[i] = step.start_features(q[i])
                finally:
                    step.end()
        finally:
            self._release(reader)
        return out

    def io_report(self, stats, device="ssd", *, queries=None, scan_algorithm_ms=None):
        """Query processing time of a search on a device, beside the linear scan.

        ``QPT = seeks x seek_ms + MB_read / read_mb_per_ms + algorithm_ms`` per query (Jafari &
        Nagarkar 2021, Section 4.2); see :func:`lshdisk.report.io_report` for the parameters
        and the returned dict.

        Parameters
        ----------
        stats : SearchStats
            From ``search(..., return_stats=True)`` on this index.
        device : str, os.PathLike or cost_model.DeviceProfile
            ``"hdd"``, ``"ssd"``, a profile JSON file (``lshdisk calibrate``) or a profile.
        """
        from .report import io_report
        return io_report(self, stats, device, queries=queries, scan_algorithm_ms=scan_algorithm_ms)

    def info(self):
        """Index metadata for people and programs (dict, JSON-ready)."""
        meta = self.metadata
        files = {}
        for name in sorted(set(meta.files.values())):
            size = os.path.getsize(os.path.join(self.path, name))
            files[name] = {"pages": size // meta.page_size, "bytes": size}
        return {
            "path": self.path,
            "algorithm": self.algorithm,
            "format_version": ".".join(map(str, meta.format_version)),
            "n": self.n, "d": self.d, "dtype": self.dtype.name,
            "page_size": meta.page_size,
            "seed": meta.seed,
            "preset": meta.preset,
            "layout": meta.doc.get("layout", {"kind": "source"}),
            "params": meta.params,
            "dataset": meta.dataset.to_dict(),
            "unit": (meta.method.unit.to_dict() if hasattr(meta.method, "unit") else None),
            "structure": self._searcher.describe(),
            "vectors": {"points_per_page": self.vectors.points_per_page},
            "files": files,
            "index_bytes": sum(f["bytes"] for f in files.values()) + sum(
                s["bytes"] for s in self._segment_info()[1:]),
            "segments": self._segment_info(),
            "next_id": self.manifest.next_id,
            "deleted": self.manifest.tombstone_count,
            "build": meta.build.to_dict(),
            "termination_model": None if self.termination_model is None else {
                "k": self.termination_model.k,
                "targets": list(self.termination_model.targets),
                "figures": self.termination_model.figures,
                "start": None if self.termination_model.start is None else
                self.termination_model.start.figures,
                "sklearn": self.termination_model.sklearn},
        }

    def _segment_info(self):
        """Per segment: name, points, ids (a range, or "map") and bytes on disk."""
        out = []
        for seg in self._segments:
            e = seg.entry
            size = sum(os.path.getsize(os.path.join(seg.path, name))
                       for name in set(seg.metadata.files.values()))
            out.append({"name": e.name, "n": e.n,
                        "ids": [e.id_start, e.id_start + e.n - 1] if e.id_start is not None
                        else "map",
                        "deleted": 0 if seg.dead is None else int(seg.dead.sum()),
                        "bytes": size})
        return out

    def _check_open(self):
        if self._closed:
            raise ValueError(f"index {self.path} is closed")

    def close(self):
        """Close the index's files (those of busy readers once their search ends); later
        searches raise ValueError."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            maps, self._maps = self._maps, {}
        for reader in idle:
            reader.close()
        for store in maps.values():
            store.page_file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Index({self.path!r}, algorithm={self.algorithm!r}, n={self.n}, d={self.d})"
