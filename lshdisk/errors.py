"""Exception classes of :mod:`lshdisk`.

All errors raised on purpose derive from :class:`LshdiskError` and from the builtin that
matches their meaning. Messages are one line: what is wrong, and how to fix it.
"""

__all__ = [
    "LshdiskError",
    "DatasetError",
    "NotAnIndexError",
    "IndexExistsError",
    "CorruptIndexError",
    "UnsupportedIndexVersionError",
    "GroundTruthMismatchError",
    "MissingExtraError",
]


class LshdiskError(Exception):
    """Root of all errors raised by :mod:`lshdisk`."""


class DatasetError(LshdiskError, ValueError):
    """A dataset, query or ground-truth file is empty, truncated, malformed, or holds NaN/Inf."""


class NotAnIndexError(LshdiskError, ValueError):
    """A path given as an index directory does not hold an lshdisk index."""


class IndexExistsError(LshdiskError, FileExistsError):
    """The target index directory already exists and overwriting was not asked for."""


class CorruptIndexError(LshdiskError, OSError):
    """An index is ours but damaged: its catalog fails a checksum or is truncated, or a page
    file does not belong to it (another build, page size or dataset) or fails verification."""


class UnsupportedIndexVersionError(LshdiskError, ValueError):
    """An lshdisk index of a major format version this lshdisk does not read (rebuild it, or
    upgrade lshdisk)."""


class GroundTruthMismatchError(DatasetError):
    """A ground truth cannot belong to the given queries and indexed data (query count, ids
    or distances disagree)."""


class MissingExtraError(LshdiskError, ImportError):
    """A method needs an optional dependency that is not installed (the message names the
    extra to install, e.g. ``pip install lshdisk[learn]``)."""
