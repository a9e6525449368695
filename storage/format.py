"""On-disk layout of lshdisk page files.

Every file the storage layer writes is a *page file*: a sequence of fixed-size pages of
``page_size`` bytes (a power of two, 512 B to 1 MiB), numbered from 0. Page 0 is the header
page; pages 1 .. page_count-1 hold the file's content (vector rows, B+-tree nodes, ...).
All integers are little-endian; reserved bytes are zero.

Page trailer (the last 8 bytes of every page, header page included)
--------------------------------------------------------------------

======================  ====  ==========================================================
offset                  size  meaning
======================  ====  ==========================================================
page_size - 8           4     page number (u32), so a page read from the wrong place fails
page_size - 4           4     CRC32 (zlib polynomial) of bytes [0, page_size - 4)
======================  ====  ==========================================================

The first ``page_size - 8`` bytes are the page *payload*, whose layout belongs to the
page's owner (header below, B+-tree nodes in :mod:`storage.btree`, vectors in
``lshdisk.vector_store``). A page whose CRC32 or page number does not match is corrupt:
reading it raises :class:`storage.errors.CorruptPageError`, never returns wrong bytes.

Header page (page 0) payload
----------------------------

======  ====  ==============================================================================
offset  size  meaning
======  ====  ==============================================================================
0       8     magic ``b"LSHDPAGE"``
8       2     format major version (u16); a reader refuses an unknown major version
10      2     format minor version (u16); a newer minor opens read-only
12      4     page size in bytes (u32)
16      8     page count, header page included (u64); the file is exactly this many pages
24      16    file kind, ASCII, NUL-padded (e.g. ``vectors``, ``btree``)
40      16    build id (since 1.1): names the build the file belongs to; zero until stamped
              (:meth:`storage.page_file.PageFile.stamp_build_id`), zero in 1.0 files
56      8     content digest (since 1.1): BLAKE2b-64 of the CRC32s (u32 each) of pages
              1 .. page_count-1 in page order; zero in 1.0 files (reserved there)
64      4     length L of the application header (u32), at most payload size - 68
68      L     application header: the owner's own fields (e.g. n, d, dtype of a vector file)
======  ====  ==============================================================================

Format 1.1 only fills bytes that 1.0 reserved, so a 1.0 reader still reads 1.1 files.
An index records each page file's build id, page size, page count and content digest in
its catalog (``lshdisk.verify``): a file copied in from another build, another page size
or another dataset is refused when the index is opened, from its header alone. The build
id is derived from the build's inputs (seed, parameters, page size, dataset fingerprint,
format versions) and the content digests of all its files, so rebuilding with the same seed
and data gives byte-identical files (style rule 12), while any difference in inputs or
content gives another id.

Publishing an index (:mod:`storage.durable`)
--------------------------------------------

An index directory ``T`` is built as ``T.building-PID-TOKEN`` (PID: the builder's process
id, TOKEN: 8 hex digits) while the builder holds an exclusive ``flock`` on the lock file
``T.lshdisk-lock`` (content ``lshdisk build lock pid=PID``; removed when the build ends).
Before publication every file and directory of the build is fsynced and the index is
verified (every page's trailer, the page counts and ids against the catalog). Then:

======================  ===================================================================
state of ``T``          publication
======================  ===================================================================
absent                  ``renameat2(RENAME_NOREPLACE)`` (macOS: ``renamex_np(RENAME_EXCL)``),
                        else ``rename`` after re-checking ``T`` is absent (under the lock)
an index                ``renameat2(RENAME_EXCHANGE)`` (macOS: ``renamex_np(RENAME_SWAP)``)
                        swaps ``T`` and the build in one step; the old index, now under the
                        build's name, is removed. Fallback where the call or the file system
                        lacks it: ``rename(T, T.replaced-PID-TOKEN)``, ``rename(build, T)``;
                        a process that dies between the two leaves ``T`` absent, and the next
                        build or open in that directory renames ``T.replaced-*`` back
======================  ===================================================================

The parent directory is fsynced after each switch. Leftovers ``T.building-PID-*`` whose
process is gone, ``T.replaced-*`` and free lock files are removed by the next build or
open in the same directory, under ``T``'s lock.

The index document (catalog entry ``index``, read by ``lshdisk.metadata``)
--------------------------------------------------------------------------

A JSON object (catalog framing in :mod:`storage.catalog`). Format 1.x; a reader refuses an
unknown major version (its own error, apart from "not an index" and "corrupt") and reads a
newer minor version, ignoring fields it does not know. A field missing or of the wrong type
makes the index corrupt.

=========================  ===============  ===================================================
field                      type             meaning
=========================  ===============  ===================================================
``format``                 str              ``"lshdisk-index"``
``format_version``         [int, int]       [major, minor], 1.1 here
``lshdisk_version``        str              the version that built the index
``algorithm``              str              a registered method (lshdisk.registry)
``preset``                 str or null      the parameter preset given to the build
``params``                 object           the method's parameters (c, w, delta, beta, m, l,
                                            p1, p2, ...), as its parameter dataclass
``seed``                   int              the seed of the hash functions and the sample
``page_size``              int              bytes per page of every page file
``dataset``                object           ``n``, ``d`` (int >= 1), ``dtype`` (numpy name),
                                            ``format``, ``source``, ``fingerprint``
``build``                  object           ``memory_limit_bytes``, ``seconds``,
                                            ``bytes_written``
``files``                  object           role -> file name: ``vectors`` and ``trees``
                                            (QALSH, I-LSH) or ``tables`` (C2LSH)
``build_id``               str              hex, 16 bytes; equals every page file's header
``file_facts``             object           file name -> ``kind``, ``page_size``,
                                            ``page_count``, ``digest``
``hash``                   object           ``a`` (and C2LSH's ``b``): catalog array names;
                                            ``shape`` [m, d]; how they were drawn; pca and
                                            neoph: ``map``, the learned map's ``kind``
                                            (``linear``, ``mlp``) and its arrays' names
                                            (``lshdisk.maps``)
``training``               object           learned methods: the training and calibration
                                            figures (sample rows, seconds, w, l, p1, p2, ...)
``unit``                   object           the data unit: ``u`` (> 0), ``given`` (bool), the
                                            estimate's figures (``lshdisk.scale``); absent in
                                            indexes built before it: u = 1 for QALSH and I-LSH
``trees``                  list             QALSH, I-LSH, pca, neoph: one object per key, the
                                            fields of ``storage.TreeInfo``
``tables``, ``directory``  object           C2LSH: per-table columns (``first_page``,
                                            ``n_pages``, ``n_entries``, ``key_min``,
                                            ``key_max``, ``dir_entry``: m ints each) and the
                                            directory's ``storage.sorted_run.DirectoryInfo``
``origin``, ``id_bits``    int              C2LSH: the virtual buckets' origin; id width
=========================  ===============  ===================================================

B+-tree node payloads (:mod:`storage.btree`)
--------------------------------------------

Leaf node. Keys are float32 projection values; each is stored as a 16-bit code relative to
the leaf's key range, ``key = min(key_min + code * key_step, key_max)`` (code 65535 is
key_max itself; ``code = round((key -
key_min) / key_step)``, ``key_step = (key_max - key_min) / 65535``), so the reconstructed
key is within ``key_step / 2`` of the true one and the order is kept. Ids are bit-packed
with ``id_bits`` bits each (``ceil(log2(n))``, at least 1), least significant bit first.

======  ==========  ====================================================================
offset  size        meaning
======  ==========  ====================================================================
0       1           node type, 1 = leaf
1       1           id_bits (u8), 1..32
2       2           number of entries c (u16)
4       4           previous leaf page (u32), 0xFFFFFFFF if none
8       4           next leaf page (u32), 0xFFFFFFFF if none
12      4           key_min (f32), also the exact first key
16      4           key_step (f32)
20      4           key_max (f32), the exact last key
24      2c          key codes (u16)
24+2c   ceil(c*b/8) ids, bit-packed with b = id_bits
...     >= 8        slack, zero (ids are read through 8-byte windows)
======  ==========  ====================================================================

A 4 KiB leaf holds ``floor((4088 - 24 - 8) * 8 / (16 + id_bits))`` entries: 1,014 for
n <= 65,536 and 901 for n <= 2**20 (the reference QALSH code stores about 987 per 4 KiB by
keeping one key per 32 ids; (float32, int64) pairs would fit 340).

Inner node.

======  ====  =======================================================================
offset  size  meaning
======  ====  =======================================================================
0       1     node type, 2 = inner
1       1     level above the leaves (u8), 1 = children are leaves
2       2     number of children c (u16)
4       4     reserved, zero
8       4c    smallest key of each child's subtree (f32), ascending
8+4c    4c    child page numbers (u32)
======  ====  =======================================================================

A 4 KiB inner node holds ``floor((4088 - 8) / 8) = 510`` children.

Sorted-run pages (:mod:`storage.sorted_run`)
--------------------------------------------

A sorted run is a sequence of (int64 key, id) entries in ascending key order, stored in
consecutive data pages; several runs share a file (kind ``sortedrun``), one after the other,
and a directory region follows the last run's data pages.

Data page. The page's entries form r *runs of equal keys*: the distinct keys are stored once,
as the first key plus r - 1 deltas, with the length of each run; the ids follow, in entry
order. Every bit field is packed least significant bit first, starting at the given byte;
the widths are chosen per page (the largest delta and run length on the page).

==============  =================  ============================================================
offset          size               meaning
==============  =================  ============================================================
0               1                  page type, 3 = sorted-run data page
1               1                  id_bits b (u8), 1..32
2               1                  delta_bits db (u8), 0..32: bits per key delta
3               1                  len_bits lb (u8), 0..16: bits per (run length - 1)
4               2                  number of entries e (u16), 1..65535
6               2                  number of runs r (u16), 1..e
8               8                  first key (i64): the key of run 0
16              T = ceil(((r-1)    run table: r - 1 key deltas (key of run j minus key of run
                db + r lb) / 8)    j - 1, >= 1) of db bits, then r run lengths minus one, of
                                   lb bits
16 + T          ceil(e b / 8)      ids, b bits each, in entry order
...             rest               zero
==============  =================  ============================================================

A page is filled greedily while ``16 + T + ceil(e b / 8) <= payload size``: a 4 KiB page
holds 2,035 entries of one key with 16-bit ids. Keys of one run span less than 2**32.

Directory page. The directory holds one entry per data page, for all runs in page order
(the entries of a run start at its ``dir_entry``, recorded in the run's metadata with its
first page, page count and smallest key ``key_min``), packed ``floor((payload - 8) / 8)`` to a
page (510 for 4 KiB pages).

======  ====  ===================================================================
offset  size  meaning
======  ====  ===================================================================
0       1     page type, 4 = sorted-run directory page
1       3     reserved, zero
4       4     number of entries c in this page (u32)
8       8c    per data page: first key - key_min (u32), last key - key_min (u32)
======  ====  ===================================================================
"""

import struct

__all__ = [
    "MAGIC",
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "MIN_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "DEFAULT_PAGE_SIZE",
    "TRAILER_SIZE",
    "HEADER_STRUCT",
    "APP_HEADER_OFFSET",
    "HEADER_IDS_OFFSET",
    "HEADER_IDS_STRUCT",
    "BUILD_ID_SIZE",
    "NO_BUILD_ID",
    "NO_PAGE",
    "LEAF_NODE",
    "INNER_NODE",
    "LEAF_HEADER_STRUCT",
    "INNER_HEADER_STRUCT",
    "payload_size",
    "check_page_size",
]

MAGIC = b"LSHDPAGE"
FORMAT_MAJOR = 1
FORMAT_MINOR = 1
MIN_PAGE_SIZE = 512
MAX_PAGE_SIZE = 1 << 20
DEFAULT_PAGE_SIZE = 4096
TRAILER_SIZE = 8

#: magic, major, minor, page size, page count, kind (header page, offset 0).
HEADER_STRUCT = struct.Struct("<8sHHIQ16s")
APP_HEADER_OFFSET = 64
#: build id, content digest (header page, offset 40; format 1.1).
HEADER_IDS_STRUCT = struct.Struct("<16s8s")
HEADER_IDS_OFFSET = 40
BUILD_ID_SIZE = 16
NO_BUILD_ID = bytes(BUILD_ID_SIZE)
NO_PAGE = 0xFFFFFFFF

LEAF_NODE = 1
INNER_NODE = 2
#: type, id_bits, count, prev, next, key_min, key_step, key_max (leaf payload, offset 0).
LEAF_HEADER_STRUCT = struct.Struct("<BBHIIfff")
#: type, level, count, reserved (inner payload, offset 0).
INNER_HEADER_STRUCT = struct.Struct("<BBHI")


def payload_size(page_size):
    """Bytes of a page usable by its owner: ``page_size - 8``."""
    return page_size - TRAILER_SIZE


def check_page_size(page_size):
    """Validate a page size; return it as an int.

    Raises
    ------
    ValueError
        If ``page_size`` is not a power of two between 512 B and 1 MiB.
    """
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise TypeError(f"page_size must be an int, got {type(page_size).__name__}")
    if not (MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE) or page_size & (page_size - 1):
        raise ValueError(
            f"page_size must be a power of two from {MIN_PAGE_SIZE} to {MAX_PAGE_SIZE} bytes, "
            f"got {page_size}"
        )
    return page_size
