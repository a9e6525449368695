"""QALSH search (lshdisk.qalsh through lshdisk.Index) against exact numpy neighbours.

Oracles: brute force for quality (recall and overall-ratio floors), numpy for the returned
distances, and the real Mnist set with its published ground truth and the I/O budget of the
reference code.
"""

import numpy as np
import pytest

import lshdisk
from lshdisk.evaluate import overall_ratio, recall_at_k
from lshdisk.qalsh import draw_projections

# --------------------------------------------------------------------------- quality


def test_qalsh_clustered_float32_quality_against_brute_force(clustered, clustered_results):
    D, I, _ = clustered_results
    assert D.shape == I.shape == (100, 10)
    assert D.dtype == np.float32 and I.dtype == np.int64
    assert recall_at_k(D, clustered.gt_d, 10) >= 0.9
    assert overall_ratio(D, clustered.gt_d, 10) <= 1.05
    # Every query finds its true nearest neighbour's distance or one within c.
    assert np.all(D[:, 0] <= 2.0 * clustered.gt_d[:, 0] + 1e-6)


def test_qalsh_integer_uint8_quality_against_brute_force(integer_data, integer_index_dir):
    with lshdisk.open(integer_index_dir) as index:
        assert index.dtype == np.uint8
        D, I = index.search(integer_data.q, 10)
    assert recall_at_k(D, integer_data.gt_d, 10) >= 0.9
    assert overall_ratio(D, integer_data.gt_d, 10) <= 1.05


def test_qalsh_results_sorted_unique_and_at_their_true_distance(clustered, clustered_results,
                                                                oracle):
    D, I, _ = clustered_results
    assert np.all(np.diff(D, axis=1) >= 0)
    assert np.all(I >= 0) and np.all(I < clustered.x.shape[0])
    for row in I:
        assert np.unique(row).size == row.size
    np.testing.assert_allclose(D, oracle.true_distances(clustered.x, clustered.q, I), rtol=1e-5)


def test_qalsh_integer_distances_are_exact(integer_data, integer_index_dir, oracle):
    with lshdisk.open(integer_index_dir) as index:
        D, I = index.search(integer_data.q[:20], 10)
    np.testing.assert_allclose(D, oracle.true_distances(integer_data.x, integer_data.q[:20], I),
                               rtol=1e-5)
    assert np.all(np.diff(D, axis=1) >= 0)


def test_qalsh_same_index_opened_twice_gives_same_results(clustered, clustered_index_dir,
                                                          clustered_results):
    D0, I0, S0 = clustered_results
    with lshdisk.open(clustered_index_dir) as a, lshdisk.open(clustered_index_dir) as b:
        Da, Ia, Sa = a.search(clustered.q[:30], 10, return_stats=True)
        Db, Ib = b.search(clustered.q[:30], 10)
    np.testing.assert_array_equal(Ia, Ib)
    np.testing.assert_array_equal(Da, Db)
    np.testing.assert_array_equal(Ia, I0[:30])
    np.testing.assert_array_equal(Da, D0[:30])
    np.testing.assert_array_equal(Sa.page_reads, S0.page_reads[:30])
    np.testing.assert_array_equal(Sa.candidates, S0.candidates[:30])


def test_qalsh_data_point_query_returns_itself_first(clustered, clustered_index_dir):
    ids = np.array([0, 1, 17, 999, 2500, 3999])
    with lshdisk.open(clustered_index_dir) as index:
        D, I = index.search(clustered.x[ids], 5)
    np.testing.assert_array_equal(I[:, 0], ids)
    np.testing.assert_array_equal(D[:, 0], 0.0)
    assert np.all(D[:, 1:] > 0)


def test_qalsh_k1_returns_one_c_approximate_neighbour(clustered, clustered_index_dir, oracle):
    with lshdisk.open(clustered_index_dir) as index:
        D1, I1 = index.search(clustered.q, 1)
    assert D1.shape == I1.shape == (100, 1)
    np.testing.assert_allclose(D1[:, 0], oracle.true_distances(clustered.x, clustered.q, I1)[:, 0],
                               rtol=1e-5)
    # With k = 1, T1 stops at the first candidate within c R: c-approximate, not exact.
    assert np.all(D1[:, 0] <= 2.0 * clustered.gt_d[:, 0] + 1e-6)
    assert overall_ratio(D1, clustered.gt_d, 1) <= 1.05
    assert recall_at_k(D1, clustered.gt_d, 1) >= 0.7


def test_qalsh_single_query_vector_is_accepted(clustered, clustered_index_dir, clustered_results):
    D0, I0, _ = clustered_results
    with lshdisk.open(clustered_index_dir) as index:
        D, I, stats = index.search(clustered.q[3], 10, return_stats=True)
        D_list, I_list = index.search(clustered.q[3].tolist(), 10)
    assert D.shape == I.shape == (1, 10)
    assert stats.page_reads.shape == (1,)
    np.testing.assert_array_equal(I[0], I0[3])
    np.testing.assert_array_equal(D[0], D0[3])
    np.testing.assert_array_equal(I_list, I)


def test_qalsh_float64_and_integer_queries_are_converted(integer_data, integer_index_dir):
    q = integer_data.q[:10]
    with lshdisk.open(integer_index_dir) as index:
        Du, Iu = index.search(q, 5)  # uint8
        Df, If = index.search(q.astype(np.float64), 5)
        Di, Ii = index.search(q.astype(np.int64), 5)
    np.testing.assert_array_equal(Iu, If)
    np.testing.assert_array_equal(Iu, Ii)
    np.testing.assert_array_equal(Du, Df)


# --------------------------------------------------------------------------- scale


@pytest.fixture(scope="module")
def scaled_recalls(clustered, tmp_path_factory):
    """recall@10 and results of the clustered set scaled by 1, 1e-3, 1e3, c**-10 and c**10."""
    out = {}
    for scale in (1.0, 1e-3, 1e3, 2.0**-10, 2.0**10):
        s = np.float32(scale)
        path = tmp_path_factory.mktemp("scaled") / "index"
        with lshdisk.build(clustered.x * s, path, memory_limit="16MiB", seed=0) as index:
            D, I, stats = index.search(clustered.q * s, 10, return_stats=True)
        out[scale] = (recall_at_k(D, clustered.gt_d * scale, 10), D, I, stats)
    return out


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_qalsh_quality_does_not_depend_on_the_data_scale(scaled_recalls, scale):
    # Module docstring, Deviations: the radius takes any power of c, so distances well below
    # 1 (embeddings) and in the hundreds (pixels) need no rescaling.
    assert scaled_recalls[scale][0] >= 0.9
    assert abs(scaled_recalls[scale][0] - scaled_recalls[1.0][0]) <= 0.05


@pytest.mark.parametrize("scale", [2.0**-10, 2.0**10])
def test_qalsh_scaling_by_a_power_of_c_leaves_the_search_unchanged(scaled_recalls, scale):
    # c = 2 and the scale is exact in floating point: the same rounds, candidates and pages.
    _, D0, I0, S0 = scaled_recalls[1.0]
    _, D, I, S = scaled_recalls[scale]
    np.testing.assert_array_equal(I, I0)
    np.testing.assert_allclose(D, D0 * np.float32(scale), rtol=1e-6)
    np.testing.assert_array_equal(S.page_reads, S0.page_reads)
    np.testing.assert_array_equal(S.candidates, S0.candidates)


# --------------------------------------------------------------------------- edge cases


def test_qalsh_duplicate_rows_are_all_found(tmp_path, oracle):
    rng = np.random.default_rng(8)
    base = rng.random((400, 8), dtype=np.float32)
    x = np.repeat(base, 3, axis=0)  # rows 3i, 3i+1, 3i+2 are equal
    with lshdisk.build(x, tmp_path / "dup", memory_limit="16MiB") as index:
        D, I = index.search(x[[0, 300, 1199]], 6)
    np.testing.assert_array_equal(D[:, :3], 0.0)
    np.testing.assert_array_equal(np.sort(I[:, :3], axis=1),
                                  [[0, 1, 2], [300, 301, 302], [1197, 1198, 1199]])
    for row in I:
        assert np.unique(row).size == 6
    np.testing.assert_allclose(D, oracle.true_distances(x, x[[0, 300, 1199]], I), rtol=1e-5)
    # The next three are again one triple of equal rows.
    assert D[0, 3] == D[0, 4] == D[0, 5] > 0
    assert len({i // 3 for i in I[0, 3:]}) == 1


def test_qalsh_fewer_points_than_k_pads_with_minus_one_and_inf(tmp_path, oracle):
    rng = np.random.default_rng(9)
    x = rng.random((5, 4), dtype=np.float32)
    q = rng.random((3, 4), dtype=np.float32)
    with lshdisk.build(x, tmp_path / "five", memory_limit="16MiB") as index:
        D, I = index.search(q, 10)
    assert D.shape == I.shape == (3, 10)
    np.testing.assert_array_equal(I[:, 5:], -1)
    assert np.all(np.isinf(D[:, 5:])) and np.all(D[:, 5:] > 0)
    want_d, want_i = oracle.exact_knn(x, q, 5)
    np.testing.assert_array_equal(I[:, :5], want_i)  # all 5 points, in order
    np.testing.assert_allclose(D[:, :5], want_d, rtol=1e-5)


def test_qalsh_single_point_dataset(tmp_path):
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    with lshdisk.build(x, tmp_path / "one", memory_limit="16MiB") as index:
        D, I = index.search([[1.0, 2.0, 5.0], [1.0, 2.0, 3.0]], 2)
    np.testing.assert_array_equal(I, [[0, -1], [0, -1]])
    np.testing.assert_allclose(D[:, 0], [2.0, 0.0])
    assert np.all(np.isinf(D[:, 1]))


def test_qalsh_identical_points_are_all_at_distance_zero(tmp_path):
    x = np.ones((200, 3), dtype=np.float32)  # every projection equal: zero-width leaves
    with lshdisk.build(x, tmp_path / "const", memory_limit="16MiB") as index:
        D, I = index.search(np.ones(3), 4)
        D2, I2 = index.search(np.zeros(3), 4)
    np.testing.assert_array_equal(D, 0.0)
    assert np.unique(I).size == 4 and np.all((I >= 0) & (I < 200))
    np.testing.assert_allclose(D2, np.sqrt(3.0), rtol=1e-6)


def test_qalsh_query_far_outside_the_data(clustered, clustered_index_dir, oracle):
    q = np.full(clustered.x.shape[1], 50.0, dtype=np.float32)
    with lshdisk.open(clustered_index_dir) as index:
        D, I = index.search(q, 10)
    gt_d, _ = oracle.exact_knn(clustered.x, q, 10)
    np.testing.assert_allclose(D, oracle.true_distances(clustered.x, q, I), rtol=1e-5)
    assert np.all(D[0] <= 2.0 * gt_d[0] + 1e-4)


@pytest.mark.parametrize("dtype", ["int8", "uint16", "int32"])
def test_qalsh_other_integer_dtypes(tmp_path, dtype, oracle):
    rng = np.random.default_rng(10)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -1000), min(info.max, 1000)
    x = rng.integers(lo, hi, (500, 6)).astype(dtype)
    q = x[:5].astype(np.float32) + 1.0
    with lshdisk.build(x, tmp_path / dtype, memory_limit="16MiB") as index:
        assert index.dtype == np.dtype(dtype)
        D, I = index.search(q, 3)
    np.testing.assert_allclose(D, oracle.true_distances(x, q, I), rtol=1e-5)
    np.testing.assert_allclose(D[:, 0], np.sqrt(6.0), rtol=1e-6)  # each query is x[i] + 1
    np.testing.assert_array_equal(I[:, 0], np.arange(5))


def test_qalsh_points_larger_than_a_page(tmp_path, oracle):
    rng = np.random.default_rng(12)
    x = rng.random((120, 300), dtype=np.float32)  # 1200 B per point, 512 B pages
    with lshdisk.build(x, tmp_path / "wide", page_size=512, memory_limit="16MiB") as index:
        assert index.info()["page_size"] == 512
        D, I, stats = index.search(x[[4, 77]], 3, return_stats=True)
    np.testing.assert_array_equal(I[:, 0], [4, 77])
    np.testing.assert_allclose(D, oracle.true_distances(x, x[[4, 77]], I), rtol=1e-5)
    np.testing.assert_array_equal(stats.bytes_read, stats.page_reads * 512)


def test_qalsh_projections_come_from_the_seed():
    a = draw_projections(5, 7, 3)
    assert a.dtype == np.float32 and a.shape == (7, 3)
    np.testing.assert_array_equal(
        a, np.random.default_rng(5).standard_normal((7, 3), dtype=np.float32))
    assert not np.array_equal(a, draw_projections(6, 7, 3))


# --------------------------------------------------------------------------- Mnist


@pytest.fixture(scope="module")
def mnist_results(mnist_index_dir, mnist_queries):
    with lshdisk.open(mnist_index_dir) as index:
        info = index.info()
        D, I, stats = index.search(mnist_queries.q, 10, return_stats=True)
    return info, D, I, stats


def test_qalsh_mnist_quality_matches_the_reference_code(mnist_results, mnist_queries):
    info, D, I, _ = mnist_results
    assert (info["n"], info["d"], info["dtype"]) == (60000, 50, "uint8")
    assert (info["params"]["m"], info["params"]["l"]) == (65, 48)
    assert overall_ratio(D, mnist_queries.gt_d, 10) <= 1.01
    assert recall_at_k(D, mnist_queries.gt_d, 10) >= 0.90


def test_qalsh_mnist_distances_are_true_distances(mnist_results, mnist_queries, mnist_dir, oracle):
    _, D, I, _ = mnist_results
    x = np.fromfile(mnist_dir / "Mnist.ds", dtype=np.uint8).reshape(60000, 50)
    np.testing.assert_allclose(D, oracle.true_distances(x, mnist_queries.q, I), rtol=1e-5)
    assert np.all(np.diff(D, axis=1) >= 0)
    # Never better than exact: the returned j-th distance is >= the true j-th distance.
    assert np.all(D >= mnist_queries.gt_d[:, :10] * (1 - 1e-6))


def test_qalsh_mnist_io_stays_within_the_reference_budget(mnist_results):
    _, _, _, stats = mnist_results
    for name in ("page_reads", "seeks", "bytes_read", "candidates", "cache_hits", "cpu_seconds"):
        assert stats[name].shape == (100,), name
    # The authors' QALSH code reads 1768 pages per query on Mnist, k = 10, c = 2.
    assert stats.page_reads.mean() <= 1768
    assert np.all(stats.page_reads >= stats.seeks)
    assert np.all(stats.seeks >= 1)
    np.testing.assert_array_equal(stats.bytes_read, stats.page_reads * 4096)
    assert np.all(stats.candidates <= 10 + 100)  # T2: k + beta * n, beta = 100 / n
    assert np.all(stats.candidates >= 10)
    np.testing.assert_array_equal(stats.cache_hits, 0)
    assert stats.mean()["page_reads"] == pytest.approx(stats.page_reads.mean())
