"""Tests of lshdisk.index: build, open, Index.search errors, I/O accounting, info().

The build must be atomic (a failed build leaves nothing behind, an existing index is never
damaged), deterministic (same seed and data: byte-identical page files) and validate its
arguments at the boundary; search must count every page it reads and refuse bad input.
"""

import filecmp
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import re

import numpy as np
import pytest

import lshdisk
from lshdisk.index import SearchStats
from lshdisk.synthetic import clustered_chunks, write_clustered
from storage import BPlusTree, PageFile, TreeInfo
from storage.errors import CorruptPageError


def _tree_of_files(path):
    """{relative path: sha256} of every file under ``path``."""
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = Path(root) / name
            out[str(full.relative_to(path))] = hashlib.sha256(full.read_bytes()).hexdigest()
    return out


def _siblings(path):
    return sorted(p.name for p in Path(path).parent.iterdir())


# --------------------------------------------------------------------------- I/O accounting


def test_index_stats_are_deterministic_without_cache(clustered, clustered_index_dir):
    q = clustered.q[:8]
    with lshdisk.open(clustered_index_dir, cache_bytes=0) as index:
        D1, I1, s1 = index.search(q, 10, return_stats=True)
        D2, I2, s2 = index.search(q, 10, return_stats=True)
        # One query at a time, in another order: per-query counts do not depend on history.
        s_rev = [index.search(q[i], 10, return_stats=True)[2] for i in reversed(range(8))]
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)
    for name in ("page_reads", "seeks", "bytes_read", "candidates", "cache_hits"):
        np.testing.assert_array_equal(s1[name], s2[name], err_msg=name)
        np.testing.assert_array_equal(s1[name], [s[name][0] for s in reversed(s_rev)],
                                      err_msg=name)
    np.testing.assert_array_equal(s1.cache_hits, 0)
    assert np.all(s1.page_reads >= s1.seeks) and np.all(s1.seeks >= 1)
    np.testing.assert_array_equal(s1.bytes_read, s1.page_reads * 4096)


def test_index_second_search_is_served_by_the_buffer_pool(clustered, clustered_index_dir):
    q = clustered.q[:3]
    with lshdisk.open(clustered_index_dir, cache_bytes="64MiB") as index:
        start = index.counter.snapshot()  # after the header pages read by open()
        D1, I1, s1 = index.search(q, 10, return_stats=True, threads=1)
        D2, I2, s2 = index.search(q, 10, return_stats=True, threads=1)
        counter = index.counter.snapshot().delta(start)
    assert s1.page_reads[0] > 0
    np.testing.assert_array_equal(s2.page_reads, 0)
    np.testing.assert_array_equal(s2.seeks, 0)
    np.testing.assert_array_equal(s2.bytes_read, 0)
    assert np.all(s2.cache_hits > 0)
    # Every access of the repeat is a hit: as many as the first search's reads and hits.
    np.testing.assert_array_equal(s2.cache_hits, s1.page_reads + s1.cache_hits)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)
    assert counter.page_reads == s1.page_reads.sum() + s2.page_reads.sum()


def test_index_cache_does_not_change_the_answers(clustered, clustered_index_dir,
                                                 clustered_results):
    D0, I0, S0 = clustered_results
    with lshdisk.open(clustered_index_dir, cache_bytes=2**20) as index:
        D, I, S = index.search(clustered.q, 10, return_stats=True)
    np.testing.assert_array_equal(I, I0)
    np.testing.assert_array_equal(D, D0)
    # Each access is either a device read or a hit, whatever the pool holds.
    np.testing.assert_array_equal(S.page_reads + S.cache_hits, S0.page_reads + S0.cache_hits)
    assert S.page_reads.sum() < S0.page_reads.sum()


@pytest.fixture(scope="module")
def determinism_builds(tmp_path_factory):
    """Builds of one 8000 x 8 data set: seed 5 at 16 MiB and 1 GiB, and seed 6."""
    x = next(clustered_chunks(8000, 8, seed=3, n_clusters=50))
    root = tmp_path_factory.mktemp("determinism")
    out = {}
    for name, seed, memory in (("small", 5, "16MiB"), ("large", 5, "1GiB"), ("other", 6, "1GiB")):
        with lshdisk.build(x, root / name, seed=seed, memory_limit=memory) as index:
            out[name] = (root / name, index.params.m)
    return out


def test_index_same_seed_gives_byte_identical_pages_for_any_memory_limit(determinism_builds):
    small, m = determinism_builds["small"]
    large, _ = determinism_builds["large"]
    # 16 MiB leaves about 0.6 * 16 MiB / 32 B = 314k records per sort run: 8000 * m entries
    # need two runs and a merge, 1 GiB sorts in memory; the data also arrive in 5 chunks.
    assert 8000 * m > 0.6 * 16 * 2**20 / 32
    for name in ("trees.pages", "vectors.pages"):
        assert filecmp.cmp(small / name, large / name, shallow=False), name
    with lshdisk.open(small) as a, lshdisk.open(large) as b:
        assert a.info()["build"]["memory_limit_bytes"] == 16 * 2**20
        assert b.info()["build"]["memory_limit_bytes"] == 2**30
        # The whole catalog record but the build report (memory, seconds) is the same.
        assert ({k: v for k, v in a.meta.items() if k != "build"}
                == {k: v for k, v in b.meta.items() if k != "build"})


def test_index_other_seed_gives_other_trees(determinism_builds):
    large, _ = determinism_builds["large"]
    other, _ = determinism_builds["other"]
    assert not filecmp.cmp(large / "trees.pages", other / "trees.pages", shallow=False)
    # Same vector pages; the header pages differ only in the build id tying them to their index.
    one, two = (PageFile.open(p / "vectors.pages") for p in (large, other))
    with one, two:
        assert one.build_id != two.build_id and one.content_digest == two.content_digest
    raw_one, raw_two = ((p / "vectors.pages").read_bytes() for p in (large, other))
    assert raw_one[one.page_size:] == raw_two[two.page_size:]
    with lshdisk.open(other) as index:
        assert index.info()["seed"] == 6


# --------------------------------------------------------------------------- build robustness


def test_index_build_into_existing_path_is_refused_and_changes_nothing(tiny_data, index_copy):
    before = _tree_of_files(index_copy)
    with pytest.raises(lshdisk.IndexExistsError, match="overwrite=True"):
        lshdisk.build(tiny_data.x[:50], index_copy, memory_limit="16MiB")
    assert _tree_of_files(index_copy) == before
    assert _siblings(index_copy) == ["copy.idx"]
    with lshdisk.open(index_copy) as index:
        assert index.n == 300


def test_index_build_into_existing_empty_dir_is_refused(tiny_data, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileExistsError):  # IndexExistsError is a FileExistsError too
        lshdisk.build(tiny_data.x, tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []


def test_index_overwrite_replaces_a_valid_index(tiny_data, index_copy, oracle):
    new = tiny_data.x[:100] + np.float32(1.0)
    with lshdisk.build(new, index_copy, overwrite=True, memory_limit="16MiB", seed=4) as index:
        assert index.n == 100
    assert _siblings(index_copy) == ["copy.idx"]  # no .building- or .replaced- leftovers
    with lshdisk.open(index_copy) as index:
        assert (index.n, index.info()["seed"]) == (100, 4)
        D, I = index.search(new[7], 1)
    assert I[0, 0] == 7 and D[0, 0] == 0.0


def test_index_overwrite_refuses_a_directory_that_is_not_an_index(tiny_data, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("precious")
    with pytest.raises(lshdisk.IndexExistsError, match="not an lshdisk index"):
        lshdisk.build(tiny_data.x, target, overwrite=True, memory_limit="16MiB")
    assert (target / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert _siblings(target) == ["mine"]


def test_index_overwrite_refuses_a_plain_file(tiny_data, tmp_path):
    target = tmp_path / "file.idx"
    target.write_text("precious")
    with pytest.raises(lshdisk.IndexExistsError):
        lshdisk.build(tiny_data.x, target, overwrite=True, memory_limit="16MiB")
    assert target.read_text() == "precious"
    assert _siblings(target) == ["file.idx"]


def test_index_overwrite_refuses_a_directory_with_an_unrelated_catalog_folder(tiny_data,
                                                                              tmp_path):
    target = tmp_path / "photos"
    (target / "catalog").mkdir(parents=True)
    (target / "catalog" / "album.txt").write_text("album")
    (target / "notes.txt").write_text("precious")
    with pytest.raises(lshdisk.IndexExistsError):
        lshdisk.build(tiny_data.x, target, overwrite=True, memory_limit="16MiB")
    assert (target / "notes.txt").read_text() == "precious"


def test_index_failed_build_with_nan_row_leaves_nothing(tmp_path):
    x = next(clustered_chunks(4000, 16, seed=1))
    x[3000, 5] = np.nan
    np.save(tmp_path / "base.npy", x)
    seen = []
    target = tmp_path / "out.idx"
    with pytest.raises(lshdisk.DatasetError, match="row 3000"):
        lshdisk.build(tmp_path / "base.npy", target, memory_limit="16MiB",
                      progress=lambda stage, done, total: seen.append((stage, done)))
    assert seen and seen[0][0] == "read" and 0 < seen[-1][1] < 3000  # failed mid-stream
    assert not target.exists()
    assert _siblings(target) == ["base.npy"]


def test_index_failed_build_leaves_an_existing_index_intact(tmp_path, index_copy):
    before = _tree_of_files(index_copy)
    x = np.random.default_rng(2).random((500, 8), dtype=np.float32)
    x[400] = np.inf
    with pytest.raises(lshdisk.DatasetError):
        lshdisk.build(x, index_copy, overwrite=True, memory_limit="16MiB")
    assert _tree_of_files(index_copy) == before
    assert _siblings(index_copy) == ["copy.idx"]
    with lshdisk.open(index_copy) as index:
        assert index.n == 300


@pytest.mark.parametrize("damage", ["truncated", "bad_middle_dim"])
def test_index_failed_build_from_a_bad_fvecs_leaves_nothing(tmp_path, damage):
    path = Path(write_clustered(tmp_path / "base.fvecs", 3000, 8, seed=1))
    raw = bytearray(path.read_bytes())
    if damage == "truncated":
        raw = raw[:-10]
    else:  # record 2500 declares d = 9: found only while streaming
        raw[2500 * 36: 2500 * 36 + 4] = np.array([9], "<i4").tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(lshdisk.DatasetError):
        lshdisk.build(path, tmp_path / "out.idx", memory_limit="16MiB")
    assert _siblings(tmp_path / "out.idx") == ["base.fvecs"]


def test_index_build_needs_an_existing_parent(tiny_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="parent directory"):
        lshdisk.build(tiny_data.x, tmp_path / "no" / "such" / "idx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs,name", [
    ({"algorithm": "lsh-forest"}, "algorithm"),
    ({"algorithm": "QALSH"}, "algorithm"),
    ({"algorithm": ""}, "algorithm"),
    ({"c": 1}, r"\bc\b"),
    ({"c": 0.5}, r"\bc\b"),
    ({"page_size": 1000}, "page_size"),
    ({"page_size": 256}, "page_size"),
    ({"memory_limit": "1MiB"}, "memory_limit"),
    ({"memory_limit": 2**20}, "memory_limit"),
    ({"memory_limit": "lots"}, "memory_limit"),
    ({"memory_limit": "-1GiB"}, "memory_limit"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"delta": 0.7}, "delta"),
    ({"beta": 1.5}, "beta"),
    ({"w": -1.0}, r"\bw\b"),
])
def test_index_build_bad_argument_is_a_value_error_naming_it(tiny_data, tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        lshdisk.build(tiny_data.x, tmp_path / "idx", **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("memory", [16 * 2**20, "256MiB", "1GiB", "20000000"])
def test_index_build_memory_limit_forms(tiny_data, tmp_path, memory):
    with lshdisk.build(tiny_data.x[:50], tmp_path / "idx", memory_limit=memory) as index:
        want = memory if isinstance(memory, int) else {"256MiB": 256 * 2**20, "1GiB": 2**30,
                                                       "20000000": 20_000_000}[memory]
        assert index.info()["build"]["memory_limit_bytes"] == want


def test_index_build_reports_progress_and_returns_an_open_index(tiny_data, tmp_path):
    calls = []
    index = lshdisk.build(tiny_data.x, tmp_path / "idx", memory_limit="16MiB",
                          progress=lambda *a: calls.append(a))
    with index:
        D, I = index.search(tiny_data.x[3], 1)
        m = index.params.m
    assert I[0, 0] == 3
    assert calls[0][0] == "read" and ("read", 300, 300) in calls
    stage, done, total = calls[-1]  # the index structure, one entry per point and table
    assert stage != "read" and done == total == 300 * m
    assert sorted(os.listdir(tmp_path / "idx")) == ["catalog", "trees.pages", "vectors.pages"]


def test_index_build_delta_beta_w_overrides_are_stored(tiny_data, tmp_path):
    with lshdisk.build(tiny_data.x, tmp_path / "idx", memory_limit="16MiB", delta=0.1,
                       beta=0.2, w=3.0) as index:
        p = index.params
    assert (p.delta, p.beta, p.w) == (0.1, 0.2, 3.0)
    assert p == lshdisk.qalsh_params(300, c=2.0, delta=0.1, beta=0.2, w=3.0)


# --------------------------------------------------------------------------- open errors


def test_index_open_missing_empty_or_foreign_dir_is_not_an_index(tmp_path):
    with pytest.raises(lshdisk.NotAnIndexError):
        lshdisk.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(lshdisk.NotAnIndexError):
        lshdisk.open(tmp_path / "empty")
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "blob").write_bytes(np.random.default_rng(1).bytes(5000))
    with pytest.raises(lshdisk.NotAnIndexError):
        lshdisk.open(tmp_path / "random")
    (tmp_path / "file").write_bytes(b"hello")
    with pytest.raises(lshdisk.NotAnIndexError):
        lshdisk.open(tmp_path / "file")
    # An empty or foreign catalog/ folder is not an index either.
    (tmp_path / "fake" / "catalog").mkdir(parents=True)
    with pytest.raises(lshdisk.NotAnIndexError):
        lshdisk.open(tmp_path / "fake")
    (tmp_path / "fake" / "catalog" / "data.mdb").write_bytes(b"\0" * 8192)
    with pytest.raises(lshdisk.NotAnIndexError):
        lshdisk.open(tmp_path / "fake")


def test_index_not_an_index_error_is_a_value_error_and_lshdisk_error():
    assert issubclass(lshdisk.NotAnIndexError, ValueError)
    assert issubclass(lshdisk.NotAnIndexError, lshdisk.LshdiskError)
    assert issubclass(lshdisk.IndexExistsError, FileExistsError)
    assert issubclass(lshdisk.DatasetError, ValueError)


def test_index_open_does_not_write_into_the_index(index_copy):
    before = _tree_of_files(index_copy)
    with lshdisk.open(index_copy) as index:
        index.search(np.zeros(8), 3)
        index.info()
    assert _tree_of_files(index_copy) == before


def test_index_missing_page_file_fails_to_open(index_copy):
    (index_copy / "trees.pages").unlink()
    with pytest.raises(FileNotFoundError):
        lshdisk.open(index_copy)


def test_index_truncated_page_file_fails_to_open(index_copy):
    path = index_copy / "vectors.pages"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptPageError):
        lshdisk.open(index_copy)


def _middle_leaf_of_tree(index_dir, t):
    """(page number, ids) of the middle leaf of tree ``t``."""
    with lshdisk.open(index_dir) as index:
        info = TreeInfo.from_dict(index.meta["trees"][t])
        page_size = index.meta["page_size"]
    page = (info.first_leaf + info.last_leaf) // 2
    with PageFile.open(Path(index_dir) / "trees.pages") as pf:
        _, ids, _, _ = BPlusTree(pf, info).read_leaf(page)
    return page, page_size, ids


def test_index_corrupt_leaf_page_raises_instead_of_answering(clustered, clustered_index_dir,
                                                             tmp_path):
    copy = tmp_path / "corrupt.idx"
    shutil.copytree(clustered_index_dir, copy)
    page, page_size, ids = _middle_leaf_of_tree(copy, 0)
    query = clustered.x[ids[len(ids) // 2]]  # its key on tree 0 lies in that leaf
    with lshdisk.open(copy) as index:
        index.search(query, 10)  # fine before the damage
    with open(copy / "trees.pages", "r+b") as f:
        f.seek(page * page_size + page_size // 2)
        byte = f.read(1)
        f.seek(page * page_size + page_size // 2)
        f.write(bytes([byte[0] ^ 0x40]))
    with lshdisk.open(copy) as index:
        with pytest.raises(CorruptPageError, match="CRC32"):
            index.search(query, 10)
        with pytest.raises(CorruptPageError):  # every time, not only on the first read
            index.search(np.stack([clustered.x[0], query]), 10)
    with lshdisk.open(copy, cache_bytes="64MiB") as index:  # a buffer pool caches no bad page
        for _ in range(2):
            with pytest.raises(CorruptPageError):
                index.search(query, 10)


def test_index_corrupt_vector_page_raises(tiny_data, index_copy):
    with open(index_copy / "vectors.pages", "r+b") as f:
        f.seek(4096 + 100)  # page 1 holds every tiny point (300 * 32 B)
        f.write(b"\xff\xff")
    with lshdisk.open(index_copy) as index:
        with pytest.raises(CorruptPageError):
            index.search(tiny_data.x[0], 3)


# --------------------------------------------------------------------------- search errors


@pytest.fixture
def tiny_index(tiny_index_dir):
    with lshdisk.open(tiny_index_dir) as index:
        yield index


@pytest.mark.parametrize("k", [0, -1])
def test_index_search_k_below_one_is_a_value_error(tiny_index, tiny_data, k):
    with pytest.raises(ValueError, match=r"^k must be >= 1"):
        tiny_index.search(tiny_data.q, k)


@pytest.mark.parametrize("k", [1.5, "3", None, True, 2.0])
def test_index_search_non_int_k_is_a_type_error(tiny_index, tiny_data, k):
    with pytest.raises(TypeError, match=r"^k must be an int"):
        tiny_index.search(tiny_data.q, k)


def test_index_search_numpy_int_k_is_accepted(tiny_index, tiny_data):
    D, I = tiny_index.search(tiny_data.q, np.int64(3))
    assert D.shape == (5, 3)


@pytest.mark.parametrize("dim", [7, 9])
def test_index_search_wrong_dimension_names_both(tiny_index, dim):
    with pytest.raises(ValueError) as err:
        tiny_index.search(np.zeros((2, dim), dtype=np.float32), 3)
    assert str(dim) in str(err.value) and "8" in str(err.value)
    with pytest.raises(ValueError, match=str(dim)):
        tiny_index.search(np.zeros(dim), 3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_index_search_non_finite_query_is_refused(tiny_index, tiny_data, bad):
    q = tiny_data.q.copy()
    q[3, 2] = bad
    with pytest.raises(ValueError, match="row 3"):
        tiny_index.search(q, 3)


def test_index_search_refuses_empty_and_3d_queries(tiny_index):
    with pytest.raises(ValueError):
        tiny_index.search(np.zeros((0, 8)), 3)
    with pytest.raises(ValueError):
        tiny_index.search(np.zeros((2, 2, 8)), 3)


def test_index_search_after_close_is_a_value_error(tiny_index_dir, tiny_data):
    index = lshdisk.open(tiny_index_dir)
    index.search(tiny_data.q, 2)
    index.close()
    with pytest.raises(ValueError, match="closed"):
        index.search(tiny_data.q, 2)
    index.close()  # closing twice is harmless


def test_index_context_manager_closes(tiny_index_dir, tiny_data):
    with lshdisk.open(tiny_index_dir) as index:
        assert repr(index).startswith("Index(") and "n=300" in repr(index)
    assert all(pf.closed for reader in index._readers for pf in reader.files)
    with pytest.raises(ValueError, match="closed"):
        index.search(tiny_data.q, 2)


def test_index_info_describes_the_index(tiny_index, tiny_index_dir):
    info = tiny_index.info()
    assert info["algorithm"] == "qalsh"
    assert (info["n"], info["d"], info["dtype"]) == (300, 8, "float32")
    assert info["path"] == str(Path(tiny_index_dir).resolve())
    p = info["params"]
    assert (p["m"], p["l"]) == (tiny_index.params.m, tiny_index.params.l)
    assert p == lshdisk.qalsh_params(300).to_dict()
    assert set(info["files"]) == {"trees.pages", "vectors.pages"}
    for name, f in info["files"].items():
        assert f["bytes"] == os.path.getsize(Path(tiny_index_dir) / name) == f["pages"] * 4096
    assert info["index_bytes"] == sum(f["bytes"] for f in info["files"].values())
    assert info["vectors"]["points_per_page"] == (4096 - 8) // (8 * 4)
    assert info["format_version"] == "1.1" and info["page_size"] == 4096
    json.dumps(info)  # JSON-ready


def test_index_search_stats_api(tiny_index, tiny_data):
    D, I, stats = tiny_index.search(tiny_data.q, 4, return_stats=True)
    assert isinstance(stats, SearchStats)
    assert stats.keys() == ["page_reads", "seeks", "bytes_read", "candidates", "cpu_seconds",
                            "cache_hits", "rounds"]
    mean = stats.mean()
    assert set(mean) == set(stats.keys())
    assert mean["page_reads"] == pytest.approx(float(np.mean(stats.page_reads)))
    assert all(stats[k].shape == (5,) for k in stats.keys())
    assert np.all(stats.cpu_seconds >= 0)
    assert np.all(stats.candidates >= 4)
    # T2: at most k + beta * n candidates (beta = 100 / n caps it at k + 100).
    assert np.all(stats.candidates <= 4 + math.ceil(tiny_index.params.beta * 300 - 1e-9))


@pytest.mark.parametrize("threads", [1, 2])
def test_index_io_total_accumulates_the_per_query_stats(tiny_index_dir, tiny_data, threads):
    with lshdisk.open(tiny_index_dir) as index:
        # Make the readers now (a fast thread may reuse the other's reader in a warm-up
        # search), so that their header pages are read and counted before the start.
        readers = [index._acquire() for _ in range(threads)]
        for reader in readers:
            index._release(reader)
        index.search(tiny_data.q, 4, threads=threads)
        start = index.io_total()
        _, _, stats = index.search(tiny_data.q, 4, return_stats=True, threads=threads)
        total = index.io_total().delta(start)
        if threads == 1:
            assert index.counter.snapshot() == index.io_total()
    assert total.page_reads == stats.page_reads.sum()
    assert total.seeks == stats.seeks.sum()
    assert total.bytes_read == stats.bytes_read.sum()


# --------------------------------------------------------------------------- versions, interrupts


def _set_format_version(index_dir, version):
    from storage.catalog import Catalog
    with Catalog.open(Path(index_dir) / "catalog", readonly=False) as catalog:
        meta = catalog.get_json("index")
        meta["format_version"] = version
        catalog.put_json("index", meta)


def test_index_unknown_major_version_is_refused(index_copy):
    """An unknown major version has its own error: neither "not an index" nor "corrupt"."""
    _set_format_version(index_copy, [2, 0])
    with pytest.raises(lshdisk.UnsupportedIndexVersionError, match=r"format 2\.0") as info:
        lshdisk.open(index_copy)
    assert not isinstance(info.value, (lshdisk.NotAnIndexError, lshdisk.CorruptIndexError))


def _edit_index_document(path, edit):
    from storage.catalog import Catalog
    with Catalog.open(path / "catalog", readonly=False) as catalog:
        meta = catalog.get_json("index")
        edit(meta)
        catalog.put_json("index", meta)


@pytest.mark.parametrize("edit, needle", [
    (lambda m: m.pop("dataset"), "dataset is missing"),
    (lambda m: m["dataset"].update(n="many"), "dataset.n should be int"),
    (lambda m: m["trees"][0].update(hehght=3), "a tree's description is damaged"),
    (lambda m: m.pop("trees"), "index.trees is missing"),
    (lambda m: m["hash"].update(a="qalsh/b"), "names the array 'qalsh/b'"),
    (lambda m: m["params"].update(m="65"), "parameters are damaged"),
    (lambda m: m.update(format_version="1.1"), "format_version should be"),
    (lambda m: m["unit"].update(u=-1.0), "unit.u = -1.0"),
])
def test_index_damaged_metadata_is_a_corrupt_index_error(index_copy, edit, needle):
    """A readable document of the right format with a bad field: one CorruptIndexError line
    naming the field, never a KeyError, TypeError or ValueError of our own."""
    _edit_index_document(index_copy, edit)
    with pytest.raises(lshdisk.CorruptIndexError, match=re.escape(needle)) as info:
        lshdisk.open(index_copy)
    assert "\n" not in str(info.value)


def test_index_newer_minor_version_still_opens(index_copy, tiny_data):
    _set_format_version(index_copy, [1, 9])
    with lshdisk.open(index_copy) as index:
        assert index.info()["format_version"] == "1.9"
        D, I = index.search(tiny_data.x[5], 1)
    assert I[0, 0] == 5 and D[0, 0] == 0.0


def test_index_foreign_catalog_record_is_not_an_index(index_copy):
    from storage.catalog import Catalog
    with Catalog.open(index_copy / "catalog", readonly=False) as catalog:
        meta = catalog.get_json("index")
        catalog.put_json("index", dict(meta, format="someone-else"))
    with pytest.raises(lshdisk.NotAnIndexError, match="someone-else"):
        lshdisk.open(index_copy)


@pytest.mark.parametrize("stage_to_fail", ["read", "last"])
def test_index_interrupted_build_leaves_nothing(tiny_data, tmp_path, stage_to_fail):
    stages = []

    def progress(stage, done, total):
        stages.append(stage)
        building_structure = stage != "read"  # after every row was read and projected
        if (stage_to_fail == "read") != building_structure:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lshdisk.build(tiny_data.x, tmp_path / "idx", memory_limit="16MiB", progress=progress)
    assert stages
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cache,exc", [(-1, ValueError), ("lots", ValueError), (True, TypeError)])
def test_index_open_bad_cache_bytes(tiny_index_dir, cache, exc):
    with pytest.raises(exc, match="cache_bytes"):
        lshdisk.open(tiny_index_dir, cache_bytes=cache)


def test_index_build_removes_partial_builds_of_dead_processes(tiny_data, tmp_path):
    import subprocess
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"idx.building-{dead.pid}-0000abcd"
    stale.mkdir()
    (stale / "trees.pages").write_bytes(b"partial")
    live = tmp_path / f"idx.building-{os.getpid()}-0000ffff"  # a build still running
    live.mkdir()
    lshdisk.build(tiny_data.x, tmp_path / "idx", memory_limit="16MiB").close()
    assert not stale.exists()
    assert live.exists()
