"""Learned projections in QALSH's trees (lshdisk.learned_trees, lshdisk.maps).

Oracles: numpy's eigendecomposition of the sample covariance for the learned directions;
plain numpy matrix products for the maps' kernels; a numpy re-computation of the
calibration (same seeded draws, brute-force neighbours); brute force for search quality;
byte comparison of two builds' files.
"""

import math
import os

import numpy as np
import pytest

import lshdisk
from lshdisk.evaluate import recall_at_k
from lshdisk.learned_trees import (CAL_K, CAL_RANDOM, calibrate_buckets, learn_pca,
                                   random_rotation)
from lshdisk.maps import LinearMap
from lshdisk.params import LearnedTreesParams, pca_params


def build_pca(x, path, **kw):
    kw.setdefault("memory_limit", "16MiB")
    return lshdisk.build(x, path, algorithm="pca", **kw)


@pytest.fixture(scope="module")
def pca_index(clustered, tmp_path_factory):
    path = tmp_path_factory.mktemp("pca") / "index"
    build_pca(clustered.x, path).close()
    return path


# --------------------------------------------------------------------------- parameters
def test_pca_params_defaults_and_errors():
    p = pca_params(46_506)
    assert p.m == 63 and p.w is None and p.l is None and (p.hidden, p.steps) == (0, 0)
    assert p.share == pytest.approx(math.erf(math.sqrt(8 * 4 * math.log(2) / 3) / 2 / math.sqrt(2)))
    with pytest.raises(ValueError, match="unknown pca parameter 'hidden'"):
        pca_params(100, hidden=3)
    with pytest.raises(ValueError, match="l must be an int in 1..m=4"):
        pca_params(100, m=4, l=5)
    with pytest.raises(ValueError, match="share .* must be in"):
        pca_params(100, share=1.0)
    with pytest.raises(ValueError, match="bucket width"):
        pca_params(100, w=-1.0)


# --------------------------------------------------------------------------- training
def test_random_rotation_is_orthogonal():
    r = random_rotation(7, np.random.default_rng(0))
    np.testing.assert_allclose(r.T @ r, np.eye(7), atol=1e-12)


def test_learned_directions_span_numpys_top_principal_subspace():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((800, 8)) * [9, 7, 5, 3, 1, 0.5, 0.2, 0.1]).astype(np.float32)
    x = x @ np.linalg.qr(rng.standard_normal((8, 8)))[0].astype(np.float32) + 3.0
    hmap, info = learn_pca(x, 3, seed=1)
    values, vectors = np.linalg.eigh(np.cov(x.astype(np.float64), rowvar=False))
    top = vectors[:, np.argsort(-values)[:3]]
    a = hmap.a.astype(np.float64)
    np.testing.assert_allclose(a @ a.T, np.eye(3), atol=1e-6)
    # Each learned direction lies in numpy's top-3 principal subspace.
    np.testing.assert_allclose(np.linalg.norm(top.T @ a.T, axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(hmap.offset, a @ x.mean(axis=0, dtype=np.float64), rtol=1e-6)
    assert info["variance_share"] == pytest.approx(np.sort(values)[::-1][:3].sum() / values.sum(),
                                                   abs=1e-4)
    # Not one principal direction each: the rotation mixes them.
    assert np.abs(top.T @ a.T).max() < 0.999


def test_linear_map_kernels_match_numpy():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((5, 9)).astype(np.float32)
    offset = rng.standard_normal(5)
    rows = rng.integers(0, 255, size=(30, 9)).astype(np.uint8)
    hmap = LinearMap(a, offset)
    out = np.empty((30, 5), dtype=np.float32)
    hmap.project_rows(rows, out)
    want = rows.astype(np.float64) @ a.T.astype(np.float64) - offset
    np.testing.assert_allclose(out, want, rtol=1e-6)
    one = np.empty(5)
    hmap.project_one(rows[3].astype(np.float32), one)
    np.testing.assert_allclose(one, want[3], rtol=1e-12)


def test_calibration_matches_a_numpy_recomputation(clustered):
    x = clustered.x[:200]
    params = pca_params(200, m=6)
    hmap, _ = learn_pca(x, 6, seed=3)
    w, l, fig = calibrate_buckets(hmap, x, params, seed=3, memory_bytes=1 << 24)
    # The same seeded draws as calibrate_buckets; neighbours by numpy brute force.
    rng = np.random.default_rng([3, 5])
    base = np.sort(rng.choice(200, size=200, replace=False))
    q_ids = np.sort(rng.choice(200, size=199, replace=False))
    keys = x[base].astype(np.float64) @ hmap.a.T.astype(np.float64) - hmap.offset
    d2 = ((x[q_ids, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    d2[np.arange(q_ids.size), q_ids] = np.inf
    nn = np.argsort(d2, axis=1, kind="stable")[:, :CAL_K]
    r = np.sqrt(np.take_along_axis(d2, nn, axis=1))
    diff = np.abs(keys[nn] - keys[q_ids][:, None, :])
    rho = (diff / r[:, :, None]).ravel()
    assert w == pytest.approx(2 * np.quantile(rho, params.share), rel=1e-4)
    half = w * r[:, -1:, None] / 2
    p1 = float((diff <= half).mean())
    rand = rng.integers(0, 200, size=(q_ids.size, CAL_RANDOM))
    p2 = float((np.abs(keys[rand] - keys[q_ids][:, None, :]) <= half).mean())
    assert fig["p1"] == pytest.approx(p1, abs=2e-3) and fig["p2"] == pytest.approx(p2, abs=2e-3)
    eta = math.sqrt(math.log(2 / params.beta)) / math.sqrt(math.log(1 / params.delta))
    assert l == max(1, min(6, math.ceil((eta * fig["p1"] + fig["p2"]) / (1 + eta) * 6)))
    # A given w and l are kept.
    w2, l2, _ = calibrate_buckets(hmap, x, pca_params(200, m=6, l=2, w=0.5), 3, 1 << 24)
    assert (w2, l2) == (0.5, 2)


# --------------------------------------------------------------------------- build + search
def test_pca_finds_neighbours(pca_index, clustered):
    with lshdisk.open(pca_index) as index:
        D, I, st = index.search(clustered.q, clustered.k, return_stats=True)
        assert recall_at_k(D, clustered.gt_d, clustered.k) >= 0.9
        p = index.params
        assert isinstance(p, LearnedTreesParams) and p.m == 16  # QALSH's m (46) lowered to d
        assert p.w > 0 and 1 <= p.l <= p.m and p.p1 > p.p2
        doc = index.metadata.doc
        assert doc["training"]["calibration"]["w"] == p.w
        assert doc["hash"]["map"] == {"kind": "linear", "a": "pca/a", "offset": "pca/offset"}
        assert doc["build"]["train_seconds"] >= 0
        D2, _ = index.search(clustered.q, clustered.k, max_candidates=400)
        assert recall_at_k(D2, clustered.gt_d, clustered.k) >= recall_at_k(D, clustered.gt_d,
                                                                           clustered.k) - 1e-9


def test_pca_query_keys_match_the_built_keys(pca_index, clustered):
    """A data point used as a query descends to its own key: the searcher's map (read from
    the catalog) gives the same keys as the builder's, and the point is found first."""
    with lshdisk.open(pca_index) as index:
        D, I = index.search(clustered.x[:20], 1)
    np.testing.assert_array_equal(I[:, 0], np.arange(20))


def test_pca_pooled_path_reads_the_same_pages(pca_index, clustered):
    q = clustered.q[:20]
    with lshdisk.open(pca_index) as raw, lshdisk.open(pca_index, cache_bytes=0) as again:
        D1, I1, s1 = raw.search(q, 10, return_stats=True, threads=1)
        D2, I2, s2 = again.search(q, 10, return_stats=True, threads=1)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(s1.page_reads, s2.page_reads)
    with lshdisk.open(pca_index, cache_bytes=1 << 20) as pooled:
        D3, I3, s3 = pooled.search(q, 10, return_stats=True, threads=1)
    np.testing.assert_array_equal(I1, I3)
    np.testing.assert_array_equal(s1.candidates, s3.candidates)


def test_pca_build_is_byte_identical(clustered, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_pca(clustered.x, a, seed=5).close()
    build_pca(clustered.x, b, seed=5, memory_limit="32MiB").close()
    for name in ("trees.pages", "vectors.pages"):
        fa, fb = (a / name).read_bytes(), (b / name).read_bytes()
        assert len(fa) == len(fb) and fa[4096:] == fb[4096:]
    with lshdisk.open(a) as ia, lshdisk.open(b) as ib:
        for name in ("pca/a", "pca/offset"):
            np.testing.assert_array_equal(ia._arrays[name], ib._arrays[name])
        assert ia.metadata.params == ib.metadata.params


def test_pca_build_errors(clustered, tmp_path):
    with pytest.raises(ValueError, match="unknown pca parameter 'centroids'"):
        build_pca(clustered.x, tmp_path / "x", options={"centroids": 4})
    with pytest.raises(ValueError, match="l must be an int in 1..m=4"):
        build_pca(clustered.x, tmp_path / "x", options={"m": 4, "l": 9})
    assert not os.path.exists(tmp_path / "x")


def test_pca_verify_and_cli_info(pca_index):
    from click.testing import CliRunner
    from lshdisk.cli import main
    r = CliRunner().invoke(main, ["verify", str(pca_index)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["info", str(pca_index)])
    assert r.exit_code == 0 and "pca" in r.output


def test_pca_cli_build_with_params(clustered, tmp_path):
    from click.testing import CliRunner
    from lshdisk.cli import main
    src = tmp_path / "x.npy"
    np.save(src, clustered.x)
    r = CliRunner().invoke(main, ["build", str(src), str(tmp_path / "i"), "--algorithm", "pca",
                                  "--param", "m=8", "--memory", "16MiB", "-q"])
    assert r.exit_code == 0, r.output
    assert "training" in r.output


def test_pca_partition_layout_keeps_the_answers(pca_index, clustered, tmp_path):
    """The training sample and the calibration read source rows, so a partition layout
    learns the same map and w, l, and finds the same neighbours (ids: source rows)."""
    path = tmp_path / "partition"
    build_pca(clustered.x, path, layout="partition").close()
    with lshdisk.open(pca_index) as a, lshdisk.open(path) as b:
        assert b.layout == "partition" and a.metadata.params == b.metadata.params
        Da, Ia = a.search(clustered.q, 10, threads=1)
        Db, Ib = b.search(clustered.q, 10, threads=1)
    np.testing.assert_allclose(Da, Db, rtol=1e-6)
    assert np.mean(Ia == Ib) > 0.99  # equal up to ties at the candidate cap
