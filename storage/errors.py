"""Exception classes of the storage layer.

Every error raised on purpose by :mod:`storage` derives from :class:`StorageError`, and
also from the builtin that matches its meaning, so callers can catch either. Three failures
are kept apart, as LMDB does: a file that is not ours (bad magic), our file in a format
version we cannot read, and a page whose checksum does not match (corruption).
"""

__all__ = [
    "StorageError",
    "NotAPageFileError",
    "NotACatalogError",
    "UnsupportedVersionError",
    "CorruptPageError",
    "ClosedFileError",
    "ReadOnlyError",
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
