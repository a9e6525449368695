"""Synthetic clustered datasets for the demo, tests and scale benchmarks.

Points are drawn around ``n_clusters`` Gaussian centres, spread along a random subspace of
``intrinsic_dim`` dimensions plus a little isotropic noise, and L2-normalised: like text or
image embeddings, they have a low intrinsic dimension and nearest-neighbour distances well
below 1. Written chunk by chunk, so a dataset
of any size is generated in bounded memory.
"""

import os

import numpy as np

__all__ = ["clustered_chunks", "write_clustered"]


def clustered_chunks(n, d, *, n_clusters=100, spread=0.35, intrinsic_dim=8, noise=0.02, seed=0,
                     stream=0, chunk_rows=65536, normalize=True):
    """Yield float32 blocks (rows <= chunk_rows, d) of a clustered dataset of n points.

    ``seed`` fixes the cluster centres; ``stream`` draws an independent set of points around
    the same centres (e.g. 0 for the base set, 1 for queries). The same arguments give the
    same points.
    """
    if n < 0 or d < 1 or n_clusters < 1:
        raise ValueError(f"need n >= 0, d >= 1, n_clusters >= 1; got n={n}, d={d}, "
                         f"n_clusters={n_clusters}")
    rng0 = np.random.default_rng(seed)
    centres = rng0.standard_normal((n_clusters, d)).astype(np.float32)
    r = max(1, min(intrinsic_dim, d))
    basis = (rng0.standard_normal((r, d)) / np.sqrt(r)).astype(np.float32)
    for start in range(0, n, chunk_rows):
        rows = min(chunk_rows, n - start)
        rng = np.random.default_rng([seed, stream, start, chunk_rows])
        labels = rng.integers(0, n_clusters, size=rows)
        block = centres[labels] + spread * (rng.standard_normal((rows, r), dtype=np.float32) @ basis)
        block += noise * rng.standard_normal((rows, d), dtype=np.float32)
        if normalize:
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        yield block.astype(np.float32, copy=False)


def write_clustered(path, n, d, **kwargs):
    """Write a clustered dataset to ``path`` (``.npy`` or ``.fvecs``), chunk by chunk.

    The file is written under a temporary name and renamed when complete.

    Returns
    -------
    str
        ``path``.
    """
    path = os.fspath(path)
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        if path.endswith(".npy"):
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
            pos = 0
            for block in clustered_chunks(n, d, **kwargs):
                out[pos:pos + block.shape[0]] = block
                pos += block.shape[0]
            out.flush()
            del out
        elif path.endswith(".fvecs"):
            with open(tmp, "wb") as f:
                for block in clustered_chunks(n, d, **kwargs):
                    rec = np.empty((block.shape[0], d + 1), dtype="<f4")
                    rec[:, 0] = np.array([d], dtype="<i4").view("<f4")[0]
                    rec[:, 1:] = block
                    f.write(rec.tobytes())
        else:
            raise ValueError(f"path must end in .npy or .fvecs, got {path!r}")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
