"""The one registry of search methods: a method is registered once, and the API, the CLI's
``--algorithm`` / ``--preset`` choices and :data:`lshdisk.ALGORITHMS` come from here.

A method is a :class:`Method`: its name, its parameter function and class, its builder and
searcher classes (contracts :class:`Builder` and :class:`lshdisk.search.RoundSearcher`) and
its named presets. Adding a method touches its own module(s) and one :func:`register` call
below.
"""

from dataclasses import dataclass, field
from typing import Callable, Protocol

from .c2lsh import C2LSHBuilder, C2LSHSearcher
from .ilsh import ILSHBuilder, ILSHSearcher
from .kmeans import KMeansBuilder, KMeansSearcher
from .learned_trees import PCABuilder
from .metadata import PartitionsMeta, TablesMeta, TreesMeta
from .neoph import NeOPHBuilder
from .params import (PRESETS, C2LSHParams, KMeansParams, LearnedTreesParams, QALSHParams,
                     c2lsh_params, kmeans_params, neoph_params, pca_params, qalsh_params)
from .qalsh import QALSHBuilder, QALSHSearcher

__all__ = ["Method", "Builder", "register", "method", "names", "preset_names"]


class Builder(Protocol):
    """What :func:`lshdisk.build` needs of a method's builder.

    ``Builder(work_dir, *, n, d, params, seed, page_size, memory_limit_bytes, counter, unit)``
    (``unit``: a fixed data unit, or None to measure one, :mod:`lshdisk.scale`) makes
    one for a build in the (temporary) index directory ``work_dir``; then
    ``add_chunk(start, rows, source_ids)`` for consecutive row chunks (ids ``start ..``; with a
    partition layout, :mod:`lshdisk.layout`, ids are slots and ``source_ids`` the rows' source
    row numbers, else None), ``finish(progress)`` returning the
    method's JSON-ready metadata (with its ``"files"``), ``arrays()`` the catalog arrays
    (name -> ndarray), and ``abort()`` on failure. ``chunk_bytes_per_row(itemsize)`` sizes
    the chunks within the memory limit.

    A learned method also has ``training_ids()`` (ascending int64 ids of the rows it trains
    on) and ``fit(sample)`` (those rows, float32 (s, d)): the build reads them in a pass of
    their own before the hashing pass.
    """

    def chunk_bytes_per_row(self, itemsize): ...

    def add_chunk(self, start, rows, source_ids=None): ...

    def finish(self, progress=None): ...

    def arrays(self): ...

    def abort(self): ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Method:
    """One search method.

    Attributes
    ----------
    name : str
        As given to ``--algorithm`` and stored in the index metadata.
    title : str
        Paper reference, for ``--help``.
    params_fn : callable
        ``params_fn(n, c=..., **overrides)`` -> parameters (derived m, l, ...).
    params_cls : type
        The parameters' dataclass (``params_cls(**index_meta["params"])``).
    builder : type
        A :class:`Builder`.
    searcher : type
        ``searcher(open_file, meta, arrays, params, n)`` -> a
        :class:`lshdisk.search.RoundSearcher`; ``meta`` is the method's typed metadata.
    meta_cls : type
        The method's part of the index document (:mod:`lshdisk.metadata`), read with
        ``meta_cls.from_dict(document)``.
    presets : dict
        Preset name -> parameter overrides.
    """

    name: str
    title: str
    params_fn: Callable
    params_cls: type
    builder: type
    searcher: type
    meta_cls: type
    presets: dict = field(default_factory=dict)


_METHODS = {}


def register(m):
    """Add method ``m`` (a :class:`Method`); its name must be new."""
    if m.name in _METHODS:
        raise ValueError(f"a method named {m.name!r} is already registered")
    _METHODS[m.name] = m
    return m


def method(name):
    """The :class:`Method` called ``name``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"algorithm must be one of {', '.join(names())}, got {name!r}") from None


def names():
    """Registered method names, in registration order."""
    return tuple(_METHODS)


def preset_names():
    """Every preset name some method has."""
    seen = []
    for m in _METHODS.values():
        seen += [p for p in m.presets if p not in seen]
    return tuple(seen)


def _presets(name):
    return {preset: table[name] for preset, table in PRESETS.items() if name in table}


register(Method(name="c2lsh", title="C2LSH (Gan et al., SIGMOD 2012): sorted bucket runs",
                params_fn=c2lsh_params, params_cls=C2LSHParams, builder=C2LSHBuilder,
                searcher=C2LSHSearcher, meta_cls=TablesMeta, presets=_presets("c2lsh")))
register(Method(name="qalsh", title="QALSH (Huang et al., PVLDB 2015): B+-trees, query-aware "
                                    "buckets",
                params_fn=qalsh_params, params_cls=QALSHParams, builder=QALSHBuilder,
                searcher=QALSHSearcher, meta_cls=TreesMeta, presets=_presets("qalsh")))
register(Method(name="ilsh", title="I-LSH (Liu et al., ICDE 2019): QALSH's trees, incremental "
                                   "search",
                params_fn=qalsh_params, params_cls=QALSHParams, builder=ILSHBuilder,
                searcher=ILSHSearcher, meta_cls=TreesMeta, presets=_presets("ilsh")))
register(Method(name="kmeans", title="learned partitions: k-means cells of PCA subspaces, "
                                     "multi-probe collision counting (no guarantee)",
                params_fn=kmeans_params, params_cls=KMeansParams, builder=KMeansBuilder,
                searcher=KMeansSearcher, meta_cls=PartitionsMeta))
register(Method(name="pca", title="learned projections: rotated principal directions of a "
                                  "sample in QALSH's trees, w and l calibrated (no guarantee)",
                params_fn=pca_params, params_cls=LearnedTreesParams, builder=PCABuilder,
                searcher=QALSHSearcher, meta_cls=TreesMeta))
register(Method(name="neoph", title="NeOPH (Li et al., ICDE 2020): an order-preserving network's "
                                    "codes in QALSH's trees (needs lshdisk[learn])",
                params_fn=neoph_params, params_cls=LearnedTreesParams, builder=NeOPHBuilder,
                searcher=QALSHSearcher, meta_cls=TreesMeta))
