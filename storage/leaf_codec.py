"""Numba kernels that encode and decode B+-tree leaf pages and read inner node pages (layouts
in :mod:`storage.format`).

Public so that search kernels can scan a leaf page in place (no decoded copy): read the
header with :func:`leaf_header`, then entry j with :func:`leaf_key` and :func:`leaf_id`. Scan
loops that take many ids from one leaf use :func:`leaf_id_words` once and :func:`leaf_id_at`
per entry: two aligned 32-bit loads instead of five byte loads.
"""

import numba
import numpy as np

from ._bytes import f32_at, u32_at

LEAF_ENTRIES_OFFSET = 24
#: Where an inner node's keys start (after its 8-byte header).
INNER_KEYS_OFFSET = 8
#: Bytes kept free after a leaf's ids, so ids can be read 5 bytes at a time.
LEAF_SLACK = 8
KEY_CODE_MAX = 65535


@numba.njit(cache=True, nogil=True)
def leaf_key_step(key_min, key_max):
    """float32 quantisation step of a leaf whose keys span [key_min, key_max]."""
    return np.float32((np.float64(key_max) - np.float64(key_min)) / KEY_CODE_MAX)


@numba.njit(cache=True, nogil=True)
def encode_leaf(keys, ids, id_bits, key_step, out):
    """Write key codes and bit-packed ids of one leaf into ``out`` (the page payload).

    keys: float32 (c,), ascending; ids: uint32 (c,); out: uint8 payload, zeroed.
    """
    c = keys.shape[0]
    kmin = np.float64(keys[0])
    step = np.float64(key_step)
    base = LEAF_ENTRIES_OFFSET
    for i in range(c):
        code = 0
        if step > 0.0:
            x = (np.float64(keys[i]) - kmin) / step
            code = int(np.floor(x + 0.5))
            if code < 0:
                code = 0
            elif code > KEY_CODE_MAX:
                code = KEY_CODE_MAX
        out[base + 2 * i] = code & 0xFF
        out[base + 2 * i + 1] = code >> 8
    id_base = base + 2 * c
    for j in range(c):
        bit = j * id_bits
        byte = id_base + (bit >> 3)
        shift = bit & 7
        v = np.uint64(ids[j]) << np.uint64(shift)
        nb = (shift + id_bits + 7) >> 3
        for t in range(nb):
            out[byte + t] |= np.uint8((v >> np.uint64(8 * t)) & np.uint64(0xFF))


@numba.njit(cache=True, nogil=True, inline="always")
def leaf_header(page):
    """(count, prev_page, next_page, key_min, key_step, key_max, id_bits) of a leaf page (uint8 array).

    Pages are -1 where there is no neighbour.
    """
    count = np.int64(page[2]) | (np.int64(page[3]) << 8)
    prev = u32_at(page, 4)
    nxt = u32_at(page, 8)
    if prev == 0xFFFFFFFF:
        prev = -1
    if nxt == 0xFFFFFFFF:
        nxt = -1
    return count, prev, nxt, f32_at(page, 12), f32_at(page, 16), f32_at(page, 20), np.int64(page[1])


@numba.njit(cache=True, nogil=True, inline="always")
def leaf_key(page, key_min, key_step, key_max, j):
    """Decoded key of entry j (float32 precision, returned as float64).

    ``key_min + code * key_step``, clamped to the leaf's exact [key_min, key_max]; code 65535
    is key_max itself. Decoded keys are therefore non-decreasing within a leaf and across
    leaves (each leaf's range lies between its neighbours').
    """
    code = np.int64(page[LEAF_ENTRIES_OFFSET + 2 * j]) | (np.int64(page[LEAF_ENTRIES_OFFSET + 2 * j + 1]) << 8)
    if code == KEY_CODE_MAX:
        return key_max
    x = key_min + code * key_step
    if x > key_max:
        x = key_max
    return np.float64(np.float32(x))


@numba.njit(cache=True, nogil=True, inline="always")
def leaf_id(page, count, id_bits, j):
    """Id of entry j of a leaf holding ``count`` entries.

    Reads 5 bytes from the entry's first byte on; a leaf keeps 8 slack bytes after its ids
    (see :func:`storage.btree.leaf_capacity`), so this never reads past the payload.
    """
    bit = j * id_bits
    b = LEAF_ENTRIES_OFFSET + 2 * count + (bit >> 3)
    v = (np.uint64(page[b]) | (np.uint64(page[b + 1]) << np.uint64(8))
         | (np.uint64(page[b + 2]) << np.uint64(16)) | (np.uint64(page[b + 3]) << np.uint64(24))
         | (np.uint64(page[b + 4]) << np.uint64(32)))
    mask = (np.uint64(1) << np.uint64(id_bits)) - np.uint64(1)
    return np.int64((v >> np.uint64(bit & 7)) & mask)


@numba.njit(cache=True, nogil=True, inline="always")
def leaf_id_bits(count, id_bits):
    """(bit_base, mask) for :func:`leaf_id_at` on a leaf of ``count`` entries: the bit where
    the packed ids start (uint64) and the low ``id_bits`` bits (uint64)."""
    bit_base = np.uint64(8 * (LEAF_ENTRIES_OFFSET + 2 * count))
    mask = (np.uint64(1) << np.uint64(id_bits)) - np.uint64(1)
    return bit_base, mask


@numba.njit(cache=True, nogil=True, inline="always")
def leaf_id_words(page, count, id_bits):
    """(words, bit_base, mask) for :func:`leaf_id_at` on a leaf page of ``count`` entries.

    ``page`` is a whole page or payload (uint8, length a multiple of 4, 4-byte aligned, as the
    rows of a page buffer are); ``words`` is its uint32 view, ``bit_base`` (uint64) the bit
    where the packed ids start, ``mask`` (uint64) the low ``id_bits`` bits. Loops over many
    leaves should take one uint32 view of the whole page buffer and :func:`leaf_id_bits`
    per leaf instead (a view costs about 30 ns).
    """
    bit_base, mask = leaf_id_bits(count, id_bits)
    return page.view(np.uint32), bit_base, mask


@numba.njit(cache=True, nogil=True, inline="always")
def leaf_id_at(words, bit_base, id_bits, mask, j):
    """Id of entry j, from the values of :func:`leaf_id_words` (uint64).

    Reads the two 32-bit words holding the entry's first bit; the second lies within the
    leaf's 8 slack bytes at most, so it never reads past the payload. Unsigned arithmetic
    throughout: no negative-index handling in scan loops.
    """
    bit = bit_base + np.uint64(j) * np.uint64(id_bits)
    wi = bit >> np.uint64(5)
    v = np.uint64(words[wi]) | (np.uint64(words[wi + np.uint64(1)]) << np.uint64(32))
    return (v >> (bit & np.uint64(31))) & mask


@numba.njit(cache=True, nogil=True)
def leaf_search_ge(page, key):
    """Position of the first entry of a leaf page whose decoded key is >= ``key`` (binary search)."""
    count, _, _, kmin, step, kmax, _ = leaf_header(page)
    lo, hi = 0, count
    while lo < hi:
        mid = (lo + hi) >> 1
        if leaf_key(page, kmin, step, kmax, mid) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def decode_leaf(payload, c, id_bits, key_min, key_step, key_max, keys_out, ids_out):
    """Decode ``c`` entries of a leaf payload into keys_out (float32) and ids_out (int64)."""
    kmin = np.float64(key_min)
    step = np.float64(key_step)
    kmax = np.float64(key_max)
    for j in range(c):
        keys_out[j] = leaf_key(payload, kmin, step, kmax, j)
        ids_out[j] = leaf_id(payload, c, id_bits, j)


@numba.njit(cache=True, nogil=True, inline="always")
def inner_count(page):
    """Number of children of an inner node page (uint8 array, layout in :mod:`storage.format`)."""
    return np.int64(page[2]) | (np.int64(page[3]) << 8)


@numba.njit(cache=True, nogil=True, inline="always")
def inner_key(page, i):
    """Smallest key of child i's subtree (float32, returned as float64)."""
    return f32_at(page, INNER_KEYS_OFFSET + 4 * i)


@numba.njit(cache=True, nogil=True)
def inner_child(page, key):
    """(i, page number) of the child of an inner node page where a search for ``key`` goes:
    the last child whose smallest key is < ``key`` (the first child if none), as
    :meth:`storage.btree.BPlusTree.find_leaf` descends."""
    c = inner_count(page)
    lo, hi = 0, c
    while lo < hi:
        mid = (lo + hi) >> 1
        if inner_key(page, mid) < key:
            lo = mid + 1
        else:
            hi = mid
    i = lo - 1 if lo > 0 else 0
    off = INNER_KEYS_OFFSET + 4 * c + 4 * i
    return i, u32_at(page, off)
