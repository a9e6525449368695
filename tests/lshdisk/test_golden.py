"""Binary compatibility: the committed golden index still opens and answers the same way.

tests/data/golden_qalsh/ and its expected answers are written by tools/make_golden_index.py
(style rule 21). A failure here means the on-disk format or the search changed; if that was
on purpose, rerun the script and say so in the commit.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import lshdisk

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN = DATA / "golden_qalsh"
EXPECTED = json.loads((DATA / "golden_qalsh_expected.json").read_text())


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def golden_copy(tmp_path):
    """The committed index, copied so that nothing can write into the repository."""
    dest = tmp_path / "golden_qalsh"
    shutil.copytree(GOLDEN, dest)
    return dest


def test_golden_index_is_small_and_intact():
    files = [p for p in GOLDEN.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 1_000_000
    for name, digest in EXPECTED["sha256"].items():
        assert _sha256(GOLDEN / name) == digest, name


def test_golden_index_opens_with_its_parameters(golden_copy):
    with lshdisk.open(golden_copy) as index:
        info = index.info()
    b = EXPECTED["build"]
    assert info["algorithm"] == b["algorithm"]
    assert (info["n"], info["d"], info["dtype"]) == (600, 8, "uint8")
    assert (info["page_size"], info["seed"], info["params"]["c"]) == (b["page_size"], b["seed"],
                                                                      b["c"])
    assert (info["params"]["m"], info["params"]["l"]) == (EXPECTED["params"]["m"],
                                                          EXPECTED["params"]["l"])
    assert info["params"]["w"] == pytest.approx(EXPECTED["params"]["w"], rel=1e-12)
    assert info["format_version"] == "1.1"


def test_golden_index_answers_the_fixed_queries_the_same_way(golden_copy):
    q = np.asarray(EXPECTED["queries"], dtype=np.float32)
    with lshdisk.open(golden_copy, cache_bytes=0) as index:
        D, I, stats = index.search(q, EXPECTED["k"], return_stats=True)
    np.testing.assert_array_equal(I, EXPECTED["ids"])
    np.testing.assert_allclose(D, EXPECTED["distances"], rtol=1e-6)
    np.testing.assert_array_equal(stats.page_reads, EXPECTED["page_reads"])
    np.testing.assert_array_equal(stats.seeks, EXPECTED["seeks"])
    np.testing.assert_array_equal(stats.candidates, EXPECTED["candidates"])
    np.testing.assert_array_equal(stats.bytes_read, stats.page_reads * 512)


def test_golden_answers_are_true_distances(golden_copy):
    x = np.load(DATA / EXPECTED["data"]["file"])
    assert x.dtype == np.uint8 and x.shape == (600, 8)
    np.testing.assert_array_equal(
        x, np.random.default_rng(EXPECTED["data"]["rng_seed"]).integers(0, 256, (600, 8),
                                                                        dtype=np.uint8))
    q = np.asarray(EXPECTED["queries"], dtype=np.float64)
    ids = np.asarray(EXPECTED["ids"])
    true = np.sqrt(((x[ids].astype(np.float64) - q[:, None, :]) ** 2).sum(axis=2))
    np.testing.assert_allclose(EXPECTED["distances"], true, rtol=1e-6)


def test_golden_open_and_search_write_nothing(golden_copy):
    before = {p.relative_to(golden_copy): _sha256(p) for p in golden_copy.rglob("*") if p.is_file()}
    with lshdisk.open(golden_copy) as index:
        index.search(np.asarray(EXPECTED["queries"][:2], dtype=np.float32), 3)
    after = {p.relative_to(golden_copy): _sha256(p) for p in golden_copy.rglob("*") if p.is_file()}
    assert after == before


def test_golden_rebuild_is_byte_identical(tmp_path):
    x = np.load(DATA / EXPECTED["data"]["file"])
    b = EXPECTED["build"]
    lshdisk.build(x, tmp_path / "rebuilt", algorithm=b["algorithm"], c=b["c"],
                  page_size=b["page_size"], seed=b["seed"], memory_limit="16MiB").close()
    for name, digest in EXPECTED["sha256"].items():
        assert _sha256(tmp_path / "rebuilt" / name) == digest, name
