"""Segments: insert, delete and compact (lshdisk.updates, lshdisk.segments).

Oracles: brute force (exact k-NN in numpy) over the points a search may return, with a
recall floor; equality with a fresh :func:`lshdisk.build` over the surviving points (a
compaction, ids mapped through the survivors' ids); equality of catalog arrays (a segment
hashes with its index's functions); equality of answers and counts across threads; and,
under SIGKILL at every named step of a change (a child process, as in test_durability.py),
equality with the answers of the index before the change or after it.

Every method (neoph only with PyTorch) in both layouts: 2000 clustered points built, 1000
inserted as a second segment, every third id deleted, then compacted.
"""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import lshdisk
from lshdisk.errors import DatasetError
from lshdisk.evaluate import recall_at_k
from lshdisk.segments import MANIFEST_DOC, Manifest, unreferenced
from lshdisk.synthetic import clustered_chunks
from lshdisk.verify import verify_index
from lshdisk import updates
from storage.catalog import Catalog

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "golden_qalsh"
N_BASE, N_NEW, D = 2000, 1000, 16
N_ALL = N_BASE + N_NEW
K = 10
MEMORY = "16MiB"
#: Ids deleted: every third, in both segments.
DELETED = np.arange(0, N_ALL, 3, dtype=np.int64)
SURVIVORS = np.setdiff1d(np.arange(N_ALL, dtype=np.int64), DELETED)

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="PyTorch (lshdisk[learn]) is not installed")

#: (algorithm, options, recall@10 floor over the live points, both segments searched).
METHODS = {
    "qalsh": (None, 0.9),
    "ilsh": (None, 0.9),
    "c2lsh": (None, 0.9),
    "kmeans": ({"m": 4, "centroids": 16, "l": 2}, 0.85),
    "pca": (None, 0.85),
    "neoph": ({"m": 12, "hidden": 32, "steps": 40}, 0.8),
}
CASES = [pytest.param((alg, layout), id=f"{alg}-{layout}",
                      marks=[needs_torch] if alg == "neoph" else [])
         for alg in METHODS for layout in ("source", "partition")]


def _points(n, stream):
    return next(clustered_chunks(n, D, seed=7, n_clusters=60, stream=stream))


@pytest.fixture(scope="module")
def data():
    """3000 clustered float32 points (the first 2000 built, the rest inserted), 50 held-out
    queries."""
    return SimpleNamespace(x=_points(N_ALL, 0), q=_points(50, 1))


def _build(x, path, algorithm, layout, **kw):
    options, _ = METHODS[algorithm]
    return lshdisk.build(x, path, algorithm=algorithm, options=options, layout=layout,
                         memory_limit=MEMORY, **kw)


def _answers(path, q, k=K, **kw):
    with lshdisk.open(path) as index:
        return index.search(q, k, **kw)


@pytest.fixture(scope="module", params=CASES)
def states(request, data, tmp_path_factory):
    """One method and layout: the index grown by an insert, then shrunk by a delete, then
    compacted; the add-only index compacted; fresh builds over every point and over the
    survivors."""
    algorithm, layout = request.param
    root = tmp_path_factory.mktemp(f"seg-{algorithm}-{layout}")
    x = data.x
    grown = root / "grown"
    with _build(x[:N_BASE], grown, algorithm, layout) as index:
        base_manifest = index.manifest
        new_ids = index.add(x[N_BASE:], memory_limit=MEMORY)
    shrunk = root / "shrunk"
    shutil.copytree(grown, shrunk)
    with lshdisk.open(shrunk) as index:
        deleted_count = index.delete(DELETED)
    compacted = root / "compacted"
    shutil.copytree(shrunk, compacted)
    with lshdisk.open(compacted) as index:
        kept = index.compact(memory_limit=MEMORY)
    grown_compacted = root / "grown-compacted"
    shutil.copytree(grown, grown_compacted)
    with lshdisk.open(grown_compacted) as index:
        kept_all = index.compact(memory_limit=MEMORY)
    fresh_all, fresh_live = root / "fresh-all", root / "fresh-live"
    _build(x, fresh_all, algorithm, layout).close()
    _build(x[SURVIVORS], fresh_live, algorithm, layout).close()
    return SimpleNamespace(algorithm=algorithm, layout=layout, floor=METHODS[algorithm][1],
                           grown=grown, shrunk=shrunk, compacted=compacted,
                           grown_compacted=grown_compacted, fresh_all=fresh_all,
                           fresh_live=fresh_live, new_ids=new_ids, base_manifest=base_manifest,
                           deleted_count=deleted_count, kept=kept, kept_all=kept_all)


# --------------------------------------------------------------------------- insert

def test_segments_insert_continues_the_ids(states):
    assert states.base_manifest == Manifest.single(N_BASE)
    np.testing.assert_array_equal(states.new_ids, np.arange(N_BASE, N_ALL))
    with lshdisk.open(states.grown) as index:
        assert (index.n, index.segment_count) == (N_ALL, 2)
        m = index.manifest
        assert m.next_id == N_ALL and m.tombstones is None and m.tombstone_count == 0
        assert [(s.n, s.id_start, s.id_map) for s in m.segments] == [(N_BASE, 0, None),
                                                                     (N_NEW, N_BASE, None)]
        assert m.segments[1].name == "segments/s000001"


def test_segments_inserted_points_are_found_at_distance_zero(states, data):
    rows = np.arange(N_BASE, N_ALL, 25)
    D, I = _answers(states.grown, data.x[rows], k=1)
    np.testing.assert_array_equal(I[:, 0], rows)
    np.testing.assert_array_equal(D[:, 0], 0.0)


def test_segments_search_after_insert_against_brute_force(states, data, oracle):
    gt_d, _ = oracle.exact_knn(data.x, data.q, K)
    D, I = _answers(states.grown, data.q)
    assert recall_at_k(D, gt_d, K) >= states.floor
    # every answer is a true point at its true distance
    assert (I >= 0).all() and (I < N_ALL).all()
    true = np.sqrt(((data.x[I].astype(np.float64) - data.q[:, None, :]) ** 2).sum(axis=2))
    np.testing.assert_allclose(D, true, rtol=1e-5, atol=1e-6)
    assert all(len(set(row)) == K for row in I.tolist())


def _catalog_arrays(catalog_dir):
    with Catalog.open(catalog_dir) as catalog:
        return {name: catalog.get_array(name) for name in catalog.names()
                if name not in ("index", MANIFEST_DOC)}


def test_segments_new_segment_hashes_with_the_roots_functions(states):
    root = _catalog_arrays(states.grown / "catalog")
    seg = _catalog_arrays(states.grown / "segments" / "s000001" / "catalog")
    assert root and sorted(seg) == sorted(root)
    for name, array in root.items():
        assert seg[name].dtype == array.dtype, name
        np.testing.assert_array_equal(seg[name], array, err_msg=name)


# --------------------------------------------------------------------------- delete

def test_segments_delete_counts_the_newly_deleted(states):
    assert states.deleted_count == DELETED.size
    with lshdisk.open(states.shrunk) as index:
        assert index.n == SURVIVORS.size and index.segment_count == 2
        assert index.manifest.tombstone_count == DELETED.size


def test_segments_deleted_ids_are_never_returned(states, data):
    queries = np.concatenate([data.q, data.x[DELETED[::20]]])
    D, I, found = _answers(states.shrunk, queries, return_candidates=True)
    assert not np.isin(I, DELETED).any()
    assert (I >= 0).all()
    for ids, dists in found:
        assert ids.size > 0 and not np.isin(ids, DELETED).any()
        assert dists.shape == ids.shape
    # a deleted point asked for itself is not found at distance 0
    assert (D[data.q.shape[0]:, 0] > 0).all()


def test_segments_search_after_delete_against_brute_force_on_the_survivors(states, data,
                                                                           oracle):
    gt_d, gt_local = oracle.exact_knn(data.x[SURVIVORS], data.q, K)
    D, I = _answers(states.shrunk, data.q)
    assert recall_at_k(D, gt_d, K) >= states.floor
    hits = np.mean([len(set(a) & set(b)) / K for a, b in zip(I.tolist(),
                                                              SURVIVORS[gt_local].tolist())])
    assert hits >= states.floor - 0.05


def test_segments_delete_again_changes_nothing(states):
    with lshdisk.open(states.shrunk) as index:
        before = index.manifest
        assert index.delete(DELETED[:50]) == 0
        assert index.delete(np.array([], dtype=np.int64)) == 0
        assert index.manifest == before


@pytest.mark.parametrize("ids, exc, needle", [
    ([N_ALL], ValueError, f"id {N_ALL} is not an id"),
    ([5, -1], ValueError, "id -1 is not an id"),
    ([1.5], TypeError, "integers"),
    (["7"], TypeError, "integers"),
])
def test_segments_delete_refuses_bad_ids(states, ids, exc, needle):
    with lshdisk.open(states.shrunk) as index:
        before = index.manifest
        with pytest.raises(exc, match=needle):
            index.delete(ids)
        assert index.manifest == before


# --------------------------------------------------------------------------- compact

def test_segments_compaction_equals_a_fresh_build_of_the_survivors(states, data):
    assert states.kept == SURVIVORS.size
    D, I = _answers(states.compacted, data.q)
    D0, I0 = _answers(states.fresh_live, data.q)
    np.testing.assert_array_equal(I, np.where(I0 >= 0, SURVIVORS[np.maximum(I0, 0)], -1))
    np.testing.assert_array_equal(D, D0)
    with lshdisk.open(states.compacted) as index:
        m = index.manifest
        assert (index.n, index.segment_count, m.tombstone_count) == (SURVIVORS.size, 1, 0)
        assert m.next_id == N_ALL and m.segments[0].id_map is not None
    assert not (states.compacted / "segments").exists() or \
        not os.listdir(states.compacted / "segments")
    assert verify_index(states.compacted).ok


def test_segments_compaction_without_deletes_equals_a_fresh_build(states, data):
    assert states.kept_all == N_ALL
    queries = np.concatenate([data.q, data.x[::97]])
    D, I = _answers(states.grown_compacted, queries)
    D0, I0 = _answers(states.fresh_all, queries)
    np.testing.assert_array_equal(I, I0)
    np.testing.assert_array_equal(D, D0)
    with lshdisk.open(states.grown_compacted) as index:
        assert index.manifest.segments[0].id_start == 0 and index.segment_count == 1


def test_segments_a_compacted_index_grows_and_compacts_again(states, data, tmp_path):
    """After a compaction that dropped ids (an id map), insert and delete again: the next
    compaction still equals a fresh build of the survivors."""
    path = tmp_path / "again"
    shutil.copytree(states.compacted, path)
    extra = _points(300, 2)
    with lshdisk.open(path) as index:
        ids = index.add(extra, memory_limit=MEMORY)
        np.testing.assert_array_equal(ids, np.arange(N_ALL, N_ALL + 300))
        gone = np.concatenate([SURVIVORS[::7], ids[::5], DELETED[:3]])
        assert index.delete(gone) == SURVIVORS[::7].size + ids[::5].size
        index.compact(memory_limit=MEMORY)
    every = np.concatenate([data.x, extra])
    live = np.setdiff1d(SURVIVORS, SURVIVORS[::7])
    live = np.concatenate([live, np.setdiff1d(ids, ids[::5])])
    fresh = tmp_path / "fresh"
    _build(every[live], fresh, states.algorithm, states.layout).close()
    D, I = _answers(path, data.q)
    D0, I0 = _answers(fresh, data.q)
    np.testing.assert_array_equal(I, live[I0])
    np.testing.assert_array_equal(D, D0)


# --------------------------------------------------------------------------- no manifest

def test_segments_an_index_without_a_manifest_is_one_segment(states):
    with Catalog.open(states.fresh_all / "catalog") as catalog:
        assert MANIFEST_DOC not in catalog.names()
    with lshdisk.open(states.fresh_all) as index:
        assert index.segment_count == 1 and index.manifest == Manifest.single(N_ALL)


def test_segments_golden_index_is_one_segment(tmp_path):
    expected = json.loads((GOLDEN.parent / "golden_qalsh_expected.json").read_text())
    copy = tmp_path / "golden"
    shutil.copytree(GOLDEN, copy)
    with lshdisk.open(copy) as index:
        assert index.segment_count == 1 and index.manifest == Manifest.single(600)
        D, I = index.search(np.asarray(expected["queries"], dtype=np.float32), expected["k"])
    np.testing.assert_array_equal(I, expected["ids"])


def test_segments_a_deleted_segment_leaves_the_plain_answers(data, tmp_path):
    """A second segment whose points are all deleted changes no answer or distance: the
    merged search equals the plain search of the first segment alone."""
    plain = tmp_path / "plain"
    lshdisk.build(data.x[:N_BASE], plain, memory_limit=MEMORY).close()
    merged = tmp_path / "merged"
    shutil.copytree(plain, merged)
    with lshdisk.open(merged) as index:
        ids = index.add(data.x[N_BASE:], memory_limit=MEMORY)
        assert index.delete(ids) == N_NEW
        assert (index.n, index.segment_count) == (N_BASE, 2)
        D, I, found = index.search(data.q, K, return_candidates=True)
    D0, I0, found0 = _answers(plain, data.q, return_candidates=True)
    np.testing.assert_array_equal(I, I0)
    np.testing.assert_array_equal(D, D0)
    for (ids_a, d_a), (ids_b, d_b) in zip(found, found0):
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_array_equal(d_a, d_b)


# --------------------------------------------------------------------------- input checks

@pytest.fixture(scope="module")
def small_indexes(tmp_path_factory):
    """A float32 and a uint8 index of 500 integer-valued points in 8-d."""
    root = tmp_path_factory.mktemp("seg-dtypes")
    x = np.random.default_rng(5).integers(0, 256, (500, 8)).astype(np.uint8)
    lshdisk.build(x, root / "u8", memory_limit=MEMORY).close()
    lshdisk.build(x.astype(np.float32), root / "f32", memory_limit=MEMORY).close()
    return SimpleNamespace(root=root, x=x)


def _refused(path, points, needle):
    with lshdisk.open(path) as index:
        before = index.manifest
        with pytest.raises(DatasetError, match=needle) as info:
            index.add(points, memory_limit=MEMORY)
        assert "\n" not in str(info.value)
        assert index.manifest == before and index.segment_count == 1
    assert unreferenced(str(path), before) == []


@pytest.mark.parametrize("make, needle", [
    (lambda x: x[:5, :7], "dimension 7"),
    (lambda x: np.concatenate([x[:5], x[:5, :1]], axis=1), "dimension 9"),
    (lambda x: np.where(np.arange(8) == 3, np.nan, x[:5].astype(np.float32)), "NaN"),
    (lambda x: np.where(np.arange(8) == 3, np.inf, x[:5].astype(np.float32)), "Inf"),
])
def test_segments_insert_refuses_malformed_points(small_indexes, tmp_path, make, needle):
    path = tmp_path / "f32"
    shutil.copytree(small_indexes.root / "f32", path)
    _refused(path, make(small_indexes.x), needle)


@pytest.mark.parametrize("make", [
    lambda x: x[:5].astype(np.float32) + np.float32(0.5),
    lambda x: x[:5].astype(np.float32) * 2,  # above 255
    lambda x: x[:5].astype(np.float32) - 300,  # below 0
])
def test_segments_insert_refuses_points_a_uint8_index_cannot_hold(small_indexes, tmp_path, make):
    path = tmp_path / "u8"
    shutil.copytree(small_indexes.root / "u8", path)
    _refused(path, make(small_indexes.x), "does not fit the index's dtype uint8")


@pytest.mark.parametrize("name, points", [("f32", lambda x: x),
                                          ("u8", lambda x: x.astype(np.float32))])
def test_segments_insert_converts_points_the_index_holds_exactly(small_indexes, tmp_path, name,
                                                                 points):
    """uint8 points into a float32 index, and whole-number floats into a uint8 index."""
    path = tmp_path / name
    shutil.copytree(small_indexes.root / name, path)
    new = np.clip(small_indexes.x[:40].astype(np.int64) + 1, 0, 255).astype(np.uint8)
    with lshdisk.open(path) as index:
        ids = index.add(points(new), memory_limit=MEMORY)
        np.testing.assert_array_equal(ids, np.arange(500, 540))
        D, I = index.search(new.astype(np.float32), 1)
    np.testing.assert_array_equal(D[:, 0], 0.0)
    every = np.concatenate([small_indexes.x, new])
    # the point found is the inserted one or an identical older one
    np.testing.assert_array_equal(every[I[:, 0]], new)


# --------------------------------------------------------------------------- threads and I/O

@pytest.fixture(scope="module")
def qalsh_states(data, tmp_path_factory):
    """A QALSH index of every point as three segments with deletions, and one of the same
    points as a single segment."""
    root = tmp_path_factory.mktemp("seg-qalsh")
    multi = root / "multi"
    with lshdisk.build(data.x[:N_BASE], multi, memory_limit=MEMORY) as index:
        index.add(data.x[N_BASE:2500], memory_limit=MEMORY)
        index.add(data.x[2500:], memory_limit=MEMORY)
        index.delete(DELETED[::4])
    one, two = root / "one", root / "two"
    lshdisk.build(data.x, one, memory_limit=MEMORY).close()
    with lshdisk.build(data.x[:N_BASE], two, memory_limit=MEMORY) as index:
        index.add(data.x[N_BASE:], memory_limit=MEMORY)
    return SimpleNamespace(multi=multi, one=one, two=two)


def test_segments_threads_give_the_answers_of_one_thread(qalsh_states, data):
    queries = np.concatenate([data.q, data.x[::61]])
    with lshdisk.open(qalsh_states.multi) as index:
        assert index.segment_count == 3
        D1, I1, s1 = index.search(queries, K, threads=1, return_stats=True)
        D4, I4, s4 = index.search(queries, K, threads=4, return_stats=True)
        D4b, I4b, _, c4 = index.search(queries, K, threads=4, return_stats=True,
                                       return_candidates=True)
        _, _, c1 = index.search(queries, K, threads=1, return_candidates=True)
    np.testing.assert_array_equal(I4, I1)
    np.testing.assert_array_equal(D4, D1)
    np.testing.assert_array_equal(I4b, I1)
    for name in ("page_reads", "seeks", "bytes_read", "candidates", "rounds"):
        np.testing.assert_array_equal(s4[name], s1[name], err_msg=name)
    for (a, da), (b, db) in zip(c4, c1):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(da, db)
    assert not np.isin(I1, DELETED[::4]).any()


def test_segments_io_is_counted_over_every_segment(qalsh_states, data):
    out = {}
    for name in ("one", "two"):
        with lshdisk.open(getattr(qalsh_states, name)) as index:
            D, I, stats = index.search(data.q, K, return_stats=True)
        nq = data.q.shape[0]
        for field in stats.keys():
            assert stats[field].shape == (nq,), field
        assert (stats.page_reads > 0).all() and (stats.bytes_read > 0).all()
        assert (stats.candidates >= K).all() and (stats.rounds > 0).all()
        out[name] = stats
    # each segment's search starts on its own: at least one seek per segment per query
    assert (out["two"].seeks >= 2).all()
    with lshdisk.open(qalsh_states.two) as index:
        index.search(data.q[:5], K)
        total = index.io_total()
    assert total.page_reads > 0


# --------------------------------------------------------------------------- evaluate, tune

@pytest.mark.parametrize("which", ["grown", "shrunk"])
def test_segments_ground_truth_of_a_segmented_index_is_accepted(qalsh_states, data, oracle,
                                                                which):
    from lshdisk.evaluate import check_groundtruth, evaluate
    path = qalsh_states.two if which == "grown" else qalsh_states.multi
    live = np.arange(N_ALL) if which == "grown" else np.setdiff1d(np.arange(N_ALL),
                                                                  DELETED[::4])
    gt_d, gt_local = oracle.exact_knn(data.x[live], data.q, K)
    gt_i = live[gt_local]
    with lshdisk.open(path) as index:
        check_groundtruth(index, data.q, gt_d.astype(np.float32), gt_i)
        rows = evaluate(index, data.q, gt_d, [K])
    assert rows[0]["recall"] >= 0.9


def test_segments_tune_refuses_a_segmented_index(qalsh_states):
    from lshdisk.tune import tune
    with lshdisk.open(qalsh_states.two) as index:
        with pytest.raises(ValueError, match="compact"):
            tune(index, [0.9], k=K, sample=100)


# --------------------------------------------------------------------------- kill -9

_CHILD = """
import sys
import numpy as np
from lshdisk import updates
from storage import durable
path, change, extra = sys.argv[1], sys.argv[2], sys.argv[3]
if sys.argv[4] == "fallback":  # no atomic exchange: the two-rename replacement
    durable._rename_call = lambda: (None, None)
if change == "insert":
    updates.add(path, np.load(extra), memory_limit="16MiB")
elif change == "delete":
    updates.delete(path, np.load(extra))
else:
    updates.compact(path, memory_limit="16MiB")
"""

KILL_N = 500
_BUILD_STEPS = ["build:started", "build:vectors-written", "build:tables-written",
                "build:sealed", "build:catalog-written", "build:verified", "publish:synced"]
#: (change, fault point, publication mode, whether the change has taken effect there).
_KILLS = (
    [("insert", p, "exchange", False) for p in _BUILD_STEPS + ["publish:renamed",
                                                               "publish:done",
                                                               "insert:segment-built"]]
    + [("insert", "insert:manifest-written", "exchange", True),
       ("delete", "delete:tombstones-written", "exchange", False),
       ("delete", "delete:manifest-written", "exchange", True)]
    + [("compact", p, "exchange", False) for p in ["compact:rows-written"] + _BUILD_STEPS]
    + [("compact", "publish:exchanged", "exchange", True),
       ("compact", "publish:done", "exchange", True),
       ("compact", "publish:old-moved", "fallback", False),  # the next open rolls it back
       ("compact", "publish:done", "fallback", True)]
)
KILL_POINTS = ([pytest.param("qalsh", *kill, id=f"qalsh-{kill[0]}-{kill[1]}-{kill[2]}")
                for kill in _KILLS]
               + [pytest.param("c2lsh", "compact", p, "exchange", done,
                               id=f"c2lsh-compact-{p}-exchange")
                  for p, done in [("compact:rows-written", False),
                                  ("build:tables-written", False),
                                  ("publish:exchanged", True)]])


@pytest.fixture(scope="module")
def kill_states(tmp_path_factory):
    """``kill_states(algorithm)``: a tiny index before each change (two segments, some ids
    deleted: the change has old files to replace), the same after it, and the answers of
    each; made once per algorithm."""
    root = tmp_path_factory.mktemp("seg-kill")
    rng = np.random.default_rng(11)
    x = rng.random((KILL_N, 8), dtype=np.float32)
    new = rng.random((60, 8), dtype=np.float32)
    gone = np.array([3, 77, 401, 402, 470], dtype=np.int64)
    q = np.concatenate([x[::25], x[gone], new[::10], rng.random((10, 8), dtype=np.float32)])
    np.save(root / "new.npy", new)
    np.save(root / "gone.npy", gone)
    made = {}

    def make(algorithm):
        if algorithm in made:
            return made[algorithm]
        base = root / algorithm
        base.mkdir()
        before = base / "before"
        with lshdisk.build(x[:400], before, algorithm=algorithm, memory_limit=MEMORY) as index:
            index.add(x[400:], memory_limit=MEMORY)
            index.delete([1, 2, 450])
        paths = {"before": before}
        for change in ("insert", "delete", "compact"):
            paths[change] = base / f"after-{change}"
            shutil.copytree(before, paths[change])
            _redo(change, paths[change], SimpleNamespace(new=new, gone=gone))
        answers, generation = {}, {}
        for name, path in paths.items():
            with lshdisk.open(path) as index:
                answers[name] = index.search(q, 5)
                generation[name] = index.manifest.generation
        # each change shows in the answers (a compaction changes m and l with n)
        for change in ("insert", "delete"):
            assert not np.array_equal(answers[change][1], answers["before"][1]), change
        made[algorithm] = SimpleNamespace(root=root, q=q, paths=paths, answers=answers,
                                          generation=generation, new=new, gone=gone)
        return made[algorithm]

    return make


def _redo(change, path, s):
    if change == "insert":
        updates.add(path, s.new, memory_limit=MEMORY)
    elif change == "delete":
        updates.delete(path, s.gone)
    else:
        updates.compact(path, memory_limit=MEMORY)


@pytest.mark.parametrize("algorithm, change, point, mode, done", KILL_POINTS)
def test_segments_kill_at_every_step_leaves_the_index_before_or_after(kill_states, tmp_path,
                                                                       algorithm, change, point,
                                                                       mode, done):
    s = kill_states(algorithm)
    path = tmp_path / "idx"
    shutil.copytree(s.paths["before"], path)
    extra = {"insert": s.root / "new.npy", "delete": s.root / "gone.npy"}.get(change, "-")
    env = dict(os.environ, LSHDISK_FAULT_POINT=point)
    run = subprocess.run([sys.executable, "-c", _CHILD, str(path), change, str(extra), mode],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, (point, run.returncode, run.stderr)
    with lshdisk.open(path) as index:  # removes a cut compaction's leftovers in the parent
        generation = index.manifest.generation
        D, I = index.search(s.q, 5)
    state = change if done else "before"
    assert generation == s.generation[state]
    D0, I0 = s.answers[state]
    np.testing.assert_array_equal(I, I0)
    np.testing.assert_array_equal(D, D0)
    assert verify_index(path).ok
    assert sorted(os.listdir(tmp_path)) == ["idx"]
    # the next change succeeds and removes what the killed one left
    if not done:
        _redo(change, path, s)
        D1, I1 = _answers(path, s.q, k=5)
        np.testing.assert_array_equal(I1, s.answers[change][1])
        np.testing.assert_array_equal(D1, s.answers[change][0])
    else:
        assert updates.delete(path, [0]) == 1
    with lshdisk.open(path) as index:
        assert unreferenced(str(path), index.manifest) == []
        names = set(os.listdir(path))
        assert not any(".building-" in n or ".replaced-" in n for n in names)
        if (path / "segments").is_dir():
            assert sorted(os.listdir(path / "segments")) == sorted(
                e.name.split("/", 1)[1] for e in index.manifest.segments if e.name != ".")
    assert sorted(os.listdir(tmp_path)) == ["idx"]
