"""Integrity of an index: page files tied to their catalog, and a full check of every page.

A build derives a 16-byte *build id* from its inputs and the content digests of its page
files (:func:`seal_build`), writes it into every page file's header and records, in the
catalog's ``index`` document, the id and each file's kind, page size, page count and content
digest (``file_facts``; layout in :mod:`storage.format`). Opening an index compares each page
file's header with those facts (:func:`check_file`): a file copied in from another build,
another page size or another dataset is refused at once, from its header page alone.

:func:`verify_index` is the full check, modelled on SQLite's ``PRAGMA integrity_check``: it
reads every catalog value (checksums), every page of every file (CRC32 and page number in
the trailer), recomputes the content digests, and checks the facts that tie the files
together (vector count and dimension, tree and table page ranges, hash-function shapes).
It lists every problem it finds rather than stopping at the first.
"""

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field

import numpy as np

from storage import PageFile
from storage.catalog import Catalog
from storage.errors import CorruptPageError, StorageError
from .errors import CorruptIndexError
from .segments import MANIFEST_DOC, Manifest, catalog_lock, read_id_file

__all__ = ["seal_build", "check_file", "verify_index", "VerifyResult"]

_CATALOG_DIR = "catalog"
_RUN_BYTES = 1 << 20  # pages read per call while verifying
_MAX_LISTED = 10  # problems listed per file; the rest are counted
_CRC = struct.Struct("<I")
#: Metadata keys that name a build's inputs (the build id is derived from them). Not the
#: algorithm: QALSH and I-LSH indexes of equal parameters share their files byte for byte.
_INPUT_KEYS = ("format", "format_version", "lshdisk_version", "params", "seed", "page_size")


def _dump(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _facts_of(pf):
    return {"kind": pf.kind, "page_size": pf.page_size, "page_count": pf.page_count,
            "digest": pf.content_digest.hex()}


def seal_build(work_dir, meta):
    """Derive the build id of the finished files in ``work_dir``, stamp it into each, and
    return the metadata entries that record them.

    Parameters
    ----------
    work_dir : str
        The build's directory; ``meta["files"]`` names its page files.
    meta : dict
        The index metadata, without ``build_id`` and ``file_facts`` yet.

    Returns
    -------
    dict
        ``{"build_id": hex, "file_facts": {file name: {"kind", "page_size", "page_count",
        "digest"}}}``, to merge into ``meta``.

    Raises
    ------
    NoSpaceError, WriteFailedError
        Rewriting a header page failed.

    Notes
    -----
    Disk access: reads and rewrites the header page of each page file, one ``fsync`` each.
    """
    facts = {}
    for name in sorted(set(meta["files"].values())):
        with PageFile.open(os.path.join(work_dir, name)) as pf:
            facts[name] = _facts_of(pf)
    inputs = {key: meta.get(key) for key in _INPUT_KEYS}
    inputs["dataset"] = {k: v for k, v in meta["dataset"].items() if k != "source"}
    build_id = hashlib.blake2b(_dump({"inputs": inputs, "files": facts}), digest_size=16).digest()
    for name in facts:
        PageFile.stamp_build_id(os.path.join(work_dir, name), build_id)
    return {"build_id": build_id.hex(), "file_facts": facts}


def check_file(pf, meta, name):
    """Refuse page file ``pf`` (opened as ``name`` of an index) unless its header matches the
    facts the index's catalog records for it.

    Raises
    ------
    CorruptIndexError
        Naming the file: no facts recorded, another page size, another build, another page
        count or content.

    Notes
    -----
    Disk access: none (the header was read when ``pf`` was opened).
    """
    facts = meta.get("file_facts", {}).get(name)
    build_id = meta.get("build_id")
    if facts is None or build_id is None:
        raise CorruptIndexError(f"{pf.path}: the catalog records no build id or facts for "
                                f"{name}: the index is damaged; rebuild it")
    if pf.page_size != facts["page_size"]:
        raise CorruptIndexError(f"{pf.path} has {pf.page_size}-byte pages but this index was "
                                f"built with {facts['page_size']}-byte pages: the file belongs "
                                f"to another build; put back this build's {name} or rebuild")
    if pf.build_id.hex() != build_id:
        raise CorruptIndexError(f"{pf.path} belongs to another build (build id "
                                f"{pf.build_id.hex()[:12]}, this index's is {build_id[:12]}): "
                                f"put back this build's {name} or rebuild the index")
    if pf.page_count != facts["page_count"] or pf.content_digest.hex() != facts["digest"] \
            or pf.kind != facts["kind"]:
        raise CorruptIndexError(f"{pf.path} has {pf.page_count} {pf.kind!r} pages with content "
                                f"digest {pf.content_digest.hex()}, the catalog records "
                                f"{facts['page_count']} {facts['kind']!r} pages with "
                                f"{facts['digest']}: the file is damaged; rebuild the index")


@dataclass
class VerifyResult:
    """What :func:`verify_index` checked and found.

    Attributes
    ----------
    path : str
    files : dict of str to int
        Pages read and checked per page file.
    catalog_entries : int
        Catalog values read and checked.
    problems : list of str
        One line each; empty if the index is sound.
    """

    path: str
    files: dict = field(default_factory=dict)
    catalog_entries: int = 0
    problems: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.problems

    def to_dict(self):
        return {"path": self.path, "ok": self.ok, "files": dict(self.files),
                "catalog_entries": self.catalog_entries, "problems": list(self.problems)}


def verify_index(index_dir):
    """Check an index completely: catalog checksums, every page of every file, the facts
    that tie the files to the catalog and to each other.

    Parameters
    ----------
    index_dir : str or os.PathLike

    Returns
    -------
    VerifyResult
        ``problems`` lists what is wrong (up to 10 damaged pages per file are named, the
        rest counted). Never raises for damage it finds.

    Raises
    ------
    NotADirectoryError
        ``index_dir`` is not a directory.

    Notes
    -----
    Disk access: reads every catalog value and every page of every page file once, in runs
    of up to 1 MiB (a page that fails its check is then re-read alone, to name each one).
    """
    path = os.path.abspath(os.fspath(index_dir))
    if not os.path.isdir(path):
        raise NotADirectoryError(f"{path} is not a directory: pass an INDEX_DIR")
    result = VerifyResult(path)
    meta, arrays = _verify_catalog(path, result)
    if meta is None:
        return result
    for role, name in sorted(meta.get("files", {}).items()):
        pf = _open_page_file(os.path.join(path, name), meta, name, result)
        if pf is None:
            continue
        with pf:
            _verify_pages(pf, result)
            _verify_structure(role, pf, meta, result)
    _verify_arrays(meta, arrays, result)
    _verify_id_maps(path, meta, result)
    _verify_segments(path, arrays, result)
    return result


def _verify_id_maps(path, meta, result):
    """A partition layout's maps must be inverse permutations of 0 .. n - 1 (slot -> id and
    id -> slot), and a compacted segment's ids ascending (16 bytes a point in memory)."""
    files = meta.get("files", {})
    facts = meta.get("file_facts", {})
    try:
        if "ids" in files and "slots" in files:
            ids = read_id_file(os.path.join(path, files["ids"]), facts.get(files["ids"]))
            slots = read_id_file(os.path.join(path, files["slots"]), facts.get(files["slots"]))
            n = ids.size
            ok = slots.size == n and bool(np.all((ids >= 0) & (ids < n)))
            if ok:
                ok = bool(np.array_equal(slots[ids], np.arange(n)))
            if not ok:
                result.problems.append(f"{files['ids']} and {files['slots']} are not inverse "
                                       f"permutations of the {n} points: the layout's maps are "
                                       f"damaged; rebuild the index")
        if "global_ids" in files:
            own = read_id_file(os.path.join(path, files["global_ids"]),
                               facts.get(files["global_ids"]))
            if own.size and (own[0] < 0 or np.any(np.diff(own) <= 0)):
                result.problems.append(f"{files['global_ids']}: the segment's ids are not "
                                       f"ascending and non-negative: rebuild the index")
    except (StorageError, CorruptIndexError) as exc:
        result.problems.append(str(exc))


def _verify_segments(path, arrays, result):
    """Check the segments and tombstones a manifest names (:mod:`lshdisk.segments`): each
    segment as an index of its own, its hash-function arrays equal to the index's, and the
    tombstone file against the facts the manifest records."""
    try:
        with catalog_lock(os.path.join(path, _CATALOG_DIR)), \
                Catalog.open(os.path.join(path, _CATALOG_DIR)) as catalog:
            if MANIFEST_DOC not in catalog.names():
                return
            manifest = Manifest.from_dict(catalog.get_json(MANIFEST_DOC), path)
    except (StorageError, CorruptIndexError, ValueError) as exc:
        result.problems.append(f"segment manifest: {exc}")
        return
    for entry in manifest.segments[1:]:
        seg_path = os.path.join(path, entry.name)
        if not os.path.isdir(seg_path):
            result.problems.append(f"{entry.name}: the segment the manifest names is missing")
            continue
        sub = verify_index(seg_path)
        result.catalog_entries += sub.catalog_entries
        result.files.update({f"{entry.name}/{name}": pages for name, pages in sub.files.items()})
        result.problems += [f"{entry.name}: {p}" for p in sub.problems]
        seg_meta, seg_arrays = _verify_catalog(seg_path, VerifyResult(seg_path))
        if seg_arrays is not None and arrays is not None:
            for name, array in arrays.items():
                if name in seg_arrays and not np.array_equal(seg_arrays[name], array):
                    result.problems.append(f"{entry.name}: its hash-function array {name!r} "
                                           f"differs from the index's")
        if seg_meta is not None and seg_meta.get("dataset", {}).get("n") != entry.n:
            result.problems.append(f"{entry.name}: holds {seg_meta.get('dataset', {}).get('n')} "
                                   f"points, the manifest says {entry.n}")
    if manifest.tombstones is not None:
        try:
            dead = read_id_file(os.path.join(path, manifest.tombstones), manifest.tombstone_facts)
        except (StorageError, CorruptIndexError) as exc:
            result.problems.append(f"{manifest.tombstones}: {exc}")
        else:
            result.files[manifest.tombstones] = manifest.tombstone_facts["page_count"]
            if dead.size != manifest.tombstone_count or np.any(np.diff(dead) <= 0):
                result.problems.append(f"{manifest.tombstones}: holds {dead.size} ids, not "
                                       f"{manifest.tombstone_count} ascending ones")


def _verify_catalog(path, result):
    """(meta, arrays) read from the catalog with every value's checksum checked, or
    (None, None) if the catalog or its index document cannot be read."""
    try:
        with catalog_lock(os.path.join(path, _CATALOG_DIR)), \
                Catalog.open(os.path.join(path, _CATALOG_DIR)) as catalog:
            arrays = {}
            for name in catalog.names():
                try:
                    try:
                        arrays[name] = catalog.get_array(name)
                    except TypeError:  # a JSON document
                        catalog.get_json(name)
                    result.catalog_entries += 1
                except StorageError as exc:
                    result.problems.append(f"catalog entry {name!r}: {exc}")
                    if name == "index":
                        return None, None
            meta = catalog.get_json("index")
    except (StorageError, KeyError, TypeError) as exc:
        result.problems.append(f"catalog: {exc}" if not isinstance(exc, KeyError)
                               else "catalog: no 'index' document: not an lshdisk index")
        return None, None
    if not isinstance(meta, dict) or not isinstance(meta.get("files"), dict):
        result.problems.append("catalog: the index document lists no files")
        return None, None
    return meta, arrays


def _open_page_file(file_path, meta, name, result):
    try:
        pf = PageFile.open(file_path)
    except (StorageError, OSError) as exc:
        result.problems.append(f"{name}: {exc}")
        return None
    try:
        check_file(pf, meta, name)
    except CorruptIndexError as exc:
        result.problems.append(str(exc))
    return pf


def _verify_pages(pf, result):
    """Read pages 1 .. page_count-1 of ``pf`` in runs; record damaged pages and the digest."""
    ps = pf.page_size
    per_run = max(1, _RUN_BYTES // ps)
    out = np.empty((per_run, ps), dtype=np.uint8)
    digest = hashlib.blake2b(digest_size=8)
    bad = []
    first = 1
    while first < pf.page_count:
        count = min(per_run, pf.page_count - first)
        try:
            pf.read_runs_into([first], [count], out)
            good = range(count)
        except (CorruptPageError, OSError):
            good = []
            for i in range(count):
                try:
                    pf.read_page_into(first + i, out[i])
                    good.append(i)
                except (CorruptPageError, OSError) as exc:
                    bad.append(str(exc))
        for i in good:
            digest.update(out[i, ps - _CRC.size:].tobytes())
        first += count
    result.files[os.path.basename(pf.path)] = max(0, pf.page_count - 1)
    result.problems.extend(bad[:_MAX_LISTED])
    if len(bad) > _MAX_LISTED:
        result.problems.append(f"{pf.path}: {len(bad) - _MAX_LISTED} more damaged pages")
    if not bad and pf.content_digest != bytes(8) and digest.digest() != pf.content_digest:
        result.problems.append(f"{pf.path}: its pages do not give the content digest of its "
                               f"header: pages were replaced by pages of another file")


def _verify_structure(role, pf, meta, result):
    """Facts tying a page file to the rest of the index."""
    problems = result.problems
    n = meta.get("dataset", {}).get("n")
    where = f"{pf.path}"

    def within(label, first, count):
        if first < 1 or count < 0 or first + count > pf.page_count:
            problems.append(f"{where}: {label} spans pages {first}..{first + count - 1}, outside "
                            f"the file's {pf.page_count} pages")

    if role == "vectors":
        try:
            header = json.loads(pf.app_header)
        except ValueError:
            problems.append(f"{where}: its vector header is not valid JSON")
            return
        ds = meta.get("dataset", {})
        got = (header.get("n"), header.get("d"), np.dtype(header.get("dtype", "V0")).name)
        want = (ds.get("n"), ds.get("d"), ds.get("dtype"))
        if got != want:
            problems.append(f"{where} holds n, d, dtype = {got}, the catalog says {want}")
        ppp, ppt = header.get("points_per_page", 0), header.get("pages_per_point", 0)
        pages = header.get("n", 0) * ppt if ppt > 1 or not ppp else -(-header.get("n", 0) // ppp)
        if pf.page_count != 1 + pages:
            problems.append(f"{where} has {pf.page_count} pages, {1 + pages} expected for "
                            f"{header.get('n')} vectors")
    for i, tree in enumerate(meta.get("trees", []) if role == "trees" else []):
        within(f"tree {i}'s leaves", tree["first_leaf"], tree["last_leaf"] - tree["first_leaf"] + 1)
        within(f"tree {i}'s root", tree["root_page"], 1)
        if tree["n_entries"] != n:
            problems.append(f"{where}: tree {i} holds {tree['n_entries']} entries, not n = {n}")
    if role == "tables":
        tables = meta.get("tables", {})
        for i, (first, count, entries) in enumerate(zip(tables.get("first_page", []),
                                                        tables.get("n_pages", []),
                                                        tables.get("n_entries", []))):
            within(f"table {i}", first, count)
            if entries != n:
                problems.append(f"{where}: table {i} holds {entries} entries, not n = {n}")
        directory = meta.get("directory")
        if directory:
            within("the directory", directory["first_page"], directory["n_pages"])
    m = meta.get("params", {}).get("m")
    structures = len(meta.get("trees", [])) if role == "trees" else \
        len(meta.get("tables", {}).get("first_page", [])) if role == "tables" else m
    if structures != m:
        problems.append(f"{where} holds {structures} hash structures, the parameters say m = {m}")


def _verify_arrays(meta, arrays, result):
    hash_meta = meta.get("hash", {})
    shape = hash_meta.get("shape")
    name = hash_meta.get("a")
    if name is None or arrays is None:
        return
    if name not in arrays:
        result.problems.append(f"catalog: the hash-function array {name!r} is missing")
    elif shape is not None and list(arrays[name].shape) != list(shape):
        result.problems.append(f"catalog: the hash-function array {name!r} has shape "
                               f"{list(arrays[name].shape)}, the index document says {shape}")
