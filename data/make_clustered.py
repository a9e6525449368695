#!/usr/bin/env python3
"""Write a synthetic clustered dataset (unit-norm float32, low intrinsic dimension).

Usage: python data/make_clustered.py OUT.npy|OUT.fvecs N D [--seed S] [--stream K]

Stream 0 is a base set; stream 1 with the same seed gives held-out queries around the same
cluster centres. Generated chunk by chunk, so any size fits in memory.
"""

import argparse

from lshdisk.synthetic import write_clustered

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("n", type=int)
    ap.add_argument("d", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stream", type=int, default=0)
    args = ap.parse_args()
    write_clustered(args.out, args.n, args.d, seed=args.seed, stream=args.stream)
    print(f"wrote {args.n} x {args.d} float32 to {args.out}")
