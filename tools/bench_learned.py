#!/usr/bin/env python3
"""Learned termination on the real Mnist set: recall_target=r against the best fixed
candidate cap and against T1/T2.

Usage: python tools/bench_learned.py [--data ../shared/data/mnist] [--index DIR]
       [--algorithm qalsh] [--sample 2000] [--recall 0.8,0.9,0.95] [--k 10] [--seed 0]
       [--pydocs ../shared/data/pydocs]

With --pydocs, the set is that folder's base.fvecs, query.fvecs and gt_dist.fvecs (46,506 x
384 sentence embeddings, 1,000 queries) instead of Mnist.

Builds (or reuses) an index of Mnist.ds, tunes it on a seeded sample of its own points
(``lshdisk.tune.tune``, each point's own id excluded), stores the model, reopens the index,
and searches the 100 held-out queries of Mnist.q with no buffer pool: for each target r,
``recall_target=r``; the smallest fixed ``max_candidates`` (``termination="budget"``) whose
mean recall on these queries reaches the learned search's own mean recall ("fixed@same"),
and the one reaching r ("fixed@r"); and T1/T2 (``termination="paper"``). The recall of every
fixed cap is computed from one permissive run (a capped run verifies a prefix of its
candidates), then each chosen cap is run for its page reads.
"""

import argparse
import os
import sys
import time

import numpy as np

import lshdisk
from mnist_data import DEFAULT_DATA, RAW, load
from lshdisk.evaluate import recall_at_k
from lshdisk.learned_termination import prefix_recalls
from lshdisk.termination import paper_cap
from lshdisk.tune import tune, write_model


def _prefix_recall(found, gt_D, k):
    """Per query, recall@k of each candidate prefix (list of arrays)."""
    return [prefix_recalls(dists, kth, k) for (_, dists), kth in zip(found, gt_D[:, k - 1])]


def _row(name, D, stats, gt_D, k):
    pages = stats.page_reads
    return (name, recall_at_k(D, gt_D, k), float(pages.mean()), float(np.percentile(pages, 99)),
            float(stats.candidates.mean()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--index", default=None, help="index directory (built if missing)")
    ap.add_argument("--algorithm", default="qalsh")
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--recall", default="0.8,0.9,0.95")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cap-limit", type=int, default=None,
                    help="largest cap of the learned search (default T2); the fixed caps too")
    ap.add_argument("--pydocs", default=None, help="folder of the pydocs set (instead of Mnist)")
    args = ap.parse_args(argv)
    build_args = dict(RAW)
    if args.pydocs:
        ds = os.path.join(args.pydocs, "base.fvecs")
        queries = lshdisk.read_queries(os.path.join(args.pydocs, "query.fvecs"))
        gt_D = lshdisk.read_queries(os.path.join(args.pydocs, "gt_dist.fvecs"))
        build_args = {}
    else:
        ds, queries, gt_D = load(args.data)
    k = args.k
    targets = [float(t) for t in args.recall.split(",")]
    path = args.index or os.path.join("data", f"mnist.{args.algorithm}")
    if not os.path.exists(path):
        lshdisk.build(ds, path, algorithm=args.algorithm, memory_limit="256MiB",
                      **build_args).close()
    with lshdisk.open(path, termination_model=False) as index:
        t0 = time.perf_counter()
        model = tune(index, targets, k=k, sample=args.sample, seed=args.seed,
                     cap_limit=args.cap_limit)
        seconds = time.perf_counter() - t0
        t2 = paper_cap(k, index.n, index.params.beta)
        limit = model.cap_limit
    write_model(path, model)
    print(f"tuned {path} on {args.sample} indexed points in {seconds:.1f} s, caps up to "
          f"{model.cap_limit} (T2 = {t2})")
    for target, f in sorted(model.figures.items()):
        print(f"  r = {target}: {f}")
    rows = []
    with lshdisk.open(path) as index:
        D, _, st = index.search(queries, k, return_stats=True, termination="paper")
        rows.append(_row("T1/T2 (paper)", D, st, gt_D, k))
        _, _, found = index.search(queries, k, termination="budget", max_candidates=limit,
                                   return_candidates=True)
        prefix = _prefix_recall(found, gt_D, k)

        def mean_recall(cap):
            return np.mean([p[min(cap, p.size - 1)] for p in prefix])

        def smallest_cap(goal):  # mean recall is nondecreasing in the cap: bisection
            if mean_recall(limit) < goal - 1e-9:
                return None
            lo, hi = k - 1, limit
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if mean_recall(mid) >= goal - 1e-9 else (mid, hi)
            return hi

        for r in targets:
            D, _, st = index.search(queries, k, return_stats=True, recall_target=r)
            learned = _row(f"recall_target={r:g}", D, st, gt_D, k)
            rows.append(learned)
            for label, goal in (("fixed@same", learned[1]), (f"fixed@{r:g}", r)):
                cap = smallest_cap(goal)
                if cap is None:
                    rows.append((f"  {label}: no cap <= {limit}", float("nan"), float("nan"),
                                 float("nan"), float("nan")))
                    continue
                D, _, st = index.search(queries, k, return_stats=True, termination="budget",
                                        max_candidates=cap)
                rows.append(_row(f"  {label} (max_candidates={cap})", D, st, gt_D, k))
    print(f"\n{'search':<36} {'recall':>7} {'pages':>8} {'p99':>8} {'cands':>7}")
    for name, rec, mean, p99, cands in rows:
        print(f"{name:<36} {rec:7.3f} {mean:8.1f} {p99:8.1f} {cands:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
