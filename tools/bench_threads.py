#!/usr/bin/env python3
"""Throughput of parallel batch search: index.search(queries, k, threads=T) against T = 1.

Usage: python tools/bench_threads.py [--data ../shared/data/mnist] [--algorithms qalsh]
       [--threads 1,2] [--k 10] [--passes 5] [--copies 5]

Builds an index of the real Mnist set (raw uint8 60,000 x 50; c = 2, 4 KiB pages, no buffer
pool) per algorithm, then searches the 100 Mnist queries repeated --copies times (500
queries by default) with each thread count in turn, --passes times, alternating the thread
counts within a pass so that both see the same machine. Prints, per algorithm and thread
count, the median and best wall-clock queries per second and the speed-up over one thread,
and checks that ids, distances and every per-query count equal the one-thread run.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

import lshdisk
from mnist_data import DEFAULT_DATA, RAW, load

COUNTS = ("page_reads", "seeks", "bytes_read", "candidates", "rounds")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder with Mnist.ds, Mnist.q")
    ap.add_argument("--algorithms", default="qalsh")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--copies", type=int, default=5, help="repeat the query set this many times")
    args = ap.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",")]
    if 1 not in thread_counts:
        thread_counts.insert(0, 1)
    ds, queries, _ = load(args.data)
    batch = np.concatenate([queries] * args.copies)
    work = tempfile.mkdtemp(prefix="lshdisk-threads-")
    print(f"Mnist (n = 60,000, d = 50), {batch.shape[0]} queries, k = {args.k}, "
          f"{os.cpu_count()} cores, {args.passes} passes")
    print(f"{'algorithm':>9} {'threads':>7} {'median q/s':>11} {'best q/s':>9} "
          f"{'speed-up':>9} {'answers':>8}")
    failed = False
    try:
        for algorithm in args.algorithms.split(","):
            path = os.path.join(work, f"mnist.{algorithm}")
            index = lshdisk.build(ds, path, algorithm=algorithm, c=2.0, page_size=4096,
                                  memory_limit="1GiB", seed=0, **RAW)
            index.search(batch[:20], args.k, threads=max(thread_counts))  # compile, warm
            D0, I0, s0 = index.search(batch, args.k, return_stats=True, threads=1)
            seconds = {t: [] for t in thread_counts}
            same = {t: True for t in thread_counts}
            for _ in range(args.passes):
                for t in thread_counts:
                    t0 = time.perf_counter()
                    D, I, st = index.search(batch, args.k, return_stats=True, threads=t)
                    seconds[t].append(time.perf_counter() - t0)
                    same[t] &= bool(np.array_equal(I, I0) and np.array_equal(D, D0)
                                    and all(np.array_equal(st[c], s0[c]) for c in COUNTS))
            base = statistics.median(seconds[1])
            for t in thread_counts:
                med = statistics.median(seconds[t])
                failed |= not same[t]
                print(f"{algorithm:>9} {t:>7} {batch.shape[0] / med:>11.1f} "
                      f"{batch.shape[0] / min(seconds[t]):>9.1f} {base / med:>8.2f}x "
                      f"{'same' if same[t] else 'DIFFER':>8}")
            index.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
