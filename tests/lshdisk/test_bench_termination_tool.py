"""tools/bench_termination.py: the stop rules it replays from a permissive run, by hand and
against real searches of a small clustered index."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import lshdisk
from lshdisk.evaluate import recall_at_k
from lshdisk.termination import PageBudget, Patience

TOOLS = Path(__file__).resolve().parents[2] / "tools"
K = 10


@pytest.fixture(scope="module")
def tool():
    sys.path.insert(0, str(TOOLS))
    try:
        spec = importlib.util.spec_from_file_location("bench_termination",
                                                      TOOLS / "bench_termination.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(TOOLS))
    return module


def test_stop_rules_by_hand(tool):
    verified = np.array([0, 3, 10, 12, 12, 12])
    dk = np.array([math.inf, math.inf, 5.0, 4.0, 4.0, 4.0])
    assert tool.t1_stop(verified, dk, [1, 2, 4, 8, 16, 32], K) == 3
    assert tool.t1_stop(verified, dk, [0.1] * 6, K) == 5  # never: the last round
    assert tool.page_stop([10, 20, 40], 20) == 1
    assert tool.page_stop([10, 20, 40], 41) == 2
    # the top-k changes in rounds 1, 2 (k reached) and 3 (k-th fell), not 4 or 5
    assert tool.patience_stop(verified, dk, K, 1) == 4
    assert tool.patience_stop(verified, dk, K, 2) == 5
    assert tool.patience_stop(verified, dk, K, 9) == 5


def test_cheapest_is_the_first_knob_reaching_the_goal(tool):
    recall = {1: 0.5, 2: 0.7, 3: 0.9, 4: 0.9, 5: 1.0}
    assert tool.cheapest([1, 2, 3, 4, 5], recall.get, 0.9) == 3
    assert tool.cheapest([1, 2, 3, 4, 5], recall.get, 0.4) == 1
    assert tool.cheapest([1, 2, 3], recall.get, 0.95) is None


def test_fixed_start_allows_the_overshoot_share(tool):
    labels = np.array([-1, 0, 0, 1, 1, 1, 1, 1, 2, 2] * 2)  # 20 queries, 2 below 0
    assert tool.fixed_start_steps(labels, overshoot=0.1) == 0
    assert tool.fixed_start_steps(labels, overshoot=0.0) == -1
    assert tool.fixed_start_steps(labels, overshoot=0.3) == 1


def test_replayed_recall_matches_real_searches(tool, clustered, clustered_index_dir):
    """What the tool replays from one permissive run is what the capped and round-stopped
    searches return."""
    q, gt = clustered.q[:40], clustered.gt_d[:40]
    with lshdisk.open(clustered_index_dir) as index:
        cap = 4 * (K + int(math.ceil(index.params.beta * index.n)))
        perm = tool.Permissive(index, q, gt, K, cap, threads=1)
        budgets = perm.page_budgets()
        for search, replayed in (
                (dict(termination="budget", max_candidates=25), perm.cap_recall(25)),
                (dict(termination=PageBudget(int(budgets[len(budgets) // 2])),
                      max_candidates=cap), perm.page_recall(int(budgets[len(budgets) // 2]))),
                (dict(termination=Patience(1), max_candidates=cap), perm.patience_recall(1)),
                (dict(termination="paper", max_candidates=cap),
                 float(np.mean(perm.recall_at_rounds(perm.t1_stops()))))):
            D, _ = index.search(q, K, threads=1, **search)
            assert recall_at_k(D, gt, K) == pytest.approx(replayed, abs=1e-12), search
