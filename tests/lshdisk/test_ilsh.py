"""I-LSH (Liu et al., ICDE 2019): incremental search over QALSH's trees."""

import filecmp

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lshdisk
from lshdisk._kernels.ilsh import _push, _sift_down
from lshdisk.evaluate import overall_ratio, recall_at_k


@pytest.fixture(scope="session")
def clustered_ilsh_dir(clustered, tmp_path_factory):
    path = tmp_path_factory.mktemp("clustered-ilsh") / "index"
    lshdisk.build(clustered.x, path, algorithm="ilsh", memory_limit="16MiB", seed=0).close()
    return path


def test_ilsh_index_shares_qalsh_layout_byte_for_byte(clustered_ilsh_dir, clustered_index_dir):
    for name in ("trees.pages", "vectors.pages"):
        assert filecmp.cmp(clustered_ilsh_dir / name, clustered_index_dir / name, shallow=False)
    with lshdisk.open(clustered_ilsh_dir) as index:
        assert index.algorithm == "ilsh"
        assert index.info()["params"]["m"] == index.params.m


def test_ilsh_matches_brute_force_on_clustered_data(clustered, clustered_ilsh_dir, oracle):
    with lshdisk.open(clustered_ilsh_dir) as index:
        D, I, stats = index.search(clustered.q, clustered.k, return_stats=True)
    assert recall_at_k(D, clustered.gt_d, clustered.k) >= 0.9
    assert overall_ratio(D, clustered.gt_d, clustered.k) <= 1.05
    np.testing.assert_allclose(D, oracle.true_distances(clustered.x, clustered.q, I), rtol=1e-5)
    assert np.all(np.diff(D, axis=1) >= 0)
    assert all(len(set(row)) == clustered.k for row in I.tolist())
    assert np.all(stats.candidates >= clustered.k)


def test_ilsh_on_integer_data(integer_data, tmp_path):
    path = tmp_path / "int.ilsh"
    with lshdisk.build(integer_data.x, path, algorithm="ilsh", memory_limit="16MiB") as index:
        D, _ = index.search(integer_data.q, integer_data.k)
    assert recall_at_k(D, integer_data.gt_d, integer_data.k) >= 0.9
    assert overall_ratio(D, integer_data.gt_d, integer_data.k) <= 1.05


def test_ilsh_small_dataset_stays_within_the_ratio(tmp_path, oracle):
    rng = np.random.default_rng(5)
    x = rng.random((60, 6), dtype=np.float32)
    q = rng.random((4, 6), dtype=np.float32)
    with lshdisk.build(x, tmp_path / "small", algorithm="ilsh") as index:
        D, I, stats = index.search(q, 5, return_stats=True)
    gt_d, _ = oracle.exact_knn(x, q, 5)
    assert overall_ratio(D, gt_d, 5) <= 1.1
    assert np.all(stats.candidates <= 5 + 30)  # T2: k + beta*n, beta capped at 0.5
    np.testing.assert_allclose(D, oracle.true_distances(x, q, I), rtol=1e-5)


def test_ilsh_scaled_data_keep_their_quality(clustered, clustered_ilsh_dir, tmp_path):
    with lshdisk.open(clustered_ilsh_dir) as index:
        base = recall_at_k(index.search(clustered.q, 10)[0], clustered.gt_d, 10)
    for scale in (1e-3, 1e3):
        with lshdisk.build(clustered.x * scale, tmp_path / f"s{scale}", algorithm="ilsh",
                           memory_limit="16MiB") as index:
            D, _ = index.search(clustered.q * scale, 10)
        assert recall_at_k(D, clustered.gt_d * scale, 10) >= base - 0.05


def test_ilsh_mnist_quality_and_fewer_page_reads_than_qalsh(mnist_dir, mnist_index_dir,
                                                            mnist_queries, tmp_path):
    path = tmp_path / "mnist.ilsh"
    lshdisk.build(mnist_dir / "Mnist.ds", path, algorithm="ilsh", format="raw", dtype="uint8",
                  dim=50, memory_limit="64MiB").close()
    with lshdisk.open(path) as index:
        D, _, st_i = index.search(mnist_queries.q, 10, return_stats=True)
    with lshdisk.open(mnist_index_dir) as index:
        _, _, st_q = index.search(mnist_queries.q, 10, return_stats=True)
    assert overall_ratio(D, mnist_queries.gt_d, 10) <= 1.01
    assert recall_at_k(D, mnist_queries.gt_d, 10) >= 0.90
    assert st_i.page_reads.mean() < st_q.page_reads.mean()
    # Interleaving the trees makes nearly every I-LSH read a seek; QALSH reads runs.
    assert st_i.seeks.mean() / st_i.page_reads.mean() > st_q.seeks.mean() / st_q.page_reads.mean()


@numba.njit(cache=False)
def _heap_order(keys, replace_with):
    """Push every key, then repeatedly take the root and replace it (or drop it when the
    replacement is NaN); return the sequence of roots taken."""
    n = keys.size
    heap_d = np.full(n + 1, np.inf)
    heap_c = np.zeros(n + 1, dtype=np.int64)
    size = 0
    for i in range(n):
        size = _push(heap_d, heap_c, size, keys[i], i)
    out = np.empty(2 * n, dtype=np.float64)
    k = 0
    while size > 0:
        c = heap_c[0]
        out[k] = heap_d[0]
        k += 1
        nxt = replace_with[c]
        replace_with[c] = np.nan
        if not np.isnan(nxt):
            _sift_down(heap_d, heap_c, size, nxt, c)
        else:
            size -= 1
            last_d = heap_d[size]
            heap_d[size] = np.inf
            if size > 0:
                _sift_down(heap_d, heap_c, size, last_d, heap_c[size])
    return out[:k]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=1, max_size=40), st.data())
def test_ilsh_heap_takes_heads_in_ascending_order(keys, data):
    keys = np.array(keys)
    bumps = np.array(data.draw(st.lists(st.floats(0, 50), min_size=keys.size, max_size=keys.size)))
    drop = np.array(data.draw(st.lists(st.booleans(), min_size=keys.size, max_size=keys.size)))
    replace = np.where(drop, np.nan, keys + bumps)  # a cursor's next head is never closer
    taken = _heap_order(keys, replace.copy())
    assert np.all(np.diff(taken) >= 0)
    assert np.allclose(np.sort(taken), np.sort(np.concatenate([keys, replace[~drop]])))


def _logged_walk(index, q, k, compiled):
    """search() with the leaf pages the walk reads after the descent, in order: through the
    page file (read_page_into) or by the compiled segments (logged when counted)."""
    searcher = index._searcher
    pf = searcher.trees.file
    read_into, count_runs = pf.read_page_into, pf.count_runs
    log = []

    def one(page, out):
        log.append(int(page))
        return read_into(page, out)

    def counted(firsts, counts):
        for f, c in zip(firsts, counts):
            log.extend(range(int(f), int(f) + int(c)))
        return count_runs(firsts, counts)

    pf.read_page_into, pf.count_runs = one, counted
    if not compiled:
        searcher._walk_compiled = searcher._walk_here
    try:
        D, I, stats = index.search(q, k, return_stats=True, threads=1)
    finally:
        pf.read_page_into, pf.count_runs = read_into, count_runs
        searcher.__dict__.pop("_walk_compiled", None)
    return D, I, stats, log


@pytest.mark.parametrize("k", [1, 10])
def test_ilsh_compiled_walk_reads_what_the_walk_through_the_page_file_reads(
        clustered, clustered_ilsh_dir, k):
    with lshdisk.open(clustered_ilsh_dir) as index:
        D0, I0, s0, compiled = _logged_walk(index, clustered.q[:30], k, True)
        D1, I1, s1, here = _logged_walk(index, clustered.q[:30], k, False)
    assert compiled == here and len(here) > 0
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_array_equal(D0, D1)
    for name in ("page_reads", "seeks", "bytes_read", "candidates", "rounds"):
        np.testing.assert_array_equal(s0[name], s1[name])


def test_ilsh_a_damaged_leaf_read_by_the_compiled_walk_raises(clustered, clustered_ilsh_dir,
                                                               tmp_path, flip_byte):
    import shutil
    from storage.errors import CorruptPageError
    copy = tmp_path / "damaged"
    shutil.copytree(clustered_ilsh_dir, copy)
    with lshdisk.open(copy) as index:
        ps = index.meta["page_size"]
        *_, pages = _logged_walk(index, clustered.q[:1], 10, True)
    victim = pages[len(pages) // 2]
    flip_byte(copy / "trees.pages", victim * ps + 64, 0x21)
    with lshdisk.open(copy) as index:
        with pytest.raises(CorruptPageError, match=f"page {victim} "):
            index.search(clustered.q[0], 10, threads=1)


def test_ilsh_a_full_run_log_is_counted_and_the_walk_goes_on(clustered, clustered_ilsh_dir):
    from storage import RunLog
    with lshdisk.open(clustered_ilsh_dir) as index:
        D0, I0, s0 = index.search(clustered.q[:20], 10, return_stats=True, threads=1)
        one = np.zeros(1, np.int64)
        index._searcher._log = RunLog(one.copy(), one.copy(), one.copy())  # room for 1 leaf
        D1, I1, s1 = index.search(clustered.q[:20], 10, return_stats=True, threads=1)
    np.testing.assert_array_equal(I0, I1)
    for name in ("page_reads", "seeks", "candidates"):
        np.testing.assert_array_equal(s0[name], s1[name])
