"""Tests of storage.sorted_run: sorted runs of (int64 key, id) pages with a page directory.

Oracles: the (key, id) arrays given to the writer, np.searchsorted over them, the byte
layout tables of storage.format (parsed here with struct), and hand-computed page counts.
"""

import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.errors import CorruptPageError
from storage.iostats import IOCounter
from storage.page_file import PageFile
from storage.sorted_run import (DATA_PAGE, DIRECTORY_PAGE, MAX_PAGE_ENTRIES, SortedRunWriter,
                                check_data_pages, decode_page, directory_entries_per_page,
                                entry_range, page_header, read_directory)


def write_runs(path, runs, *, page_size=512, id_bits=16, page_entries=None, chunks=1, seed=0):
    """Write runs [(keys, ids), ...] in ``chunks`` pieces each; return (RunInfos, DirectoryInfo)."""
    rng = np.random.default_rng(seed)
    pf = PageFile.create(path, kind="sortedrun", page_size=page_size)
    writer = SortedRunWriter(pf, id_bits=id_bits, tmp_dir=os.path.dirname(path),
                             page_entries=page_entries)
    try:
        for keys, ids in runs:
            writer.begin_run()
            cuts = np.sort(rng.integers(0, len(keys) + 1, chunks - 1)).tolist()
            for s, e in zip([0, *cuts], [*cuts, len(keys)]):
                writer.add(np.asarray(keys[s:e], dtype=np.int64), np.asarray(ids[s:e]))
            writer.end_run()
        infos, directory = writer.finish()
        pf.finalize(b"{}")
    finally:
        writer.abort()
        pf.close()
    return infos, directory


def read_back(pf, info):
    """All (keys, ids) of one run, decoded page by page."""
    keys, ids = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    kbuf = np.empty(MAX_PAGE_ENTRIES, np.int64)
    ibuf = np.empty(MAX_PAGE_ENTRIES, np.int64)
    for p in range(info.n_pages):
        c = decode_page(pf.read_page(info.first_page + p), kbuf, ibuf)
        keys.append(kbuf[:c].copy())
        ids.append(ibuf[:c].copy())
    return np.concatenate(keys), np.concatenate(ids)


def random_run(rng, n, n_keys=40, low=-1000, id_bits=16):
    keys = np.sort(rng.integers(low, low + n_keys, n)).astype(np.int64)
    return keys, rng.integers(0, 1 << id_bits, n).astype(np.uint32)


def one_key_capacity(payload, id_bits):
    """Entries of a single key that fit a page: 16 + ceil(lb / 8) + ceil(e b / 8) <= payload."""
    e = 1
    while True:
        lb = int(e).bit_length()  # bits of (e + 1) - 1
        if 16 + (lb + 7) // 8 + ((e + 1) * id_bits + 7) // 8 > payload:
            return e
        e += 1


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("id_bits", [1, 7, 16, 17, 32])
def test_sorted_run_round_trip_and_directory(tmp_path, id_bits):
    rng = np.random.default_rng(id_bits)
    runs = [random_run(rng, 3000, id_bits=id_bits), random_run(rng, 0, id_bits=id_bits),
            random_run(rng, 1, id_bits=id_bits), random_run(rng, 777, n_keys=3, id_bits=id_bits)]
    path = str(tmp_path / "runs.pages")
    infos, directory = write_runs(path, runs, id_bits=id_bits, chunks=5)
    counter = IOCounter()
    with PageFile.open(path, counter=counter) as pf:
        assert pf.page_count == 1 + sum(i.n_pages for i in infos) + directory.n_pages
        before = counter.snapshot()
        first, last = read_directory(pf, directory, tuple(
            np.array([getattr(i, f) for i in infos], np.int64)
            for f in ("dir_entry", "n_pages", "key_min")))
        io = counter.snapshot().delta(before)
        assert (io.page_reads, io.seeks) == (directory.n_pages, 1)
        for (keys, ids), info in zip(runs, infos):
            assert info.n_entries == len(keys)
            got_keys, got_ids = read_back(pf, info)
            np.testing.assert_array_equal(got_keys, keys)
            np.testing.assert_array_equal(got_ids, ids)
            if len(keys):
                assert (info.key_min, info.key_max) == (keys[0], keys[-1])
            kbuf, ibuf = np.empty(MAX_PAGE_ENTRIES, np.int64), np.empty(MAX_PAGE_ENTRIES, np.int64)
            for p in range(info.n_pages):
                c = decode_page(pf.read_page(info.first_page + p), kbuf, ibuf)
                assert first[info.dir_entry + p] == kbuf[0]
                assert last[info.dir_entry + p] == kbuf[c - 1]
    assert sorted(os.listdir(tmp_path)) == ["runs.pages"]  # the spill file is gone


def test_sorted_run_pages_do_not_depend_on_chunking(tmp_path):
    rng = np.random.default_rng(5)
    runs = [random_run(rng, 5000), random_run(rng, 4000, n_keys=400, low=2**40)]
    blobs = []
    for i, chunks in enumerate((1, 3, 50)):
        path = str(tmp_path / f"r{i}.pages")
        write_runs(path, runs, chunks=chunks, seed=i)
        blobs.append(open(path, "rb").read())
    assert blobs[0] == blobs[1] == blobs[2]


@pytest.mark.parametrize("id_bits", [16, 20])
def test_sorted_run_page_boundaries_empty_full_and_full_plus_one(tmp_path, id_bits):
    cap = one_key_capacity(504, id_bits)
    assert cap == (243 if id_bits == 16 else 194)
    for n, pages in ((0, 0), (1, 1), (cap, 1), (cap + 1, 2), (2 * cap, 2), (2 * cap + 1, 3)):
        path = str(tmp_path / f"b{n}.pages")
        keys = np.full(n, 7, np.int64)
        ids = np.arange(n, dtype=np.uint32)
        (info,), directory = write_runs(path, [(keys, ids)], id_bits=id_bits)
        assert info.n_pages == pages, n
        assert directory.n_entries == pages
        with PageFile.open(path) as pf:
            got_keys, got_ids = read_back(pf, info)
        np.testing.assert_array_equal(got_ids, ids)
        np.testing.assert_array_equal(got_keys, keys)


def test_sorted_run_page_entries_limit(tmp_path):
    keys = np.repeat(np.arange(10, dtype=np.int64), 3)
    path = str(tmp_path / "p.pages")
    (info,), _ = write_runs(path, [(keys, np.arange(30))], page_entries=4)
    assert info.n_pages == 8  # ceil(30 / 4)
    with PageFile.open(path) as pf:
        for p in range(8):
            assert page_header(pf.read_page(info.first_page + p))[0] == (4 if p < 7 else 2)


def test_sorted_run_layout_matches_the_format_doc(tmp_path):
    # Keys 5, 5, 5, 8, 100 and ids 1..5 with 16-bit ids: r = 3 runs, deltas 3 and 92
    # (db = 7 bits), lengths - 1 = 2, 0, 0 (lb = 2 bits): T = ceil((2 * 7 + 3 * 2) / 8) = 3.
    path = str(tmp_path / "doc.pages")
    keys = np.array([5, 5, 5, 8, 100], np.int64)
    (info,), directory = write_runs(path, [(keys, np.arange(1, 6))])
    with PageFile.open(path) as pf:
        raw = pf.read_page(info.first_page).tobytes()
        dir_raw = pf.read_page(directory.first_page).tobytes()
    typ, b, db, lb, e, r, first = struct.unpack_from("<BBBBHHq", raw, 0)
    assert (typ, b, db, lb, e, r, first) == (DATA_PAGE, 16, 7, 2, 5, 3, 5)
    table = int.from_bytes(raw[16:19], "little")
    assert table & 0x7F == 3 and (table >> 7) & 0x7F == 92
    assert [(table >> (14 + 2 * j)) & 3 for j in range(3)] == [2, 0, 0]
    assert struct.unpack_from("<5H", raw, 19) == (1, 2, 3, 4, 5)
    assert set(raw[29:]) == {0}
    assert struct.unpack_from("<B3xIII", dir_raw, 0) == (DIRECTORY_PAGE, 1, 0, 95)
    assert directory.entries_per_page == directory_entries_per_page(504) == 62


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-50, 50), min_size=1, max_size=300), st.integers(-60, 60),
       st.integers(0, 30))
def test_sorted_run_entry_range_matches_searchsorted(tmp_path_factory, raw, lo, width):
    keys = np.sort(np.array(raw, np.int64))
    path = str(tmp_path_factory.mktemp("er") / "e.pages")
    (info,), _ = write_runs(path, [(keys, np.arange(keys.size) % 9)], id_bits=4)
    hi = lo + width
    kbuf, ibuf = np.empty(MAX_PAGE_ENTRIES, np.int64), np.empty(MAX_PAGE_ENTRIES, np.int64)
    with PageFile.open(path) as pf:
        for p in range(info.n_pages):
            page = pf.read_page(info.first_page + p)
            c = decode_page(page, kbuf, ibuf)
            e0, e1 = entry_range(page, lo, hi)
            assert e0 == np.searchsorted(kbuf[:c], lo, "left")
            assert e1 == np.searchsorted(kbuf[:c], hi, "right")


def test_sorted_run_large_and_negative_keys(tmp_path):
    base = -(2**62)
    keys = np.array([base, base, base + 1, base + 2**32 - 1], np.int64)
    path = str(tmp_path / "big.pages")
    (info,), _ = write_runs(path, [(keys, np.arange(4))])
    with PageFile.open(path) as pf:
        got_keys, _ = read_back(pf, info)
    np.testing.assert_array_equal(got_keys, keys)


# --------------------------------------------------------------------------- errors
def make_writer(tmp_path, **kw):
    pf = PageFile.create(str(tmp_path / "e.pages"), kind="sortedrun", page_size=512)
    return pf, SortedRunWriter(pf, id_bits=kw.pop("id_bits", 8), tmp_dir=str(tmp_path), **kw)


def test_sorted_run_writer_rejects_bad_input(tmp_path):
    pf, w = make_writer(tmp_path)
    with pytest.raises(RuntimeError, match="begin_run"):
        w.add(np.array([1]), np.array([1]))
    w.begin_run()
    with pytest.raises(RuntimeError, match="end_run"):
        w.begin_run()
    with pytest.raises(ValueError, match="ascending"):
        w.add(np.array([3, 2]), np.array([0, 1]))
    w.add(np.array([5]), np.array([0]))
    with pytest.raises(ValueError, match="ascending"):
        w.add(np.array([4]), np.array([0]))
    with pytest.raises(ValueError, match="ids must be in 0..255"):
        w.add(np.array([6]), np.array([256]))
    with pytest.raises(ValueError, match="span less than 2\\*\\*32"):
        w.add(np.array([5 + 2**32]), np.array([1]))
    with pytest.raises(ValueError, match="equal length"):
        w.add(np.array([6, 7]), np.array([1]))
    w.abort()
    pf.close()
    assert sorted(os.listdir(tmp_path)) == ["e.pages"]
    pf2 = PageFile.create(str(tmp_path / "f.pages"), kind="sortedrun", page_size=512)
    with pytest.raises(ValueError, match="id_bits"):
        SortedRunWriter(pf2, id_bits=33, tmp_dir=str(tmp_path))
    with pytest.raises(ValueError, match="page_entries"):
        SortedRunWriter(pf2, id_bits=8, tmp_dir=str(tmp_path), page_entries=0)
    pf2.close()


def test_sorted_run_wrong_page_kind_is_corrupt(tmp_path):
    path = str(tmp_path / "c.pages")
    rng = np.random.default_rng(1)
    (info,), directory = write_runs(path, [random_run(rng, 600)])
    with PageFile.open(path) as pf:
        check_data_pages(pf, pf.read_run(info.first_page, info.n_pages), info.first_page)
        with pytest.raises(CorruptPageError, match="data pages"):
            check_data_pages(pf, pf.read_run(directory.first_page, 1), directory.first_page)
        # Point the reader's directory at a data page.
        bad = type(directory)(first_page=info.first_page, n_pages=1, n_entries=1,
                              entries_per_page=directory.entries_per_page)
        runs = (np.zeros(1, np.int64), np.ones(1, np.int64), np.zeros(1, np.int64))
        with pytest.raises(CorruptPageError, match="directory"):
            read_directory(pf, bad, runs)
