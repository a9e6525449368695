"""Scan helpers of storage: word-wise id reads, inner-node descent, multi-run page reads."""

import zlib

import numpy as np
import pytest

from storage.btree import BPlusTree, BulkLoader, leaf_capacity
from storage.errors import CorruptPageError
from storage.iostats import IOCounter
from storage.leaf_codec import (LEAF_ENTRIES_OFFSET, encode_leaf, inner_child, leaf_id,
                                leaf_id_at, leaf_id_words, leaf_key_step)
from storage import _run_reader
from storage.page_file import PageFile


@pytest.mark.parametrize("id_bits", [1, 3, 8, 13, 16, 17, 24, 31, 32])
def test_leaf_id_at_reads_the_same_ids_as_leaf_id(id_bits):
    payload_size = 4088
    c = leaf_capacity(payload_size, id_bits)
    rng = np.random.default_rng(id_bits)
    ids = rng.integers(0, 1 << id_bits, c, dtype=np.uint64).astype(np.uint32)
    keys = np.sort(rng.normal(size=c).astype(np.float32))
    page = np.zeros(4096, dtype=np.uint8)  # a page buffer row: payload, then the trailer
    payload = page[:payload_size]
    encode_leaf(keys, ids, id_bits, leaf_key_step(keys[0], keys[-1]), payload)
    words, bit_base, mask = leaf_id_words(page, c, id_bits)
    assert bit_base == 8 * (LEAF_ENTRIES_OFFSET + 2 * c)
    got = np.array([leaf_id_at(words, bit_base, id_bits, mask, j) for j in range(c)])
    np.testing.assert_array_equal(got, ids)
    np.testing.assert_array_equal(got, [leaf_id(payload, c, id_bits, j) for j in range(c)])


@pytest.fixture
def tall_tree(tmp_path):
    """A 3-level tree of 20,000 keys on 512-byte pages, with duplicate keys."""
    counter = IOCounter()
    pf = PageFile.create(tmp_path / "t.pages", kind="btree", page_size=512, counter=counter)
    keys = np.sort(np.random.default_rng(1).normal(size=20000).astype(np.float32))
    keys[5000:5400] = keys[5000]
    loader = BulkLoader(pf, id_bits=15)
    loader.add(keys, np.arange(20000, dtype=np.uint32))
    info = loader.finish()
    pf.finalize()
    pf.close()
    pf = PageFile.open(tmp_path / "t.pages", counter=counter)
    yield BPlusTree(pf, info), keys, counter
    pf.close()


def test_inner_child_descends_as_find_leaf(tall_tree):
    tree, keys, _ = tall_tree
    assert tree.info.height == 3
    first, fanout = tree.leaf_parents()
    probes = np.concatenate([keys[::97], [keys[0] - 1, keys[-1] + 1, keys[5000]]])
    buf = np.zeros((1, 512), dtype=np.uint8)
    for key in probes:
        page = tree.info.root_page
        for _ in range(tree.info.height - 1):
            tree.page_file.read_runs_into([page], [1], buf)
            _, page = inner_child(buf[0], np.float64(key))
        assert page == tree.find_leaf(key)
        leaf = page - tree.info.first_leaf
        # The parent of leaf i is page first + i // fanout, as leaf_parents() says.
        tree.page_file.read_runs_into([first + leaf // fanout], [1], buf)
        kmin = buf[0, 8 + 4 * (leaf % fanout):12 + 4 * (leaf % fanout)].view(np.float32)[0]
        assert kmin == tree.read_leaf(page)[0][0]


def test_read_runs_into_counts_each_run_as_one_seek_at_most(tall_tree):
    tree, _, counter = tall_tree
    pf = tree.page_file
    out = np.zeros((10, 512), dtype=np.uint8)
    before = counter.snapshot()
    counter.reset_head()
    pf.read_runs_into([3, 6, 9], [3, 3, 1], out)  # 3..5, 6..8 (right after: no seek), 9
    d = counter.snapshot().delta(before)
    assert (d.page_reads, d.seeks, d.bytes_read) == (7, 1, 7 * 512)
    pf.read_runs_into([2, 20], [1, 2], out)  # 2 (seek), 20..21 (seek)
    d = counter.snapshot().delta(before)
    assert (d.page_reads, d.seeks) == (10, 3)
    single = np.zeros(512, dtype=np.uint8)
    pf.read_page_into(21, single)
    np.testing.assert_array_equal(out[2], single)


def test_read_runs_into_rejects_bad_runs_and_damaged_pages(tall_tree, tmp_path, read_path):
    tree, _, _ = tall_tree
    pf = tree.page_file
    out = np.zeros((2, 512), dtype=np.uint8)
    with pytest.raises(IndexError, match="outside"):
        pf.read_runs_into([pf.page_count - 1], [2], out)
    with pytest.raises(ValueError, match="too few"):
        pf.read_runs_into([1], [3], out)
    with pytest.raises(ValueError, match="C-contiguous"):
        pf.read_runs_into([1], [1], np.zeros((2, 256), dtype=np.uint8))
    path = pf.path
    with open(path, "r+b") as f:
        f.seek(4 * 512 + 100)
        f.write(b"\xff")
    damaged = PageFile.open(path)
    try:
        with pytest.raises(CorruptPageError, match="page 4 fails its CRC32"):
            damaged.read_runs_into([3], [2], out)
        # The run before the damaged one was read whole and is counted; the damaged one is not.
        before = damaged.counter.snapshot()
        with pytest.raises(CorruptPageError, match="page 4 fails its CRC32"):
            damaged.read_runs_into(np.array([1, 3]), np.array([1, 2]), np.zeros((3, 512), np.uint8))
        assert damaged.counter.snapshot().delta(before).page_reads == 1
    finally:
        damaged.close()


def test_read_runs_into_rejects_a_page_that_holds_another_page(tall_tree, tmp_path, read_path):
    tree, _, _ = tall_tree
    pf = tree.page_file
    path = pf.path
    with open(path, "r+b") as f:  # page 6 gets a copy of page 5 (a valid page, wrong place)
        f.seek(5 * 512)
        page5 = f.read(512)
        f.seek(6 * 512)
        f.write(page5)
    damaged = PageFile.open(path)
    try:
        out = np.zeros((3, 512), dtype=np.uint8)
        with pytest.raises(CorruptPageError, match="page 6 holds the content of page 5"):
            damaged.read_runs_into([4], [3], out)
        with pytest.raises(ValueError, match="of one length"):
            damaged.read_runs_into([4, 5], [1], out)
    finally:
        damaged.close()


@pytest.fixture(params=[("libc pread", "zlib-ng crc"), ("libc pread", "python crc"),
                        ("os.preadv", "zlib-ng crc"), ("os.preadv", "python crc")],
                ids=lambda p: "+".join(p))
def read_path(request, monkeypatch):
    """read_runs_into through libc's pread from compiled code or os.preadv, with the CRC32
    checks in compiled code (zlib-ng's zng_crc32) or in Python."""
    reader, crc = request.param
    if reader == "os.preadv":
        monkeypatch.setattr("storage.page_file.libc_pread", lambda: None)
    elif _run_reader.libc_pread() is None:  # pragma: no cover - no C library here
        pytest.skip("no libc pread on this platform")
    if crc == "python crc":
        monkeypatch.setattr("storage.page_file.zlib_ng_crc32", lambda: None)
    elif _run_reader.zlib_ng_crc32() is None:  # pragma: no cover - zlib-ng without the symbol
        pytest.skip("zlib-ng's zng_crc32 cannot be called here")
    return request.param


def test_compiled_crc32_is_zlibs():
    address = _run_reader.zlib_ng_crc32()
    if address is None:  # pragma: no cover - zlib-ng without the symbol
        pytest.skip("zlib-ng's zng_crc32 cannot be called here")
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 64, 4092, 65532):
        data = rng.integers(0, 256, n, dtype=np.uint8)
        assert _run_reader._crc_of(np.int64(address), data) == zlib.crc32(data)


def test_read_runs_into_reads_and_counts_the_same_on_both_paths(tall_tree, read_path):
    tree, _, _ = tall_tree
    pf = tree.page_file
    firsts, counts = np.array([2, 9, 12, 40]), np.array([3, 3, 1, 2])
    out = np.zeros((10, 512), dtype=np.uint8)
    pf.counter.reset_head()
    before = pf.counter.snapshot()
    pf.read_runs_into(firsts, counts, out)
    io = pf.counter.snapshot().delta(before)
    assert (io.page_reads, io.seeks, io.bytes_read) == (9, 3, 9 * 512)  # 12 follows 9..11
    pages = [p for f, c in zip(firsts, counts) for p in range(f, f + c)]
    for row, page in enumerate(pages):
        np.testing.assert_array_equal(out[row, :pf.payload_size], pf.read_page(page))


def test_read_runs_into_reports_a_truncated_file_as_short(tall_tree, tmp_path, read_path):
    tree, _, _ = tall_tree
    pf = tree.page_file
    path = pf.path
    n = pf.page_count
    damaged = PageFile.open(path)
    try:
        with open(path, "r+b") as f:  # the last two pages go after the file was opened
            f.truncate((n - 2) * 512)
        out = np.zeros((4, 512), dtype=np.uint8)
        before = damaged.counter.snapshot()
        with pytest.raises(CorruptPageError, match=f"pages {n - 3}..{n - 1} are short"):
            damaged.read_runs_into([1, n - 3], [1, 3], out)
        assert damaged.counter.snapshot().delta(before).page_reads == 1  # the run before it
    finally:
        damaged.close()


def test_a_compiled_scan_reads_logs_and_counts_as_read_runs_into(tall_tree):
    """read_raw_runs + log_runs / log_run + count_log: the same bytes and the same counts as
    read_runs_into (hand-computed: 9 pages, 3 seeks), and the log is emptied."""
    from storage import log_run, log_runs, new_run_log, read_raw_runs
    tree, _, _ = tall_tree
    pf = tree.page_file
    raw = pf.raw_reader()
    if raw is None:  # pragma: no cover - no libc pread or zlib-ng CRC here
        pytest.skip("compiled reads cannot be used here")
    firsts, counts = np.array([2, 9, 12, 40]), np.array([3, 3, 1, 2])
    out = np.zeros((10, 512), dtype=np.uint8)
    assert read_raw_runs(raw, firsts, counts, out)
    log = new_run_log(4)
    log_runs(log, firsts[:3], counts[:3])
    log_run(log, 40, 2)
    assert log.n[0] == 4
    pf.counter.reset_head()
    before = pf.counter.snapshot()
    pf.count_log(log)
    io = pf.counter.snapshot().delta(before)
    assert (io.page_reads, io.seeks, io.bytes_read) == (9, 3, 9 * 512)
    assert log.n[0] == 0
    pages = [p for f, c in zip(firsts, counts) for p in range(f, f + c)]
    for row, page in enumerate(pages):
        np.testing.assert_array_equal(out[row, :pf.payload_size], pf.read_page(page))
