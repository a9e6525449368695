#!/usr/bin/env python3
"""Validate the I/O cost model against wall time on this machine's disk.

Usage: python tools/validate_cost_model.py [--work DIR] [--data ../shared/data/mnist]
       [--queries 100] [-k 10] [--synthetic 500000x64] [--calibrate-size 2GiB]
       [--profile FILE] [--algorithms c2lsh,qalsh,ilsh] [--csv FILE] [--keep]

1. Calibrates the disk under --work (``lshdisk.calibrate.measure``: O_DIRECT random 4 KiB reads
   and a sequential pass) right before each index is validated, unless --profile gives a
   profile: the latency of a virtual disk drifts over minutes with the host's load, so the
   profile is measured next to the queries it predicts (never fitted to them).
2. Builds one index per algorithm of the real Mnist set (raw uint8 60,000 x 50) and of a
   synthetic clustered set (500,000 x 64 float32, 128 MB of vectors, ~300 MB of index), both
   under --work, on the same file system as the calibration file.
3. Per query: evicts the index's files from the page cache (``os.fsync`` once, then
   ``posix_fadvise(POSIX_FADV_DONTNEED)`` before every query), times one search with no buffer
   pool (wall clock: the measured QPT), then searches the same query again with the pages
   cached to measure its CPU time without device waits (``algorithm_ms``; the cold run's CPU
   time also holds the kernel's I/O work, which the seek and read terms already count).
4. Compares the measured time with two predictions from the calibrated profile:
   *study*: ``seeks * seek_ms + MB / read_mb_per_ms + algorithm_ms`` (Jafari & Nagarkar 2021,
   Section 4.2) on the index's own counts; *read-ahead*: the same formula on the device
   requests and bytes that Linux read-ahead makes of the query's page-access trace
   (``cost_model.readahead_io``; the trace is every device read the index's counter counts,
   recorded by a trace sink on it, ``storage.IOCounter.set_trace``).
5. Prints, per dataset and algorithm, the median and 90th percentile of
   |predicted - measured| / measured, the signed median, and the measured device requests and
   bytes (``/sys/block/<dev>/stat``, system-wide, and ``/proc/self/io``) beside the counted and
   simulated ones, which is how a miss is diagnosed.

Target: median error <= 30 %. Runs in about 5-10 minutes with the defaults.
"""

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import lshdisk
from cost_model import load_profile, query_cost, readahead_io
from lshdisk.calibrate import measure
from lshdisk.synthetic import clustered_chunks, write_clustered
from storage.iostats import DEVICE_READ

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "mnist"))


# ----------------------------------------------------------------------------- trace capture
class _Tracer:
    """A trace sink for an index (``index.set_trace``): keeps its device reads as (file path,
    first page, pages), the trace ``cost_model.readahead_io`` takes."""

    def __init__(self, index):
        self.trace = []
        self._path = index.file_path

    def __call__(self, file_id, first_page, n_pages, access):
        if access == DEVICE_READ:
            self.trace.append((self._path(file_id), first_page, n_pages))


# ----------------------------------------------------------------------------- device counters
def _block_stat_path(directory):
    st = os.stat(directory)
    path = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/stat"
    return path if os.path.exists(path) else None


def _device_reads(stat_path):
    """(read requests completed, bytes read) of the block device, system-wide; or (0, 0)."""
    if stat_path is None:
        return 0, 0
    with open(stat_path) as f:
        fields = f.read().split()
    return int(fields[0]), int(fields[2]) * 512


def _process_read_bytes():
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# ----------------------------------------------------------------------------- the experiment
def _index_files(index):
    return [os.path.join(index.path, name) for name in sorted(index.info()["files"])]


def _validate_index(index, queries, k, profile, stat_path):
    """Per-query rows: measured wall ms, counts, device counters, predictions."""
    paths = _index_files(index)
    fds = [os.open(p, os.O_RDONLY) for p in paths]
    file_pages = {p: os.path.getsize(p) // index.meta["page_size"] for p in paths}
    tracer = _Tracer(index)
    rows = []
    try:
        for fd in fds:
            os.fsync(fd)
        index.search(queries[:1], k)  # load the compiled kernels
        for i in range(queries.shape[0]):
            q = queries[i:i + 1]
            for fd in fds:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            tracer.trace = []
            index.set_trace(tracer)
            dev0, pio0 = _device_reads(stat_path), _process_read_bytes()
            t0 = time.perf_counter()
            _, _, cold = index.search(q, k, return_stats=True)
            wall_ms = (time.perf_counter() - t0) * 1e3
            dev1, pio1 = _device_reads(stat_path), _process_read_bytes()
            index.set_trace(None)
            trace = tracer.trace
            traced = sum(n for _, _, n in trace)
            if traced != int(cold.page_reads[0]):
                raise RuntimeError(f"query {i}: the trace holds {traced} pages but the search "
                                   f"counted {int(cold.page_reads[0])}")
            _, _, warm = index.search(q, k, return_stats=True)  # pages now cached: CPU only
            alg_ms = float(warm.cpu_seconds[0]) * 1e3
            ra = readahead_io(trace, file_pages, page_size_bytes=index.meta["page_size"],
                              readahead_bytes=profile.readahead_bytes)
            study = query_cost(cold.seeks[0], cold.bytes_read[0], alg_ms, profile).mean()
            model_ra = query_cost(ra.requests, ra.bytes_read, alg_ms, profile).mean()
            rows.append({
                "algorithm": index.algorithm, "query": i, "wall_ms": wall_ms,
                "seeks": int(cold.seeks[0]), "page_reads": int(cold.page_reads[0]),
                "mb_read": int(cold.bytes_read[0]) / 1e6, "algorithm_ms": alg_ms,
                "cold_cpu_ms": float(cold.cpu_seconds[0]) * 1e3,
                "device_requests": dev1[0] - dev0[0], "device_mb": (dev1[1] - dev0[1]) / 1e6,
                "process_mb": (pio1 - pio0) / 1e6,
                "sim_requests": ra.requests, "sim_mb": ra.bytes_read / 1e6,
                "study_ms": study["qpt_ms"], "readahead_ms": model_ra["qpt_ms"],
            })
    finally:
        index.set_trace(None)
        for fd in fds:
            os.close(fd)
    return rows


def _summary(rows):
    wall = np.array([r["wall_ms"] for r in rows])
    out = {"queries": len(rows), "wall_ms": float(np.median(wall))}
    for model in ("study", "readahead"):
        pred = np.array([r[f"{model}_ms"] for r in rows])
        err = (pred - wall) / wall
        out[f"{model}_ms"] = float(np.median(pred))
        out[f"{model}_median"] = float(np.median(np.abs(err)))
        out[f"{model}_p90"] = float(np.percentile(np.abs(err), 90))
        out[f"{model}_bias"] = float(np.median(err))
    for key in ("seeks", "page_reads", "mb_read", "algorithm_ms", "cold_cpu_ms",
                "device_requests", "device_mb", "process_mb", "sim_requests", "sim_mb"):
        out[key] = float(np.median([r[key] for r in rows]))
    return out


def _print_summary(dataset, summaries):
    print(f"\n== {dataset}: error = |predicted - measured| / measured, per query")
    head = (f"{'algorithm':<9} {'wall ms':>8} {'study ms':>9} {'median':>7} {'p90':>6} {'bias':>7}"
            f"  {'RA ms':>8} {'median':>7} {'p90':>6} {'bias':>7}")
    print(head)
    print("-" * len(head))
    for alg, s in summaries.items():
        print(f"{alg:<9} {s['wall_ms']:>8.1f} {s['study_ms']:>9.1f} {s['study_median']:>7.1%} "
              f"{s['study_p90']:>6.1%} {s['study_bias']:>+7.1%}  {s['readahead_ms']:>8.1f} "
              f"{s['readahead_median']:>7.1%} {s['readahead_p90']:>6.1%} {s['readahead_bias']:>+7.1%}")
    print("  (study = seeks x seek_ms + MB / rate + algorithm_ms on the index's counts; RA = the "
          "same on the requests and bytes Linux read-ahead makes of the page trace)")
    print(f"\n   diagnosis (medians per query)   {'':>1}" + "".join(f"{a:>10}" for a in summaries))
    lines = [("counted seeks", "seeks", "{:.0f}"), ("device read requests", "device_requests", "{:.0f}"),
             ("simulated requests (RA)", "sim_requests", "{:.0f}"),
             ("counted MB", "mb_read", "{:.2f}"), ("device MB (/proc/self/io)", "process_mb", "{:.2f}"),
             ("simulated MB (RA)", "sim_mb", "{:.2f}"),
             ("algorithm ms (warm CPU)", "algorithm_ms", "{:.1f}"),
             ("cold-run CPU ms", "cold_cpu_ms", "{:.1f}")]
    for label, key, fmt in lines:
        print(f"   {label:<32}" + "".join(f"{fmt.format(s[key]):>10}" for s in summaries.values()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=None, help="working directory (default: a new one in /tmp)")
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder with Mnist.ds and Mnist.q")
    ap.add_argument("--queries", type=int, default=100, help="queries per index")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--synthetic", default="500000x64", help="N x D of the synthetic set, or 0")
    ap.add_argument("--calibrate-size", default="1GiB")
    ap.add_argument("--profile", default=None, help="use this profile instead of calibrating")
    ap.add_argument("--algorithms", default=",".join(lshdisk.ALGORITHMS))
    ap.add_argument("--csv", default=None, help="write the per-query rows here")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    args = ap.parse_args(argv)
    algorithms = [a for a in args.algorithms.split(",") if a]
    own_work = args.work is None
    work = tempfile.mkdtemp(prefix="lshdisk-validate-", dir="/tmp") if own_work else args.work
    os.makedirs(work, exist_ok=True)
    started = time.perf_counter()
    all_rows = []
    try:
        fixed = load_profile(args.profile) if args.profile else None
        notes_shown = []

        def current_profile():
            if fixed is not None:
                profile = fixed
            else:
                cal = measure(work, size=args.calibrate_size, name="local")
                profile = cal.profile
                print(f"  calibration of {cal.device or 'the disk'} under {work} ({cal.method}, "
                      f"{cal.file_bytes / 2**20:.0f} MiB): random {profile.page_size_bytes} B "
                      f"reads mean {cal.random_read_ms_mean:.4f} ms (median "
                      f"{cal.random_read_ms_median:.4f}, p90 {cal.random_read_ms_p90:.4f}); "
                      f"sequential {cal.sequential_mb_per_ms:.3f} MB/ms")
                for note in cal.notes:
                    if note not in notes_shown:
                        print(f"  note: {note}")
                        notes_shown.append(note)
            print(f"  profile: seek_ms = {profile.seek_ms:.6g}, read_mb_per_ms = "
                  f"{profile.read_mb_per_ms:.6g}, readahead_bytes = {profile.readahead_bytes}")
            return profile

        stat_path = _block_stat_path(work)

        datasets = []
        mnist = os.path.join(args.data, "Mnist.ds")
        if os.path.exists(mnist):
            q = lshdisk.read_queries(os.path.join(args.data, "Mnist.q"), format="raw",
                                     dtype="uint8", dim=50)[:args.queries]
            datasets.append(("Mnist (60,000 x 50 uint8)", mnist,
                             dict(format="raw", dtype="uint8", dim=50), q))
        else:
            print(f"no Mnist data in {args.data}: skipping it")
        if args.synthetic not in ("0", ""):
            n, d = (int(v) for v in args.synthetic.lower().split("x"))
            path = os.path.join(work, f"clustered-{n}x{d}.npy")
            if not os.path.exists(path):
                write_clustered(path, n, d, seed=11)
            q = next(clustered_chunks(args.queries, d, seed=11, stream=1))
            datasets.append((f"synthetic ({n:,} x {d} float32)", path, {}, q))

        for name, source, fmt, q in datasets:
            summaries = {}
            for algorithm in algorithms:
                index_dir = os.path.join(work, f"{os.path.basename(source)}.{algorithm}")
                if not os.path.isdir(index_dir):
                    lshdisk.build(source, index_dir, algorithm=algorithm, memory_limit="512MiB",
                                  seed=0, **fmt).close()
                with lshdisk.open(index_dir, cache_bytes=0) as index:
                    sizes = index.info()["files"]
                    print(f"\n{name} {algorithm}: files " + ", ".join(
                        f"{f} {v['bytes'] / 2**20:.1f} MiB" for f, v in sorted(sizes.items()))
                        + "; buffer pool 0 B; page cache evicted before every query")
                    profile = current_profile()
                    rows = _validate_index(index, q, args.k, profile, stat_path)
                for r in rows:
                    r["dataset"] = name
                    r["seek_ms"], r["read_mb_per_ms"] = profile.seek_ms, profile.read_mb_per_ms
                all_rows += rows
                summaries[algorithm] = _summary(rows)
            _print_summary(name, summaries)
        if args.csv and all_rows:
            with open(args.csv, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(all_rows[0]))
                w.writeheader()
                w.writerows(all_rows)
            print(f"\nper-query rows: {args.csv}")
        print(f"\ntotal {time.perf_counter() - started:.0f} s")
    finally:
        if own_work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
