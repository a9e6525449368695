"""Reading many runs of pages with one compiled call: ``pread`` from libc, called from numba.

Every device read of a :class:`storage.page_file.PageFile` goes through :func:`pread_runs`
(its read methods are wrappers over one primitive): a single page, one scanned run, or the
runs a search plans (hundreds per query, two or three pages each, by
:meth:`~storage.page_file.PageFile.read_runs_into`). From Python each run costs a loop step,
a buffer slice and an ``os.preadv`` call on top of the system call itself; here one kernel
loops over the runs and calls libc's ``pread`` directly. The bytes read and the checks made are the same: this
module only reads; the caller verifies every page's trailer and counts the I/O.

libc's ``pread`` is looked up through ctypes on first use (nothing happens at import). Its
address is passed to the kernel as an integer and called through a function pointer
(:func:`_call_pread`), so that the compiled kernel holds no process-specific address and can
be cached, and a call costs no more to dispatch than one with an int argument. Where there is
no such libc (:func:`libc_pread` returns None) the caller reads with ``os.preadv``.

The pages read are checked here too when the CRC-32 of zlib-ng can be called the same way:
``zng_crc32`` of zlib-ng's native API, which the python-zlib-ng extension module exports
(:func:`zlib_ng_crc32`; it is used only after it gives zlib's CRC-32 on a test buffer).
Otherwise the caller computes the CRCs in Python, one call per page.
"""

import ctypes
import os
import sys
import zlib
from collections import namedtuple

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from ._bytes import u32_at

#: Statuses of :func:`pread_runs`.
READ_ALL = 0
BAD_RUN = 1
TOO_FEW_ROWS = 2
READ_FAILED = 3

#: What a compiled scan needs to read a page file itself (:meth:`PageFile.raw_reader`):
#: libc's ``pread`` and zlib-ng's CRC-32 (addresses, int), the descriptor, the page count.
RawReader = namedtuple("RawReader", ["pread", "crc32", "fd", "n_pages"])
#: The runs a compiled scan read, in order, for :meth:`PageFile.count_log` to count:
#: ``firsts``, ``counts`` int64 (capacity,) and ``n`` int64 (1,), the number logged.
RunLog = namedtuple("RunLog", ["firsts", "counts", "n"])


def new_run_log(capacity):
    """An empty :data:`RunLog` with room for ``capacity`` runs."""
    return RunLog(np.zeros(capacity, np.int64), np.zeros(capacity, np.int64),
                  np.zeros(1, np.int64))

_PREAD = []  # [address or None], filled on first use
_CRC32 = []  # [address or None], filled on first use


def libc_pread():
    """The address (int) of libc's ``pread`` with 64-bit offsets, ``ssize_t pread(int fd,
    void *buf, size_t count, int64 offset)``, or None if there is none (not a 64-bit POSIX
    system, or no C library to load)."""
    if not _PREAD:
        address = None
        if os.name == "posix" and sys.maxsize > 2**32:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fn = getattr(libc, "pread64", None) or libc.pread
                address = ctypes.cast(fn, ctypes.c_void_p).value
            except (OSError, AttributeError):  # pragma: no cover - no C library to call
                address = None
        _PREAD.append(address)
    return _PREAD[0]


def zlib_ng_crc32():
    """The address (int) of zlib-ng's ``uint32_t zng_crc32(uint32_t crc, const uint8_t *buf,
    uint32_t len)`` in the python-zlib-ng extension module, or None if it does not export it
    or it does not give zlib's CRC-32 of a test buffer."""
    if not _CRC32:
        address = None
        if os.name == "posix" and sys.maxsize > 2**32:
            try:
                from zlib_ng import zlib_ng

                fn = ctypes.CDLL(zlib_ng.__file__).zng_crc32
                address = ctypes.cast(fn, ctypes.c_void_p).value
            except (ImportError, OSError, AttributeError):
                address = None
        if address is not None:
            probe = np.frombuffer(bytes(range(256)) * 17, dtype=np.uint8)
            if _crc_of(np.int64(address), probe) != zlib.crc32(probe):  # pragma: no cover
                address = None
        _CRC32.append(address)
    return _CRC32[0]


@intrinsic
def _call_crc32(typingctx, address, buf_address, n_bytes):
    """zng_crc32(0, buf_address, n_bytes) through the function at ``address`` (int64
    arguments); returns the CRC as int64."""
    sig = types.int64(types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        addr, buf, n = args
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(i32, [i32, ir.IntType(8).as_pointer(), i32])
        fn = builder.inttoptr(addr, fnty.as_pointer())
        bytes_ptr = builder.inttoptr(buf, ir.IntType(8).as_pointer())
        crc = builder.call(fn, [ir.Constant(i32, 0), bytes_ptr, builder.trunc(n, i32)])
        return builder.zext(crc, ir.IntType(64))

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def _crc_of(crc32, data):
    """CRC-32 of a contiguous uint8 array through the function at address ``crc32``."""
    return _call_crc32(crc32, np.int64(data.ctypes.data), np.int64(data.shape[0]))


@intrinsic
def _call_pread(typingctx, address, fd, buf_address, n_bytes, offset):
    """pread(fd, buf_address, n_bytes, offset) through the function at ``address`` (all int64
    arguments; fd is passed as a C int). Returns the result as int64."""
    sig = types.int64(types.int64, types.int64, types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        addr, fd_, buf, n, off = args
        i64, i32 = ir.IntType(64), ir.IntType(32)
        fnty = ir.FunctionType(i64, [i32, ir.IntType(8).as_pointer(), i64, i64])
        fn = builder.inttoptr(addr, fnty.as_pointer())
        bytes_ptr = builder.inttoptr(buf, ir.IntType(8).as_pointer())
        return builder.call(fn, [builder.trunc(fd_, i32), bytes_ptr, n, off])

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def pread_runs(pread, crc32, fd, first_pages, n_pages, page_size, n_file_pages, out):
    """Read run r (``n_pages[r]`` pages from page ``first_pages[r]``) into the next rows of
    ``out``, for every run in order, one ``pread`` per run.

    Parameters
    ----------
    pread : int
        :func:`libc_pread`, the address of libc's ``pread``.
    crc32 : int
        :func:`zlib_ng_crc32`, or 0 to leave the CRC32 checks to the caller.
    fd : int
        Open file descriptor.
    first_pages, n_pages : ndarray of int64, shape (r,)
    page_size, n_file_pages : int
        Bytes per page; pages in the file (a run must end within them).
    out : ndarray of uint8, shape (rows, page_size), C-contiguous

    Returns
    -------
    status, run, rows, numbered : int
        READ_ALL (``run`` = r), or BAD_RUN (run ``run`` has n_pages < 1 or lies outside the
        file; nothing read), TOO_FEW_ROWS (``rows`` pages do not fit in ``out``; nothing
        read), READ_FAILED (``pread`` of run ``run`` failed or came back short; the runs
        before it are read). ``rows`` is the number of pages of all runs; ``numbered`` the
        number of leading runs read whose pages carry their own page numbers (and their
        CRC32, if ``crc32``; :func:`verified_runs`).
    """
    n_runs = first_pages.shape[0]
    rows = 0
    for r in range(n_runs):
        first, count = first_pages[r], n_pages[r]
        if count < 1 or first < 0 or first + count > n_file_pages:
            return BAD_RUN, r, 0, 0
        rows += count
    if rows > out.shape[0]:
        return TOO_FEW_ROWS, 0, rows, 0
    base = out.ctypes.data
    offset = 0
    for r in range(n_runs):
        n_bytes = n_pages[r] * page_size
        got = _call_pread(np.int64(pread), np.int64(fd), np.int64(base + offset), np.int64(n_bytes),
                          np.int64(first_pages[r] * page_size))
        if got != n_bytes:
            return READ_FAILED, r, rows, verified_runs(out, first_pages, n_pages, r, crc32)
        offset += n_bytes
    return READ_ALL, n_runs, rows, verified_runs(out, first_pages, n_pages, n_runs, crc32)


@numba.njit(cache=True, nogil=True)
def verified_runs(out, first_pages, n_pages, n_runs, crc32):
    """How many of the first ``n_runs`` runs, read into consecutive rows of ``out``, have
    the right page number in every page's trailer (the little-endian uint32 8 bytes before
    the end of the page) and, if ``crc32`` (:func:`zlib_ng_crc32`) is not 0, the right CRC32
    of the page's first ``page_size - 4`` bytes (the uint32 after it)."""
    ps = out.shape[1]
    base = out.ctypes.data
    row = 0
    for r in range(n_runs):
        for page_no in range(first_pages[r], first_pages[r] + n_pages[r]):
            if u32_at(out[row], ps - 8) != page_no:
                return r
            if crc32 != 0 and _call_crc32(crc32, np.int64(base + row * ps),
                                          np.int64(ps - 4)) != u32_at(out[row], ps - 4):
                return r
            row += 1
    return n_runs


@numba.njit(cache=True, nogil=True)
def read_raw_runs(raw, first_pages, n_pages, out):
    """Read runs of pages of the file ``raw`` (a :class:`RawReader`) into the rows of ``out``
    (uint8 (rows, page_size)) and check every page's trailer, page number and CRC32.

    Returns True if every run was read whole and every page checked; False otherwise (a run
    outside the file, too few rows, a failed or short read, a bad trailer): the caller then
    reads the runs again through :meth:`PageFile.read_runs_into`, which raises the error.
    Counting is the caller's (:meth:`PageFile.count_runs`).
    """
    status, n_read, _, verified = pread_runs(raw.pread, raw.crc32, raw.fd, first_pages,
                                             n_pages, out.shape[1], raw.n_pages, out)
    return status == READ_ALL and verified == first_pages.shape[0]


@numba.njit(cache=True, nogil=True)
def summarize_runs(first_pages, n_pages):
    """(pages, inner seeks, last page) of runs read one after another from one file: the
    pages in all, how many runs after the first do not start right after the run before,
    and the last page read (-2 with no runs), for :meth:`IOCounter.record_run_summary`."""
    total = 0
    seeks = 0
    last = np.int64(-2)
    for r in range(first_pages.shape[0]):
        if r > 0 and first_pages[r] != last + 1:
            seeks += 1
        total += n_pages[r]
        last = first_pages[r] + n_pages[r] - 1
    return total, seeks, last


@numba.njit(cache=True, nogil=True)
def log_runs(log, first_pages, n_pages):
    """Append runs (int64 arrays of one length) to a :data:`RunLog`; the caller keeps room."""
    n = log.n[0]
    for r in range(first_pages.shape[0]):
        log.firsts[n + r] = first_pages[r]
        log.counts[n + r] = n_pages[r]
    log.n[0] = n + first_pages.shape[0]


@numba.njit(cache=True, nogil=True)
def log_run(log, first_page, n_pages):
    """Append one run to a :data:`RunLog`; the caller keeps room."""
    n = log.n[0]
    log.firsts[n] = first_page
    log.counts[n] = n_pages
    log.n[0] = n + 1
