"""The index document: typed, versioned metadata of an lshdisk index.

The catalog holds one JSON document, ``index`` (layout table in :mod:`storage.format`). This
module reads it into frozen dataclasses and writes them back: :class:`IndexMeta` for what
every index has (format and version, the method, its parameters, the dataset, the build, the
files and their facts) and one class per method family for its own part
(:class:`TreesMeta` for QALSH and I-LSH, :class:`TablesMeta` for C2LSH,
:class:`PartitionsMeta` for the learned partitions). Modules read the
typed fields, never the nested dicts by string keys.

Errors, kept apart (house rule 18): a document that is not an lshdisk index's is a
:class:`~lshdisk.errors.NotAnIndexError`; an index of an unknown major format version is an
:class:`~lshdisk.errors.UnsupportedIndexVersionError` (a newer minor version is read: its
unknown fields are kept, not used); a document of the right format with a field missing or
of the wrong type is a :class:`~lshdisk.errors.CorruptIndexError` naming the field.
"""

import math
from dataclasses import dataclass, field, fields

from storage import TreeInfo

from .errors import CorruptIndexError, NotAnIndexError, UnsupportedIndexVersionError

__all__ = ["INDEX_FORMAT", "INDEX_VERSION", "IndexMeta", "DatasetMeta", "BuildMeta",
           "UnitMeta", "TreesMeta", "TablesMeta", "PartitionsMeta", "catalog_array",
           "check_version"]

INDEX_FORMAT = "lshdisk-index"
INDEX_VERSION = (1, 1)

_MISSING = object()


def _get(doc, key, kind, where, default=_MISSING):
    """``doc[key]`` checked to be of ``kind`` (a type or tuple of types); CorruptIndexError
    naming ``where.key`` if it is missing (and no default) or of another type."""
    if not isinstance(doc, dict):
        raise CorruptIndexError(f"index metadata: {where} is not a JSON object: the catalog is "
                                f"damaged; rebuild the index")
    if key not in doc:
        if default is not _MISSING:
            return default
        raise CorruptIndexError(f"index metadata: {where}.{key} is missing: the catalog is "
                                f"damaged; rebuild the index")
    value = doc[key]
    bad = isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
    if bad or not isinstance(value, kind):
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise CorruptIndexError(f"index metadata: {where}.{key} should be {names}, got "
                                f"{type(value).__name__}: the catalog is damaged; rebuild the "
                                f"index")
    return value


def _int_list(doc, key, where, length=None):
    values = _get(doc, key, list, where)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values) or (
            length is not None and len(values) != length):
        raise CorruptIndexError(f"index metadata: {where}.{key} should be a list of "
                                f"{length if length is not None else 'some'} integers: the "
                                f"catalog is damaged; rebuild the index")
    return tuple(values)


def catalog_array(arrays, name):
    """The catalog array ``name`` the metadata names; CorruptIndexError if it is missing."""
    try:
        return arrays[name]
    except KeyError:
        raise CorruptIndexError(f"the index metadata names the array {name!r}, which its catalog "
                                f"does not hold: the catalog is damaged; rebuild the index") from None


def check_version(doc, path):
    """Refuse a document that is not an index's, or of an unknown major version.

    Raises
    ------
    NotAnIndexError, UnsupportedIndexVersionError
    """
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
        fmt = doc.get("format") if isinstance(doc, dict) else None
        raise NotAnIndexError(f"{path} is not an lshdisk index (format {fmt!r})")
    version = doc.get("format_version")
    if (not isinstance(version, list) or len(version) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in version)):
        raise CorruptIndexError(f"{path}: index metadata format_version should be [major, "
                                f"minor], got {version!r}: the catalog is damaged; rebuild it")
    if version[0] != INDEX_VERSION[0]:
        raise UnsupportedIndexVersionError(
            f"{path} has index format {version[0]}.{version[1]}; this lshdisk reads "
            f"{INDEX_VERSION[0]}.x: rebuild the index or upgrade lshdisk")
    return tuple(version)


class _Fields:
    """``to_dict`` of a flat metadata dataclass: its fields as a JSON-ready dict."""

    __slots__ = ()

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetMeta(_Fields):
    """The indexed data: n points of d coordinates of ``dtype``, read from ``source``."""

    n: int
    d: int
    dtype: str
    format: str | None
    source: str | None
    fingerprint: object

    @classmethod
    def from_dict(cls, doc):
        w = "dataset"
        n, d = _get(doc, "n", int, w), _get(doc, "d", int, w)
        if n < 1 or d < 1:
            raise CorruptIndexError(f"index metadata: dataset has n = {n}, d = {d}: the "
                                    f"catalog is damaged; rebuild the index")
        return cls(n=n, d=d, dtype=_get(doc, "dtype", str, w),
                   format=_get(doc, "format", (str, type(None)), w, None),
                   source=_get(doc, "source", (str, type(None)), w, None),
                   fingerprint=doc.get("fingerprint"))


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildMeta(_Fields):
    """How the index was built: the memory limit (bytes), seconds (of which training, for
    a learned method: ``train_seconds``, else None), bytes written and the build's own
    arguments (``c``, ``preset``, ``overrides``: the parameters given rather than derived,
    ``unit``, ``layout``; None for indexes built before they were recorded), which a
    compaction repeats."""

    memory_limit_bytes: int
    seconds: float
    bytes_written: int
    train_seconds: float | None = None
    arguments: dict | None = None

    @classmethod
    def from_dict(cls, doc):
        w = "build"
        train = _get(doc, "train_seconds", (int, float, type(None)), w, None)
        return cls(memory_limit_bytes=_get(doc, "memory_limit_bytes", int, w),
                   seconds=float(_get(doc, "seconds", (int, float), w)),
                   bytes_written=_get(doc, "bytes_written", int, w),
                   train_seconds=None if train is None else float(train),
                   arguments=_get(doc, "arguments", (dict, type(None)), w, None))

    def to_dict(self):
        out = _Fields.to_dict(self)
        for key in ("train_seconds", "arguments"):
            if out[key] is None:
                del out[key]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitMeta:
    """The data unit u (:mod:`lshdisk.scale`) and the figures of its estimate."""

    u: float
    given: bool
    info: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, doc, *, default_u=None):
        """From the ``unit`` object; ``doc`` None (indexes built before the unit was
        measured) gives ``default_u`` if set."""
        if doc is None and default_u is not None:
            return cls(u=float(default_u), given=True, info={"recorded": False})
        u = float(_get(doc, "u", (int, float), "unit"))
        if not (u > 0 and math.isfinite(u)):
            raise CorruptIndexError(f"index metadata: unit.u = {u} is not a positive number: "
                                    f"the catalog is damaged; rebuild the index")
        info = {k: v for k, v in doc.items() if k not in ("u", "given")}
        return cls(u=u, given=bool(doc.get("given", False)), info=info)

    def to_dict(self):
        return dict(self.info, u=self.u, given=self.given)


@dataclass(frozen=True, slots=True, kw_only=True)
class TreesMeta:
    """QALSH's and I-LSH's part: the trees file, the projection array's catalog name and
    shape (m, d), the data unit, and one :class:`storage.TreeInfo` per projection. The
    learned families on these trees (``pca``, ``neoph``) add ``map``, the ``hash.map`` entry
    naming their map's arrays (:func:`lshdisk.maps.map_from_meta`; None: QALSH's plain
    projections ``a``), and their ``training`` figures."""

    trees_file: str
    a: str
    shape: tuple
    unit: UnitMeta
    trees: tuple
    map: dict | None = None
    training: dict | None = None

    @classmethod
    def from_dict(cls, doc):
        files, hash_ = _get(doc, "files", dict, "index"), _get(doc, "hash", dict, "index")
        shape = _int_list(hash_, "shape", "hash", 2)
        trees = _get(doc, "trees", list, "index")
        try:
            infos = tuple(TreeInfo.from_dict(t) for t in trees)
        except (TypeError, ValueError) as exc:
            raise CorruptIndexError(f"index metadata: a tree's description is damaged ({exc}); "
                                    f"rebuild the index") from exc
        if len(infos) != shape[0]:
            raise CorruptIndexError(f"index metadata: {len(infos)} trees for m = {shape[0]} "
                                    f"projections: the catalog is damaged; rebuild the index")
        return cls(trees_file=_get(files, "trees", str, "files"),
                   a=_get(hash_, "a", str, "hash"), shape=shape,
                   unit=UnitMeta.from_dict(doc.get("unit"), default_u=1.0), trees=infos,
                   map=_get(hash_, "map", (dict, type(None)), "hash", None),
                   training=_get(doc, "training", (dict, type(None)), "index", None))


#: Columns of C2LSH's per-table lists in its metadata.
TABLE_COLUMNS = ("first_page", "n_pages", "n_entries", "key_min", "key_max", "dir_entry")


@dataclass(frozen=True, slots=True, kw_only=True)
class TablesMeta:
    """C2LSH's part: the tables file, the catalog names of a (m, d) and b* (m,), the data
    unit, the bucket origin, the per-table columns (:data:`TABLE_COLUMNS`, m ints each) and
    the directory's description."""

    tables_file: str
    a: str
    b: str
    shape: tuple
    unit: UnitMeta
    origin: int
    tables: dict
    directory: dict

    @classmethod
    def from_dict(cls, doc):
        files, hash_ = _get(doc, "files", dict, "index"), _get(doc, "hash", dict, "index")
        shape = _int_list(hash_, "shape", "hash", 2)
        tables = _get(doc, "tables", dict, "index")
        columns = {name: _int_list(tables, name, "tables", shape[0]) for name in TABLE_COLUMNS}
        return cls(tables_file=_get(files, "tables", str, "files"),
                   a=_get(hash_, "a", str, "hash"), b=_get(hash_, "b", str, "hash"),
                   shape=shape, unit=UnitMeta.from_dict(_get(doc, "unit", dict, "index")),
                   origin=_get(doc, "origin", int, "index"), tables=columns,
                   directory=_get(doc, "directory", dict, "index"))


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionsMeta:
    """The learned-partition family's part (:mod:`lshdisk.kmeans`): the tables file, the
    catalog names of the mean (d,), rotation (d, m width) and centroids (m, K, width), the
    per-table columns (:data:`TABLE_COLUMNS`), the directory's description and the training
    figures."""

    tables_file: str
    mean: str
    rotation: str
    centroids: str
    shape: tuple
    tables: dict
    directory: dict
    training: dict

    @classmethod
    def from_dict(cls, doc):
        files, hash_ = _get(doc, "files", dict, "index"), _get(doc, "hash", dict, "index")
        tables = _get(doc, "tables", dict, "index")
        m = len(_get(tables, "first_page", list, "tables"))
        columns = {name: _int_list(tables, name, "tables", m) for name in TABLE_COLUMNS}
        return cls(tables_file=_get(files, "tables", str, "files"),
                   mean=_get(hash_, "mean", str, "hash"), rotation=_get(hash_, "a", str, "hash"),
                   centroids=_get(hash_, "centroids", str, "hash"),
                   shape=_int_list(hash_, "shape", "hash", 2), tables=columns,
                   directory=_get(doc, "directory", dict, "index"),
                   training=_get(doc, "training", dict, "index"))


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexMeta:
    """What every index document holds (see :mod:`storage.format` for the JSON layout).

    ``method`` is the method family's typed part (:class:`TreesMeta`, :class:`TablesMeta`),
    made by the registered method's ``meta_cls``; ``doc`` is the whole JSON document, kept
    for ``lshdisk info`` and for fields a newer minor version adds.
    """

    format_version: tuple
    lshdisk_version: str
    algorithm: str
    preset: str | None
    params: dict
    seed: int
    page_size: int
    dataset: DatasetMeta
    build: BuildMeta
    files: dict
    build_id: str | None
    file_facts: dict
    method: object
    doc: dict

    @classmethod
    def from_dict(cls, doc, *, path, method_meta):
        """Read and check an index document.

        Parameters
        ----------
        doc : dict
            The catalog's ``index`` JSON document.
        path : str
            The index directory, for messages.
        method_meta : callable
            ``method_meta(algorithm)`` -> the class of the method's part (its ``from_dict``
            reads ``doc``); raises ValueError for an unknown algorithm.

        Raises
        ------
        NotAnIndexError
            Not an lshdisk index document, or a method this lshdisk does not know.
        UnsupportedIndexVersionError
            An unknown major format version.
        CorruptIndexError
            A field missing or of the wrong type (named in the message).
        """
        version = check_version(doc, path)
        algorithm = _get(doc, "algorithm", str, "index")
        try:
            part_cls = method_meta(algorithm)
        except ValueError as exc:
            raise NotAnIndexError(f"{path} holds a {algorithm!r} index, which this lshdisk "
                                  f"cannot search: upgrade lshdisk") from exc
        files = _get(doc, "files", dict, "index")
        if not all(isinstance(v, str) for v in files.values()) or "vectors" not in files:
            raise CorruptIndexError("index metadata: files should name the vectors and the "
                                    "hash tables: the catalog is damaged; rebuild the index")
        page_size = _get(doc, "page_size", int, "index")
        return cls(format_version=version,
                   lshdisk_version=_get(doc, "lshdisk_version", str, "index", "unknown"),
                   algorithm=algorithm, preset=_get(doc, "preset", (str, type(None)), "index", None),
                   params=_get(doc, "params", dict, "index"), seed=_get(doc, "seed", int, "index"),
                   page_size=page_size,
                   dataset=DatasetMeta.from_dict(_get(doc, "dataset", dict, "index")),
                   build=BuildMeta.from_dict(_get(doc, "build", dict, "index")),
                   files=dict(files),
                   build_id=_get(doc, "build_id", (str, type(None)), "index", None),
                   file_facts=_get(doc, "file_facts", dict, "index", {}),
                   method=part_cls.from_dict(doc), doc=doc)

    def to_dict(self):
        """The JSON document (as read, or as built)."""
        return self.doc
