#!/usr/bin/env python3
"""Oracle early termination: the pages each query needs to reach a recall target, against T1/T2.

Usage: python tools/oracle_termination.py [--data mnist|pydocs] [--data-dir DIR]
       [--algorithms qalsh,c2lsh] [-k 10] [--cap N] [--queries N] [--memory 1GiB]
       [--json FILE]

For each algorithm, one index of the dataset is built on disk (in a temporary folder removed
at the end) and searched three ways:

1. **T1/T2** (``termination="paper"``, the default policy): per query, the pages read and the
   recall@k reached; the baseline.
2. **Permissive** (``termination="budget"``: T1 off, the cap raised to ``--cap``), with
   per-round traces and every verified candidate in verification order. From them, per query
   and round, recall@k (the share of the k nearest verified so far whose distance is at most
   the true k-th distance, ties counted as hits exactly as
   :func:`lshdisk.evaluate.recall_at_k` counts them), and for each target (0.8, 0.9, 0.95,
   1.0) the first round reaching it, with the pages, seeks, bytes, rounds and candidates spent
   by then. This is the **round oracle**: a rule that stops after the right round.
3. **Capped re-runs**: a search capped at ``max_candidates = C`` verifies exactly the first C
   candidates of the permissive run (checked here, per query) and stops inside the round.
   Re-running each query capped at the candidates it needs gives the **candidate oracle**'s
   exact pages: a rule that may stop in mid-round, as T2 does. Rounds are coarse (C2LSH has
   about 4 on Mnist, its first candidates appearing in round 2), so the round oracle can cost
   more than T1/T2, whose cap stops in mid-round.

Each oracle is compared, at the same mean recall, with T1/T2 and with the best fixed budget
applied to every query: a page budget B at round granularity (each query keeps the recall of
its last round with at most B pages read; the smallest B whose mean recall reaches the
target, "B@target", or the oracle's own mean recall, "B@oracle"), and a candidate budget C
(``max_candidates``, the knob every method has; "C@target", "C@oracle"; its pages measured by
one capped run of all queries). A row "T1/T2" asks each query for the recall T1/T2 gave it. A
query that never reaches a target within the permissive run is counted under "never" and, in
the oracles' means, charged the pages at which it first had its final recall (an oracle knows
nothing better is coming).

Stopping every query exactly at the target is not the cheapest way to a *mean* recall: a
fixed budget lets easy queries run past the target and hard ones stop short of it, and can
beat that per-query oracle. The **mean-recall oracle** picks one stop per query so that the
mean recall reaches the target at the least mean pages (exactly, by a dynamic programme over
the queries; see :func:`recall_frontier`), over the rounds (exact costs from the traces) and
over caps (a geometric grid of ``max_candidates`` run on all queries, the fixed budgets'
among them, plus each query's own re-runs). It bounds what a learned stop rule aiming at a
mean recall can save; the per-query oracle bounds a rule that promises each query the
target.

``--cap`` defaults to 100 (k + beta n), 100 times T2's cap (11,000 candidates for k = 10 with
the papers' beta = 100 / n: 18% of Mnist's points, 24% of pydocs'): within it QALSH and
C2LSH reach recall@10 = 1.0 on every Mnist query, and QALSH on 93% of 200 pydocs queries
(20 (k + beta n) left 30% of those short of 1.0). Queries beyond it are reported as "never".

With k = 10, recall takes the values 0, 0.1, ..., 1, so 0.95 and 1.0 ask for the same thing.
Percentiles are numpy's (linear interpolation). Page counts are those of the index with no
buffer pool (every page access is a counted read); ``threads=None`` searches in parallel
without changing any count. The tool holds the traces and candidates in memory, never the
data.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import lshdisk
from lshdisk.evaluate import check_groundtruth

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
DATASETS = ("mnist", "pydocs")
TARGETS = (0.8, 0.9, 0.95, 1.0)
PERCENTILES = (50, 90, 99)
GRID_CAPS = 16  # caps, geometric from k to --cap, of the mean-recall oracle's grid
_EPS = 1e-9  # recall values are multiples of 1/k; compare them with this slack


def hit_threshold(kth):
    """The largest distance counted as a hit: the true k-th distance with the tolerance of
    :func:`lshdisk.evaluate.recall_at_k` (float or ndarray, as given)."""
    return kth * (1.0 + 1e-6) + 1e-12


def prefix_recalls(dists, kth, k):
    """recall@k after each prefix of the verified candidates.

    Parameters
    ----------
    dists : ndarray of float, shape (c,)
        Distances of the verified candidates, in verification order.
    kth : float
        The true k-th nearest distance of the query.
    k : int

    Returns
    -------
    ndarray of float64, shape (c + 1,)
        Entry j: the recall@k of the first j candidates (entry 0 is 0).
    """
    hits = np.zeros(len(dists) + 1, dtype=np.int64)
    hits[1:] = np.cumsum(np.asarray(dists, dtype=np.float64) <= hit_threshold(kth))
    return np.minimum(hits, k) / k


def round_recalls(trace, dists, kth, k):
    """recall@k at the end of each round of a trace (ndarray of float64, shape (rounds,)),
    from the candidates ``dists`` verified in order (the first ``trace["verified"][r]`` by the
    end of round r)."""
    return prefix_recalls(dists, kth, k)[trace["verified"]]


def first_reaching(recalls, target):
    """Index of the first entry of ``recalls`` >= ``target``; -1 if none reaches it."""
    hit = np.flatnonzero(np.asarray(recalls) >= target - _EPS)
    return int(hit[0]) if hit.size else -1


def oracle_stop(recalls, target):
    """(stop, reached): where an oracle stops a query for ``target``: the first entry reaching
    it, else (reached False) the first entry holding the query's final recall."""
    stop = first_reaching(recalls, target)
    if stop >= 0:
        return stop, True
    return first_reaching(recalls, recalls[-1]), False


def spent_at(trace, r):
    """What a query had spent by the end of round r of its trace: a dict of pages, seeks,
    bytes, rounds (r + 1) and candidates (verified)."""
    row = trace[r]
    return {"pages": int(row["page_reads"]), "seeks": int(row["seeks"]),
            "bytes": int(row["bytes_read"]), "rounds": r + 1,
            "candidates": int(row["verified"])}


def fixed_budget_recall(costs, recalls, budgets):
    """Mean recall and mean cost when one budget stops every query.

    Each query keeps the recall of its last step whose cumulative cost is <= the budget
    (recall 0 and cost 0 when even its first step costs more).

    Parameters
    ----------
    costs : sequence of ndarray of int, one per query, nondecreasing
        Cumulative cost at each step (pages per round, or candidates 0..c per prefix).
    recalls : sequence of ndarray of float, aligned with ``costs``
    budgets : ndarray of int, shape (b,)

    Returns
    -------
    mean_recall, mean_cost : ndarray of float64, shape (b,)
    """
    budgets = np.asarray(budgets)
    total_recall = np.zeros(budgets.shape[0])
    total_cost = np.zeros(budgets.shape[0])
    for cost, recall in zip(costs, recalls):
        j = np.searchsorted(cost, budgets, side="right") - 1
        inside = j >= 0
        j = np.maximum(j, 0)
        total_recall += np.where(inside, recall[j], 0.0)
        total_cost += np.where(inside, cost[j], 0)
    n = max(len(costs), 1)
    return total_recall / n, total_cost / n


def smallest_budget(budgets, mean_recalls, target):
    """Index of the smallest budget whose mean recall is >= target (budgets ascending,
    mean recall nondecreasing); -1 if none."""
    return first_reaching(mean_recalls, target)


def recall_frontier(costs, recalls, k):
    """The least total cost of every total recall, one stop per query (exact).

    Recall@k takes the values j / k, so a choice of stops has a total of u recall units; a
    dynamic programme over the queries (a multiple-choice knapsack) gives, for every u, the
    cheapest choice.

    Parameters
    ----------
    costs, recalls : sequence of ndarray, one pair per query, aligned
        The query's possible stops: cumulative cost (pages) and recall@k at each.
    k : int

    Returns
    -------
    best : ndarray of float64, shape (units + 1,)
        ``best[u]``: the least total cost of a choice with exactly u units (+inf: none).
    choices : list of (ndarray of int, ndarray of int, ndarray of int16)
        Per query: its options' units and stop indices, and the option chosen at each total.
    """
    best = np.zeros(1)
    choices = []
    for cost, recall in zip(costs, recalls):
        cost = np.asarray(cost, np.float64)
        units = np.rint(np.asarray(recall, np.float64) * k).astype(np.int64)
        order = np.lexsort((cost, units))  # per unit value, its cheapest stop first
        first = np.ones(order.shape[0], bool)
        first[1:] = units[order][1:] != units[order][:-1]
        stops = order[first]
        new = np.full(best.shape[0] + units.max(), np.inf)
        pick = np.zeros(new.shape[0], np.int16)
        for o, j in enumerate(stops):
            u = units[j]
            cand = best + cost[j]
            better = cand < new[u:u + best.shape[0]]
            new[u:u + best.shape[0]][better] = cand[better]
            pick[u:u + best.shape[0]][better] = o
        best = new
        choices.append((units[stops], stops, pick))
    return best, choices


def mean_recall_oracle(costs, recalls, target, k, frontier=None):
    """One stop per query, chosen to reach a mean recall@k at the least mean cost (exact).

    Parameters
    ----------
    costs, recalls : sequence of ndarray, one pair per query, aligned
        The query's possible stops: cumulative cost (pages) and recall@k at each.
    target : float
        Mean recall to reach.
    k : int
    frontier : tuple, optional
        :func:`recall_frontier` of the same curves, to share it between targets.

    Returns
    -------
    (mean_cost, mean_recall, stops) or None
        ``stops``: per query, the index of its chosen stop. Among the cheapest choices, the
        one with the most recall. None when even the last stops do not reach ``target``.
    """
    best, choices = frontier or recall_frontier(costs, recalls, k)
    n = len(choices)
    need = max(int(np.ceil(target * n * k - 1e-6)), 0)
    if need >= best.shape[0] or not np.isfinite(best[need:]).any():
        return None
    tail = best[need:]
    u = need + int(np.flatnonzero(tail <= tail.min() + 1e-9)[-1])
    total, stops = u, [0] * n
    for q in range(n - 1, -1, -1):
        units, idx, pick = choices[q]
        o = pick[u]
        stops[q] = int(idx[o])
        u -= int(units[o])
    return float(best[total]) / max(n, 1), total / (max(n, 1) * k), stops


def distribution(values):
    """p50, p90, p99, max and mean of a 1-d array (NaN for an empty one), as a dict."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {**{f"p{p}": float("nan") for p in PERCENTILES}, "max": float("nan"),
                "mean": float("nan")}
    return {**{f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES},
            "max": float(values.max()), "mean": float(values.mean())}


def per_query_recall(D, kth):
    """recall@k of each query's answer D (n_queries, k) against the true k-th distances."""
    return np.sum(np.asarray(D, np.float64) <= hit_threshold(kth)[:, None], axis=1) / D.shape[1]


def load(name, data_dir):
    """(source path, read kwargs, queries float32 (nq, d), true distances (nq, K), true ids
    (nq, K)) of a dataset; exits with a message if the folder does not hold it."""
    if name == "mnist":
        sys.path.insert(0, HERE)
        from mnist_data import RAW, load as load_mnist
        ds, queries, gt_D = load_mnist(data_dir)
        _, gt_I = lshdisk.read_groundtruth(os.path.join(data_dir, "Mnist.gt2.0"),
                                           n_queries=queries.shape[0])
        return ds, RAW, queries, gt_D, gt_I
    base = os.path.join(data_dir, "base.fvecs")
    if not os.path.exists(base):
        sys.exit(f"no pydocs data in {data_dir}: pass --data-dir")
    queries = lshdisk.read_queries(os.path.join(data_dir, "query.fvecs"))
    gt_D = lshdisk.read_queries(os.path.join(data_dir, "gt_dist.fvecs"))
    _, gt_I = lshdisk.read_groundtruth(os.path.join(data_dir, "gt.ivecs"), format="ivecs",
                                       n_queries=queries.shape[0])
    return base, {}, queries, gt_D, gt_I


def capped_run(index, q, k, cap):
    """Pages and verified ids of one query searched with T2 alone at ``max_candidates=cap``."""
    _, _, stats, cands = index.search(q[None, :], k, return_stats=True, return_candidates=True,
                                      termination="budget", max_candidates=cap, threads=1)
    return int(stats.page_reads[0]), cands[0][0]


def analyse(index, queries, gt_D, k, cap, *, log=print):
    """Every number of the report for one built index (a dict; see the module docstring).

    Disk access: one T1/T2 search and one permissive search of all queries, one capped search
    per query and distinct candidate count an oracle needs, and one capped search of all
    queries per fixed candidate budget.
    """
    nq = queries.shape[0]
    kth = gt_D[:, k - 1].astype(np.float64)
    t0 = time.perf_counter()
    D, _, paper = index.search(queries, k, return_stats=True, threads=None)
    paper_recall = per_query_recall(D, kth)
    D, _, wide, traces, cands = index.search(
        queries, k, return_stats=True, trace=True, return_candidates=True,
        termination="budget", max_candidates=cap, threads=None)
    wide_recall = per_query_recall(D, kth)
    log(f"  T1/T2 and permissive searches: {time.perf_counter() - t0:.1f} s")
    rrec = [round_recalls(tr, c[1], kth[i], k) for i, (tr, c) in enumerate(zip(traces, cands))]
    crec = [prefix_recalls(c[1], kth[i], k) for i, c in enumerate(cands)]
    pages = [tr["page_reads"] for tr in traces]
    page_budgets = np.unique(np.concatenate(pages))
    b_recall, b_pages = fixed_budget_recall(pages, rrec, page_budgets)
    n_cands = [np.arange(r.shape[0]) for r in crec]
    cand_budgets = np.arange(k, cap + 1)
    c_recall, _ = fixed_budget_recall(n_cands, crec, cand_budgets)
    out = {"n_queries": nq, "cap": cap, "paper": {
        "pages": paper.page_reads.tolist(), "recall": paper_recall.tolist(),
        "candidates": paper.candidates.tolist(), "rounds": paper.rounds.tolist()},
        "permissive": {"pages": wide.page_reads.tolist(), "recall": wide_recall.tolist(),
                       "candidates": wide.candidates.tolist(), "rounds": wide.rounds.tolist()},
        "page_budget_curve": {"budget": page_budgets.tolist(), "mean_recall": b_recall.tolist(),
                              "mean_pages": b_pages.tolist()},
        "targets": []}
    rerun_pages, prefix_mismatch = {}, 0

    def pages_capped(i, c):
        nonlocal prefix_mismatch
        c = max(c, k)
        if (i, c) not in rerun_pages:
            p, ids = capped_run(index, queries[i], k, c)
            prefix_mismatch += not np.array_equal(ids, cands[i][0][:ids.shape[0]])
            rerun_pages[i, c] = p
        return rerun_pages[i, c]

    grid = {}  # max_candidates -> per-query (pages, recall) of one capped run of all queries

    def capped_all(C):
        if C not in grid:
            D, _, st = index.search(queries, k, return_stats=True, termination="budget",
                                    max_candidates=C, threads=None)
            grid[C] = (st.page_reads.astype(np.float64), per_query_recall(D, kth))
        return grid[C]

    def fixed_runs(C, predicted):
        p, r = capped_all(C)
        return {"max_candidates": C, "predicted_recall": predicted,
                "mean_recall": float(r.mean()), "mean_pages": float(p.mean())}

    t0 = time.perf_counter()
    paper_mean = float(paper.page_reads.mean())
    for target in (*TARGETS, "T1/T2"):
        wants = paper_recall if target == "T1/T2" else np.full(nq, target)
        stops = [oracle_stop(r, t) for r, t in zip(rrec, wants)]
        reached = np.array([ok for _, ok in stops])
        spent = [spent_at(tr, s) for tr, (s, _) in zip(traces, stops)]
        o_recall = float(np.mean([r[s] for r, (s, _) in zip(rrec, stops)]))
        o_pages = np.array([s["pages"] for s in spent], dtype=np.float64)
        row = {"target": target, "reached": int(reached.sum()), "never": int(nq - reached.sum()),
               "never_queries": np.flatnonzero(~reached).tolist(),
               "per_query": {f: [s[f] for s in spent] for f in spent[0]},
               "reached_only": {f: distribution([s[f] for s, ok in zip(spent, reached) if ok])
                                for f in ("pages", "seeks", "bytes", "rounds", "candidates")},
               "round_oracle": {"mean_recall": o_recall, "mean_pages": float(o_pages.mean())}}
        for key, goal in (("fixed_pages_at_target", float(np.mean(wants))),
                          ("fixed_pages_at_oracle_recall", o_recall)):
            j = smallest_budget(page_budgets, b_recall, goal - _EPS)
            row[key] = None if j < 0 else {"budget": int(page_budgets[j]),
                                           "mean_recall": float(b_recall[j]),
                                           "mean_pages": float(b_pages[j])}
        # The candidate oracle: stop at the candidate that brings the target, re-run capped.
        cstops = [oracle_stop(r, t) for r, t in zip(crec, wants)]
        c_need = np.array([s for s, _ in cstops])
        c_pages = np.array([pages_capped(i, int(c)) for i, c in enumerate(c_need)], np.float64)
        c_oracle_recall = float(np.mean([r[s] for r, (s, _) in zip(crec, cstops)]))
        row["candidate_oracle"] = {
            "mean_recall": c_oracle_recall, "mean_pages": float(c_pages.mean()),
            "mean_candidates": float(np.maximum(c_need, k).mean()),
            "per_query_candidates": c_need.tolist(), "per_query_pages": c_pages.tolist(),
            "pages_reached_only": distribution(c_pages[reached])}
        for key, goal in (("fixed_candidates_at_target", float(np.mean(wants))),
                          ("fixed_candidates_at_oracle_recall", c_oracle_recall)):
            j = smallest_budget(cand_budgets, c_recall, goal - _EPS)
            row[key] = None if j < 0 else fixed_runs(int(cand_budgets[j]), float(c_recall[j]))
        out["targets"].append(row)
    # The mean-recall oracle: per-query stops minimising the mean pages at a mean recall, over
    # the rounds (exact costs from the traces) and over caps: a grid (one run of all queries
    # per cap, the fixed budgets' among them) and each query's own re-runs above.
    for C in np.unique(np.geomspace(k, cap, GRID_CAPS).round().astype(np.int64)):
        capped_all(int(C))
    caps = sorted(grid)
    own = [[] for _ in range(nq)]  # each query's own capped re-runs join its curve
    for (i, C), p in rerun_pages.items():
        own[i].append((p, crec[i][min(C, crec[i].shape[0] - 1)]))
    g_pages = [np.array([grid[C][0][i] for C in caps] + [p for p, _ in own[i]])
               for i in range(nq)]
    g_recall = [np.array([grid[C][1][i] for C in caps] + [r for _, r in own[i]])
                for i in range(nq)]
    out["cap_grid"] = {"max_candidates": caps,
                       "mean_pages": [float(grid[C][0].mean()) for C in caps],
                       "mean_recall": [float(grid[C][1].mean()) for C in caps]}
    for key, costs, recalls in (("mean_recall_oracle_rounds", pages, rrec),
                                ("mean_recall_oracle_caps", g_pages, g_recall)):
        frontier = recall_frontier(costs, recalls, k)
        for row in out["targets"]:
            goal = float(np.mean(paper_recall)) if row["target"] == "T1/T2" else row["target"]
            best = mean_recall_oracle(costs, recalls, goal, k, frontier)
            row[key] = None if best is None else {"mean_pages": best[0], "mean_recall": best[1]}
    out["prefix_mismatches"] = prefix_mismatch
    out["capped_reruns"] = len(rerun_pages)
    log(f"  capped re-runs ({len(rerun_pages)} searches): {time.perf_counter() - t0:.1f} s")
    out["paper_mean_pages"] = paper_mean
    return out


def _saving(oracle, other):
    """The oracle's saving in pages over another stop, in percent (negative: it reads more)."""
    if not other:
        return "-"
    return f"{100.0 * (1.0 - oracle / other):.0f}%"


def _spread(dist):
    """p99 / p50 of a :func:`distribution` (NaN when p50 is 0 or NaN)."""
    return dist["p99"] / dist["p50"] if dist["p50"] > 0 else float("nan")


def _fixed_cell(fixed, budget_key, oracle_pages):
    """A fixed budget's columns: the budget, its mean recall and pages, the oracle's saving."""
    if fixed is None:
        return f"{'none':>8} {'-':>6} {'-':>7} {'-':>6}"
    return (f"{fixed[budget_key]:>8} {fixed['mean_recall']:>6.3f} {fixed['mean_pages']:>7.1f} "
            f"{_saving(oracle_pages, fixed['mean_pages']):>6}")


def format_report(label, res):
    """The aligned text tables of one (dataset, algorithm) result of :func:`analyse`."""
    paper, wide = res["paper"], res["permissive"]
    lines = [f"== {label}: {res['n_queries']} queries, permissive cap {res['cap']} candidates",
             f"T1/T2: mean pages {np.mean(paper['pages']):.1f}, recall "
             f"{np.mean(paper['recall']):.3f}, candidates {np.mean(paper['candidates']):.1f}, "
             f"rounds {np.mean(paper['rounds']):.2f}; "
             f"permissive: mean pages {np.mean(wide['pages']):.1f}, recall "
             f"{np.mean(wide['recall']):.3f}, rounds {np.mean(wide['rounds']):.2f}",
             "T1/T2 pages per query: " + ", ".join(
                 f"{key} {value:.0f}" for key, value in distribution(paper["pages"]).items()
                 if key != "mean"),
             "",
             "What a query needs (round oracle; percentiles over the queries reaching the target)",
             f"{'target':>6} {'reach':>5} {'never':>5} | {'pages p50':>9} {'p90':>7} {'p99':>7} "
             f"{'max':>7} {'mean':>7} {'p99/p50':>7} | {'rounds p50':>10} {'p90':>5} {'p99':>5} "
             f"{'max':>4} | {'cands p50':>9} {'p90':>6} {'p99':>6} {'max':>6}"]
    for row in res["targets"]:
        p, r, c = (row["reached_only"][f] for f in ("pages", "rounds", "candidates"))
        lines.append(f"{row['target']:>6} {row['reached']:>5} {row['never']:>5} | "
                     f"{p['p50']:>9.0f} {p['p90']:>7.0f} {p['p99']:>7.0f} {p['max']:>7.0f} "
                     f"{p['mean']:>7.1f} {_spread(p):>7.2f} | {r['p50']:>10.1f} {r['p90']:>5.1f} "
                     f"{r['p99']:>5.1f} {r['max']:>4.0f} | {c['p50']:>9.0f} {c['p90']:>6.0f} "
                     f"{c['p99']:>6.0f} {c['max']:>6.0f}")
    pm = res["paper_mean_pages"]
    lines += ["", "Round oracle vs T1/T2 and a fixed page budget B (mean pages over all queries; "
              "saving = 1 - oracle / other)",
              f"{'target':>6} {'recall':>6} {'pages':>7} {'vs T1/T2':>8} | {'B@target':>8} "
              f"{'recall':>6} {'pages':>7} {'saving':>6} | {'B@oracle':>8} {'recall':>6} "
              f"{'pages':>7} {'saving':>6}"]
    for row in res["targets"]:
        o = row["round_oracle"]
        cells = [_fixed_cell(row[key], "budget", o["mean_pages"])
                 for key in ("fixed_pages_at_target", "fixed_pages_at_oracle_recall")]
        lines.append(f"{row['target']:>6} {o['mean_recall']:>6.3f} {o['mean_pages']:>7.1f} "
                     f"{_saving(o['mean_pages'], pm):>8} | {cells[0]} | {cells[1]}")
    lines += ["", "Candidate oracle (stops in mid-round; pages of capped re-runs) vs T1/T2 and a "
              "fixed max_candidates C (pages of one capped run)",
              f"{'target':>6} {'recall':>6} {'cands':>6} {'pages':>7} {'vs T1/T2':>8} | "
              f"{'pages p50':>9} {'p90':>6} {'p99':>6} {'max':>6} {'p99/p50':>7} | "
              f"{'C@target':>8} {'recall':>6} {'pages':>7} {'saving':>6} | {'C@oracle':>8} "
              f"{'recall':>6} {'pages':>7} {'saving':>6}"]
    for row in res["targets"]:
        o = row["candidate_oracle"]
        p = o["pages_reached_only"]
        cells = [_fixed_cell(row[key], "max_candidates", o["mean_pages"])
                 for key in ("fixed_candidates_at_target", "fixed_candidates_at_oracle_recall")]
        lines.append(f"{row['target']:>6} {o['mean_recall']:>6.3f} {o['mean_candidates']:>6.1f} "
                     f"{o['mean_pages']:>7.1f} {_saving(o['mean_pages'], pm):>8} | "
                     f"{p['p50']:>9.0f} {p['p90']:>6.0f} {p['p99']:>6.0f} {p['max']:>6.0f} "
                     f"{_spread(p):>7.2f} | {cells[0]} | {cells[1]}")
    lines += ["", "Mean-recall oracle (per-query stops chosen to reach the mean recall at the "
              "least mean pages) vs T1/T2 and the fixed budgets at the same mean recall",
              f"{'target':>6} | {'rounds: recall':>14} {'pages':>7} {'vs T1/T2':>8} "
              f"{'vs B':>5} | {'caps: recall':>12} {'pages':>7} {'vs T1/T2':>8} {'vs C':>5}"]
    for row in res["targets"]:
        cells = []
        for key, fixed in (("mean_recall_oracle_rounds", "fixed_pages_at_target"),
                           ("mean_recall_oracle_caps", "fixed_candidates_at_target")):
            o, f = row[key], row[fixed]
            width = 14 if key.endswith("rounds") else 12
            cells.append(f"{'none':>{width}} {'-':>7} {'-':>8} {'-':>5}" if o is None else
                         f"{o['mean_recall']:>{width}.3f} {o['mean_pages']:>7.1f} "
                         f"{_saving(o['mean_pages'], pm):>8} "
                         f"{_saving(o['mean_pages'], f and f['mean_pages']):>5}")
        lines.append(f"{row['target']:>6} | {cells[0]} | {cells[1]}")
    caps = res["cap_grid"]["max_candidates"]
    lines.append(f"(cap grid: {len(caps)} caps from {caps[0]} to {caps[-1]}; "
                 f"capped re-runs: {res['capped_reruns']}; re-runs whose candidates were not a "
                 f"prefix of the permissive run's: {res['prefix_mismatches']})")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=DATASETS, default="mnist")
    ap.add_argument("--data-dir", default=None,
                    help="folder of the dataset (default ../shared/data/<data> beside the repo)")
    ap.add_argument("--algorithms", default="qalsh,c2lsh")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--cap", type=int, default=None,
                    help="candidate cap of the permissive run (default 100 (k + beta n))")
    ap.add_argument("--queries", type=int, default=None, help="use the first N queries")
    ap.add_argument("--memory", default="1GiB", help="memory limit of the builds")
    ap.add_argument("--json", default=None, help="also write every number to this file")
    args = ap.parse_args(argv)
    algorithms = args.algorithms.split(",")
    unknown = [a for a in algorithms if a not in lshdisk.ALGORITHMS]
    if unknown:
        ap.error(f"--algorithms: unknown {', '.join(unknown)}; use one of "
                 f"{', '.join(lshdisk.ALGORITHMS)}")
    if args.k < 1:
        ap.error(f"-k must be >= 1, got {args.k}")
    if args.queries is not None and args.queries < 1:
        ap.error(f"--queries must be >= 1, got {args.queries}")
    data_dir = args.data_dir or os.path.join(SHARED, args.data)
    source, read_kwargs, queries, gt_D, gt_I = load(args.data, data_dir)
    if args.queries is not None:
        queries, gt_D, gt_I = queries[:args.queries], gt_D[:args.queries], gt_I[:args.queries]
    if gt_D.shape[1] < args.k:
        ap.error(f"-k must be <= {gt_D.shape[1]}, the ground truth's neighbours per query")
    report = {"data": args.data, "k": args.k, "results": {}}
    work = tempfile.mkdtemp(prefix="lshdisk-oracle-")
    try:
        for algorithm in algorithms:
            t0 = time.perf_counter()
            index = lshdisk.build(source, os.path.join(work, algorithm), algorithm=algorithm,
                                  c=2.0, memory_limit=args.memory, seed=0, **read_kwargs)
            print(f"{args.data} {algorithm}: built in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
            with index:
                check_groundtruth(index, queries, gt_D, gt_I)
                params = index.info()["params"]
                cap = args.cap or 100 * (args.k + int(np.ceil(params["beta"] * index.n - 1e-9)))
                if cap < args.k:
                    ap.error(f"--cap must be >= k = {args.k}, got {cap}")
                res = analyse(index, queries, gt_D, args.k, cap,
                              log=lambda s: print(s, file=sys.stderr))
            res.update(algorithm=algorithm, n=index.n, d=index.d, m=params["m"], l=params["l"],
                       seconds=time.perf_counter() - t0)
            report["results"][algorithm] = res
            print(format_report(f"{args.data} (n = {index.n}, d = {index.d}) {algorithm} "
                                f"(m = {params['m']}, l = {params['l']}), k = {args.k}", res))
            print(flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
