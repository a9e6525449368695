"""Streaming readers for vector datasets, query sets and ground-truth files.

Index builds and evaluations read their data through this module. A dataset is opened as a
:class:`VectorSource`, which knows its shape and storage dtype from the file header (or the file
size) and hands out row blocks on demand; no call reads a whole dataset file into memory. Query
sets and ground-truth files are small and are read whole.

Dataset layouts (all little-endian; ``n`` vectors of dimension ``d``):

========  ===========================================  ====================================
format    layout                                       storage dtype
========  ===========================================  ====================================
fvecs     per vector: int32 ``d``, then ``d`` float32  float32
ivecs     per vector: int32 ``d``, then ``d`` int32    int32 (also a ground-truth format)
bvecs     per vector: int32 ``d``, then ``d`` uint8    uint8
fbin      int32 ``n``, int32 ``d``, n*d float32        float32
u8bin     int32 ``n``, int32 ``d``, n*d uint8          uint8
i8bin     int32 ``n``, int32 ``d``, n*d int8           int8
raw       n*d values, row-major, no header             ``dtype`` argument; needs ``dim``
npy       NumPy ``.npy``, memory-mapped                the array's dtype
hdf5      ann-benchmarks file, ``path:name``           the dataset's dtype (default ``train``)
array     in-memory 2-D array-like or np.memmap        the array's dtype
========  ===========================================  ====================================

"raw" is the headerless layout of the research codes' copies of Mnist, Sift, Gist, Trevi and
P53 (``n = size / (dim * itemsize)``). Storage dtypes are :data:`SUPPORTED_DTYPES`; other numeric
data is converted block by block: float64 and float16 to float32, bool to uint8, int16 to int32,
and int64 / uint32 / uint64 to int32 with a range check. Complex, object and string data is
refused.

Ground-truth files (``qalsh``, ``ivecs``, ``npy``, ``hdf5``) are read and written by
:func:`read_groundtruth` and :func:`write_groundtruth`, exported here beside the dataset readers
and defined in :mod:`lshdisk.groundtruth`, whose docstring lists their layouts.

Every problem with the data raises :class:`~lshdisk.errors.DatasetError` with a one-line message
naming the file, the problem and the fix.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator

import numpy as np

from lshdisk.errors import DatasetError

__all__ = [
    "SUPPORTED_DTYPES",
    "VectorSource",
    "open_source",
    "read_queries",
    "read_groundtruth",
    "write_groundtruth",
]

SUPPORTED_DTYPES = ("uint8", "int8", "uint16", "int32", "float32")

_STORAGE = {np.dtype(name) for name in SUPPORTED_DTYPES}
_WIDEN = {  # converted block by block (float64 -> float32 is the accepted lossy case)
    np.dtype("float64"): np.dtype("float32"),
    np.dtype("float16"): np.dtype("float32"),
    np.dtype("int16"): np.dtype("int32"),
    np.dtype("bool"): np.dtype("uint8"),
}
_NARROW = {np.dtype("int64"), np.dtype("uint32"), np.dtype("uint64")}  # -> int32, checked
_INT32 = np.iinfo(np.int32)

_EXTENSIONS = {".fvecs": "fvecs", ".bvecs": "bvecs", ".ivecs": "ivecs", ".fbin": "fbin",
               ".u8bin": "u8bin", ".i8bin": "i8bin", ".npy": "npy", ".hdf5": "hdf5",
               ".h5": "hdf5"}
_VECS = {"fvecs": "<f4", "ivecs": "<i4", "bvecs": "u1"}
_BIN = {"fbin": "<f4", "u8bin": "u1", "i8bin": "i1"}
_FORMATS = ("fvecs", "bvecs", "ivecs", "fbin", "u8bin", "i8bin", "raw", "npy", "hdf5", "array")
_FP_WINDOWS, _FP_WINDOW_BYTES = 16, 4096
_O_BINARY = getattr(os, "O_BINARY", 0)


# --------------------------------------------------------------------------- helpers


def _storage_dtype(dt: np.dtype, label: str) -> tuple[np.dtype, bool]:
    """Return (storage dtype, needs an int32 range check) for data held as ``dt``."""
    native = dt.newbyteorder("=") if dt.byteorder in "<>" else dt
    if native in _STORAGE:
        return native, False
    if native in _WIDEN:
        return _WIDEN[native], False
    if native in _NARROW:
        return np.dtype("int32"), True
    raise DatasetError(
        f"{label} has dtype {dt}, which lshdisk cannot index; convert it to one of "
        f"{', '.join(SUPPORTED_DTYPES)} (float64 is converted to float32 automatically)"
    )


def _parse_dtype(dtype, label: str) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError:
        raise DatasetError(
            f"{label}: {dtype!r} is not a dtype; pass one of {', '.join(SUPPORTED_DTYPES)}"
        ) from None


def _check_args(label, fmt, storage, d, dtype, dim) -> None:
    """Refuse ``dtype`` / ``dim`` arguments that contradict what the data declares."""
    if dtype is not None and _storage_dtype(_parse_dtype(dtype, label), label)[0] != storage:
        raise DatasetError(
            f"{label} stores {storage} ({fmt}) but dtype={str(dtype)!r} was passed; "
            f"drop --dtype or pass --dtype {storage}"
        )
    if dim is not None and int(dim) != d:
        raise DatasetError(
            f"{label} has dimension {d} but dim={dim} was passed; drop --dim or pass --dim {d}"
        )


def _check_finite(block: np.ndarray, start: int, label: str) -> None:
    """Raise DatasetError naming the first row of a float block that holds NaN or Inf."""
    # Fast path: a float64 sum of float32 values is finite iff every value is.
    if block.size == 0 or np.isfinite(np.add.reduce(block, axis=None, dtype=np.float64)):
        return
    bad = int(np.argmin(np.isfinite(block).all(axis=1)))
    raise DatasetError(
        f"row {start + bad} of {label} holds NaN or Inf; remove or replace the non-finite "
        f"values (e.g. with np.nan_to_num) before using the data"
    )


def _check_int32_range(block: np.ndarray, start: int, label: str) -> None:
    ok = (block >= _INT32.min) & (block <= _INT32.max)
    if not ok.all():
        bad = int(np.argmin(ok.all(axis=1)))
        raise DatasetError(
            f"row {start + bad} of {label} holds a value outside the int32 range; "
            f"convert the data to float32 first"
        )


def _file_size(path: str, what: str) -> int:
    """Size in bytes of an existing, non-empty regular file, else DatasetError."""
    if not os.path.exists(path):
        raise DatasetError(f"{path} does not exist: check the path of the {what}")
    if os.path.isdir(path):
        raise DatasetError(f"{path} is a directory, not a {what}: pass the file's path")
    size = os.path.getsize(path)
    if size == 0:
        raise DatasetError(f"{path} is empty (0 bytes): regenerate or re-download the {what}")
    return size


def _pread_into(fd: int, buf: np.ndarray, offset: int, label: str) -> None:
    """Fill the uint8 array ``buf`` from ``fd`` at ``offset``; positional, so thread-safe."""
    view = memoryview(buf).cast("B")
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise DatasetError(
                f"{label} ended at byte {offset + done}, before the {len(view)} bytes expected "
                f"from byte {offset}: the file shrank while open; reopen it"
            )
        done += got


def _read_at(path: str, spans: list[tuple[int, int]]) -> list[bytes]:
    """The bytes of each (offset, length) span of a file, in one open."""
    fd = os.open(path, os.O_RDONLY | _O_BINARY)
    try:
        return [os.pread(fd, length, offset) for offset, length in spans]
    finally:
        os.close(fd)


def _windows(size: int) -> list[tuple[int, int]]:
    """(offset, length) of up to 16 evenly spaced 4 KiB windows over ``size`` bytes."""
    if size <= _FP_WINDOWS * _FP_WINDOW_BYTES:
        return [(0, size)]
    span = size - _FP_WINDOW_BYTES
    return [(i * span // (_FP_WINDOWS - 1), _FP_WINDOW_BYTES) for i in range(_FP_WINDOWS)]


# --------------------------------------------------------------------------- sources


class VectorSource:
    """A dataset of ``n`` vectors of dimension ``d``, read block by block.

    Obtain one from :func:`open_source`; do not instantiate it directly. A source holds an open
    file (or a reference to an array) until :meth:`close`, and is a context manager. File reads
    are positional (no shared cursor), so concurrent reads from several threads are safe.

    Attributes
    ----------
    n : int
        Number of vectors, >= 1.
    d : int
        Dimension, >= 1.
    dtype : numpy.dtype
        Storage dtype of every block handed out, one of :data:`SUPPORTED_DTYPES`; float64
        data reports (and is converted to) float32.
    format : str
        "fvecs", "bvecs", "ivecs", "fbin", "u8bin", "i8bin", "raw", "npy", "hdf5" or "array".
    path : str or None
        The file read; None for an in-memory array.
    """

    def __init__(self, *, n: int, d: int, dtype: np.dtype, format: str, path: str | None,
                 label: str) -> None:
        self.n, self.d, self.dtype = int(n), int(d), np.dtype(dtype)
        self.format, self.path = format, path
        self._label = label
        self._closed = False

    def iter_chunks(self, max_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Iterate over all rows in order, in blocks of at most ``max_rows`` rows.

        Parameters
        ----------
        max_rows : int
            Largest number of rows per block, >= 1.

        Yields
        ------
        start_row : int
            Global index of the block's first row.
        block : ndarray of self.dtype, shape (rows, d), C-contiguous
            A fresh, writable copy, ``1 <= rows <= max_rows``.

        Raises
        ------
        ValueError
            If ``max_rows < 1`` or the source is closed (raised at the call, not lazily).
        DatasetError
            When a float block holds NaN/Inf (naming the first bad row's global index and the
            fix), a ``*vecs`` row declares another dimension, or the file shrank.

        Notes
        -----
        Disk access: one positional read (memory-map or HDF5 slice) per block; a full pass
        reads the data once, sequentially.
        """
        max_rows = int(max_rows)
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self._check_open()
        return self._iter_chunks(max_rows)

    def _iter_chunks(self, max_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.n, max_rows):
            yield start, self.read_rows(start, min(start + max_rows, self.n))

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Read rows ``start`` (inclusive) to ``stop`` (exclusive).

        Parameters
        ----------
        start, stop : int
            Row range, ``0 <= start <= stop <= n``.

        Returns
        -------
        ndarray of self.dtype, shape (stop - start, d), C-contiguous
            A fresh, writable copy.

        Raises
        ------
        ValueError
            If the range is out of bounds or the source is closed.
        DatasetError
            As for :meth:`iter_chunks`.

        Notes
        -----
        Disk access: one read of the ``stop - start`` records.
        """
        self._check_open()
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= self.n:
            raise ValueError(
                f"rows [{start}, {stop}) are out of range for {self._label} with n = {self.n}; "
                f"need 0 <= start <= stop <= {self.n}"
            )
        with np.errstate(over="ignore"):  # float64 beyond float32 becomes inf: caught below
            block = self._read(start, stop)
        if self.dtype.kind == "f":
            _check_finite(block, start, self._label)
        return block

    def fingerprint(self) -> str:
        """Hex SHA-256 that identifies the data, cheap on huge files.

        Hashes the format, ``n``, ``d``, dtype, byte size, and the bytes of up to 16 evenly
        spaced 4 KiB windows of the file (of the rows' bytes for in-memory arrays and HDF5
        datasets, whose name is hashed too). Data of at most 64 KiB is hashed whole.

        Returns
        -------
        str
            64 hexadecimal digits.

        Notes
        -----
        Disk access: at most 16 reads of 4 KiB whatever the file size. It detects a swapped,
        regenerated or resized file, not every edit: a change outside the windows goes unseen.
        """
        self._check_open()
        size, extra, windows = self._fingerprint_parts()
        h = hashlib.sha256(
            f"lshdisk.fingerprint.v1\0{self.format}\0{self.n}\0{self.d}\0{self.dtype.name}"
            f"\0{size}\0{extra}\0".encode()
        )
        for window in windows:
            h.update(window)
        return h.hexdigest()

    def close(self) -> None:
        """Release the file or array; later reads raise ValueError. Idempotent."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> VectorSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (f"<VectorSource {self.format} {self._label!r} n={self.n} d={self.d} "
                f"dtype={self.dtype.name}{state}>")

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self._label} is closed; open it again with open_source()")

    def _read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fingerprint_parts(self) -> tuple[int, str, list[bytes]]:  # pragma: no cover
        raise NotImplementedError

    def _release(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _FileSource(VectorSource):
    """Fixed-size records in a flat file (the *vecs, *bin and raw layouts), read by pread."""

    def __init__(self, *, path: str, format: str, n: int, d: int, file_dtype: np.dtype,
                 data_offset: int, prefixed: bool) -> None:
        storage, checked = _storage_dtype(file_dtype, path)
        super().__init__(n=n, d=d, dtype=storage, format=format, path=path, label=path)
        self._file_dtype, self._checked, self._offset = file_dtype, checked, data_offset
        # *vecs: every record starts with an int32 dimension, read as a strided field.
        self._record = np.dtype([("d", "<i4"), ("v", file_dtype, (d,))]) if prefixed else None
        self._stride = (4 if prefixed else 0) + d * file_dtype.itemsize
        self._fd = os.open(path, os.O_RDONLY | _O_BINARY)

    def _read(self, start: int, stop: int) -> np.ndarray:
        rows = stop - start
        buf = np.empty(rows * self._stride, np.uint8)
        if rows:
            _pread_into(self._fd, buf, self._offset + start * self._stride, self._label)
        if self._record is None:
            values = buf.view(self._file_dtype).reshape(rows, self.d)
        else:
            rec = buf.view(self._record)
            bad = np.flatnonzero(rec["d"] != self.d)
            if bad.size:
                raise DatasetError(
                    f"row {start + int(bad[0])} of {self._label} declares dimension "
                    f"{int(rec['d'][bad[0]])}, expected {self.d}: the file is not a uniform "
                    f".{self.format} file; rewrite it with one dimension for all vectors"
                )
            values = rec["v"]
        if self._checked:
            _check_int32_range(values, start, self._label)
        if self._record is not None or values.dtype != self.dtype:
            values = np.array(values, dtype=self.dtype, order="C")
        return values

    def _fingerprint_parts(self) -> tuple[int, str, list[bytes]]:
        size = os.fstat(self._fd).st_size
        return size, "", [os.pread(self._fd, ln, off) for off, ln in _windows(size)]

    def _release(self) -> None:
        os.close(self._fd)


class _ArraySource(VectorSource):
    """A 2-D array-like sliced per block: ndarray, np.memmap (npy files), h5py dataset."""

    def __init__(self, array, *, raw_dtype: np.dtype, format: str, path: str | None,
                 label: str, closer=None, extra: str = "") -> None:
        storage, checked = _storage_dtype(raw_dtype, label)
        n, d = array.shape
        super().__init__(n=n, d=d, dtype=storage, format=format, path=path, label=label)
        self._array, self._raw_dtype, self._checked = array, raw_dtype, checked
        self._closer, self._extra = closer, extra

    def _read(self, start: int, stop: int) -> np.ndarray:
        raw = np.asarray(self._array[start:stop])  # a memmap / HDF5 slice touches these rows only
        if self._checked:
            _check_int32_range(raw, start, self._label)
        return np.array(raw, dtype=self.dtype, order="C", copy=True)

    def _fingerprint_parts(self) -> tuple[int, str, list[bytes]]:
        if self.format == "npy":
            size = os.path.getsize(self.path)
            return size, "", _read_at(self.path, _windows(size))
        row_bytes = self.d * self._raw_dtype.itemsize
        size = self.n * row_bytes
        windows = []
        for off, length in _windows(size):
            r0, r1 = off // row_bytes, -(-(off + length) // row_bytes)
            raw = np.ascontiguousarray(np.asarray(self._array[r0:r1]), dtype=self._raw_dtype)
            lo = off - r0 * row_bytes
            windows.append(raw.tobytes()[lo : lo + length])
        return size, f"{self._raw_dtype.str}\0{self._extra}", windows

    def _release(self) -> None:
        self._array = None
        if self._closer is not None:
            self._closer()


# --------------------------------------------------------------------------- opening


def open_source(source, *, format: str | None = None, dtype: str | None = None,
                dim: int | None = None) -> VectorSource:
    """Open a dataset for streaming.

    Parameters
    ----------
    source : str, os.PathLike or array-like
        A file path (``file.hdf5:name`` picks an HDF5 dataset, default ``train``), or an
        in-memory 2-D array-like of shape (n, d). An ndarray or np.memmap is sliced per block
        and never copied whole; so is any object with ``shape``, ``dtype`` and slicing (e.g. an
        h5py dataset); anything else (e.g. a list of lists) goes through ``np.asarray``.
    format : str, optional
        "fvecs", "bvecs", "ivecs", "fbin", "u8bin", "i8bin", "raw", "npy", "hdf5" or "array".
        None infers it from the extension; an unknown extension means "raw".
    dtype : str, optional
        Value dtype of a raw file (required for raw). For other formats, if given, it must
        match the data.
    dim : int, optional
        Dimension of a raw file (required for raw). For other formats, if given, it must
        match the data.

    Returns
    -------
    VectorSource
        An open source; close it, or use it in a ``with`` block.

    Raises
    ------
    DatasetError
        Missing, empty, truncated or malformed file; header inconsistent with the file size;
        raw file without ``dtype``/``dim``; unsupported dtype; dimension 0; n == 0; an array
        that is not 2-D; ``dtype``/``dim`` contradicting the data.
    TypeError
        If ``source`` is already a VectorSource.

    Notes
    -----
    Disk access: reads the header (for *vecs, the first and last record's int32 dimension);
    no data rows.
    """
    if isinstance(source, VectorSource):
        raise TypeError("source is already an open VectorSource; use it directly")
    if isinstance(source, (str, os.PathLike)):
        return _open_path(os.fspath(source), format, dtype, dim)
    if format not in (None, "array"):
        raise DatasetError(f"format={format!r} needs a file path, but an array was passed; "
                           f"pass the path, or format='array'")
    return _open_array(source, dtype, dim, "the array")


def _as_array(source, label: str):
    """``source`` itself if it slices lazily (ndarray, memmap, h5py dataset), else np.asarray."""
    if isinstance(source, np.ndarray):
        return source
    if not isinstance(source, (list, tuple)) and hasattr(source, "__getitem__"):
        try:
            np.dtype(source.dtype), tuple(source.shape)
            return source
        except (AttributeError, TypeError):
            pass
    try:
        return np.asarray(source)
    except ValueError as exc:
        raise DatasetError(
            f"{label} is not rectangular ({exc}); give every vector the same length"
        ) from None


def _open_array(source, dtype, dim, label: str, fmt="array", path=None, closer=None,
                extra="") -> VectorSource:
    array = _as_array(source, label)
    shape = tuple(int(s) for s in array.shape)
    if len(shape) != 2:
        hint = "x.reshape(1, -1) for one vector" if len(shape) == 1 else "x.reshape(n, d)"
        raise DatasetError(f"{label} is {len(shape)}-D with shape {shape}, but a dataset must "
                           f"be 2-D (n, d); reshape it, e.g. {hint}")
    if shape[1] == 0:
        raise DatasetError(f"{label} has dimension 0 (shape {shape}): vectors need d >= 1")
    if shape[0] == 0:
        raise DatasetError(f"{label} is empty (shape {shape}): a dataset needs n >= 1 vectors")
    src = _ArraySource(array, raw_dtype=np.dtype(array.dtype), format=fmt, path=path,
                       label=label, closer=closer, extra=extra)
    _check_args(label, fmt, src.dtype, src.d, dtype, dim)
    return src


def _open_path(spec: str, format, dtype, dim) -> VectorSource:
    path, name = spec, None
    if ":" in spec and not os.path.exists(spec):  # "file.hdf5:name"
        head, _, tail = spec.rpartition(":")
        if format == "hdf5" or os.path.splitext(head)[1].lower() in (".hdf5", ".h5"):
            path, name = head, tail
    ext = os.path.splitext(path)[1].lower()
    fmt = format if format is not None else _EXTENSIONS.get(ext, "raw")
    if fmt not in _FORMATS or fmt == "array":
        raise DatasetError(f"{path}: unknown dataset format {fmt!r}; use one of "
                           f"{', '.join(_FORMATS[:-1])}")
    size = _file_size(path, "dataset file")
    if fmt == "npy":
        try:  # a truncated file fails here: "mmap length is greater than file size"
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DatasetError(f"{path} cannot be memory-mapped ({exc}): it is truncated or "
                               f"not numeric; re-save it with np.save(path, x)") from None
        return _open_array(array, dtype, dim, path, fmt="npy", path=path)
    if fmt == "hdf5":
        return _open_hdf5(path, name or "train", dtype, dim)
    if fmt == "raw" and (dtype is None or dim is None):
        raise DatasetError(
            f"{path}: cannot tell the layout of a {ext or 'extension-less'!r} file; for a "
            f"headerless raw file pass --dtype and --dim (dtype=, dim= in Python), e.g. "
            f"--dtype uint8 --dim 50, or give the file a known extension"
        )
    return _open_flat(path, fmt, size, dtype, dim)


def _open_flat(path: str, fmt: str, size: int, dtype, dim) -> VectorSource:
    """Open a *vecs, *bin or raw file: fixed-size records after an optional 8-byte header."""
    header = 8 if fmt in _BIN else 0
    prefixed = fmt in _VECS
    n_header = None
    if fmt == "raw":
        file_dtype = _parse_dtype(dtype, path).newbyteorder("<")
        _storage_dtype(file_dtype, path)
        d = int(dim)
        if d <= 0:
            raise DatasetError(f"{path}: dimension {d} was passed; --dim must be >= 1")
    else:
        file_dtype = np.dtype(_BIN.get(fmt) or _VECS[fmt])
        if size < (header or 4):
            raise DatasetError(
                f"{path} is {size} bytes, too short for the header of a .{fmt} file: the file "
                f"is truncated; regenerate or re-download it"
            )
        if header:
            n_header, d = struct.unpack("<ii", _read_at(path, [(0, 8)])[0])
        else:
            (d,) = struct.unpack("<i", _read_at(path, [(0, 4)])[0])
        if d <= 0:
            where = "header" if header else "first record"
            raise DatasetError(f"{path} declares dimension {d} in its {where}; a .{fmt} file "
                               f"needs d >= 1 (is it really .{fmt}? pass format= otherwise)")
        if n_header is not None and n_header <= 0:
            raise DatasetError(f"{path} declares n = {n_header} vectors in its header, so the "
                               f"dataset is empty; a dataset needs n >= 1")
    record = (4 if prefixed else 0) + d * file_dtype.itemsize
    n, left = divmod(size - header, record)
    if left:
        fix = "pass the right --dtype and --dim" if fmt == "raw" else "regenerate or re-download it"
        raise DatasetError(
            f"{path} is truncated or malformed: its {size - header} data bytes hold {n} whole "
            f"records of {record} bytes (d = {d}) and {left} bytes left over; {fix}"
        )
    if n_header is not None and n != n_header:
        raise DatasetError(
            f"{path}: the header (n = {n_header}, d = {d}) is inconsistent with the file size "
            f"({size} bytes = {n} rows); the file is truncated or its header is wrong; "
            f"regenerate it"
        )
    if prefixed:
        (last_d,) = struct.unpack("<i", _read_at(path, [((n - 1) * record, 4)])[0])
        if last_d != d:
            raise DatasetError(
                f"row {n - 1} of {path} declares dimension {last_d}, expected {d}: the file is "
                f"not a uniform .{fmt} file; rewrite it with one dimension for all vectors"
            )
    src = _FileSource(path=path, format=fmt, n=n, d=d, file_dtype=file_dtype,
                      data_offset=header, prefixed=prefixed)
    try:
        _check_args(path, fmt, src.dtype, d, dtype, dim)
    except DatasetError:
        src.close()
        raise
    return src


def _open_hdf5(path: str, name: str, dtype, dim) -> VectorSource:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path} is not a readable HDF5 file ({exc}); check the path") from None
    try:
        ds = f.get(name)
        if not isinstance(ds, h5py.Dataset):
            keys = ", ".join(sorted(k for k in f if isinstance(f[k], h5py.Dataset)))
            raise DatasetError(f"{path} has no dataset {name!r} (it holds: {keys or 'none'}); "
                               f"choose one with {path}:NAME")
        return _open_array(ds, dtype, dim, f"{path}:{name}", fmt="hdf5", path=path,
                           closer=f.close, extra=name)
    except BaseException:
        f.close()
        raise


# --------------------------------------------------------------------------- queries


def read_queries(source, *, format=None, dtype=None, dim=None,
                 expected_dim: int | None = None) -> np.ndarray:
    """Read a whole query set into memory as float32.

    Parameters
    ----------
    source : str, os.PathLike, array-like or VectorSource
        As for :func:`open_source`; in addition a 1-D array-like of shape (d,) is one query,
        read as shape (1, d). A VectorSource is read whole and left open.
    format, dtype, dim
        As for :func:`open_source`.
    expected_dim : int, optional
        Dimension the queries must have (the index's ``d``).

    Returns
    -------
    ndarray of float32, shape (n_queries, d), C-contiguous

    Raises
    ------
    DatasetError
        Any :func:`open_source` error, a query holding NaN/Inf (naming its row), or a
        dimension other than ``expected_dim``.

    Notes
    -----
    Disk access: reads the whole file; query files are small.
    """
    if isinstance(source, VectorSource):
        queries = source.read_rows(0, source.n)
    elif isinstance(source, (str, os.PathLike)):
        with open_source(source, format=format, dtype=dtype, dim=dim) as src:
            queries = src.read_rows(0, src.n)
    else:
        if format not in (None, "array"):
            raise DatasetError(f"format={format!r} needs a file path, but in-memory queries "
                               f"were passed; pass the path, or format='array'")
        array = _as_array(source, "the queries")
        if len(array.shape) == 1:
            array = np.asarray(array).reshape(1, -1)
        with _open_array(array, dtype, dim, "the queries") as src:
            queries = src.read_rows(0, src.n)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if expected_dim is not None and queries.shape[1] != int(expected_dim):
        raise DatasetError(
            f"queries have dimension {queries.shape[1]} but the index has d = {expected_dim}; "
            f"pass queries of dimension {expected_dim}"
        )
    return queries



def __getattr__(name: str):
    # read_groundtruth / write_groundtruth live with the ground-truth code, which imports this
    # module; resolving them on first access keeps the import graph acyclic at load time.
    if name in ("read_groundtruth", "write_groundtruth"):
        from lshdisk import groundtruth

        return getattr(groundtruth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
