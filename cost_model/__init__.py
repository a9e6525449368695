"""cost_model: the I/O cost model of lshdisk, pure arithmetic over I/O counts.

Turns the page reads, seeks and bytes an index counts (``storage.IOStats``,
``lshdisk.SearchStats``) into device time with a :class:`DeviceProfile`, following the query
processing time (QPT) model of Jafari & Nagarkar (2021, ADC, Section 4.2)::

    QPT = seeks * seek_ms + MB_read / read_mb_per_ms + algorithm_ms      (1 MB = 10**6 B)

Built-in profiles ``hdd`` and ``ssd`` are the study's drives; ``lshdisk calibrate`` measures
this machine's. :func:`readahead_io` adds the operating system's read-ahead for engines that
read through the page cache. This package imports neither ``lshdisk`` nor ``storage``.
"""

from .profiles import (BUILTIN_PROFILES, HDD, PROFILE_FORMAT, PROFILE_VERSION, SSD,
                       DeviceProfile, get_profile, load_profile, save_profile)
from .qpt import MB, DeviceIO, QueryCost, linear_scan_cost, query_cost, readahead_io

__all__ = [
    "DeviceProfile", "HDD", "SSD", "BUILTIN_PROFILES", "PROFILE_FORMAT", "PROFILE_VERSION",
    "get_profile", "load_profile", "save_profile",
    "QueryCost", "DeviceIO", "query_cost", "linear_scan_cost", "readahead_io", "MB",
]
