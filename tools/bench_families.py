#!/usr/bin/env python3
"""Learned hash families against the faithful methods and faiss IVFFlat with its lists on
disk, in one run: recall@10 against MB read per query.

Usage: python tools/bench_families.py [--set pydocs|mnist] [--queries 200] [--k 10]
       [--work data/bench/families] [--skip-qalsh] [--kmeans m,l,K,pool ...]
       [--pca NAME=VALUE,... ...] [--neoph NAME=VALUE,... ...] [--learned-caps 100,300]

Sets: ``pydocs`` (../shared/data/pydocs: 46,506 x 384 float32 text embeddings, the first
``--queries`` of its 1,000 queries, exact distances from gt_dist.fvecs), ``mnist``
(../shared/data/mnist: 60,000 x 50 uint8, its 100 queries), or a directory written by
``tools/make_sift_like.py`` with ``gt.qalsh`` from ``lshdisk groundtruth`` beside it
(for example 1,000,000 x 128 uint8).

Rows, each measured on the same queries with no buffer pool and one thread:
- QALSH at c = 2, 1.5, 1.3 (T1/T2 of the paper) and C2LSH at c = 2;
- kmeans (lshdisk.kmeans) for each ``--kmeans m,l,K,pool`` setting, ``max_candidates``
  swept (the verified candidates);
- pca and neoph (lshdisk.learned_trees, lshdisk.neoph: learned maps in QALSH's trees) for
  each ``--pca`` / ``--neoph`` setting, ``c=..`` and the family's parameters (``m``, ``l``,
  ``share``, ``hidden``, ``steps``), e.g. ``c=1.5,share=0.9``; searched with the paper's
  T1/T2, and with each ``--learned-caps`` value as ``max_candidates`` under
  ``--learned-termination`` (default ``budget``: T2 alone, no T1, since the learned maps
  have no guarantee for T1 to stand on);
- each lshdisk row in each ``--layouts`` vector layout (source order, and "-partition":
  stored by a learned partition, lshdisk.layout);
- faiss IVFFlat, nlist = 4 sqrt(n), trained on the same kind of sample (up to 200,000
  rows, seed 0), nprobe swept. Its lists are costed as stored on disk one after another in
  pages of 4 KiB (each list page-aligned: ids int64 and vectors in the data's dtype), each
  probed non-empty list one seek and its whole pages read; the coarse centroids are held in
  memory (as lshdisk's own catalog arrays are).
Printed per row: recall@10, overall ratio, MB read, pages, seeks, candidates (verified;
IVF: vectors scanned), CPU ms, HDD and SSD QPT (cost_model, Jafari & Nagarkar 2021 profiles;
the CPU term is each method's own measured time), build seconds; then the linear scan.

faiss-cpu is a benchmark-only dependency: installed into the running interpreter's
environment with pip if missing, never needed by lshdisk itself.
"""

import argparse
import importlib
import math
import os
import subprocess
import sys
import time

import numpy as np

import lshdisk
from cost_model import HDD, SSD, linear_scan_cost, query_cost
from lshdisk.evaluate import overall_ratio, recall_at_k

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
PAGE = 4096


def _faiss():
    try:
        return importlib.import_module("faiss")
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "faiss-cpu"])
        return importlib.import_module("faiss")


def load_set(name, n_queries):
    """(source path, source kwargs, base array (n, d), queries float32, exact distances)."""
    if name == "pydocs":
        root = os.path.join(SHARED, "pydocs")
        src = os.path.join(root, "base.fvecs")
        q = lshdisk.read_queries(os.path.join(root, "query.fvecs"))[:n_queries]
        gt = lshdisk.read_queries(os.path.join(root, "gt_dist.fvecs"))[:n_queries]
        kw = {}
    elif name == "mnist":
        root = os.path.join(SHARED, "mnist")
        src = os.path.join(root, "Mnist.ds")
        kw = {"format": "raw", "dtype": "uint8", "dim": 50}
        q = lshdisk.read_queries(os.path.join(root, "Mnist.q"), **kw)[:n_queries]
        gt, _ = lshdisk.read_groundtruth(os.path.join(root, "Mnist.gt2.0"), n_queries=q.shape[0])
    elif os.path.isdir(name):  # tools/make_sift_like.py's output, with its ground truth
        src = os.path.join(name, "base.u8bin")
        q = lshdisk.read_queries(os.path.join(name, "query.u8bin"))
        gt_path = os.path.join(name, "gt.qalsh")
        if not os.path.exists(gt_path):
            raise SystemExit(f"no {gt_path}: run lshdisk groundtruth {src} "
                             f"{os.path.join(name, 'query.u8bin')} -k 100 --out {gt_path}")
        # The file's every query (its k is its size over theirs), then the first n_queries.
        gt = lshdisk.read_groundtruth(gt_path, n_queries=q.shape[0])[0][:n_queries]
        q = q[:n_queries]
        kw = {}
    else:
        raise SystemExit(f"--set must be pydocs, mnist or a directory of make_sift_like.py, "
                         f"got {name!r}")
    source = lshdisk.datasets.open_source(src, **kw)
    try:
        x = np.concatenate([rows for _, rows in source.iter_chunks(1 << 16)])
    finally:
        source.close()
    return src, kw, x, q.astype(np.float32), gt


def _costs(seeks, bytes_read, cpu_ms):
    return [float(query_cost(seeks, bytes_read, cpu_ms, p).qpt_ms.mean()) for p in (HDD, SSD)]


def row(name, D, gt, k, *, pages, seeks, bytes_read, cands, cpu_ms, build_s):
    hdd, ssd = _costs(seeks, bytes_read, cpu_ms)
    return {"method": name, "recall": recall_at_k(D, gt, k), "ratio": overall_ratio(D, gt, k),
            "mb": float(np.mean(bytes_read)) / 1e6, "pages": float(np.mean(pages)),
            "seeks": float(np.mean(seeks)), "cands": float(np.mean(cands)),
            "cpu_ms": float(np.mean(cpu_ms)), "hdd_ms": hdd, "ssd_ms": ssd, "build_s": build_s}


def lshdisk_rows(index, name, q, gt, k, build_s, caps, capped_termination="paper"):
    index.search(q[:5], k, threads=1)  # compile before timing
    out = []
    for cap in caps:
        term = "paper" if cap is None else capped_termination
        D, _, st = index.search(q, k, return_stats=True, max_candidates=cap, threads=1,
                                termination=term)
        label = name if cap is None else f"{name} cap {cap}" + (
            f" {term}" if term != "paper" else "")
        out.append(row(label, D, gt, k, pages=st.page_reads, seeks=st.seeks,
                       bytes_read=st.bytes_read, cands=st.candidates,
                       cpu_ms=st.cpu_seconds * 1e3, build_s=build_s))
    return out


def build_or_open(work, tag, src, kw, **build_kw):
    path = os.path.join(work, tag)
    if os.path.isdir(path):
        index = lshdisk.open(path)
        return index, index.metadata.build.seconds
    t0 = time.perf_counter()
    index = lshdisk.build(src, path, memory_limit="1GiB", seed=0, **kw, **build_kw)
    return index, time.perf_counter() - t0


def ivf_rows(x, q, gt, k, nprobes):
    """faiss IVFFlat, its lists costed as page-aligned runs on disk (see the docstring)."""
    faiss = _faiss()
    n, d = x.shape
    nlist = int(round(4 * math.sqrt(n)))
    xf = np.ascontiguousarray(x, dtype=np.float32)
    t0 = time.perf_counter()
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist)
    rng = np.random.default_rng(0)
    train = xf if n <= 200_000 else xf[np.sort(rng.choice(n, 200_000, replace=False))]
    index.train(train)
    index.add(xf)
    build_s = time.perf_counter() - t0
    sizes = np.array([index.invlists.list_size(i) for i in range(nlist)], dtype=np.int64)
    entry = 8 + d * x.dtype.itemsize
    list_pages = -(-sizes * entry // PAGE)
    faiss.omp_set_num_threads(1)
    out = []
    for nprobe in nprobes:
        index.nprobe = nprobe
        t0 = time.process_time()
        D, _ = index.search(np.ascontiguousarray(q), k)
        cpu_ms = (time.process_time() - t0) * 1e3 / q.shape[0]
        _, lists = quantizer.search(np.ascontiguousarray(q), nprobe)
        pages = list_pages[lists].sum(1)
        seeks = (sizes[lists] > 0).sum(1)
        scanned = sizes[lists].sum(1)
        D = np.sqrt(np.maximum(D, 0))
        out.append(row(f"faiss IVFFlat nlist {nlist} nprobe {nprobe}", D, gt, k, pages=pages,
                       seeks=seeks, bytes_read=pages * PAGE, cands=scanned,
                       cpu_ms=np.full(q.shape[0], cpu_ms), build_s=build_s))
    return out


def _settings(spec):
    """``"c=1.5,m=32,share=0.9"`` -> {"c": 1.5, "m": 32, "share": 0.9} (ints where integral)."""
    out = {}
    for item in filter(None, spec.split(",")):
        name, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"a setting is NAME=VALUE, got {item!r}")
        out[name] = int(value) if value.lstrip("-").isdigit() else float(value)
    return out


def print_rows(rows):
    head = (f"{'method':<38}{'recall':>7}{'ratio':>7}{'MB':>8}{'pages':>8}{'seeks':>7}"
            f"{'cands':>8}{'cpu ms':>8}{'HDD ms':>9}{'SSD ms':>8}{'build s':>8}")
    print(head)
    for r in rows:
        print(f"{r['method']:<38}{r['recall']:>7.3f}{r['ratio']:>7.4f}{r['mb']:>8.2f}"
              f"{r['pages']:>8.0f}{r['seeks']:>7.0f}{r['cands']:>8.0f}{r['cpu_ms']:>8.2f}"
              f"{r['hdd_ms']:>9.1f}{r['ssd_ms']:>8.2f}{r['build_s']:>8.1f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="pydocs")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--work", default=os.path.join(HERE, "..", "data", "bench", "families"))
    ap.add_argument("--skip-qalsh", action="store_true")
    ap.add_argument("--qalsh-c", default="2,1.5,1.3", help="QALSH's c values")
    ap.add_argument("--kmeans", nargs="*", default=["32,8,256,8", "16,4,256,1"],
                    help="settings m,l,K,pool")
    ap.add_argument("--caps", default="100,200,300,500,800,1500")
    ap.add_argument("--layouts", default="source,partition",
                    help="vector layouts to build (lshdisk.layout)")
    ap.add_argument("--pca", nargs="*", default=["c=2", "c=1.5", "c=1.3"],
                    help="settings NAME=VALUE,... (c and pca parameters)")
    ap.add_argument("--neoph", nargs="*", default=[],
                    help="settings NAME=VALUE,... (c and neoph parameters; needs torch)")
    ap.add_argument("--learned-caps", default="",
                    help="max_candidates values for the pca / neoph rows, besides T1/T2")
    ap.add_argument("--learned-termination", default="budget", choices=["paper", "budget"],
                    help="termination of the capped pca / neoph rows (budget: T2 alone, the "
                         "search widens until max_candidates are verified)")
    ap.add_argument("--nprobe", default="8,16,32,64,128")
    args = ap.parse_args(argv)
    work = os.path.abspath(os.path.join(args.work, os.path.basename(os.path.normpath(args.set))))
    os.makedirs(work, exist_ok=True)
    src, kw, x, q, gt = load_set(args.set, args.queries)
    k = args.k
    n, d = x.shape
    print(f"{args.set}: n = {n}, d = {d} ({x.dtype}), {q.shape[0]} queries, k = {k}", flush=True)
    rows = []
    if not args.skip_qalsh:
        for c in (float(v) for v in args.qalsh_c.split(",")):
            for layout in args.layouts.split(","):
                tag = "" if layout == "source" else f"-{layout}"
                index, bs = build_or_open(work, f"qalsh-c{c}{tag}", src, kw, algorithm="qalsh",
                                          c=c, layout=layout)
                with index:
                    rows += lshdisk_rows(index, f"QALSH c {c}{tag}", q, gt, k, bs, [None])
        index, bs = build_or_open(work, "c2lsh-c2", src, kw, algorithm="c2lsh", c=2)
        with index:
            rows += lshdisk_rows(index, "C2LSH c 2", q, gt, k, bs, [None])
        print_rows(rows)
    caps = [int(v) for v in args.caps.split(",")]
    for spec in args.kmeans:
        m, l, cells, pool = (int(v) for v in spec.split(","))
        for layout in args.layouts.split(","):
            tag = "" if layout == "source" else f"-{layout}"
            index, bs = build_or_open(work, f"kmeans-{m}-{l}-{cells}-{pool}{tag}", src, kw,
                                      algorithm="kmeans", layout=layout,
                                      options={"m": m, "l": l, "centroids": cells,
                                               "pool": pool})
            with index:
                new = lshdisk_rows(index, f"kmeans m{m} l{l} K{cells} pool{pool}{tag}", q, gt,
                                   k, bs, caps)
            print_rows(new)
            rows += new
    learned_caps = [None] + [int(v) for v in args.learned_caps.split(",") if v]
    for family, specs in (("pca", args.pca), ("neoph", args.neoph)):
        for spec, layout in ((s, lay) for s in specs for lay in args.layouts.split(",")):
            options = _settings(spec)
            c = float(options.pop("c", 2.0))
            tag = "" if layout == "source" else f"-{layout}"
            name = f"{family}-" + "-".join(f"{k}{v}" for k, v in sorted(dict(options, c=c).items()))
            index, bs = build_or_open(work, name + tag, src, kw, algorithm=family, c=c,
                                      layout=layout, options=options)
            with index:
                p = index.params
                label = f"{family} c {c} m {p.m} l {p.l} w {p.w:.3g}" + "".join(
                    f" {k} {v}" for k, v in sorted(options.items()) if k not in ("m", "l")) + tag
                new = lshdisk_rows(index, label, q, gt, k, bs, learned_caps,
                                   args.learned_termination)
            print_rows(new)
            rows += new
    new = ivf_rows(x, q, gt, k, [int(v) for v in args.nprobe.split(",")])
    print_rows(new)
    rows += new
    xf = x.astype(np.float32)
    t0 = time.process_time()
    for j in range(q.shape[0]):
        diff = xf - q[j]
        np.argpartition(np.einsum("ij,ij->i", diff, diff), k)
    scan_ms = (time.process_time() - t0) * 1e3 / q.shape[0]
    for p in (HDD, SSD):
        cost = linear_scan_cost(n, d, x.dtype.itemsize, scan_ms, p)
        print(f"linear scan on {p.name}: {n * d * x.dtype.itemsize / 1e6:.2f} MB, "
              f"{float(cost.qpt_ms[0]):.1f} ms per query")
    return rows


if __name__ == "__main__":
    main()
