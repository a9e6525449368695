"""Tests of the IOCounter trace sink: every counted page access of every read method reaches it,
exactly as counted, with and without a buffer pool (hand-computed sequences on tiny files)."""

import numpy as np
import pytest

from storage import _run_reader
from storage.buffer_pool import BufferPool
from storage.errors import CorruptPageError
from storage.iostats import CACHE_HIT, DEVICE_READ, IOCounter, IOStats
from storage.page_file import PageFile

D, C = DEVICE_READ, CACHE_HIT


def write_pages(path, n_pages, *, page_size=512):
    pf = PageFile.create(path, kind="vectors", page_size=page_size)
    for i in range(n_pages):
        pf.append_page(np.full(8, i + 1, dtype=np.uint8))
    pf.finalize()
    pf.close()
    return path


class Sink:
    """A trace sink that keeps every call as (file id, first page, pages, access)."""

    def __init__(self):
        self.calls = []

    def __call__(self, file_id, first_page, n_pages, access):
        self.calls.append((file_id, first_page, n_pages, access))

    def pages(self, access):
        return sum(n for _, _, n, a in self.calls if a == access)

    def agrees_with(self, stats):
        """The sink's device pages and hits equal the counter's page reads and cache hits."""
        return (self.pages(D), self.pages(C)) == (stats.page_reads, stats.cache_hits)


@pytest.fixture(params=["libc pread", "os.preadv"])
def device_path(request, monkeypatch):
    """Device reads through libc's pread from compiled code, or through os.preadv."""
    if request.param == "os.preadv":
        monkeypatch.setattr("storage.page_file.libc_pread", lambda: None)
        monkeypatch.setattr("storage.page_file.zlib_ng_crc32", lambda: None)
    elif _run_reader.libc_pread() is None:  # pragma: no cover - no C library here
        pytest.skip("no libc pread on this platform")
    return request.param


# ---------------------------------------------------------------------------------------------
# The counter alone
# ---------------------------------------------------------------------------------------------


def test_trace_sink_gets_every_record_call_once_after_counting():
    sink = Sink()
    c = IOCounter(trace=sink)
    fa, fb = c.register_file("a.pages"), c.register_file()
    assert (c.file_path(fa), c.file_path(fb)) == ("a.pages", None)
    with pytest.raises(KeyError):
        c.file_path(fb + 1)
    c.record_read(fa, 7, 100)
    c.record_run(fa, 8, 3, 300)
    c.record_run(fa, 20, 0, 0)  # empty: neither counted nor traced
    c.record_runs(fb, [4, 9, 10], [2, 1, 3], 100)
    c.record_runs(fb, [], [], 100)
    c.record_hit(fb, 5)
    c.record_hit()  # no page named: traced with None
    c.record_write(2, 200)  # writes are not page reads: not traced
    assert sink.calls == [(fa, 7, 1, D), (fa, 8, 3, D), (fb, 4, 2, D), (fb, 9, 1, D),
                          (fb, 10, 3, D), (fb, 5, 1, C), (None, None, 1, C)]
    assert c.snapshot() == IOStats(page_reads=10, seeks=3, bytes_read=1000, page_writes=2,
                                   bytes_written=200, cache_hits=2)
    assert sink.agrees_with(c.snapshot())


def test_trace_sink_is_replaced_and_removed_by_set_trace():
    first, second = Sink(), Sink()
    c = IOCounter()
    assert c.set_trace(first) is None
    c.record_read(1, 0, 512)
    assert c.set_trace(second) is first
    c.record_hit(1, 0)
    assert c.set_trace(None) is second
    c.record_read(1, 1, 512)
    assert first.calls == [(1, 0, 1, D)] and second.calls == [(1, 0, 1, C)]
    assert c.snapshot().page_reads == 2
    with pytest.raises(TypeError, match="trace sink must be callable"):
        c.set_trace("not a sink")
    with pytest.raises(TypeError, match="trace sink must be callable"):
        IOCounter(trace=3)


# ---------------------------------------------------------------------------------------------
# Through page files
# ---------------------------------------------------------------------------------------------


def test_trace_sees_every_read_method_without_a_buffer_pool(tmp_path, device_path):
    a_path = write_pages(tmp_path / "a.pages", 12)
    b_path = write_pages(tmp_path / "b.pages", 4)
    sink = Sink()
    counter = IOCounter(trace=sink)
    with PageFile.open(a_path, counter=counter) as a, PageFile.open(b_path, counter=counter) as b:
        assert counter.file_path(a.file_id) == str(a_path)
        assert counter.file_path(b.file_id) == str(b_path)
        fa, fb = a.file_id, b.file_id
        a.read_page(3)
        a.read_page_into(4, np.empty(512, dtype=np.uint8))
        a.read_run(6, 3)
        a.read_run(2, 0)  # empty: nothing read, nothing traced
        a.read_runs_into([1, 9, 12], [2, 1, 1], np.empty((4, 512), dtype=np.uint8))
        a.read_runs_into(np.array([5]), np.array([1]), np.empty((1, 512), dtype=np.uint8))
        b.read_page(1)
        with pytest.raises(IndexError):
            a.read_runs_into([11], [3], np.empty((3, 512), dtype=np.uint8))  # nothing read
        with pytest.raises(IndexError):
            a.read_page(13)
    assert sink.calls == [(fa, 0, 1, D), (fb, 0, 1, D),  # the header pages read by open
                          (fa, 3, 1, D), (fa, 4, 1, D), (fa, 6, 3, D),
                          (fa, 1, 2, D), (fa, 9, 1, D), (fa, 12, 1, D), (fa, 5, 1, D),
                          (fb, 1, 1, D)]
    assert counter.snapshot() == IOStats(page_reads=13, seeks=9, bytes_read=13 * 512)
    assert sink.agrees_with(counter.snapshot())


def test_trace_sees_hits_and_misses_with_a_buffer_pool(tmp_path, device_path):
    path = write_pages(tmp_path / "a.pages", 8)
    sink = Sink()
    counter = IOCounter(trace=sink)
    with PageFile.open(path, counter=counter, buffer_pool=BufferPool(4 * 504)) as pf:
        f = pf.file_id
        first = pf.read_page(3)  # miss
        again = pf.read_page(3)  # hit
        np.testing.assert_array_equal(first, again)
        out = np.zeros(512, dtype=np.uint8)
        pf.read_page_into(4, out)  # miss
        pf.read_page_into(4, out)  # hit
        rows = np.zeros((4, 512), dtype=np.uint8)
        pf.read_runs_into([3, 5, 0], [2, 1, 1], rows)  # 3, 4 hits; 5 miss; 0 hit (open)
        for page, row in ((0, 3), (3, 0), (4, 1), (5, 2)):  # four more hits, page 0 first
            np.testing.assert_array_equal(rows[row, :504], pf.read_page(page))
        pf.read_run(3, 2)  # a scan: bypasses the pool, one device read of two pages
        pf.read_page(6)  # miss; the full pool (4 pages) evicts page 0, its oldest
        pf.read_page(0)  # miss again
    assert sink.calls == [(f, 0, 1, D),  # header at open
                          (f, 3, 1, D), (f, 3, 1, C), (f, 4, 1, D), (f, 4, 1, C),
                          (f, 3, 1, C), (f, 4, 1, C), (f, 5, 1, D), (f, 0, 1, C),
                          (f, 0, 1, C), (f, 3, 1, C), (f, 4, 1, C), (f, 5, 1, C),
                          (f, 3, 2, D), (f, 6, 1, D), (f, 0, 1, D)]
    stats = counter.snapshot()
    assert (stats.page_reads, stats.cache_hits) == (8, 9)
    assert sink.agrees_with(stats)


def test_trace_of_a_failed_run_holds_what_was_counted(tmp_path, device_path):
    path = write_pages(tmp_path / "a.pages", 6)
    raw = bytearray(path.read_bytes())
    raw[4 * 512 + 3] ^= 0x01  # page 4
    path.write_bytes(bytes(raw))
    sink = Sink()
    counter = IOCounter(trace=sink)
    with PageFile.open(path, counter=counter) as pf:
        f = pf.file_id
        with pytest.raises(CorruptPageError, match="page 4"):
            pf.read_runs_into([1, 3, 6], [1, 2, 1], np.empty((4, 512), dtype=np.uint8))
        with pytest.raises(CorruptPageError, match="page 4"):
            pf.read_page(4)
        with pytest.raises(CorruptPageError, match="page 4"):
            pf.read_run(2, 4)
    # Run 1..1 was read and checked before the damaged run: counted and traced; nothing else.
    assert sink.calls == [(f, 0, 1, D), (f, 1, 1, D)]
    assert sink.agrees_with(counter.snapshot())


def test_trace_costs_no_change_in_counts(tmp_path):
    """The same reads with and without a sink count the same."""
    path = write_pages(tmp_path / "a.pages", 10)
    snapshots = []
    for trace in (None, Sink()):
        counter = IOCounter(trace=trace)
        with PageFile.open(path, counter=counter, buffer_pool=BufferPool(3 * 504)) as pf:
            for page in (1, 2, 1, 9, 2, 3):
                pf.read_page(page)
            pf.read_runs_into([4, 1], [3, 2], np.empty((5, 512), dtype=np.uint8))
            pf.read_run(2, 5)
        snapshots.append(counter.snapshot())
        if trace is not None:
            assert trace.agrees_with(snapshots[-1])
    assert snapshots[0] == snapshots[1]
    assert snapshots[0].cache_hits > 0 and snapshots[0].page_reads > 0
