"""Insert, delete and compact: changes to a built index as new segments and tombstones.

The index's layout on disk, its manifest and the atomic switch are :mod:`lshdisk.segments`'.
Each change here runs under the index's write lock (the one a build of it takes), writes its
new files completely (checked writes, fsynced), then switches the manifest in one LMDB
transaction; a kill at any step leaves the index as before the change or as after it.

- :func:`add`: a new segment of the given points, built out of core exactly as a build is
  (:func:`lshdisk.build`'s pipeline), but with the index's hash functions and parameters: the
  same Gaussian vectors, C2LSH's unit and offsets b, a learned family's trained model (no
  retraining); ids continue after the largest id ever given. Fault points
  ``insert:segment-built``, ``insert:manifest-written``.
- :func:`delete`: a new tombstone file (the old set and the new ids), then the switch. Fault
  points ``delete:tombstones-written``, ``delete:manifest-written``.
- :func:`compact`: the live points, streamed in id order to a temporary file, are built into
  one segment with the index's recorded build arguments, the derived parameters (beta =
  100/n, hence m and l for QALSH and C2LSH; a learned family's training) re-derived for the
  live n, and installed over the index in one atomic step (:func:`storage.durable.publish_dir`);
  the points keep their ids (a page file of them when some were dropped). Fault points
  ``compact:rows-written`` and then the build's and the publication's.

Deviations of a segmented index, against one built over the same points at once (measured
by ``tools/bench_segments.py``):

- The segments are searched as one index, in one loop (:class:`lshdisk.search.RoundSearch`
  over one searcher per segment): T2's cap is k + beta n with n over all segments (beta
  fixed at the first build), shared out by points, ceil(cap n_s / n) candidates for
  segment s; each round advances the segment of smallest radius; T1 compares the k-th
  distance over all segments with the smallest c R an unfinished segment has reached. So
  T1 and T2 are the paper's over the union, except that where the cap cuts a round short
  it cuts each segment at its share rather than wherever the one index's scan would have
  reached it. A point's collisions, and so the candidates at each radius, are those of
  the one index (the same hash functions); the guarantee's argument carries over up to the
  cap's split. The cost: each segment's own start (tree descents, directory pages) and,
  per round, each segment's own partly filled pages and a seek each.
- Parameters derived from n keep their build-time values in every segment until a
  compaction re-derives them.
- Deleted points still count as candidates toward T2's cap (their collisions are counted
  in the hash tables), but are never read or returned, and T1 does not count them.
- A compaction discards a tuned termination model (tuned for the old n): tune again.
"""

import os
import shutil
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from storage import durable

from . import registry
from .datasets import open_source
from .errors import DatasetError
from .index import HashBase, Index, _build_locked, _MIN_MEMORY
from .segments import (GLOBAL_IDS_FILE, MANIFEST_DOC, SEGMENTS_DIR, Manifest, SegmentEntry,
                       commit_manifest, read_id_file, segment_name, tombstone_name,
                       unreferenced, write_id_file)
from ._units import parse_bytes

__all__ = ["add", "delete", "compact"]

#: Rows a compaction copies at a time at most.
_COPY_ROWS = 1 << 16
#: Seconds a change waits for the index's lock before it reports it held.
_LOCK_WAIT_SECONDS = 2.0


def _memory(memory_limit):
    limit = parse_bytes(memory_limit, name="memory_limit")
    if limit < _MIN_MEMORY:
        raise ValueError(f"memory_limit must be at least 16MiB, got {memory_limit!r}")
    return limit


@contextmanager
def _locked(index_dir):
    """The index's write lock (the one its builds take); a holder of a moment (an open
    cleaning leftovers) is waited for, a change or build in progress is a LockedError."""
    lock = durable.TargetLock(index_dir).acquire(wait_seconds=_LOCK_WAIT_SECONDS)
    try:
        yield lock
    finally:
        lock.release()


def _clean(index_dir, manifest):
    """Remove what an interrupted change left (files the manifest does not name)."""
    gone = unreferenced(index_dir, manifest)
    for path in gone:
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    if gone:
        durable.fsync_dir(index_dir)


class _CastSource:
    """A source whose rows are converted to the index's dtype, refusing values the dtype
    cannot hold exactly."""

    def __init__(self, src, dtype):
        self._src, self.dtype = src, np.dtype(dtype)
        self.n, self.d, self.format, self.path = src.n, src.d, src.format, src.path

    def fingerprint(self):
        return self._src.fingerprint()

    def iter_chunks(self, max_rows):
        for start, rows in self._src.iter_chunks(max_rows):
            out = rows.astype(self.dtype)
            if not np.array_equal(out.astype(rows.dtype), rows):
                bad = int(np.flatnonzero((out.astype(rows.dtype) != rows).any(axis=1))[0])
                raise DatasetError(f"row {start + bad} of the new points does not fit the "
                                   f"index's dtype {self.dtype.name} exactly: convert the "
                                   f"points to {self.dtype.name} first")
            yield start, out

    def close(self):
        self._src.close()


def _open_points(source, index, format, dtype, dim):
    src = open_source(source, format=format, dtype=dtype, dim=dim)
    if src.d != index.d:
        src.close()
        raise DatasetError(f"the new points have dimension {src.d}, the index {index.path} has "
                           f"d = {index.d}: insert {index.d}-dimensional points")
    return src if src.dtype == index.dtype else _CastSource(src, index.dtype)


def add(index_dir, source, *, memory_limit="1GiB", progress=None, format=None, dtype=None,
        dim=None):
    """Insert points into a built index as a new segment.

    Parameters
    ----------
    index_dir : str or os.PathLike
    source : as for :func:`lshdisk.build`
        Points of the index's dimension, in any dtype whose values the index's dtype holds
        exactly (uint8 points into a float32 index; float points of whole numbers 0..255
        into a uint8 index). Read once, in chunks.
    memory_limit : int or str
        Peak memory of the segment build's buffers (as for :func:`lshdisk.build`).
    progress : callable, optional
        ``progress(stage, done, total)``, as for :func:`lshdisk.build`.
    format, dtype, dim : optional
        Passed to :func:`lshdisk.datasets.open_source`.

    Returns
    -------
    ids : ndarray of int64, shape (n_new,)
        The new points' ids: consecutive, after the largest id the index ever gave.

    Raises
    ------
    NotAnIndexError, CorruptIndexError
        If ``index_dir`` is not a sound index.
    DatasetError
        If the points are empty, malformed, of another dimension, hold NaN/Inf or do not fit
        the index's dtype.
    LockedError
        If another change or build of the index is running.
    NoSpaceError
        If the disk fills; the index is unchanged.

    Notes
    -----
    Disk access: a build of the new points (see :func:`lshdisk.build`) into
    ``segments/sNNNNNN`` of the index, then one catalog transaction.
    """
    index_dir = os.path.abspath(os.fspath(index_dir))
    limit = _memory(memory_limit)
    with _locked(index_dir):
        with Index(index_dir) as index:
            manifest, base, meta = index.manifest, HashBase.of(index), index.metadata
            src = _open_points(source, index, format, dtype, dim)
            layout = index.layout
        try:
            _clean(index_dir, manifest)
            seg_root = os.path.join(index_dir, SEGMENTS_DIR)
            if not os.path.isdir(seg_root):
                os.mkdir(seg_root)
                durable.fsync_dir(index_dir)
        except BaseException:
            src.close()
            raise
        generation = manifest.generation + 1
        name = segment_name(generation)
        method = registry.method(meta.algorithm)
        n_new = src.n
        _build_locked(None, os.path.join(index_dir, name), meta.algorithm, getattr(base.params, "c", None),
                      meta.page_size, limit, meta.seed, "auto", progress, None, None, None,
                      meta.preset, method.params_fn, method.builder, {}, layout, base=base,
                      src=src)
        durable.fault_point("insert:segment-built")
        first = manifest.next_id
        entry = SegmentEntry(name=name, n=n_new, id_start=first)
        commit_manifest(index_dir, replace(manifest, generation=generation, next_id=first + n_new,
                                   segments=manifest.segments + (entry,)))
        durable.fault_point("insert:manifest-written")
    return np.arange(first, first + n_new, dtype=np.int64)


def _check_ids(ids, next_id):
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu" and not (ids.dtype.kind == "f" and ids.size and
                                           np.all(np.isfinite(ids)) and
                                           np.all(ids == np.round(ids))):
        if ids.size:
            raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int64).ravel()
    if ids.size and (ids.min() < 0 or ids.max() >= next_id):
        bad = int(ids.min() if ids.min() < 0 else ids.max())
        raise ValueError(f"id {bad} is not an id of this index (its ids are 0 .. "
                         f"{next_id - 1}): pass ids the index returned")
    return np.unique(ids)


def delete(index_dir, ids):
    """Delete points by id: no later search returns them.

    Parameters
    ----------
    index_dir : str or os.PathLike
    ids : array-like of int
        Ids the index gave (any order, repeats and already deleted ids allowed).

    Returns
    -------
    int
        Points newly deleted.

    Raises
    ------
    ValueError
        For an id below 0 or at or above the next id.
    TypeError
        For ids that are not integers.
    NotAnIndexError, CorruptIndexError, LockedError, NoSpaceError
        As for :func:`add`; the index is unchanged.

    Notes
    -----
    Disk access: reads the old tombstone file (and a compacted segment's id file), writes a
    new one (8 bytes an id deleted so far) and one catalog transaction; memory: 8 bytes an
    id deleted so far, twice.
    """
    index_dir = os.path.abspath(os.fspath(index_dir))
    with _locked(index_dir):
        with Index(index_dir) as index:
            manifest = index.manifest
            ids = _check_ids(ids, manifest.next_id)
            old = (np.empty(0, np.int64) if manifest.tombstones is None else
                   read_id_file(os.path.join(index_dir, manifest.tombstones),
                                manifest.tombstone_facts))
            fresh = ids[~np.isin(ids, old)]
            held = np.zeros(fresh.size, dtype=bool)
            for seg in index._segments:  # ids compacted away earlier are no longer held
                held[seg.local_ids(fresh)[0]] = True
            fresh = fresh[held]
            page_size = index.metadata.page_size
        if fresh.size == 0:
            return 0
        _clean(index_dir, manifest)
        generation = manifest.generation + 1
        name = tombstone_name(generation)
        merged = np.union1d(old, fresh)
        count, facts = write_id_file(os.path.join(index_dir, name),
                                     (merged[s:s + _COPY_ROWS]
                                      for s in range(0, merged.size, _COPY_ROWS)),
                                     page_size=page_size)
        durable.fault_point("delete:tombstones-written")
        commit_manifest(index_dir, replace(manifest, generation=generation, tombstones=name,
                                   tombstone_count=count, tombstone_facts=facts))
        durable.fault_point("delete:manifest-written")
        if manifest.tombstones is not None:
            try:
                os.remove(os.path.join(index_dir, manifest.tombstones))
                durable.fsync_dir(index_dir)
            except OSError:
                pass  # a leftover the next change removes
    return int(fresh.size)


def _arguments(index):
    """The build arguments to repeat: those recorded, or (an index built before they were)
    its c and preset with the method's defaults."""
    args = index.metadata.build.arguments
    if args is None:
        return {"c": getattr(index.params, "c", 2.0), "preset": index.metadata.preset, "overrides": {},
                "unit": "auto", "layout": index.layout}
    return args


def _write_survivors(index, rows_path, ids_path, limit):
    """Stream the live points in id order to ``rows_path`` (raw rows) and their ids to
    ``ids_path`` (raw int64); returns (count, ids are 0 .. count - 1)."""
    d, itemsize = index.d, index.dtype.itemsize
    chunk = int(max(1, min(_COPY_ROWS, (limit // 4) // max(1, d * itemsize + 24))))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    rows_fd = os.open(rows_path, flags, 0o644)
    ids_fd = os.open(ids_path, flags, 0o644)
    count, identity = 0, True
    reader = index._acquire()
    try:
        for part in reader.parts:
            seg = part.segment
            slot_of = (seg.slots(np.arange(seg.n, dtype=np.int64))
                       if part.id_map is not None else None)
            for s in range(0, seg.n, chunk):
                local = np.arange(s, min(seg.n, s + chunk), dtype=np.int64)
                slots = local if slot_of is None else slot_of[local]
                if seg.dead is not None:
                    live = ~seg.dead[slots]
                    local, slots = local[live], slots[live]
                if local.size == 0:
                    continue
                gids = (local + seg.entry.id_start if part.global_map is None else
                        part.global_map.fetch(local)[:, 0])
                rows = part.vectors.fetch(slots)
                durable.write_all(rows_fd, np.ascontiguousarray(rows).tobytes(), path=rows_path)
                durable.write_all(ids_fd, gids.astype("<i8").tobytes(), path=ids_path)
                identity = identity and bool(np.array_equal(
                    gids, np.arange(count, count + gids.size)))
                count += gids.size
        durable.fsync_fd(rows_fd, path=rows_path)
        durable.fsync_fd(ids_fd, path=ids_path)
    finally:
        index._release(reader)
        os.close(rows_fd)
        os.close(ids_fd)
    return count, identity


def compact(index_dir, *, memory_limit="1GiB", progress=None):
    """Merge every segment into one, dropping deleted points, and install it atomically.

    The live points keep their ids; the result is the index :func:`lshdisk.build` gives on
    those points (in id order) with the index's build arguments, its parameters derived from
    n re-derived for the live n.

    Parameters
    ----------
    index_dir : str or os.PathLike
    memory_limit : int or str
        As for :func:`lshdisk.build`.
    progress : callable, optional
        ``progress(stage, done, total)``, as for :func:`lshdisk.build`.

    Returns
    -------
    int
        Points in the compacted index (an index of one segment with nothing deleted is left
        as it is).

    Raises
    ------
    ValueError
        If every point is deleted (there is nothing to build).
    NotAnIndexError, CorruptIndexError, LockedError, NoSpaceError
        As for :func:`add`; the index is unchanged.

    Notes
    -----
    Disk access: reads every live point once (by slot, through the layout's map, where the
    vectors are in a partition's order), writes them and their ids to a temporary file in
    the index directory, builds the new index beside the old one (:func:`lshdisk.build`'s
    disk access) and exchanges the two.
    """
    index_dir = os.path.abspath(os.fspath(index_dir))
    limit = _memory(memory_limit)
    with _locked(index_dir):
        index = Index(index_dir)
        try:
            manifest, meta = index.manifest, index.metadata
            if len(manifest.segments) == 1 and manifest.tombstones is None:
                return manifest.live  # one segment, nothing deleted: nothing to do
            if manifest.live == 0:
                raise ValueError(f"every point of {index_dir} is deleted: there is nothing to "
                                 f"compact; insert points or build a new index")
            _clean(index_dir, manifest)
            args = _arguments(index)
            seg_root = os.path.join(index_dir, SEGMENTS_DIR)
            if not os.path.isdir(seg_root):
                os.mkdir(seg_root)
            tmp = durable.work_path(os.path.join(seg_root, "compact"))
            os.mkdir(tmp)
            rows_path, ids_path = os.path.join(tmp, "rows.raw"), os.path.join(tmp, "ids.raw")
            durable.check_free_space(index_dir, manifest.live * (index.d * index.dtype.itemsize
                                                                 + 8), what="compacting")
            count, identity = _write_survivors(index, rows_path, ids_path, limit)
            d, dtype = index.d, index.dtype
        finally:
            index.close()
        durable.fault_point("compact:rows-written")
        method = registry.method(meta.algorithm)
        overrides = dict(method.presets.get(args["preset"], {})) if args["preset"] else {}
        overrides.update(args["overrides"])
        new_manifest = Manifest(generation=manifest.generation + 1, next_id=manifest.next_id,
                                segments=(SegmentEntry(name=".", n=count, id_start=0)
                                          if identity else
                                          SegmentEntry(name=".", n=count,
                                                       id_map=GLOBAL_IDS_FILE),))

        def extra(work, doc):
            doc["dataset"] = dict(doc["dataset"], source=None, format="compacted")
            if not identity:
                ids = np.memmap(ids_path, dtype="<i8", mode="r")
                write_id_file(os.path.join(work, GLOBAL_IDS_FILE),
                              (np.asarray(ids[s:s + _COPY_ROWS])
                               for s in range(0, count, _COPY_ROWS)),
                              page_size=meta.page_size)
                del ids
                doc["files"]["global_ids"] = GLOBAL_IDS_FILE
            return {MANIFEST_DOC: new_manifest.to_dict()}

        try:
            _build_locked(rows_path, index_dir, meta.algorithm, args["c"], meta.page_size,
                          limit, meta.seed, args["unit"], progress, "raw", dtype.name, d,
                          args["preset"], method.params_fn, method.builder, overrides,
                          args["layout"], arguments=args, extra=extra)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # (gone with the old index once installed)
    return count
