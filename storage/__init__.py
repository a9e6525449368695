"""storage: page files, buffer pool, exact I/O counts, disk B+-tree, external sort, catalog,
durable writes and atomic publication (:mod:`storage.durable`).

A leaf package: it imports only the standard library, numpy, numba and lmdb.
"""

from .btree import BPlusTree, BulkLoader, Cursor, TreeInfo, id_bits_for, inner_capacity, leaf_capacity
from .buffer_pool import BufferPool
from .catalog import CATALOG_FORMAT, CATALOG_VERSION, Catalog
from .errors import (CatalogInUseError, ClosedFileError, CorruptCatalogError, CorruptPageError,
                     LockedError, NoSpaceError, NotACatalogError, NotAPageFileError,
                     ReadOnlyError, StorageError, UnsupportedVersionError, WriteFailedError)
from .extsort import ExternalSorter, float32_to_ordered_u32, ordered_u32_to_float32
from .iostats import CACHE_HIT, DEVICE_READ, IOCounter, IOStats
from .page_file import PageFile
from ._run_reader import RawReader, RunLog, log_run, log_runs, new_run_log, read_raw_runs
from .sorted_run import SortedRunWriter, read_directory

__all__ = [
    "BPlusTree", "BulkLoader", "Cursor", "TreeInfo", "id_bits_for", "inner_capacity",
    "leaf_capacity", "BufferPool", "ClosedFileError", "CorruptPageError", "NotAPageFileError",
    "ReadOnlyError", "StorageError", "UnsupportedVersionError", "IOCounter", "IOStats", "PageFile",
    "RawReader", "RunLog", "new_run_log", "log_run", "log_runs", "read_raw_runs", "DEVICE_READ", "CACHE_HIT",
    "Catalog", "CATALOG_FORMAT", "CATALOG_VERSION", "NotACatalogError", "ExternalSorter",
    "float32_to_ordered_u32", "ordered_u32_to_float32", "SortedRunWriter", "read_directory",
    "CatalogInUseError", "CorruptCatalogError", "LockedError", "NoSpaceError", "WriteFailedError",
]
