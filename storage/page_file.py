"""Files of fixed-size, checksummed pages, read with ``pread`` and counted exactly.

Layout: see :mod:`storage.format`. A page file is written once, front to back
(:meth:`PageFile.create`, :meth:`PageFile.append_page`, :meth:`PageFile.finalize`), then
opened read-only for queries (:meth:`PageFile.open`). Every page read verifies the page's
CRC32 and page number and is counted in the shared :class:`storage.iostats.IOCounter`
unless the :class:`storage.buffer_pool.BufferPool` serves it.

Pages are read with ``os.pread``/``os.preadv``, except by :meth:`PageFile.read_runs_into`,
which reads many runs in one compiled loop calling libc's ``pread`` and checks their trailers
there, CRC32 included (see :mod:`storage._run_reader`; ``os.preadv`` and Python CRC checks
where the C functions cannot be called). Either way one run is one system call, every page
is checked, and the bytes read and the counts are the same.
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
                          pread_runs, verified_runs, zlib_ng_crc32)
from .iostats import IOCounter

__all__ = ["PageFile"]

_U32 = struct.Struct("<I")
_TRAILER = struct.Struct("<II")  # page number, CRC32
_U32_LE = np.dtype("<u4")
_WRITE_BUFFER_BYTES = 4 << 20


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
        self.file_id = self.counter.register_file()
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

    def read_page(self, page_no):
        """Read and verify one page; one counted page read unless the buffer pool has it.

        Returns
        -------
        ndarray of uint8, shape (payload_size,)
            The payload, read-only.

        Raises
        ------
        IndexError
            If ``page_no`` is outside the file.
        CorruptPageError
            If the page fails its checks.
        """
        if self._fd is None:
            raise ClosedFileError(f"{self.path} is closed")
        if not 0 <= page_no < self._flushed_pages:
            raise IndexError(f"page {page_no} is outside {self.path} ({self._flushed_pages} pages)")
        key = (self.file_id, page_no)
        cached = self.buffer_pool.get(key)
        if cached is not None:
            self.counter.record_hit()
            return cached
        page = os.pread(self._fd, self.page_size, page_no * self.page_size)
        self._verify(page, page_no)
        self.counter.record_read(self.file_id, page_no, self.page_size)
        payload = np.frombuffer(page, dtype=np.uint8, count=self.payload_size)
        self.buffer_pool.put(key, payload)
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
        IndexError, CorruptPageError, ClosedFileError
            As :meth:`read_page`.
        """
        fd = self._fd
        if fd is None:
            raise ClosedFileError(f"{self.path} is closed")
        if not 0 <= page_no < self._flushed_pages:
            raise IndexError(f"page {page_no} is outside {self.path} ({self._flushed_pages} pages)")
        pool = self.buffer_pool
        if pool.capacity_bytes:
            cached = pool.get((self.file_id, page_no))
            if cached is not None:
                out[: self.payload_size] = cached
                self.counter.record_hit()
                return
        ps = self.page_size
        got = os.preadv(fd, [out], page_no * ps)
        if got != ps:
            raise CorruptPageError(f"{self.path}: page {page_no} is short ({got} of {ps} bytes)")
        # The checks of _verify, inlined on this hot path; _verify words the error.
        stored_no, stored_crc = _TRAILER.unpack_from(out, ps - 8)
        if stored_no != page_no or crc32(out[: ps - 4]) != stored_crc:
            self._verify(out, page_no)
        self.counter.record_read(self.file_id, page_no, ps)
        if pool.capacity_bytes:
            cached = out[: self.payload_size].copy()
            cached.flags.writeable = False
            pool.put((self.file_id, page_no), cached)

    def read_run(self, first_page, n_pages):
        """Read ``n_pages`` consecutive pages with one ``pread``; counted as one seek at most.

        The buffer pool is bypassed (a run is a scan, which must not flush the pool).

        Returns
        -------
        ndarray of uint8, shape (n_pages, payload_size)
            Read-only payloads.
        """
        if self._fd is None:
            raise ClosedFileError(f"{self.path} is closed")
        if n_pages < 0 or first_page < 0 or first_page + n_pages > self._flushed_pages:
            raise IndexError(f"pages {first_page}..{first_page + n_pages - 1} are outside "
                             f"{self.path} ({self._flushed_pages} pages)")
        ps = self.page_size
        data = os.pread(self._fd, ps * n_pages, first_page * ps)
        if len(data) != ps * n_pages:
            raise CorruptPageError(f"{self.path}: pages {first_page}..{first_page + n_pages - 1} "
                                   f"are short ({len(data)} of {ps * n_pages} bytes)")
        view = memoryview(data)
        unpack = _TRAILER.unpack_from
        for i in range(n_pages):  # the checks of _verify, inlined; _verify words the error
            off = i * ps
            stored_no, stored_crc = unpack(data, off + ps - 8)
            if stored_no != first_page + i or crc32(view[off:off + ps - 4]) != stored_crc:
                self._verify(view[off:off + ps], first_page + i)
        self.counter.record_run(self.file_id, first_page, n_pages, ps * n_pages)
        pages = np.frombuffer(data, dtype=np.uint8).reshape(n_pages, ps)
        return pages[:, : self.payload_size]

    def read_runs_into(self, first_pages, n_pages, out):
        """Read several runs of consecutive pages, in the order given, into the rows of ``out``.

        Run ``r`` (``n_pages[r]`` pages from ``first_pages[r]``) is one ``pread`` into the next
        ``n_pages[r]`` rows of ``out`` (all runs from one compiled loop, see
        :mod:`storage._run_reader`); each page is verified and counted as :meth:`read_run`
        counts (a run is one seek at most, none if it starts right after the previous read).
        Scans that plan many short runs at once use this: one call instead of one per page.
        With a buffer pool, pages are taken page by page through :meth:`read_page_into`
        (pool hits are not device reads).

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
        """
        fd = self._fd
        if fd is None:
            raise ClosedFileError(f"{self.path} is closed")
        ps = self.page_size
        if out.ndim != 2 or out.shape[1] != ps or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous (rows, {ps}) uint8 array")
        if self.buffer_pool.capacity_bytes:
            row = 0
            for first, count in zip(first_pages, n_pages):
                for i in range(int(count)):
                    self.read_page_into(int(first) + i, out[row])
                    row += 1
            return
        firsts = np.asarray(first_pages, dtype=np.int64)
        counts = np.asarray(n_pages, dtype=np.int64)
        if firsts.ndim != 1 or firsts.shape != counts.shape:
            raise ValueError(f"first_pages and n_pages must be 1-D and of one length, got shapes "
                             f"{firsts.shape} and {counts.shape}")
        self._read_runs_device(firsts, counts, out)

    def _read_runs_device(self, firsts, counts, out):
        """The device reads of :meth:`read_runs_into` (no buffer pool): runs ``firsts``,
        ``counts`` (int64 (r,)) into the rows of ``out``, verified and counted."""
        fd, ps = self._fd, self.page_size
        pread, crc = libc_pread(), zlib_ng_crc32() or 0
        if pread is not None:
            status, n_read, rows, verified = pread_runs(pread, crc, fd, firsts, counts, ps,
                                                        self._flushed_pages, out)
        else:
            status, n_read, rows = self._preadv_runs(firsts, counts, out)
            verified = verified_runs(out, firsts, counts, n_read, crc)
        if status == BAD_RUN:
            first, count = int(firsts[n_read]), int(counts[n_read])
            raise IndexError(f"pages {first}..{first + count - 1} are outside {self.path} "
                             f"({self._flushed_pages} pages)")
        if status == TOO_FEW_ROWS:
            raise ValueError(f"out has {out.shape[0]} rows, too few for the runs ({rows} pages)")
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
                raise CorruptPageError(f"{self.path}: pages {first}..{first + count - 1} are "
                                       f"short ({got} of {count * ps} bytes)")
            self._read_runs_device(firsts[n_read:], counts[n_read:], out[row:])  # read this time

    def _preadv_runs(self, firsts, counts, out):
        """:func:`storage._run_reader.pread_runs` with ``os.preadv``, where libc's ``pread``
        cannot be called."""
        ps, flushed = self.page_size, self._flushed_pages
        fl, nl = firsts.tolist(), counts.tolist()
        for r, (first, count) in enumerate(zip(fl, nl)):
            if count < 1 or first < 0 or first + count > flushed:
                return BAD_RUN, r, 0
        rows = sum(nl)
        if rows > out.shape[0]:
            return TOO_FEW_ROWS, 0, rows
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
        if self.buffer_pool.capacity_bytes:
            return None
        pread, crc = libc_pread(), zlib_ng_crc32()
        if pread is None or not crc:
            return None
        return RawReader(pread, crc, self._fd, self._flushed_pages)

    def count_runs(self, first_pages, n_pages):
        """Count runs a compiled scan read from this file through :meth:`raw_reader`, in the
        order read, as :meth:`read_runs_into` counts them (sequences of int, ``n_pages``
        entries >= 1)."""
        self.counter.record_runs(self.file_id, list(first_pages), list(n_pages), self.page_size)

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
