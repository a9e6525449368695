#!/usr/bin/env python3
"""Benchmark lshdisk on the real Mnist set: build time, per-query time, quality and page I/O.

Usage: python tools/bench_mnist.py [--data ../shared/data/mnist] [--algorithm qalsh]
       [--k 1,10,100] [--memory 1GiB] [--builds 3] [--repeat 5] [--repeat-build]

Builds an index of Mnist.ds (60,000 x 50 uint8) with c = 2 and 4 KiB pages, searches the 100
queries of Mnist.q with no buffer pool (every page access is a counted read, as in the
reference codes), and compares with the exact ground truth Mnist.gt2.0. Each k is searched
--repeat times; CPU time per query is reported for the fastest pass ("cpu ms", the timeit
convention: other passes only add interference from the machine) and the median pass
("cpu med"). Answers and I/O counts are the same in every pass. The index is built --builds
times; the fastest and the median build time are printed. With --repeat-build, builds a
second time with the same seed and checks that every page file is byte-identical.
"""

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import lshdisk
from mnist_data import DEFAULT_DATA, RAW, load
from lshdisk.evaluate import overall_ratio, recall_at_k



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder with Mnist.ds, Mnist.q, Mnist.gt2.0")
    ap.add_argument("--algorithm", default="qalsh")
    ap.add_argument("--k", default="1,10,100")
    ap.add_argument("--memory", default="1GiB")
    ap.add_argument("--builds", type=int, default=3, help="builds of the index to time (>= 1)")
    ap.add_argument("--repeat", type=int, default=5, help="passes over the queries per k (>= 1)")
    ap.add_argument("--repeat-build", action="store_true")
    args = ap.parse_args(argv)
    ks = [int(x) for x in args.k.split(",")]
    if args.repeat < 1:
        ap.error(f"--repeat must be >= 1, got {args.repeat}")
    if args.builds < 1:
        ap.error(f"--builds must be >= 1, got {args.builds}")
    ds, queries, gt_D = load(args.data)

    work = tempfile.mkdtemp(prefix="lshdisk-bench-")
    try:
        # Warm the numba cache so the build time measures the build, not compilation.
        lshdisk.build(np.zeros((2000, 50), np.uint8) + np.arange(2000, dtype=np.uint8)[:, None],
                      os.path.join(work, "warm"), algorithm=args.algorithm).search(queries[:2], 10)
        idx_dir = os.path.join(work, "mnist.idx")
        build_s = []
        for b in range(args.builds):
            if b:
                index.close()
                shutil.rmtree(idx_dir)
            t0 = time.perf_counter()
            index = lshdisk.build(ds, idx_dir, algorithm=args.algorithm, c=2.0, page_size=4096,
                                  memory_limit=args.memory, seed=0, **RAW)
            build_s.append(time.perf_counter() - t0)
        build_s.sort()
        info = index.info()
        p = info["params"]
        print(f"Mnist n = {info['n']}, d = {info['d']}: {args.algorithm} m = {p['m']}, l = {p['l']}, "
              f"w = {p['w']:.4f}; build {build_s[0]:.2f} s (fastest of {args.builds}; median "
              f"{build_s[len(build_s) // 2]:.2f} s); index {info['index_bytes'] / 2**20:.1f} MiB")
        index.search(queries, 10)  # warm-up pass: page cache and kernels
        print(f"{'k':>4} {'ratio':>7} {'recall':>7} {'page I/O':>9} {'seeks':>8} {'MB read':>8} "
              f"{'cands':>7} {'cpu ms':>7} {'cpu med':>8} {'wall ms':>8}")
        for k in ks:
            passes = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                D, I, st = index.search(queries, k, return_stats=True, threads=1)
                wall_ms = (time.perf_counter() - t0) * 1e3 / queries.shape[0]
                passes.append((st.mean()["cpu_seconds"] * 1e3, wall_ms))
            m = st.mean()
            cpu = sorted(c for c, _ in passes)
            print(f"{k:>4} {overall_ratio(D, gt_D, k):>7.4f} {recall_at_k(D, gt_D, k):>7.3f} "
                  f"{m['page_reads']:>9.1f} {m['seeks']:>8.1f} {m['bytes_read'] / 1e6:>8.2f} "
                  f"{m['candidates']:>7.1f} {cpu[0]:>7.2f} {cpu[len(cpu) // 2]:>8.2f} "
                  f"{min(w for _, w in passes):>8.2f}")
        index.close()
        if args.repeat_build:
            again = os.path.join(work, "mnist-again.idx")
            lshdisk.build(ds, again, algorithm=args.algorithm, c=2.0, page_size=4096,
                          memory_limit="64MiB", seed=0, **RAW).close()
            files = sorted(f for f in os.listdir(idx_dir) if f.endswith(".pages"))
            same = all(filecmp.cmp(os.path.join(idx_dir, f), os.path.join(again, f), shallow=False)
                       for f in files)
            print(f"same seed, memory 64MiB vs {args.memory}: page files "
                  f"{'byte-identical' if same else 'DIFFER'} ({', '.join(files)})")
            if not same:
                return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
