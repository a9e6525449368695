#!/usr/bin/env python3
"""Generate a SIFT-like set: n x 128 uint8 descriptors and held-out queries, streamed.

Usage: python tools/make_sift_like.py OUT_DIR [--n 1000000] [--queries 1000] [--seed 0]
       [--check 100]

Writes ``OUT_DIR/base.u8bin`` and ``OUT_DIR/query.u8bin`` (int32 n, int32 d = 128 header,
then the rows), without ever holding more than one chunk of 65,536 rows.

The shape of real SIFT descriptors (4 x 4 spatial bins x 8 orientations, non-negative,
most coordinates small, a few large; Sift1M's nearest-neighbour distances lie mostly
between 180 and 330) is imitated by a seeded mixture: 4,096 cluster centres in 16 groups,
each group a non-negative heavy-tailed vector (a squared Gaussian per coordinate, scaled to
a norm near 500) and its centres scattered around it (std 6 per coordinate, so clusters
overlap), and each point = its centre + a Gaussian in a 16-dimensional subspace of its
own cluster (intrinsic structure; clusters differ in spread by a log-normal factor) + a
small isotropic Gaussian, clipped to [0, 255] and
rounded. Queries are drawn from the same mixture with a stream of their own (not copies of
base points). With ``--check Q`` the nearest-neighbour distances of the first Q queries are
computed by brute force over the base and their percentiles printed. At n = 200,000 the
defaults give nearest-neighbour distances of 197 / 237 / 307 (10th / 50th / 90th
percentile) and faiss IVFFlat (nlist 4 sqrt(n)) recall@10 0.57 / 0.84 / 0.99 at nprobe
8 / 16 / 32, about as hard as Sift1M, where IVF reads about 1 % of a scan for recall 0.89.

Not SIFT: no image statistics beyond these; say so wherever its numbers are quoted.
"""

import argparse
import os
import struct

import numpy as np

D = 128
CENTRES = 4096
LATENT = 16
CHUNK = 1 << 16


def _centres(rng, groups, group_spread):
    """CENTRES centres in ``groups`` groups: a group's centres scatter around its own
    heavy-tailed non-negative vector (norm near 500) with std ``group_spread``."""
    g = rng.standard_normal((groups, D)) ** 2
    g *= 500.0 / np.linalg.norm(g, axis=1, keepdims=True)
    c = g[rng.integers(0, groups, size=CENTRES)]
    c = np.abs(c + rng.standard_normal((CENTRES, D)) * group_spread)
    return c


def _bases(rng):
    """Per centre an orthonormal-ish (LATENT, D) basis, scaled per direction."""
    b = rng.standard_normal((CENTRES, LATENT, D)).astype(np.float32)
    b /= np.linalg.norm(b, axis=2, keepdims=True)
    return b


def draw(rng, count, centres, bases, scales, spread, noise):
    """``count`` rows of uint8 (count, D)."""
    which = rng.integers(0, CENTRES, size=count)
    z = rng.standard_normal((count, LATENT)).astype(np.float32) * (
        spread * scales[which, None]).astype(np.float32)
    x = centres[which].astype(np.float32)
    x += np.einsum("nl,nld->nd", z, bases[which])
    x += rng.standard_normal((count, D)).astype(np.float32) * noise
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def write(path, rows_iter, n):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<ii", n, D))
        for rows in rows_iter:
            f.write(rows.tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spread", type=float, default=60.0,
                    help="std of the within-cluster latent coordinates")
    ap.add_argument("--noise", type=float, default=14.0, help="std of the isotropic noise")
    ap.add_argument("--groups", type=int, default=16, help="groups of cluster centres")
    ap.add_argument("--group-spread", type=float, default=6.0,
                    help="std of the centres around their group's vector")
    ap.add_argument("--check", type=int, default=0)
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    model = np.random.default_rng([args.seed, 0])
    centres, bases = _centres(model, args.groups, args.group_spread), _bases(model)
    scales = np.exp(0.35 * model.standard_normal(CENTRES))  # clusters of unequal spread
    base_rng = np.random.default_rng([args.seed, 1])
    query_rng = np.random.default_rng([args.seed, 2])

    def chunks(rng, total):
        done = 0
        while done < total:
            c = min(CHUNK, total - done)
            yield draw(rng, c, centres, bases, scales, args.spread, args.noise)
            done += c

    base = os.path.join(args.out_dir, "base.u8bin")
    write(base, chunks(base_rng, args.n), args.n)
    write(os.path.join(args.out_dir, "query.u8bin"), chunks(query_rng, args.queries),
          args.queries)
    print(f"wrote {args.n} x {D} to {base} and {args.queries} queries")
    if args.check:
        q = np.fromfile(os.path.join(args.out_dir, "query.u8bin"), dtype=np.uint8,
                        offset=8)[:args.check * D].reshape(-1, D).astype(np.float32)
        best = np.full(q.shape[0], np.inf)
        x_all = np.memmap(base, dtype=np.uint8, mode="r", offset=8, shape=(args.n, D))
        qq = (q ** 2).sum(1)
        for s in range(0, args.n, CHUNK):
            x = np.asarray(x_all[s:s + CHUNK], dtype=np.float32)
            d2 = qq[:, None] - 2 * q @ x.T + (x ** 2).sum(1)[None, :]
            best = np.minimum(best, d2.min(1))
        nn = np.sqrt(np.maximum(best, 0))
        print("nearest-neighbour distance percentiles 10/50/90: "
              + " / ".join(f"{v:.0f}" for v in np.percentile(nn, [10, 50, 90])))


if __name__ == "__main__":
    main()
