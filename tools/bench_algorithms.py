#!/usr/bin/env python3
"""Build C2LSH, QALSH and I-LSH indexes of one dataset and compare them side by side.

Usage: python tools/bench_algorithms.py [--data ../shared/data/mnist] [--k 1,10,100]
       [--algorithms c2lsh,qalsh,ilsh] [--preset jafari2021] [--memory 1GiB] [--repeat 3]
       [--unit auto]

Defaults to the real Mnist set (raw uint8 60,000 x 50, 100 queries, exact ground truth
Mnist.gt2.0), c = 2, 4 KiB pages, no buffer pool (every page access is a counted read). Prints,
per algorithm and k, the means per query of: overall ratio, recall, page reads, seeks, MB read,
candidates and CPU ms; and per algorithm the build seconds and index bytes. The queries are
searched --repeat times per k; CPU ms is that of the fastest pass (answers and I/O counts are
the same in every pass, CPU time is not: other passes only add interference).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import lshdisk
from mnist_data import DEFAULT_DATA, RAW, load
from lshdisk.evaluate import evaluate



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder with Mnist.ds, Mnist.q, Mnist.gt2.0")
    ap.add_argument("--k", default="1,10,100")
    ap.add_argument("--algorithms", default=",".join(a for a in ("c2lsh", "qalsh", "ilsh")
                                                     if a in lshdisk.ALGORITHMS))
    ap.add_argument("--preset", default=None)
    ap.add_argument("--memory", default="1GiB")
    ap.add_argument("--repeat", type=int, default=3, help="passes over the queries per k (>= 1)")
    ap.add_argument("--unit", default="auto",
                    help="radius unit of the builds: auto (measured) or a number (1: the "
                         "papers' radii; C2LSH indexes built before the unit was measured used "
                         "the power of c below the estimate, 128 on Mnist)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error(f"--repeat must be >= 1, got {args.repeat}")
    ks = [int(x) for x in args.k.split(",")]
    ds, queries, gt_D = load(args.data)
    work = tempfile.mkdtemp(prefix="lshdisk-algos-")
    rows, builds = [], []
    try:
        for algorithm in args.algorithms.split(","):
            # Warm the kernels on a tiny index, so build seconds measure building, not compiling.
            lshdisk.build(queries, os.path.join(work, f"warm-{algorithm}"), algorithm=algorithm,
                          memory_limit="16MiB").search(queries[:2], 10)
            path = os.path.join(work, f"mnist.{algorithm}")
            t0 = time.perf_counter()
            index = lshdisk.build(ds, path, algorithm=algorithm, c=2.0, page_size=4096, memory_limit=args.memory,
                                  seed=0, **RAW, preset=args.preset,
                                  unit=args.unit if args.unit == "auto" else float(args.unit))
            seconds = time.perf_counter() - t0
            info = index.info()
            builds.append((algorithm, info["params"]["m"], info["params"]["l"], seconds, info["index_bytes"]))
            index.search(queries, 10)  # warm the page cache
            passes = [evaluate(index, queries, gt_D, ks, threads=1) for _ in range(args.repeat)]
            for same_k in zip(*passes):
                rows.append(dict(same_k[0], cpu_ms=min(r["cpu_ms"] for r in same_k)))
            index.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Mnist (n = 60,000, d = 50), c = 2, 4 KiB pages, no buffer pool"
          + (f", preset {args.preset}" if args.preset else ""))
    print(f"{'algorithm':>9} {'m':>4} {'l':>4} {'build s':>8} {'index MiB':>10}")
    for a, m, l, s, b in builds:
        print(f"{a:>9} {m:>4} {l:>4} {s:>8.2f} {b / 2**20:>10.1f}")
    print()
    print(f"{'algorithm':>9} {'k':>4} {'ratio':>7} {'recall':>7} {'page reads':>10} {'seeks':>8} "
          f"{'MB read':>8} {'cands':>7} {'cpu ms':>8}")
    for k in ks:
        for r in rows:
            if r["k"] == k:
                print(f"{r['algorithm']:>9} {k:>4} {r['ratio']:>7.4f} {r['recall']:>7.3f} "
                      f"{r['page_reads']:>10.1f} {r['seeks']:>8.1f} {r['mb_read']:>8.2f} "
                      f"{r['candidates']:>7.1f} {r['cpu_ms']:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
