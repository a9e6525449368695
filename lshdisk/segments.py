"""Segments: an index as a manifest of immutable parts, and its tombstones.

An index is a list of *segments*, each a complete, immutable set of page files over some of
the ids, all built with the index's hash functions and parameters (:mod:`lshdisk.updates`
builds them: inserts, compaction, and :mod:`lshdisk.distributed`'s sharded builds). The
index directory's own files are the first segment (``"."``); later ones are complete index
directories under ``segments/``::

    INDEX_DIR/
        catalog/                    "index": the first segment's document; "segments": the manifest
        vectors.pages, trees.pages  the first segment's files
        segments/s000001/           a segment: catalog/ and page files of its own
        tombstones-000002.pages     the ids deleted so far (one int64 column, ascending)

The manifest (catalog document ``"segments"``, :class:`Manifest`) names the segments, the
ids each holds (a range ``id_start ..`` or, after a compaction that dropped ids, a page file
of its ids), the next id to hand out and the tombstone file. An index without the document
is one segment of ids ``0 .. n - 1`` with no tombstones: every index built before segments
existed opens unchanged.

Every change writes its new files first (a segment directory published whole, a tombstone
file under a new name, each fsynced) and then switches the manifest in one LMDB write
transaction: a reader, or a process killed at any point, sees the manifest before or after
the switch, never a mixture. Files no manifest names are leftovers of an interrupted change;
the next change removes them (:func:`unreferenced`).

Tombstones are a vector page file of one int64 column (:mod:`lshdisk.vector_store`: a
checksum per page), whose page count and content digest the manifest records, so a file of
another generation is refused.
"""

import os
import re
import threading
from dataclasses import dataclass

import numpy as np

from storage import PageFile, durable
from storage.catalog import Catalog

from .errors import CorruptIndexError, UnsupportedIndexVersionError
from .vector_store import VECTORS_KIND, VectorStore, VectorStoreWriter

__all__ = ["catalog_lock", "commit_manifest", "MANIFEST_DOC", "MANIFEST_FORMAT", "MANIFEST_VERSION", "SEGMENTS_DIR",
           "GLOBAL_IDS_FILE", "SegmentEntry", "Manifest", "read_manifest", "write_id_file",
           "read_id_file", "unreferenced", "segment_name", "tombstone_name"]

MANIFEST_DOC = "segments"
MANIFEST_FORMAT = "lshdisk-segments"
MANIFEST_VERSION = (1, 0)
SEGMENTS_DIR = "segments"
#: A compacted segment's ids (local id -> id), when the compaction dropped some.
GLOBAL_IDS_FILE = "global-ids.pages"
_SEGMENT_RE = re.compile(r"^s\d{6,}$")
_TOMBSTONE_RE = re.compile(r"^tombstones-\d{6,}\.pages$")
#: Rows of an id file read at a time.
_ID_CHUNK = 1 << 17


_LOCKS = {}
_LOCKS_LOCK = threading.Lock()


def catalog_lock(catalog_dir):
    """The process's lock of the catalog in ``catalog_dir``: held while a thread has it open,
    since one process may not hold a catalog open for reading and for writing at once
    (:mod:`storage.catalog`), so that a change's manifest switch and another thread's open
    wait for each other instead of failing."""
    key = os.path.abspath(os.fspath(catalog_dir))
    with _LOCKS_LOCK:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = threading.Lock()
        return lock


def segment_name(generation):
    """The directory of the segment a change of ``generation`` adds: ``segments/sNNNNNN``."""
    return f"{SEGMENTS_DIR}/s{int(generation):06d}"


def tombstone_name(generation):
    """The tombstone file a delete of ``generation`` writes."""
    return f"tombstones-{int(generation):06d}.pages"


def _bad(path, what):
    return CorruptIndexError(f"{path}: the segment manifest {what}: the catalog is damaged; "
                             f"rebuild the index")


def _int(doc, key, path, minimum=0):
    value = doc.get(key) if isinstance(doc, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(path, f"field {key} should be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentEntry:
    """One segment of an index.

    Attributes
    ----------
    name : str
        Its directory, relative to the index (``"."``: the index's own files).
    n : int
        Rows it holds (its local ids 0 .. n - 1).
    id_start : int or None
        Its ids are ``id_start + local id``; or None, and
    id_map : str or None
        a page file in the segment's directory holds its ids (int64, ascending, local id
        order): a compaction that dropped deleted ids keeps the others' ids.
    """

    name: str
    n: int
    id_start: int | None = None
    id_map: str | None = None

    def __post_init__(self):
        if (self.id_start is None) == (self.id_map is None):
            raise ValueError("a segment has either id_start or id_map")

    def to_dict(self):
        out = {"name": self.name, "n": self.n}
        if self.id_start is not None:
            out["id_start"] = self.id_start
        else:
            out["id_map"] = self.id_map
        return out

    @classmethod
    def from_dict(cls, doc, path):
        name = doc.get("name") if isinstance(doc, dict) else None
        if not isinstance(name, str) or not (name == "." or (
                name.startswith(SEGMENTS_DIR + "/") and _SEGMENT_RE.match(name.split("/", 1)[1]))):
            raise _bad(path, f"names a segment {name!r}")
        n = _int(doc, "n", path, minimum=1)
        if "id_start" in doc:
            return cls(name=name, n=n, id_start=_int(doc, "id_start", path))
        id_map = doc.get("id_map")
        if id_map != GLOBAL_IDS_FILE:
            raise _bad(path, f"gives segment {name} the id map {id_map!r}")
        return cls(name=name, n=n, id_map=id_map)


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """The segments of an index, its next id and its tombstones.

    Attributes
    ----------
    generation : int
        Changes made so far (0: as built); names the files of the next change.
    next_id : int
        The id the next inserted point gets (ids are never reused).
    segments : tuple of SegmentEntry
        In ascending order of their ids.
    tombstones : str or None
        The tombstone file (in the index directory), None with no deleted ids.
    tombstone_count : int
    tombstone_facts : dict or None
        ``{"page_count": int, "digest": hex}`` of the tombstone file.
    """

    generation: int
    next_id: int
    segments: tuple
    tombstones: str | None = None
    tombstone_count: int = 0
    tombstone_facts: dict | None = None

    @classmethod
    def single(cls, n):
        """The manifest of an index without one: one segment of ids 0 .. n - 1."""
        return cls(generation=0, next_id=int(n),
                   segments=(SegmentEntry(name=".", n=int(n), id_start=0),))

    @property
    def rows(self):
        """Rows over every segment (deleted ones included)."""
        return sum(s.n for s in self.segments)

    @property
    def live(self):
        """Points a search can return: rows less tombstones."""
        return self.rows - self.tombstone_count

    def to_dict(self):
        return {"format": MANIFEST_FORMAT, "format_version": list(MANIFEST_VERSION),
                "generation": self.generation, "next_id": self.next_id,
                "segments": [s.to_dict() for s in self.segments],
                "tombstones": None if self.tombstones is None else {
                    "file": self.tombstones, "count": self.tombstone_count,
                    **self.tombstone_facts}}

    @classmethod
    def from_dict(cls, doc, path):
        """Read a manifest document.

        Raises
        ------
        CorruptIndexError
            For a field missing or of the wrong type, or segments out of id order.
        UnsupportedIndexVersionError
            For an unknown major version.
        """
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise _bad(path, "is not a segment manifest")
        version = doc.get("format_version")
        if not (isinstance(version, list) and len(version) == 2):
            raise _bad(path, f"has format_version {version!r}")
        if version[0] != MANIFEST_VERSION[0]:
            raise UnsupportedIndexVersionError(
                f"{path} has segment manifest format {version[0]}.{version[1]}; this lshdisk "
                f"reads {MANIFEST_VERSION[0]}.x: upgrade lshdisk")
        segs = doc.get("segments")
        if not isinstance(segs, list) or not segs:
            raise _bad(path, "lists no segments")
        segments = tuple(SegmentEntry.from_dict(s, path) for s in segs)
        if segments[0].name != "." or len({s.name for s in segments}) != len(segments):
            raise _bad(path, "does not start with the index's own segment, or repeats one")
        last = -1
        for s in segments[1:]:
            if s.id_start is None or s.id_start <= last:
                raise _bad(path, f"lists segment {s.name} out of id order")
            last = s.id_start + s.n - 1
        ts = doc.get("tombstones")
        if ts is None:
            file, count, facts = None, 0, None
        else:
            file = ts.get("file") if isinstance(ts, dict) else None
            if not isinstance(file, str) or not _TOMBSTONE_RE.match(file):
                raise _bad(path, f"names the tombstone file {file!r}")
            count = _int(ts, "count", path)
            facts = {"page_count": _int(ts, "page_count", path, minimum=1),
                     "digest": str(ts.get("digest"))}
        return cls(generation=_int(doc, "generation", path), next_id=_int(doc, "next_id", path),
                   segments=segments, tombstones=file, tombstone_count=count,
                   tombstone_facts=facts)


def read_manifest(catalog, n, path):
    """The manifest in ``catalog`` (a :class:`storage.catalog.Catalog`), or the one-segment
    manifest of an index of ``n`` points that has none.

    Raises
    ------
    CorruptIndexError, UnsupportedIndexVersionError
        See :meth:`Manifest.from_dict`.
    """
    if MANIFEST_DOC not in catalog.names():
        return Manifest.single(n)
    return Manifest.from_dict(catalog.get_json(MANIFEST_DOC), path)


def commit_manifest(index_dir, manifest):
    """Switch the index in ``index_dir`` to ``manifest`` (:class:`Manifest`): one
    synchronous LMDB write transaction of its catalog, under :func:`catalog_lock`."""
    path = os.path.join(index_dir, "catalog")
    with catalog_lock(path), Catalog.open(path, readonly=False) as catalog:
        catalog.put_json(MANIFEST_DOC, manifest.to_dict())


# ---------------------------------------------------------------------------- id files

def write_id_file(path, chunks, *, page_size):
    """Write int64 ids, given as an iterable of 1-D arrays, to a new page file, in that
    order (tombstones and a compacted segment's ids are ascending; a layout's maps are
    permutations).

    Returns
    -------
    (count, facts) : (int, dict)
        Ids written and ``{"page_count", "digest"}`` of the finished, fsynced file.

    Raises
    ------
    NoSpaceError, WriteFailedError
        A write or the fsync failed (the file is removed).
    """
    writer = VectorStoreWriter(path, d=1, dtype=np.int64, page_size=page_size)
    try:
        for ids in chunks:
            writer.append(np.asarray(ids, dtype=np.int64).reshape(-1, 1))
        writer.finish()
    except BaseException:
        writer.abort()
        if os.path.exists(path):
            os.remove(path)
        raise
    with PageFile.open(path, kind=VECTORS_KIND) as pf:
        facts = {"page_count": pf.page_count, "digest": pf.content_digest.hex()}
    durable.fsync_dir(os.path.dirname(os.path.abspath(path)))
    return writer.n, facts


def read_id_file(path, facts=None, *, counter=None):
    """All ids of an id file (int64 (count,), as written), read in chunks.

    Parameters
    ----------
    facts : dict, optional
        ``{"page_count", "digest"}`` the file must have.

    Raises
    ------
    CorruptIndexError
        If the file is missing, damaged (a page checksum fails) or not the one ``facts``
        names.
    """
    try:
        pf = PageFile.open(path, kind=VECTORS_KIND, counter=counter)
    except FileNotFoundError:
        raise CorruptIndexError(f"{path} is missing: the index is damaged; put it back or "
                                f"rebuild the index") from None
    with pf:
        if facts is not None and (pf.page_count != facts["page_count"]
                                  or pf.content_digest.hex() != facts["digest"]):
            raise CorruptIndexError(f"{path} is not the file the segment manifest names "
                                    f"({pf.page_count} pages, digest "
                                    f"{pf.content_digest.hex()[:12]}): the index is damaged; "
                                    f"rebuild it")
        store = VectorStore(pf)
        out = np.empty(store.n, dtype=np.int64)
        for s in range(0, store.n, _ID_CHUNK):
            e = min(store.n, s + _ID_CHUNK)
            out[s:e] = store.fetch(np.arange(s, e, dtype=np.int64))[:, 0]
        return out


def unreferenced(index_dir, manifest):
    """Paths of segment directories and tombstone files in ``index_dir`` that ``manifest``
    does not name: leftovers of a change that was interrupted (remove them only while
    holding the index's lock)."""
    named = {s.name for s in manifest.segments}
    out = []
    seg_root = os.path.join(index_dir, SEGMENTS_DIR)
    if os.path.isdir(seg_root):
        for entry in sorted(os.listdir(seg_root)):
            if f"{SEGMENTS_DIR}/{entry}" not in named:
                out.append(os.path.join(seg_root, entry))
    for entry in sorted(os.listdir(index_dir)):
        if _TOMBSTONE_RE.match(entry) and entry != manifest.tombstones:
            out.append(os.path.join(index_dir, entry))
    return out
