"""Reading many runs of pages with one compiled call: ``pread`` from libc, called from numba.

:meth:`storage.page_file.PageFile.read_runs_into` reads the runs a search plans (hundreds per
query, two or three pages each). From Python each run costs a loop step, a buffer slice and
an ``os.preadv`` call on top of the system call itself; here one kernel loops over the runs
and calls libc's ``pread`` directly. The bytes read and the checks made are the same: this
module only reads; the caller verifies every page's trailer and counts the I/O.

libc's ``pread`` is reached through ctypes, looked up on first use (nothing happens at
import). It is passed to the kernel as an argument, so that the compiled kernel holds no
process-specific address and can be cached. Where there is no such libc (:func:`libc_pread`
returns None) the caller reads with ``os.preadv``.
"""

import ctypes
import os
import sys

import numba
import numpy as np

#: Statuses of :func:`pread_runs`.
READ_ALL = 0
BAD_RUN = 1
TOO_FEW_ROWS = 2
READ_FAILED = 3

_PREAD = []  # [ctypes function or None], filled on first use


def libc_pread():
    """libc's ``pread`` (64-bit offsets) as a ctypes function, or None if there is none."""
    if not _PREAD:
        fn = None
        if os.name == "posix" and sys.maxsize > 2**32:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fn = getattr(libc, "pread64", None) or libc.pread
                fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64]
                fn.restype = ctypes.c_ssize_t
            except (OSError, AttributeError):  # pragma: no cover - no C library to call
                fn = None
        _PREAD.append(fn)
    return _PREAD[0]


@numba.njit(cache=True, nogil=True)
def pread_runs(pread, fd, first_pages, n_pages, page_size, n_file_pages, out):
    """Read run r (``n_pages[r]`` pages from page ``first_pages[r]``) into the next rows of
    ``out``, for every run in order, one ``pread`` per run.

    Parameters
    ----------
    pread : ctypes function
        :func:`libc_pread`.
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
        number of leading runs read whose pages carry their own page numbers
        (:func:`numbered_runs`).
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
        if pread(fd, base + offset, n_bytes, first_pages[r] * page_size) != n_bytes:
            return READ_FAILED, r, rows, numbered_runs(out, first_pages, n_pages, r)
        offset += n_bytes
    return READ_ALL, n_runs, rows, numbered_runs(out, first_pages, n_pages, n_runs)


@numba.njit(cache=True, nogil=True)
def numbered_runs(out, first_pages, n_pages, n_runs):
    """How many of the first ``n_runs`` runs, read into consecutive rows of ``out``, have
    the right page number in every page's trailer (the little-endian uint32 8 bytes before
    the end of the page; the CRC32 after it is checked by the caller)."""
    at = out.shape[1] - 8
    row = 0
    for r in range(n_runs):
        for page_no in range(first_pages[r], first_pages[r] + n_pages[r]):
            stored = (np.int64(out[row, at]) | (np.int64(out[row, at + 1]) << 8)
                      | (np.int64(out[row, at + 2]) << 16) | (np.int64(out[row, at + 3]) << 24))
            if stored != page_no:
                return r
            row += 1
    return n_runs
