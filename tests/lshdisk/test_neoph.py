"""The order-preserving network family (lshdisk.neoph, lshdisk.maps.MLPMap).

Oracles: the network's formula in plain numpy for the compiled forward pass; the pca
family's keys for an untrained network (its starting point); brute force for search
quality; byte comparison of two builds' files. Tests that train need PyTorch (the
``lshdisk[learn]`` extra) and are skipped without it.
"""

import importlib.util

import numpy as np
import pytest

import lshdisk
from lshdisk.errors import MissingExtraError
from lshdisk.evaluate import recall_at_k
from lshdisk.learned_trees import learn_pca
from lshdisk.maps import MLPMap
from lshdisk.params import neoph_params

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="PyTorch (lshdisk[learn]) is not installed")
OPTIONS = {"m": 12, "hidden": 32, "steps": 40}


def build_neoph(x, path, **kw):
    kw.setdefault("memory_limit", "16MiB")
    kw.setdefault("options", OPTIONS)
    return lshdisk.build(x, path, algorithm="neoph", **kw)


@pytest.fixture(scope="module")
def neoph_index(clustered, tmp_path_factory):
    pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("neoph") / "index"
    build_neoph(clustered.x, path).close()
    return path


def _numpy_forward(hmap, x):
    z = (x.astype(np.float64) - hmap.mean) / hmap.scale
    h = np.maximum(z @ hmap.w1.T.astype(np.float64) + hmap.b1, 0.0)
    return z @ hmap.a.T.astype(np.float64) + h @ hmap.w2.T.astype(np.float64) + hmap.b2


def test_neoph_params_defaults_and_errors():
    p = neoph_params(10_000, m=8)
    assert (p.hidden, p.steps, p.m) == (128, 300, 8)
    with pytest.raises(ValueError, match="unknown neoph parameter 'centroids'"):
        neoph_params(100, centroids=3)
    with pytest.raises(ValueError, match="hidden must be an int >= 0"):
        neoph_params(100, hidden=-1)


def test_mlp_forward_kernels_match_numpy():
    rng = np.random.default_rng(0)
    d, h, t = 9, 6, 4
    hmap = MLPMap(rng.standard_normal(d), 2.5, rng.standard_normal((t, d)),
                  rng.standard_normal((h, d)), rng.standard_normal(h),
                  rng.standard_normal((t, h)), rng.standard_normal(t))
    x = rng.integers(0, 200, size=(50, d)).astype(np.uint8)
    out = np.empty((50, t), dtype=np.float32)
    hmap.project_rows(x, out)
    want = _numpy_forward(hmap, x)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)
    one = np.empty(t)
    hmap.project_one(x[7].astype(np.float32), one)
    np.testing.assert_allclose(one, want[7], rtol=1e-12, atol=1e-9)
    with pytest.raises(ValueError, match="MLPMap arrays disagree"):
        MLPMap(np.zeros(d), 1.0, np.zeros((t, d)), np.zeros((h, d + 1)), np.zeros(h),
               np.zeros((t, h)), np.zeros(t))


def test_neoph_without_torch_names_the_extra(clustered, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"pip install lshdisk\[learn\]"):
        build_neoph(clustered.x, tmp_path / "x")
    assert not (tmp_path / "x").exists()


@needs_torch
def test_untrained_network_gives_the_pca_keys(clustered):
    from lshdisk.neoph import train_neoph
    x = clustered.x
    net, _ = train_neoph(x, 8, 16, 0, seed=4)
    lin, _ = learn_pca(x, 8, seed=4)
    a = np.empty((x.shape[0], 8), dtype=np.float32)
    b = np.empty((x.shape[0], 8), dtype=np.float32)
    net.project_rows(x, a)
    lin.project_rows(x, b)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@needs_torch
def test_trained_network_lowers_its_loss_and_matches_numpy(clustered):
    from lshdisk.neoph import train_neoph
    net, info = train_neoph(clustered.x, 8, 16, 200, seed=1)
    assert info["loss_end"] < info["loss_start"]
    assert np.abs(net.w2).max() > 0  # the hidden layer was trained
    out = np.empty((100, 8), dtype=np.float32)
    net.project_rows(clustered.x[:100], out)
    np.testing.assert_allclose(out, _numpy_forward(net, clustered.x[:100]), rtol=1e-5, atol=1e-5)


@needs_torch
def test_neoph_finds_neighbours(neoph_index, clustered):
    with lshdisk.open(neoph_index) as index:
        D, I, st = index.search(clustered.q, clustered.k, return_stats=True)
        assert recall_at_k(D, clustered.gt_d, clustered.k) >= 0.8
        D1, I1 = index.search(clustered.x[:20], 1)
        np.testing.assert_array_equal(I1[:, 0], np.arange(20))  # query keys = built keys
        doc = index.metadata.doc
        assert doc["hash"]["map"]["kind"] == "mlp"
        assert doc["training"]["steps"] == OPTIONS["steps"]
        assert index.params.w > 0 and 1 <= index.params.l <= OPTIONS["m"]


@needs_torch
def test_neoph_build_is_byte_identical(clustered, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_neoph(clustered.x, a, seed=3).close()
    build_neoph(clustered.x, b, seed=3, memory_limit="32MiB").close()
    for name in ("trees.pages", "vectors.pages"):
        fa, fb = (a / name).read_bytes(), (b / name).read_bytes()
        assert len(fa) == len(fb) and fa[4096:] == fb[4096:]
    with lshdisk.open(a) as ia, lshdisk.open(b) as ib:
        for name in ("neoph/a", "neoph/w1", "neoph/b1", "neoph/w2", "neoph/b2"):
            np.testing.assert_array_equal(ia._arrays[name], ib._arrays[name])


@needs_torch
def test_neoph_verify_and_cli_info(neoph_index):
    from click.testing import CliRunner
    from lshdisk.cli import main
    r = CliRunner().invoke(main, ["verify", str(neoph_index)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["info", str(neoph_index)])
    assert r.exit_code == 0 and "neoph" in r.output
