#!/usr/bin/env python3
"""Segments at scale: insert, delete and compact an index of 1,000,000 points, the search
cost of s segments, and the sharded build on a Dask LocalCluster of 1 and 2 workers.

Usage: python tools/bench_segments.py [--data DIR] [--base 1000000] [--queries 200] [--k 10]
       [--algorithm qalsh] [--param NAME=VALUE ...] [--memory 1GiB] [--delete 0.1]
       [--layout source] [--max-candidates N] [--segments 1,2,4,8] [--workers 1,2]
       [--work DIR] [--skip STEP,...] [--json FILE]

DIR holds ``base.u8bin`` (the first ``--base`` rows are the index, the rest the insert: at
least 10 % more) and ``query.u8bin``, e.g. from
``python tools/make_sift_like.py data/bench/sift1m1 --n 1100000`` (a synthetic SIFT-like set:
say so wherever its numbers are quoted). Needs ``lshdisk[distributed]`` for the Dask step.

Steps (``--skip`` names them):

- ``insert``: a fresh build over all rows (the full rebuild) against a build of the base
  rows followed by ``index.add`` of the rest: the insert's seconds as a share of the
  rebuild's, and recall@k, pages, seeks and MB per query of both.
- ``delete``: ``index.delete`` of a seeded ``--delete`` share of the ids: no deleted id is
  returned (answers and verified candidates checked), recall over the remaining points.
- ``compact``: ``index.compact`` against a fresh build over the surviving points: answers
  equal (ids through the survivors' ids, distances), seconds of both.
- ``segments``: the same points built as s segments (``lshdisk.distributed.build`` without
  a client, partitions = s): recall, pages, seeks, MB and CPU per query against s = 1.
- ``dask``: ``lshdisk.distributed.build`` on a LocalCluster of each ``--workers`` count
  (processes, one thread each, warmed up by a small build first), partitions = the largest
  count: build seconds and speed-up, and its answers against the local build of the same
  partitions.

Ground truth: the exact 4k nearest neighbours of each query over all rows (one chunked
scan); recall over a subset (the base rows, the surviving points) takes the first k of those
in the subset, and the tool checks that k of them are there.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import lshdisk  # noqa: E402
from lshdisk import distributed as ld  # noqa: E402
from lshdisk.groundtruth import compute_groundtruth  # noqa: E402


def u8bin(path):
    """(n, d) uint8 memmap of a .u8bin file (int32 n, int32 d header)."""
    n, d = np.fromfile(path, dtype="<i4", count=2)
    return np.memmap(path, dtype=np.uint8, mode="r", offset=8, shape=(int(n), int(d)))


def params(values):
    out = {}
    for item in values:
        name, _, value = item.partition("=")
        try:
            out[name] = int(value)
        except ValueError:
            out[name] = float(value)
    return out


def recall_in(I, gt_ids, allowed, k):
    """Mean recall@k against the first k ids of ``gt_ids`` (rows: queries) in ``allowed``."""
    hits = []
    for i in range(I.shape[0]):
        truth = [g for g in gt_ids[i] if allowed(g)][:k]
        if len(truth) < k:
            raise SystemExit(f"query {i}: fewer than {k} ground-truth neighbours in the "
                             f"subset; raise the ground truth's depth")
        hits.append(len(set(I[i].tolist()) & set(truth)) / k)
    return float(np.mean(hits))


def measure(index, q, k, gt_ids, allowed, label, rows, kw):
    t0 = time.perf_counter()
    D, I, st = index.search(q, k, return_stats=True, threads=1, **kw)
    wall = time.perf_counter() - t0
    row = {"case": label, "recall": round(recall_in(I, gt_ids, allowed, k), 4),
           "pages": round(float(st.page_reads.mean()), 1),
           "seeks": round(float(st.seeks.mean()), 1),
           "mb": round(float(st.bytes_read.mean()) / 1e6, 3),
           "candidates": round(float(st.candidates.mean()), 1),
           "cpu_ms": round(1e3 * float(statistics.median(st.cpu_seconds)), 2),
           "query_s": round(wall / q.shape[0], 4), "segments": index.segment_count}
    rows.append(row)
    print(f"  {label:<34} recall {row['recall']:.4f}  pages {row['pages']:>9.1f}  seeks "
          f"{row['seeks']:>8.1f}  MB {row['mb']:>8.3f}  cand {row['candidates']:>8.1f}  "
          f"cpu {row['cpu_ms']:>7.2f} ms  segs {row['segments']}", flush=True)
    return D, I


def timed(label, fn, times):
    t0 = time.perf_counter()
    out = fn()
    times[label] = round(time.perf_counter() - t0, 2)
    print(f"  {label}: {times[label]:.2f} s", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(HERE, "..", "data", "bench", "sift1m1"))
    ap.add_argument("--base", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--algorithm", default="qalsh")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--layout", default="source")
    ap.add_argument("--max-candidates", type=int, default=None,
                    help="the search's candidate cap (default: the method's T2)")
    ap.add_argument("--memory", default="1GiB")
    ap.add_argument("--delete", type=float, default=0.1)
    ap.add_argument("--segments", default="1,2,4,8")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--work", default=os.path.join(HERE, "..", "data", "bench", "segments"))
    ap.add_argument("--skip", default="")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    data_path = os.path.join(args.data, "base.u8bin")
    x = u8bin(data_path)
    q = np.asarray(u8bin(os.path.join(args.data, "query.u8bin"))[:args.queries], np.float32)
    n_all, base, k = x.shape[0], args.base, args.k
    if not 0 < base < n_all:
        raise SystemExit(f"--base must be below the {n_all} rows of {data_path}")
    build_kw = dict(algorithm=args.algorithm, memory_limit=args.memory, layout=args.layout,
                    options=params(args.param) or None)
    root = os.path.abspath(args.work)  # ground truth here, indexes in a folder per setting
    tag = "-".join([args.algorithm, args.layout] + sorted(args.param)).replace("=", "")
    work = os.path.join(root, tag)
    os.makedirs(work, exist_ok=True)
    rows, times = [], {}
    search_kw = {} if args.max_candidates is None else {"max_candidates": args.max_candidates}
    out = {"data": os.path.abspath(data_path), "n_all": n_all, "base": base,
           "queries": int(q.shape[0]), "k": k, "build": {kk: str(v) for kk, v in build_kw.items()},
           "rows": rows, "seconds": times}
    print(f"data {data_path}: {n_all} x {x.shape[1]}, base {base}, insert {n_all - base}, "
          f"{q.shape[0]} queries, k = {k}, {build_kw}", flush=True)
    gt_file = os.path.join(root, f"gt-{n_all}-{q.shape[0]}-{4 * k}.npy")
    if os.path.exists(gt_file):
        gt_ids = np.load(gt_file)
    else:
        gt_ids = timed("ground truth", lambda: compute_groundtruth(x, q, 4 * k)[1], times)
        np.save(gt_file, gt_ids)

    def fresh_dir(name):
        path = os.path.join(work, name)
        shutil.rmtree(path, ignore_errors=True)
        return path

    if "insert" not in skip or "delete" not in skip or "compact" not in skip:
        print("insert", flush=True)
        full = timed("full build (all rows)",
                     lambda: lshdisk.build(data_path, fresh_dir("full"), **build_kw), times)
        measure(full, q, k, gt_ids, lambda g: True, "fresh build, all rows", rows, search_kw)
        inc = timed("build (base rows)",
                    lambda: lshdisk.build(x[:base], fresh_dir("inc"), **build_kw), times)
        measure(inc, q, k, gt_ids, lambda g: g < base, "base rows only", rows, search_kw)
        ids = timed("insert", lambda: inc.add(x[base:], memory_limit=args.memory), times)
        assert ids[0] == base and ids[-1] == n_all - 1
        measure(inc, q, k, gt_ids, lambda g: True, "base + insert (2 segments)", rows,
                search_kw)
        out["insert_share_of_rebuild"] = round(times["insert"] / times["full build (all rows)"], 4)
        print(f"  insert / full rebuild = {out['insert_share_of_rebuild']:.3f}", flush=True)
        full.close()

        if "delete" not in skip:
            print("delete", flush=True)
            rng = np.random.default_rng(7)
            gone = np.sort(rng.choice(n_all, size=int(args.delete * n_all), replace=False))
            dead = np.zeros(n_all, dtype=bool)
            dead[gone] = True
            count = timed("delete", lambda: inc.delete(gone), times)
            assert count == gone.size
            _, I = measure(inc, q, k, gt_ids, lambda g: not dead[g], "after delete", rows,
                           search_kw)
            _, _, cands = inc.search(q, k, return_candidates=True, threads=1, **search_kw)
            returned = int(dead[I[I >= 0]].sum()) + sum(int(dead[c].sum()) for c, _ in cands)
            out["deleted_returned"] = returned
            print(f"  deleted ids among answers and verified candidates: {returned}", flush=True)
            assert returned == 0
            if "compact" not in skip:
                print("compact", flush=True)
                kept = timed("compact", lambda: inc.compact(memory_limit=args.memory), times)
                Dc, Ic = measure(inc, q, k, gt_ids, lambda g: not dead[g], "after compact",
                                 rows, search_kw)
                keep = np.flatnonzero(~dead)
                assert kept == keep.size
                survivors = np.asarray(x[keep])
                fresh = timed("fresh build (survivors)",
                              lambda: lshdisk.build(survivors, fresh_dir("survivors"),
                                                    **build_kw), times)
                del survivors
                Df, If = fresh.search(q, k, threads=1, **search_kw)
                If = np.where(If >= 0, keep[np.maximum(If, 0)], -1)  # to the survivors' ids
                same = bool(np.array_equal(Ic, If) and np.array_equal(Dc, Df))
                out["compact_equals_fresh"] = same
                print(f"  compacted answers equal the fresh build's: {same}", flush=True)
                fresh.close()
        inc.close()

    if "segments" not in skip:
        print("segments (same points, s segments)", flush=True)
        for s in [int(v) for v in args.segments.split(",")]:
            index = timed(f"build, {s} segment(s)",
                          lambda: ld.build(data_path, fresh_dir(f"seg{s}"), partitions=s,
                                           **build_kw), times)
            measure(index, q, k, gt_ids, lambda g: True, f"{s} segment(s)", rows, search_kw)
            index.close()

    if "dask" not in skip:
        from dask.distributed import Client, LocalCluster
        counts = [int(v) for v in args.workers.split(",")]
        parts = max(counts)
        print(f"dask (partitions = {parts})", flush=True)
        local_dir = os.path.join(work, f"seg{parts}")
        if not os.path.isdir(local_dir):
            ld.build(data_path, fresh_dir(f"seg{parts}"), partitions=parts, **build_kw).close()
        local = lshdisk.open(local_dir)
        D0, I0 = local.search(q, k, threads=1, **search_kw)
        for w in counts:
            with LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                              dashboard_address=":0") as cluster, Client(cluster) as client:
                ld.build(np.asarray(x[:2000]), fresh_dir("warm"), client=client,
                         partitions=w, **build_kw).close()
                index = timed(f"dask build, {w} worker(s)",
                              lambda: ld.build(data_path, fresh_dir(f"dask{w}"), client=client,
                                               partitions=parts, **build_kw), times)
                D1, I1 = ld.search(index.path, q, k, client=client, **search_kw)
                same = bool(np.array_equal(I0, I1) and np.array_equal(D0, D1))
                out[f"dask{w}_equals_local"] = same
                print(f"  answers equal the local {parts}-partition build's: {same}", flush=True)
                index.close()
        if len(counts) > 1:
            t = [times[f"dask build, {w} worker(s)"] for w in counts]
            out["dask_speedup"] = round(t[0] / t[-1], 3)
            print(f"  speed-up {counts[-1]} vs {counts[0]} worker(s): {out['dask_speedup']:.2f}x",
                  flush=True)
        local.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
