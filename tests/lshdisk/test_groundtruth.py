"""Tests of lshdisk.groundtruth against plain numpy brute force and the Mnist ground truth."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lshdisk._kernels.bruteforce import topk_sqdist_update
from lshdisk.datasets import open_source, read_groundtruth, read_queries
from lshdisk.errors import DatasetError
from lshdisk.groundtruth import compute_groundtruth, write_groundtruth
from storage.errors import NoSpaceError

MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


def numpy_knn(x, q, k):
    """Oracle: float64 squared distances summed coordinate by coordinate, stable sort by id."""
    x64, q64 = np.asarray(x, np.float64), np.asarray(q, np.float32).astype(np.float64)
    sq = np.zeros((q64.shape[0], x64.shape[0]))
    for t in range(x64.shape[1]):
        sq += (q64[:, t, None] - x64[None, :, t]) ** 2
    order = np.argsort(sq, axis=1, kind="stable")[:, :k]
    dist = np.sqrt(np.take_along_axis(sq, order, axis=1)).astype(np.float32)
    pad = k - order.shape[1]
    if pad:
        order = np.pad(order, ((0, 0), (0, pad)), constant_values=-1)
        dist = np.pad(dist, ((0, 0), (0, pad)), constant_values=np.inf)
    return dist, order.astype(np.int64)


@pytest.mark.parametrize("dtype", ["float32", "uint8", "int8", "uint16", "int32"])
def test_matches_numpy_on_random_data_in_many_chunks(dtype):
    rng = np.random.default_rng(11)
    if dtype == "float32":
        x = rng.standard_normal((700, 13)).astype(np.float32)
        q = rng.standard_normal((9, 13)).astype(np.float32)
    else:
        lo, hi = (-100, 100) if dtype in ("int8", "int32") else (0, 200)
        x = rng.integers(lo, hi, (700, 13)).astype(dtype)
        q = rng.integers(lo, hi, (9, 13)).astype(np.float32)
    calls = []
    dist, ids = compute_groundtruth(x, q, 25, memory_limit_bytes=12_000,
                                    progress=lambda done, n: calls.append((done, n)))
    want_d, want_i = numpy_knn(x, q, 25)
    assert dist.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (9, 25)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(dist, want_d)
    assert len(calls) >= 5 and calls[-1] == (700, 700)
    assert [c[0] for c in calls] == sorted({c[0] for c in calls})


def test_ties_are_broken_by_smaller_id_with_duplicate_rows():
    rng = np.random.default_rng(12)
    x = rng.integers(0, 3, (400, 4)).astype(np.float32)  # few distinct rows: many exact ties
    x[[50, 17, 333]] = x[5]
    q = np.vstack([x[5], rng.integers(0, 3, (6, 4))]).astype(np.float32)
    dist, ids = compute_groundtruth(x, q, 40, memory_limit_bytes=20_000)
    want_d, want_i = numpy_knn(x, q, 40)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(dist, want_d)
    dupes = np.flatnonzero((x == x[5]).all(axis=1))
    np.testing.assert_array_equal(ids[0, : dupes.size], dupes)
    assert (dist[0, : dupes.size] == 0).all() and (np.diff(dist, axis=1) >= 0).all()


def test_fewer_rows_than_k_are_padded():
    x = np.array([[0, 0], [3, 4], [1, 0]], np.uint8)
    dist, ids = compute_groundtruth(x, [[0, 0]], 5)
    np.testing.assert_array_equal(ids, [[0, 2, 1, -1, -1]])
    np.testing.assert_array_equal(dist, np.array([[0, 1, 5, np.inf, np.inf]], np.float32))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), d=st.integers(1, 6), nq=st.integers(1, 4), k=st.integers(1, 70),
       limit_rows=st.integers(1, 80), seed=st.integers(0, 2**32 - 1))
def test_matches_numpy_for_any_shape_and_chunking(n, d, nq, k, limit_rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, (n, d)).astype(np.float32)
    q = rng.integers(0, 4, (nq, d)).astype(np.float32)
    fixed = nq * (12 * d + 28 * k)
    dist, ids = compute_groundtruth(x, q, k, memory_limit_bytes=fixed + limit_rows * (12 * d + 8))
    want_d, want_i = numpy_knn(x, q, k)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(dist, want_d)


def test_kernel_accepts_read_only_blocks_and_any_tiling():
    x = np.arange(12, dtype=np.uint8).reshape(4, 3)
    x.setflags(write=False)
    top_d = np.full((1, 2), np.inf)
    top_i = np.full((1, 2), -1, np.int64)
    topk_sqdist_update(np.zeros((1, 3)), x, 10, top_d, top_i, 3)
    np.testing.assert_array_equal(top_i, [[10, 11]])
    np.testing.assert_array_equal(top_d, [[5.0, 50.0]])
    rows = np.random.default_rng(14).integers(0, 3, (50, 4)).astype(np.float32)
    q = rows[:3].astype(np.float64)
    results = []
    for tile_rows in (1, 7, 50, 64):  # the tiling never changes the answer
        top_d, top_i = np.full((3, 9), np.inf), np.full((3, 9), -1, np.int64)
        topk_sqdist_update(q, rows, 0, top_d, top_i, tile_rows)
        results.append(top_i)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    np.testing.assert_array_equal(results[0], numpy_knn(rows, rows[:3], 9)[1])


def test_sources_opened_here_are_closed_and_given_sources_stay_open(tmp_path):
    x = np.random.default_rng(13).standard_normal((40, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    _, by_path = compute_groundtruth(tmp_path / "x.npy", x[:2], 3)
    with open_source(x) as src:
        _, by_source = compute_groundtruth(src, x[:2], 3)
        assert src.read_rows(0, 1).shape == (1, 3)
    np.testing.assert_array_equal(by_path, by_source)
    np.testing.assert_array_equal(by_path[:, 0], [0, 1])


def test_bad_arguments_are_refused():
    x = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        compute_groundtruth(x, x[:1], 0)
    with pytest.raises(TypeError, match="k must be an integer"):
        compute_groundtruth(x, x[:1], 2.5)
    with pytest.raises(DatasetError, match="queries have dimension 2 but the dataset has d = 3"):
        compute_groundtruth(x, np.zeros((1, 2), np.float32), 1)
    with pytest.raises(DatasetError, match="row 0 of the queries holds NaN"):
        compute_groundtruth(x, [[np.nan, 0, 0]], 1)
    with pytest.raises(ValueError, match="memory_limit_bytes=100 is too small"):
        compute_groundtruth(x, x, 2, memory_limit_bytes=100)
    with pytest.raises(TypeError, match="progress"):
        compute_groundtruth(x, x, 2, progress="yes")


@pytest.mark.skipif(not MNIST.is_dir(), reason=f"the Mnist test data is not at {MNIST}")
def test_mnist_groundtruth_matches_the_distributed_file():
    queries = read_queries(MNIST / "Mnist.q", dtype="uint8", dim=50)
    file_d, file_i = read_groundtruth(MNIST / "Mnist.gt2.0", n_queries=100)
    assert file_i.shape == (100, 100)
    chunks = []
    with open_source(MNIST / "Mnist.ds", dtype="uint8", dim=50) as src:
        assert src.n == 60000
        dist, ids = compute_groundtruth(src, queries, 100, memory_limit_bytes=1 << 20,
                                        progress=lambda done, n: chunks.append(done))
        base = src.read_rows(0, src.n).astype(np.float64)
    assert len(chunks) >= 5 and chunks[-1] == 60000
    np.testing.assert_allclose(dist, file_d, rtol=1e-3)
    # Exact squared distances to every row (integers, exact in float64) show which ranks tie.
    q64 = queries.astype(np.float64)
    sq = (q64**2).sum(1)[:, None] - 2 * q64 @ base.T + (base**2).sum(1)[None, :]
    ours_sq = np.take_along_axis(sq, ids, axis=1)
    np.testing.assert_array_equal(dist, np.sqrt(ours_sq).astype(np.float32))
    tied = np.array([[np.count_nonzero(row == v) > 1 for v in ours] for row, ours
                     in zip(sq, ours_sq)])
    assert tied.mean() < 0.5
    np.testing.assert_array_equal(ids[~tied], file_i[~tied])
    kth = np.sort(sq, axis=1)[:, :100]
    np.testing.assert_array_equal(ours_sq, kth)


def test_groundtruth_write_on_a_full_device_names_the_file_and_leaves_nothing(tmp_path,
                                                                            write_faults):
    write_faults(at=0, fault="enospc")
    target = tmp_path / "gt.bin"
    with pytest.raises(NoSpaceError) as info:
        write_groundtruth(target, np.ones((2, 3)), np.zeros((2, 3), dtype=np.int64))
    assert str(target) in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
