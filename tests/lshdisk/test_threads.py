"""Concurrent searches on one open index, parallel batch search, repeated opens."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import lshdisk

N, D, NQ, K = 3000, 16, 48, 10
STAT_FIELDS = ("page_reads", "seeks", "bytes_read", "candidates", "rounds")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(20, D)).astype(np.float32) * 3
    x = (centres[rng.integers(0, 20, N)] + rng.normal(size=(N, D))).astype(np.float32)
    q = (centres[rng.integers(0, 20, NQ)] + rng.normal(size=(NQ, D))).astype(np.float32)
    return x, q


@pytest.fixture(scope="module", params=["qalsh", "c2lsh", "ilsh"])
def built(request, data, tmp_path_factory):
    x, q = data
    path = tmp_path_factory.mktemp(request.param) / "index"
    lshdisk.build(x, path, algorithm=request.param, memory_limit="16MiB", page_size=1024).close()
    with lshdisk.open(path) as index:
        D0, I0, s0 = index.search(q, K, return_stats=True)
    return path, q, D0, I0, s0


def _assert_same(D0, I0, s0, D1, I1, s1, rows=slice(None)):
    np.testing.assert_array_equal(I1, I0[rows])
    np.testing.assert_array_equal(D1, D0[rows])
    for name in STAT_FIELDS:
        np.testing.assert_array_equal(s1[name], s0[name][rows], err_msg=name)


def test_parallel_batch_search_equals_sequential(built):
    path, q, D0, I0, s0 = built
    with lshdisk.open(path) as index:
        for threads in (2, 4, None):
            D1, I1, s1 = index.search(q, K, return_stats=True, threads=threads)
            _assert_same(D0, I0, s0, D1, I1, s1)


def test_eight_threads_searching_one_index_get_their_sequential_answers(built):
    path, q, D0, I0, s0 = built
    barrier = threading.Barrier(8)

    def worker(w):
        barrier.wait()
        out = []
        for rep in range(3):
            rows = slice((w + rep) % 4, NQ, 4)
            # Threads of the caller's, each searching on its own; the batch search of each
            # call adds threads of its own with threads=None.
            D, I, st = index.search(q[rows], K, return_stats=True,
                                    threads=1 if w % 2 else None)
            out.append((rows, D, I, st))
        return out

    with lshdisk.open(path) as index:
        with ThreadPoolExecutor(8) as pool:
            results = [f.result() for f in [pool.submit(worker, w) for w in range(8)]]
        assert len(index._readers) <= 8 + 4 * 2  # one per searching thread at most
    for out in results:
        for rows, D, I, st in out:
            _assert_same(D0, I0, s0, D, I, st, rows)


def test_threads_with_a_buffer_pool_give_the_same_answers_and_accesses(built):
    """With a shared pool, which accesses hit depends on the order the threads run in; the
    answers and the accesses (device reads + hits) per query do not."""
    path, q, D0, I0, s0 = built
    with lshdisk.open(path, cache_bytes=1 << 20) as index:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(index.search, q, K, return_stats=True) for _ in range(8)]
            results = [f.result() for f in futures]
        D2, I2, s2 = index.search(q, K, return_stats=True, threads=4)
    for D, I, st in results + [(D2, I2, s2)]:
        np.testing.assert_array_equal(I, I0)
        np.testing.assert_array_equal(D, D0)
        np.testing.assert_array_equal(st.page_reads + st.cache_hits, s0.page_reads)
        np.testing.assert_array_equal(st.candidates, s0.candidates)


def test_the_same_index_opened_many_times_at_once(built):
    path, q, D0, I0, s0 = built
    barrier = threading.Barrier(6)

    def open_and_search(_):
        barrier.wait()
        with lshdisk.open(path) as index:
            return index.search(q[:8], K)

    with ThreadPoolExecutor(6) as pool:
        for D, I in pool.map(open_and_search, range(6)):
            np.testing.assert_array_equal(I, I0[:8])
            np.testing.assert_array_equal(D, D0[:8])


def test_progress_counts_every_query_once_under_threads(built):
    path, q, *_ = built
    seen = []
    with lshdisk.open(path) as index:
        index.search(q, K, threads=4, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i + 1, NQ) for i in range(NQ)]


def test_close_while_idle_then_search_fails(built):
    path, q, *_ = built
    index = lshdisk.open(path)
    index.search(q, K, threads=3)
    index.close()
    assert all(pf.closed for reader in index._readers for pf in reader.files)
    with pytest.raises(ValueError, match="closed"):
        index.search(q, K)
    with pytest.raises(ValueError, match="closed"):
        index.search(q, K, threads=2)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                      (True, TypeError)])
def test_bad_thread_counts_are_refused(built, bad, exc):
    path, q, *_ = built
    with lshdisk.open(path) as index:
        with pytest.raises(exc, match="threads"):
            index.search(q, K, threads=bad)


def test_traces_and_candidates_follow_the_rounds(built):
    """Per-round traces: radii grow, counts only grow, the candidates verified by round r
    are the first trace["verified"][r] candidates, and the last round's d1 / dk are those of
    the answer; T2 holds at the cap."""
    path, q, D0, I0, s0 = built
    with lshdisk.open(path) as index:
        D, I, st, traces, found = index.search(q, K, return_stats=True, trace=True,
                                               return_candidates=True, threads=2)
    np.testing.assert_array_equal(I, I0)
    for i, (tr, (ids, dist)) in enumerate(zip(traces, found)):
        assert len(tr) == st.rounds[i] >= 1
        np.testing.assert_array_equal(tr["round"], np.arange(len(tr)))
        for name in ("page_reads", "seeks", "bytes_read", "entries", "candidates", "verified"):
            assert np.all(np.diff(tr[name]) >= 0), name
        assert np.all(np.diff(tr["radius"]) >= 0)
        assert tr["page_reads"][-1] == st.page_reads[i]
        assert tr["verified"][-1] == ids.size == st.candidates[i]
        assert np.all(tr["candidates"] == tr["verified"])
        for r in range(len(tr)):
            seen = np.sort(dist[:tr["verified"][r]])
            np.testing.assert_allclose(tr["d1"][r], seen[0] if seen.size else np.inf,
                                       rtol=1e-6)
            np.testing.assert_allclose(tr["dk"][r], seen[K - 1] if seen.size >= K else np.inf,
                                       rtol=1e-6)
        np.testing.assert_allclose(np.sort(dist)[:K], D[i][np.isfinite(D[i])], rtol=1e-6)


def test_tracing_does_not_change_the_search(built):
    path, q, D0, I0, s0 = built
    with lshdisk.open(path) as index:
        D, I, st, _ = index.search(q, K, return_stats=True, trace=True)
    _assert_same(D0, I0, s0, D, I, st)
