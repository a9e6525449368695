"""The real Mnist test set (../shared/data/mnist) for the benchmark scripts."""

import os
import sys

import lshdisk

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "mnist"))
#: How open_source / build read Mnist.ds: raw uint8 rows of 50 coordinates.
RAW = {"format": "raw", "dtype": "uint8", "dim": 50}


def load(data_dir):
    """(path of Mnist.ds, queries float32 (100, 50), exact distances float32 (100, 100)).

    Exits with a message if the folder does not hold the set.
    """
    ds = os.path.join(data_dir, "Mnist.ds")
    if not os.path.exists(ds):
        sys.exit(f"no Mnist data in {data_dir}: pass --data")
    queries = lshdisk.read_queries(os.path.join(data_dir, "Mnist.q"), **RAW)
    gt_D, _ = lshdisk.read_groundtruth(os.path.join(data_dir, "Mnist.gt2.0"), n_queries=queries.shape[0])
    return ds, queries, gt_D
