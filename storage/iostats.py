"""Exact, deterministic I/O accounting.

An index's files are taken to sit on one device with one head. A page read is
*sequential* only if it reads the page right after the previous page read from any of the
index's files (same file, next page number); every other read, the first one included, is
a *seek*. Reads served by the buffer pool touch no device and are counted as cache hits
only. The counts depend on the index and the query alone, never on the machine.

Observing I/O: an :class:`IOCounter` may carry a *trace sink*, a callable that receives every
counted page access as it is counted, ``sink(file_id, first_page, n_pages, access)``, with
``access`` :data:`DEVICE_READ` (``n_pages`` consecutive pages read from the device in one
pass) or :data:`CACHE_HIT` (one page served by the buffer pool). :meth:`IOCounter.file_path`
maps a file id to the path of its page file. Tools that need a query's page trace (the
cost-model validation's read-ahead simulation) set a sink; nothing wraps the read methods.
"""

from dataclasses import dataclass, fields

__all__ = ["IOStats", "IOCounter", "DEVICE_READ", "CACHE_HIT"]

#: ``access`` of a trace-sink call for pages read from the device.
DEVICE_READ = "device"
#: ``access`` of a trace-sink call for a page served by the buffer pool.
CACHE_HIT = "cache"


@dataclass(frozen=True, slots=True, kw_only=True)
class IOStats:
    """A snapshot of I/O counts.

    Attributes
    ----------
    page_reads : int
        Pages read from the device (buffer-pool misses).
    seeks : int
        Page reads that were not the page right after the previous page read.
    bytes_read : int
        Bytes read from the device (``page_reads * page_size`` for one page size).
    page_writes, bytes_written : int
        Pages and bytes written.
    cache_hits : int
        Page accesses served by the buffer pool.
    """

    page_reads: int = 0
    seeks: int = 0
    bytes_read: int = 0
    page_writes: int = 0
    bytes_written: int = 0
    cache_hits: int = 0

    def delta(self, earlier):
        """Counts accrued since ``earlier`` (an :class:`IOStats`): ``self - earlier``."""
        return IOStats(**{f.name: getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)})

    def __add__(self, other):
        if not isinstance(other, IOStats):
            return NotImplemented
        return IOStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def as_dict(self):
        """The counts as a plain ``dict``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class IOCounter:
    """The mutable counter shared by all page files of one index (one disk head).

    Page files call :meth:`record_runs` where pages are read from the device and
    :meth:`record_hit` where the buffer pool serves one (:meth:`record_read` and
    :meth:`record_run` count one page or one run the same way); :meth:`snapshot` returns an
    immutable :class:`IOStats`.

    Parameters
    ----------
    trace : callable, optional
        The trace sink (see :meth:`set_trace`); ``None``, the default, traces nothing.
    """

    __slots__ = ("page_reads", "seeks", "bytes_read", "page_writes", "bytes_written",
                 "cache_hits", "_head_file", "_head_page", "_next_file_id", "_paths", "_trace")

    def __init__(self, *, trace=None):
        self.page_reads = 0
        self.seeks = 0
        self.bytes_read = 0
        self.page_writes = 0
        self.bytes_written = 0
        self.cache_hits = 0
        self._head_file = -1
        self._head_page = -2
        self._next_file_id = 0
        self._paths = {}
        self._trace = None
        self.set_trace(trace)

    def register_file(self, path=None):
        """Return a new file id for a page file that shares this counter.

        Parameters
        ----------
        path : str, optional
            The page file's path, returned by :meth:`file_path` for the new id.
        """
        self._next_file_id += 1
        self._paths[self._next_file_id] = path
        return self._next_file_id

    def file_path(self, file_id):
        """The path registered with ``file_id`` (``None`` if it was registered without one).

        Raises
        ------
        KeyError
            If ``file_id`` was not returned by this counter's :meth:`register_file`.
        """
        return self._paths[file_id]

    def set_trace(self, sink):
        """Send every counted page access to ``sink`` from now on; ``None`` stops tracing.

        Parameters
        ----------
        sink : callable or None
            Called as ``sink(file_id, first_page, n_pages, access)`` (all int but ``access``,
            :data:`DEVICE_READ` or :data:`CACHE_HIT`) after the access is counted, in the
            order of the accesses, on the thread that made it. A device read of ``n_pages``
            consecutive pages in one pass is one call; each buffer-pool hit is one call with
            ``n_pages = 1``. Exceptions from the sink propagate to the reader.

        Returns
        -------
        callable or None
            The sink set before.

        Raises
        ------
        TypeError
            If ``sink`` is neither callable nor ``None``.
        """
        if sink is not None and not callable(sink):
            raise TypeError(f"trace sink must be callable or None, got {type(sink).__name__}")
        previous, self._trace = self._trace, sink
        return previous

    def record_read(self, file_id, page_no, n_bytes):
        """Count one page read from the device at ``(file_id, page_no)``."""
        self.page_reads += 1
        self.bytes_read += n_bytes
        if file_id != self._head_file or page_no != self._head_page + 1:
            self.seeks += 1
        self._head_file = file_id
        self._head_page = page_no
        if self._trace is not None:
            self._trace(file_id, page_no, 1, DEVICE_READ)

    def record_run(self, file_id, first_page, n_pages, n_bytes):
        """Count ``n_pages`` consecutive pages read in one pass, starting at ``first_page``."""
        if n_pages <= 0:
            return
        self.page_reads += n_pages
        self.bytes_read += n_bytes
        if file_id != self._head_file or first_page != self._head_page + 1:
            self.seeks += 1
        self._head_file = file_id
        self._head_page = first_page + n_pages - 1
        if self._trace is not None:
            self._trace(file_id, first_page, n_pages, DEVICE_READ)

    def record_runs(self, file_id, first_pages, n_pages, page_size):
        """Count runs of consecutive pages read one after another, as :meth:`record_run` each.

        ``first_pages`` and ``n_pages`` are lists of int (``n_pages`` entries >= 1). The trace
        sink, if any, gets one call per run.
        """
        head_file, head_page = self._head_file, self._head_page
        seeks = 0
        total = 0
        for first, count in zip(first_pages, n_pages):
            if file_id != head_file or first != head_page + 1:
                seeks += 1
            head_file, head_page = file_id, first + count - 1
            total += count
        self.page_reads += total
        self.bytes_read += total * page_size
        self.seeks += seeks
        self._head_file, self._head_page = head_file, head_page
        trace = self._trace
        if trace is not None:
            for first, count in zip(first_pages, n_pages):
                trace(file_id, first, count, DEVICE_READ)

    def record_run_summary(self, file_id, first_page, last_page, n_pages, inner_seeks,
                           page_size):
        """Count runs read one after another from one file, given in summary: as
        :meth:`record_runs` counts them when the runs begin at ``first_page``, end at
        ``last_page``, hold ``n_pages`` pages in all and ``inner_seeks`` of them after the
        first do not start right after the run before. For compiled scans that count their
        runs themselves; with a trace sink, call :meth:`record_runs` instead (the sink wants
        every run)."""
        if n_pages <= 0:
            return
        if file_id != self._head_file or first_page != self._head_page + 1:
            inner_seeks += 1
        self.page_reads += n_pages
        self.bytes_read += n_pages * page_size
        self.seeks += inner_seeks
        self._head_file, self._head_page = file_id, last_page

    @property
    def tracing(self):
        """True when a trace sink is set."""
        return self._trace is not None

    def record_hit(self, file_id=None, page_no=None):
        """Count one page access served by the buffer pool (no device access); ``file_id`` and
        ``page_no`` name the page for the trace sink (``None`` if not given)."""
        self.cache_hits += 1
        if self._trace is not None:
            self._trace(file_id, page_no, 1, CACHE_HIT)
    def record_write(self, n_pages, n_bytes):
        """Count pages written."""
        self.page_writes += n_pages
        self.bytes_written += n_bytes

    def reset_head(self):
        """Forget the head position: the next read is a seek (e.g. at the start of a query)."""
        self._head_file = -1
        self._head_page = -2

    def snapshot(self):
        """The counts so far, as an :class:`IOStats`."""
        return IOStats(page_reads=self.page_reads, seeks=self.seeks, bytes_read=self.bytes_read,
                       page_writes=self.page_writes, bytes_written=self.bytes_written,
                       cache_hits=self.cache_hits)
