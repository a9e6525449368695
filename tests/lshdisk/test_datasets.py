"""Tests of lshdisk.datasets: every reader round-trips, every bad input is a DatasetError."""

import os
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from lshdisk.datasets import (
    SUPPORTED_DTYPES,
    VectorSource,
    open_source,
    read_groundtruth,
    read_queries,
    write_groundtruth,
)
from lshdisk.errors import DatasetError

MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"
N, D = 23, 5
CHUNKS = (1, 7, N - 1, N, N + 1)


# --------------------------------------------------------------------------- writers


def write_vecs(path, x, value_dtype):
    x = np.asarray(x)
    rec = np.empty(x.shape[0], dtype=[("d", "<i4"), ("v", value_dtype, (x.shape[1],))])
    rec["d"] = x.shape[1]
    rec["v"] = x
    rec.tofile(path)
    return path


def write_bin(path, x, value_dtype):
    with open(path, "wb") as f:
        f.write(np.array(x.shape, dtype="<i4").tobytes())
        f.write(np.ascontiguousarray(x, dtype=value_dtype).tobytes())
    return path


def data(dtype, n=N, d=D, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal((n, d)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), (n, d)).astype(dtype)


def make(kind, tmp_path):
    """Write dataset ``kind``; return (source, open kwargs, expected rows, format, path)."""
    if kind in ("fvecs", "bvecs", "ivecs"):
        dt = {"fvecs": "float32", "bvecs": "uint8", "ivecs": "int32"}[kind]
        x = data(dt)
        p = write_vecs(tmp_path / f"x.{kind}", x, {"float32": "<f4", "uint8": "u1",
                                                   "int32": "<i4"}[dt])
        return str(p), {}, x, kind, str(p)
    if kind in ("fbin", "u8bin", "i8bin"):
        dt = {"fbin": "float32", "u8bin": "uint8", "i8bin": "int8"}[kind]
        x = data(dt)
        p = write_bin(tmp_path / f"x.{kind}", x, dt)
        return p, {}, x, kind, str(p)
    if kind.startswith("raw-"):
        dt = kind[4:]
        x = data(dt)
        p = tmp_path / "x.ds"
        x.astype(np.dtype(dt).newbyteorder("<")).tofile(p)
        return p, {"dtype": dt, "dim": D}, x, "raw", str(p)
    if kind == "npy":
        x = data("float32")
        np.save(tmp_path / "x.npy", x)
        return tmp_path / "x.npy", {}, x, "npy", str(tmp_path / "x.npy")
    if kind.startswith("hdf5"):
        train, test = data("float32", seed=1), data("float32", n=N, seed=2)
        p = tmp_path / "x.hdf5"
        with h5py.File(p, "w") as f:
            f["train"], f["test"] = train, test
        spec = {"hdf5-train": f"{p}:train", "hdf5-test": f"{p}:test", "hdf5": str(p)}[kind]
        return spec, {}, (test if kind == "hdf5-test" else train), "hdf5", str(p)
    if kind == "array":
        x = data("uint16")
        return x, {}, x, "array", None
    if kind == "memmap":
        x = data("int8")
        mm = np.memmap(tmp_path / "m.bin", dtype="int8", mode="w+", shape=x.shape)
        mm[:] = x
        mm.flush()
        ro = np.memmap(tmp_path / "m.bin", dtype="int8", mode="r", shape=x.shape)
        return ro, {}, x, "array", None
    if kind == "list":
        x = data("float32").astype(np.float64)
        return x.tolist(), {}, x.astype(np.float32), "array", None
    raise AssertionError(kind)


KINDS = ("fvecs", "bvecs", "ivecs", "fbin", "u8bin", "i8bin", "raw-uint8", "raw-uint16",
         "raw-int32", "raw-float32", "npy", "hdf5-train", "hdf5-test", "hdf5", "array",
         "memmap", "list")


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("max_rows", CHUNKS)
@pytest.mark.parametrize("kind", KINDS)
def test_reader_round_trips_in_chunks(kind, max_rows, tmp_path):
    source, kwargs, expected, fmt, path = make(kind, tmp_path)
    with open_source(source, **kwargs) as src:
        assert (src.n, src.d, src.format, src.path) == (N, D, fmt, path)
        assert src.dtype == expected.dtype and src.dtype.name in SUPPORTED_DTYPES
        starts, blocks = [], []
        for start, block in src.iter_chunks(max_rows):
            assert 1 <= block.shape[0] <= max_rows and block.shape[1] == D
            assert block.flags.c_contiguous and block.dtype == src.dtype
            starts.append(start)
            blocks.append(block)
        assert starts == list(range(0, N, max_rows))
        np.testing.assert_array_equal(np.concatenate(blocks), expected)


@pytest.mark.parametrize("kind", ("fvecs", "u8bin", "raw-uint16", "npy", "hdf5-test", "memmap"))
def test_read_rows_returns_any_range(kind, tmp_path):
    source, kwargs, expected, _, _ = make(kind, tmp_path)
    with open_source(source, **kwargs) as src:
        for start, stop in ((0, 1), (3, 11), (N - 1, N), (0, N)):
            np.testing.assert_array_equal(src.read_rows(start, stop), expected[start:stop])
        assert src.read_rows(4, 4).shape == (0, D)
        with pytest.raises(ValueError, match="out of range"):
            src.read_rows(5, N + 1)


def test_float64_npy_is_read_as_float32(tmp_path):
    x = np.random.default_rng(3).standard_normal((9, 4))
    np.save(tmp_path / "f64.npy", x)
    with open_source(tmp_path / "f64.npy") as src:
        assert src.dtype == np.float32
        block = src.read_rows(0, 9)
    assert block.dtype == np.float32
    np.testing.assert_array_equal(block, x.astype(np.float32))


def test_fortran_and_big_endian_arrays_are_read_in_row_order():
    x = data("float32", n=8, d=3)
    with open_source(np.asfortranarray(x)) as src:
        np.testing.assert_array_equal(np.concatenate([b for _, b in src.iter_chunks(3)]), x)
    with open_source(x.astype(">f4")) as src:
        assert src.dtype == np.float32
        np.testing.assert_array_equal(src.read_rows(0, 8), x)


def test_int64_array_is_narrowed_to_int32_when_it_fits():
    x = [[1, 2, 3], [4, 5, 6]]
    with open_source(x) as src:
        assert src.dtype == np.int32
        np.testing.assert_array_equal(src.read_rows(0, 2), x)
    with open_source(np.array([[1, 2], [2**40, 0]])) as src, pytest.raises(DatasetError,
                                                                           match="int32"):
        src.read_rows(0, 2)


class _LazyRows:
    """Array-like that records each slice taken and refuses conversion as a whole."""

    def __init__(self, x):
        self._x, self.shape, self.dtype, self.slices = x, x.shape, x.dtype, []

    def __getitem__(self, key):
        self.slices.append((key.start, key.stop))
        return self._x[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was converted")


def test_array_like_with_shape_and_dtype_is_sliced_lazily():
    x = data("float32", n=50)
    lazy = _LazyRows(x)
    with open_source(lazy) as src:
        got = np.concatenate([b for _, b in src.iter_chunks(8)])
        assert lazy.slices == [(s, min(s + 8, 50)) for s in range(0, 50, 8)]
        assert len(src.fingerprint()) == 64
    np.testing.assert_array_equal(got, x)


def test_memmap_source_keeps_the_memmap_and_blocks_are_private_copies(tmp_path):
    source, _, expected, _, _ = make("memmap", tmp_path)
    with open_source(source) as src:
        block = src.read_rows(0, 4)
        assert not isinstance(block, np.memmap) and block.flags.writeable
        assert not np.shares_memory(block, source)
        block[:] = 0
        np.testing.assert_array_equal(src.read_rows(0, 4), expected[:4])


def test_concurrent_reads_from_threads_agree(tmp_path):
    x = data("float32", n=2000, d=16)
    path = write_vecs(tmp_path / "t.fvecs", x, "<f4")
    errors = []
    with open_source(path) as src:
        def work(seed):
            rng = np.random.default_rng(seed)
            for _ in range(200):
                a = int(rng.integers(0, 1990))
                if not np.array_equal(src.read_rows(a, a + 10), x[a : a + 10]):
                    errors.append(a)

        threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_closed_source_refuses_reads(tmp_path):
    source, kwargs, _, _, _ = make("fbin", tmp_path)
    src = open_source(source, **kwargs)
    src.close()
    src.close()
    assert "closed" in repr(src)
    with pytest.raises(ValueError, match="closed"):
        src.read_rows(0, 1)
    with pytest.raises(ValueError, match="closed"):
        src.iter_chunks(4)
    with pytest.raises(ValueError, match="max_rows"):
        open_source(source).iter_chunks(0)


def test_open_source_refuses_an_open_source(tmp_path):
    with open_source(data("uint8")) as src, pytest.raises(TypeError):
        open_source(src)
    assert isinstance(src, VectorSource)


# --------------------------------------------------------------------------- fingerprint


@pytest.mark.parametrize("kind", ("fvecs", "u8bin", "raw-int32", "npy", "hdf5-train"))
def test_fingerprint_is_stable_and_sees_a_changed_byte(kind, tmp_path):
    source, kwargs, _, _, path = make(kind, tmp_path)
    with open_source(source, **kwargs) as src:
        first = src.fingerprint()
        assert src.fingerprint() == first and len(first) == 64
    with open_source(source, **kwargs) as src:
        assert src.fingerprint() == first
    if kind == "hdf5-train":
        with h5py.File(path, "r+") as f:
            f["train"][3, 2] += 1
    else:
        raw = bytearray(Path(path).read_bytes())
        raw[-3] ^= 0x40
        Path(path).write_bytes(bytes(raw))
    with open_source(source, **kwargs) as src:
        assert src.fingerprint() != first


def test_fingerprint_of_a_large_file_reads_windows_and_sees_changes(tmp_path):
    path = tmp_path / "big.u8"
    payload = np.random.default_rng(4).integers(0, 256, 4 << 20, dtype=np.uint8)
    payload.tofile(path)
    with open_source(path, dtype="uint8", dim=64) as src:
        first = src.fingerprint()
    payload[0] ^= 1
    payload.tofile(path)
    with open_source(path, dtype="uint8", dim=64) as src:
        assert src.fingerprint() != first
    with open_source(path, dtype="uint8", dim=32) as src:  # same bytes, other shape
        assert src.fingerprint() != first


def test_fingerprint_of_arrays_and_hdf5_names(tmp_path):
    x = data("float32", n=5000, d=8)
    fp = open_source(x).fingerprint()
    assert open_source(x.copy()).fingerprint() == fp
    y = x.copy()
    y[0, 0] += 1
    assert open_source(y).fingerprint() != fp
    a, _, _, _, _ = make("hdf5-train", tmp_path)
    b, _, _, _, _ = make("hdf5-test", tmp_path)
    assert open_source(a).fingerprint() != open_source(b).fingerprint()


# --------------------------------------------------------------------------- errors


def _corrupt(kind, tmp_path):
    x = data("float32", n=10, d=3)
    if kind == "missing":
        return tmp_path / "nope.fvecs", {}
    if kind == "empty":
        (tmp_path / "e.fvecs").write_bytes(b"")
        return tmp_path / "e.fvecs", {}
    if kind == "fvecs-truncated":
        p = write_vecs(tmp_path / "t.fvecs", x, "<f4")
        p.write_bytes(p.read_bytes()[:-3])
        return p, {}
    if kind == "fvecs-short":
        (tmp_path / "s.fvecs").write_bytes(b"\x03\x00")
        return tmp_path / "s.fvecs", {}
    if kind == "fvecs-dim0":
        (tmp_path / "z.fvecs").write_bytes(b"\x00" * 8)
        return tmp_path / "z.fvecs", {}
    if kind == "fvecs-last-row":
        p = write_vecs(tmp_path / "l.fvecs", x, "<f4")
        raw = bytearray(p.read_bytes())
        raw[9 * 16] = 4
        p.write_bytes(bytes(raw))
        return p, {}
    if kind == "fbin-truncated":
        p = write_bin(tmp_path / "t.fbin", x, "<f4")
        p.write_bytes(p.read_bytes()[:-5])
        return p, {}
    if kind == "fbin-header":
        p = write_bin(tmp_path / "h.fbin", x, "<f4")
        raw = bytearray(p.read_bytes())
        raw[0] = 11
        p.write_bytes(bytes(raw))
        return p, {}
    if kind == "fbin-n0":
        p = tmp_path / "n0.fbin"
        p.write_bytes(np.array([0, 3], "<i4").tobytes())
        return p, {}
    if kind == "fbin-d0":
        p = tmp_path / "d0.fbin"
        p.write_bytes(np.array([4, 0], "<i4").tobytes() + b"\0" * 4)
        return p, {}
    if kind == "fbin-short":
        (tmp_path / "s.fbin").write_bytes(b"\x01\x00\x00\x00\x03")
        return tmp_path / "s.fbin", {}
    if kind == "raw-no-dtype":
        x.tofile(tmp_path / "r.ds")
        return tmp_path / "r.ds", {}
    if kind == "raw-truncated":
        x.tofile(tmp_path / "r.ds")
        return tmp_path / "r.ds", {"dtype": "float32", "dim": 7}
    if kind == "raw-dim0":
        x.tofile(tmp_path / "r.ds")
        return tmp_path / "r.ds", {"dtype": "float32", "dim": 0}
    if kind == "raw-complex":
        x.tofile(tmp_path / "r.ds")
        return tmp_path / "r.ds", {"dtype": "complex64", "dim": 3}
    if kind == "npy-complex":
        np.save(tmp_path / "c.npy", x.astype(np.complex64))
        return tmp_path / "c.npy", {}
    if kind == "npy-object":
        np.save(tmp_path / "o.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
        return tmp_path / "o.npy", {}
    if kind == "npy-truncated":
        np.save(tmp_path / "t.npy", x)
        p = tmp_path / "t.npy"
        p.write_bytes(p.read_bytes()[:-7])
        return p, {}
    if kind == "npy-1d":
        np.save(tmp_path / "v.npy", x[0])
        return tmp_path / "v.npy", {}
    if kind == "hdf5-no-name":
        with h5py.File(tmp_path / "a.hdf5", "w") as f:
            f["train"] = x
        return f"{tmp_path / 'a.hdf5'}:query", {}
    if kind == "not-hdf5":
        (tmp_path / "b.hdf5").write_bytes(b"garbage!" * 10)
        return tmp_path / "b.hdf5", {}
    if kind == "array-1d":
        return x[0], {}
    if kind == "array-dim0":
        return np.zeros((4, 0), np.float32), {}
    if kind == "array-n0":
        return np.zeros((0, 4), np.float32), {}
    if kind == "array-object":
        return np.array([[1, "a"], [2, "b"]], dtype=object), {}
    if kind == "array-complex":
        return x.astype(np.complex128), {}
    if kind == "array-ragged":
        return [[1.0, 2.0], [3.0]], {}
    if kind == "wrong-dim-arg":
        return write_vecs(tmp_path / "w.fvecs", x, "<f4"), {"dim": 4}
    if kind == "wrong-dtype-arg":
        return write_vecs(tmp_path / "w.fvecs", x, "<f4"), {"dtype": "uint8"}
    if kind == "unknown-format":
        return write_vecs(tmp_path / "w.fvecs", x, "<f4"), {"format": "tiff"}
    raise AssertionError(kind)


ERRORS = {
    "missing": "does not exist",
    "empty": "empty",
    "fvecs-truncated": "left over",
    "fvecs-short": "truncated",
    "fvecs-dim0": "dimension 0",
    "fvecs-last-row": "not a uniform",
    "fbin-truncated": "left over",
    "fbin-header": "inconsistent",
    "fbin-n0": "empty",
    "fbin-d0": "dimension 0",
    "fbin-short": "truncated",
    "raw-no-dtype": "--dtype and --dim",
    "raw-truncated": "left over",
    "raw-dim0": "dimension 0",
    "raw-complex": "complex64",
    "npy-complex": "complex64",
    "npy-object": "Python objects",
    "npy-truncated": "truncated or not numeric",
    "npy-1d": "1-D",
    "hdf5-no-name": "no dataset 'query'",
    "not-hdf5": "not a readable HDF5",
    "array-1d": "1-D",
    "array-dim0": "dimension 0",
    "array-n0": "empty",
    "array-object": "object",
    "array-complex": "complex128",
    "array-ragged": "rectangular",
    "wrong-dim-arg": "dim=4",
    "wrong-dtype-arg": "dtype='uint8'",
    "unknown-format": "unknown dataset format",
}


@pytest.mark.parametrize("kind", sorted(ERRORS))
def test_bad_dataset_raises_dataset_error(kind, tmp_path):
    source, kwargs = _corrupt(kind, tmp_path)
    with pytest.raises(DatasetError, match=ERRORS[kind]) as info:
        open_source(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    if isinstance(source, (str, os.PathLike)):
        assert str(source).split(":query")[0] in message


def test_non_uniform_vecs_row_is_named_while_streaming(tmp_path):
    x = data("float32", n=10, d=3)
    p = write_vecs(tmp_path / "u.fvecs", x, "<f4")
    raw = bytearray(p.read_bytes())
    raw[5 * 16] = 4  # row 5 declares d = 4; the size is still a whole number of records
    p.write_bytes(bytes(raw))
    with open_source(p) as src, pytest.raises(DatasetError,
                                              match="row 5 of .*declares dimension 4, expected 3"):
        list(src.iter_chunks(4))


@pytest.mark.parametrize("bad", (np.nan, np.inf, -np.inf))
def test_non_finite_row_is_named_by_its_global_index(bad, tmp_path):
    x = data("float32", n=30, d=4)
    x[17, 2] = bad
    p = write_bin(tmp_path / "nan.fbin", x, "<f4")
    with open_source(p) as src:
        src.read_rows(0, 17)
        with pytest.raises(DatasetError, match=r"row 17 of .*nan\.fbin holds NaN or Inf"):
            list(src.iter_chunks(5))
    with open_source(x) as src, pytest.raises(DatasetError, match="row 17 of the array"):
        src.read_rows(10, 20)


def test_float64_overflowing_float32_is_caught():
    x = np.zeros((3, 2))
    x[1, 1] = 1e39
    with open_source(x) as src, pytest.raises(DatasetError, match="row 1"):
        src.read_rows(0, 3)


# --------------------------------------------------------------------------- queries


def test_read_queries_shapes_and_dtypes(tmp_path):
    one = read_queries([1, 2, 3])
    assert one.shape == (1, 3) and one.dtype == np.float32
    x = data("uint8", n=6, d=4)
    x.tofile(tmp_path / "q.raw")
    q = read_queries(tmp_path / "q.raw", dtype="uint8", dim=4, expected_dim=4)
    assert q.dtype == np.float32 and q.flags.c_contiguous
    np.testing.assert_array_equal(q, x.astype(np.float32))
    with open_source(x) as src:
        np.testing.assert_array_equal(read_queries(src), q)
        assert src.read_rows(0, 1).shape == (1, 4)  # left open


def test_read_queries_checks_dimension_and_finiteness():
    expected = ("queries have dimension 49 but the index has d = 50; pass queries of "
                "dimension 50")
    with pytest.raises(DatasetError, match=expected):
        read_queries(np.zeros((2, 49), np.float32), expected_dim=50)
    with pytest.raises(DatasetError, match="row 1 of the queries"):
        read_queries([[0.0, 1.0], [np.nan, 0.0]])
    with pytest.raises(DatasetError, match="empty"):
        read_queries(np.zeros((0, 3)))


# --------------------------------------------------------------------------- ground truth


def test_qalsh_groundtruth_round_trips(tmp_path):
    rng = np.random.default_rng(5)
    dist = np.sort(rng.random((7, 4)).astype(np.float32), axis=1)
    ids = rng.integers(-1, 1000, (7, 4))
    path = tmp_path / "x.gt"
    write_groundtruth(path, dist, ids)
    assert path.stat().st_size == 7 * 4 * 8
    got_d, got_i = read_groundtruth(path, n_queries=7)
    assert got_d.dtype == np.float32 and got_i.dtype == np.int64
    np.testing.assert_array_equal(got_d, dist)
    np.testing.assert_array_equal(got_i, ids)
    write_groundtruth(path, dist[:2], ids[:2])  # replaces atomically, leaves no temp file
    assert read_groundtruth(path, n_queries=2)[1].shape == (2, 4)
    assert sorted(os.listdir(tmp_path)) == ["x.gt"]


def test_ivecs_npy_and_hdf5_groundtruth(tmp_path):
    ids = np.arange(12).reshape(3, 4)[:, ::-1]
    write_groundtruth(tmp_path / "g.ivecs", None, ids, format="ivecs")
    dist, got = read_groundtruth(tmp_path / "g.ivecs", format="ivecs", n_queries=3)
    assert dist is None
    np.testing.assert_array_equal(got, ids)
    np.save(tmp_path / "g.npy", ids.astype(np.int32))
    assert read_groundtruth(tmp_path / "g.npy", format=None)[1].dtype == np.int64
    with h5py.File(tmp_path / "g.hdf5", "w") as f:
        f["neighbors"] = ids
        f["distances"] = ids * 0.5
    dist, got = read_groundtruth(tmp_path / "g.hdf5", format="hdf5")
    np.testing.assert_array_equal(got, ids)
    np.testing.assert_array_equal(dist, (ids * 0.5).astype(np.float32))
    with h5py.File(tmp_path / "n.hdf5", "w") as f:
        f["neighbors"] = ids
    assert read_groundtruth(tmp_path / "n.hdf5", format="hdf5")[0] is None


GT_ERRORS = {
    "no-n-queries": ({}, "pass n_queries"),
    "bad-size": ({"n_queries": 3}, "left over"),
    "ivecs-mismatch": ({"format": "ivecs", "n_queries": 5}, "n_queries = 5"),
    "npy-float": ({"format": "npy"}, "must be integers"),
    "hdf5-no-neighbors": ({"format": "hdf5"}, "no 'neighbors'"),
    "missing": ({"n_queries": 1}, "does not exist"),
    "unknown": ({"format": "csv"}, "unknown ground-truth format"),
}


@pytest.mark.parametrize("kind", sorted(GT_ERRORS))
def test_bad_groundtruth_raises_dataset_error(kind, tmp_path):
    kwargs, match = GT_ERRORS[kind]
    path = tmp_path / "gt"
    if kind in ("no-n-queries", "bad-size", "unknown"):
        path.write_bytes(b"\0" * 80)
    elif kind == "ivecs-mismatch":
        write_groundtruth(path, None, np.zeros((2, 3), int), format="ivecs")
    elif kind == "npy-float":
        path = tmp_path / "gt.npy"
        np.save(path, np.zeros((2, 3)))
    elif kind == "hdf5-no-neighbors":
        with h5py.File(path, "w") as f:
            f["train"] = np.zeros((2, 3))
    with pytest.raises(DatasetError, match=match):
        read_groundtruth(path, **kwargs)


def test_write_groundtruth_refuses_bad_input(tmp_path):
    with pytest.raises(DatasetError, match="pass distances"):
        write_groundtruth(tmp_path / "a.gt", None, np.zeros((2, 2), int))
    with pytest.raises(DatasetError, match="same shape"):
        write_groundtruth(tmp_path / "a.gt", np.zeros((2, 3)), np.zeros((2, 2), int))
    with pytest.raises(DatasetError, match="int32"):
        write_groundtruth(tmp_path / "a.gt", np.zeros((1, 1)), np.array([[2**40]]))
    with pytest.raises(DatasetError, match="'npy'"):
        write_groundtruth(tmp_path / "a.npy", None, np.zeros((1, 1), int), format="npy")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- Mnist


@pytest.mark.skipif(not MNIST.is_dir(), reason=f"the Mnist test data is not at {MNIST}")
def test_mnist_files_read_as_documented():
    with open_source(MNIST / "Mnist.ds", dtype="uint8", dim=50) as src:
        assert (src.n, src.d, src.dtype, src.format) == (60000, 50, np.uint8, "raw")
        first = src.read_rows(0, 2)
        last = src.read_rows(59999, 60000)
        fp = src.fingerprint()
    flat = np.fromfile(MNIST / "Mnist.ds", dtype=np.uint8)
    np.testing.assert_array_equal(first.ravel(), flat[:100])
    np.testing.assert_array_equal(last.ravel(), flat[-50:])
    with open_source(str(MNIST / "Mnist.ds"), format="raw", dtype="uint8", dim=50) as src:
        assert src.fingerprint() == fp
    q = read_queries(MNIST / "Mnist.q", dtype="uint8", dim=50, expected_dim=50)
    assert q.shape == (100, 50) and q.dtype == np.float32 and q.max() <= 255
    dist, ids = read_groundtruth(MNIST / "Mnist.gt2.0", n_queries=100)
    assert dist.shape == ids.shape == (100, 100)
    assert (np.diff(dist, axis=1) >= 0).all() and ids.min() >= 0 and ids.max() < 60000
    with pytest.raises(DatasetError, match="--dtype and --dim"):
        open_source(MNIST / "Mnist.ds")
