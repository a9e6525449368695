"""Tests of lshdisk.vector_store: round trips at page boundaries, exact page-I/O counts,
and sq_distances against numpy."""

import json

import numpy as np
import pytest

from lshdisk.vector_store import VECTORS_KIND, VectorStore, VectorStoreWriter
from storage import IOCounter, PageFile

PAGE = 4096
PAYLOAD = PAGE - 8


def _data(n, d, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal((n, d)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, (n, d), endpoint=True).astype(dtype)


def _write(path, x, *, page_size=PAGE, chunks=None):
    w = VectorStoreWriter(path, d=x.shape[1], dtype=x.dtype, page_size=page_size)
    if chunks is None:
        w.append(x)
    else:
        start = 0
        for c in chunks:
            w.append(x[start:start + c])
            start += c
        w.append(x[start:])
    w.finish()
    return path


def _open(path, counter=None):
    pf = PageFile.open(path, counter=counter if counter is not None else IOCounter(),
                       kind=VECTORS_KIND)
    return VectorStore(pf)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int32", "float32"])
@pytest.mark.parametrize("extra", [-1, 0, 1])  # n = points_per_page - 1, exactly, + 1
def test_vector_store_round_trip_at_page_boundaries(tmp_path, dtype, extra):
    d = 10
    ppp = PAYLOAD // (d * np.dtype(dtype).itemsize)
    n = ppp + extra
    x = _data(n, d, dtype)
    path = _write(tmp_path / "v.pages", x)
    store = _open(path)
    assert (store.n, store.d, store.dtype, store.points_per_page) == (n, d, np.dtype(dtype), ppp)
    assert store.page_file.page_count == 1 + -(-n // ppp)
    np.testing.assert_array_equal(store.fetch(np.arange(n)), x)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, n, 200)  # any order, with repeats
    ids[:3] = [n - 1, 0, n - 1]
    got = store.fetch(ids)
    assert got.dtype == np.dtype(dtype) and got.shape == (200, d)
    np.testing.assert_array_equal(got, x[ids])
    store.page_file.close()


def test_vector_store_zero_rows(tmp_path):
    path = tmp_path / "empty.pages"
    w = VectorStoreWriter(path, d=4, dtype=np.float32, page_size=PAGE)
    w.append(np.empty((0, 4), dtype=np.float32))
    w.finish()
    counter = IOCounter()
    store = _open(path, counter)
    assert store.n == 0 and store.page_file.page_count == 1  # the header page only
    before = counter.snapshot()
    out = store.fetch(np.array([], dtype=np.int64))
    assert out.shape == (0, 4) and out.dtype == np.float32
    assert store.sq_distances(np.array([], dtype=np.int64), np.zeros(4)).shape == (0,)
    assert counter.snapshot().delta(before).page_reads == 0
    assert json.loads(store.page_file.app_header)["n"] == 0


def test_vector_store_chunking_does_not_change_the_file(tmp_path):
    x = _data(1000, 7, "float32")  # 146 points per page
    one = _write(tmp_path / "one.pages", x)
    many = _write(tmp_path / "many.pages", x, chunks=[1, 145, 146, 3, 0, 300, 1])
    assert one.read_bytes() == many.read_bytes()


@pytest.mark.parametrize("dtype,d,page_size", [("float32", 3000, 4096), ("uint8", 1000, 512),
                                               ("int32", 1023, 4096)])
def test_vector_store_points_spanning_several_pages(tmp_path, dtype, d, page_size):
    x = _data(7, d, dtype)
    row_bytes = d * np.dtype(dtype).itemsize
    per_point = -(-row_bytes // (page_size - 8))
    assert per_point >= 2
    path = _write(tmp_path / "wide.pages", x, page_size=page_size)
    counter = IOCounter()
    store = _open(path, counter)
    assert store.pages_per_point == per_point
    assert store.page_file.page_count == 1 + 7 * per_point
    ids = np.array([6, 0, 3, 3, 6])
    counter.reset_head()  # open() read the header page just before point 0's first page
    before = counter.snapshot()
    np.testing.assert_array_equal(store.fetch(ids), x[ids])
    io = counter.snapshot().delta(before)
    # Each requested point is one run of per_point pages; repeats are read again.
    assert io.page_reads == 5 * per_point
    assert io.bytes_read == 5 * per_point * page_size
    # Ascending order 0, 3, 3, 6, 6: the second read of 3 and of 6 each seek back.
    assert io.seeks == 5
    np.testing.assert_array_equal(store.fetch(np.arange(7)), x)


def test_vector_store_io_one_page(tmp_path):
    x = _data(2000, 10, "float32")  # 102 points per page
    counter = IOCounter()
    store = _open(_write(tmp_path / "v.pages", x), counter)
    counter.reset_head()
    before = counter.snapshot()
    ids = np.array([101, 0, 55, 55, 3])  # all on page 1
    np.testing.assert_array_equal(store.fetch(ids), x[ids])
    io = counter.snapshot().delta(before)
    assert (io.page_reads, io.seeks, io.bytes_read) == (1, 1, PAGE)


def test_vector_store_io_counts_hand_computed(tmp_path):
    x = _data(2000, 10, "float32")  # 102 points per page: point i is on page 1 + i // 102
    counter = IOCounter()
    store = _open(_write(tmp_path / "v.pages", x), counter)

    def io_of(ids):
        counter.reset_head()
        before = counter.snapshot()
        np.testing.assert_array_equal(store.fetch(np.array(ids)), x[ids])
        fetched = counter.snapshot().delta(before)
        counter.reset_head()
        before = counter.snapshot()
        q = np.linspace(-1, 1, 10)
        want = ((x[ids].astype(np.float64) - q) ** 2).sum(axis=1)
        np.testing.assert_allclose(store.sq_distances(np.array(ids, dtype=np.int64), q), want)
        assert counter.snapshot().delta(before) == fetched, "sq_distances reads as fetch does"
        return fetched

    io = io_of([102, 0, 150])  # pages 2, 1, 2 -> read 1 then 2: adjacent, one seek
    assert (io.page_reads, io.seeks) == (2, 1)
    io = io_of([500, 0])  # pages 5 and 1: not adjacent
    assert (io.page_reads, io.seeks) == (2, 2)
    io = io_of([0, 102, 204, 306, 1999])  # pages 1, 2, 3, 4 in a row, then 20
    assert (io.page_reads, io.seeks) == (5, 2)
    io = io_of([])
    assert (io.page_reads, io.seeks) == (0, 0)


def test_vector_store_sq_distances_match_numpy(tmp_path):
    for dtype in ("uint8", "int8", "int32", "float32"):
        x = _data(600, 13, dtype, seed=4)
        store = _open(_write(tmp_path / f"{dtype}.pages", x))
        q = np.random.default_rng(5).standard_normal(13) * 50
        ids = np.array([599, 0, 17, 17, 300])
        got = store.sq_distances(ids, q.astype(np.float64))
        want = ((x[ids].astype(np.float64) - q) ** 2).sum(axis=1)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12)
        store.page_file.close()


def test_vector_store_writer_checks_row_shape(tmp_path):
    w = VectorStoreWriter(tmp_path / "v.pages", d=4, dtype=np.uint8, page_size=PAGE)
    with pytest.raises(ValueError, match=r"\(c, 4\)"):
        w.append(np.zeros((3, 5), dtype=np.uint8))
    with pytest.raises(ValueError):
        w.append(np.zeros(4, dtype=np.uint8))
    w.abort()


def test_vector_store_writer_never_overwrites(tmp_path):
    path = tmp_path / "v.pages"
    path.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        VectorStoreWriter(path, d=4, dtype=np.uint8, page_size=PAGE)
    assert path.read_bytes() == b"keep"


def test_vector_store_point_filling_exactly_one_page(tmp_path):
    x = _data(5, 1022, "int32")  # 4088 B: one point per page, no spill into a second
    counter = IOCounter()
    store = _open(_write(tmp_path / "v.pages", x), counter)
    assert (store.points_per_page, store.pages_per_point) == (1, 1)
    assert store.page_file.page_count == 6
    counter.reset_head()
    before = counter.snapshot()
    np.testing.assert_array_equal(store.fetch([4, 2, 3]), x[[4, 2, 3]])
    io = counter.snapshot().delta(before)
    assert (io.page_reads, io.seeks) == (3, 1)  # pages 3, 4, 5 in ascending order
