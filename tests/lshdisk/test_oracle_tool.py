"""tools/oracle_termination.py: its computations on hand-made traces with hand-computed answers,
and one analysis of a small clustered index checked for internal consistency."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import lshdisk
from lshdisk.evaluate import recall_at_k
from lshdisk.search import TRACE_DTYPE
from lshdisk.synthetic import clustered_chunks

TOOL = Path(__file__).resolve().parents[2] / "tools" / "oracle_termination.py"
K = 4
#: One query's verified candidates in verification order (true 4th distance 1.0); 1.0000005
#: is a hit within recall_at_k's tolerance. Hits: 0.5, 1.0, 0.9, 0.1, 1.0000005.
DISTS = np.array([0.5, 2.0, 1.0, 3.0, 0.9, 0.1, 1.0000005, 5.0], dtype=np.float32)
PREFIX_RECALL = [0, 0.25, 0.25, 0.5, 0.5, 0.75, 1, 1, 1]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("oracle_termination", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hand_trace(verified, pages):
    trace = np.zeros(len(verified), dtype=TRACE_DTYPE)
    trace["round"] = np.arange(len(verified))
    trace["verified"] = trace["candidates"] = verified
    trace["page_reads"] = trace["seeks"] = pages
    trace["bytes_read"] = np.asarray(pages) * 4096
    return trace


def test_prefix_recall_counts_hits_within_the_kth_distance_as_recall_at_k_does(tool):
    got = tool.prefix_recalls(DISTS, 1.0, K)
    np.testing.assert_allclose(got, PREFIX_RECALL)
    gt = np.array([[0.1, 0.5, 0.9, 1.0]])
    for j in range(DISTS.shape[0] + 1):
        answer = np.full((1, K), np.inf)
        top = np.sort(DISTS[:j])[:K]
        answer[0, :top.shape[0]] = top
        assert got[j] == pytest.approx(recall_at_k(answer, gt, K))


def test_first_round_reaching_a_target_and_what_it_spent(tool):
    trace = hand_trace([0, 2, 5, 8], [10, 20, 35, 60])
    rr = tool.round_recalls(trace, DISTS, 1.0, K)
    np.testing.assert_allclose(rr, [0, 0.25, 0.75, 1.0])
    assert [tool.first_reaching(rr, t) for t in (0.25, 0.5, 0.75, 0.8, 1.0, 1.01)] == \
        [1, 2, 2, 3, 3, -1]
    assert tool.oracle_stop(rr, 0.8) == (3, True)
    assert tool.oracle_stop(rr, 1.01) == (3, False)  # never: charged where its final recall came
    assert tool.oracle_stop(np.array([0, 0.5, 0.5]), 0.9) == (1, False)
    assert tool.spent_at(trace, 2) == {"pages": 35, "seeks": 35, "bytes": 35 * 4096,
                                       "rounds": 3, "candidates": 5}


COSTS = [np.array([10, 20, 35, 60]), np.array([15, 40])]
RECALLS = [np.array([0, 0.25, 0.75, 1.0]), np.array([0.5, 1.0])]


def test_a_fixed_budget_keeps_each_query_at_its_last_step_within_it(tool):
    budgets = np.array([5, 10, 15, 20, 35, 40, 60])
    recall, cost = tool.fixed_budget_recall(COSTS, RECALLS, budgets)
    np.testing.assert_allclose(recall, [0, 0, 0.25, 0.375, 0.625, 0.875, 1.0])
    np.testing.assert_allclose(cost, [0, 5, 12.5, 17.5, 25, 37.5, 50])
    assert tool.smallest_budget(budgets, recall, 0.6) == 4
    assert tool.smallest_budget(budgets, recall, 0.9) == 6
    assert tool.smallest_budget(budgets, recall, 1.01) == -1


@pytest.mark.parametrize("target, mean_cost, mean_recall, stops", [
    (0.2, 12.5, 0.25, [0, 0]),       # the cheapest stops already reach it
    (0.5, 25.0, 0.625, [2, 0]),      # 50 pages: (35, 0.75) + (15, 0.5) beats (10, 0) + (40, 1)
    (0.75, 37.5, 0.875, [2, 1]),     # 75 pages, as (60, 1) + (15, 0.5), but more recall
    (1.0, 50.0, 1.0, [3, 1]),
])
def test_mean_recall_oracle_on_hand_computed_curves(tool, target, mean_cost, mean_recall, stops):
    got = tool.mean_recall_oracle(COSTS, RECALLS, target, K)
    assert got[0] == pytest.approx(mean_cost)
    assert got[1] == pytest.approx(mean_recall)
    assert got[2] == stops


def test_mean_recall_oracle_refuses_an_unreachable_target(tool):
    assert tool.mean_recall_oracle(COSTS, RECALLS, 1.01, K) is None


def test_mean_recall_oracle_is_the_brute_force_optimum(tool):
    rng = np.random.default_rng(3)
    costs = [np.cumsum(rng.integers(1, 20, size=s)) for s in (3, 5, 4)]
    recalls = [np.sort(rng.integers(0, K + 1, size=c.shape[0])) / K for c in costs]
    frontier = tool.recall_frontier(costs, recalls, K)
    for target in np.arange(0, 1.01, 0.05):
        best = None
        for stops in np.ndindex(*(c.shape[0] for c in costs)):
            recall = np.mean([r[j] for r, j in zip(recalls, stops)])
            cost = np.mean([c[j] for c, j in zip(costs, stops)])
            if recall >= target - 1e-9 and (best is None or cost < best):
                best = cost
        got = tool.mean_recall_oracle(costs, recalls, target, K, frontier)
        assert (got is None) == (best is None)
        if got is not None:
            assert got[0] == pytest.approx(best)
            assert got[1] >= target - 1e-9
            assert got[0] == pytest.approx(np.mean([c[j] for c, j in zip(costs, got[2])]))


def test_distribution_of_values(tool):
    d = tool.distribution(np.arange(101))
    assert (d["p50"], d["p90"], d["p99"], d["max"], d["mean"]) == (50, 90, 99, 100, 50)
    assert np.isnan(tool.distribution([])["p50"])


@pytest.fixture(scope="module")
def analysis(tool, tmp_path_factory):
    x = next(clustered_chunks(3000, 16, n_clusters=30, seed=5, stream=0))
    q = next(clustered_chunks(24, 16, n_clusters=30, seed=5, stream=1))
    sq = ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(axis=2)
    gt_D = np.sqrt(np.sort(sq, axis=1)[:, :10]).astype(np.float32)
    index = lshdisk.build(x, tmp_path_factory.mktemp("oracle") / "index", algorithm="qalsh",
                          memory_limit="16MiB", seed=0)
    with index:
        res = tool.analyse(index, q, gt_D, 10, 400, log=lambda line: None)
        D, _ = index.search(q, 10)
    return res, recall_at_k(D, gt_D, 10), tool.format_report("clustered qalsh", res)


def test_analysis_is_consistent_with_itself_and_with_recall_at_k(analysis):
    res, paper_recall, report = analysis
    rows = {row["target"]: row for row in res["targets"]}
    nq = res["n_queries"]
    assert np.mean(res["paper"]["recall"]) == pytest.approx(paper_recall)
    assert res["prefix_mismatches"] == 0
    # A query never reaches 1.0 exactly when its permissive answer's recall is below 1.
    short = [i for i, r in enumerate(res["permissive"]["recall"]) if r < 1.0 - 1e-9]
    assert rows[1.0]["never_queries"] == short
    for low, high in zip((0.8, 0.9, 0.95), (0.9, 0.95, 1.0)):
        assert rows[low]["reached"] >= rows[high]["reached"]
        for field in ("pages", "rounds", "candidates"):
            assert np.all(np.array(rows[high]["per_query"][field]) >=
                          np.array(rows[low]["per_query"][field]))
        assert np.all(np.array(rows[high]["candidate_oracle"]["per_query_pages"]) >=
                      np.array(rows[low]["candidate_oracle"]["per_query_pages"]))
    for row in rows.values():
        assert row["reached"] + row["never"] == nq
        # Stopping inside a round never costs more than finishing it.
        assert row["candidate_oracle"]["mean_pages"] <= row["round_oracle"]["mean_pages"]
        # A fixed budget is one of the mean-recall oracle's choices.
        for fixed, best in ((row["fixed_candidates_at_target"], row["mean_recall_oracle_caps"]),
                            (row["fixed_pages_at_target"], row["mean_recall_oracle_rounds"])):
            if fixed is not None:
                assert best["mean_pages"] <= fixed["mean_pages"] + 1e-9
        fixed = row["fixed_candidates_at_target"]
        if fixed is not None:  # a capped run verifies the prefix the permissive run predicts
            assert fixed["mean_recall"] == pytest.approx(fixed["predicted_recall"])
    curve = res["page_budget_curve"]
    assert np.all(np.diff(curve["mean_recall"]) >= 0)
    assert np.all(np.diff(curve["mean_pages"]) >= 0)
    assert curve["mean_recall"][-1] == pytest.approx(np.mean(res["permissive"]["recall"]))
    assert all(f"\n{t:>6} " in report for t in ("0.8", "0.9", "0.95", "1.0", "T1/T2"))
