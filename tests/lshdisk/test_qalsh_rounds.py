"""QALSH round scans: planned leaf runs, directory nodes, the T2-safe read-ahead bound."""

import numpy as np
import pytest

import lshdisk
from lshdisk._kernels.counting import CAP, MAX_COUNT, N_CANDS, safe_tables
from lshdisk.evaluate import recall_at_k

N_TALL, D_TALL, K = 20000, 8, 10


@pytest.fixture(scope="module")
def tall(tmp_path_factory):
    """A QALSH index with 512-byte pages: 3-level trees (the root, 3 directory nodes, 154
    leaves each), so cursors cross from one directory node to the next."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(40, D_TALL)).astype(np.float32) * 4
    x = (centres[rng.integers(0, 40, N_TALL)] + rng.normal(size=(N_TALL, D_TALL))).astype(np.float32)
    q = (centres[rng.integers(0, 40, 30)] + rng.normal(size=(30, D_TALL))).astype(np.float32)
    path = tmp_path_factory.mktemp("tall") / "index"
    lshdisk.build(x, path, page_size=512, seed=1).close()
    return x, q, path


def _recorded_search(index, q, k):
    """search() of each query alone, recording the tree pages each one reads (through the page
    file's methods or counted after the compiled round read them) and the directory nodes it
    loads beyond the descent."""
    searcher = index._searcher
    tf = searcher.trees.file
    tinfo = searcher.trees.tinfo
    dir_pages = set()
    for first_leaf, n_leaves, first_dir, fanout in tinfo.tolist():
        dir_pages.update(range(first_dir, first_dir + -(-n_leaves // fanout)))
    read_runs, count_runs = tf.read_runs_into, tf.count_runs
    log = {"pages": []}

    def record(firsts, counts):
        for f, c in zip(firsts, counts):
            log["pages"].extend(range(int(f), int(f) + int(c)))

    def record_runs(firsts, counts, out):
        record(firsts, counts)
        return read_runs(firsts, counts, out)

    def record_counted(firsts, counts):
        record(firsts, counts)
        return count_runs(firsts, counts)

    tf.read_runs_into, tf.count_runs = record_runs, record_counted
    per_query = []
    dirs = 0
    try:
        for row in q:
            log["pages"] = []
            D, I, st = index.search(row, k, return_stats=True, threads=1)
            per_query.append((D, I, st, list(log["pages"])))
            dirs += sum(p in dir_pages for p in log["pages"]) - searcher.m  # m in the descent
    finally:
        tf.read_runs_into, tf.count_runs = read_runs, count_runs
    return per_query, dirs


def test_tall_trees_have_three_levels_and_find_the_neighbours(tall, oracle):
    x, q, path = tall
    with lshdisk.open(path) as index:
        assert index.info()["structure"]["height"] == 3
        D, I = index.search(q, K)
    gt_d, _ = oracle.exact_knn(x, q, K)
    assert recall_at_k(D, gt_d.astype(np.float32), K) >= 0.85
    np.testing.assert_allclose(D, oracle.true_distances(x, q, I), rtol=1e-5)


def test_every_tree_page_is_read_once_per_query_and_leaves_are_contiguous(tall):
    x, q, path = tall
    with lshdisk.open(path) as index:
        searcher = index._searcher
        per_query, dirs = _recorded_search(index, q, K)
        tinfo = searcher.trees.tinfo.copy()
    vec_pages_per_point = 1  # 8 float32 coordinates: a point never spans two pages
    assert dirs > 0, "no query crossed into another directory node"
    for D, I, st, pages in per_query:
        assert len(pages) == len(set(pages)), "a tree page was read twice in one query"
        pages = np.asarray(pages)
        for first_leaf, n_leaves, first_dir, fanout in tinfo:
            leaves = np.sort(pages[(pages >= first_leaf) & (pages < first_leaf + n_leaves)])
            assert leaves.size >= 1
            assert leaves[-1] - leaves[0] + 1 == leaves.size, "the leaves read are not one range"
        # Page reads of the query = its tree pages + its candidates' vector pages.
        assert len(pages) < st.page_reads[0] <= len(pages) + vec_pages_per_point * st.candidates[0]


def test_buffer_pool_path_gives_the_same_answers_and_accesses(tall):
    x, q, path = tall
    with lshdisk.open(path) as index:
        D0, I0, s0 = index.search(q, K, return_stats=True)
    with lshdisk.open(path, cache_bytes=1 << 30) as index:
        D1, I1, s1 = index.search(q, K, return_stats=True)
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_array_equal(D0, D1)
    np.testing.assert_array_equal(s0.page_reads, s1.page_reads + s1.cache_hits)


def test_cap_reached_mid_round_reads_no_page_beyond_the_last_scanned(tall):
    """With k = 1 and beta chosen so that T2 stops the search, the read-ahead must stop short
    of the cap: the pages read equal those of the same search with one leaf per read."""
    x, q, path = tall
    with lshdisk.open(path) as index:
        batched, _ = _recorded_search(index, q[:10], 1)
        searcher = index._searcher
        saved = searcher._run_pages
        searcher._run_pages = 1  # one page per plan: nothing can be read ahead
        try:
            single, _ = _recorded_search(index, q[:10], 1)
        finally:
            searcher._run_pages = saved
    for (D0, I0, s0, p0), (D1, I1, s1, p1) in zip(batched, single):
        np.testing.assert_array_equal(I0, I1)
        assert sorted(p0) == sorted(p1)
        assert s0.page_reads[0] == s1.page_reads[0]


def _nums(n_cands, cap, max_count):
    nums = np.zeros(4, dtype=np.int64)
    nums[N_CANDS], nums[CAP], nums[MAX_COUNT] = n_cands, cap, max_count
    return nums


def test_safe_tables_counts_only_ids_that_can_still_reach_l():
    l, floor = 10, 2
    reached = np.zeros(l + 1, dtype=np.int64)
    reached[2:6] = [50, 40, 30, 20]  # ids that reached 2, 3, 4, 5 collisions; none more
    # Largest count 5: 4 more tables cannot promote anyone, whatever the room.
    assert safe_tables(_nums(0, 1, 5), l, 20, reached, floor) == 4
    assert safe_tables(_nums(0, 1, 5), l, 3, reached, floor) == 3
    # With room for 25 new candidates, g tables promote at most reached[l - g] ids:
    # g = 5 -> 20 < 25, g = 6 -> 30 >= 25.
    assert safe_tables(_nums(0, 25, 5), l, 20, reached, floor) == 5
    # reached is cumulative: 6 ids reached 7, 5 reached 8, 3 reached 9, 2 reached 10 (the 2
    # candidates so far).
    reached[6:11] = [8, 6, 5, 3, 2]
    assert safe_tables(_nums(2, 4, 10), l, 20, reached, floor) == 1  # room 2: 3-2 < 2, 5-2 >= 2
    assert safe_tables(_nums(2, 7, 10), l, 20, reached, floor) == 3  # room 5: 6-2 < 5, 8-2 >= 5
    assert safe_tables(_nums(2, 3, 10), l, 20, reached, floor) == 0  # room 1: 3-2 >= 1
    # Below the tracked floor no bound is known: stop there.
    assert safe_tables(_nums(2, 1000, 10), l, 20, reached, floor) == l - floor


@pytest.mark.parametrize("capacity", [1, 64, N_TALL])
def test_counts_are_zero_after_each_query_whether_or_not_touched_ids_overflow(tall, capacity):
    """The scan lists the ids it touches until the list is full, then the reset zeroes every
    count: either way the next query starts from zero and gets the same answers."""
    x, q, path = tall
    with lshdisk.open(path) as index:
        D0, I0, s0 = index.search(q, K, return_stats=True, threads=1)
    with lshdisk.open(path) as index:
        searcher = index._searcher
        searcher.counting = searcher.counting._replace(
            touched=np.empty(capacity, dtype=np.int64))
        for i in range(q.shape[0]):
            D, I, st = index.search(q[i], K, return_stats=True, threads=1)
            assert not searcher.counting.counts.any()
            np.testing.assert_array_equal(I, I0[i:i + 1])
            np.testing.assert_array_equal(D, D0[i:i + 1])
            assert st.page_reads[0] == s0.page_reads[i]


def test_uint16_counts_give_the_same_search_as_uint8(tall):
    """Counts are uint8 when m <= 255 (a point collides once per table at most), else uint16:
    the scan gives the same answers and page reads with either."""
    x, q, path = tall
    with lshdisk.open(path) as index:
        searcher = index._searcher
        assert searcher.counting.counts.dtype == np.uint8
        D0, I0, s0 = index.search(q, K, return_stats=True, threads=1)
        searcher.counting = searcher.counting._replace(
            counts=np.zeros(x.shape[0], dtype=np.uint16))
        D1, I1, s1 = index.search(q, K, return_stats=True, threads=1)
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_array_equal(D0, D1)
    np.testing.assert_array_equal(s0.page_reads, s1.page_reads)


@pytest.mark.parametrize("k", [1, K])
def test_the_compiled_round_reads_what_the_round_through_page_file_methods_reads(tall, k):
    """The compiled round (pages read in the kernel, counted after it) and the same loop
    reading through the page file: the same pages in the same order, answers and counts."""
    x, q, path = tall
    with lshdisk.open(path) as index:
        searcher = index._searcher
        compiled, dirs0 = _recorded_search(index, q, k)
        searcher.scan_round = lambda radius_limit=None: searcher._scan_round_here()
        here, dirs1 = _recorded_search(index, q, k)
    assert dirs0 == dirs1 > 0
    for (D0, I0, s0, p0), (D1, I1, s1, p1) in zip(compiled, here):
        assert p0 == p1
        np.testing.assert_array_equal(I0, I1)
        np.testing.assert_array_equal(D0, D1)
        for name in ("page_reads", "seeks", "bytes_read", "candidates", "rounds"):
            np.testing.assert_array_equal(s0[name], s1[name])


@pytest.mark.parametrize("where", ["descent", "round"])
def test_a_damaged_page_read_by_the_compiled_descent_or_round_raises(tall, tmp_path, where,
                                                                     flip_byte):
    import shutil
    from storage.errors import CorruptPageError
    x, q, path = tall
    copy = tmp_path / "damaged"
    shutil.copytree(path, copy)
    with lshdisk.open(copy) as index:
        m = index._searcher.m
        (_, _, _, pages), = _recorded_search(index, q[:1], K)[0]
    # The descent reads a root, a directory node and a leaf per tree, then the rounds.
    victim = pages[m + 3] if where == "descent" else pages[3 * m + 5]
    flip_byte(copy / "trees.pages", victim * 512 + 100)
    with lshdisk.open(copy) as index:
        with pytest.raises(CorruptPageError, match=f"page {victim} "):
            index.search(q[0], K, threads=1)


def test_a_full_run_log_is_counted_and_the_round_goes_on(tall):
    from storage import RunLog
    x, q, path = tall
    with lshdisk.open(path) as index:
        D0, I0, s0 = index.search(q, K, return_stats=True, threads=1)
        size = 3 * index._searcher.m + 2  # room for one batch: LOG_FULL after each
        z = np.zeros(size, np.int64)
        index._searcher._log = RunLog(z, z.copy(), np.zeros(1, np.int64))
        D1, I1, s1 = index.search(q, K, return_stats=True, threads=1)
    np.testing.assert_array_equal(I0, I1)
    for name in ("page_reads", "seeks", "candidates"):
        np.testing.assert_array_equal(s0[name], s1[name])
