#!/usr/bin/env python3
"""Out-of-core check: build an index of a dataset several times the memory limit, inside a
memory cgroup, and report peak memory, time and a search.

Usage: python tools/bench_memory.py [--workdir DIR] [--n 2097152] [--d 128]
       [--data PATH [--queries PATH]] [--memory 256MiB] [--cgroup-limit 512MiB]
       [--algorithm qalsh] [--layout source] [--param NAME=VALUE ...]

Generates a clustered float32 .npy of n x d (2,097,152 x 128 = 1 GiB by default) unless it
exists, or with --data uses an existing dataset (any format ``lshdisk build`` reads, e.g.
``data/bench/sift1m/base.u8bin`` of ``tools/make_sift_like.py``; --n and --d are then
ignored), then runs ``lshdisk build DATA INDEX --memory M`` as a child process placed in a new
memory cgroup capped at --cgroup-limit (cgroup v2 ``memory.max`` or v1
``memory.limit_in_bytes``; page cache is reclaimable there, anonymous memory is not, and
there is no swap). Needs root to create the cgroup; without one it still runs and reports the
child's peak resident set. Prints the cgroup's peak usage, its peak anonymous memory (sampled), the
child's peak RSS, the build time and a 10-NN search of 10 queries (generated ones; with --data
the first 10 rows of --queries, or without it 10 evenly spaced rows of the data), checking
the returned distances against the data's rows.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

import lshdisk
from lshdisk._units import parse_bytes
from lshdisk.datasets import open_source
from lshdisk.synthetic import clustered_chunks, write_clustered


def make_cgroup(limit_bytes):
    """Create a memory cgroup; return (procs_file, peak_reader, cleanup) or None."""
    name = f"lshdisk-bench-{os.getpid()}"
    v2 = "/sys/fs/cgroup/unified" if os.path.exists("/sys/fs/cgroup/unified/cgroup.procs") else "/sys/fs/cgroup"
    v1 = "/sys/fs/cgroup/memory"
    try:
        if os.path.exists(os.path.join(v1, "memory.limit_in_bytes")):
            path = os.path.join(v1, name)
            os.mkdir(path)
            with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
                f.write(str(limit_bytes))
            peak = os.path.join(path, "memory.max_usage_in_bytes")
            stat, anon_key = os.path.join(path, "memory.stat"), "total_rss"
        elif os.path.exists(os.path.join(v2, "cgroup.controllers")):
            path = os.path.join(v2, name)
            os.mkdir(path)
            with open(os.path.join(path, "memory.max"), "w") as f:
                f.write(str(limit_bytes))
            peak = os.path.join(path, "memory.peak")
            stat, anon_key = os.path.join(path, "memory.stat"), "anon"
        else:
            return None
    except OSError as exc:
        print(f"no memory cgroup ({exc}); reporting the child's peak RSS only")
        return None

    def read_peak():
        try:
            with open(peak) as f:
                return int(f.read())
        except OSError:
            return None

    def read_anon():
        try:
            with open(stat) as f:
                for line in f:
                    key, value = line.split()
                    if key == anon_key:
                        return int(value)
        except OSError:
            pass
        return 0

    return os.path.join(path, "cgroup.procs"), read_peak, lambda: os.rmdir(path), read_anon


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/lshdisk-memory-bench")
    ap.add_argument("--n", type=int, default=2_097_152)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--data", help="an existing dataset to build (skips generating one)")
    ap.add_argument("--queries", help="with --data: a query file (its first 10 rows are used)")
    ap.add_argument("--memory", default="256MiB")
    ap.add_argument("--cgroup-limit", default="512MiB")
    ap.add_argument("--algorithm", default="qalsh")
    ap.add_argument("--layout", default="source", help="vector layout (source, partition)")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="a method parameter, passed to lshdisk build (repeatable)")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    if args.queries and not args.data:
        ap.error("--queries needs --data")
    data = args.data or os.path.join(args.workdir, f"clustered-{args.n}x{args.d}.npy")
    if args.data and not os.path.exists(data):
        ap.error(f"--data {data} does not exist: give an existing dataset file")
    if not os.path.exists(data):
        t0 = time.perf_counter()
        write_clustered(data, args.n, args.d, seed=11)
        print(f"generated {data} ({os.path.getsize(data) / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f} s")
    index_dir = os.path.join(args.workdir, f"index-{args.algorithm}")
    shutil.rmtree(index_dir, ignore_errors=True)
    limit = parse_bytes(args.cgroup_limit)
    cg = make_cgroup(limit)
    cmd = [sys.executable, "-m", "lshdisk.cli", "build", data, index_dir, "--algorithm", args.algorithm,
           "--memory", args.memory, "--layout", args.layout, "-q"]
    for item in args.param:
        cmd += ["--param", item]
    preexec = None
    if cg is not None:
        procs = cg[0]

        def preexec():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
    anon_peak = [0]
    done = threading.Event()

    def sample():  # anonymous (non-reclaimable) memory of the cgroup, every 50 ms
        while not done.wait(0.05):
            anon_peak[0] = max(anon_peak[0], cg[3]())

    sampler = threading.Thread(target=sample, daemon=True) if cg is not None else None
    if sampler is not None:
        sampler.start()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, preexec_fn=preexec, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    done.set()
    if sampler is not None:
        sampler.join()
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    peak = cg[1]() if cg is not None else None
    if cg is not None:
        cg[2]()
    print(proc.stdout.strip())
    if proc.returncode != 0:
        print(proc.stderr.strip())
        print(f"build FAILED with exit code {proc.returncode} after {seconds:.1f} s")
        return 1
    print(f"data {os.path.getsize(data) / 2**20:.0f} MiB, --memory {args.memory}, cgroup limit "
          f"{args.cgroup_limit if cg else 'none'}: build {seconds:.1f} s, child peak RSS "
          f"{child_rss / 2**20:.0f} MiB (file-backed pages of the memory-mapped data included)"
          + (f", cgroup peak usage (page cache included) {peak / 2**20:.0f} MiB, peak anonymous "
             f"memory sampled every 50 ms {anon_peak[0] / 2**20:.0f} MiB" if peak else ""))
    with open_source(data) as base:
        if args.queries:
            with open_source(args.queries) as q:
                queries = q.read_rows(0, min(10, q.n))
        elif args.data:
            queries = np.concatenate([base.read_rows(i, i + 1)
                                      for i in np.linspace(0, base.n - 1, 10).astype(int)])
        else:
            queries = next(clustered_chunks(10, args.d, seed=11, stream=1))
        queries = queries.astype(np.float32)
        with lshdisk.open(index_dir) as index:
            D, I, st = index.search(queries, 10, return_stats=True)
            index_mib = index.info()["index_bytes"] / 2**20
        found = I[:, 0] >= 0
        nearest = np.concatenate([base.read_rows(i, i + 1) for i in I[found, 0].tolist()]
                                 + [np.empty((0, base.d), dtype=base.dtype)])
        exact = np.linalg.norm(nearest.astype(np.float64) - queries[found], axis=1)
        ok = bool(found.all()) and np.allclose(exact, D[found, 0], rtol=1e-4, atol=1e-3)
        print(f"search k=10 on {index_mib:.0f} MiB index: mean "
              f"{st.page_reads.mean():.0f} page reads, {st.cpu_seconds.mean() * 1e3:.1f} ms per query; "
              f"{int(found.sum())} of {found.size} queries answered, returned distances "
              f"{'match' if ok else 'DO NOT match'} the data")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
