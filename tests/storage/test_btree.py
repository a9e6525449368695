"""Tests of storage.btree and storage.leaf_codec: bulk load, cursors, quantised keys, page I/O.

Oracles: the sorted (key, id) arrays given to the loader, and np.searchsorted over the decoded
key stream. Decoded keys may differ from the loaded ones by the documented quantisation error:
half a key step, ``(leaf key range) / 131070``, plus float32 rounding.
"""

import json
import math
import os
from tempfile import TemporaryDirectory

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from storage.btree import (
    BPlusTree,
    BulkLoader,
    TreeInfo,
    id_bits_for,
    inner_capacity,
    leaf_capacity,
)
from storage.buffer_pool import BufferPool
from storage.errors import ClosedFileError
from storage.format import LEAF_HEADER_STRUCT, LEAF_NODE, NO_PAGE
from storage.iostats import IOCounter
from storage.leaf_codec import (
    LEAF_ENTRIES_OFFSET,
    decode_leaf,
    encode_leaf,
    leaf_header,
    leaf_id,
    leaf_key,
    leaf_key_step,
    leaf_search_ge,
)
from storage.page_file import PageFile

F32_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def chunk_bounds(rng, n, n_cuts=6):
    """Bounds of several chunks of varied sizes (some empty, some longer than a leaf)."""
    cuts = np.sort(rng.integers(0, n + 1, n_cuts)) if n else np.zeros(0, dtype=np.int64)
    edges = [0, *cuts.tolist(), n]
    return list(zip(edges[:-1], edges[1:]))


def write_tree(path, keys, ids, *, page_size=512, id_bits=None, leaf_entries=None, seed=0,
               page_file=None):
    """Bulk-load (keys, ids) in chunks of varied sizes; return the TreeInfo."""
    keys = np.asarray(keys, dtype=np.float32)
    ids = np.asarray(ids, dtype=np.int64)
    if id_bits is None:
        id_bits = id_bits_for(int(ids.max()) + 1 if ids.size else 1)
    pf = page_file or PageFile.create(path, kind="btree", page_size=page_size)
    loader = BulkLoader(pf, id_bits=id_bits, leaf_entries=leaf_entries)
    for start, stop in chunk_bounds(np.random.default_rng(seed), keys.size):
        loader.add(keys[start:stop], ids[start:stop].astype(np.uint32))
    info = loader.finish()
    if page_file is None:
        pf.finalize(info.to_json().encode())
        pf.close()
    return info


def open_tree(path, *, counter=None, buffer_pool=None):
    pf = PageFile.open(path, kind="btree", counter=counter, buffer_pool=buffer_pool)
    info = TreeInfo.from_dict(json.loads(pf.app_header))
    return BPlusTree(pf, info)


def scan_leaves(tree):
    """[(page_no, decoded keys, ids)] of every leaf, from first() with iter_forward()."""
    cur = tree.first()
    return [(cur.page_no, k.copy(), i.copy()) for k, i in cur.iter_forward()]


def quantisation_tolerance(true_keys):
    """Largest documented |decoded - true| for a leaf holding ``true_keys`` (ascending)."""
    lo, hi = float(true_keys[0]), float(true_keys[-1])
    span = hi - lo
    step_rounding = 65535 * float(np.spacing(np.float32(span / 65535)))  # f32 step, 65535 times
    result_rounding = 2.0 * float(np.spacing(np.float32(max(abs(lo), abs(hi)))))
    return span / 131070 + step_rounding + result_rounding


def check_scan(tree, keys, ids):
    """Check the forward scan against the model; return (decoded keys, leaf start offsets)."""
    keys = np.asarray(keys, dtype=np.float32)
    leaves = scan_leaves(tree)
    info = tree.info
    leaf_pages = list(range(info.first_leaf, info.last_leaf + 1))
    assert [p for p, _, _ in leaves] == leaf_pages[: len(leaves)]  # an empty leaf yields nothing
    offsets, start = {}, 0
    for page_no, leaf_keys, leaf_ids in leaves:
        offsets[page_no] = start
        true = keys[start:start + leaf_keys.size]
        assert leaf_keys.dtype == np.float32 and leaf_ids.dtype == np.int64
        assert np.all(np.diff(leaf_keys) >= 0)
        err = np.abs(leaf_keys.astype(np.float64) - true.astype(np.float64))
        assert err.max() <= quantisation_tolerance(true), (page_no, err.max())
        assert leaf_keys[0] == true[0]  # the first key of a leaf is exact
        start += leaf_keys.size
    decoded = np.concatenate([k for _, k, _ in leaves]) if leaves else np.zeros(0, np.float32)
    got_ids = np.concatenate([i for _, _, i in leaves]) if leaves else np.zeros(0, np.int64)
    assert decoded.size == keys.size == info.n_entries
    np.testing.assert_array_equal(got_ids, np.asarray(ids, dtype=np.int64))
    return decoded, offsets


def check_backward_is_reverse(tree, decoded, ids):
    cur = tree.last()
    parts = list(cur.iter_backward())
    back_keys = np.concatenate([k for k, _ in parts]) if parts else np.zeros(0, np.float32)
    back_ids = np.concatenate([i for _, i in parts]) if parts else np.zeros(0, np.int64)
    np.testing.assert_array_equal(back_keys, decoded[::-1])
    np.testing.assert_array_equal(back_ids, np.asarray(ids, dtype=np.int64)[::-1])
    assert cur.pos == -1 and cur.key is None


def global_index(cursor, offsets, n):
    """Index in the scan order of the entry at ``cursor``, stepping over a leaf end."""
    if cursor.pos == cursor.keys.size:
        if not cursor.next_leaf():
            return n
        assert cursor.pos == 0
    return offsets[cursor.page_no] + cursor.pos


def probe_values(keys, decoded):
    """float32 probes: every key, decoded key, neighbours, midpoints, beyond both ends."""
    base = np.concatenate([keys, decoded]).astype(np.float32)
    probes = [base, np.nextafter(base, np.float32(np.inf)), np.nextafter(base, np.float32(-np.inf))]
    if base.size > 1:
        s = np.sort(base).astype(np.float64)
        probes.append(((s[1:] + s[:-1]) / 2).astype(np.float32))
    probes.append(np.array([-np.inf, np.inf, -F32_MAX, F32_MAX, 0.0, -0.0], dtype=np.float32))
    out = np.unique(np.concatenate(probes))
    return out[~np.isnan(out)]


def check_seeks_local(tree, decoded, offsets, probes):
    """seek_ge(x) lands between two decoded keys: the one before is < x <= the one at it.

    The local form of check_seeks, asserted on its own as well."""
    n = decoded.size
    for x in probes:
        i = global_index(tree.seek_ge(float(x)), offsets, n)
        assert i == n or decoded[i] >= x, (float(x), i)
        assert i == 0 or decoded[i - 1] < x, (float(x), i)


def check_seeks(tree, decoded, offsets, probes):
    assert np.all(np.diff(decoded) >= 0), "decoded keys must be non-decreasing"
    n = decoded.size
    for x in probes:
        cur = tree.seek_ge(float(x))
        got = global_index(cur, offsets, n)
        want = int(np.searchsorted(decoded, x, side="left"))
        assert got == want, (float(x), got, want)
        if got < n:
            assert cur.key == float(decoded[got])


def expected_shape(n, cap, fanout):
    leaves = max(1, math.ceil(n / cap))
    height, nodes, inner = 1, leaves, 0
    while nodes > 1:
        nodes = math.ceil(nodes / fanout)
        inner += nodes
        height += 1
    return leaves, height, inner


# ---------------------------------------------------------------------------------------------
# Capacities and id widths
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_ids, bits",
    [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (256, 8), (257, 9), (65536, 16),
     (65537, 17), (2**20, 20), (2**32, 32)],
)
def test_btree_id_bits_for_table(n_ids, bits):
    assert id_bits_for(n_ids) == bits


def test_btree_id_bits_for_refuses_more_than_2_pow_32_ids():
    with pytest.raises(ValueError, match="2\\*\\*32"):
        id_bits_for(2**32 + 1)


def test_btree_capacities_match_the_format_doc():
    assert leaf_capacity(4088, 16) == 1014  # n <= 65,536
    assert leaf_capacity(4088, 20) == 901  # n <= 2**20
    assert leaf_capacity(504, 9) == 151
    assert inner_capacity(4088) == 510
    assert inner_capacity(504) == 62
    assert leaf_capacity((1 << 20) - 8, 1) == 65535  # the u16 count bounds big pages
    for bits in range(1, 33):  # a full leaf keeps its 8 slack bytes
        cap = leaf_capacity(504, bits)
        assert 24 + 2 * cap + math.ceil(cap * bits / 8) + 8 <= 504
        assert 24 + 2 * (cap + 1) + math.ceil((cap + 1) * bits / 8) + 8 > 504


# ---------------------------------------------------------------------------------------------
# Bulk load and scans at page-boundary sizes
# ---------------------------------------------------------------------------------------------

CAP_512_BITS_10 = leaf_capacity(504, 10)  # 145
CAP_512_BITS_14 = leaf_capacity(504, 14)  # 125


@pytest.mark.parametrize(
    "n, id_bits, leaf_entries",
    [
        (1, 10, None),
        (CAP_512_BITS_10, 10, None),  # exactly one full leaf
        (CAP_512_BITS_10 + 1, 10, None),  # full + 1
        (2 * CAP_512_BITS_10, 10, None),  # two full leaves
        (62 * CAP_512_BITS_14 + 1, 14, None),  # 63 leaves, 2 inner nodes, a root: height 3
        (200, 8, 3),  # 67 leaves of 3: height 3
        (3 * 62 * 62 + 1, 16, 3),  # 3,845 leaves: height 4
    ],
    ids=["one", "full-leaf", "full-plus-one", "two-full", "height3", "height3-small-leaves",
         "height4"],
)
def test_btree_bulk_load_scans_and_seeks_at_boundary_sizes(tmp_path, n, id_bits, leaf_entries):
    rng = np.random.default_rng(n)
    keys = np.sort(rng.normal(0, 100, n).astype(np.float32))
    ids = rng.permutation(n)
    path = tmp_path / "t.pages"
    info = write_tree(path, keys, ids, id_bits=id_bits, leaf_entries=leaf_entries, seed=n)
    cap = leaf_entries or leaf_capacity(504, id_bits)
    n_leaves, height, n_inner = expected_shape(n, cap, inner_capacity(504))
    assert (info.n_entries, info.n_leaves, info.height) == (n, n_leaves, height)
    assert info.id_bits == id_bits
    assert (info.first_leaf, info.last_leaf) == (1, n_leaves)
    assert info.root_page == n_leaves + n_inner  # inner nodes follow the leaves; root is last
    assert (info.key_min, info.key_max) == (float(keys[0]), float(keys[-1]))
    tree = open_tree(path)
    with tree.page_file as pf:
        assert tree.info == info
        assert pf.page_count == 1 + n_leaves + n_inner
        decoded, offsets = check_scan(tree, keys, ids)
        check_backward_is_reverse(tree, decoded, ids)
        probes = probe_values(keys, decoded)
        if probes.size > 600:
            probes = np.unique(np.concatenate([probes[:: probes.size // 500], probes[-5:]]))
        check_seeks(tree, decoded, offsets, probes)


def test_btree_empty_tree_is_one_empty_leaf(tmp_path):
    path = tmp_path / "t.pages"
    info = write_tree(path, [], [], id_bits=1)
    assert (info.n_entries, info.n_leaves, info.height) == (0, 1, 1)
    assert info.first_leaf == info.last_leaf == info.root_page == 1
    assert math.isnan(info.key_min) and math.isnan(info.key_max)
    assert TreeInfo.from_dict(json.loads(info.to_json())).n_entries == 0
    tree = open_tree(path)
    with tree.page_file:
        first = tree.first()
        assert (first.pos, first.key, first.keys.size) == (0, None, 0)
        assert (first.prev_page, first.next_page) == (-1, -1)
        assert list(first.iter_forward()) == []
        last = tree.last()
        assert last.pos == -1 and last.key is None
        assert list(last.iter_backward()) == []
        for x in (-1.0, 0.0, math.inf):
            cur = tree.seek_ge(x)
            assert (cur.page_no, cur.pos) == (1, 0)
            assert not cur.next_leaf() and not cur.prev_leaf()
        keys, ids, prev, nxt = tree.read_leaf(1)
        assert (keys.size, ids.size, prev, nxt) == (0, 0, -1, -1)


def test_btree_duplicate_keys_spanning_leaf_boundaries(tmp_path):
    values = np.array([-2.0, -1.0, 0.0, 0.5, 3.0], dtype=np.float32)
    keys = np.repeat(values, [3, 20, 40, 9, 300])
    ids = np.arange(keys.size)[::-1]  # ids need not follow the keys
    for leaf_entries in (None, 7, 2, 1):
        path = tmp_path / f"dups-{leaf_entries}.pages"
        info = write_tree(path, keys, ids, leaf_entries=leaf_entries, seed=leaf_entries or 0)
        per_leaf = leaf_entries or leaf_capacity(504, info.id_bits)
        assert info.n_leaves == math.ceil(keys.size / per_leaf)
        tree = open_tree(path)
        with tree.page_file:
            decoded, offsets = check_scan(tree, keys, ids)
            check_backward_is_reverse(tree, decoded, ids)
            check_seeks(tree, decoded, offsets, probe_values(values, decoded))
            for v in values:  # seeking a copy's decoded key lands on or before the first copy
                first_copy = int(np.argmax(keys == v))
                cur = tree.seek_ge(float(decoded[first_copy]))
                assert global_index(cur, offsets, keys.size) <= first_copy


def test_btree_negative_and_positive_zero_keys_are_equal(tmp_path):
    zeros = [-0.0, 0.0] * 6 + [0.0, -0.0] * 2  # sorted: -0.0 == 0.0
    keys = np.array([-1.0] * 4 + zeros + [1.0], dtype=np.float32)
    ids = np.arange(keys.size)
    path = tmp_path / "zeros.pages"
    info = write_tree(path, keys, ids, leaf_entries=4)  # zeros of both signs fill four leaves
    assert info.n_leaves == 6
    tree = open_tree(path)
    with tree.page_file:
        decoded, offsets = check_scan(tree, keys, ids)
        np.testing.assert_array_equal(decoded, keys)  # leaves of equal keys decode exactly
        check_backward_is_reverse(tree, decoded, ids)
        for zero in (0.0, -0.0):
            cur = tree.seek_ge(zero)
            assert global_index(cur, offsets, keys.size) == 4
            assert cur.key == 0.0
        check_seeks(tree, decoded, offsets, probe_values(keys, decoded))


def test_btree_huge_and_tiny_keys_decode_within_the_quantisation_error(tmp_path):
    keys = np.array([-1e38, -1e38, -3e37, -1e30, -1.0, -1e-30, 0.0, 0.0, 1e-38, 1.0, 1e30,
                     2e37, 1e38, 1e38], dtype=np.float32)
    ids = np.arange(keys.size) * 5
    for leaf_entries in (None, 7, 3):
        path = tmp_path / f"huge-{leaf_entries}.pages"
        info = write_tree(path, keys, ids, leaf_entries=leaf_entries)
        tree = open_tree(path)
        with tree.page_file:
            decoded, offsets = check_scan(tree, keys, ids)
            assert np.isfinite(decoded).all()
            check_backward_is_reverse(tree, decoded, ids)
            probes = probe_values(keys, decoded)
            assert np.all(np.diff(decoded) >= 0)
            check_seeks(tree, decoded, offsets, probes)
            check_seeks_local(tree, decoded, offsets, probes)


def test_btree_seek_past_a_leaf_end_steps_on_with_next_leaf(tmp_path):
    keys = np.array([0, 1, 2, 3, 10, 11, 12, 13, 20], dtype=np.float32)
    path = tmp_path / "t.pages"
    write_tree(path, keys, np.arange(9), leaf_entries=4)
    tree = open_tree(path)
    with tree.page_file:
        cur = tree.seek_ge(5.0)  # between the leaves: past the end of leaf 1
        assert (cur.page_no, cur.pos, cur.key) == (1, 4, None)
        assert cur.next_leaf()
        assert (cur.page_no, cur.pos, cur.key, int(cur.ids[0])) == (2, 0, 10.0, 4)
        cur = tree.seek_ge(10.0)  # equal to the next leaf's first key: the leaf before, at its end
        assert (cur.page_no, cur.pos, cur.key) == (1, 4, None)
        assert cur.next_leaf() and (cur.page_no, cur.pos, cur.key) == (2, 0, 10.0)
        cur = tree.seek_ge(10.5)
        assert (cur.page_no, cur.pos, cur.key) == (2, 1, 11.0)
        cur = tree.seek_ge(25.0)  # past everything
        assert (cur.page_no, cur.pos, cur.key) == (3, 1, None)
        assert not cur.next_leaf() and (cur.page_no, cur.pos) == (3, 1)
        cur = tree.seek_ge(-5.0)
        assert (cur.page_no, cur.pos, cur.key) == (1, 0, 0.0)
        chunks = [(k.tolist(), i.tolist()) for k, i in tree.seek_ge(12.5).iter_forward()]
        assert chunks == [([13.0], [7]), ([20.0], [8])]


def test_btree_cursor_moves_and_stops_at_both_ends(tmp_path):
    keys = np.arange(10, dtype=np.float32)
    path = tmp_path / "t.pages"
    write_tree(path, keys, np.arange(10), leaf_entries=4)  # leaves 1, 2, 3 hold 4, 4, 2
    tree = open_tree(path)
    with tree.page_file:
        first = tree.first()
        assert (first.page_no, first.pos, first.prev_page, first.next_page) == (1, 0, -1, 2)
        assert not first.prev_leaf()
        assert (first.page_no, first.pos) == (1, 0)  # unchanged
        last = tree.last()
        assert (last.page_no, last.pos, last.key) == (3, 1, 9.0)
        assert (last.prev_page, last.next_page) == (2, -1)
        assert not last.next_leaf()
        assert last.prev_leaf() and (last.page_no, last.pos, last.key) == (2, 3, 7.0)
        assert last.prev_leaf() and (last.page_no, last.pos, last.key) == (1, 3, 3.0)
        assert not last.prev_leaf()
        assert first.next_leaf() and first.next_leaf() and (first.page_no, first.key) == (3, 8.0)
        assert not first.next_leaf()
        mid = tree.seek_ge(5.0)
        assert [k.tolist() for k, _ in mid.clone().iter_backward()] == [[5, 4], [3, 2, 1, 0]]
        assert [k.tolist() for k, _ in mid.iter_forward()] == [[5, 6, 7], [8, 9]]


def test_btree_cursor_clone_shares_the_leaf_without_a_read(tmp_path):
    keys = np.arange(12, dtype=np.float32)
    path = tmp_path / "t.pages"
    write_tree(path, keys, np.arange(12), leaf_entries=4)
    counter = IOCounter()
    tree = open_tree(path, counter=counter)
    with tree.page_file:
        cur = tree.seek_ge(6.0)
        before = counter.snapshot()
        twin = cur.clone()
        assert counter.snapshot() == before
        assert twin.keys is cur.keys and twin.ids is cur.ids
        assert (twin.page_no, twin.pos, twin.prev_page, twin.next_page) == (2, 2, 1, 3)
        assert twin.next_leaf()  # the twin moves alone
        assert (twin.page_no, twin.pos) == (3, 0)
        assert (cur.page_no, cur.pos, cur.key) == (2, 2, 6.0)
        twin.pos = 3
        assert cur.pos == 2


def test_btree_read_leaf_into_decodes_like_read_leaf(tmp_path):
    rng = np.random.default_rng(7)
    keys = np.sort(rng.uniform(-50, 50, 700).astype(np.float32))
    ids = rng.integers(0, 2**20, 700)
    path = tmp_path / "t.pages"
    info = write_tree(path, keys, ids, id_bits=20)
    tree = open_tree(path)
    with tree.page_file:
        for page_no in range(info.first_leaf, info.last_leaf + 1):
            keys_out = np.full(1000, np.nan, dtype=np.float32)
            ids_out = np.full(1000, -7, dtype=np.int64)
            k, i, prev, nxt = tree.read_leaf(page_no)
            c, prev2, nxt2 = tree.read_leaf_into(page_no, keys_out, ids_out)
            assert (c, prev2, nxt2) == (k.size, prev, nxt)
            assert prev == (page_no - 1 if page_no > info.first_leaf else -1)
            assert nxt == (page_no + 1 if page_no < info.last_leaf else -1)
            np.testing.assert_array_equal(keys_out[:c], k)
            np.testing.assert_array_equal(ids_out[:c], i)
            assert np.isnan(keys_out[c:]).all() and (ids_out[c:] == -7).all()  # untouched


def test_btree_two_trees_share_one_page_file(tmp_path):
    path = tmp_path / "two.pages"
    pf = PageFile.create(path, kind="btree", page_size=512)
    a_keys = np.linspace(-5, 5, 30, dtype=np.float32)
    b_keys = np.linspace(100, 200, 17, dtype=np.float32)
    a_info = write_tree(None, a_keys, np.arange(30), leaf_entries=8, page_file=pf)
    b_info = write_tree(None, b_keys, np.arange(17)[::-1], leaf_entries=8, page_file=pf)
    pf.finalize()
    pf.close()
    assert (a_info.first_leaf, a_info.last_leaf, a_info.root_page) == (1, 4, 5)
    assert (b_info.first_leaf, b_info.last_leaf, b_info.root_page) == (6, 8, 9)
    with PageFile.open(path, kind="btree") as pf:
        models = ((a_info, a_keys, np.arange(30)), (b_info, b_keys, np.arange(17)[::-1]))
        for info, keys, ids in models:
            tree = BPlusTree(pf, info)
            decoded, offsets = check_scan(tree, keys, ids)  # each scan stops at its own last leaf
            check_backward_is_reverse(tree, decoded, ids)
            check_seeks(tree, decoded, offsets, probe_values(keys, decoded))


# ---------------------------------------------------------------------------------------------
# Exact page I/O of tree operations
# ---------------------------------------------------------------------------------------------


def test_btree_operations_cost_hand_computed_reads_and_seeks(tmp_path):
    cap = leaf_capacity(504, 9)  # 151 entries per leaf
    n = 2 * cap + 20  # three leaves: pages 1, 2, 3; the root is page 4
    keys = np.arange(n, dtype=np.float32)
    path = tmp_path / "t.pages"
    info = write_tree(path, keys, np.arange(n), id_bits=9)
    assert (info.n_leaves, info.height, info.root_page) == (3, 2, 4)
    assert (info.first_leaf, info.last_leaf) == (1, 3)
    counter = IOCounter()
    tree = open_tree(path, counter=counter, buffer_pool=BufferPool(0))

    def cost(action):
        before = counter.snapshot()
        result = action()
        d = counter.snapshot().delta(before)
        assert d.bytes_read == 512 * d.page_reads
        return result, (d.page_reads, d.seeks)

    with tree.page_file:
        cur, c = cost(lambda: tree.seek_ge(float(cap + 5)))  # root (page 4), then leaf 2
        assert c == (2, 2) and (cur.page_no, cur.pos) == (2, 5)
        assert cost(cur.next_leaf) == (True, (1, 0))  # leaf 3 right after leaf 2: sequential
        assert cost(cur.next_leaf) == (False, (0, 0))
        assert cost(cur.prev_leaf) == (True, (1, 1))  # leftwards: every leaf is a seek
        assert cost(cur.prev_leaf) == (True, (1, 1))
        assert cost(cur.prev_leaf) == (False, (0, 0))
        assert cost(cur.clone)[1] == (0, 0)
        assert cost(lambda: tree.find_leaf(-1.0)) == (1, (1, 1))  # the root only
        counter.reset_head()
        assert cost(tree.first)[1] == (1, 1)
        assert cost(tree.last)[1] == (1, 1)
        counter.reset_head()
        first = tree.first()
        assert cost(lambda: list(first.iter_forward()))[1] == (2, 0)  # leaves 2, 3 follow leaf 1
        last = tree.last()
        assert cost(lambda: list(last.iter_backward()))[1] == (2, 2)
        end, c = cost(lambda: tree.seek_ge(1e9))  # past the end: root + last leaf, nothing more
        assert c == (2, 2) and (end.page_no, end.pos) == (3, 20)
        assert cost(end.next_leaf) == (False, (0, 0))
        assert cost(lambda: tree.read_leaf(2))[1] == (1, 1)
        assert cost(lambda: tree.read_leaf(3))[1] == (1, 0)


def test_btree_seek_in_a_three_level_tree_reads_three_pages(tmp_path):
    # 70 one-entry leaves (page p holds key p - 1); inner nodes of 62 and 8 children (pages 71
    # and 72); root 73. seek_ge(x) goes to the last leaf whose first key is < x.
    keys = np.arange(70, dtype=np.float32)
    path = tmp_path / "t.pages"
    info = write_tree(path, keys, np.arange(70), leaf_entries=1)
    assert (info.height, info.n_leaves, info.root_page) == (3, 70, 73)
    counter = IOCounter()
    pool = BufferPool(10 * 504)
    tree = open_tree(path, counter=counter, buffer_pool=pool)
    with tree.page_file:
        for x, leaf in ((-3.0, 1), (0.5, 1), (61.5, 62), (62.0, 62), (62.5, 63), (69.5, 70)):
            pool.clear()
            counter.reset_head()
            before = counter.snapshot()
            cur = tree.seek_ge(x)
            d = counter.snapshot().delta(before)
            assert (d.page_reads, d.seeks, d.cache_hits) == (3, 3, 0)
            assert cur.page_no == leaf
        before = counter.snapshot()
        tree.seek_ge(69.5)  # the same path again: all three pages from the pool
        d = counter.snapshot().delta(before)
        assert (d.page_reads, d.cache_hits) == (0, 3)


# ---------------------------------------------------------------------------------------------
# Refusals and closed files
# ---------------------------------------------------------------------------------------------


def test_btree_bulk_loader_refuses_bad_input_and_keeps_its_state(tmp_path):
    path = tmp_path / "t.pages"
    pf = PageFile.create(path, kind="btree", page_size=512)
    for bits in (0, 33):
        with pytest.raises(ValueError, match=f"id_bits must be 1..32, got {bits}"):
            BulkLoader(pf, id_bits=bits)
    cap = leaf_capacity(504, 4)
    for bad in (0, cap + 1):
        with pytest.raises(ValueError, match=f"leaf_entries must be 1..{cap}"):
            BulkLoader(pf, id_bits=4, leaf_entries=bad)

    loader = BulkLoader(pf, id_bits=4, leaf_entries=3)
    loader.add(np.array([1.0, 2.0, 2.0, 5.0], np.float32), np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="ascending"):
        loader.add(np.array([6.0, 5.5], np.float32), np.array([4, 5]))  # descending in a chunk
    with pytest.raises(ValueError, match="ascending"):
        loader.add(np.array([4.0], np.float32), np.array([4]))  # below the last key added
    with pytest.raises(ValueError, match="NaN"):
        loader.add(np.array([6.0, np.nan], np.float32), np.array([4, 5]))
    with pytest.raises(ValueError, match="NaN"):
        loader.add(np.array([np.nan], np.float32), np.array([4]))
    with pytest.raises(ValueError, match=r"ids must be in \[0, 2\*\*4\)"):
        loader.add(np.array([6.0, 7.0], np.float32), np.array([4, 16]))
    with pytest.raises(ValueError, match="ids must be"):
        loader.add(np.array([6.0], np.float32), np.array([-1]))
    with pytest.raises(ValueError, match="same length"):
        loader.add(np.array([6.0, 7.0], np.float32), np.array([4]))
    with pytest.raises(ValueError, match="1-D"):
        loader.add(np.ones((2, 2), np.float32), np.ones((2, 2), np.int64))
    loader.add(np.array([5.0, 6.0], np.float32), np.array([15, 4]))  # equal to the last key: fine
    info = loader.finish()
    pf.finalize()
    pf.close()
    assert info.n_entries == 6
    with PageFile.open(path) as pf:
        tree = BPlusTree(pf, info)
        check_scan(tree, [1, 2, 2, 5, 5, 6], [0, 1, 2, 3, 15, 4])


def test_btree_id_bits_32_keeps_the_largest_ids(tmp_path):
    ids = np.array([2**32 - 1, 0, 2**31, 2**32 - 2, 1, 123456789], dtype=np.uint32)
    path = tmp_path / "t.pages"
    info = write_tree(path, np.arange(6), ids, id_bits=32, leaf_entries=4)
    assert info.id_bits == 32
    tree = open_tree(path)
    with tree.page_file:
        check_scan(tree, np.arange(6), ids.astype(np.int64))


def test_btree_use_after_close_raises_closed_file_error(tmp_path):
    path = tmp_path / "t.pages"
    write_tree(path, np.arange(12), np.arange(12), leaf_entries=4)
    tree = open_tree(path)
    first, middle, last = tree.first(), tree.seek_ge(5.0), tree.last()
    walker = tree.first()
    scan = walker.iter_forward()
    next(scan)
    tree.page_file.close()
    for call in (lambda: tree.seek_ge(1.0), tree.first, tree.last, lambda: tree.find_leaf(1.0),
                 lambda: tree.read_leaf(1),
                 lambda: tree.read_leaf_into(1, np.empty(8, np.float32), np.empty(8, np.int64)),
                 middle.next_leaf, middle.prev_leaf, first.prev_leaf, last.next_leaf,
                 lambda: next(scan), lambda: list(last.clone().iter_backward())):
        with pytest.raises(ClosedFileError, match="closed"):
            call()


# ---------------------------------------------------------------------------------------------
# Known bugs
# ---------------------------------------------------------------------------------------------


def test_btree_decoded_keys_stay_ordered_across_a_leaf_boundary(tmp_path):
    # Leaf 1 holds [-1.0, 0.1, 0.1, 0.1]: 0.1 decodes to 0.100000046; leaf 2 starts with 0.1.
    keys = np.array([-1.0, 0.1, 0.1, 0.1, 0.1, 0.1, 2.0], dtype=np.float32)
    path = tmp_path / "t.pages"
    write_tree(path, keys, np.arange(7), leaf_entries=4)
    tree = open_tree(path)
    with tree.page_file:
        decoded, offsets = check_scan(tree, keys, np.arange(7))  # within the error bound
        x = float(decoded[1])
        cur = tree.seek_ge(x)
        assert global_index(cur, offsets, 7) <= 1, "seek_ge skipped entries whose key is x"
        assert np.all(np.diff(decoded) >= 0), decoded


def test_btree_last_entry_decodes_to_key_max_even_at_float32_max(tmp_path):
    for keys in ([-1.0, 0.1], [0.0, F32_MAX], [-F32_MAX, 0.0, F32_MAX]):
        path = tmp_path / f"t{len(keys)}-{keys[0]}.pages"
        info = write_tree(path, keys, np.arange(len(keys)))
        tree = open_tree(path)
        with tree.page_file:
            assert tree.last().key == info.key_max == float(np.float32(keys[-1])), keys


def test_btree_seek_ge_with_a_float64_key_never_lands_below_it(tmp_path):
    keys = np.array([1.0, 1.0, 2.0], dtype=np.float32)
    path = tmp_path / "t.pages"
    write_tree(path, keys, np.arange(3))
    tree = open_tree(path)
    with tree.page_file:
        x = 1.0 + 1e-10  # not a float32; float32(x) == 1.0
        cur = tree.seek_ge(x)
        assert cur.key is None or cur.key >= x, cur.key
        assert cur.pos == int(np.searchsorted(cur.keys, x, side="left"))


def test_btree_infinite_keys_are_refused_or_kept(tmp_path):
    for n, keys in enumerate(([0.0, 1.0, np.inf], [-np.inf, 0.0, 1.0])):
        path = tmp_path / f"inf{n}.pages"
        try:
            write_tree(path, keys, np.arange(3))
        except ValueError:
            continue  # refusing infinite keys, like NaN, is a correct answer
        tree = open_tree(path)
        with tree.page_file:
            decoded = np.concatenate([k for _, k, _ in scan_leaves(tree)])
            assert not np.isnan(decoded).any(), decoded
            np.testing.assert_array_equal(decoded[[0, 2]], np.float32(keys)[[0, 2]])


# ---------------------------------------------------------------------------------------------
# leaf_codec kernels
# ---------------------------------------------------------------------------------------------


def encoded_leaf(keys, ids, id_bits, payload_size):
    payload = np.zeros(payload_size, dtype=np.uint8)
    step = leaf_key_step(keys[0], keys[-1])
    LEAF_HEADER_STRUCT.pack_into(payload, 0, LEAF_NODE, id_bits, keys.size, NO_PAGE, 9,
                                 float(keys[0]), float(step), float(keys[-1]))
    encode_leaf(keys, ids, id_bits, step, payload)
    return payload, step


@pytest.mark.parametrize("id_bits", range(1, 33))
def test_btree_leaf_codec_round_trips_full_leaves_for_every_id_width(id_bits):
    payload_size = 1016
    rng = np.random.default_rng(id_bits)
    c = leaf_capacity(payload_size, id_bits)
    keys = np.sort(rng.normal(3.0, 40.0, c).astype(np.float32))
    keys[c // 2:c // 2 + 5] = keys[c // 2]  # some duplicates
    top = (1 << id_bits) - 1
    ids = rng.integers(0, top, c, endpoint=True).astype(np.uint32)
    ids[:3] = [top, 0, top]
    payload, step = encoded_leaf(keys, ids, id_bits, payload_size)

    used = LEAF_ENTRIES_OFFSET + 2 * c + math.ceil(c * id_bits / 8)
    assert not payload[used:].any()  # nothing written into the slack
    assert leaf_header(payload) == (c, -1, 9, float(keys[0]), float(step), float(keys[-1]), id_bits)

    keys_out = np.empty(c, dtype=np.float32)
    ids_out = np.empty(c, dtype=np.int64)
    decode_leaf(payload, c, id_bits, float(keys[0]), float(step), float(keys[-1]), keys_out, ids_out)
    np.testing.assert_array_equal(ids_out, ids.astype(np.int64))
    assert np.all(np.diff(keys_out) >= 0) and keys_out[0] == keys[0]
    assert np.abs(keys_out.astype(np.float64) - keys).max() <= quantisation_tolerance(keys)
    for j in (0, 1, c // 2, c - 1):
        assert leaf_id(payload, c, id_bits, j) == ids[j]
        assert leaf_key(payload, float(keys[0]), float(step), float(keys[-1]), j) == keys_out[j]

    probes = probe_values(keys, keys_out)
    got = [leaf_search_ge(payload, float(x)) for x in probes]
    np.testing.assert_array_equal(got, np.searchsorted(keys_out, probes, side="left"))


def test_btree_leaf_codec_single_entry_and_equal_keys_decode_exactly():
    for keys in (np.array([-4.5], np.float32), np.full(50, 7.25, np.float32)):
        ids = np.arange(keys.size, dtype=np.uint32)
        payload, step = encoded_leaf(keys, ids, 6, 504)
        assert step == 0.0
        keys_out = np.empty(keys.size, np.float32)
        ids_out = np.empty(keys.size, np.int64)
        decode_leaf(payload, keys.size, 6, float(keys[0]), float(step), float(keys[-1]), keys_out, ids_out)
        np.testing.assert_array_equal(keys_out, keys)
        np.testing.assert_array_equal(ids_out, ids)
        assert leaf_search_ge(payload, float(keys[0])) == 0
        above = float(np.nextafter(keys[0], np.float32(np.inf)))
        assert leaf_search_ge(payload, above) == keys.size


# ---------------------------------------------------------------------------------------------
# Property: the tree's scans equal the model
# ---------------------------------------------------------------------------------------------

SMALL_KEY_SET = [-1e6, -2.5, -0.0, 0.0, 1.0, float(np.nextafter(np.float32(1), np.float32(2))),
                 7.25, 3e30]


@st.composite
def sorted_entries(draw):
    n = draw(st.integers(0, 300))
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(SMALL_KEY_SET), min_size=n, max_size=n))
        event("keys from a small set")
    else:
        wide = draw(st.sampled_from([1.0, 2.0**20, 2.0**123]))
        keys = draw(st.lists(st.floats(-wide, wide, width=32), min_size=n, max_size=n))
        event("keys from a wide range")
    keys = np.sort(np.array(keys, dtype=np.float32), kind="stable")
    id_bits = draw(st.integers(1, 32))
    seed = draw(st.integers(0, 2**32 - 1))
    ids = np.random.default_rng(seed).integers(0, 1 << id_bits, n, dtype=np.uint64)
    return keys, ids.astype(np.int64), id_bits, seed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=sorted_entries(), page_size=st.sampled_from([512, 1024, 4096]),
       leaf_entries=st.one_of(st.none(), st.integers(1, 9)))
def test_btree_forward_and_backward_scans_match_the_model(entries, page_size, leaf_entries):
    keys, ids, id_bits, seed = entries
    with TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.pages")
        info = write_tree(path, keys, ids, page_size=page_size, id_bits=id_bits,
                          leaf_entries=leaf_entries, seed=seed)
        cap = leaf_entries or leaf_capacity(page_size - 8, id_bits)
        n_leaves, height, _ = expected_shape(keys.size, cap, inner_capacity(page_size - 8))
        assert (info.n_entries, info.n_leaves, info.height) == (keys.size, n_leaves, height)
        event(f"height {height}")
        tree = open_tree(path)
        with tree.page_file:
            decoded, offsets = check_scan(tree, keys, ids)
            check_backward_is_reverse(tree, decoded, ids)
            every = max(1, keys.size // 20)
            check_seeks_local(tree, decoded, offsets, probe_values(keys[::every], decoded[::every]))
            if info.n_leaves == 1:
                check_seeks(tree, decoded, offsets, probe_values(keys, decoded))
