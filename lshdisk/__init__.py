"""lshdisk: external-memory, disk-resident LSH with exact page-I/O accounting.

Methods: C2LSH (Gan et al., SIGMOD 2012), QALSH (Huang et al., PVLDB 2015) and I-LSH (Liu et
al., ICDE 2019), all fully out of core. Build an index from data larger than RAM and query it
faiss-style::

    import lshdisk
    lshdisk.build("base.fvecs", "base.idx", algorithm="qalsh", c=2.0, memory_limit="1GiB")
    with lshdisk.open("base.idx") as index:
        D, I, stats = index.search(queries, 10, return_stats=True)
"""

__version__ = "0.1.0"

from .datasets import open_source, read_queries  # noqa: E402
from .errors import (CorruptIndexError, DatasetError, GroundTruthMismatchError,  # noqa: E402
                     IndexExistsError, LshdiskError, NotAnIndexError,
                     UnsupportedIndexVersionError)
from .groundtruth import compute_groundtruth, read_groundtruth, write_groundtruth  # noqa: E402
from .index import ALGORITHMS, Index, SearchStats, build, open  # noqa: E402
from .params import C2LSHParams, PRESETS, QALSHParams, c2lsh_params, qalsh_params  # noqa: E402

__all__ = [
    "__version__", "build", "open", "Index", "SearchStats", "ALGORITHMS", "open_source",
    "read_queries", "read_groundtruth", "write_groundtruth", "compute_groundtruth",
    "QALSHParams", "qalsh_params", "C2LSHParams", "c2lsh_params", "PRESETS", "LshdiskError", "DatasetError", "NotAnIndexError",
    "IndexExistsError", "CorruptIndexError", "GroundTruthMismatchError",
    "UnsupportedIndexVersionError",
]
