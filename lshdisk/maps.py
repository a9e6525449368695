"""Hash maps of a projection-trees index: what takes a point to its m keys.

QALSH (:mod:`lshdisk.qalsh`) keys tree t by h_t(o) = a_t . o with Gaussian a_t. The learned
families keep QALSH's trees and search and change only this map: :class:`LinearMap` with an
offset (``pca``: a_t . (o - mean), :mod:`lshdisk.learned_trees`) and :class:`MLPMap` (``neoph``:
a small network's t outputs, :mod:`lshdisk.neoph`). A map computes the keys of data chunks
at build time and of each query at search time by the same kernels, from arrays kept in the
catalog (no pickle); the index document's ``hash.map`` names them (:func:`map_from_meta`).
"""

import numpy as np

from ._kernels.mlp import mlp_one, mlp_rows
from ._kernels.projection import (project_one, project_one_offset, project_rows,
                                  project_rows_offset)
from .errors import CorruptIndexError
from .metadata import catalog_array

__all__ = ["LinearMap", "MLPMap", "map_from_meta"]


class LinearMap:
    """h_t(o) = a_t . o - offset_t.

    Parameters
    ----------
    a : ndarray of float32, shape (m, d)
    offset : ndarray of float64, shape (m,), optional
        a_t . mean for centred keys; None: QALSH's plain projections (its kernels, unchanged).
    names : dict, optional
        Catalog names: ``{"a": ..., "offset": ...}``.
    """

    kind = "linear"

    def __init__(self, a, offset=None, names=None):
        self.a = np.ascontiguousarray(a, dtype=np.float32)
        self.offset = None if offset is None else np.ascontiguousarray(offset, dtype=np.float64)
        self.m, self.d = self.a.shape
        self.names = dict(names or {})

    @property
    def plain(self):
        """True for QALSH's maps (no offset): the descent projects inside its kernel."""
        return self.offset is None

    def project_rows(self, rows, out):
        """Keys of data rows: ``rows`` (c, d) any numeric dtype -> ``out`` float32 (c, m)."""
        if self.offset is None:
            project_rows(rows, self.a, out)
        else:
            project_rows_offset(rows, self.a, self.offset, out)

    def project_one(self, q, out):
        """Keys of one query ``q`` (d,) into ``out`` (float64 (m,))."""
        if self.offset is None:
            project_one(q, self.a, out)
        else:
            project_one_offset(q, self.a, self.offset, out)

    def arrays(self):
        """Catalog arrays, name -> ndarray."""
        out = {self.names["a"]: self.a}
        if self.offset is not None:
            out[self.names["offset"]] = self.offset
        return out

    def to_meta(self):
        """The ``hash.map`` entry of the index document."""
        return dict(self.names, kind=self.kind)


class MLPMap:
    """h(o) = P z + W2 relu(W1 z + b1) + b2 with z = (o - mean) / scale (:mod:`lshdisk.neoph`).

    Parameters
    ----------
    mean : ndarray of float64, shape (d,)
    scale : float
        > 0.
    p : ndarray of float32, shape (t, d)
        The linear path.
    w1 : ndarray of float32, shape (h, d)
    b1 : ndarray of float32, shape (h,)
    w2 : ndarray of float32, shape (t, h)
    b2 : ndarray of float32, shape (t,)
    names : dict, optional
        Catalog names of the arrays (keys ``mean``, ``scale``, ``a`` (= P), ``w1``, ``b1``,
        ``w2``, ``b2``).
    """

    kind = "mlp"
    plain = False
    _FIELDS = ("mean", "scale", "a", "w1", "b1", "w2", "b2")

    def __init__(self, mean, scale, p, w1, b1, w2, b2, names=None):
        self.mean = np.ascontiguousarray(mean, dtype=np.float64)
        self.scale = float(np.asarray(scale).reshape(-1)[0])
        self.a = np.ascontiguousarray(p, dtype=np.float32)
        self.w1 = np.ascontiguousarray(w1, dtype=np.float32)
        self.b1 = np.ascontiguousarray(b1, dtype=np.float32)
        self.w2 = np.ascontiguousarray(w2, dtype=np.float32)
        self.b2 = np.ascontiguousarray(b2, dtype=np.float32)
        self.m, self.d = self.a.shape
        self.names = dict(names or {})
        h = self.w1.shape[0]
        if (self.mean.shape != (self.d,) or self.w1.shape != (h, self.d) or self.b1.shape != (h,)
                or self.w2.shape != (self.m, h) or self.b2.shape != (self.m,)
                or not self.scale > 0):
            raise ValueError(f"MLPMap arrays disagree: P {self.a.shape}, W1 {self.w1.shape}, "
                             f"b1 {self.b1.shape}, W2 {self.w2.shape}, b2 {self.b2.shape}, "
                             f"mean {self.mean.shape}, scale {self.scale}")

    def _weights(self):
        return self.mean, self.scale, self.a, self.w1, self.b1, self.w2, self.b2

    def project_rows(self, rows, out):
        """Codes of data rows: ``rows`` (c, d) any numeric dtype -> ``out`` float32 (c, t)."""
        mlp_rows(rows, *self._weights(), out)

    def project_one(self, q, out):
        """Codes of one query ``q`` (d,) into ``out`` (float64 (t,))."""
        mlp_one(q, *self._weights(), out)

    def arrays(self):
        """Catalog arrays, name -> ndarray."""
        values = dict(zip(self._FIELDS, (self.mean, np.array([self.scale]), self.a, self.w1,
                                         self.b1, self.w2, self.b2)))
        return {self.names[f]: values[f] for f in self._FIELDS}

    def to_meta(self):
        """The ``hash.map`` entry of the index document."""
        return dict(self.names, kind=self.kind)


def map_from_meta(entry, a_name, arrays):
    """The map an index document describes.

    Parameters
    ----------
    entry : dict or None
        The document's ``hash.map``; None (QALSH, I-LSH) is the plain projections ``a_name``.
    a_name : str
        ``hash.a``.
    arrays : dict of ndarray
        The catalog arrays.

    Raises
    ------
    CorruptIndexError
        If an array it names is missing, or the entry's kind is unknown.
    """
    if entry is None:
        return LinearMap(catalog_array(arrays, a_name), names={"a": a_name})
    kind = entry.get("kind")
    try:
        if kind == "linear":
            return LinearMap(catalog_array(arrays, entry["a"]),
                             catalog_array(arrays, entry["offset"]), names=entry)
        if kind == "mlp":
            return MLPMap(*(catalog_array(arrays, entry[f]) for f in MLPMap._FIELDS),
                          names={f: entry[f] for f in MLPMap._FIELDS})
    except (KeyError, ValueError) as exc:
        raise CorruptIndexError(f"index metadata: hash.map is damaged ({exc}): rebuild the "
                                f"index") from exc
    raise CorruptIndexError(f"index metadata: hash.map has kind {kind!r}, which this lshdisk "
                            f"does not know: upgrade lshdisk or rebuild the index")
