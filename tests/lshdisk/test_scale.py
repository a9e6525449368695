"""Searches do not depend on the data's units: multiplying the data (and the queries) by any
positive factor gives the same answers and I/O, up to float rounding."""

import numpy as np
import pytest

import lshdisk
from lshdisk.scale import UnitSample, data_unit, draw_sample_ids, nn_scale
from lshdisk.synthetic import clustered_chunks

N, D, NQ, K = 5000, 32, 60, 10


@pytest.fixture(scope="module")
def clustered32():
    x = next(clustered_chunks(N, D, seed=7, n_clusters=50, stream=0))
    q = next(clustered_chunks(NQ, D, seed=7, n_clusters=50, stream=1))
    return x, q


@pytest.fixture(scope="module", params=["qalsh", "ilsh", "c2lsh"])
def unscaled(request, clustered32, tmp_path_factory):
    x, q = clustered32
    path = tmp_path_factory.mktemp(f"scale-{request.param}") / "index"
    with lshdisk.build(x, path, algorithm=request.param, memory_limit="16MiB") as index:
        D, I, st = index.search(q, K, return_stats=True)
        u = index.meta["unit"]["u"]
    return request.param, D, I, st, u


@pytest.mark.parametrize("factor", [1.5, 0.37, 1.75, 1e-3])
def test_any_positive_factor_gives_the_same_search(clustered32, unscaled, factor, tmp_path):
    x, q = clustered32
    algorithm, D0, I0, s0, u0 = unscaled
    xs, qs = (x * np.float32(factor)), (q * np.float32(factor))
    with lshdisk.build(xs, tmp_path / "scaled", algorithm=algorithm,
                       memory_limit="16MiB") as index:
        D1, I1, s1 = index.search(qs, K, return_stats=True)
        assert index.meta["unit"]["u"] == pytest.approx(u0 * factor, rel=1e-5)
    assert np.mean(I1 == I0) >= 0.99
    np.testing.assert_allclose(D1[I1 == I0], D0[I1 == I0] * factor, rtol=1e-4)
    assert abs(s1.page_reads.mean() - s0.page_reads.mean()) <= 0.01 * s0.page_reads.mean()
    assert abs(s1.candidates.mean() - s0.candidates.mean()) <= 0.01 * s0.candidates.mean()


def test_the_unit_is_the_nn_scale_over_sqrt_c_and_follows_any_factor():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((800, 12)).astype(np.float32)
    scaled, info = nn_scale(x, 50000)
    assert 1 <= info["intrinsic_dim"] <= 12
    assert scaled == info["scaled_distance"] < info["nn_distance"]  # the full set is denser
    assert data_unit(scaled, 2) == pytest.approx(scaled / 2 ** 0.5)
    for factor in (0.37, 1.5, 2.0 ** 9):
        s2, _ = nn_scale(x * np.float32(factor), 50000)
        assert s2 == pytest.approx(scaled * factor, rel=1e-5)
    assert nn_scale(np.ones((50, 3), np.float32), 1000)[0] is None  # one distinct point
    assert nn_scale(np.ones((1, 3), np.float32), 1)[0] is None
    assert data_unit(None, 2) == 1.0


def test_the_unit_sample_is_copied_from_any_chunking():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 4)).astype(np.float32)
    ids = draw_sample_ids(np.random.default_rng(0), x.shape[0])
    assert ids.size == 1000 and np.all(np.diff(ids) > 0)
    whole, parts = UnitSample(ids, 4), UnitSample(ids, 4)
    whole.add_chunk(0, x)
    for start in range(0, 3000, 7):
        parts.add_chunk(start, x[start:start + 7])
    np.testing.assert_array_equal(whole.rows, x[ids])
    np.testing.assert_array_equal(parts.rows, x[ids])
    assert whole.unit(3000, 2) == parts.unit(3000, 2)


@pytest.mark.parametrize("algorithm", ["qalsh", "c2lsh"])
def test_a_given_unit_is_used_and_unit_one_gives_the_papers_radii(clustered32, algorithm,
                                                                   tmp_path):
    x, q = clustered32
    with lshdisk.build(x, tmp_path / "u1", algorithm=algorithm, memory_limit="16MiB",
                       unit=1) as index:
        assert index.meta["unit"]["u"] == 1.0 and index.meta["unit"]["given"] is True
        _, _, tr = index.search(q[:3], K, trace=True)
    if algorithm == "qalsh":  # radii are powers of c = 2
        for rows in tr:
            exps = np.log2(rows["radius"])
            np.testing.assert_allclose(exps, np.round(exps))
    else:  # C2LSH's rounds: R = 1, 2, 4, ...
        np.testing.assert_array_equal(tr[0]["radius"], 2.0 ** np.arange(len(tr[0])))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "big", True])
def test_a_bad_unit_is_refused(clustered32, bad, tmp_path):
    x, _ = clustered32
    with pytest.raises(ValueError, match="unit must be 'auto' or a positive number"):
        lshdisk.build(x, tmp_path / "bad", unit=bad)
    assert not (tmp_path / "bad").exists()
