"""LMDB catalog of an index's metadata: versioned JSON documents and small numpy arrays.

A catalog is an LMDB environment (py-lmdb; Chu, "MDB: A memory-mapped database and backend
for OpenLDAP", LDAPCon 2011) in a directory of its own: ``data.mdb`` and, once opened for
writing, ``lock.mdb``. Every value lives in the unnamed main database; user entries are keyed
by a two-byte kind prefix and the UTF-8 name:

==================  ==========================================================================
key                 value
==================  ==========================================================================
``\\x00format``      format record, JSON ``{"checksum": C, "format": "lshdisk-catalog",
                    "version": [2, 0]}``, C the CRC32 of the compact, ``sort_keys`` JSON of
                    ``{"format": ..., "version": ...}``; plain JSON, so that any version can
                    read which version wrote the catalog
``j/<name>``        checksum, then a JSON document, UTF-8, ``sort_keys``, separators ``,``
                    ``:``, no NaN
``a/<name>``        checksum, then an array, framed as below
==================  ==========================================================================

A name holds either a JSON document or an array; putting one kind removes the other.

Value framing of ``j/`` and ``a/`` entries (version 2.0; all integers little-endian). The
checksum covers the key too, so a value moved under another key fails it as well:

========  ========  ==============================================================
offset    size      meaning
========  ========  ==============================================================
0         4         CRC32 (zlib polynomial) of the key bytes followed by the body
4         rest      body: the JSON document, or the array framing below
========  ========  ==============================================================

Array body (offsets within the body):

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

A value failing its checksum raises :class:`~storage.errors.CorruptCatalogError`, never
returns changed metadata. Version 1.0 had no checksums; it is refused as an unknown major.

Before LMDB maps ``data.mdb``, :meth:`Catalog.open` reads its two meta pages (LMDB's
``MDB_meta``: magic ``0xBEEFC0DE`` at byte 16 of each page, page size at 40, last page
number at 136, transaction id at 144, for 64-bit builds) and refuses a file shorter than
the newest meta page declares: a truncated catalog gives a ``CorruptCatalogError``, not a
SIGBUS when a page past the end of the file is touched.

One process may open a catalog many times, from many threads: read-only opens of one
``data.mdb`` (same device and inode) share one ``lmdb.Environment`` with a reference count
(LMDB allows one environment per file per process); a writable open is exclusive. A forked
child closes the environments it inherited and opens its own.

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
import threading
import zlib

import lmdb
import numpy as np

from . import durable
from .errors import (
    CatalogInUseError,
    ClosedFileError,
    CorruptCatalogError,
    NoSpaceError,
    NotACatalogError,
    ReadOnlyError,
    UnsupportedVersionError,
    WriteFailedError,
)

__all__ = ["CATALOG_FORMAT", "CATALOG_VERSION", "Catalog", "format_record"]

CATALOG_FORMAT = "lshdisk-catalog"
CATALOG_VERSION = (2, 0)

_FORMAT_KEY = b"\x00format"
_JSON_PREFIX = b"j/"
_ARRAY_PREFIX = b"a/"
_DATA_FILE = "data.mdb"
_INITIAL_MAP_SIZE = 1 << 20
_MAX_NAME_BYTES = 500  # LMDB's default key limit is 511 bytes, prefixes included
_ARRAY_KINDS = "biufc"  # bool, signed, unsigned, float, complex
_HEADER_LEN = struct.Struct("<I")
_CRC = struct.Struct("<I")
_LMDB_MAGIC = 0xBEEFC0DE
_META = struct.Struct("<II")  # magic, version, at byte 16 of a meta page
_META_PSIZE_OFFSET = 40  # mm_dbs[FREE_DBI].md_pad holds the page size
_META_LAST = struct.Struct("<QQ")  # mm_last_pg, mm_txnid at byte 136
_META_LAST_OFFSET = 136
_MIN_LMDB_PAGE = 512

# Environments open in this process, by (st_dev, st_ino) of data.mdb: [env, readonly, refs].
_OPEN_ENVS = {}
_OPEN_ENVS_LOCK = threading.Lock()
_FORK_HOOK = []  # set once the after-fork hook is registered (on the first open, not at import)


def _close_inherited_envs():
    """In a forked child: LMDB environments must not be used across fork(), so the child
    closes the ones it inherited (its own mapping only) and opens its own when asked; the
    parent's handles are unusable in the child."""
    for env, _, _ in _OPEN_ENVS.values():
        try:
            env.close()
        except lmdb.Error:  # pragma: no cover - closing an inherited mapping
            pass
    _OPEN_ENVS.clear()


def _register(key, env, readonly):
    """Record a newly opened environment (caller holds _OPEN_ENVS_LOCK)."""
    if not _FORK_HOOK and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_close_inherited_envs)
        _FORK_HOOK.append(True)
    _OPEN_ENVS[key] = [env, readonly, 1]


def _dump_json(obj) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _seal(key: bytes, body) -> bytes:
    """The stored value of ``body`` under ``key``: CRC32 of key + body, then body."""
    return _CRC.pack(zlib.crc32(body, zlib.crc32(key))) + bytes(body)


def format_record(version=CATALOG_VERSION) -> bytes:
    """The format record's bytes for ``version`` (with its checksum)."""
    record = {"format": CATALOG_FORMAT, "version": list(version)}
    return _dump_json(dict(record, checksum=zlib.crc32(_dump_json(record))))


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

    def __init__(self, env: lmdb.Environment, path: str, readonly: bool, version: tuple,
                 key: tuple):
        self._env: lmdb.Environment | None = env
        self._key = key
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
        try:
            env = lmdb.open(path, map_size=_INITIAL_MAP_SIZE, subdir=True, create=True)
        except lmdb.Error as exc:
            raise _lmdb_write_error(path, exc) from exc
        with _OPEN_ENVS_LOCK:
            key = _file_key(os.path.join(path, _DATA_FILE))
            _register(key, env, False)
        catalog = cls(env, path, False, CATALOG_VERSION, key)
        try:
            catalog._write(lambda txn: txn.put(_FORMAT_KEY, format_record()), 0)
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
        CorruptCatalogError
            If ``data.mdb`` is shorter than its meta pages declare (truncated), or the
            format record fails its checksum.
        CatalogInUseError
            A writable open while this process has the catalog open (read-only or
            writable), or a read-only open while it has it open for writing.

        Notes
        -----
        Disk access: reads the two LMDB meta pages, maps ``data.mdb`` and reads the format
        record (one read transaction); a writable open then reopens the environment,
        creating ``lock.mdb`` if missing. A read-only open of a catalog this process already
        has open read-only shares its environment (only the meta pages are read again).
        Thread-safe.
        """
        path = os.fspath(path)
        data_file = os.path.join(path, _DATA_FILE)
        if not os.path.isdir(path):
            raise NotACatalogError(f"{path!r} is not a catalog: no such directory")
        if not os.path.isfile(data_file) or os.path.getsize(data_file) == 0:
            raise NotACatalogError(f"{path!r} is not a catalog: it holds no LMDB environment")
        with _OPEN_ENVS_LOCK:
            key = _file_key(data_file)
            shared = _OPEN_ENVS.get(key)
            if shared is not None:
                env, shared_readonly, refs = shared
                if not (readonly and shared_readonly):
                    held = "read-only" if shared_readonly else "for writing"
                    wanted = "read-only" if readonly else "for writing"
                    raise CatalogInUseError(
                        f"catalog {path!r} is already open {held} in this process ({refs} "
                        f"handle(s)): close them before opening it {wanted}")
                _check_data_file(path, data_file)
                version = _read_version(path, env)
                shared[2] += 1
                return cls(env, path, True, version, key)
            _check_data_file(path, data_file)
            # Check the format read-only first, so that a non-catalog is never written to.
            try:
                env = lmdb.open(path, subdir=True, readonly=True, lock=False, create=False)
            except lmdb.InvalidError as exc:
                raise NotACatalogError(
                    f"{path!r} is not a catalog: {_DATA_FILE} is not an LMDB file"
                ) from exc
            except lmdb.Error as exc:
                if "already open" in str(exc):  # an lmdb.Environment opened outside Catalog
                    raise CatalogInUseError(f"catalog {path!r} is open in this process outside "
                                            f"storage.catalog: close that environment") from exc
                raise CorruptCatalogError(f"catalog {path!r} cannot be opened ({exc}): it is "
                                          f"damaged; rebuild the index") from exc
            try:
                version = _read_version(path, env)
            except BaseException:
                env.close()
                raise
            if not (readonly or version[1] > CATALOG_VERSION[1]):
                env.close()
                try:
                    env = lmdb.open(path, map_size=_INITIAL_MAP_SIZE, subdir=True, create=False)
                except lmdb.Error as exc:
                    raise _lmdb_write_error(path, exc) from exc
            writable = not readonly and version[1] <= CATALOG_VERSION[1]
            _register(key, env, not writable)
            return cls(env, path, not writable, version, key)

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
        self.put_many(documents={name: obj})

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
        CorruptCatalogError
            If the value fails its checksum or LMDB finds the catalog damaged.

        Notes
        -----
        Disk access: one LMDB read transaction (page reads through the memory map).
        """
        env = self._live_env()
        key = _name_key(name)
        try:
            with env.begin() as txn:
                raw = txn.get(_JSON_PREFIX + key)
                if raw is None:
                    _missing(txn, name, _ARRAY_PREFIX + key, "an array", "get_array")
        except lmdb.Error as exc:
            raise self._damaged(exc) from exc
        body = self._unseal(_JSON_PREFIX + key, raw, name)
        try:
            return json.loads(bytes(body).decode("utf-8"))
        except ValueError as exc:
            raise CorruptCatalogError(f"catalog {self.path!r}: entry {name!r} is not valid JSON "
                                      f"despite a good checksum: rebuild the index") from exc

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
        self.put_many(arrays={name: array})

    def put_many(self, *, documents=None, arrays=None, delete=()) -> None:
        """Store several JSON documents and arrays, and remove names, in one write
        transaction: either all of it happens or none (readers see the catalog before or
        after, never between).

        Parameters
        ----------
        documents : dict of str to JSON-serialisable object, optional
            As for :meth:`put_json`.
        arrays : dict of str to ndarray, optional
            As for :meth:`put_array`.
        delete : iterable of str
            Names to remove (whichever kind they hold; absent names are ignored), before
            the puts.

        Raises
        ------
        As :meth:`put_json` and :meth:`put_array`; nothing is written if any value is
        refused.

        Notes
        -----
        Disk access: one synchronous LMDB write transaction.
        """
        self._check_writable()
        gone = [_name_key(name) for name in delete]
        entries = []  # (key of the new value, key of the other kind to remove, value)
        for name, obj in (documents or {}).items():
            key = _name_key(name)
            entries.append((_JSON_PREFIX + key, _ARRAY_PREFIX + key, _dump_json(obj)))
        for name, array in (arrays or {}).items():
            key = _name_key(name)
            entries.append((_ARRAY_PREFIX + key, _JSON_PREFIX + key, _encode_array(array)))

        def put(txn):
            for key in gone:
                txn.delete(_JSON_PREFIX + key)
                txn.delete(_ARRAY_PREFIX + key)
            for full_key, other_key, value in entries:
                txn.delete(other_key)
                txn.put(full_key, _seal(full_key, value))

        self._write(put, sum(len(value) for _, _, value in entries))

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
        CorruptCatalogError
            If the value fails its checksum, is malformed, or LMDB finds the catalog damaged.

        Notes
        -----
        Disk access: one LMDB read transaction reading the value once (no extra copy).
        """
        env = self._live_env()
        key = _name_key(name)
        try:
            with env.begin(buffers=True) as txn:
                raw = txn.get(_ARRAY_PREFIX + key)
                if raw is None:
                    _missing(txn, name, _JSON_PREFIX + key, "a JSON document", "get_json")
                return _decode_array(name, self._unseal(_ARRAY_PREFIX + key, raw, name))
        except lmdb.Error as exc:
            raise self._damaged(exc) from exc

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
        try:
            with env.begin() as txn:
                for key in txn.cursor().iternext(keys=True, values=False):
                    if key[:2] in (_JSON_PREFIX, _ARRAY_PREFIX):
                        found.append(key[2:])
            return [k.decode("utf-8") for k in sorted(found)]
        except (lmdb.Error, UnicodeDecodeError) as exc:
            raise self._damaged(exc) from exc

    def close(self) -> None:
        """Close this handle. Idempotent; later use raises ClosedFileError. The environment
        is closed with the last handle of this process sharing it."""
        env, self._env = self._env, None
        if env is None:
            return
        with _OPEN_ENVS_LOCK:
            shared = _OPEN_ENVS.get(self._key)
            if shared is not None and shared[0] is env:
                shared[2] -= 1
                if shared[2] > 0:
                    return
                del _OPEN_ENVS[self._key]
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

    def _damaged(self, exc) -> CorruptCatalogError:
        return CorruptCatalogError(f"catalog {self.path!r} is damaged ({exc}): rebuild the index")

    def _unseal(self, key: bytes, raw, name: str):
        """The body of stored value ``raw`` (bytes or buffer), its checksum checked."""
        raw = memoryview(raw)
        if raw.nbytes < _CRC.size or _CRC.unpack_from(raw, 0)[0] != zlib.crc32(
                raw[_CRC.size:], zlib.crc32(key)):
            raise CorruptCatalogError(f"catalog {self.path!r}: entry {name!r} fails its checksum: "
                                      f"the catalog is damaged; rebuild the index")
        return raw[_CRC.size:]

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
            except lmdb.Error as exc:
                raise _lmdb_write_error(self.path, exc, value_bytes) from exc



def _encode_array(array) -> bytearray:
    """The array body of the framing in the module docstring (dtype checked)."""
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
    return value

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


def _file_key(data_file: str) -> tuple[int, int]:
    st = os.stat(data_file)
    return st.st_dev, st.st_ino


def _lmdb_write_error(path: str, exc, value_bytes: int = 0) -> WriteFailedError:
    """A failed LMDB write as a one-line storage error. LMDB reports a short write on a full
    device as EIO, so the free space decides between "full" and "failed"."""
    text = str(exc)
    try:
        free = durable.free_bytes(path)
    except OSError:
        free = None
    needed = value_bytes + (1 << 20)
    if "No space left" in text or "Disk quota" in text or (free is not None and free < needed):
        return NoSpaceError(f"catalog {path!r}: no space left on the device for about "
                            f"{needed} bytes ({free} free; LMDB: {text}): free space or write "
                            f"to another disk", path=path, bytes_needed=needed)
    return WriteFailedError(f"catalog {path!r}: write failed ({text}): check the device",
                            path=path)


def _check_data_file(path: str, data_file: str) -> None:
    """Refuse a ``data.mdb`` shorter than its newest LMDB meta page declares (before it is
    mapped: touching a page past the end of a mapped file is a SIGBUS)."""
    size = os.path.getsize(data_file)
    with open(data_file, "rb") as f:
        head = f.read(_META_LAST_OFFSET + _META_LAST.size)
        if len(head) < _META_LAST_OFFSET + _META_LAST.size or \
                _META.unpack_from(head, 16)[0] != _LMDB_MAGIC:
            raise NotACatalogError(f"{path!r} is not a catalog: {_DATA_FILE} is not an LMDB file")
        (psize,) = _CRC.unpack_from(head, _META_PSIZE_OFFSET)
        if psize < _MIN_LMDB_PAGE or psize & (psize - 1) or psize > 1 << 16:
            raise CorruptCatalogError(f"catalog {path!r}: {_DATA_FILE} gives an invalid page "
                                      f"size {psize}: it is damaged; rebuild the index")
        f.seek(psize)
        second = f.read(_META_LAST_OFFSET + _META_LAST.size)
    if size < 2 * psize or len(second) < _META_LAST_OFFSET + _META_LAST.size:
        raise CorruptCatalogError(f"catalog {path!r}: {_DATA_FILE} has {size} bytes, less than "
                                  f"its two {psize}-byte meta pages: it is truncated; rebuild "
                                  f"the index")
    metas = []
    for page in (head, second):
        magic, _ = _META.unpack_from(page, 16)
        if magic != _LMDB_MAGIC:
            raise CorruptCatalogError(f"catalog {path!r}: an LMDB meta page of {_DATA_FILE} "
                                      f"is damaged; rebuild the index")
        last_pg, txnid = _META_LAST.unpack_from(page, _META_LAST_OFFSET)
        metas.append((txnid, last_pg))
    _, last_pg = max(metas)
    if size < (last_pg + 1) * psize:
        raise CorruptCatalogError(f"catalog {path!r}: {_DATA_FILE} has {size} bytes but its meta "
                                  f"page declares {last_pg + 1} pages of {psize} bytes: it is "
                                  f"truncated; rebuild the index")


def _read_version(path: str, env) -> tuple[int, int]:
    try:
        with env.begin() as txn:
            raw = txn.get(_FORMAT_KEY)
            raw = None if raw is None else bytes(raw)
    except lmdb.Error as exc:
        raise CorruptCatalogError(f"catalog {path!r} is damaged ({exc}): rebuild the "
                                  f"index") from exc
    return _parse_format_record(path, raw)


def _parse_format_record(path: str, raw) -> tuple[int, int]:
    if raw is None:
        raise NotACatalogError(f"{path!r} is not a catalog: its LMDB has no format record")
    try:
        record = json.loads(bytes(raw).decode("utf-8"))
        name = record["format"]
        major, minor = (int(v) for v in record["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptCatalogError(f"catalog {path!r}: its format record is damaged: rebuild "
                                  f"the index") from exc
    if name != CATALOG_FORMAT:
        raise NotACatalogError(f"{path!r} is not a catalog: format is {name!r}")
    if major != CATALOG_VERSION[0]:
        raise UnsupportedVersionError(
            f"catalog {path!r} has format version {major}.{minor}; this code reads "
            f"{CATALOG_VERSION[0]}.x only: rebuild the index with this lshdisk or use the "
            f"lshdisk that wrote it"
        )
    if record.get("checksum") != zlib.crc32(_dump_json({"format": name,
                                                        "version": record["version"]})):
        raise CorruptCatalogError(f"catalog {path!r}: its format record fails its checksum: "
                                  f"the catalog is damaged; rebuild the index")
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
        raise CorruptCatalogError(f"catalog array {name!r} has a malformed header") from exc
    size = math.prod(shape)
    if dtype.kind not in _ARRAY_KINDS or len(raw) - start != size * dtype.itemsize:
        raise CorruptCatalogError(
            f"catalog array {name!r} holds {len(raw) - start} bytes of data, not the "
            f"{size} x {dtype} its header describes"
        )
    native = dtype.newbyteorder("=")
    if size == 0:
        return np.empty(shape, dtype=native)
    stored = np.frombuffer(raw, dtype=dtype, count=size, offset=start).reshape(shape)
    return stored.astype(native, copy=True)
