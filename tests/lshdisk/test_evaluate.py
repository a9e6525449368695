"""Tests of lshdisk.evaluate on hand-made arrays with known answers, and on an index."""

import numpy as np
import pytest

import lshdisk
from lshdisk.evaluate import evaluate, overall_ratio, recall_at_k

GT = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
               [2.0, 2.0, 4.0, 4.0, 6.0, 6.0, 8.0, 8.0, 10.0, 10.0]])


def test_evaluate_exact_results_score_one():
    assert overall_ratio(GT, GT, 10) == 1.0
    assert recall_at_k(GT, GT, 10) == 1.0
    for k in (1, 3, 10):
        assert overall_ratio(GT, GT, k) == 1.0
        assert recall_at_k(GT, GT, k) == 1.0


def test_evaluate_one_rank_ten_percent_worse():
    D = GT.copy()
    D[0, 9] = 11.0  # the 10th result of query 0 is 10 % farther than the true 10th
    # Ratio: the mean of 20 rank ratios, one of them 1.1.
    assert overall_ratio(D, GT, 10) == pytest.approx((19 + 1.1) / 20)
    # Recall: query 0 has 9 of 10 within the true 10th distance, query 1 all 10.
    assert recall_at_k(D, GT, 10) == pytest.approx((0.9 + 1.0) / 2)
    # Ranks 1..9 are unaffected.
    assert overall_ratio(D, GT, 9) == 1.0 and recall_at_k(D, GT, 9) == 1.0


def test_evaluate_recall_counts_ties_at_the_kth_distance():
    # Two true neighbours at the k-th distance 4: either one is a hit.
    D = np.array([[2.0, 2.0, 4.0]])
    gt = np.array([[2.0, 2.0, 4.0, 4.0]])
    assert recall_at_k(D, gt, 3) == 1.0
    # Recall compares with the k-th distance only: a worse 2nd result (4 instead of 2) is
    # still a hit, while the overall ratio sees it.
    D_worse = np.array([[2.0, 4.0, 4.0]])
    assert recall_at_k(D_worse, gt, 3) == 1.0
    assert overall_ratio(D_worse, gt, 3) == pytest.approx((1.0 + 2.0 + 1.0) / 3)


def test_evaluate_recall_with_float32_rounding_is_a_hit():
    gt = np.array([[0.1, 0.2, 0.3]])
    D = gt.astype(np.float32)  # the index returns float32
    assert recall_at_k(D, gt, 3) == 1.0
    assert overall_ratio(D, gt, 3) == pytest.approx(1.0, abs=1e-6)


def test_evaluate_missing_results_give_infinite_ratio_and_no_recall():
    D = GT.copy()
    D[1, 8:] = np.inf  # query 1 returned only 8 points
    assert overall_ratio(D, GT, 10) == np.inf
    assert recall_at_k(D, GT, 10) == pytest.approx((1.0 + 0.8) / 2)
    assert overall_ratio(D, GT, 8) == 1.0


def test_evaluate_zero_true_distances_as_documented():
    gt = np.array([[0.0, 1.0], [0.0, 2.0]])
    # Returned 0 where the truth is 0: that rank counts as ratio 1.
    assert overall_ratio(np.array([[0.0, 2.0], [0.0, 2.0]]), gt, 2) == pytest.approx(
        (1.0 + 2.0 + 1.0 + 1.0) / 4)
    # Returned > 0 where the truth is 0: that rank is left out (its ratio is undefined).
    assert overall_ratio(np.array([[0.5, 2.0], [0.0, 2.0]]), gt, 2) == pytest.approx(
        (2.0 + 1.0 + 1.0) / 3)
    # Every true distance 0 and every returned one not: nothing to average, 1.0.
    assert overall_ratio(np.array([[1.0]]), np.array([[0.0]]), 1) == 1.0
    # Recall at a true k-th distance of 0: only exact duplicates are hits.
    assert recall_at_k(np.array([[0.0, 0.0]]), np.array([[0.0, 0.0]]), 2) == 1.0
    assert recall_at_k(np.array([[0.0, 0.5]]), np.array([[0.0, 0.0]]), 2) == 0.5


def test_evaluate_uses_only_the_first_k_columns():
    D = np.hstack([GT[:, :5], np.full((2, 5), 99.0)])
    assert overall_ratio(D, GT, 5) == 1.0
    assert recall_at_k(D, GT, 5) == 1.0
    assert overall_ratio(D, GT, 6) > 1.0


@pytest.mark.parametrize("func", [overall_ratio, recall_at_k])
def test_evaluate_k_beyond_columns_is_a_value_error(func):
    with pytest.raises(ValueError, match=r"k = 11 exceeds"):
        func(GT, GT, 11)
    with pytest.raises(ValueError, match=r"k = 6 exceeds"):
        func(GT[:, :5], GT, 6)  # results narrower than k
    with pytest.raises(ValueError, match=r"k must be >= 1"):
        func(GT, GT, 0)
    with pytest.raises(ValueError, match=r"ground truth has 2 queries, results have 1"):
        func(GT[:1], GT, 3)


def test_evaluate_rows_from_an_index(clustered, clustered_index_dir, clustered_results):
    D0, _, S0 = clustered_results
    with lshdisk.open(clustered_index_dir) as index:
        rows = evaluate(index, clustered.q, clustered.gt_d, [1, 10])
    assert [r["k"] for r in rows] == [1, 10]
    assert set(rows[0]) == {"algorithm", "k", "ratio", "recall", "page_reads", "seeks",
                            "mb_read", "candidates", "cpu_ms"}
    r10 = rows[1]
    assert r10["algorithm"] == "qalsh"
    assert r10["ratio"] == pytest.approx(overall_ratio(D0, clustered.gt_d, 10))
    assert r10["recall"] == pytest.approx(recall_at_k(D0, clustered.gt_d, 10))
    assert r10["page_reads"] == pytest.approx(S0.page_reads.mean())
    assert r10["mb_read"] == pytest.approx(S0.bytes_read.mean() / 1e6)
    assert r10["candidates"] == pytest.approx(S0.candidates.mean())
    assert rows[0]["page_reads"] <= r10["page_reads"]
    with lshdisk.open(clustered_index_dir) as index:
        with pytest.raises(ValueError, match="exceeds"):
            evaluate(index, clustered.q, clustered.gt_d, [11])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_evaluate_padded_results_against_padded_ground_truth(tmp_path):
    # A data set smaller than k: compute_groundtruth pads with +inf / -1, and so does search.
    x = np.random.default_rng(0).random((5, 3), dtype=np.float32)
    gt_d, gt_i = lshdisk.compute_groundtruth(x, x[:2], 8)
    assert np.isinf(gt_d[:, 5:]).all() and (gt_i[:, 5:] == -1).all()
    with lshdisk.build(x, tmp_path / "five", memory_limit="16MiB") as index:
        D, I = index.search(x[:2], 8)
    np.testing.assert_array_equal(I, gt_i)  # the search is exact here
    assert recall_at_k(D, gt_d, 8) == 1.0
    assert overall_ratio(gt_d, gt_d, 8) == 1.0  # exact results score 1, not NaN
    assert overall_ratio(D, gt_d, 8) == 1.0


def test_evaluate_missing_results_at_zero_true_distance_are_infinite():
    gt = np.array([[0.0, 0.0], [1.0, 2.0]])  # query 0 has two exact duplicates in the data
    D = np.array([[np.inf, np.inf], [1.0, 2.0]])  # ... and the search returned nothing
    assert overall_ratio(D, gt, 2) == np.inf


def test_evaluate_reports_progress_over_all_k(clustered, clustered_index_dir):
    calls = []
    with lshdisk.open(clustered_index_dir) as index:
        evaluate(index, clustered.q[:4], clustered.gt_d[:4], [1, 5],
                 progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 8) for i in range(1, 9)]


def test_evaluate_groundtruth_check_accepts_its_own_and_refuses_others(clustered,
                                                                      clustered_index_dir):
    from lshdisk.evaluate import check_groundtruth
    q, gt_d, gt_i = clustered.q, clustered.gt_d.astype(np.float32), clustered.gt_i
    with lshdisk.open(clustered_index_dir) as index:
        check_groundtruth(index, q, gt_d, gt_i)
        before = index.counter.snapshot()
        cases = [
            (q[:10], gt_d, gt_i, "it has 100 queries, the query file 10"),
            (q, gt_d, np.where(gt_i == gt_i[3, 0], index.n, gt_i), f"names point {index.n}"),
            (q, gt_d * np.float32(0.66), gt_i, "is at distance"),
            (q[::-1].copy(), gt_d, gt_i, "is at distance"),  # the ground truth of other queries
        ]
        for queries, d, i, needle in cases:
            with pytest.raises(lshdisk.GroundTruthMismatchError, match=needle) as info:
                check_groundtruth(index, queries, d, i, label="gt.bin")
            text = str(info.value)
            assert text.startswith("gt.bin: this ground truth does not belong to these "
                                   "queries/this data") and "\n" not in text
        assert index.counter.snapshot() == before  # the index's own counters are untouched
