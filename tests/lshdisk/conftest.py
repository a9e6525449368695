"""Shared fixtures of the lshdisk tests: small clustered data, built indexes, the Mnist set.

Indexes that several modules use are built once per session under ``tmp_path_factory``; tests
that damage or rebuild an index make their own copy in ``tmp_path``.
"""

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import lshdisk
from lshdisk.synthetic import clustered_chunks

MNIST_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"

#: The clustered float32 set: 4000 unit-norm points in 16-d around 100 centres, 100 queries.
CLUSTERED_N, CLUSTERED_D, CLUSTERED_CENTRES, CLUSTERED_SEED = 4000, 16, 100, 2
N_QUERIES = 100
K = 10


def exact_knn(x, q, k):
    """Oracle: exact k nearest neighbours by plain numpy in float64, ties broken by id.

    Returns distances (float64, (nq, k)) and ids (int64, (nq, k)).
    """
    x64 = np.asarray(x, dtype=np.float64)
    q64 = np.atleast_2d(np.asarray(q, dtype=np.float32)).astype(np.float64)
    sq = np.zeros((q64.shape[0], x64.shape[0]))
    for t in range(x64.shape[1]):  # coordinate by coordinate: no (nq, n, d) temporary
        sq += (q64[:, t, None] - x64[None, :, t]) ** 2
    order = np.argsort(sq, axis=1, kind="stable")[:, :k]
    return np.sqrt(np.take_along_axis(sq, order, axis=1)), order.astype(np.int64)


def true_distances(x, q, ids):
    """Euclidean distances (float64) of queries ``q`` (nq, d) to the rows ``ids`` (nq, k) of x."""
    x64 = np.asarray(x, dtype=np.float64)
    q64 = np.atleast_2d(np.asarray(q, dtype=np.float32)).astype(np.float64)
    return np.sqrt(((x64[ids] - q64[:, None, :]) ** 2).sum(axis=2))


@pytest.fixture(scope="session")
def oracle():
    """The numpy oracles, as a namespace (``exact_knn``, ``true_distances``)."""
    return SimpleNamespace(exact_knn=exact_knn, true_distances=true_distances)


def _clustered(n, d, *, seed, centres, stream):
    return next(clustered_chunks(n, d, seed=seed, n_clusters=centres, stream=stream))


@pytest.fixture(scope="session")
def clustered():
    """Clustered unit-norm float32 data (4000, 16), 100 held-out queries and their exact 10-NN."""
    x = _clustered(CLUSTERED_N, CLUSTERED_D, seed=CLUSTERED_SEED, centres=CLUSTERED_CENTRES,
                   stream=0)
    q = _clustered(N_QUERIES, CLUSTERED_D, seed=CLUSTERED_SEED, centres=CLUSTERED_CENTRES,
                   stream=1)
    gt_d, gt_i = exact_knn(x, q, K)
    return SimpleNamespace(x=x, q=q, gt_d=gt_d, gt_i=gt_i, k=K)


@pytest.fixture(scope="session")
def clustered_index_dir(clustered, tmp_path_factory):
    """Path of a QALSH index of ``clustered.x`` (seed 0, 16 MiB: the data arrive in chunks)."""
    path = tmp_path_factory.mktemp("clustered") / "index"
    lshdisk.build(clustered.x, path, memory_limit="16MiB", seed=0).close()
    return path


@pytest.fixture(scope="session")
def clustered_results(clustered, clustered_index_dir):
    """``(D, I, stats)`` of the clustered queries, k = 10, no buffer pool."""
    with lshdisk.open(clustered_index_dir) as index:
        return index.search(clustered.q, clustered.k, return_stats=True)


@pytest.fixture(scope="session")
def integer_data():
    """Integer-valued uint8 data (4000, 20) around 30 centres, like pixels; 100 queries."""
    rng = np.random.default_rng(3)
    centres = rng.integers(0, 256, (30, 20))

    def draw(n):
        pts = centres[rng.integers(0, 30, n)] + rng.normal(0.0, 12.0, (n, 20))
        return np.clip(np.rint(pts), 0, 255).astype(np.uint8)

    x, q = draw(4000), draw(N_QUERIES)
    gt_d, gt_i = exact_knn(x, q, K)
    return SimpleNamespace(x=x, q=q, gt_d=gt_d, gt_i=gt_i, k=K)


@pytest.fixture(scope="session")
def integer_index_dir(integer_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("integer") / "index"
    lshdisk.build(integer_data.x, path, memory_limit="16MiB", seed=0).close()
    return path


@pytest.fixture(scope="session")
def tiny_data():
    """300 random float32 points in 8-d and 5 queries: for error and API tests."""
    rng = np.random.default_rng(21)
    return SimpleNamespace(x=rng.random((300, 8), dtype=np.float32),
                           q=rng.random((5, 8), dtype=np.float32))


@pytest.fixture(scope="session")
def tiny_index_dir(tiny_data, tmp_path_factory):
    """A session-wide tiny index; tests must not modify it (copy it with ``index_copy``)."""
    path = tmp_path_factory.mktemp("tiny") / "index"
    lshdisk.build(tiny_data.x, path, memory_limit="16MiB", seed=0).close()
    return path


@pytest.fixture
def index_copy(tiny_index_dir, tmp_path):
    """A private copy of the tiny index, free to damage."""
    dest = tmp_path / "copy.idx"
    shutil.copytree(tiny_index_dir, dest)
    return dest


@pytest.fixture(scope="session")
def mnist_dir():
    """The real Mnist set (../shared/data/mnist): Mnist.ds, Mnist.q, Mnist.gt2.0."""
    if not (MNIST_DIR / "Mnist.ds").is_file():
        pytest.skip(f"the real Mnist test data is not at {MNIST_DIR} (see its README.md)")
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist_index_dir(mnist_dir, tmp_path_factory):
    """A QALSH index of Mnist.ds (raw uint8, d = 50, c = 2, 64 MiB), built once per session."""
    path = tmp_path_factory.mktemp("mnist") / "mnist.qalsh"
    lshdisk.build(mnist_dir / "Mnist.ds", path, format="raw", dtype="uint8", dim=50,
                  memory_limit="64MiB").close()
    return path


@pytest.fixture(scope="session")
def mnist_queries(mnist_dir):
    """The 100 Mnist queries (float32 (100, 50)) and the exact distances / ids (100, 100)."""
    q = lshdisk.read_queries(mnist_dir / "Mnist.q", format="raw", dtype="uint8", dim=50)
    gt_d, gt_i = lshdisk.read_groundtruth(mnist_dir / "Mnist.gt2.0", n_queries=100)
    return SimpleNamespace(q=q, gt_d=gt_d, gt_i=gt_i)


def _flip_byte(path, offset, mask=0xFF):
    """Damage a file: XOR the byte at ``offset`` with ``mask``."""
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ mask]))


@pytest.fixture(scope="session")
def flip_byte():
    """``flip_byte(path, offset, mask=0xFF)``: XOR one byte of a file (to damage a page)."""
    return _flip_byte
