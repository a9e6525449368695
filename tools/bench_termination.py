#!/usr/bin/env python3
"""Learned termination against tuned baselines, on Mnist and pydocs, held-out queries.

Usage: python tools/bench_termination.py [--data mnist,pydocs] [--methods qalsh,c2lsh]
       [--recall 0.8,0.9,0.95] [-k 10] [--sample 2000] [--seed 0] [--queries N]
       [--cache data/bench] [--threads 2] [--retune] [--json FILE]

Per dataset and method (index with c = 2, built once under ``--cache`` and reused), the
model is tuned (:func:`lshdisk.tune.tune`) on a seeded sample of ``--sample`` indexed points
(each point's own id excluded from its candidates and ground truth) and measured on the
dataset's held-out query file (Mnist.q: 100 queries; pydocs query.fvecs: 1,000, or the first
``--queries``). Every policy verifies at most the same cap limit L (Mnist: T2 = k + beta n;
pydocs: 5,000, where T2 reaches recall@10 0.63 only). Policies:

- ``learned``: ``recall_target=r``;
- ``T1/T2``: the papers' rules, c swept over separate indexes (QALSH and I-LSH c = 2 and 1.5,
  C2LSH c = 2 and 3, its c being an integer) and beta through ``max_candidates`` = a multiple
  of T2 (1, 2, 3, 5, 10, 20, 50, at most L);
- ``pages``: one fixed page budget (:class:`lshdisk.termination.PageBudget`);
- ``patience``: :class:`lshdisk.termination.Patience` with N rounds;
- ``cap``: one fixed candidate cap (``termination="budget"``, ``max_candidates``).

A baseline's knob is chosen on the training sample, from one permissive run (T2 alone, cap
L, with traces and candidates): a capped search verifies a prefix of that run's candidates
and a round rule stops after one of its rounds, so each knob's recall per query is exact
without rerunning (not for I-LSH, whose T1 changes the walk itself: its T1/T2 row is c = 2 only).
The knob is the cheapest reaching r on the training sample (``@r``: the smallest cap, page
budget or N; for T1/T2 the least mean pages at the stopping round); then it is measured on
the held-out queries. Because the training sample (indexed points, a point's own vector
among its candidates) and the held-out queries differ, a baseline chosen at r may land
above or below r there, so each baseline is also chosen on the held-out permissive run at
the learned policy's achieved recall (``@same``: the fair comparison, though it lets the
baseline see the held-out ground truth) and the learned policy is compared with the best of
those. Start-radius policies (:mod:`lshdisk.learned_start`; QALSH and C2LSH): ``start``
(T1/T2 from the learned first radius) and ``start+learned`` (with ``recall_target=r``),
against the same with one fixed start u c^j for every query (``fixed start``, j the largest
with at most 5 % of the training queries' first candidate round below it).

Printed per policy: mean recall@10, mean and p99 page reads, mean seeks and rounds, MB read,
median CPU ms
(the query thread's), and QPT on the study's HDD and SSD profiles (``cost_model``: seeks x
seek_ms + MB / read rate + CPU ms). Then, per target, the learned policy against the best
baseline at the same recall (mean and p99 page ratios), its inference time per query as a
share of its CPU time, and the model's bytes. Counts are with no buffer pool; CPU times are
noisy on a shared machine.
"""

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

import lshdisk
from cost_model import get_profile, query_cost
from lshdisk.evaluate import recall_at_k
from lshdisk.learned_start import LearnedStart, start_labels
from lshdisk.learned_termination import LearnedBudget, prefix_recalls
from lshdisk.termination import PageBudget, PaperTermination, Patience, paper_cap
from lshdisk.tune import training_sample, tune, write_model
from mnist_data import RAW

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
#: c values of the T1/T2 sweep, per method (C2LSH needs an integer c >= 2).
C_SWEEP = {"qalsh": (2.0, 1.5), "ilsh": (2.0,), "c2lsh": (2.0, 3.0)}
#: Multiples of T2's cap of the T1/T2 sweep (beta multipliers).
BETA_MULTIPLES = (1, 2, 3, 5, 10, 20, 50)
#: Cap limit L per dataset (None: T2).
CAP_LIMITS = {"mnist": None, "pydocs": 5000}
_EPS = 1e-9  # recall values are multiples of 1 / k


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str
    build_args: dict
    queries: np.ndarray
    gt_D: np.ndarray


def load_dataset(name, n_queries=None):
    """A Dataset by name ("mnist", "pydocs"), from ../shared/data; the first n_queries only."""
    if name == "mnist":
        d = os.path.join(SHARED, "mnist")
        q = lshdisk.read_queries(os.path.join(d, "Mnist.q"), **RAW)
        gt_D, _ = lshdisk.read_groundtruth(os.path.join(d, "Mnist.gt2.0"), n_queries=q.shape[0])
        ds = Dataset(name, os.path.join(d, "Mnist.ds"), dict(RAW), q, gt_D)
    elif name == "pydocs":
        d = os.path.join(SHARED, "pydocs")
        q = lshdisk.read_queries(os.path.join(d, "query.fvecs"))
        gt_D = lshdisk.read_queries(os.path.join(d, "gt_dist.fvecs"))
        ds = Dataset(name, os.path.join(d, "base.fvecs"), {}, q, gt_D)
    else:
        sys.exit(f"unknown dataset {name!r}: use mnist or pydocs")
    if n_queries is not None:
        ds = Dataset(ds.name, ds.source, ds.build_args, ds.queries[:n_queries],
                     ds.gt_D[:n_queries])
    return ds


def cached_index(cache, ds, algorithm, c):
    """The index directory of (dataset, algorithm, c) under ``cache``, built if missing."""
    path = os.path.join(cache, f"{ds.name}-{algorithm}-c{c:g}")
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        lshdisk.build(ds.source, path, algorithm=algorithm, c=c, memory_limit="256MiB",
                      **ds.build_args).close()
    return path


# --------------------------------------------------------------------------- pure helpers

def t1_stop(verified, dk, c_radius, k):
    """The round after which T1 stops a search (its last round if never): the first with at
    least k verified candidates and the k-th within ``c_radius``."""
    hit = np.flatnonzero((np.asarray(verified) >= k) & (np.asarray(dk) <= np.asarray(c_radius)))
    return int(hit[0]) if hit.size else len(verified) - 1


def page_stop(pages, budget):
    """The round after which :class:`PageBudget` (``budget`` pages) stops: the first whose
    pages so far reach it (the last round if none)."""
    hit = np.flatnonzero(np.asarray(pages) >= budget)
    return int(hit[0]) if hit.size else len(pages) - 1


def patience_stop(verified, dk, k, rounds):
    """The round after which :class:`Patience` (``rounds``) stops, replaying the loop's rule
    (:class:`lshdisk.search.RoundSearch`): the top-k changes in a round with new candidates
    while fewer than k were verified before or the k-th distance fell; the search stops once
    k are verified and ``rounds`` rounds passed without a change (the last round if never)."""
    last, prev_v, prev_dk = 0, 0, math.inf
    for r in range(len(verified)):
        v, d = int(verified[r]), float(dk[r])
        if v > prev_v and (prev_v < k or d < prev_dk):
            last = r
        prev_v, prev_dk = v, d
        if v >= k and r - last >= rounds:
            return r
    return len(verified) - 1


def cheapest(knobs, mean_recall, goal):
    """The first of ``knobs`` (ascending cost, recall nondecreasing along them) whose
    ``mean_recall(knob)`` reaches ``goal``, by bisection; None if the last does not."""
    knobs = list(knobs)
    if not knobs or mean_recall(knobs[-1]) < goal - _EPS:
        return None
    lo, hi = -1, len(knobs) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if mean_recall(knobs[mid]) >= goal - _EPS else (mid, hi)
    return knobs[hi]


class Permissive:
    """One permissive run (T2 alone, cap L, traces and candidates) of a query set, and the
    recall and pages of each baseline's knob replayed from it."""

    def __init__(self, index, queries, gt_D, k, cap, *, gt_I=None, own=None, threads=None):
        _, _, traces, found = index.search(queries, k, termination="budget", max_candidates=cap,
                                           trace=True, return_candidates=True, threads=threads)
        self.k, self.cap = k, cap
        self.traces, self.found, self.own = traces, found, own
        self.prefix = []
        for i, (ids, dists) in enumerate(found):
            dists = dists.astype(np.float64)
            if own is None:
                kth = gt_D[i, k - 1]
            else:  # an indexed point: its own id is no hit and leaves its ground truth
                dists = np.where(ids == own[i], np.inf, dists)
                kth = gt_D[i][np.asarray(gt_I[i]) != own[i]][k - 1]
            self.prefix.append(prefix_recalls(dists, kth, k))

    def recall_at_rounds(self, stops, cap=None):
        """Per query, recall@k after round ``stops[i]`` (the cap L or ``cap`` applied)."""
        cap = self.cap if cap is None else min(cap, self.cap)
        return np.array([p[min(int(t["verified"][r]), cap, p.size - 1)]
                         for p, t, r in zip(self.prefix, self.traces, stops)])

    def pages_at_rounds(self, stops, cap=None):
        """Per query, pages read by the end of round ``stops[i]``, or of the round in which
        the cap is reached if earlier (an upper bound: the cap stops inside its round)."""
        cap = self.cap if cap is None else min(cap, self.cap)
        out = []
        for t, r in zip(self.traces, stops):
            at_cap = np.flatnonzero(t["verified"] >= cap)
            out.append(t["page_reads"][min(r, int(at_cap[0])) if at_cap.size else r])
        return np.array(out, dtype=np.float64)

    def cap_recall(self, cap):
        return float(np.mean([p[min(cap, p.size - 1)] for p in self.prefix]))

    def page_recall(self, budget):
        return float(np.mean(self.recall_at_rounds(
            [page_stop(t["page_reads"], budget) for t in self.traces])))

    def patience_recall(self, n):
        return float(np.mean(self.recall_at_rounds(
            [patience_stop(t["verified"], t["dk"], self.k, n) for t in self.traces])))

    def t1_stops(self):
        return [t1_stop(t["verified"], t["dk"], t["c_radius"], self.k) for t in self.traces]

    def page_budgets(self):
        """Every distinct page count at a round's end, ascending (the budgets that differ)."""
        return np.unique(np.concatenate([t["page_reads"] for t in self.traces]))

    def max_rounds(self):
        return max(len(t) for t in self.traces)


# --------------------------------------------------------------------------- measuring

def measure(index, ds, k, threads, **search):
    """Search the held-out queries; a dict of the figures the tables print."""
    D, _, st = index.search(ds.queries, k, return_stats=True, threads=threads, **search)
    cpu_ms = st.cpu_seconds * 1e3
    row = {"recall": recall_at_k(D, ds.gt_D, k),
           "pages": float(st.page_reads.mean()),
           "p99": float(np.percentile(st.page_reads, 99)),
           "seeks": float(st.seeks.mean()), "mb": float(st.bytes_read.mean() / 1e6),
           "cpu_ms": float(np.median(cpu_ms)), "rounds": float(st.rounds.mean()),
           "candidates": float(st.candidates.mean())}
    for dev in ("hdd", "ssd"):
        row[dev] = query_cost(st.seeks, st.bytes_read, cpu_ms, get_profile(dev)).mean()["qpt_ms"]
    return row


def inference_share(index, model, target, ds, k, cpu_ms):
    """(microseconds of the model per query, share of ``cpu_ms``): the calls a learned search
    makes, counted on the held-out queries, times the measured time of one call."""
    policy = LearnedBudget(model, target, index.metadata.method.unit.u)
    calls = [0]
    feats = []

    class Counted(LearnedBudget):
        def cap_after(self, view):
            if view.n_verified < view.k or view.round == view.k_round == 0:
                calls[0] += 1
                if len(feats) < 200:
                    feats.append(view)
            return super().cap_after(view)

    counted = Counted(model, target, index.metadata.method.unit.u)
    index.search(ds.queries, k, termination=counted, threads=1)
    views = feats or [None]
    if views[0] is None:
        return 0.0, 0.0
    policy.cap_after(views[0])  # compiled already; one warm call
    reps = max(1, 2000 // len(views))
    t0 = time.perf_counter()
    for _ in range(reps):
        for v in views:
            policy.cap_after(v)
    per_call = (time.perf_counter() - t0) / (reps * len(views))
    per_query_us = per_call * calls[0] / ds.queries.shape[0] * 1e6
    return per_query_us, per_query_us / 1e3 / cpu_ms


def model_bytes(model):
    """Bytes of the model's arrays (every target's trees, and the start model's)."""
    parts = [model.target_model(t) for t in model.targets]
    if model.start is not None:
        parts.append(model.start)
    return sum(p.nodes.nbytes + p.offsets.nbytes for p in parts)


# --------------------------------------------------------------------------- one method

def bench_method(ds, algorithm, targets, args):
    k, threads = args.k, args.threads
    cache = args.cache
    path = cached_index(cache, ds, algorithm, 2.0)
    limit_arg = CAP_LIMITS[ds.name]
    with lshdisk.open(path) as index:
        t2 = paper_cap(k, index.n, index.params.beta)
        cap = min(index.n, t2 if limit_arg is None else limit_arg)
        model = index.termination_model
        fresh = (model is not None and model.k == k and model.cap_limit == cap
                 and set(targets) <= set(model.targets) and not args.retune
                 and (model.start is not None or not index.start_feature_names))
    tune_s = None
    if not fresh:
        with lshdisk.open(path, termination_model=False) as index:
            t0 = time.perf_counter()
            model = tune(index, targets, k=k, sample=args.sample, seed=args.seed,
                         cap_limit=None if limit_arg is None else cap, threads=threads)
            tune_s = time.perf_counter() - t0
        write_model(path, model)
    out = {"dataset": ds.name, "method": algorithm, "cap_limit": cap, "t2": t2,
           "tune_seconds": tune_s, "model_bytes": model_bytes(model), "rows": [],
           "summary": []}
    rows = out["rows"]
    print(f"\n== {ds.name} / {algorithm}: cap limit L = {cap} (T2 = {t2}), "
          f"{ds.queries.shape[0]} held-out queries, model {model_bytes(model) / 1e3:.0f} kB"
          + ("" if tune_s is None else f", tuned in {tune_s:.0f} s"), flush=True)

    # Training sample and held-out permissive runs of each index of the c sweep.
    sweeps = {}
    for c in C_SWEEP[algorithm]:
        p = cached_index(cache, ds, algorithm, c)
        with lshdisk.open(p, termination_model=False) as index:
            own, tq, gt_D, gt_I = training_sample(index, k, sample=args.sample, seed=args.seed)
            train = Permissive(index, tq, gt_D, k, cap, gt_I=gt_I, own=own, threads=threads)
            held = Permissive(index, ds.queries, ds.gt_D, k, cap, threads=threads)
            sweeps[c] = (p, index.params.beta, train, held, (tq, gt_D, gt_I, own))
    p2, _, train2, held2, _ = sweeps[2.0]

    done = {}

    def run(label, target, knob, index_path=p2, **search):
        key = (index_path, knob if "start" in label else "",
               repr(sorted(search.items(), key=lambda kv: kv[0])))
        if key not in done:
            with lshdisk.open(index_path) as index:
                done[key] = measure(index, ds, k, threads, **search)
        row = dict(done[key], policy=label, target=target, knob=knob)
        rows.append(row)
        return row

    def t1t2_choice(goal, which):
        """The (c, multiple) of least estimated mean pages reaching goal (None)."""
        best = None
        for c, (p, beta, train, held, _) in sweeps.items():
            perm = train if which == "train" else held
            stops = perm.t1_stops()
            if algorithm == "ilsh":  # T1 changes the walk: no replay (see the docstring)
                continue
            t2c = paper_cap(k, n, beta)
            for mult in BETA_MULTIPLES:
                mc = min(cap, mult * t2c)
                rec = float(np.mean(perm.recall_at_rounds(stops, mc)))
                if rec >= goal - _EPS:
                    cost = float(np.mean(perm.pages_at_rounds(stops, mc)))
                    if best is None or cost < best[0]:
                        best = (cost, c, mc, mult)
                if mc >= cap:
                    break
        return best

    n = _n_points(p2)
    baseline_rows = {}
    for r in targets:
        learned = run("learned", r, "", recall_target=r)
        with lshdisk.open(p2) as index:
            inf_us, inf_share = inference_share(index, model, r, ds, k, learned["cpu_ms"])
        same = learned["recall"]
        best_same = None
        for which, goal, tag in (("train", r, f"@{r:g}"), ("held", same, "@same")):
            train_or_held = train2 if which == "train" else held2
            perm = train_or_held
            c_ = cheapest(range(k, cap + 1), perm.cap_recall, goal)
            if c_ is not None:
                row = run(f"cap{tag}", r, f"max_candidates={c_}", termination="budget",
                          max_candidates=c_)
                baseline_rows.setdefault((r, tag), []).append(row)
            b = cheapest(perm.page_budgets(), perm.page_recall, goal)
            if b is not None:
                row = run(f"pages{tag}", r, f"PageBudget({int(b)})",
                          termination=PageBudget(int(b)), max_candidates=cap)
                baseline_rows.setdefault((r, tag), []).append(row)
            n_ = cheapest(range(1, perm.max_rounds() + 1), perm.patience_recall, goal)
            if n_ is not None:
                row = run(f"patience{tag}", r, f"Patience({n_})", termination=Patience(n_),
                          max_candidates=cap)
                baseline_rows.setdefault((r, tag), []).append(row)
            choice = t1t2_choice(goal, which)
            if choice is not None:
                _, c, mc, mult = choice
                row = run(f"T1/T2{tag}", r, f"c={c:g}, {mult}xT2={mc}",
                          index_path=sweeps[c][0], termination="paper", max_candidates=mc)
                baseline_rows.setdefault((r, tag), []).append(row)
        at_same = baseline_rows.get((r, "@same"), [])
        if at_same:
            best_mean = min(at_same, key=lambda x: x["pages"])
            best_p99 = min(at_same, key=lambda x: x["p99"])
            best_same = {"mean_policy": best_mean["policy"], "mean_pages": best_mean["pages"],
                         "mean_ratio": best_mean["pages"] / learned["pages"],
                         "p99_policy": best_p99["policy"], "p99_pages": best_p99["p99"],
                         "p99_ratio": best_p99["p99"] / learned["p99"]}
        out["summary"].append({"target": r, "learned_recall": same,
                               "learned_pages": learned["pages"], "learned_p99": learned["p99"],
                               "best_at_same": best_same, "inference_us": inf_us,
                               "inference_share": inf_share})
    run("T1/T2 (paper)", None, "c=2, T2", termination="paper")
    out["start"] = bench_start(targets, run, model, p2, train2)
    out["qpt"] = qpt_summary(out)
    print_method(out)
    return out


def _n_points(path):
    with lshdisk.open(path, termination_model=False) as index:
        return index.n


class _ConstantStart:
    """A start "model" that gives one radius to every query (the fixed-start baseline)."""

    def __init__(self, radius):
        self.r = radius

    def radius(self, x, u):
        return self.r


def fixed_start_steps(labels, overshoot=0.05):
    """The largest j whose share of queries with label < j is at most ``overshoot``: the
    start u c^j of the fixed-start baseline, tuned on the training labels."""
    labels = np.sort(np.asarray(labels))
    return float(np.floor(labels[int(math.floor(overshoot * labels.size))] + 1e-6))


def bench_start(targets, run, model, path, train):
    """Rows of the start radius: the learned one and a fixed one (u c^j, j tuned on the
    training labels), alone (T1/T2) and with the learned cap; None without a start model."""
    if model.start is None:
        return None
    with lshdisk.open(path) as index:
        u, c = index.metadata.method.unit.u, index.params.c
        labels, _ = start_labels(train.traces, train.found, c, u, exclude_self=train.own)
        j = fixed_start_steps(labels)
        fixed = _ConstantStart(u * c ** j)
    knob = f"u c^{j:g}"
    run("start", None, "learned", start_radius=True)
    run("fixed start", None, knob, termination=LearnedStart(PaperTermination(), fixed, u))
    for r in targets:
        run("start+learned", r, "learned", recall_target=r, start_radius=True)
        with lshdisk.open(path) as index:
            budget = LearnedBudget(index.termination_model, r, u)
        run("fixed st+learned", r, knob, termination=LearnedStart(budget, fixed, u))
    return {"fixed_steps": j, "figures": model.start.figures}


_COLS = (("recall", "recall", "{:.3f}"), ("pages", "pages", "{:.0f}"), ("p99", "p99", "{:.0f}"),
         ("seeks", "seeks", "{:.0f}"), ("rounds", "rounds", "{:.1f}"), ("MB", "mb", "{:.2f}"),
         ("CPU ms", "cpu_ms", "{:.2f}"),
         ("HDD ms", "hdd", "{:.0f}"), ("SSD ms", "ssd", "{:.1f}"))


def qpt_summary(out):
    """Per target: HDD and SSD QPT of the learned policy, of start+learned, and of the best
    baseline at the learned policy's recall (the least QPT among the @same rows)."""
    lines = []
    for s in out["summary"]:
        r = s["target"]
        mine = {row["policy"]: row for row in out["rows"] if row["target"] == r}
        same = [row for row in out["rows"] if row["target"] == r and
                row["policy"].endswith("@same")]
        item = {"target": r}
        for dev in ("hdd", "ssd"):
            best = min(same, key=lambda x: x[dev]) if same else None
            item[dev] = {"learned": mine["learned"][dev],
                         "start+learned": mine.get("start+learned", {}).get(dev),
                         "best": None if best is None else best[dev],
                         "best_policy": None if best is None else best["policy"]}
        lines.append(item)
    return lines


def print_method(out):
    print(f"{'target':>6} {'policy':<16} {'knob':<26} "
          + " ".join(f"{h:>8}" for h, _, _ in _COLS))
    for row in out["rows"]:
        t = "" if row["target"] is None else f"{row['target']:g}"
        print(f"{t:>6} {row['policy']:<16} {row['knob']:<26} "
              + " ".join(f"{fmt.format(row[key]):>8}" for _, key, fmt in _COLS))
    print(f"\n{'target':>6} {'recall':>7} {'pages':>7} {'p99':>7}  best baseline @same recall "
          f"(mean; p99)  baseline/learned mean, p99   inference")
    for s in out["summary"]:
        b = s["best_at_same"]
        best = ("none reaches it" if b is None else
                f"{b['mean_policy']} {b['mean_pages']:.0f}; {b['p99_policy']} "
                f"{b['p99_pages']:.0f}  {b['mean_ratio']:.2f}x, {b['p99_ratio']:.2f}x")
        print(f"{s['target']:>6g} {s['learned_recall']:7.3f} {s['learned_pages']:7.0f} "
              f"{s['learned_p99']:7.0f}  {best}   {s['inference_us']:.0f} us "
              f"({100 * s['inference_share']:.2f} % of CPU)", flush=True)
    print(f"\n{'target':>6} {'device':>6} {'learned':>9} {'start+learned':>14} "
          f"{'best @same':>11}  baseline/learned, baseline/(start+learned)")
    for item in out["qpt"]:
        for dev in ("hdd", "ssd"):
            q = item[dev]
            if q["best"] is None:
                continue
            sl = q["start+learned"]
            print(f"{item['target']:>6g} {dev:>6} {q['learned']:9.1f} "
                  f"{'' if sl is None else f'{sl:.1f}':>14} {q['best']:11.1f}  "
                  f"{q['best'] / q['learned']:.2f}x"
                  + ("" if sl is None else f", {q['best'] / sl:.2f}x") + f" ({q['best_policy']})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="mnist,pydocs")
    ap.add_argument("--methods", default="qalsh,c2lsh")
    ap.add_argument("--recall", default="0.8,0.9,0.95")
    ap.add_argument("-k", "--k", type=int, default=10)
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--queries", type=int, default=None, help="first N held-out queries only")
    ap.add_argument("--cache", default=os.path.join("data", "bench"),
                    help="folder of the indexes (built once, reused)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--retune", action="store_true", help="tune again even if tuned")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    targets = [float(t) for t in args.recall.split(",")]
    results = []
    for name in args.data.split(","):
        ds = load_dataset(name, args.queries)
        for algorithm in args.methods.split(","):
            results.append(bench_method(ds, algorithm, targets, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
