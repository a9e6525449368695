"""Learned partitions (lshdisk.kmeans, lshdisk.learning, lshdisk._kernels.kmeans).

Oracles: plain numpy for PCA, the eigenvalue allocation and the cell assignment; brute force
for search quality; a collision count computed in numpy from every point's cells for the
candidates; the buffer-pool path for the compiled path's pages and answers; byte comparison
of the files of two builds.
"""

import os

import numpy as np
import pytest

import lshdisk
from lshdisk.evaluate import recall_at_k
from lshdisk.kmeans import hash_rows, rank_cells
from lshdisk.learning import allocate_subspaces, kmeans, nearest_cells, pca, training_ids
from lshdisk.params import KMeansParams, kmeans_params

OPTIONS = {"m": 8, "centroids": 32, "l": 3}


def build_kmeans(x, path, **kw):
    kw.setdefault("memory_limit", "16MiB")
    kw.setdefault("options", OPTIONS)
    return lshdisk.build(x, path, algorithm="kmeans", **kw)


@pytest.fixture(scope="module")
def km_index(clustered, tmp_path_factory):
    path = tmp_path_factory.mktemp("kmeans") / "index"
    build_kmeans(clustered.x, path).close()
    return path


# --------------------------------------------------------------------------- parameters
def test_kmeans_params_defaults_and_errors():
    p = kmeans_params(10_000)
    assert (p.m, p.centroids, p.l, p.probes) == (16, 256, 4, 1)
    assert p.beta == pytest.approx(0.01)
    with pytest.raises(ValueError, match="unknown kmeans parameter 'tables'"):
        kmeans_params(100, tables=3)
    with pytest.raises(ValueError, match="w does not apply"):
        kmeans_params(100, w=2.0)
    with pytest.raises(ValueError, match="l must be an int in 1..m=4"):
        KMeansParams(n=10, m=4, centroids=8, l=5, beta=0.1, probes=1, pool=1, train_rows=10,
                     iterations=1)
    with pytest.raises(ValueError, match="centroids must be an int in 2..65536"):
        kmeans_params(100, centroids=70_000)


# --------------------------------------------------------------------------- training
def test_pca_matches_numpy_covariance():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((500, 6)) * [5, 3, 2, 1, 0.5, 0.1]).astype(np.float32)
    mean, values, vectors = pca(x)
    want = np.sort(np.linalg.eigvalsh(np.cov(x.astype(np.float64), rowvar=False)))[::-1]
    np.testing.assert_allclose(values, want, rtol=1e-9)
    np.testing.assert_allclose(mean, x.mean(axis=0, dtype=np.float64))
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(6), atol=1e-12)


def test_allocate_subspaces_balances_eigenvalue_products():
    groups = allocate_subspaces(np.array([16.0, 8.0, 4.0, 2.0, 1.0, 0.5]), 2)
    # 16 -> A; 8 -> B (log 8 < log 16... B is empty, 0); 4 -> B (log 8 < log 16); 2 -> A;
    # A = 16 * 2 = 32, B = 8 * 4 = 32: tie, the first; 1 -> A is full (3), so B.
    assert groups == [[0, 3, 4], [1, 2, 5]] or groups == [[0, 3, 5], [1, 2, 4]]
    assert sorted(sum(groups, [])) == list(range(6))
    with pytest.raises(ValueError, match="choose m <= 6"):
        allocate_subspaces(np.ones(6), 7)


def test_nearest_cells_and_kmeans_against_numpy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 4)).astype(np.float32)
    c = rng.standard_normal((20, 4)).astype(np.float32)
    out = np.empty(3000, dtype=np.int64)
    inertia = nearest_cells(x, c, out)
    d2 = ((x[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
    assert np.mean(out == d2.argmin(1)) > 0.999  # float32 products may flip exact near-ties
    assert inertia == pytest.approx(d2.min(1).sum(), rel=1e-4)
    cents, e = kmeans(x, 20, 10, np.random.default_rng(0))
    assert cents.shape == (20, 4) and e < inertia  # Lloyd improves on random centres
    with pytest.raises(ValueError, match="at least 30 training rows"):
        kmeans(x[:10], 30, 1, np.random.default_rng(0))


def test_training_ids_seeded_sorted_distinct():
    a, b = training_ids(3, 1000, 100), training_ids(3, 1000, 100)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.diff(a) > 0) and a.size == 100
    np.testing.assert_array_equal(training_ids(0, 50, 100), np.arange(50))


# --------------------------------------------------------------------------- build + search
def test_kmeans_finds_neighbours(km_index, clustered):
    with lshdisk.open(km_index) as index:
        D, I, st = index.search(clustered.q, clustered.k, return_stats=True, max_candidates=400)
        assert recall_at_k(D, clustered.gt_d, clustered.k) >= 0.9
        assert np.all(st.candidates <= 400)
        doc = index.metadata.doc
        assert doc["training"]["rows"] == clustered.x.shape[0]
        assert doc["build"]["train_seconds"] >= 0
        info = index.info()
        assert info["algorithm"] == "kmeans"


def test_kmeans_candidates_are_the_collision_count(km_index, clustered):
    """Every id verified has >= l of its m cells among the cells probed (numpy oracle), and
    when all cells are probed every id with >= l is found."""
    with lshdisk.open(km_index) as index:
        arr = index._arrays
        mean, rot, cents = arr["kmeans/mean"], arr["kmeans/rotation"], arr["kmeans/centroids"]
        m, k, _ = cents.shape
        cells = np.empty((clustered.x.shape[0], m), dtype=np.uint16)
        hash_rows(clustered.x, mean, rot, cents, np.einsum("tkw,tkw->tk", cents, cents), cells)
        q = clustered.q[:5]
        _, _, traces, found = index.search(q, 10, max_candidates=clustered.x.shape[0],
                                           termination="budget", trace=True,
                                           return_candidates=True, threads=1)
        for j in range(q.shape[0]):
            order, _ = rank_cells(q[j], mean, rot, cents)
            probes = 2  # after round 1 (probes 1, 2)
            probed = np.zeros((m, k), dtype=bool)
            probed[np.arange(m)[:, None], order[:, :probes]] = True
            count = probed[np.arange(m)[None, :], cells.astype(np.int64)].sum(1)
            upto = int(traces[j]["verified"][1])
            ids = found[j][0]
            assert set(ids[:upto].tolist()) == set(np.flatnonzero(count >= OPTIONS["l"]).tolist())
            assert set(ids.tolist()) == set(range(clustered.x.shape[0]))  # all cells probed


def test_kmeans_pooled_path_reads_the_same_pages(km_index, clustered):
    q = clustered.q[:20]
    with lshdisk.open(km_index) as raw, lshdisk.open(km_index, cache_bytes=1 << 20) as pooled:
        D1, I1, s1 = raw.search(q, 10, return_stats=True, max_candidates=200, threads=1)
        D2, I2, s2 = pooled.search(q, 10, return_stats=True, max_candidates=200, threads=1)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(s1.candidates, s2.candidates)
    assert np.all(s2.page_reads <= s1.page_reads)  # pool hits are not reads


def test_kmeans_build_is_byte_identical(clustered, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_kmeans(clustered.x, a, seed=5).close()
    build_kmeans(clustered.x, b, seed=5, memory_limit="32MiB").close()
    for name in ("tables.pages", "vectors.pages"):
        fa, fb = (a / name).read_bytes(), (b / name).read_bytes()
        # The header page holds the build id; every page after it must match.
        assert len(fa) == len(fb) and fa[4096:] == fb[4096:]
    with lshdisk.open(a) as ia, lshdisk.open(b) as ib:
        for name in ("kmeans/mean", "kmeans/rotation", "kmeans/centroids"):
            np.testing.assert_array_equal(ia._arrays[name], ib._arrays[name])


def test_kmeans_build_errors(clustered, tmp_path):
    with pytest.raises(ValueError, match="choose m <= 16"):
        build_kmeans(clustered.x, tmp_path / "x", options={"m": 17})
    with pytest.raises(ValueError, match="pass beta as its own argument"):
        build_kmeans(clustered.x, tmp_path / "x", options={"beta": 0.1})
    with pytest.raises(ValueError, match="delta does not apply"):
        build_kmeans(clustered.x, tmp_path / "x", delta=0.1)
    assert not os.path.exists(tmp_path / "x")


def test_kmeans_verify_and_cli_info(km_index):
    from click.testing import CliRunner
    from lshdisk.cli import main
    r = CliRunner().invoke(main, ["verify", str(km_index)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["info", str(km_index)])
    assert r.exit_code == 0 and "kmeans" in r.output


def test_kmeans_cli_build_with_params(clustered, tmp_path):
    from click.testing import CliRunner
    from lshdisk.cli import main
    src = tmp_path / "x.npy"
    np.save(src, clustered.x)
    r = CliRunner().invoke(main, ["build", str(src), str(tmp_path / "i"), "--algorithm", "kmeans",
                                  "--param", "m=4", "--param", "centroids=16", "--param", "l=2",
                                  "--memory", "16MiB", "-q"])
    assert r.exit_code == 0, r.output
    assert "training" in r.output and "m = 4" in r.output
    r = CliRunner().invoke(main, ["build", str(src), str(tmp_path / "j"), "--algorithm", "kmeans",
                                  "--param", "tables=4", "-q"])
    assert r.exit_code != 0 and "unknown kmeans parameter 'tables'" in r.output
    r = CliRunner().invoke(main, ["build", str(src), str(tmp_path / "j"), "--param", "m4"])
    assert r.exit_code != 0 and "NAME=VALUE" in r.output


def test_options_unknown_to_a_method_are_refused(clustered, tmp_path):
    with pytest.raises(ValueError, match="qalsh has no parameter 'centroids'"):
        lshdisk.build(clustered.x, tmp_path / "q", options={"centroids": 4})


def test_pool_verifies_the_smallest_lower_bounds(clustered, tmp_path):
    """pool > 1: the bounds are <= each id's asymmetric distance (numpy, from every point's
    cells), the verified ids are the cap's worth with the smallest bounds, and recall at an
    equal number of verified candidates is no worse than verifying as found."""
    from lshdisk.search import SearchOptions
    path = tmp_path / "pool"
    build_kmeans(clustered.x, path, options=dict(OPTIONS, pool=8)).close()
    with lshdisk.open(path) as index:
        reader = index._new_reader()
        searcher = reader.search.searcher
        arr = index._arrays
        mean, rot, cents = arr["kmeans/mean"], arr["kmeans/rotation"], arr["kmeans/centroids"]
        m = cents.shape[0]
        cells = np.empty((clustered.x.shape[0], m), dtype=np.uint16)
        hash_rows(clustered.x, mean, rot, cents, np.einsum("tkw,tkw->tk", cents, cents), cells)
        for j in range(10):
            q = clustered.q[j]
            _, ids, _, _ = reader.search.search_one(q, SearchOptions(k=10, max_candidates=40))
            gen = searcher._gen
            pool = gen.cands[:int(gen.nums[1])].copy()
            assert pool.size == 8 * 40
            _, d2 = rank_cells(q, mean, rot, cents)
            adc = d2[np.arange(m)[None, :], cells[pool].astype(np.int64)].sum(1)
            bounds = searcher._score[pool].astype(np.float64)
            assert np.all(bounds <= adc * (1 + 1e-5) + 1e-6)
            want = pool[np.argsort(searcher._score[pool], kind="stable")[:40]]
            np.testing.assert_array_equal(np.sort(ids), np.sort(want))
        reader.close()
        D, _ = index.search(clustered.q, 10, max_candidates=60)
    with lshdisk.open(_plain_index(clustered, tmp_path)) as plain:
        D0, _ = plain.search(clustered.q, 10, max_candidates=60)
    assert recall_at_k(D, clustered.gt_d, 10) >= recall_at_k(D0, clustered.gt_d, 10)


def _plain_index(clustered, tmp_path):
    path = tmp_path / "plain"
    build_kmeans(clustered.x, path).close()
    return path


def test_pool_bounds_past_the_page_cache_read_pages_again(clustered, tmp_path, monkeypatch):
    """With a one-page cache the bounds walk reads the pages it needs again: the same
    answers, more page reads."""
    import lshdisk.kmeans as km
    path = tmp_path / "pool"
    build_kmeans(clustered.x, path, options=dict(OPTIONS, pool=8)).close()
    q = clustered.q[:10]
    with lshdisk.open(path) as index:
        D1, I1, s1 = index.search(q, 10, return_stats=True, max_candidates=40, threads=1)
    monkeypatch.setattr(km, "CACHE_BYTES", 1)
    with lshdisk.open(path) as index:
        D2, I2, s2 = index.search(q, 10, return_stats=True, max_candidates=40, threads=1)
    np.testing.assert_array_equal(I1, I2)
    assert np.all(s2.page_reads >= s1.page_reads) and s2.page_reads.sum() > s1.page_reads.sum()


def test_kmeans_recall_target_after_tune(km_index, clustered, tmp_path):
    """tune and recall_target work on a method without a data unit."""
    pytest.importorskip("sklearn")
    import shutil
    from lshdisk.tune import tune, write_model
    path = tmp_path / "tuned"
    shutil.copytree(km_index, path)
    with lshdisk.open(path) as index:
        assert index.data_unit == 1.0 and index.start_feature_names == ()
        model = tune(index, [0.9], k=10, sample=300, seed=0, threads=1)
    write_model(path, model)
    with lshdisk.open(path) as index:
        D, _ = index.search(clustered.q, 10, recall_target=0.9, threads=1)
    assert recall_at_k(D, clustered.gt_d, 10) >= 0.8
