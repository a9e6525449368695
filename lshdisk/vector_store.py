"""The index's own page file of the data vectors, for false-positive removal.

Rows are kept in the source's dtype (uint8, int8, uint16, int32 or float32). A page holds
``points_per_page = payload_size // (d * itemsize)`` whole rows, so a point is never split
across pages when it fits in one; a point larger than a page occupies ``pages_per_point``
consecutive pages of its own. Point ``i`` lives in page ``1 + i // points_per_page`` (or pages
``1 + i * pages_per_point ...``). Reading a candidate's vector is a counted page read, as
``dist_io`` is in the reference QALSH code.
"""

import json

import numpy as np

from storage import PageFile
from ._kernels.distance import plan_point_pages, sqdist_rows, sqdist_slots

__all__ = ["VectorStoreWriter", "VectorStore", "VECTORS_KIND"]

VECTORS_KIND = "vectors"


def _layout(d, itemsize, payload_size):
    row_bytes = d * itemsize
    if row_bytes <= payload_size:
        return row_bytes, payload_size // row_bytes, 1
    return row_bytes, 1, -(-row_bytes // payload_size)


class VectorStoreWriter:
    """Append rows to a new vector page file.

    Parameters
    ----------
    path : str
        New file (must not exist).
    d : int
    dtype : numpy dtype
        One of the storage dtypes.
    page_size : int
    counter : storage.IOCounter, optional
    """

    def __init__(self, path, *, d, dtype, page_size, counter=None):
        self.d = int(d)
        self.dtype = np.dtype(dtype)
        self._pf = PageFile.create(path, kind=VECTORS_KIND, page_size=page_size, counter=counter)
        self.row_bytes, self.points_per_page, self.pages_per_point = _layout(
            self.d, self.dtype.itemsize, self._pf.payload_size)
        self.n = 0
        self._partial = np.empty((0, self.d), dtype=self.dtype)

    def append(self, rows):
        """Append ``rows`` (ndarray (c, d) of this store's dtype) in order."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.ndim != 2 or rows.shape[1] != self.d:
            raise ValueError(f"rows must have shape (c, {self.d}), got {rows.shape}")
        self.n += rows.shape[0]
        if self.pages_per_point > 1:
            ps = self._pf.payload_size
            for row in rows:
                raw = row.tobytes()
                for s in range(0, len(raw), ps):
                    self._pf.append_page(raw[s:s + ps])
            return
        if self._partial.shape[0]:
            rows = np.concatenate([self._partial, rows])
        ppp = self.points_per_page
        full = (rows.shape[0] // ppp) * ppp
        raw = rows[:full].reshape(-1, ppp * self.d).view(np.uint8) if full else None
        for p in range(full // ppp):
            self._pf.append_page(raw[p])
        self._partial = rows[full:].copy()

    def finish(self):
        """Write the last partial page and the header; close the file."""
        if self._partial.shape[0]:
            self._pf.append_page(self._partial.tobytes())
            self._partial = self._partial[:0]
        header = {"n": self.n, "d": self.d, "dtype": self.dtype.str,
                  "points_per_page": self.points_per_page, "pages_per_point": self.pages_per_point}
        self._pf.finalize(json.dumps(header, sort_keys=True).encode())
        self._pf.close()

    def abort(self):
        self._pf.close()


class VectorStore:
    """Read access to a vector page file; every page read is counted in the file's counter.

    Parameters
    ----------
    page_file : storage.PageFile
        Opened read-only with the index's shared counter and buffer pool.
    """

    def __init__(self, page_file):
        self.page_file = page_file
        header = json.loads(page_file.app_header)
        self.n = header["n"]
        self.d = header["d"]
        self.dtype = np.dtype(header["dtype"])
        self.points_per_page = header["points_per_page"]
        self.pages_per_point = header["pages_per_point"]
        self.row_bytes = self.d * self.dtype.itemsize
        self._plan = np.empty((4, 16), dtype=np.int64)  # sq_distances: pages to read per id
        self._pages = np.empty((0, page_file.page_size), dtype=np.uint8)

    def fetch(self, ids):
        """Rows for ``ids`` (int64 (c,), any order) as ndarray (c, d) of the store's dtype.

        Pages are read in ascending page order, each distinct page once per call.
        """
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((ids.size, self.d), dtype=self.dtype)
        if ids.size == 0:
            return out
        if self.pages_per_point > 1:
            order = np.argsort(ids, kind="stable")
            for j in order:
                first = 1 + int(ids[j]) * self.pages_per_point
                pages = self.page_file.read_run(first, self.pages_per_point)
                out[j] = pages.reshape(-1)[: self.row_bytes].view(self.dtype)
            return out
        ppp = self.points_per_page
        if ids.size <= 16:  # the usual batch (one table's new candidates): no sorting machinery
            rb = self.row_bytes
            payloads = {}
            for i in sorted(range(ids.size), key=ids.__getitem__):  # ascending page order
                pid = int(ids[i])
                page_no = 1 + pid // ppp
                payload = payloads.get(page_no)
                if payload is None:
                    payload = payloads[page_no] = self.page_file.read_page(page_no)
                off = (pid - (page_no - 1) * ppp) * rb
                out[i] = payload[off:off + rb].view(self.dtype)
            return out
        pages = 1 + ids // ppp
        order = np.argsort(pages, kind="stable")
        sorted_pages = pages[order]
        bounds = np.flatnonzero(np.diff(sorted_pages)) + 1
        starts = np.concatenate(([0], bounds))
        stops = np.concatenate((bounds, [ids.size]))
        used = ppp * self.row_bytes
        for s, e in zip(starts.tolist(), stops.tolist()):
            payload = self.page_file.read_page(int(sorted_pages[s]))
            block = payload[:used].view(self.dtype).reshape(ppp, self.d)
            sel = order[s:e]
            out[sel] = block[ids[sel] - (sorted_pages[s] - 1) * ppp]
        return out

    def sq_distances(self, ids, q):
        """Squared Euclidean distances from query ``q`` to points ``ids``.

        The distinct pages of the points are read once each, in ascending page order, as runs
        of consecutive pages (counted as :meth:`fetch` counts them).

        Parameters
        ----------
        ids : ndarray of int64, shape (c,)
            Point ids in ``[0, n)``, any order, repeats allowed.
        q : ndarray of float64, shape (d,)

        Returns
        -------
        ndarray of float64, shape (c,)
        """
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        out = np.empty(ids.shape[0], dtype=np.float64)
        if self.pages_per_point > 1 or ids.shape[0] == 0:
            rows = self.fetch(ids)
            sqdist_rows(rows, q, out)
            return out
        c = ids.shape[0]
        if self._plan.shape[1] < c:
            self._plan = np.empty((4, max(c, 2 * self._plan.shape[1])), dtype=np.int64)
        row_of, slot_of, firsts, n_pages = self._plan[:, :c]
        n_runs = plan_point_pages(ids, self.points_per_page, row_of, slot_of, firsts, n_pages)
        n_rows = int(row_of.max()) + 1
        if self._pages.shape[0] < n_rows:
            rows = max(n_rows, 2 * self._pages.shape[0])
            self._pages = np.empty((rows, self.page_file.page_size), dtype=np.uint8)
        self.page_file.read_runs_into(firsts[:n_runs], n_pages[:n_runs], self._pages)
        used = self.points_per_page * self.row_bytes
        blocks = self._pages[:n_rows, :used].view(self.dtype).reshape(
            n_rows, self.points_per_page, self.d)
        sqdist_slots(blocks, row_of, slot_of, q, out)
        return out
