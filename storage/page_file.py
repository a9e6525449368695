"""Files of fixed-size, checksummed pages, read with ``pread`` and counted exactly.

Layout: see :mod:`storage.format`. A page file is written once, front to back
(:meth:`PageFile.create`, :meth:`PageFile.append_page`, :meth:`PageFile.finalize`), then
opened read-only for queries (:meth:`PageFile.open`). Every page read verifies the page's
CRC32 and page number and is counted in the shared :class:`storage.iostats.IOCounter`
unless the :class:`storage.buffer_pool.BufferPool` serves it.

The four read methods (:meth:`PageFile.read_page`, :meth:`PageFile.read_page_into`,
:meth:`PageFile.read_run`, :meth:`PageFile.read_runs_into`) are thin wrappers over one
primitive, ``PageFile._read``: runs of pages into the rows of a buffer. It alone decides the
buffer-pool rule (single pages and planned runs go through the pool, page by page, when it has
a capacity; a scan by ``read_run`` bypasses it), and every device read is verified and counted
in one place (``IOCounter.record_runs``; pool hits by ``IOCounter.record_hit``), where the
counter's trace sink, if any, sees it. Runs are read in one compiled loop calling libc's
``pread`` and their trailers checked there, CRC32 included (see :mod:`storage._run_reader`;
``os.preadv`` and Python CRC checks where the C functions cannot be called). Either way one run
is one system call, every page is checked, and the bytes read and the counts are the same.
"""

import hashlib
import os
import struct

import numpy as np

try:  # the same CRC-32 as zlib's, computed with SIMD folding: about ten times faster per page
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - zlib-ng is a dependency; plain zlib gives equal sums
    from zlib import crc32

from .buffer_pool import BufferPool
from .durable import fsync_fd, pwrite_all
from .errors import (ClosedFileError, CorruptPageError, NotAPageFileError, ReadOnlyError,
                     UnsupportedVersionError)
from .format import (APP_HEADER_OFFSET, BUILD_ID_SIZE, DEFAULT_PAGE_SIZE, FORMAT_MAJOR,
                     FORMAT_MINOR, HEADER_IDS_OFFSET, HEADER_IDS_STRUCT, HEADER_STRUCT, MAGIC,
                     MAX_PAGE_SIZE, MIN_PAGE_SIZE, NO_BUILD_ID, TRAILER_SIZE, check_page_size)
from ._run_reader import (BAD_RUN, READ_ALL, READ_FAILED, TOO_FEW_ROWS, RawReader, libc_pread,
                          pread_runs, summarize_runs, verified_runs, zlib_ng_crc32)
from .iostats import IOCounter

__all__ = ["PageFile"]

_U32 = struct.Struct("<I")
_TRAILER = struct.Struct("<II")  # page number, CRC32
_U32_LE = np.dtype("<u4")
_WRITE_BUFFER_BYTES = 4 << 20
_ONE_PAGE = np.ones(1, dtype=np.int64)  # n_pages of a one-page read
_ONE_PAGE.flags.writeable = False
_NO_RUNS = np.empty(0, dtype=np.int64)
_NO_RUNS.flags.writeable = False


def _pages(first, count):
    """``"page 5 is"`` or ``"pages 5..7 are"``, for error messages."""
    return f"page {first} is" if count == 1 else f"pages {first}..{first + count - 1} are"


class PageFile:
    """One page file, open for appending (new) or for reading (existing).

    Use :meth:`create` or :meth:`open`; do not call the constructor directly.

    Attributes
    ----------
    path : str
    page_size : int
        Bytes per page, trailer included.
    payload_size : int
        Bytes per page usable by the owner: ``page_size - 8``.
    page_count : int
        Pages in the file, header page included.
    kind : str
        The file kind written in the header (``"vectors"``, ``"btree"``, ...).
    app_header : bytes
        The owner's header fields (see :mod:`storage.format`).
    file_id : int
        Identity of this file in its :class:`IOCounter` (seeks are judged per file).
    build_id : bytes
        16 bytes naming the build the file belongs to (:meth:`stamp_build_id`); zeros until
        stamped, and in files of format 1.0.
    content_digest : bytes
        8 bytes: BLAKE2b of the CRC32s of pages 1 .. page_count-1 (see :mod:`storage.format`);
        of the pages appended so far while the file is written, zeros in files of format 1.0.
    format_version : tuple of (int, int)
    """

    def __init__(self, path, fd, *, writable, page_size, page_count, kind, app_header,
                 counter, buffer_pool):
        self.path = str(path)
        self._fd = fd
        self.writable = writable
        self.page_size = page_size
        self.payload_size = page_size - TRAILER_SIZE
        self.page_count = page_count
        self.kind = kind
        self.app_header = app_header
        self.counter = counter if counter is not None else IOCounter()
        self.buffer_pool = buffer_pool if buffer_pool is not None else BufferPool(0)
        self.file_id = self.counter.register_file(self.path)
        self._pending = []
        self._pending_bytes = 0
        self._flushed_pages = page_count
        self.build_id = NO_BUILD_ID
        self.format_version = (FORMAT_MAJOR, FORMAT_MINOR)
        self._digest = hashlib.blake2b(digest_size=8)
        self.content_digest = self._digest.digest()

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, path, *, kind, page_size=DEFAULT_PAGE_SIZE, counter=None):
        """Create a new page file for appending.

        Parameters
        ----------
        path : str or os.PathLike
            Must not exist.
        kind : str
            Up to 16 ASCII characters naming the content.
        page_size : int
            Power of two, 512 B .. 1 MiB.
        counter : IOCounter, optional
            Where writes are counted.

        Raises
        ------
        FileExistsError
            If ``path`` exists (an existing file is never overwritten).
        ValueError
            Bad ``page_size`` or ``kind``.
        NoSpaceError, WriteFailedError
            Writing the placeholder header page failed (the file is removed).

        Notes
        -----
        Disk access: creates the file and writes one header page.
        """
        check_page_size(page_size)
        kind_bytes = kind.encode("ascii")
        if not 0 < len(kind_bytes) <= 16:
            raise ValueError(f"kind must be 1 to 16 ASCII characters, got {kind!r}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        pf = cls(path, fd, writable=True, page_size=page_size, page_count=1, kind=kind,
                 app_header=b"", counter=counter, buffer_pool=None)
        try:
            pf._write_header()  # placeholder, rewritten by finalize()
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        return pf

    def _seal(self, page_no, payload):
        """Full page bytes for ``payload``: zero padding, page number, CRC32."""
        if isinstance(payload, np.ndarray):
            payload = payload.tobytes()
        n = len(payload)
        if n > self.payload_size:
            raise ValueError(f"payload of {n} bytes exceeds the page payload size {self.payload_size}")
        page = bytearray(self.page_size)
        page[:n] = payload
        _U32.pack_into(page, self.page_size - 8, page_no)
        crc = crc32(memoryview(page)[: self.page_size - 4])
        _U32.pack_into(page, self.page_size - 4, crc)
        if page_no:
            self._digest.update(_U32.pack(crc))
        return page

    def _header_payload(self):
        head = bytearray(self.payload_size)
        HEADER_STRUCT.pack_into(head, 0, MAGIC, FORMAT_MAJOR, FORMAT_MINOR, self.page_size,
                                self.page_count, self.kind.encode("ascii"))
        HEADER_IDS_STRUCT.pack_into(head, HEADER_IDS_OFFSET, self.build_id, self.content_digest)
        _U32.pack_into(head, APP_HEADER_OFFSET, len(self.app_header))
        head[APP_HEADER_OFFSET + 4: APP_HEADER_OFFSET + 4 + len(self.app_header)] = self.app_header
        return head

    def _write_header(self):
        pwrite_all(self._fd, self._seal(0, self._header_payload()), 0, path=self.path)
        self.counter.record_write(1, self.page_size)

    def append_page(self, payload):
        """Append one page holding ``payload`` (bytes-like, at most ``payload_size``).

        Returns
        -------
        int
            The new page's number.
        """
        self._check_writable()
        page_no = self.page_count
        self._pending.append(self._seal(page_no, payload))
        self._pending_bytes += self.page_size
        self.page_count += 1
        if self._pending_bytes >= _WRITE_BUFFER_BYTES:
            self.flush()
        return page_no

    def flush(self):
        """Write buffered pages to the file (one ``pwrite``, continued if it is short).

        Raises
        ------
        NoSpaceError
            The device is full (ENOSPC, EDQUOT).
        WriteFailedError
            Another write error (EIO...). After either, the buffered pages are dropped: the
            file is incomplete and must be discarded.
        """
        if not self._pending:
            return
        data = b"".join(self._pending)
        try:
            pwrite_all(self._fd, data, self._flushed_pages * self.page_size, path=self.path)
        except BaseException:
            # The file is incomplete and must be discarded; close() must not write again.
            self._pending, self._pending_bytes = [], 0
            raise
        self.counter.record_write(len(self._pending), len(data))
        self._flushed_pages += len(self._pending)
        self._pending = []
        self._pending_bytes = 0

    def finalize(self, app_header=b""):
        """Write the header page (page count, content digest, ``app_header``), fsync, and make
        the file read-only.

        Raises
        ------
        ValueError
            If ``app_header`` does not fit in the header page.
        NoSpaceError, WriteFailedError
            A write or the fsync failed.
        """
        self._check_writable()
        if len(app_header) > self.payload_size - APP_HEADER_OFFSET - 4:
            raise ValueError(f"application header of {len(app_header)} bytes does not fit a "
                             f"{self.page_size}-byte header page")
        self.flush()
        self.app_header = bytes(app_header)
        self.content_digest = self._digest.digest()
        self._write_header()
        fsync_fd(self._fd, path=self.path)
        self.writable = False

    @classmethod
    def stamp_build_id(cls, path, build_id):
        """Write ``build_id`` into the header page of the finalized file at ``path``, fsync.

        Parameters
        ----------
        path : str or os.PathLike
        build_id : bytes
            16 bytes naming the build the file belongs to.

        Raises
        ------
        ValueError
            ``build_id`` is not 16 bytes.
        NotAPageFileError, UnsupportedVersionError, CorruptPageError
            As :meth:`open`.
        NoSpaceError, WriteFailedError
            The write or the fsync failed.

        Notes
        -----
        Disk access: reads and rewrites the header page, then one ``fsync``.
        """
        if len(build_id) != BUILD_ID_SIZE:
            raise ValueError(f"build_id must be {BUILD_ID_SIZE} bytes, got {len(build_id)}")
        with cls.open(path) as pf:
            pf.build_id = bytes(build_id)
            fd = os.open(path, os.O_WRONLY)
            try:
                pwrite_all(fd, pf._seal(0, pf._header_payload()), 0, path=pf.path)
                fsync_fd(fd, path=pf.path)
            finally:
                os.close(fd)

    # ------------------------------------------------------------------ reading
    @classmethod
    def open(cls, path, *, counter=None, buffer_pool=None, kind=None):
        """Open an existing page file read-only.

        Parameters
        ----------
        path : str or os.PathLike
        counter : IOCounter, optional
            Shared with the other files of the same index, so that seeks are judged across them.
        buffer_pool : BufferPool, optional
            Shared cache; ``None`` means no caching.
        kind : str, optional
            If given, the file's kind must match.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        NotAPageFileError
            Empty file, bad magic, or wrong kind: not an lshdisk page file of that kind.
        UnsupportedVersionError
            Written by an unknown major format version.
        CorruptPageError
            The header page fails its checksum, or the file size disagrees with the header
            (a truncated file).
        """
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            first = os.pread(fd, MIN_PAGE_SIZE, 0)
            if len(first) < HEADER_STRUCT.size or not first.startswith(MAGIC):
                raise NotAPageFileError(f"{path} is not an lshdisk page file (bad magic number)")
            magic, major, minor, page_size, page_count, kind_raw = HEADER_STRUCT.unpack_from(first, 0)
            if major != FORMAT_MAJOR:
                raise UnsupportedVersionError(
                    f"{path} uses page-file format {major}.{minor}; this lshdisk reads "
                    f"{FORMAT_MAJOR}.x: upgrade lshdisk or rebuild the index")
            if page_size < MIN_PAGE_SIZE or page_size > MAX_PAGE_SIZE or page_size & (page_size - 1):
                raise CorruptPageError(f"{path}: header gives an invalid page size {page_size}")
            if size != page_count * page_size:
                raise CorruptPageError(
                    f"{path} has {size} bytes but its header declares {page_count} pages of "
                    f"{page_size} bytes: the file is truncated or damaged; rebuild the index")
            file_kind = kind_raw.rstrip(b"\0").decode("ascii", "replace")
            build_id, digest = HEADER_IDS_STRUCT.unpack_from(first, HEADER_IDS_OFFSET)
            if kind is not None and file_kind != kind:
                raise NotAPageFileError(f"{path} holds {file_kind!r} pages, expected {kind!r}")
            pf = cls(path, fd, writable=False, page_size=page_size, page_count=page_count,
                     kind=file_kind, app_header=b"", counter=counter, buffer_pool=buffer_pool)
            pf.build_id, pf.content_digest = build_id, digest
            pf.format_version = (major, minor)
        except BaseException:
            os.close(fd)
            raise
        try:
            head = pf.read_page(0)
            (length,) = _U32.unpack_from(head, APP_HEADER_OFFSET)
            if length > pf.payload_size - APP_HEADER_OFFSET - 4:
                raise CorruptPageError(f"{path}: header page declares an application header of "
                                       f"{length} bytes")
            pf.app_header = head[APP_HEADER_OFFSET + 4: APP_HEADER_OFFSET + 4 + length].tobytes()
        except BaseException:
            pf.close()
            raise
        return pf

    def _verify(self, page, page_no):
        ps = self.page_size
        if len(page) != ps:
            raise CorruptPageError(f"{self.path}: page {page_no} is short ({len(page)} of {ps} bytes)")
        stored_no, stored_crc = _TRAILER.unpack_from(page, ps - 8)
        if crc32(memoryview(page)[: ps - 4]) != stored_crc:
            raise CorruptPageError(f"{self.path}: page {page_no} fails its CRC32 check: the file is "
                                   f"damaged; rebuild the index")
        if stored_no != page_no:
            raise CorruptPageError(f"{self.path}: page {page_no} holds the content of page "
                                   f"{stored_no}: the file is damaged; rebuild the index")

    # Every read below is a thin wrapper over _read, the one primitive: it decides the
    # buffer-pool rule, and every device read is verified and counted in _read_device.

    def read_page(self, page_no):
        """Read and verify one page; one counted page read unless the buffer pool has it.

        Parameters
        ----------
        page_no : int

        Returns
        -------
        ndarray of uint8, shape (payload_size,)
            The payload, read-only (a copy of the pool's on a buffer-pool hit).

        Raises
        ------
        IndexError
            If ``page_no`` is outside the file.
        CorruptPageError
            If the page fails its checks.
        ClosedFileError
            If the file is closed.

        Notes
        -----
        Disk access: one ``pread`` of ``page_size`` bytes, none on a buffer-pool hit.
        """
        out = np.empty((1, self.page_size), dtype=np.uint8)
        self._read(np.array([page_no], dtype=np.int64), _ONE_PAGE, out, True)
        payload = out[0, : self.payload_size]
        payload.flags.writeable = False
        return payload

    def read_page_into(self, page_no, out):
        """Read and verify one page into ``out``; one counted page read unless the buffer pool
        has it.

        For search loops that keep the pages they scan in preallocated arrays.

        Parameters
        ----------
        page_no : int
        out : ndarray of uint8, shape (page_size,), C-contiguous, writable
            Receives the page; its first ``payload_size`` bytes are the payload (the trailer
            bytes are left as they are on a buffer-pool hit).

        Raises
        ------
        ValueError
            ``out`` is not a C-contiguous array of ``page_size`` bytes.
        IndexError, CorruptPageError, ClosedFileError
            As :meth:`read_page`.

        Notes
        -----
        Disk access: one ``pread`` of ``page_size`` bytes, none on a buffer-pool hit.
        """
        self._read(np.array([page_no], dtype=np.int64), _ONE_PAGE, out[np.newaxis], True)

    def read_run(self, first_page, n_pages):
        """Read ``n_pages`` consecutive pages with one ``pread``; counted as one seek at most.

        The buffer pool is bypassed (a run is a scan, which must not flush the pool).

        Parameters
        ----------
        first_page, n_pages : int
            ``n_pages >= 0``; an empty run reads and counts nothing.

        Returns
        -------
        ndarray of uint8, shape (n_pages, payload_size)
            Read-only payloads.

        Raises
        ------
        IndexError
            If the run lies outside the file or ``n_pages < 0``.
        CorruptPageError, ClosedFileError
            As :meth:`read_page`.

        Notes
        -----
        Disk access: one ``pread`` of ``n_pages * page_size`` bytes.
        """
        if n_pages == 0:  # nothing to read, but the position must still lie in the file
            firsts = counts = _NO_RUNS
            if not 0 <= first_page <= self._flushed_pages:
                raise IndexError(f"page {first_page} is outside {self.path} "
                                 f"({self._flushed_pages} pages)")
        else:
            firsts = np.array([first_page], dtype=np.int64)
            counts = np.array([n_pages], dtype=np.int64)
        out = np.empty((max(n_pages, 0), self.page_size), dtype=np.uint8)
        self._read(firsts, counts, out, False)
        pages = out[:, : self.payload_size]
        pages.flags.writeable = False
        return pages

    def read_runs_into(self, first_pages, n_pages, out):
        """Read several runs of consecutive pages, in the order given, into the rows of ``out``.

        Run ``r`` (``n_pages[r]`` pages from ``first_pages[r]``) is one ``pread`` into the next
        ``n_pages[r]`` rows of ``out`` (all runs from one compiled loop, see
        :mod:`storage._run_reader`); each page is verified and counted as :meth:`read_run`
        counts (a run is one seek at most, none if it starts right after the previous read).
        Scans that plan many short runs at once use this: one call instead of one per page.
        With a buffer pool, pages are taken page by page, as :meth:`read_page_into` takes
        them (pool hits are not device reads).

        Parameters
        ----------
        first_pages, n_pages : ndarray or sequence of int, shape (r,)
            Runs to read; ``n_pages`` entries >= 1.
        out : ndarray of uint8, shape (>= sum(n_pages), page_size), C-contiguous, writable

        Raises
        ------
        ValueError
            ``out`` is not a C-contiguous (rows, page_size) array or has too few rows; the run
            arrays differ in shape. Nothing is read.
        IndexError
            A run has no pages or lies outside the file. Nothing is read.
        CorruptPageError, OSError, ClosedFileError
            As :meth:`read_page`. Pages of runs before the failing one stay read and counted.

        Notes
        -----
        Disk access: one ``pread`` per run of ``n_pages[r] * page_size`` bytes; with a buffer
        pool, one ``pread`` of ``page_size`` bytes per page the pool does not hold.
        """
        firsts = np.asarray(first_pages, dtype=np.int64)
        counts = np.asarray(n_pages, dtype=np.int64)
        if firsts.ndim != 1 or firsts.shape != counts.shape:
            raise ValueError(f"first_pages and n_pages must be 1-D and of one length, got shapes "
                             f"{firsts.shape} and {counts.shape}")
        self._read(firsts, counts, out, True)

    def _read(self, firsts, counts, out, pooled):
        """The read primitive: runs ``firsts``, ``counts`` (int64 (r,)) into the rows of ``out``.

        The buffer-pool rule, decided here only: if ``pooled`` (every read but a scan by
        :meth:`read_run`) and the pool has a nonzero capacity, pages are taken one by one
        from the pool (:meth:`_read_pooled`); otherwise the runs are read from the device
        (:meth:`_read_device`) and the pool is neither asked nor filled.
        """
        if self._fd is None:
            raise ClosedFileError(f"{self.path} is closed")
        if out.ndim != 2 or out.shape[1] != self.page_size or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous (rows, {self.page_size}) uint8 array")
        if pooled and self.pooled:
            self._read_pooled(firsts, counts, out)
        else:
            self._read_device(firsts, counts, out)

    def _read_pooled(self, firsts, counts, out):
        """The pages of the runs one by one: a page the buffer pool holds is copied into its
        row (the payload only) and counted as a cache hit; any other is read from the device
        (:meth:`_read_device`) and a read-only copy of its payload is put in the pool."""
        fl, nl = firsts.tolist(), counts.tolist()
        self._refuse(*self._plan_rows(fl, nl, out.shape[0]), fl, nl, out.shape[0])
        pool, counter, file_id, n = self.buffer_pool, self.counter, self.file_id, self.payload_size
        row = 0
        for first, count in zip(fl, nl):
            for page_no in range(first, first + count):
                key = (file_id, page_no)
                cached = pool.get(key)
                if cached is not None:
                    out[row, :n] = cached
                    counter.record_hit(file_id, page_no)
                else:
                    self._read_device(np.array([page_no], dtype=np.int64), _ONE_PAGE,
                                      out[row:row + 1])
                    payload = out[row, :n].copy()
                    payload.flags.writeable = False
                    pool.put(key, payload)
                row += 1

    def _read_device(self, firsts, counts, out):
        """Read runs ``firsts``, ``counts`` (int64 (r,)) from the device into the rows of
        ``out``, one ``pread`` per run, verify every page and count the runs: the only place
        where device reads are counted, but for the reads a compiled scan made itself
        (:meth:`raw_reader`, counted by :meth:`count_runs`)."""
        fd, ps = self._fd, self.page_size
        pread, crc = libc_pread(), zlib_ng_crc32() or 0
        if pread is not None:
            status, n_read, rows, verified = pread_runs(pread, crc, fd, firsts, counts, ps,
                                                        self._flushed_pages, out)
        else:
            status, n_read, rows = self._preadv_runs(firsts, counts, out)
            verified = verified_runs(out, firsts, counts, n_read, crc)
        if status == READ_ALL and verified == n_read and crc:  # all read and checked: count
            self.counter.record_runs(self.file_id, firsts.tolist(), counts.tolist(), ps)
            return
        self._refuse(status, n_read, rows, firsts, counts, out.shape[0])
        fl, nl = firsts[:n_read].tolist(), counts[:n_read].tolist()
        n_good = verified if crc else min(verified, self._crc_good_runs(out, nl))
        self.counter.record_runs(self.file_id, fl[:n_good], nl[:n_good], ps)
        row = sum(nl[:n_good])
        if n_good < n_read:  # a page of run n_good is damaged: _verify words the error
            view = memoryview(out).cast("B")
            for i in range(nl[n_good]):
                self._verify(view[(row + i) * ps:(row + i + 1) * ps], fl[n_good] + i)
        if status == READ_FAILED:  # read run n_read again, to raise the OS error or the short read
            first, count = int(firsts[n_read]), int(counts[n_read])
            got = os.preadv(fd, [memoryview(out[row:row + count]).cast("B")], first * ps)
            if got != count * ps:
                raise CorruptPageError(f"{self.path}: {_pages(first, count)} short ({got} of "
                                       f"{count * ps} bytes)")
            self._read_device(firsts[n_read:], counts[n_read:], out[row:])  # read this time

    def _plan_rows(self, fl, nl, n_rows):
        """(status, run, rows) of runs ``fl``, ``nl`` (lists of int) for ``n_rows`` rows, as
        :func:`storage._run_reader.pread_runs` judges them before reading: READ_ALL, BAD_RUN
        (run ``run`` is empty or lies outside the file) or TOO_FEW_ROWS (``rows`` pages)."""
        flushed = self._flushed_pages
        for r, (first, count) in enumerate(zip(fl, nl)):
            if count < 1 or first < 0 or first + count > flushed:
                return BAD_RUN, r, 0
        rows = sum(nl)
        if rows > n_rows:
            return TOO_FEW_ROWS, 0, rows
        return READ_ALL, len(fl), rows

    def _refuse(self, status, run, rows, firsts, counts, n_rows):
        """Raise the error of a BAD_RUN or TOO_FEW_ROWS status (nothing was read)."""
        if status == BAD_RUN:
            first, count = int(firsts[run]), int(counts[run])
            raise IndexError(f"{_pages(first, count)} outside {self.path} "
                             f"({self._flushed_pages} pages)")
        if status == TOO_FEW_ROWS:
            raise ValueError(f"out has {n_rows} rows, too few for the runs ({rows} pages)")

    def _preadv_runs(self, firsts, counts, out):
        """:func:`storage._run_reader.pread_runs` with ``os.preadv``, where libc's ``pread``
        cannot be called."""
        ps = self.page_size
        fl, nl = firsts.tolist(), counts.tolist()
        status, run, rows = self._plan_rows(fl, nl, out.shape[0])
        if status != READ_ALL or rows == 0:  # (a view of no rows cannot be cast)
            return status, run, rows
        view = memoryview(out).cast("B")
        off = 0
        for r, (first, count) in enumerate(zip(fl, nl)):
            n_bytes = ps * count
            try:
                got = os.preadv(self._fd, [view[off:off + n_bytes]], first * ps)
            except OSError:
                got = -1
            if got != n_bytes:
                return READ_FAILED, r, rows
            off += n_bytes
        return READ_ALL, len(fl), rows

    def _crc_good_runs(self, out, counts):
        """How many leading runs (``counts[r]`` pages each, in consecutive rows of ``out``)
        have pages whose CRC32 matches their trailer."""
        ps = self.page_size
        n_rows = sum(counts)
        if n_rows == 0:
            return 0
        stored = out[:n_rows].view(_U32_LE)[:, ps // 4 - 1].tolist()
        view = memoryview(out).cast("B")
        end = ps - 4
        crcs = [crc32(view[off:off + end]) for off in range(0, n_rows * ps, ps)]
        if crcs == stored:
            return len(counts)
        bad = next(i for i in range(n_rows) if crcs[i] != stored[i])
        row = 0
        for r, count in enumerate(counts):
            row += count
            if bad < row:
                return r
        return len(counts)  # pragma: no cover - bad < n_rows

    @property
    def pooled(self):
        """The buffer-pool rule: True when reads (but a scan by :meth:`read_run`) go through
        the buffer pool, page by page; compiled scans (:meth:`raw_reader`) then read through
        this object's methods too."""
        return bool(self.buffer_pool.capacity_bytes)

    # ------------------------------------------------------------------ compiled readers
    def raw_reader(self):
        """What a compiled scan needs to read this file's pages itself, or None.

        Returns
        -------
        RawReader or None
            ``(pread, crc32, fd, n_pages)``: the addresses of libc's ``pread`` and zlib-ng's
            CRC-32 (see :mod:`storage._run_reader`), the descriptor and the page count. A
            kernel reads runs with :func:`storage.read_raw_runs`, which checks every page's
            trailer (page number and CRC32), and the caller counts them with
            :meth:`count_runs`. None when pages must go through this object's methods: a
            buffer pool is on (hits are not device reads), or either C function cannot be
            called.

        Raises
        ------
        ClosedFileError
        """
        if self._fd is None:
            raise ClosedFileError(f"{self.path} is closed")
        if self.pooled:
            return None
        pread, crc = libc_pread(), zlib_ng_crc32()
        if pread is None or not crc:
            return None
        return RawReader(pread, crc, self._fd, self._flushed_pages)

    def count_log(self, log):
        """Count the runs a compiled scan logged in ``log`` (a :data:`storage.RunLog` of its
        reads through :meth:`raw_reader`, in order), as :meth:`count_runs` does, and empty
        it."""
        n = int(log.n[0])
        if n:
            self.count_runs(log.firsts[:n], log.counts[:n])
            log.n[0] = 0

    def count_runs(self, first_pages, n_pages):
        """Count runs a compiled scan read from this file through :meth:`raw_reader`, in the
        order read, as :meth:`read_runs_into` counts them.

        Parameters
        ----------
        first_pages, n_pages : ndarray of int64, shape (r,)
            ``n_pages`` entries >= 1.
        """
        counter = self.counter
        if counter.tracing:
            counter.record_runs(self.file_id, first_pages.tolist(), n_pages.tolist(),
                                self.page_size)
        elif first_pages.shape[0]:
            total, seeks, last = summarize_runs(first_pages, n_pages)
            counter.record_run_summary(self.file_id, int(first_pages[0]), int(last), int(total),
                                       int(seeks), self.page_size)

    # ------------------------------------------------------------------ lifetime
    def _check_writable(self):
        if self._fd is None:
            raise ClosedFileError(f"{self.path} is closed")
        if not self.writable:
            raise ReadOnlyError(f"{self.path} is open read-only")

    @property
    def closed(self):
        return self._fd is None

    def close(self):
        """Close the file. Pages appended but not finalized are flushed, not fsynced."""
        if self._fd is None:
            return
        try:
            if self.writable:
                self.flush()
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._fd is None else ("writable" if self.writable else "read-only")
        return (f"PageFile({self.path!r}, kind={self.kind!r}, page_size={self.page_size}, "
                f"pages={self.page_count}, {state})")
