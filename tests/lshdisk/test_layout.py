"""Vector layout (lshdisk.layout): vectors stored cell by cell of a learned partition.

Oracles: the source layout's answers (a QALSH index over the same data has the same hash
functions and unit, so the same answers), numpy for the two id maps (inverse permutations,
rows equal to the source's), brute force for the ground-truth check.
"""

import numpy as np
import pytest

import lshdisk
from lshdisk.evaluate import recall_at_k


@pytest.fixture(scope="module")
def layouts(clustered, tmp_path_factory):
    root = tmp_path_factory.mktemp("layout")
    out = {}
    for alg, opts in (("qalsh", None), ("kmeans", {"m": 8, "centroids": 32, "l": 3, "pool": 4})):
        for layout in ("source", "partition"):
            path = root / f"{alg}-{layout}"
            lshdisk.build(clustered.x, path, algorithm=alg, memory_limit="16MiB", seed=0,
                          options=opts, layout=layout).close()
            out[alg, layout] = path
    return out


def test_partition_layout_keeps_qalsh_answers(layouts, clustered):
    with lshdisk.open(layouts["qalsh", "source"]) as a, \
            lshdisk.open(layouts["qalsh", "partition"]) as b:
        assert (a.layout, b.layout) == ("source", "partition")
        Da, Ia = a.search(clustered.q, 10, threads=1)
        Db, Ib = b.search(clustered.q, 10, threads=1)
    np.testing.assert_allclose(Da, Db, rtol=1e-6)
    assert np.mean(Ia == Ib) > 0.99  # equal up to ties at the candidate cap


def test_maps_are_inverse_permutations(layouts, clustered):
    with lshdisk.open(layouts["kmeans", "partition"]) as index:
        n = clustered.x.shape[0]
        slots = index.slots_of(np.arange(n))
        np.testing.assert_array_equal(np.sort(slots), np.arange(n))
        np.testing.assert_array_equal(index.source_ids(slots), np.arange(n))
        np.testing.assert_array_equal(index.source_ids(np.array([-1, slots[7]])), [-1, 7])
        rows = index.vectors.fetch(slots[:50])
        np.testing.assert_array_equal(rows, clustered.x[:50])
        files = index.info()["files"]
        assert files["ids.pages"]["pages"] >= 2 and files["slots.pages"]["pages"] >= 2


def test_partition_layout_reads_fewer_vector_pages(layouts, clustered):
    """kmeans verifies the same candidates in either layout (its tables' cells do not depend
    on ids); stored by partition they share pages."""
    with lshdisk.open(layouts["kmeans", "source"]) as a, \
            lshdisk.open(layouts["kmeans", "partition"]) as b:
        Da, _, sa = a.search(clustered.q, 10, return_stats=True, max_candidates=200, threads=1)
        Db, Ib, sb = b.search(clustered.q, 10, return_stats=True, max_candidates=200, threads=1)
    assert recall_at_k(Db, clustered.gt_d, 10) == pytest.approx(
        recall_at_k(Da, clustered.gt_d, 10), abs=0.01)
    # (Seeks are not compared: on 64 vector pages the source layout reads nearly all of
    # them in a few runs.)
    assert sb.page_reads.mean() < 0.8 * sa.page_reads.mean()
    assert set(Ib.ravel().tolist()) <= set(range(clustered.x.shape[0]))


def test_partition_layout_ground_truth_check_and_verify(layouts, clustered):
    from click.testing import CliRunner
    from lshdisk.cli import main
    path = layouts["kmeans", "partition"]
    from lshdisk.evaluate import check_groundtruth
    with lshdisk.open(path) as index:
        check_groundtruth(index, clustered.q, clustered.gt_d, clustered.gt_i)  # no error
    r = CliRunner().invoke(main, ["verify", str(path)])
    assert r.exit_code == 0, r.output


def test_verify_refuses_id_maps_that_are_not_inverse_permutations(tmp_path):
    from lshdisk.segments import write_id_file
    from lshdisk.verify import VerifyResult, _verify_id_maps
    ids = np.array([2, 0, 3, 1], dtype=np.int64)  # slot -> id
    slots = np.argsort(ids)  # id -> slot
    meta = {"files": {"ids": "ids.pages", "slots": "slots.pages"}, "file_facts": {}}
    for name, values in (("ids.pages", ids), ("slots.pages", slots)):
        meta["file_facts"][name] = write_id_file(str(tmp_path / name), [values],
                                                 page_size=512)[1]
    good = VerifyResult(str(tmp_path))
    _verify_id_maps(str(tmp_path), meta, good)
    assert good.ok, good.problems
    swapped = slots.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    (tmp_path / "slots.pages").unlink()
    meta["file_facts"]["slots.pages"] = write_id_file(str(tmp_path / "slots.pages"), [swapped],
                                                      page_size=512)[1]
    bad = VerifyResult(str(tmp_path))
    _verify_id_maps(str(tmp_path), meta, bad)
    assert len(bad.problems) == 1 and "inverse permutations" in bad.problems[0]


def test_bad_layout_is_refused(clustered, tmp_path):
    with pytest.raises(ValueError, match="layout must be one of source, partition"):
        lshdisk.build(clustered.x, tmp_path / "x", layout="sorted")


def test_cli_build_with_partition_layout(clustered, tmp_path):
    from click.testing import CliRunner
    from lshdisk.cli import main
    src = tmp_path / "x.npy"
    np.save(src, clustered.x)
    r = CliRunner().invoke(main, ["build", str(src), str(tmp_path / "i"), "--layout", "partition",
                                  "--memory", "16MiB", "-q"])
    assert r.exit_code == 0, r.output
    with lshdisk.open(tmp_path / "i") as index:
        assert index.layout == "partition"
        assert index.info()["layout"]["cells"] >= 1


def _fitted_layout(work, x, *, memory_limit_bytes=1 << 24, seed=0):
    from lshdisk.datasets import open_source
    from lshdisk.layout import PartitionLayout
    src = open_source(x)
    arranger = PartitionLayout(str(work), n=src.n, d=src.d, dtype=src.dtype, page_size=4096,
                               seed=seed, memory_limit_bytes=memory_limit_bytes)
    arranger.fit(np.asarray(x, dtype=np.float32))
    return arranger, src


def _page_files(path):
    return {f.name: f.read_bytes() for f in sorted(path.iterdir()) if f.suffix == ".pages"}


def test_many_buckets_give_the_same_index_as_one(clustered, tmp_path, monkeypatch):
    """A bucket of 97 slots (42 buckets, none aligned with the chunks) against one bucket for
    all 4000 rows: every page file is byte-identical."""
    from lshdisk import layout
    opts = {"m": 8, "centroids": 32, "l": 3, "pool": 4}
    files = {}
    for name, bucket_rows in (("one", None), ("many", 97)):
        if bucket_rows is not None:
            monkeypatch.setattr(layout, "_MAX_BUCKET_ROWS", bucket_rows)
        path = tmp_path / name
        with lshdisk.build(clustered.x, path, algorithm="kmeans", memory_limit="16MiB", seed=0,
                           options=opts, layout="partition") as index:
            assert index.layout == "partition"
        files[name] = _page_files(path)
        assert not [f for f in path.rglob("*.tmp")]
    assert set(files["one"]) >= {"vectors.pages", "ids.pages", "slots.pages", "tables.pages"}
    assert files["one"] == files["many"]


def test_small_memory_limit_gives_the_same_index_as_a_large_one(tmp_path):
    """100,000 x 8: at 16 MiB the layout spills into 3 buckets, at 1 GiB into one; the training
    sample (capped by the cells, not the memory) and so every page file are the same."""
    from lshdisk._units import parse_bytes
    from lshdisk.layout import PartitionLayout
    from lshdisk.synthetic import clustered_chunks
    x = np.concatenate(list(clustered_chunks(100_000, 8, seed=4, n_clusters=200, stream=0)))
    buckets = {}
    for limit in ("16MiB", "1GiB"):
        probe = PartitionLayout(str(tmp_path), n=x.shape[0], d=8, dtype=x.dtype, page_size=4096,
                                seed=0, memory_limit_bytes=int(0.15 * parse_bytes(limit)))
        buckets[limit] = -(-x.shape[0] // probe.bucket_rows)
        lshdisk.build(x, tmp_path / limit, memory_limit=limit, seed=0, layout="partition").close()
    assert buckets == {"16MiB": 3, "1GiB": 1}
    assert _page_files(tmp_path / "16MiB") == _page_files(tmp_path / "1GiB")


@pytest.mark.parametrize("bucket_rows,chunk_rows", [(1 << 31, 1000), (97, 1000), (50, 7),
                                                    (1, 64)])
def test_reorder_is_cell_then_id_order(clustered, tmp_path, monkeypatch, bucket_rows,
                                       chunk_rows):
    """Oracle: numpy's lexsort of (cell, id); duplicate rows make cells larger than a bucket."""
    from lshdisk import layout
    from lshdisk.vector_store import VectorStore
    from storage.page_file import PageFile
    monkeypatch.setattr(layout, "_MAX_BUCKET_ROWS", bucket_rows)
    x = np.concatenate([clustered.x[:300], np.repeat(clustered.x[:3], 200, axis=0)])
    arranger, src = _fitted_layout(tmp_path, x)
    expected = np.lexsort((np.arange(x.shape[0]), arranger.assign(x)))
    got_rows, got_ids, starts = [], [], []
    for start, rows, ids in arranger.reorder(src, chunk_rows):
        starts.append(start)
        got_rows.append(rows)
        got_ids.append(ids)
        assert rows.shape[0] == ids.shape[0] <= chunk_rows and ids.dtype == np.int64
    assert starts == np.cumsum([0] + [r.shape[0] for r in got_rows])[:-1].tolist()
    np.testing.assert_array_equal(np.concatenate(got_ids), expected)
    np.testing.assert_array_equal(np.concatenate(got_rows), x[expected])
    maps = {}
    for name in (layout.IDS_FILE, layout.SLOTS_FILE):
        with PageFile.open(str(tmp_path / name)) as pf:
            maps[name] = VectorStore(pf).fetch(np.arange(x.shape[0]))[:, 0]
    np.testing.assert_array_equal(maps[layout.IDS_FILE], expected)
    np.testing.assert_array_equal(maps[layout.SLOTS_FILE], np.argsort(expected))
    assert sorted(p.name for p in tmp_path.iterdir()) == [layout.IDS_FILE, layout.SLOTS_FILE]


class _FailingSource:
    """A source whose second pass fails after its first chunk."""

    def __init__(self, src):
        self.src, self.n, self.d, self.passes = src, src.n, src.d, 0

    def iter_chunks(self, max_rows):
        self.passes += 1
        for i, chunk in enumerate(self.src.iter_chunks(max_rows)):
            if self.passes == 2 and i == 1:
                raise OSError("read failed")
            yield chunk


def test_reorder_removes_its_temporary_files_on_failure_and_early_close(clustered, tmp_path,
                                                                       monkeypatch):
    from lshdisk import layout
    monkeypatch.setattr(layout, "_MAX_BUCKET_ROWS", 500)
    arranger, src = _fitted_layout(tmp_path, clustered.x)
    with pytest.raises(OSError, match="read failed"):
        for _ in arranger.reorder(_FailingSource(src), 300):
            pass
    assert not list(tmp_path.glob("*.tmp"))
    for name in [p.name for p in tmp_path.iterdir()]:
        (tmp_path / name).unlink()
    stream = arranger.reorder(src, 300)
    next(stream)  # in the third pass: the rows file stays until the close
    assert [p.name for p in tmp_path.glob("*.tmp")] == ["layout-rows.tmp"]
    stream.close()
    assert not list(tmp_path.glob("*.tmp"))
