"""Termination policies: the papers' T1 + T2, the candidate budget and the baselines, against
the per-round traces."""

import math

import numpy as np
import pytest

import lshdisk
from lshdisk.search import RoundView, SearchOptions
from lshdisk.termination import (CandidateBudget, PageBudget, PaperTermination, Patience,
                                 paper_cap, termination_policy)

K = 10


def _view(**kw):
    base = dict(round=3, k=K, cap=110, c=2.0, radius=1.0, c_radius=2.0, n_candidates=12,
                n_verified=12, kth_distance=1.5, entries=100, page_reads=50, stale_rounds=0)
    base.update(kw)
    return RoundView(**base)


def test_t1_and_its_radius_limit_by_hand():
    p = PaperTermination()
    assert p.should_stop(_view(kth_distance=2.0, c_radius=2.0))      # k-th within c R
    assert not p.should_stop(_view(kth_distance=2.01, c_radius=2.0))
    assert not p.should_stop(_view(n_verified=9, kth_distance=0.1))  # fewer than k
    assert p.radius_limit(_view(kth_distance=3.0, c=2.0)) == 1.5
    assert p.radius_limit(_view(n_verified=9)) == math.inf
    assert p.candidate_cap(10, 60000, 100 / 60000) == 110 == paper_cap(10, 60000, 100 / 60000)


def test_baseline_policies_by_hand():
    assert not CandidateBudget().should_stop(_view(kth_distance=0.0))
    b = PageBudget(50)
    assert b.should_stop(_view(page_reads=50)) and not b.should_stop(_view(page_reads=49))
    pat = Patience(2)
    assert pat.should_stop(_view(stale_rounds=2)) and not pat.should_stop(_view(stale_rounds=1))
    assert not pat.should_stop(_view(stale_rounds=5, n_verified=9))
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError):
            PageBudget(bad)
        with pytest.raises(ValueError):
            Patience(bad)
    with pytest.raises(ValueError, match="termination must be one of"):
        termination_policy("sometimes")
    with pytest.raises(TypeError, match="termination must be a policy"):
        SearchOptions(k=K, termination=object())


@pytest.fixture(scope="module")
def index_and_queries(clustered, clustered_index_dir):
    with lshdisk.open(clustered_index_dir) as index:
        yield index, clustered.q[:40]


def test_a_page_budget_stops_after_the_round_that_reaches_it(index_and_queries):
    index, q = index_and_queries
    _, _, full, traces = index.search(q, K, return_stats=True, trace=True,
                                      termination="budget", threads=1)
    budget = int(np.median(full.page_reads) // 2)
    _, _, st = index.search(q, K, return_stats=True, termination=PageBudget(budget), threads=1)
    for i, tr in enumerate(traces):
        reached = np.flatnonzero(tr["page_reads"] >= budget)
        want = tr["page_reads"][reached[0]] if reached.size else tr["page_reads"][-1]
        assert st.page_reads[i] == want  # the same rounds, cut where the budget is reached


def test_patience_stops_after_rounds_without_a_top_k_change(index_and_queries):
    """Patience(n) stops at the first round with k candidates whose top-k has not changed
    for n rounds; the permissive run's traces say where that is (dk falls when the top-k
    changes, and the first k candidates change it)."""
    index, q = index_and_queries
    _, _, traces = index.search(q, K, trace=True, termination="budget", threads=1)
    for n in (1, 3):
        _, _, st = index.search(q, K, return_stats=True, termination=Patience(n), threads=1)
        for i, tr in enumerate(traces):
            last, stop = 0, len(tr) - 1
            for r in range(len(tr)):
                dk_before = tr["dk"][r - 1] if r else np.inf
                if tr["verified"][r] > (tr["verified"][r - 1] if r else 0) and (
                        (tr["verified"][r - 1] if r else 0) < K or tr["dk"][r] < dk_before):
                    last = r
                if tr["verified"][r] >= K and r - last >= n:
                    stop = r
                    break
            assert st.rounds[i] == stop + 1, (n, i)


def test_max_candidates_caps_every_method(clustered, clustered_index_dir):
    with lshdisk.open(clustered_index_dir) as index:
        _, _, st = index.search(clustered.q[:20], K, return_stats=True, max_candidates=25,
                                termination="budget")
    assert np.all(st.candidates == 25)


class _CapAfterFirstCandidates(CandidateBudget):
    """Verify 3 more candidates after the first round that finds any (a budget predicted
    after a warm-up, in miniature)."""

    name = "test-cap"

    def cap_after(self, view):
        return view.n_candidates + 3 if view.n_candidates else None


def test_a_policy_can_set_the_cap_between_rounds(index_and_queries):
    index, q = index_and_queries
    _, _, traces = index.search(q, K, trace=True, termination="budget", threads=1)
    _, _, st, tr2 = index.search(q, K, return_stats=True, trace=True,
                                 termination=_CapAfterFirstCandidates(), threads=1)
    for i, tr in enumerate(traces):
        first = int(np.flatnonzero(tr["candidates"] > 0)[0])
        want = min(int(tr["candidates"][first]) + 3, int(tr["candidates"][-1]))
        assert st.candidates[i] == want
        # the rounds up to the warm-up are the permissive run's, page for page
        np.testing.assert_array_equal(tr2[i]["page_reads"][:first + 1],
                                      tr["page_reads"][:first + 1])
