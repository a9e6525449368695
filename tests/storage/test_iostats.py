"""Tests of storage.iostats: exact page-read, seek and write counts on hand-computed cases."""

import dataclasses

import numpy as np
import pytest

from storage.buffer_pool import BufferPool
from storage.iostats import IOCounter, IOStats
from storage.page_file import PageFile

MiB = 1 << 20


def write_pages(path, n_pages, *, page_size=512, counter=None):
    pf = PageFile.create(path, kind="vectors", page_size=page_size, counter=counter)
    for i in range(n_pages):
        pf.append_page(np.full(8, i + 1, dtype=np.uint8))
    pf.finalize()
    pf.close()
    return path


def reads_seeks(counter, since):
    d = counter.snapshot().delta(since)
    return d.page_reads, d.seeks


# ---------------------------------------------------------------------------------------------
# IOStats
# ---------------------------------------------------------------------------------------------


def test_iostats_delta_add_and_as_dict():
    a = IOStats(page_reads=10, seeks=4, bytes_read=5120, page_writes=3, bytes_written=1536,
                cache_hits=7)
    b = IOStats(page_reads=4, seeks=1, bytes_read=2048, page_writes=1, bytes_written=512,
                cache_hits=2)
    assert a.delta(b) == IOStats(page_reads=6, seeks=3, bytes_read=3072, page_writes=2,
                                 bytes_written=1024, cache_hits=5)
    assert a.delta(b) + b == a
    assert b + a.delta(b) == a
    assert a.delta(a) == IOStats()
    assert IOStats().as_dict() == dict(page_reads=0, seeks=0, bytes_read=0, page_writes=0,
                                       bytes_written=0, cache_hits=0)
    assert a.as_dict()["cache_hits"] == 7
    with pytest.raises(TypeError):
        a + 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.seeks = 0
    with pytest.raises(TypeError):
        IOStats(3)  # keyword-only


def test_iostats_counter_judges_seeks_by_file_and_next_page():
    c = IOCounter()
    fa, fb = c.register_file(), c.register_file()
    assert fa != fb
    c.record_read(fa, 7, 100)  # first read: seek
    c.record_read(fa, 8, 100)  # next page: sequential
    c.record_read(fb, 9, 100)  # next page number, other file: seek
    c.record_read(fb, 9, 100)  # same page again: seek
    c.record_read(fb, 8, 100)  # backwards: seek
    c.record_run(fb, 9, 3, 300)  # run starting right after the head: sequential
    c.record_read(fb, 12, 100)  # right after the run's last page: sequential
    c.record_run(fb, 20, 0, 0)  # empty run: nothing
    c.record_hit()
    c.record_write(2, 200)
    assert c.snapshot() == IOStats(page_reads=9, seeks=4, bytes_read=900, page_writes=2,
                                   bytes_written=200, cache_hits=1)
    c.reset_head()
    c.record_read(fb, 13, 100)
    assert c.snapshot().seeks == 5


# ---------------------------------------------------------------------------------------------
# Counts through page files
# ---------------------------------------------------------------------------------------------


def test_iostats_two_files_sharing_one_counter_count_reads_and_seeks_exactly(tmp_path):
    a_path = write_pages(tmp_path / "a.pages", 8)
    b_path = write_pages(tmp_path / "b.pages", 8)
    counter = IOCounter()
    pool = BufferPool(0)
    with PageFile.open(a_path, counter=counter, buffer_pool=pool) as a, \
            PageFile.open(b_path, counter=counter, buffer_pool=pool) as b:
        # Opening reads each header page (page 0): two counted reads, two seeks.
        assert reads_seeks(counter, IOStats()) == (2, 2)

        s = counter.snapshot()
        for page_no in (1, 2, 3):
            a.read_page(page_no)
        assert reads_seeks(counter, s) == (3, 1)

        s = counter.snapshot()
        b.read_page(4)  # page 4 follows page 3, but of the other file: a seek
        assert reads_seeks(counter, s) == (1, 1)

        s = counter.snapshot()
        a.read_page(5)  # A again after B: a seek
        assert reads_seeks(counter, s) == (1, 1)

        s = counter.snapshot()
        a.read_page(6)  # right after A's page 5: sequential
        assert reads_seeks(counter, s) == (1, 0)

        s = counter.snapshot()
        for page_no in (6, 5, 4):  # backwards: every read is a seek
            a.read_page(page_no)
        assert reads_seeks(counter, s) == (3, 3)

        s = counter.snapshot()
        a.read_run(1, 4)  # pages 1..4 in one pass: one seek
        assert reads_seeks(counter, s) == (4, 1)
        s = counter.snapshot()
        a.read_page(5)  # right after the run
        assert reads_seeks(counter, s) == (1, 0)

        s = counter.snapshot()
        out = np.empty(512, dtype=np.uint8)
        a.read_page_into(6, out)  # read_page_into is judged the same way
        assert reads_seeks(counter, s) == (1, 0)

        s = counter.snapshot()
        counter.reset_head()
        a.read_page(7)  # would be sequential, but the head was forgotten
        assert reads_seeks(counter, s) == (1, 1)

        s = counter.snapshot()
        a.read_run(3, 0)  # an empty run reads and counts nothing
        assert counter.snapshot() == s

        total = counter.snapshot()
        assert total.bytes_read == total.page_reads * 512
        assert total == IOStats(page_reads=2 + 3 + 1 + 1 + 1 + 3 + 4 + 1 + 1 + 1,
                                seeks=2 + 1 + 1 + 1 + 0 + 3 + 1 + 0 + 0 + 1,
                                bytes_read=18 * 512)
        assert total.cache_hits == 0 and len(pool) == 0


def test_iostats_failed_reads_are_not_counted(tmp_path):
    path = write_pages(tmp_path / "a.pages", 2)
    counter = IOCounter()
    with PageFile.open(path, counter=counter) as pf:
        s = counter.snapshot()
        with pytest.raises(IndexError):
            pf.read_page(3)
        with pytest.raises(IndexError):
            pf.read_run(2, 2)
        assert counter.snapshot() == s


def test_iostats_bytes_read_follow_each_files_page_size(tmp_path):
    small = write_pages(tmp_path / "s.pages", 3, page_size=512)
    large = write_pages(tmp_path / "l.pages", 3, page_size=4096)
    counter = IOCounter()
    with PageFile.open(small, counter=counter) as s, PageFile.open(large, counter=counter) as l:
        before = counter.snapshot()
        s.read_page(1)
        l.read_run(1, 3)
        l.read_page(2)
        d = counter.snapshot().delta(before)
        assert (d.page_reads, d.seeks, d.bytes_read) == (5, 3, 512 + 3 * 4096 + 4096)


@pytest.mark.parametrize("page_size", [512, 4096])
def test_iostats_write_counts_of_create_append_finalize(tmp_path, page_size):
    counter = IOCounter()
    pf = PageFile.create(tmp_path / "w.pages", kind="vectors", page_size=page_size, counter=counter)
    assert counter.snapshot() == IOStats(page_writes=1, bytes_written=page_size)  # placeholder
    for _ in range(5):
        pf.append_page(b"x")
    assert counter.snapshot().page_writes == 1  # appends are buffered
    pf.finalize(b"app")
    # placeholder header + 5 data pages (one flush) + final header = 7 page writes
    assert counter.snapshot() == IOStats(page_writes=7, bytes_written=7 * page_size)
    pf.close()
    assert counter.snapshot().page_writes == 7  # nothing left to write at close
    assert counter.snapshot().page_reads == 0
    size = (tmp_path / "w.pages").stat().st_size
    assert size == 6 * page_size  # the header page is written twice, in place


def test_iostats_write_counts_when_the_write_buffer_fills(tmp_path):
    counter = IOCounter()
    pf = PageFile.create(tmp_path / "w.pages", kind="vectors", page_size=MiB, counter=counter)
    for _ in range(3):
        pf.append_page(b"x")
    assert counter.snapshot().page_writes == 1
    pf.append_page(b"x")  # 4 MiB pending: flushed now
    assert counter.snapshot() == IOStats(page_writes=5, bytes_written=5 * MiB)
    pf.append_page(b"x")
    pf.finalize()
    assert counter.snapshot() == IOStats(page_writes=7, bytes_written=7 * MiB)
    pf.close()


def test_iostats_close_without_finalize_counts_the_flushed_pages(tmp_path):
    counter = IOCounter()
    pf = PageFile.create(tmp_path / "w.pages", kind="vectors", page_size=512, counter=counter)
    pf.append_page(b"a")
    pf.append_page(b"b")
    pf.close()
    assert counter.snapshot() == IOStats(page_writes=3, bytes_written=3 * 512)


def test_record_runs_counts_as_record_run_one_run_after_another():
    rng = np.random.default_rng(3)
    for trial in range(50):
        n_runs = int(rng.integers(0, 12))
        firsts = rng.integers(0, 40, n_runs).tolist()
        counts = rng.integers(1, 4, n_runs).tolist()
        # Make some runs start right after the previous one (no seek).
        for r in range(1, n_runs):
            if rng.random() < 0.4:
                firsts[r] = firsts[r - 1] + counts[r - 1]
        one, many = IOCounter(), IOCounter()
        for c in (one, many):  # a head left on page 9 of file 1 by an earlier read
            c.record_read(1, 9, 512)
        for f, n in zip(firsts, counts):
            one.record_run(1, f, n, n * 512)
        many.record_runs(1, firsts, counts, 512)
        assert one.snapshot() == many.snapshot(), (firsts, counts)
        one.record_read(1, 0, 512)
        many.record_read(1, 0, 512)
        assert one.snapshot() == many.snapshot(), "the head ended in a different place"


def test_a_run_summary_counts_as_the_runs_one_by_one():
    """record_run_summary (compiled scans summarize their runs with summarize_runs) gives the
    counts and head of record_runs, for random runs and any head position."""
    import numpy as np
    from storage._run_reader import summarize_runs
    rng = np.random.default_rng(4)
    for _ in range(300):
        r = int(rng.integers(1, 8))
        firsts = rng.integers(0, 30, r).astype(np.int64)
        counts = rng.integers(1, 4, r).astype(np.int64)
        head_file, head_page = int(rng.integers(1, 3)), int(rng.integers(-2, 30))
        a, b = IOCounter(), IOCounter()
        for c in (a, b):
            c.register_file()
            c.register_file()
            c.record_read(head_file, head_page, 4096) if head_page >= 0 else None
        a.record_runs(1, firsts.tolist(), counts.tolist(), 4096)
        total, seeks, last = summarize_runs(firsts, counts)
        b.record_run_summary(1, int(firsts[0]), int(last), int(total), int(seeks), 4096)
        assert a.snapshot() == b.snapshot()
        a.record_read(1, int(last) + 1, 4096)
        b.record_read(1, int(last) + 1, 4096)
        assert a.snapshot() == b.snapshot()  # the same head afterwards
