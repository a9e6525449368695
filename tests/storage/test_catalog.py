"""Tests of storage.catalog: the LMDB catalog of an index's metadata."""

import hashlib
import json
import os
import stat
import zlib

import lmdb
import numpy as np
import pytest

from storage import catalog as catalog_module
from storage.catalog import CATALOG_FORMAT, CATALOG_VERSION, Catalog
from storage.errors import (
    ClosedFileError,
    NotACatalogError,
    ReadOnlyError,
    StorageError,
    UnsupportedVersionError,
)

PARAMS = {"w": 2.719, "m": 60, "l": 37, "name": "qalsh", "nested": {"b": [1, 2], "a": None}}


@pytest.fixture
def cat_dir(tmp_path):
    return tmp_path / "catalog"


def write_format_record(path, record):
    """Overwrite the format record with raw LMDB, as another program version would."""
    env = lmdb.open(str(path), subdir=True)
    with env.begin(write=True) as txn:
        if record is None:
            txn.delete(catalog_module._FORMAT_KEY)
        else:
            txn.put(catalog_module._FORMAT_KEY, json.dumps(record).encode())
    env.close()


def write_raw_format_record(path, raw):
    env = lmdb.open(str(path), subdir=True)
    with env.begin(write=True) as txn:
        txn.put(catalog_module._FORMAT_KEY, raw)
    env.close()


def all_raw_items(path):
    env = lmdb.open(str(path), subdir=True, readonly=True, lock=False)
    with env.begin() as txn:
        items = dict(txn.cursor().iternext())
    env.close()
    return items


def dir_snapshot(path):
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).digest())
        for p in sorted(path.iterdir())
    }


def test_catalog_round_trips_json_and_arrays_across_reopen(cat_dir):
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    with Catalog.create(cat_dir) as cat:
        assert (cat.readonly, cat.version) == (False, CATALOG_VERSION)
        cat.put_json("params", PARAMS)
        cat.put_array("vectors", vectors)
        assert cat.get_json("params") == PARAMS
        assert cat.names() == ["params", "vectors"]
    with Catalog.open(cat_dir, readonly=False) as cat:
        cat.put_json("extra", [1, "two", 3.5, True])
        assert cat.names() == ["extra", "params", "vectors"]
    with Catalog.open(cat_dir) as cat:
        assert cat.readonly and cat.version == CATALOG_VERSION
        assert cat.get_json("params") == PARAMS
        assert cat.get_json("extra") == [1, "two", 3.5, True]
        np.testing.assert_array_equal(cat.get_array("vectors"), vectors)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(256, dtype=np.uint8),
        np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4),
        np.array([-(2**62), 0, 2**62], dtype=np.int64),
        np.array([[1, 2], [3, 4]], dtype=">i8"),  # big-endian input
        np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2],  # not contiguous
        np.array([True, False, True]),
        np.array(7.5, dtype=np.float32),  # 0-d
        np.empty((0, 5), dtype=np.float32),
    ],
    ids=["uint8", "float32-3d", "int64", "int64-big-endian", "strided", "bool", "0d", "empty"],
)
def test_catalog_array_keeps_dtype_shape_and_values(cat_dir, array):
    with Catalog.create(cat_dir) as cat:
        cat.put_array("a", array)
    with Catalog.open(cat_dir) as cat:
        back = cat.get_array("a")
    assert back.shape == array.shape
    assert back.dtype == array.dtype.newbyteorder("=")
    assert back.dtype.isnative and back.flags.c_contiguous and back.flags.writeable
    np.testing.assert_array_equal(back, array)


def test_catalog_array_value_is_header_and_little_endian_bytes(cat_dir):
    array = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32)
    with Catalog.create(cat_dir) as cat:
        cat.put_array("x", array)
    stored = all_raw_items(cat_dir)[b"a/x"]
    raw = stored[4:]  # after the checksum of key + body
    assert stored[:4] == zlib.crc32(b"a/x" + raw).to_bytes(4, "little")
    (header_len,) = np.frombuffer(raw[:4], dtype="<u4")
    header = json.loads(raw[4 : 4 + header_len])
    assert header == {"dtype": "<i4", "shape": [2, 3]}
    assert raw[4 + header_len :] == array.astype("<i4").tobytes(order="C")


def test_catalog_map_grows_past_its_initial_size(cat_dir):
    big = np.random.default_rng(0).standard_normal((400, 1000)).astype(np.float32)
    with Catalog.create(cat_dir) as cat:
        start = cat._env.info()["map_size"]
        cat.put_array("projections", big)
        for i in range(3):
            cat.put_array(f"copy{i}", big[i * 100 :])
        assert cat._env.info()["map_size"] > start >= big.nbytes // 2
    with Catalog.open(cat_dir) as cat:
        np.testing.assert_array_equal(cat.get_array("projections"), big)
        np.testing.assert_array_equal(cat.get_array("copy2"), big[200:])


def test_catalog_same_puts_give_identical_bytes(tmp_path):
    reordered = dict(reversed(list(PARAMS.items())))  # equal dict, other insertion order
    for name, params in (("one", PARAMS), ("two", reordered)):
        with Catalog.create(tmp_path / name) as cat:
            cat.put_json("params", params)
            cat.put_array("v", np.arange(6, dtype=np.float32))
    one, two = all_raw_items(tmp_path / "one"), all_raw_items(tmp_path / "two")
    assert one == two
    body = json.dumps(PARAMS, sort_keys=True, separators=(",", ":")).encode()
    assert one[b"j/params"] == zlib.crc32(b"j/params" + body).to_bytes(4, "little") + body


def test_catalog_put_replaces_the_other_kind(cat_dir):
    with Catalog.create(cat_dir) as cat:
        cat.put_json("x", {"a": 1})
        cat.put_array("x", np.zeros(3))
        assert cat.names() == ["x"]
        with pytest.raises(TypeError, match="get_array"):
            cat.get_json("x")
        cat.put_json("x", [1])
        with pytest.raises(TypeError, match="get_json"):
            cat.get_array("x")
        assert cat.get_json("x") == [1]


def test_catalog_missing_and_bad_names_and_values(cat_dir):
    with Catalog.create(cat_dir) as cat:
        with pytest.raises(KeyError, match="nope"):
            cat.get_json("nope")
        with pytest.raises(KeyError, match="absent"):
            cat.get_array("absent")
        with pytest.raises(ValueError, match="name"):
            cat.put_json("", 1)
        with pytest.raises(ValueError, match="name"):
            cat.put_json("x" * 501, 1)
        with pytest.raises(TypeError, match="name must be a str"):
            cat.put_json(b"bytes", 1)
        with pytest.raises(ValueError):
            cat.put_json("nan", float("nan"))
        with pytest.raises(TypeError, match="dtype"):
            cat.put_array("objects", np.array([object()]))
        assert cat.names() == []


def test_catalog_create_refuses_an_existing_environment(cat_dir):
    Catalog.create(cat_dir).close()
    with pytest.raises(FileExistsError, match="already holds"):
        Catalog.create(cat_dir)
    file_path = cat_dir.parent / "a_file"
    file_path.write_text("x")
    with pytest.raises(FileExistsError, match="file"):
        Catalog.create(file_path)


def test_catalog_create_in_existing_empty_directory(tmp_path):
    with Catalog.create(tmp_path) as cat:
        cat.put_json("k", 1)
    with Catalog.open(tmp_path) as cat:
        assert cat.get_json("k") == 1


def test_catalog_open_rejects_what_is_not_a_catalog(tmp_path):
    cases = {"missing": tmp_path / "missing", "empty": tmp_path / "empty"}
    cases["empty"].mkdir()
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "data.mdb").write_bytes(b"not an lmdb file" * 1000)
    cases["garbage"] = garbage
    empty_file = tmp_path / "empty_file"
    empty_file.mkdir()
    (empty_file / "data.mdb").write_bytes(b"")
    cases["empty_file"] = empty_file
    plain_lmdb = tmp_path / "plain_lmdb"
    env = lmdb.open(str(plain_lmdb), subdir=True)
    with env.begin(write=True) as txn:
        txn.put(b"key", b"value")
    env.close()
    cases["plain_lmdb"] = plain_lmdb
    other_format = tmp_path / "other_format"
    Catalog.create(other_format).close()
    write_format_record(other_format, {"format": "something-else", "version": [1, 0]})
    cases["other_format"] = other_format
    for label, path in cases.items():
        for readonly in (True, False):
            with pytest.raises(NotACatalogError, match="is not a catalog") as info:
                Catalog.open(path, readonly=readonly)
            assert isinstance(info.value, StorageError) and isinstance(info.value, ValueError)
            assert "\n" not in str(info.value), label
    for label in ("empty", "garbage", "empty_file"):  # a failed open writes nothing
        assert sorted(p.name for p in cases[label].iterdir()) == (
            [] if label == "empty" else ["data.mdb"]
        )
    assert (empty_file / "data.mdb").stat().st_size == 0


def test_catalog_unknown_major_version_is_refused(cat_dir):
    Catalog.create(cat_dir).close()
    for version in ([CATALOG_VERSION[0] + 1, 0], [1, 0]):  # a later major; 1.0 had no checksums
        write_format_record(cat_dir, {"format": CATALOG_FORMAT, "version": version})
        for readonly in (True, False):
            with pytest.raises(UnsupportedVersionError, match=f"{version[0]}.0"):
                Catalog.open(cat_dir, readonly=readonly)


def test_catalog_newer_minor_version_opens_read_only(cat_dir):
    with Catalog.create(cat_dir) as cat:
        cat.put_json("params", PARAMS)
    newer = (CATALOG_VERSION[0], CATALOG_VERSION[1] + 7)
    write_raw_format_record(cat_dir, catalog_module.format_record(newer))
    with Catalog.open(cat_dir, readonly=False) as cat:
        assert cat.readonly and cat.version == newer
        assert cat.get_json("params") == PARAMS
        with pytest.raises(ReadOnlyError):
            cat.put_json("params", {})


def test_catalog_read_only_refuses_writes(cat_dir):
    Catalog.create(cat_dir).close()
    with Catalog.open(cat_dir) as cat:
        with pytest.raises(ReadOnlyError, match="read-only"):
            cat.put_json("a", 1)
        with pytest.raises(ReadOnlyError):
            cat.put_array("a", np.zeros(2))
        assert isinstance(ReadOnlyError(), PermissionError)


def test_catalog_use_after_close_raises(cat_dir):
    cat = Catalog.create(cat_dir)
    cat.put_json("a", 1)
    cat.close()
    cat.close()  # idempotent
    for call in (
        lambda: cat.get_json("a"),
        lambda: cat.get_array("a"),
        lambda: cat.put_json("a", 2),
        lambda: cat.put_array("a", np.zeros(1)),
        cat.names,
    ):
        with pytest.raises(ClosedFileError, match="closed"):
            call()


def test_catalog_read_only_open_creates_and_modifies_no_file(tmp_path):
    source = tmp_path / "source"
    with Catalog.create(source) as cat:
        cat.put_json("params", PARAMS)
        cat.put_array("v", np.arange(10, dtype=np.int64))
    shipped = tmp_path / "shipped"  # as copied elsewhere: data.mdb only, no lock.mdb
    shipped.mkdir()
    (shipped / "data.mdb").write_bytes((source / "data.mdb").read_bytes())
    before = dir_snapshot(shipped)
    with Catalog.open(shipped) as cat:
        assert cat.get_json("params") == PARAMS
        np.testing.assert_array_equal(cat.get_array("v"), np.arange(10))
        assert cat.names() == ["params", "v"]
    assert dir_snapshot(shipped) == before
    assert list(before) == ["data.mdb"]


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root ignores directory permissions",
)
def test_catalog_read_only_open_works_in_a_read_only_directory(cat_dir):
    with Catalog.create(cat_dir) as cat:
        cat.put_json("params", PARAMS)
    os.remove(cat_dir / "lock.mdb")
    mode = stat.S_IMODE(os.stat(cat_dir).st_mode)
    os.chmod(cat_dir, 0o555)
    try:
        with Catalog.open(cat_dir) as cat:
            assert cat.get_json("params") == PARAMS
    finally:
        os.chmod(cat_dir, mode)


def test_catalog_put_many_writes_all_or_nothing(cat_dir):
    with Catalog.create(cat_dir) as cat:
        cat.put_json("keep", {"a": 1})
        cat.put_many(documents={"doc": {"b": [1, 2]}}, arrays={"arr": np.arange(4)})
        assert cat.get_json("doc") == {"b": [1, 2]}
        np.testing.assert_array_equal(cat.get_array("arr"), np.arange(4))
        with pytest.raises(TypeError):  # the second value is refused: the first is not stored
            cat.put_many(arrays={"ok": np.zeros(2), "bad": np.array(["x"])})
        assert cat.names() == ["arr", "doc", "keep"]
        cat.put_many(documents={"new": 1}, delete=["arr", "absent"])
        assert cat.names() == ["doc", "keep", "new"]
