"""Exception classes of the storage layer.

Every error raised on purpose by :mod:`storage` derives from :class:`StorageError`, and
also from the builtin that matches its meaning, so callers can catch either. Three failures
are kept apart, as LMDB does: a file that is not ours (bad magic), our file in a format
version we cannot read, and a page or catalog value whose checksum does not match
(corruption). Failed writes are errors of their own: the device is full
(:class:`NoSpaceError`) or reported an error (:class:`WriteFailedError`).
"""

__all__ = [
    "StorageError",
    "NotAPageFileError",
    "NotACatalogError",
    "UnsupportedVersionError",
    "CorruptPageError",
    "ClosedFileError",
    "ReadOnlyError",
    "CorruptCatalogError",
    "CatalogInUseError",
    "WriteFailedError",
    "NoSpaceError",
    "LockedError",
]


class StorageError(Exception):
    """Root of all errors raised by :mod:`storage`."""


class NotAPageFileError(StorageError, ValueError):
    """The file does not start with the expected magic number: it is not ours."""


class NotACatalogError(StorageError, ValueError):
    """A path does not hold an lshdisk catalog: no directory, no LMDB, or no format record."""


class UnsupportedVersionError(StorageError, ValueError):
    """The file is ours, but written by a format version this code cannot read."""


class CorruptPageError(StorageError, OSError):
    """A page failed its CRC32 check, or its stored page number does not match its place."""


class ClosedFileError(StorageError, ValueError):
    """A page file, or a cursor over one, was used after it was closed."""


class ReadOnlyError(StorageError, PermissionError):
    """A write was attempted on a file opened read-only."""


class CorruptCatalogError(StorageError, OSError):
    """A catalog is ours but damaged: a value fails its checksum, or ``data.mdb`` is shorter
    than its LMDB meta pages declare (a truncated file), or LMDB finds its pages corrupt."""


class CatalogInUseError(StorageError, RuntimeError):
    """A catalog is already open in this process in a way that excludes the requested open
    (a writable open while read-only handles exist, or the reverse)."""


class WriteFailedError(StorageError, OSError):
    """A write, fsync or rename failed; ``errno`` holds the OS error number if there was one.

    Attributes
    ----------
    path : str or None
        The file or directory written.
    """

    def __init__(self, message, *, errno=None, path=None):
        super().__init__(message)
        self.errno = errno
        self.path = path


class NoSpaceError(WriteFailedError):
    """The device holding a file is full (ENOSPC, EDQUOT), or too full for a build to start.

    Attributes
    ----------
    bytes_needed : int or None
        Bytes the failed write or the whole build needed, where known.
    """

    def __init__(self, message, *, errno=None, path=None, bytes_needed=None):
        super().__init__(message, errno=errno, path=path)
        self.bytes_needed = bytes_needed


class LockedError(StorageError, BlockingIOError):
    """Another process (or another handle in this process) holds the lock of a target path."""
