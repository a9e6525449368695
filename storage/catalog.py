"""LMDB catalog of an index's metadata: versioned JSON documents and small numpy arrays.

A catalog is an LMDB environment (py-lmdb; Chu, "MDB: A memory-mapped database and backend
for OpenLDAP", LDAPCon 2011) in a directory of its own: ``data.mdb`` and, once opened for
writing, ``lock.mdb``. Every value lives in the unnamed main database; user entries are keyed
by a two-byte kind prefix and the UTF-8 name:

==================  ==========================================================================
key                 value
==================  ==========================================================================
``\\x00format``      format record, JSON ``{"format": "lshdisk-catalog", "version": [1, 0]}``
``j/<name>``        a JSON document, UTF-8, ``sort_keys``, separators ``,`` ``:``, no NaN
``a/<name>``        an array, framed as below
==================  ==========================================================================

A name holds either a JSON document or an array; putting one kind removes the other.

Array value framing (all integers little-endian):

========  ========  ==============================================================
offset    size      meaning
========  ========  ==============================================================
0         4         ``h``, byte length of the header, ``<u4``
4         h         header, JSON ``{"dtype": "<f4", "shape": [400, 1000]}`` (UTF-8,
                    ``sort_keys``); ``dtype`` is a numpy type string, little-endian
                    or ``|`` for one-byte types
4 + h     rest      the elements in C order, little-endian; ``prod(shape) * itemsize``
                    bytes
========  ========  ==============================================================

Versioning follows the house rule: a major version this code does not know is refused
(:class:`~storage.errors.UnsupportedVersionError`); a newer minor version opens read-only.
The same sequence of puts gives byte-identical values. No pickle is ever stored.

The map starts at 1 MiB and doubles (or grows by what a put needs) whenever LMDB reports it
full, so a writer never has to guess a size up front.
"""

from __future__ import annotations

import json
import math
import os
import struct

import lmdb
import numpy as np

from .errors import (
    ClosedFileError,
    NotACatalogError,
    ReadOnlyError,
    StorageError,
    UnsupportedVersionError,
)

__all__ = ["CATALOG_FORMAT", "CATALOG_VERSION", "Catalog"]

CATALOG_FORMAT = "lshdisk-catalog"
CATALOG_VERSION = (1, 0)

_FORMAT_KEY = b"\x00format"
_JSON_PREFIX = b"j/"
_ARRAY_PREFIX = b"a/"
_DATA_FILE = "data.mdb"
_INITIAL_MAP_SIZE = 1 << 20
_MAX_NAME_BYTES = 500  # LMDB's default key limit is 511 bytes, prefixes included
_ARRAY_KINDS = "biufc"  # bool, signed, unsigned, float, complex
_HEADER_LEN = struct.Struct("<I")


def _dump_json(obj) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


class Catalog:
    """Named JSON documents and numpy arrays of one index, stored in an LMDB environment.

    Make one with :meth:`create` or :meth:`open`, never with the constructor. Use as a
    context manager, or call :meth:`close`.

    Attributes
    ----------
    path : str
        Directory of the LMDB environment.
    readonly : bool
        True if opened read-only, or forced so by a newer minor format version.
    version : tuple of (int, int)
        ``(major, minor)`` format version recorded in the catalog.
    """

    def __init__(self, env: lmdb.Environment, path: str, readonly: bool, version: tuple):
        self._env: lmdb.Environment | None = env
        self.path = path
        self.readonly = readonly
        self.version = version

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike) -> Catalog:
        """Create a new, writable catalog in directory `path`.

        Parameters
        ----------
        path : str or os.PathLike
            Directory to hold the environment; created (with parents) if missing. It may
            exist and hold other files, but no LMDB environment.

        Returns
        -------
        Catalog
            Writable, at :data:`CATALOG_VERSION`.

        Raises
        ------
        FileExistsError
            If `path` already holds an LMDB environment (a catalog or not), or is a file.

        Notes
        -----
        Disk access: creates ``data.mdb`` and ``lock.mdb`` and commits the format record
        (one synchronous LMDB write transaction).
        """
        path = os.fspath(path)
        if os.path.exists(path) and not os.path.isdir(path):
            raise FileExistsError(f"cannot create a catalog at {path!r}: it is a file")
        if os.path.exists(os.path.join(path, _DATA_FILE)):
            raise FileExistsError(
                f"cannot create a catalog at {path!r}: it already holds an LMDB environment"
            )
        os.makedirs(path, exist_ok=True)
        env = lmdb.open(path, map_size=_INITIAL_MAP_SIZE, subdir=True, create=True)
        catalog = cls(env, path, False, CATALOG_VERSION)
        try:
            record = {"format": CATALOG_FORMAT, "version": list(CATALOG_VERSION)}
            catalog._write(lambda txn: txn.put(_FORMAT_KEY, _dump_json(record)), 0)
        except BaseException:
            catalog.close()
            raise
        return catalog

    @classmethod
    def open(cls, path: str | os.PathLike, *, readonly: bool = True) -> Catalog:
        """Open an existing catalog.

        Parameters
        ----------
        path : str or os.PathLike
            Directory holding the environment.
        readonly : bool, default True
            Open read-only: LMDB runs without its lock file, so no write access to the
            directory is needed and no file is created or modified.

        Returns
        -------
        Catalog
            ``readonly`` is also True if the catalog has a newer minor version.

        Raises
        ------
        NotACatalogError
            If `path` does not exist, holds no LMDB environment, or an LMDB environment
            without an lshdisk catalog format record.
        UnsupportedVersionError
            If the catalog's major format version is not :data:`CATALOG_VERSION`'s.

        Notes
        -----
        Disk access: maps ``data.mdb`` and reads the format record (one read transaction);
        a writable open then reopens the environment, creating ``lock.mdb`` if missing.
        """
        path = os.fspath(path)
        data_file = os.path.join(path, _DATA_FILE)
        if not os.path.isdir(path):
            raise NotACatalogError(f"{path!r} is not a catalog: no such directory")
        if not os.path.isfile(data_file) or os.path.getsize(data_file) == 0:
            raise NotACatalogError(f"{path!r} is not a catalog: it holds no LMDB environment")
        # Check the format read-only first, so that a non-catalog is never written to.
        try:
            env = lmdb.open(path, subdir=True, readonly=True, lock=False, create=False)
        except lmdb.InvalidError as exc:
            raise NotACatalogError(
                f"{path!r} is not a catalog: {_DATA_FILE} is not an LMDB file"
            ) from exc
        try:
            with env.begin() as txn:
                version = _parse_format_record(path, txn.get(_FORMAT_KEY))
        except BaseException:
            env.close()
            raise
        if readonly or version[1] > CATALOG_VERSION[1]:
            return cls(env, path, True, version)
        env.close()
        env = lmdb.open(path, map_size=_INITIAL_MAP_SIZE, subdir=True, create=False)
        return cls(env, path, False, version)

    # -- JSON -----------------------------------------------------------------------------

    def put_json(self, name: str, obj) -> None:
        """Store a JSON document under `name`, replacing whatever `name` held.

        Parameters
        ----------
        name : str
            Non-empty; at most 500 bytes in UTF-8.
        obj : JSON-serialisable object
            Encoded as UTF-8 with sorted keys and compact separators, so equal objects give
            byte-identical values. NaN and infinities are refused.

        Raises
        ------
        ClosedFileError
            If the catalog is closed.
        ReadOnlyError
            If the catalog is read-only.
        TypeError, ValueError
            If `name` is invalid, or `obj` is not JSON-serialisable or holds NaN/inf.

        Notes
        -----
        Disk access: one synchronous LMDB write transaction.
        """
        self._check_writable()
        key = _name_key(name)
        value = _dump_json(obj)

        def put(txn):
            txn.delete(_ARRAY_PREFIX + key)
            txn.put(_JSON_PREFIX + key, value)

        self._write(put, len(value))

    def get_json(self, name: str):
        """Return the JSON document stored under `name`, decoded.

        Raises
        ------
        ClosedFileError
            If the catalog is closed.
        KeyError
            If `name` holds nothing.
        TypeError
            If `name` holds an array (use :meth:`get_array`).

        Notes
        -----
        Disk access: one LMDB read transaction (page reads through the memory map).
        """
        env = self._live_env()
        key = _name_key(name)
        with env.begin() as txn:
            raw = txn.get(_JSON_PREFIX + key)
            if raw is None:
                _missing(txn, name, _ARRAY_PREFIX + key, "an array", "get_array")
        return json.loads(raw.decode("utf-8"))

    # -- arrays ---------------------------------------------------------------------------

    def put_array(self, name: str, array: np.ndarray) -> None:
        """Store a numpy array under `name`, replacing whatever `name` held.

        Parameters
        ----------
        name : str
            Non-empty; at most 500 bytes in UTF-8.
        array : ndarray of bool, int, uint, float or complex, any shape
            Stored as dtype, shape and little-endian C-order bytes; either byte order and
            any memory layout are accepted.

        Raises
        ------
        ClosedFileError
            If the catalog is closed.
        ReadOnlyError
            If the catalog is read-only.
        TypeError
            If `name` is not a str or `array` has another dtype kind (object, string,
            structured, datetime...).
        ValueError
            If `name` is empty or too long.

        Notes
        -----
        Disk access: one synchronous LMDB write transaction writing ``array.nbytes`` plus
        a small header; the map grows first if needed.
        """
        self._check_writable()
        key = _name_key(name)
        array = np.asarray(array)
        if array.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(
                f"array must have a bool, integer, float or complex dtype, got {array.dtype}"
            )
        le_dtype = array.dtype.newbyteorder("<")
        header = _dump_json({"dtype": le_dtype.str, "shape": list(array.shape)})
        start = _HEADER_LEN.size + len(header)
        value = bytearray(start + array.nbytes)
        _HEADER_LEN.pack_into(value, 0, len(header))
        value[_HEADER_LEN.size : start] = header
        if array.size:
            target = np.frombuffer(value, dtype=le_dtype, offset=start).reshape(array.shape)
            target[...] = array

        def put(txn):
            txn.delete(_JSON_PREFIX + key)
            txn.put(_ARRAY_PREFIX + key, value)

        self._write(put, len(value))

    def get_array(self, name: str) -> np.ndarray:
        """Return a new, writable copy of the array stored under `name`.

        Returns
        -------
        ndarray
            The stored dtype in native byte order and the stored shape, C-contiguous.

        Raises
        ------
        ClosedFileError
            If the catalog is closed.
        KeyError
            If `name` holds nothing.
        TypeError
            If `name` holds a JSON document (use :meth:`get_json`).
        StorageError
            If the stored value is malformed.

        Notes
        -----
        Disk access: one LMDB read transaction reading the value once (no extra copy).
        """
        env = self._live_env()
        key = _name_key(name)
        with env.begin(buffers=True) as txn:
            raw = txn.get(_ARRAY_PREFIX + key)
            if raw is None:
                _missing(txn, name, _JSON_PREFIX + key, "a JSON document", "get_json")
            return _decode_array(name, raw)

    # -- listing and closing --------------------------------------------------------------

    def names(self) -> list[str]:
        """Return the names of all stored documents and arrays, sorted by UTF-8 bytes.

        Raises
        ------
        ClosedFileError
            If the catalog is closed.

        Notes
        -----
        Disk access: one LMDB read transaction scanning the keys.
        """
        env = self._live_env()
        found = []
        with env.begin() as txn:
            for key in txn.cursor().iternext(keys=True, values=False):
                if key[:2] in (_JSON_PREFIX, _ARRAY_PREFIX):
                    found.append(key[2:])
        return [k.decode("utf-8") for k in sorted(found)]

    def close(self) -> None:
        """Close the environment. Idempotent; later use raises ClosedFileError."""
        env, self._env = self._env, None
        if env is not None:
            env.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._env is None else ("readonly" if self.readonly else "writable")
        return f"Catalog({self.path!r}, version={self.version}, {state})"

    # -- internals ------------------------------------------------------------------------

    def _live_env(self) -> lmdb.Environment:
        if self._env is None:
            raise ClosedFileError(f"catalog {self.path!r} is closed")
        return self._env

    def _check_writable(self) -> None:
        self._live_env()
        if self.readonly:
            raise ReadOnlyError(f"catalog {self.path!r} is open read-only")

    def _write(self, body, value_bytes: int) -> None:
        """Run `body(txn)` in a write transaction, growing the map until it fits."""
        env = self._live_env()
        while True:
            try:
                with env.begin(write=True) as txn:
                    body(txn)
                return
            except lmdb.MapFullError:
                size = env.info()["map_size"]
                # Values span overflow pages; copy-on-write may touch every branch page.
                env.set_mapsize(max(2 * size, size + 2 * value_bytes + (1 << 20)))


def _name_key(name: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.encode("utf-8")
    if not key or len(key) > _MAX_NAME_BYTES:
        raise ValueError(
            f"name must be 1 to {_MAX_NAME_BYTES} bytes in UTF-8, got {len(key)} ({name[:40]!r})"
        )
    return key


def _missing(txn, name: str, other_key: bytes, other_kind: str, other_getter: str):
    """Raise the error for a name absent under the wanted kind."""
    if txn.get(other_key) is not None:
        raise TypeError(f"catalog entry {name!r} holds {other_kind}; use {other_getter}()")
    raise KeyError(name)


def _parse_format_record(path: str, raw) -> tuple[int, int]:
    if raw is None:
        raise NotACatalogError(f"{path!r} is not a catalog: its LMDB has no format record")
    try:
        record = json.loads(bytes(raw).decode("utf-8"))
        name = record["format"]
        major, minor = (int(v) for v in record["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise NotACatalogError(f"{path!r} is not a catalog: malformed format record") from exc
    if name != CATALOG_FORMAT:
        raise NotACatalogError(f"{path!r} is not a catalog: format is {name!r}")
    if major != CATALOG_VERSION[0]:
        raise UnsupportedVersionError(
            f"catalog {path!r} has format version {major}.{minor}; this code reads "
            f"{CATALOG_VERSION[0]}.x only"
        )
    return major, minor


def _decode_array(name: str, raw) -> np.ndarray:
    """Decode an array value (see the module docstring); `raw` is bytes or a buffer."""
    raw = memoryview(raw)
    try:
        (header_len,) = _HEADER_LEN.unpack_from(raw, 0)
        start = _HEADER_LEN.size + header_len
        header = json.loads(bytes(raw[_HEADER_LEN.size : start]).decode("utf-8"))
        dtype = np.dtype(header["dtype"])
        shape = tuple(int(s) for s in header["shape"])
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"catalog array {name!r} has a malformed header") from exc
    size = math.prod(shape)
    if dtype.kind not in _ARRAY_KINDS or len(raw) - start != size * dtype.itemsize:
        raise StorageError(
            f"catalog array {name!r} holds {len(raw) - start} bytes of data, not the "
            f"{size} x {dtype} its header describes"
        )
    native = dtype.newbyteorder("=")
    if size == 0:
        return np.empty(shape, dtype=native)
    stored = np.frombuffer(raw, dtype=dtype, count=size, offset=start).reshape(shape)
    return stored.astype(native, copy=True)
