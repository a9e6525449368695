"""The m B+-trees of a QALSH-layout index, opened and descended: shared by QALSH and I-LSH.

QALSH (Huang et al., PVLDB 2015, Section 5) and I-LSH (Liu et al., ICDE 2019) search the same
index: one disk B+-tree of (a_t . o, id) per Gaussian projection a_t, all in ``trees.pages``.
:class:`ProjectionTrees` owns what both searches need from it: the trees, the projection
vectors, the query's projections and the batched root-to-leaf descent. Each searcher holds
one (composition: neither searcher derives from the other).
"""

import numpy as np

from storage import BPlusTree, new_run_log

from .errors import CorruptIndexError
from .maps import LinearMap, map_from_meta
from ._kernels.qalsh_rounds import Cursors, descend, descend_raw, descend_raw_projected, hold_dirs

__all__ = ["ProjectionTrees", "TREES_FILE", "TREES_KIND"]

TREES_FILE = "trees.pages"
TREES_KIND = "btree"


class ProjectionTrees:
    """The projection trees of one index, opened for one searcher.

    Parameters
    ----------
    trees_file : storage.PageFile
        ``trees.pages``, opened with the searcher's counter and the index's buffer pool.
    tree_infos : sequence of storage.TreeInfo
        One per projection, in table order.
    a : ndarray of float32, shape (m, d)
        The projection vectors (of a learned map: its linear part, :mod:`lshdisk.maps`).
    hash_map : LinearMap or MLPMap, optional
        What keys the trees (:mod:`lshdisk.maps`); None: the plain projections ``a``.

    Raises
    ------
    CorruptIndexError
        If the trees do not all have one height, or their number is not m.

    Notes
    -----
    Memory: m pages for the descent's node buffer and 32 bytes per tree.
    """

    def __init__(self, trees_file, tree_infos, a, hash_map=None):
        self.file = trees_file
        self.trees = [BPlusTree(trees_file, info) for info in tree_infos]
        self.a = np.ascontiguousarray(a, dtype=np.float32)
        self.map = LinearMap(self.a) if hash_map is None else hash_map
        self.m = self.a.shape[0]
        if len(self.trees) != self.m:
            raise CorruptIndexError(f"the index has {len(self.trees)} trees for {self.m} "
                                    f"projections: rebuild it")
        heights = {tree.info.height for tree in self.trees}
        if len(heights) != 1:
            raise CorruptIndexError(f"the trees of a QALSH index have one height, got "
                                    f"{sorted(heights)}: rebuild the index")
        self.height = heights.pop()
        self.id_bits = self.trees[0].info.id_bits
        #: Per table: first leaf page, leaves, first directory page, fanout (int64 (m, 4)).
        self.tinfo = np.array([[t.info.first_leaf, t.info.n_leaves, *t.leaf_parents()]
                               for t in self.trees], dtype=np.int64).reshape(self.m, 4)
        self.roots = np.array([t.info.root_page for t in self.trees], dtype=np.int64)
        self.max_fanout = int(self.tinfo[:, 3].max())
        self.qproj = np.empty(self.m, dtype=np.float64)
        self._node_buf = np.zeros((self.m, trees_file.page_size), dtype=np.uint8)
        self._ones = np.ones(self.m, dtype=np.int64)
        self._nodes = np.zeros(self.m, dtype=np.int64)
        size = self.height * self.m
        self._log = new_run_log(size)
        # Stands for the cursors when a descent holds no directory nodes (I-LSH).
        self._no_dirs = Cursors(np.zeros((2, 1, 1), np.uint8), np.zeros((2, 1, 4), np.int64),
                                np.zeros((2, 1, 3)), np.zeros((2, 1, 1)),
                                np.zeros((2, 1, 2), np.int64))

    @classmethod
    def open(cls, open_file, meta, arrays):
        """The trees of an index: ``open_file(name, kind)`` opens its trees file, ``meta`` is
        its :class:`lshdisk.metadata.TreesMeta`, ``arrays`` its catalog arrays."""
        hash_map = map_from_meta(meta.map, meta.a, arrays)
        return cls(open_file(meta.trees_file, TREES_KIND), meta.trees, hash_map.a, hash_map)

    def describe(self, n):
        """The index structure, for ``lshdisk info``."""
        leaves = self.trees[0].info.n_leaves
        return {"kind": "B+-trees", "count": len(self.trees),
                "height": max(t.info.height for t in self.trees),
                "leaves_per_tree": leaves, "entries_per_leaf": -(-n // max(1, leaves))}

    def descend(self, q, leaf_pages, dirs=None, raw=None):
        """Map q into :attr:`qproj` (its m keys) and read the root-to-leaf path of every tree
        towards its key, one level of all m trees per read call (``height`` counted page reads per
        tree).

        Parameters
        ----------
        q : ndarray of float32, shape (d,)
        leaf_pages : ndarray of uint8, shape (m, page_size)
            Receives tree t's leaf in row t.
        dirs : lshdisk._kernels.qalsh_rounds.Cursors, optional
            QALSH's cursors: the inner node above each leaf becomes both cursors' directory
            node (:func:`lshdisk._kernels.qalsh_rounds.hold_dirs`).
        raw : storage.RawReader, optional
            Of the trees file: the whole descent is then one compiled call
            (:func:`lshdisk._kernels.qalsh_rounds.descend_raw`) and the pages it read are
            counted after it. The pages and counts are the same.

        Returns
        -------
        ndarray of int64, shape (m,)
            The leaf page numbers.
        """
        if raw is not None:
            nodes, log = self._nodes, self._log
            held = self._no_dirs if dirs is None else dirs
            if self.map.plain:
                ok = descend_raw(raw, self.a, q, self.qproj, self.roots, self.height,
                                 self.tinfo, self._node_buf, leaf_pages, held,
                                 dirs is not None, log, nodes)
            else:
                self.map.project_one(q, self.qproj)
                ok = descend_raw_projected(raw, self.qproj, self.roots, self.height,
                                           self.tinfo, self._node_buf, leaf_pages, held,
                                           dirs is not None, log, nodes)
            self.file.count_log(log)
            if not ok:  # read the failing level again through the page file, to raise
                self.file.read_runs_into(nodes, self._ones, self._node_buf)
                raise OSError(f"{self.file.path}: a tree node failed to read, then read "
                              f"correctly")
            return nodes.copy()
        self.map.project_one(q, self.qproj)
        read_runs = self.file.read_runs_into
        nodes = self.roots
        for level in range(self.height - 1, 0, -1):
            read_runs(nodes, self._ones, self._node_buf)
            if level == 1 and dirs is not None:
                hold_dirs(self._node_buf, nodes, dirs.dkeys, dirs.state, self.tinfo)
            nxt = np.empty(self.m, dtype=np.int64)
            descend(self._node_buf, self.qproj, nxt)
            nodes = nxt
        read_runs(nodes, self._ones, leaf_pages)
        return nodes

    def read_node(self, page, out):
        """Read one inner node page into ``out`` (uint8 (1, page_size)): one counted read."""
        self.file.read_runs_into((page,), (1,), out)
