"""C2LSH (lshdisk.c2lsh, lshdisk.params.c2lsh_params, lshdisk._kernels.c2lsh).

Oracles: the SIGMOD 2012 formulas written out independently (and p(s) by numerical
integration), plain numpy for the kernels, brute force for search quality, exact I/O counts
on a hand-built index whose page reads are worked out by hand below, byte comparison of the
tables file across memory limits, and the real Mnist set with the reference code's budget.
"""

import dataclasses
import json
import math
import os

import numpy as np
import pytest

import lshdisk
from lshdisk.c2lsh import TABLES_KIND, C2LSHBuilder, C2LSHSearcher, b_scale, bucket_origin
from lshdisk.evaluate import overall_ratio, recall_at_k
from lshdisk.metadata import TablesMeta
from lshdisk.search import RoundSearch, SearchOptions
from lshdisk.scale import UnitSample
from lshdisk.params import PRESETS, C2LSHParams, c2lsh_collision_prob, c2lsh_params
from lshdisk.vector_store import VECTORS_KIND, VectorStore, VectorStoreWriter
from lshdisk._kernels.c2lsh import (buckets_from_keys, projection_keys, query_buckets,
                                    sample_knn_sqdist)
from storage.extsort import float32_to_ordered_u32
from storage.iostats import DEVICE_READ, IOCounter
from storage.page_file import PageFile
from storage.sorted_run import SortedRunWriter


def build_c2lsh(x, path, **kw):
    kw.setdefault("memory_limit", "16MiB")
    kw.setdefault("seed", 0)
    return lshdisk.build(x, path, algorithm="c2lsh", **kw)


# --------------------------------------------------------------------------- parameters
def _paper_c2lsh(n, c, delta, beta, w):
    """SIGMOD 2012, Section 4, written out with Phi from math.erf."""
    def phi(x):
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

    def p(s):
        r = w / s
        return 1 - 2 * phi(-r) - 2 / (math.sqrt(2 * math.pi) * r) * (1 - math.exp(-r * r / 2))

    p1, p2 = p(1.0), p(c)
    z = math.sqrt(math.log(2 / beta) / math.log(1 / delta))
    alpha = (z * p1 + p2) / (1 + z)
    m = math.ceil(max(math.log(1 / delta) / (2 * (alpha - p1) ** 2),
                      math.log(2 / beta) / (2 * (alpha - p2) ** 2)))
    return p1, p2, z, alpha, m, math.ceil(alpha * m)


def test_c2lsh_params_mnist_defaults():
    p = c2lsh_params(60000, c=2)
    assert (p.m, p.l) == (385, 113)
    assert (p.c, p.w, p.delta) == (2, 1.0, 0.01)
    assert isinstance(p.c, int)
    assert p.beta == pytest.approx(100 / 60000)
    p1, p2, z, alpha, m, l = _paper_c2lsh(60000, 2, 0.01, 100 / 60000, 1.0)
    assert (p.p1, p.p2, p.z, p.alpha) == pytest.approx((p1, p2, z, alpha), rel=1e-12)
    assert (m, l) == (385, 113)


def test_c2lsh_params_jafari2021_preset():
    preset = PRESETS["jafari2021"]["c2lsh"]
    p = c2lsh_params(60000, c=2.0, **preset)
    assert (p.m, p.l) == (149, 83)
    assert (p.delta, p.w) == (0.1, 2.184)


@pytest.mark.parametrize("n,c,delta,beta,w", [
    (1_000_000, 3, 0.05, 1e-4, 1.0),
    (5000, 2, 0.2, 0.02, 2.5),
    (100, 4, 0.1, None, 0.5),
])
def test_c2lsh_params_derived_values_match_the_paper(n, c, delta, beta, w):
    beta_used = min(100 / n, 0.5) if beta is None else beta
    p = c2lsh_params(n, c=c, delta=delta, beta=beta, w=w)
    want = _paper_c2lsh(n, c, delta, beta_used, w)
    assert (p.p1, p.p2, p.z, p.alpha) == pytest.approx(want[:4], rel=1e-12)
    assert (p.m, p.l) == want[4:]
    assert p.p2 < p.alpha < p.p1
    again = C2LSHParams(**json.loads(json.dumps(p.to_dict())))
    assert again == p


def test_c2lsh_collision_prob_matches_numerical_integration():
    # p(s) = integral_0^w (1/s) f(t/s) (1 - t/w) dt, f the density of |N(0, 1)|.
    for w in (1.0, 2.184, 4.0):
        for s in (0.5, 1.0, 2.0, 7.0):
            t = np.linspace(0.0, w, 200001)
            f = 2.0 / math.sqrt(2 * math.pi) * np.exp(-(t / s) ** 2 / 2) / s * (1 - t / w)
            integral = float(np.sum((f[1:] + f[:-1]) / 2 * np.diff(t)))
            assert c2lsh_collision_prob(s, w) == pytest.approx(integral, rel=1e-6)
    assert c2lsh_collision_prob(1.0, 1.0) > c2lsh_collision_prob(2.0, 1.0)


@pytest.mark.parametrize("c", [2.5, 1, 0.5, 1.0, -2, float("inf"), True, "2"])
def test_c2lsh_params_reject_non_integer_c(c):
    with pytest.raises(ValueError, match="c \\(approximation ratio\\) must be an integer >= 2"):
        c2lsh_params(1000, c=c)


@pytest.mark.parametrize("kw,needle", [
    ({"delta": 0.0}, "delta"), ({"delta": 0.5}, "delta"), ({"delta": -0.1}, "delta"),
    ({"beta": 0.0}, "beta"), ({"beta": 1.0}, "beta"), ({"beta": 2.0}, "beta"),
    ({"w": 0.0}, "w \\(bucket width\\)"), ({"w": -1.0}, "w \\(bucket width\\)"),
    ({"w": float("nan")}, "w \\(bucket width\\)"), ({"w": float("inf")}, "w \\(bucket width\\)"),
])
def test_c2lsh_params_reject_bad_delta_beta_w(kw, needle):
    with pytest.raises(ValueError, match=needle):
        c2lsh_params(1000, **kw)


def test_c2lsh_params_class_validates_itself():
    p = c2lsh_params(1000)
    with pytest.raises(ValueError, match="integer >= 2"):
        dataclasses.replace(p, c=3.5)
    with pytest.raises(ValueError, match="l must be in 1..m"):
        dataclasses.replace(p, l=p.m + 1)


# --------------------------------------------------------------------------- kernels
def test_c2lsh_projection_keys_and_buckets_against_numpy():
    rng = np.random.default_rng(0)
    proj = (rng.standard_normal((50, 4)) * 30).astype(np.float32)
    proj[0, 0], proj[1, 0] = -0.0, 0.0
    keys = np.empty((4, 50), np.uint64)
    ids = np.empty((4, 50), np.uint32)
    projection_keys(proj.view(np.uint32), 1000, keys, ids)
    want = float32_to_ordered_u32(proj.T).astype(np.uint64) | (np.arange(4, dtype=np.uint64) << 32)[:, None]
    np.testing.assert_array_equal(keys, want)
    np.testing.assert_array_equal(ids, np.broadcast_to(np.arange(1000, 1050), (4, 50)))
    b, unit, w = rng.random(4) * 8, 0.25, 1.5
    flat = keys.ravel()
    tables = np.empty(flat.size, np.int64)
    buckets = np.empty(flat.size, np.int64)
    buckets_from_keys(flat, b, unit, w, tables, buckets)
    np.testing.assert_array_equal(tables, np.repeat(np.arange(4), 50))
    want_b = np.floor((proj.T.astype(np.float64) / unit + b[:, None]) / w).astype(np.int64)
    np.testing.assert_array_equal(buckets, want_b.ravel())
    qb = np.empty(4, np.int64)
    query_buckets(proj[7].astype(np.float64), b, unit, w, qb)
    np.testing.assert_array_equal(qb, want_b[:, 7])


def test_c2lsh_sample_knn_kernel_skips_duplicates():
    rng = np.random.default_rng(1)
    s = rng.standard_normal((60, 5)).astype(np.float32)
    s[10] = s[11]  # an exact duplicate pair
    out = np.empty((60, 4))
    sample_knn_sqdist(s, 4, out)
    d2 = ((s[:, None, :].astype(np.float64) - s[None, :, :]) ** 2).sum(-1)
    d2[d2 <= 0] = np.inf
    np.testing.assert_allclose(out, np.sort(d2, axis=1)[:, :4], rtol=1e-12)


def choose_unit(sample, n, c):
    """The unit a C2LSH build of n points takes from this sample (its UnitSample)."""
    s = UnitSample(np.arange(sample.shape[0], dtype=np.int64), sample.shape[1])
    s.add_chunk(0, sample)
    return s.unit(n, c)


def test_c2lsh_unit_follows_the_data_scale_exactly():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((800, 12)).astype(np.float32)
    u, info = choose_unit(x, 50000, 2)
    assert u == pytest.approx(info["scaled_distance"] / 2 ** 0.5)
    assert 1 <= info["intrinsic_dim"] <= 12
    for factor in (2.0 ** -12, 0.37, 1.5, 2.0 ** 9):
        u2, _ = choose_unit(x * np.float32(factor), 50000, 2)
        assert u2 == pytest.approx(u * factor, rel=1e-5)
    assert choose_unit(np.ones((50, 3), np.float32), 1000, 2)[0] == 1.0
    assert choose_unit(np.ones((1, 3), np.float32), 1, 3)[0] == 1.0


def test_c2lsh_b_scale_and_origin_formulas():
    # Mnist in units of 128: t = 255 / 128, t d = 99.6, c^floor(log_c(t d)) = 64.
    assert b_scale(255.0, 128.0, 50, 2, 1.0) == 64.0
    assert b_scale(255.0, 1.0, 50, 2, 2.0) == 8192.0 * 4.0
    assert b_scale(1.0, 1.0, 10, 3, 1.0) == 9.0
    assert b_scale(0.0, 1.0, 10, 2, 1.5) == 2.25
    assert bucket_origin(5, 2) == 0 and bucket_origin(0, 2) == 0
    assert bucket_origin(-1, 2) == -1 and bucket_origin(-64, 2) == -64
    assert bucket_origin(-65, 2) == -128 and bucket_origin(-10, 3) == -27


# --------------------------------------------------------------------------- hand-built I/O
class LoggingCounter(IOCounter):
    """An IOCounter that also logs every device read as (file id, first page, pages), through
    its trace sink."""

    __slots__ = ("log",)

    def __init__(self):
        super().__init__(trace=self._log_read)
        self.log = []

    def _log_read(self, file_id, first_page, n_pages, access):
        if access == DEVICE_READ:
            self.log.append((file_id, first_page, n_pages))


#: 12 points on a line; a = 1, b* = (0, 0.5), u = w = 1, two entries per 512-byte page.
HAND_X = np.array([0.1, 1.1, 1.6, 2.2, 2.3, 2.6, 2.8, 3.7, 4.2, 5.6, 6.1, 7.9], np.float32)
# Table 0, buckets floor(x):       pages 1..6   (0 1) (1 2) (2 2) (2 3) (4 5) (6 7)
# Table 1, buckets floor(x + 0.5): pages 7..12  (0 1) (2 2) (2 3) (3 4) (4 6) (6 8)
# Directory: page 13. Vectors: one page. Entries of page j are ids 2j, 2j + 1.


@pytest.fixture
def hand_index(tmp_path):
    b = np.array([0.0, 0.5])
    pf = PageFile.create(str(tmp_path / "tables.pages"), kind=TABLES_KIND, page_size=512)
    writer = SortedRunWriter(pf, id_bits=4, tmp_dir=str(tmp_path), page_entries=2)
    for t in range(2):
        writer.begin_run()
        writer.add(np.floor(HAND_X.astype(np.float64) + b[t]).astype(np.int64), np.arange(12))
        writer.end_run()
    runs, directory = writer.finish()
    pf.finalize(b"{}")
    pf.close()
    vw = VectorStoreWriter(str(tmp_path / "vectors.pages"), d=1, dtype=np.float32, page_size=512)
    vw.append(HAND_X[:, None])
    vw.finish()
    meta = {"files": {"tables": "tables.pages"}, "hash": {"a": "a", "b": "b", "shape": [2, 1]},
            "unit": {"u": 1.0}, "origin": 0, "directory": directory.to_dict(),
            "tables": {name: [getattr(r, name) for r in runs] for name in
                       ("first_page", "n_pages", "n_entries", "key_min", "key_max", "dir_entry")}}
    assert meta["tables"]["first_page"] == [1, 7] and directory.first_page == 13
    counter = LoggingCounter()
    files = {}

    def open_file(name, kind):
        files[name] = PageFile.open(str(tmp_path / name), counter=counter, kind=kind)
        return files[name]

    vectors = VectorStore(open_file("vectors.pages", VECTORS_KIND))
    params = dataclasses.replace(c2lsh_params(12, c=2, delta=0.1, beta=0.5), m=2, l=2)
    searcher = RoundSearch(C2LSHSearcher(open_file, TablesMeta.from_dict(meta),
                                         {"a": np.ones((2, 1), np.float32), "b": b}, params,
                                         vectors.n), vectors, counter, params.beta)
    yield searcher, counter, files["tables.pages"].file_id, files["vectors.pages"].file_id
    for f in files.values():
        f.close()


def run_query(searcher, counter, q, k):
    counter.log.clear()
    counter.reset_head()
    before = counter.snapshot()
    sq, ids, _, _ = searcher.search_one(np.array([q], np.float32), SearchOptions(k=k))
    io = counter.snapshot().delta(before)
    return sq, ids, list(counter.log), io


def test_c2lsh_hand_index_right_extensions_reuse_the_boundary_page(hand_index):
    searcher, counter, T, V = hand_index
    sq, ids, log, io = run_query(searcher, counter, 2.4, 3)  # buckets 2 and floor(2.9) = 2
    assert log == [
        (T, 13, 1),  # the directory
        # R = 1, bucket [2, 2]. Table 0: pages with last >= 2 and first <= 2: 2..4, one run.
        (T, 2, 3),
        # Table 1: pages 8..9; ids 3 (key 2 in both tables) and 4 reach l = 2.
        (T, 8, 2),
        (V, 1, 1),   # verify 3, 4: 2 < k candidates, go on
        # R = 2, buckets [2, 3]. Table 0: bucket 3 sits on page 4, already held (id 7
        # counted from memory; page 5 starts at 4). Table 1: the held page 9 gives id 5 (key
        # 3), which ends it; page 10 starts with key 3: read it (id 6 reaches l).
        (T, 10, 1),
        (V, 1, 1),   # verify 5, 6: third distance 0.2 <= c R = 4: T1
    ]
    assert (io.page_reads, io.seeks) == (9, 6)
    assert ids.tolist() == [3, 4, 5, 6]
    np.testing.assert_allclose(sq, (HAND_X[[3, 4, 5, 6]].astype(np.float64) - np.float32(2.4)) ** 2)


def test_c2lsh_hand_index_left_then_right_extensions(hand_index):
    searcher, counter, T, V = hand_index
    sq, ids, log, io = run_query(searcher, counter, 5.3, 2)  # buckets 5 and floor(5.8) = 5
    assert log == [
        (T, 13, 1),
        (T, 5, 1),   # R = 1: table 0, page 5 (keys 4 5): id 9
        (T, 11, 1),  # table 1, page 11 (keys 4 6): no key 5, nothing counted
        # R = 2, buckets [4, 5]: table 0 counts id 8 from its held page (page 4 ends at 3);
        # table 1 counts id 8 (a candidate) from page 11, whose left neighbour page 10 ends
        # with key 4: read it (id 7).
        (T, 10, 1),
        (V, 1, 1),   # verify 8: 1 < k
        (T, 6, 1),   # R = 4, buckets [4, 7]: table 0 reads page 6 (keys 6 7)
        (T, 12, 1),  # table 1 counts id 9 from page 11, reads page 12 (id 10)
        (V, 1, 1),   # verify 9, 10: second distance 0.8 <= 8: T1
    ]
    assert (io.page_reads, io.seeks) == (8, 8)
    assert ids.tolist() == [8, 9, 10]


def test_c2lsh_hand_index_far_query_cap_and_exhaustion(hand_index):
    searcher, counter, T, V = hand_index
    # Bucket 100 in both tables: rounds R = 1 .. 64 find no page; R = 128 covers [0, 127],
    # all of both tables: one run each, the second right after the first (no seek).
    sq, ids, log, io = run_query(searcher, counter, 100.0, 1)
    assert log == [(T, 13, 1), (T, 1, 6), (T, 7, 6), (V, 1, 1)]
    assert (io.page_reads, io.seeks) == (14, 3)
    assert ids.tolist() == list(range(7))  # T2: k + ceil(beta n) = 1 + 6 candidates
    sq, ids, log, io = run_query(searcher, counter, 100.0, 20)
    assert log == [(T, 13, 1), (T, 1, 6), (T, 7, 6), (V, 1, 1)]
    assert sorted(ids.tolist()) == list(range(12))  # every table counted: stop, all found


# --------------------------------------------------------------------------- build
def build_tables(work, x, *, memory, chunk, seed=7):
    n, d = x.shape
    builder = C2LSHBuilder(str(work), n=n, d=d, params=c2lsh_params(n), seed=seed,
                           page_size=4096, memory_limit_bytes=memory)
    for s in range(0, n, chunk):
        builder.add_chunk(s, x[s:s + chunk])
    meta = builder.finish()
    return builder, meta


def test_c2lsh_tables_byte_identical_across_memory_limits(clustered, tmp_path):
    x = clustered.x
    outs = []
    for i, (memory, chunk) in enumerate(((3 * 2**20, 333), (64 * 2**20, 4000), (5 * 2**20, 1))):
        if chunk == 1:
            x_use, chunk = x[:1500], 97  # a smaller set, other chunking: must differ
        else:
            x_use = x
        work = tmp_path / f"w{i}"
        work.mkdir()
        builder, meta = build_tables(work, x_use, memory=memory, chunk=chunk)
        if i == 0:
            assert builder.sorter.runs_written > 1  # the small budget spilled sorted runs
        outs.append(((work / "tables.pages").read_bytes(), meta, builder.arrays()))
        assert sorted(os.listdir(work)) == ["tables.pages"]
    assert outs[0][0] == outs[1][0]
    assert outs[0][1] == outs[1][1]
    for name in ("c2lsh/a", "c2lsh/b"):
        np.testing.assert_array_equal(outs[0][2][name], outs[1][2][name])
    assert outs[0][0] != outs[2][0]


def test_c2lsh_builder_memory_floor_and_abort(clustered, tmp_path):
    n, d = clustered.x.shape
    with pytest.raises(ValueError, match="memory_limit_bytes must be at least"):
        C2LSHBuilder(str(tmp_path), n=n, d=d, params=c2lsh_params(n), seed=0, page_size=4096,
                     memory_limit_bytes=2 * 2**20)
    builder = C2LSHBuilder(str(tmp_path), n=n, d=d, params=c2lsh_params(n), seed=0,
                           page_size=4096, memory_limit_bytes=3 * 2**20)
    builder.add_chunk(0, clustered.x)
    assert builder.chunk_bytes_per_row(4) == 4 * d + 16 * builder.m
    assert os.listdir(tmp_path)  # spilled runs
    builder.abort()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- search quality
@pytest.fixture(scope="module")
def c2lsh_clustered(clustered, tmp_path_factory):
    path = tmp_path_factory.mktemp("c2lsh-clustered") / "index"
    index = build_c2lsh(clustered.x, path)
    D, I, stats = index.search(clustered.q, clustered.k, return_stats=True)
    info = index.info()
    index.close()
    return path, D, I, stats, info


def test_c2lsh_clustered_float32_quality_against_brute_force(clustered, c2lsh_clustered, oracle):
    path, D, I, stats, info = c2lsh_clustered
    assert recall_at_k(D, clustered.gt_d, 10) >= 0.95
    assert overall_ratio(D, clustered.gt_d, 10) <= 1.01
    assert np.all(np.diff(D, axis=1) >= 0)
    for row in I:
        assert np.unique(row).size == row.size
    np.testing.assert_allclose(D, oracle.true_distances(clustered.x, clustered.q, I), rtol=1e-5)
    assert info["algorithm"] == "c2lsh" and info["structure"]["kind"] == "sorted runs"
    assert info["structure"]["unit"] < 1.0  # unit-norm data: distances well below 1
    assert np.all(stats.candidates <= 10 + 100)
    assert np.all(stats.page_reads >= stats.seeks) and np.all(stats.seeks >= 1)


def test_c2lsh_reopened_index_gives_same_results_and_costs(clustered, c2lsh_clustered):
    path, D, I, stats, _ = c2lsh_clustered
    with lshdisk.open(path) as index:
        D2, I2, s2 = index.search(clustered.q[:40], 10, return_stats=True)
    np.testing.assert_array_equal(I2, I[:40])
    np.testing.assert_array_equal(D2, D[:40])
    np.testing.assert_array_equal(s2.page_reads, stats.page_reads[:40])
    np.testing.assert_array_equal(s2.seeks, stats.seeks[:40])


def test_c2lsh_integer_uint8_quality_against_brute_force(integer_data, tmp_path):
    with build_c2lsh(integer_data.x, tmp_path / "u8") as index:
        assert index.dtype == np.uint8
        D, I = index.search(integer_data.q, 10)
        assert index.meta["unit"]["u"] >= 8  # pixel-scale distances: a unit of many levels
    assert recall_at_k(D, integer_data.gt_d, 10) >= 0.95
    assert overall_ratio(D, integer_data.gt_d, 10) <= 1.01


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_c2lsh_scaled_data_same_quality(clustered, tmp_path, scale, oracle):
    x = (clustered.x * scale).astype(np.float32)
    q = (clustered.q * scale).astype(np.float32)
    gt_d, _ = oracle.exact_knn(x, q, 10)
    with build_c2lsh(x, tmp_path / "scaled") as index:
        D, I = index.search(q, 10)
        u = index.meta["unit"]["u"]
    assert recall_at_k(D, gt_d, 10) >= 0.95
    assert overall_ratio(D, gt_d, 10) <= 1.01
    assert scale * 0.0625 / 2 <= u <= scale * 0.0625 * 2  # the unit follows the data (u = 1/16 at scale 1)


def test_c2lsh_power_of_c_scaling_leaves_the_search_unchanged(clustered, c2lsh_clustered,
                                                              tmp_path):
    _, D, I, stats, _ = c2lsh_clustered
    x = clustered.x * np.float32(2.0 ** -10)
    with build_c2lsh(x, tmp_path / "pow2") as index:
        D2, I2, s2 = index.search(clustered.q * np.float32(2.0 ** -10), 10, return_stats=True)
    np.testing.assert_array_equal(I2, I)
    np.testing.assert_allclose(D2, D * 2.0 ** -10, rtol=1e-6)
    np.testing.assert_array_equal(s2.page_reads, stats.page_reads)


def test_c2lsh_duplicate_rows(clustered, tmp_path):
    base = clustered.x[:1000]
    x = np.concatenate([np.repeat(base, 3, axis=0), np.repeat(clustered.x[1000:1001], 200, axis=0)])
    with build_c2lsh(x, tmp_path / "dups") as index:
        D, I = index.search(x[[0, 30, 2997, 3000, 3150]], 10)
    # Each of the first three rows has two copies: 3 results at distance 0, then others.
    for r, row in enumerate((0, 30, 2997)):
        first = 3 * (row // 3)
        assert sorted(I[r, :3].tolist()) == [first, first + 1, first + 2]
        np.testing.assert_array_equal(D[r, :3], 0.0)
        assert np.all(D[r, 3:] > 0)
    # The point repeated 200 times: all 10 results are copies at distance 0.
    for r in (3, 4):
        assert np.all(I[r] >= 3000) and np.unique(I[r]).size == 10
        np.testing.assert_array_equal(D[r], 0.0)


def test_c2lsh_k_above_n_returns_every_point(tiny_data, tmp_path):
    with build_c2lsh(tiny_data.x, tmp_path / "tiny") as index:
        D, I = index.search(tiny_data.q, 400)
    for row, dist in zip(I, D):
        assert sorted(row[:300].tolist()) == list(range(300))
        assert np.all(row[300:] == -1) and np.all(np.isinf(dist[300:]))


def test_c2lsh_build_rejects_non_integer_c(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="integer >= 2"):
        build_c2lsh(tiny_data.x, tmp_path / "bad", c=1.5)
    assert not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------- Mnist
def test_c2lsh_mnist_reaches_the_reference_code(mnist_dir, mnist_queries, tmp_path_factory):
    path = tmp_path_factory.mktemp("c2lsh-mnist") / "mnist.c2lsh"
    with build_c2lsh(mnist_dir / "Mnist.ds", path, format="raw", dtype="uint8", dim=50,
                     memory_limit="256MiB", c=2, page_size=4096) as index:
        assert (index.params.m, index.params.l) == (385, 113)
        # The data unit: the sample's scaled nearest-neighbour distance (161) over sqrt(2).
        assert 100 <= index.meta["unit"]["u"] <= 130
        D, I, stats = index.search(mnist_queries.q, 10, return_stats=True)
    assert overall_ratio(D, mnist_queries.gt_d, 10) <= 1.01
    assert recall_at_k(D, mnist_queries.gt_d, 10) >= 0.90
    # The public C2LSH code reads 3,772 pages per query (k = 10); ours: table, directory
    # and vector pages, all counted.
    assert stats.page_reads.mean() <= 3772
    assert np.all(stats.candidates <= 10 + 100)
    np.testing.assert_array_equal(stats.cache_hits, 0)
    x = np.fromfile(mnist_dir / "Mnist.ds", dtype=np.uint8).reshape(60000, 50)
    true = np.sqrt(((x[I].astype(np.float64) - mnist_queries.q[:, None, :]) ** 2).sum(-1))
    np.testing.assert_allclose(D, true, rtol=1e-5)


def _logged_search(index, q, k, compiled=False):
    """search() with the table-file runs it reads, in order, as (first page, pages), and the
    number of read calls: through the page file's methods, or (``compiled``) by the compiled
    round, whose runs are logged when they are counted."""
    searcher = index._searcher
    pf = searcher.tables_file
    read_run, read_runs_into, count_runs = pf.read_run, pf.read_runs_into, pf.count_runs
    log = []
    calls = [0]

    def one(first, count):
        log.append((int(first), int(count)))
        calls[0] += 1
        return read_run(first, count)

    def many(firsts, counts, out):
        log.extend((int(f), int(c)) for f, c in zip(firsts, counts))
        calls[0] += 1
        return read_runs_into(firsts, counts, out)

    def counted(firsts, counts):
        log.extend((int(f), int(c)) for f, c in zip(firsts, counts))
        return count_runs(firsts, counts)

    pf.read_run, pf.read_runs_into, pf.count_runs = one, many, counted
    if not compiled:
        searcher.scan_round = lambda radius_limit=None: searcher._scan_round_here()
    try:
        D, I, stats = index.search(q, k, return_stats=True, threads=1)
    finally:
        pf.read_run, pf.read_runs_into, pf.count_runs = read_run, read_runs_into, count_runs
        searcher.__dict__.pop("scan_round", None)
    return D, I, stats, log, calls[0]


@pytest.mark.parametrize("k", [1, 10, 60])
def test_c2lsh_the_compiled_round_reads_what_the_round_through_the_page_file_reads(
        clustered, c2lsh_clustered, k):
    path = c2lsh_clustered[0]
    q = clustered.q[:25]
    with lshdisk.open(path) as index:
        D0, I0, s0, compiled, _ = _logged_search(index, q, k, compiled=True)
        D1, I1, s1, here, _ = _logged_search(index, q, k)
    assert compiled == here and len(here) > 0
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_array_equal(D0, D1)
    for name in ("page_reads", "seeks", "bytes_read", "candidates", "rounds"):
        np.testing.assert_array_equal(s0[name], s1[name])


@pytest.mark.parametrize("k", [1, 10, 60])
def test_c2lsh_planned_batches_read_what_the_run_by_run_scan_reads(clustered, c2lsh_clustered,
                                                                   monkeypatch, k):
    """Runs planned from the directory for several tables and read together are the runs the
    scan would ask for one at a time, in the same order: same answers, pages and seeks."""
    path = c2lsh_clustered[0]
    q = clustered.q[:25]
    with lshdisk.open(path) as index:
        D0, I0, s0, batched, batched_calls = _logged_search(index, q, k)
    monkeypatch.setattr("lshdisk.c2lsh.safe_tables", lambda *a: 0)  # every run on its own
    with lshdisk.open(path) as index:
        D1, I1, s1, one_by_one, calls = _logged_search(index, q, k)
    assert calls == len(one_by_one) and batched_calls < calls / 4  # the batches are used
    assert batched == one_by_one
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_array_equal(D0, D1)
    np.testing.assert_array_equal(s0.page_reads, s1.page_reads)
    np.testing.assert_array_equal(s0.seeks, s1.seeks)
    np.testing.assert_array_equal(s0.candidates, s1.candidates)


@pytest.mark.parametrize("capacity", [1, 64, None])
def test_c2lsh_counts_are_zero_after_each_query_whether_or_not_touched_ids_overflow(
        clustered, c2lsh_clustered, capacity):
    path, D0, I0, s0, _ = c2lsh_clustered
    q = clustered.q[:20]
    with lshdisk.open(path) as index:
        searcher = index._searcher
        searcher.counting = searcher.counting._replace(
            touched=np.empty(capacity or searcher.n, dtype=np.int64))
        for i in range(q.shape[0]):
            D, I, st = index.search(q[i], clustered.k, return_stats=True, threads=1)
            assert not searcher.counting.counts.any()
            np.testing.assert_array_equal(I, I0[i:i + 1])
            np.testing.assert_array_equal(D, D0[i:i + 1])
            assert st.page_reads[0] == s0.page_reads[i]


def test_c2lsh_a_damaged_table_page_read_by_the_compiled_round_raises(clustered, c2lsh_clustered,
                                                                       tmp_path, flip_byte):
    import shutil
    from storage.errors import CorruptPageError
    path = c2lsh_clustered[0]
    copy = tmp_path / "damaged"
    shutil.copytree(path, copy)
    with lshdisk.open(copy) as index:
        ps = index.meta["page_size"]
        *_, runs, _ = _logged_search(index, clustered.q[:1], 10, compiled=True)
    first, count = runs[len(runs) // 2]  # a run of the table pages, past the directory
    victim = first + count - 1
    flip_byte(copy / "tables.pages", victim * ps + 40, 0x5A)
    with lshdisk.open(copy) as index:
        with pytest.raises(CorruptPageError, match=f"page {victim} "):
            index.search(clustered.q[0], 10, threads=1)


def test_c2lsh_a_full_run_log_is_counted_and_the_round_goes_on(clustered, c2lsh_clustered):
    from storage import RunLog
    path, D0, I0, s0, _ = c2lsh_clustered
    with lshdisk.open(path) as index:
        size = 2 * index._searcher.m + 1  # room for one batch: LOG_FULL after each
        z = np.zeros(size, np.int64)
        index._searcher._log = RunLog(z, z.copy(), np.zeros(1, np.int64))
        D1, I1, s1 = index.search(clustered.q, clustered.k, return_stats=True, threads=1)
    np.testing.assert_array_equal(I0, I1)
    for name in ("page_reads", "seeks", "candidates"):
        np.testing.assert_array_equal(s0[name], s1[name])
