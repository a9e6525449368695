#!/usr/bin/env python3
"""(Re)create the golden QALSH index of tests/data/ and the answers it must keep giving.

Usage: python tools/make_golden_index.py [--out tests/data]

Writes, deterministically:

- ``golden_qalsh_data.npy``: 600 x 8 uint8 points from ``np.random.default_rng(7)``;
- ``golden_qalsh/``: their index (c = 2, seed = 3, 512-byte pages), with the catalog's
  ``lock.mdb`` removed (a read-only open needs none);
- ``golden_qalsh_expected.json``: a fixed query set, its k = 5 results (ids and distances)
  and per-query page reads, seeks and candidates with no buffer pool, and the SHA-256 of
  each page file.

tests/lshdisk/test_golden.py checks that the committed index still opens and answers the
same way (style rule 21). Rerun this script only when the on-disk format or the search is
changed on purpose, and say so in the commit.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

import lshdisk

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "tests", "data"))

N, D = 600, 8
DATA_SEED = 7
INDEX_SEED = 3
C = 2.0
PAGE_SIZE = 512
K = 5
INDEX_NAME = "golden_qalsh"
DATA_NAME = "golden_qalsh_data.npy"
EXPECTED_NAME = "golden_qalsh_expected.json"


def golden_data():
    """The 600 x 8 uint8 points."""
    return np.random.default_rng(DATA_SEED).integers(0, 256, (N, D), dtype=np.uint8)


def golden_queries(x):
    """Fixed queries: three data points, a duplicate-free midpoint, random and corner points."""
    rng = np.random.default_rng(DATA_SEED + 1)
    rows = [x[0], x[123], x[599],
            (x[10].astype(np.float32) + x[11]) / 2,
            np.zeros(D), np.full(D, 255.0)]
    rows.extend(rng.uniform(0, 255, (4, D)))
    return np.asarray(rows, dtype=np.float32)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _dump(expected):
    """JSON text with one line per key, and one line per row of a table."""
    lines = []
    for key, value in expected.items():
        if isinstance(value, list) and value and isinstance(value[0], list):
            rows = ",\n  ".join(json.dumps(row) for row in value)
            lines.append(f' {json.dumps(key)}: [\n  {rows}\n ]')
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, sort_keys=True)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="Directory for the golden files.")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    index_dir = os.path.join(args.out, INDEX_NAME)
    x = golden_data()
    q = golden_queries(x)
    np.save(os.path.join(args.out, DATA_NAME), x)
    # unit=1: the papers' radii 1, c, c^2, ..., as the committed index (built before radii
    # followed a measured data unit) is searched; the page files do not depend on it.
    index = lshdisk.build(x, index_dir, algorithm="qalsh", c=C, page_size=PAGE_SIZE,
                          memory_limit="16MiB", seed=INDEX_SEED, overwrite=True, unit=1)
    index.close()
    lock = os.path.join(index_dir, "catalog", "lock.mdb")
    if os.path.exists(lock):
        os.remove(lock)
    with lshdisk.open(index_dir, cache_bytes=0) as index:
        dist, ids, stats = index.search(q, K, return_stats=True)
        info = index.info()
    expected = {
        "comment": "written by tools/make_golden_index.py; do not edit by hand",
        "data": {"file": DATA_NAME, "n": N, "d": D, "dtype": "uint8", "rng_seed": DATA_SEED},
        "build": {"algorithm": "qalsh", "c": C, "page_size": PAGE_SIZE, "seed": INDEX_SEED},
        "params": {"m": info["params"]["m"], "l": info["params"]["l"],
                   "w": info["params"]["w"]},
        "k": K,
        "queries": q.tolist(),
        "ids": ids.tolist(),
        "distances": [[float(v) for v in row] for row in dist],
        "page_reads": stats.page_reads.tolist(),
        "seeks": stats.seeks.tolist(),
        "candidates": stats.candidates.tolist(),
        "sha256": {name: sha256(os.path.join(index_dir, name))
                   for name in ("trees.pages", "vectors.pages")},
    }
    with open(os.path.join(args.out, EXPECTED_NAME), "w") as f:
        f.write(_dump(expected))
    total = sum(os.path.getsize(os.path.join(root, name))
                for root, _, names in os.walk(index_dir) for name in names)
    print(f"golden index {index_dir}: {total} bytes, m = {expected['params']['m']}, "
          f"l = {expected['params']['l']}; answers in {EXPECTED_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
