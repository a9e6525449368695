"""The QPT arithmetic on hand-computed numbers, the linear scan, and the read-ahead term."""

import numpy as np
import pytest

from cost_model import HDD, SSD, DeviceProfile, linear_scan_cost, query_cost, readahead_io

TOY = DeviceProfile(name="toy", seek_ms=2.0, read_mb_per_ms=0.5)


def test_qpt_terms_hand_computed():
    cost = query_cost([10, 0, 3], [2_000_000, 0, 500_000], [1.5, 0.0, 2.0], TOY)
    # seeks * 2 ms; MB / 0.5 MB/ms; + algorithm ms
    np.testing.assert_allclose(cost.seek_term_ms, [20.0, 0.0, 6.0])
    np.testing.assert_allclose(cost.read_term_ms, [4.0, 0.0, 1.0])
    np.testing.assert_allclose(cost.mb_read, [2.0, 0.0, 0.5])
    np.testing.assert_allclose(cost.qpt_ms, [25.5, 0.0, 9.0])
    assert len(cost) == 3 and cost.device == "toy"
    mean = cost.mean()
    assert mean["qpt_ms"] == pytest.approx(34.5 / 3)
    assert mean["seeks"] == pytest.approx(13 / 3) and mean["algorithm_ms"] == pytest.approx(3.5 / 3)


def test_qpt_on_the_study_profiles():
    hdd = query_cost(100, 100 * 4096, 5.0, HDD).mean()
    assert hdd["qpt_ms"] == pytest.approx(100 * 8.5 + 0.4096 / 0.156 + 5.0)
    ssd = query_cost(100, 100 * 4096, 5.0, SSD).mean()
    assert ssd["qpt_ms"] == pytest.approx(100 * 0.01 + 0.4096 / 0.56 + 5.0)


def test_qpt_scalars_broadcast_and_empty():
    cost = query_cost(np.array([1, 2]), 1_000_000, 0.0, TOY)
    np.testing.assert_allclose(cost.qpt_ms, [2.0 + 2.0, 4.0 + 2.0])
    empty = query_cost(np.zeros(0), np.zeros(0), np.zeros(0), TOY)
    assert len(empty) == 0 and empty.mean()["qpt_ms"] == 0.0


@pytest.mark.parametrize("args, match", [
    (([-1], [0], [0]), "seeks"),
    (([1], [np.nan], [0]), "bytes_read"),
    (([1, 2], [0, 0, 0], [0]), "has 2 values"),
    (([1], [0], [[1.0]]), "algorithm_ms"),
])
def test_qpt_rejects_bad_counts(args, match):
    with pytest.raises(ValueError, match=match):
        query_cost(*args, TOY)


def test_qpt_needs_a_profile():
    with pytest.raises(TypeError, match="DeviceProfile"):
        query_cost(1, 1, 1, "hdd")


def test_qpt_linear_scan_is_one_seek_and_all_bytes():
    scan = linear_scan_cost(60000, 50, 1, 2.0, HDD)
    assert len(scan) == 1
    assert scan.mean()["qpt_ms"] == pytest.approx(8.5 + 3.0 / 0.156 + 2.0)
    assert scan.mean()["seeks"] == 1.0 and scan.mean()["mb_read"] == pytest.approx(3.0)
    f32 = linear_scan_cost(1000, 16, 4, 0.25, TOY).mean()
    assert f32["qpt_ms"] == pytest.approx(2.0 + 0.064 / 0.5 + 0.25)
    with pytest.raises(ValueError, match="n must be"):
        linear_scan_cost(-1, 4, 4, 0.0, TOY)


# Read-ahead: patterns whose page-cache contents were checked against Linux 6.18 with mincore
# (read_ahead_kb = 8192, 4 KiB pages). B is aligned like the kernel experiment's offset.
B = 100_000
FILE = {"f": 262_144}
RA = 8 * 2**20


def _io(pages, readahead=RA, file_pages=FILE, page_size=4096):
    return readahead_io([("f", p, 1) for p in pages], file_pages, page_size_bytes=page_size,
                        readahead_bytes=readahead)


@pytest.mark.parametrize("pages, fetched, requests", [
    ([B], 1, 1),                                        # standalone random read
    ([B, B + 1], 5, 2),                                 # sequential miss: initial window of 4
    ([B, B + 1, B + 2], 20, 3),                         # marker hit: async window ramps x4
    (list(range(B, B + 6)), 80, 4),
    (list(range(B, B + 100)), 608, 6),
    ([B + 3, B + 2, B + 1], 3, 3),                      # backwards: no read-ahead
    (list(range(B + 100, B + 80, -1)) + [B + 101], 41, 21),   # history of 20 cached pages
    ([x for i in range(10) for x in (B + i, B + 50_000 + i)], 48, 10),  # two interleaved streams
])
def test_qpt_readahead_matches_kernel_patterns(pages, fetched, requests):
    io = _io(pages)
    assert io.bytes_read == fetched * 4096
    assert io.requests == requests


def test_qpt_readahead_off_reads_each_missed_page_once():
    io = _io([B, B + 1, B + 2, B + 1, B], readahead=0)
    assert (io.requests, io.sync_requests, io.bytes_read) == (3, 3, 3 * 4096)


def test_qpt_readahead_rereads_are_free_and_files_are_separate():
    io = readahead_io([("a", 5, 1), ("b", 5, 1), ("a", 5, 1), ("b", 5, 1)], {"a": 100, "b": 100},
                      page_size_bytes=4096, readahead_bytes=RA)
    assert (io.requests, io.bytes_read) == (2, 2 * 4096)


def test_qpt_readahead_large_pages_and_runs_in_os_pages():
    # An 8 KiB index page is two 4 KiB page-cache pages; a 3-page run is one 6-page request.
    io = readahead_io([("f", 10, 1)], {"f": 1000}, page_size_bytes=8192, readahead_bytes=0)
    assert (io.requests, io.bytes_read) == (1, 8192)
    io = readahead_io([("f", 10, 3)], {"f": 1000}, page_size_bytes=4096, readahead_bytes=0)
    assert (io.requests, io.bytes_read) == (1, 3 * 4096)


def test_qpt_readahead_window_stops_at_end_of_file():
    io = _io([8, 9], file_pages={"f": 11})
    assert io.bytes_read == 3 * 4096  # page 8, then the window [9, 13) cut at 11 pages


def test_qpt_readahead_rejects_reads_past_the_file():
    with pytest.raises(ValueError, match="has 10 pages"):
        readahead_io([("f", 10, 1)], {"f": 10}, page_size_bytes=4096, readahead_bytes=0)
    with pytest.raises(ValueError, match="readahead_bytes"):
        readahead_io([], {"f": 10}, page_size_bytes=4096, readahead_bytes=-1)
