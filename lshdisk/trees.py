"""The m B+-trees of a QALSH-layout index, opened and descended: shared by QALSH and I-LSH.

QALSH (Huang et al., PVLDB 2015, Section 5) and I-LSH (Liu et al., ICDE 2019) search the same
index: one disk B+-tree of (a_t . o, id) per Gaussian projection a_t, all in ``trees.pages``.
:class:`ProjectionTrees` owns what both searches need from it: the trees, the projection
vectors, the query's projections and the batched root-to-leaf descent. Each searcher holds
one (composition: neither searcher derives from the other).
"""

import numpy as np

from storage import BPlusTree, TreeInfo

from ._kernels.projection import project_one
from ._kernels.qalsh_rounds import descend, hold_dirs

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
        The projection vectors.

    Raises
    ------
    CorruptIndexError-compatible ValueError
        If the trees do not all have one height, or their number is not m.

    Notes
    -----
    Memory: m pages for the descent's node buffer and 32 bytes per tree.
    """

    def __init__(self, trees_file, tree_infos, a):
        self.file = trees_file
        self.trees = [BPlusTree(trees_file, info) for info in tree_infos]
        self.a = np.ascontiguousarray(a, dtype=np.float32)
        self.m = self.a.shape[0]
        if len(self.trees) != self.m:
            raise ValueError(f"the index has {len(self.trees)} trees for {self.m} projections")
        heights = {tree.info.height for tree in self.trees}
        if len(heights) != 1:
            raise ValueError(f"the trees of a QALSH index have one height, got {sorted(heights)}")
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

    def describe(self, n):
        """The index structure, for ``lshdisk info``."""
        leaves = self.trees[0].info.n_leaves
        return {"kind": "B+-trees", "count": len(self.trees),
                "height": max(t.info.height for t in self.trees),
                "leaves_per_tree": leaves, "entries_per_leaf": -(-n // max(1, leaves))}

    def descend(self, q, leaf_pages, dirs=None):
        """Project q into :attr:`qproj` and read the root-to-leaf path of every tree towards
        a_t . q, one level of all m trees per read call (``height`` counted page reads per
        tree).

        Parameters
        ----------
        q : ndarray of float32, shape (d,)
        leaf_pages : ndarray of uint8, shape (m, page_size)
            Receives tree t's leaf in row t.
        dirs : tuple (dkeys, cur), optional
            QALSH's directory-node arrays: the inner node above each leaf becomes both cursors'
            directory node (:func:`lshdisk._kernels.qalsh_rounds.hold_dirs`).

        Returns
        -------
        ndarray of int64, shape (m,)
            The leaf page numbers.
        """
        project_one(q, self.a, self.qproj)
        read_runs = self.file.read_runs_into
        nodes = self.roots
        for level in range(self.height - 1, 0, -1):
            read_runs(nodes, self._ones, self._node_buf)
            if level == 1 and dirs is not None:
                hold_dirs(self._node_buf, nodes, dirs[0], dirs[1], self.tinfo)
            nxt = np.empty(self.m, dtype=np.int64)
            descend(self._node_buf, self.qproj, nxt)
            nodes = nxt
        read_runs(nodes, self._ones, leaf_pages)
        return nodes

    def read_node(self, page, out):
        """Read one inner node page into ``out`` (uint8 (1, page_size)): one counted read."""
        self.file.read_runs_into((page,), (1,), out)
