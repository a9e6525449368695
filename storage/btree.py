"""Disk B+-tree of (float32 key, integer id) entries: bulk load and two-way leaf cursors.

Built once, bottom-up, from a stream sorted by key (:class:`BulkLoader`); read with
:class:`BPlusTree`, whose :meth:`BPlusTree.seek_ge` gives a :class:`Cursor` that steps a whole
leaf at a time to the left or to the right, handing out keys and ids as numpy arrays. Several
trees may share one :class:`storage.page_file.PageFile`; each tree's leaves occupy consecutive
pages in key order, so a rightward scan reads consecutive pages (no seek) while a leftward
scan seeks at every leaf. Node layouts are in :mod:`storage.format`. Every node read is a
counted page read of the page file.

Deviation from a textbook B+-tree: keys in leaves are stored as 16-bit codes relative to
the leaf's key range (see :mod:`storage.format`), so a decoded key is within
``(leaf key range) / 131070`` of the key given at build time, and ids are bit-packed. This
packs 1,014 entries in a 4 KiB leaf for n <= 65,536, where exact (float32, uint32) pairs
would fit 510: page I/O is what the index is judged on.
"""

import json
from dataclasses import asdict, dataclass

import numpy as np

from .leaf_codec import LEAF_ENTRIES_OFFSET, LEAF_SLACK, decode_leaf, encode_leaf, leaf_key_step
from .errors import ClosedFileError, CorruptPageError
from .format import INNER_HEADER_STRUCT, INNER_NODE, LEAF_HEADER_STRUCT, LEAF_NODE, NO_PAGE

__all__ = ["TreeInfo", "BulkLoader", "BPlusTree", "Cursor", "leaf_capacity", "inner_capacity",
           "id_bits_for"]


def id_bits_for(n_ids):
    """Bits needed to store ids ``0 .. n_ids - 1`` (at least 1, at most 32).

    Raises
    ------
    ValueError
        If ``n_ids`` exceeds 2**32.
    """
    if n_ids > 1 << 32:
        raise ValueError(f"at most 2**32 ids fit a tree, got {n_ids}")
    return max(1, int(n_ids - 1).bit_length())


def leaf_capacity(payload_size, id_bits):
    """Entries that fit one leaf of ``payload_size`` bytes with ``id_bits``-bit ids."""
    return min(65535, ((payload_size - LEAF_ENTRIES_OFFSET - LEAF_SLACK) * 8) // (16 + id_bits))


def inner_capacity(payload_size):
    """Children that fit one inner node of ``payload_size`` bytes."""
    return min(65535, (payload_size - INNER_HEADER_STRUCT.size) // 8)


@dataclass(frozen=True, slots=True, kw_only=True)
class TreeInfo:
    """Where a bulk-loaded tree lives in its page file, and its shape.

    Attributes
    ----------
    root_page : int
    height : int
        Levels, leaves included (1: the root is a leaf).
    n_entries, n_leaves : int
    first_leaf, last_leaf : int
        Page numbers of the leftmost and rightmost leaves (leaves are consecutive pages).
    id_bits : int
    key_min, key_max : float
        Smallest and largest key (nan for an empty tree).
    """

    root_page: int
    height: int
    n_entries: int
    n_leaves: int
    first_leaf: int
    last_leaf: int
    id_bits: int
    key_min: float
    key_max: float

    def to_json(self):
        """JSON text of the fields."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


class BulkLoader:
    """Bottom-up bulk load of one tree from (key, id) chunks sorted by key.

    Leaves are filled completely and written as the stream arrives; only one leaf and the
    list of leaf first-keys (8 bytes per leaf) are held in memory.

    Parameters
    ----------
    page_file : PageFile
        Writable; the tree's pages are appended to it, and nothing else may be appended
        until :meth:`finish`.
    id_bits : int
        Bits per id, from :func:`id_bits_for`.
    leaf_entries : int, optional
        Entries per leaf; default and maximum is :func:`leaf_capacity`.
    """

    def __init__(self, page_file, *, id_bits, leaf_entries=None):
        if not 1 <= id_bits <= 32:
            raise ValueError(f"id_bits must be 1..32, got {id_bits}")
        cap = leaf_capacity(page_file.payload_size, id_bits)
        if leaf_entries is None:
            leaf_entries = cap
        if not 1 <= leaf_entries <= cap:
            raise ValueError(f"leaf_entries must be 1..{cap} for this page size, got {leaf_entries}")
        self._pf = page_file
        self.id_bits = id_bits
        self.leaf_entries = leaf_entries
        self._keys = np.empty(leaf_entries, dtype=np.float32)
        self._ids = np.empty(leaf_entries, dtype=np.uint32)
        self._fill = 0
        self._pending = None  # (payload, count) of a full leaf whose next pointer is not known
        self._leaf_first_keys = []
        self._leaf_pages = []
        self._prev_page = NO_PAGE
        self._last_key = -np.inf
        self._n = 0
        self._id_limit = 1 << id_bits
        self._key_max = np.nan

    def add(self, keys, ids):
        """Append entries; ``keys`` float32 (c,) ascending and >= every key added before,
        ``ids`` unsigned integers (c,) below ``2**id_bits``.

        Raises
        ------
        ValueError
            If keys are out of order or NaN, or an id does not fit ``id_bits``.
        """
        keys = np.asarray(keys, dtype=np.float32)
        ids = np.asarray(ids)
        if keys.shape != ids.shape or keys.ndim != 1:
            raise ValueError("keys and ids must be 1-D arrays of the same length")
        if keys.size == 0:
            return
        if not np.isfinite(keys).all():
            raise ValueError("keys must be finite (no NaN or infinity)")
        if keys[0] < self._last_key or (np.diff(keys) < 0).any():
            raise ValueError("keys must be ascending across add() calls")
        if ids.min() < 0 or ids.max() >= self._id_limit:
            raise ValueError(f"ids must be in [0, 2**{self.id_bits}) for this tree")
        self._last_key = keys[-1]
        self._n += keys.size
        start = 0
        while start < keys.size:
            take = min(self.leaf_entries - self._fill, keys.size - start)
            self._keys[self._fill:self._fill + take] = keys[start:start + take]
            self._ids[self._fill:self._fill + take] = ids[start:start + take]
            self._fill += take
            start += take
            if self._fill == self.leaf_entries:
                self._emit_leaf()

    def _emit_leaf(self):
        c = self._fill
        keys, ids = self._keys[:c], self._ids[:c]
        payload = np.zeros(self._pf.payload_size, dtype=np.uint8)
        step = leaf_key_step(keys[0], keys[c - 1])
        encode_leaf(keys, ids, self.id_bits, step, payload)
        self._flush_pending(has_next=True)
        self._pending = (payload, c, float(keys[0]), float(step), float(keys[c - 1]))
        self._fill = 0

    def _flush_pending(self, has_next):
        if self._pending is None:
            return
        payload, c, kmin, step, kmax = self._pending
        page_no = self._pf.page_count
        nxt = page_no + 1 if has_next else NO_PAGE
        LEAF_HEADER_STRUCT.pack_into(payload, 0, LEAF_NODE, self.id_bits, c, self._prev_page, nxt,
                                     kmin, step, kmax)
        self._pf.append_page(payload)
        self._leaf_first_keys.append(kmin)
        self._leaf_pages.append(page_no)
        self._prev_page = page_no
        self._key_max = kmax
        self._pending = None

    def finish(self):
        """Write the last leaf and the inner levels; return the tree's :class:`TreeInfo`.

        An empty tree is one empty leaf.
        """
        if self._fill or not self._leaf_pages and self._pending is None:
            if self._fill == 0:  # empty tree: one empty leaf
                payload = np.zeros(self._pf.payload_size, dtype=np.uint8)
                self._flush_pending(has_next=True)
                self._pending = (payload, 0, np.nan, 0.0, np.nan)
            else:
                self._emit_leaf()
        self._flush_pending(has_next=False)
        first_keys = np.asarray(self._leaf_first_keys, dtype=np.float32)
        pages = np.asarray(self._leaf_pages, dtype=np.uint32)
        first_leaf, last_leaf, n_leaves = int(pages[0]), int(pages[-1]), pages.size
        key_min = float(first_keys[0])
        height = 1
        fanout = inner_capacity(self._pf.payload_size)
        while pages.size > 1:
            height += 1
            next_keys, next_pages = [], []
            for s in range(0, pages.size, fanout):
                k, p = first_keys[s:s + fanout], pages[s:s + fanout]
                payload = np.zeros(self._pf.payload_size, dtype=np.uint8)
                INNER_HEADER_STRUCT.pack_into(payload, 0, INNER_NODE, height - 1, k.size, 0)
                off = INNER_HEADER_STRUCT.size
                payload[off:off + 4 * k.size] = k.astype("<f4").view(np.uint8)
                payload[off + 4 * k.size:off + 8 * k.size] = p.astype("<u4").view(np.uint8)
                next_pages.append(self._pf.append_page(payload))
                next_keys.append(k[0])
            first_keys = np.asarray(next_keys, dtype=np.float32)
            pages = np.asarray(next_pages, dtype=np.uint32)
        return TreeInfo(root_page=int(pages[0]), height=height, n_entries=self._n,
                        n_leaves=n_leaves, first_leaf=first_leaf, last_leaf=last_leaf,
                        id_bits=self.id_bits, key_min=key_min, key_max=float(self._key_max))


def _page_or_none(page_no):
    return -1 if page_no == NO_PAGE else page_no


class BPlusTree:
    """Read access to one bulk-loaded tree.

    Parameters
    ----------
    page_file : PageFile
        Open for reading; its I/O counter and buffer pool count every node read.
    info : TreeInfo
    """

    def __init__(self, page_file, info):
        self.page_file = page_file
        self.info = info

    def _check_open(self):
        if self.page_file.closed:
            raise ClosedFileError(f"{self.page_file.path} is closed: its trees and cursors are invalid")

    def read_leaf(self, page_no):
        """Read and decode one leaf (one counted page read).

        Returns
        -------
        keys : ndarray of float32, shape (c,)
        ids : ndarray of int64, shape (c,)
        prev_page, next_page : int
            Neighbour leaves, -1 if none.
        """
        payload, header = self._leaf_payload(page_no)
        c = header[2]
        keys = np.empty(c, dtype=np.float32)
        ids = np.empty(c, dtype=np.int64)
        decode_leaf(payload, c, header[1], header[5], header[6], header[7], keys, ids)
        return keys, ids, _page_or_none(header[3]), _page_or_none(header[4])

    def read_leaf_into(self, page_no, keys_out, ids_out):
        """Read leaf ``page_no`` and decode it into ``keys_out`` (float32) and ``ids_out`` (int64),
        each at least as long as the leaf (one counted page read).

        Search loops keep one row per cursor in preallocated 2-D arrays, so no array is
        allocated per page read.

        Returns
        -------
        count, prev_page, next_page : int
            Entries decoded; neighbour leaves, -1 if none.
        """
        payload, header = self._leaf_payload(page_no)
        c = header[2]
        decode_leaf(payload, c, header[1], header[5], header[6], header[7], keys_out, ids_out)
        return c, _page_or_none(header[3]), _page_or_none(header[4])

    def _leaf_payload(self, page_no):
        self._check_open()
        payload = self.page_file.read_page(page_no)
        header = LEAF_HEADER_STRUCT.unpack_from(payload, 0)
        if header[0] != LEAF_NODE:
            raise CorruptPageError(f"{self.page_file.path}: page {page_no} is not a leaf")
        return payload, header

    def leaf_parents(self):
        """(first page, fanout) of the inner nodes just above the leaves; (-1, 1) for a tree that
        is one leaf.

        Bulk loading writes each level right after the level below, in key order, and gives
        every inner node ``fanout`` children but the last: the parent of the leaf with index
        ``i`` (0 = leftmost) is page ``first + i // fanout``, where the child's smallest key is
        entry ``i % fanout``. Scans that plan several leaves ahead read these nodes (counted).
        """
        if self.info.height < 2:
            return -1, 1
        return self.info.last_leaf + 1, inner_capacity(self.page_file.payload_size)

    def find_leaf(self, key):
        """Page number of the leaf where :meth:`seek_ge` for ``key`` starts; reads the inner nodes
        on the path (height - 1 counted page reads)."""
        self._check_open()
        page = self.info.root_page
        for _ in range(self.info.height - 1):
            payload = self.page_file.read_page(page)
            node_type, _, c, _ = INNER_HEADER_STRUCT.unpack_from(payload, 0)
            if node_type != INNER_NODE:
                raise CorruptPageError(f"{self.page_file.path}: page {page} is not an inner node")
            off = INNER_HEADER_STRUCT.size
            keys = payload[off:off + 4 * c].view("<f4")
            children = payload[off + 4 * c:off + 8 * c].view("<u4")
            idx = int(np.searchsorted(keys.astype(np.float64), float(key), side="left")) - 1
            page = int(children[max(idx, 0)])
        return page

    def seek_ge(self, key):
        """Cursor at the first entry with key >= ``key``.

        Reads the path from the root to one leaf (``height`` counted page reads). If every key
        of that leaf is smaller, the cursor's position is just past the leaf's end
        (``pos == len(keys)``), and :meth:`Cursor.next_leaf` moves on; no extra page is read
        until asked.
        """
        page = self.find_leaf(key)
        keys, ids, prev, nxt = self.read_leaf(page)
        pos = int(np.searchsorted(keys.astype(np.float64), float(key), side="left"))
        return Cursor(self, page, keys, ids, prev, nxt, pos)

    def first(self):
        """Cursor at the smallest entry (one counted page read)."""
        keys, ids, prev, nxt = self.read_leaf(self.info.first_leaf)
        return Cursor(self, self.info.first_leaf, keys, ids, prev, nxt, 0)

    def last(self):
        """Cursor at the largest entry (one counted page read)."""
        keys, ids, prev, nxt = self.read_leaf(self.info.last_leaf)
        return Cursor(self, self.info.last_leaf, keys, ids, prev, nxt, keys.size - 1)


class Cursor:
    """A position in a tree's leaf chain, holding the current leaf decoded.

    Attributes
    ----------
    page_no : int
        Current leaf page.
    keys : ndarray of float32, shape (c,)
    ids : ndarray of int64, shape (c,)
    pos : int
        Index into the current leaf, from -1 (before its first entry) to c (past its last).
    prev_page, next_page : int
        Neighbour leaves, -1 if none.
    """

    __slots__ = ("tree", "page_no", "keys", "ids", "prev_page", "next_page", "pos")

    def __init__(self, tree, page_no, keys, ids, prev_page, next_page, pos):
        self.tree = tree
        self.page_no = page_no
        self.keys = keys
        self.ids = ids
        self.prev_page = prev_page
        self.next_page = next_page
        self.pos = pos

    def clone(self):
        """A second cursor at the same place, sharing the decoded leaf (no page read)."""
        return Cursor(self.tree, self.page_no, self.keys, self.ids, self.prev_page,
                      self.next_page, self.pos)

    def _load(self, page_no):
        self.keys, self.ids, self.prev_page, self.next_page = self.tree.read_leaf(page_no)
        self.page_no = page_no

    def next_leaf(self):
        """Move to the first entry of the next leaf (one counted read); False at the last leaf."""
        if self.next_page < 0:
            self.tree._check_open()
            return False
        self._load(self.next_page)
        self.pos = 0
        return True

    def prev_leaf(self):
        """Move to the last entry of the previous leaf (one counted read); False at the first leaf."""
        if self.prev_page < 0:
            self.tree._check_open()
            return False
        self._load(self.prev_page)
        self.pos = self.keys.size - 1
        return True

    @property
    def key(self):
        """Key at the cursor, or None if the position is outside the current leaf."""
        return float(self.keys[self.pos]) if 0 <= self.pos < self.keys.size else None

    def iter_forward(self):
        """Yield (keys, ids) arrays from the cursor rightwards, a leaf at a time, in ascending
        key order, reading leaves as needed; the cursor ends past the last entry."""
        while True:
            if self.pos < self.keys.size:
                start, self.pos = max(self.pos, 0), self.keys.size
                yield self.keys[start:], self.ids[start:]
            if not self.next_leaf():
                return
            self.pos = 0

    def iter_backward(self):
        """Yield (keys, ids) arrays from the cursor leftwards, a leaf at a time, in descending
        key order, reading leaves as needed; the cursor ends before the first entry."""
        while True:
            if self.pos >= 0:
                stop, self.pos = min(self.pos, self.keys.size - 1), -1
                yield self.keys[stop::-1], self.ids[stop::-1]
            if not self.prev_leaf():
                return

