"""Sharded build and search (lshdisk.distributed): on a LocalCluster of 2 workers the index
equals the local multi-segment build's file for file, its hash functions are a one-machine
build's, search equals the local search, and a failed partition leaves no index."""

import os

import numpy as np
import pytest

import lshdisk
from lshdisk import distributed as ld
from lshdisk.errors import IndexExistsError
from lshdisk.verify import verify_index

dask_distributed = pytest.importorskip("distributed")

N, D, K = 3000, 12, 10


@pytest.fixture(scope="module")
def points(tmp_path_factory):
    rng = np.random.default_rng(11)
    centres = rng.normal(0, 4, size=(20, D))
    x = (centres[rng.integers(0, 20, N)] + rng.normal(0, 1, (N, D))).astype(np.float32)
    q = (centres[rng.integers(0, 20, 25)] + rng.normal(0, 1, (25, D))).astype(np.float32)
    path = tmp_path_factory.mktemp("dist") / "x.npy"
    np.save(path, x)
    return x, q, str(path)


@pytest.fixture(scope="module")
def client():
    cluster = dask_distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                            dashboard_address=":0")
    c = dask_distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _brute(x, q, k):
    d = ((q[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def _files(path):
    out = {}
    for root, _, names in os.walk(path):
        for name in names:
            if name.endswith(".pages"):
                full = os.path.join(root, name)
                with open(full, "rb") as f:
                    out[os.path.relpath(full, path)] = f.read()
    return out


OPTIONS = {"kmeans": {"m": 4, "centroids": 16, "l": 2}}


@pytest.mark.parametrize("algorithm", ["qalsh", "c2lsh", "kmeans"])
def test_distributed_build_equals_local_multi_segment_build(points, client, tmp_path, algorithm):
    x, q, path = points
    opts = OPTIONS.get(algorithm)
    local = ld.build(path, tmp_path / "local", partitions=3, algorithm=algorithm, options=opts)
    dist = ld.build(path, tmp_path / "dist", client=client, partitions=3, algorithm=algorithm,
                    options=opts)
    assert local.segment_count == dist.segment_count == 3
    assert local.n == dist.n == N
    assert _files(local.path) == _files(dist.path)
    D1, I1 = local.search(q, K)
    D2, I2 = dist.search(q, K)
    assert np.array_equal(I1, I2) and np.array_equal(D1, D2)
    assert verify_index(dist.path).ok
    # The hash functions are those of a one-machine build of all the points.
    one = lshdisk.build(path, tmp_path / "one", algorithm=algorithm, options=opts)
    assert one._arrays.keys() == dist._arrays.keys()
    for name in one._arrays:
        assert np.array_equal(one._arrays[name], dist._arrays[name])
    assert one.params == dist.params


def test_distributed_index_finds_neighbours(points, client, tmp_path):
    x, q, path = points
    index = ld.build(path, tmp_path / "i", client=client, partitions=2, algorithm="c2lsh")
    _, I = index.search(q, K)
    gt = _brute(x, q, K)
    recall = np.mean([len(set(I[i]) & set(gt[i])) / K for i in range(len(q))])
    assert recall >= 0.8
    # Each point finds itself at distance 0, whichever partition holds it.
    ids = np.array([0, N // 2 - 1, N // 2, N - 1])
    D, I = index.search(x[ids], 1)
    assert np.array_equal(I[:, 0], ids) and np.all(D[:, 0] == 0)


def test_distributed_search_equals_local_search(points, client, tmp_path):
    x, q, path = points
    index = ld.build(path, tmp_path / "i", partitions=2)
    D1, I1, s1 = index.search(q, K, return_stats=True, threads=1)
    D2, I2, s2 = ld.search(index.path, q, K, client=client, return_stats=True)
    assert np.array_equal(I1, I2) and np.array_equal(D1, D2)
    assert np.array_equal(s1.page_reads, s2.page_reads)
    assert np.array_equal(s1.candidates, s2.candidates)
    D3, I3 = ld.search(index.path, q, K, batches=4)
    assert np.array_equal(I1, I3)


def test_distributed_build_from_an_array_equals_the_file_build(points, client, tmp_path):
    x, q, path = points
    a = ld.build(x, tmp_path / "a", client=client, partitions=2)
    b = ld.build(path, tmp_path / "b", partitions=2)
    assert a.search(q, K)[1].tolist() == b.search(q, K)[1].tolist()


def test_distributed_failed_partition_leaves_no_index(points, tmp_path, monkeypatch):
    x, q, path = points
    old = lshdisk.build(x[:500], tmp_path / "idx")
    before = old.search(q, K)
    old.close()
    real = ld._build_partition

    def failing(source, open_kw, start, stop, target, settings, base):
        if start > 0:
            raise OSError("disk gone")
        return real(source, open_kw, start, stop, target, settings, base)

    monkeypatch.setattr(ld, "_build_partition", failing)
    cluster = dask_distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                            dashboard_address=":0")
    with cluster, dask_distributed.Client(cluster) as c:
        with pytest.raises(OSError, match="disk gone"):
            ld.build(path, tmp_path / "idx", client=c, partitions=3, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["idx"]  # nothing half-built beside it
    again = lshdisk.open(tmp_path / "idx")
    after = again.search(q, K)
    assert np.array_equal(before[1], after[1]) and again.segment_count == 1


def test_distributed_build_checks_its_arguments(points, tmp_path):
    x, q, path = points
    with pytest.raises(ValueError, match="partitions"):
        ld.build(path, tmp_path / "a", partitions=0)
    with pytest.raises(ValueError, match="partitions"):
        ld.build(x[:5], tmp_path / "b", partitions=6)
    lshdisk.build(x[:100], tmp_path / "c")
    with pytest.raises(IndexExistsError):
        ld.build(path, tmp_path / "c", partitions=2)
    with pytest.raises(ValueError, match="batches"):
        ld.search(tmp_path / "c", q, K, batches=0)


def test_distributed_index_takes_inserts_and_compacts_to_a_fresh_build(points, tmp_path):
    x, q, path = points
    index = ld.build(x[:2000], tmp_path / "i", partitions=2)
    index.add(x[2000:])
    assert index.segment_count == 3
    index.compact()
    fresh = lshdisk.build(x, tmp_path / "f")
    D1, I1 = index.search(q, K)
    D2, I2 = fresh.search(q, K)
    assert np.array_equal(I1, I2) and np.array_equal(D1, D2)


@pytest.mark.parametrize("layout", ["source", "partition"])
def test_distributed_hash_functions_are_a_one_machine_builds_under_a_small_memory_limit(
        points, tmp_path, layout):
    x, q, path = points
    opts = {"m": 4, "centroids": 16, "l": 2, "train_rows": 100_000}
    one = lshdisk.build(path, tmp_path / "one", algorithm="kmeans", options=opts,
                        layout=layout, memory_limit="16MiB")
    two = ld.build(path, tmp_path / "two", partitions=2, algorithm="kmeans", options=opts,
                   layout=layout, memory_limit="16MiB")
    for name in one._arrays:
        assert np.array_equal(one._arrays[name], two._arrays[name]), name
    one1 = ld.build(path, tmp_path / "one1", partitions=1, algorithm="kmeans", options=opts,
                    layout=layout, memory_limit="16MiB")
    D1, I1 = one.search(q, K)
    D2, I2 = one1.search(q, K)
    assert np.array_equal(I1, I2) and np.array_equal(D1, D2)
