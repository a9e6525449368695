"""Tests of storage.page_file: layout, round trips, and every way a file can be refused."""

import hashlib
import os
import struct
import zlib

import numpy as np
import pytest

from storage.errors import (
    ClosedFileError,
    CorruptPageError,
    NotAPageFileError,
    ReadOnlyError,
    StorageError,
    UnsupportedVersionError,
)
from storage.format import APP_HEADER_OFFSET, FORMAT_MAJOR, FORMAT_MINOR, HEADER_STRUCT, MAGIC
from storage.iostats import IOCounter
from storage.page_file import PageFile

MiB = 1 << 20


def page_payloads(rng, n_pages, payload_size):
    """Random payloads of varied lengths: empty, one byte, exactly full, and in between."""
    lengths = [0, 1, payload_size, payload_size - 1]
    lengths += rng.integers(0, payload_size + 1, n_pages).tolist()
    return [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths[:n_pages]]


def write_file(path, payloads, *, page_size=512, kind="vectors", app_header=b"", counter=None):
    pf = PageFile.create(path, kind=kind, page_size=page_size, counter=counter)
    numbers = [pf.append_page(p) for p in payloads]
    pf.finalize(app_header)
    pf.close()
    assert numbers == list(range(1, len(payloads) + 1))
    return path


def padded(payload, payload_size):
    return np.frombuffer(payload.ljust(payload_size, b"\0"), dtype=np.uint8)


def rewrite_header(path, sealed_page_size, **fields):
    """Patch header fields (see storage.format) and reseal page 0 with a correct CRC32."""
    raw = bytearray(path.read_bytes())
    app_len = fields.pop("app_header_length", None)
    magic, major, minor, ps, count, kind = HEADER_STRUCT.unpack_from(raw, 0)
    values = dict(magic=magic, major=major, minor=minor, page_size=ps, page_count=count, kind=kind)
    values.update(fields)
    HEADER_STRUCT.pack_into(raw, 0, *values.values())
    if app_len is not None:
        struct.pack_into("<I", raw, APP_HEADER_OFFSET, app_len)
    end = sealed_page_size - 4
    struct.pack_into("<I", raw, end, zlib.crc32(bytes(raw[:end])))
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("page_size, n_pages", [(512, 40), (4096, 9), (MiB, 3)])
def test_page_file_round_trips_payloads_for_each_page_size(tmp_path, page_size, n_pages):
    rng = np.random.default_rng(page_size)
    payload_size = page_size - 8
    payloads = page_payloads(rng, n_pages, payload_size)
    path = write_file(tmp_path / "f.pages", payloads, page_size=page_size, app_header=b"n=3;d=7")
    assert path.stat().st_size == (n_pages + 1) * page_size

    with PageFile.open(path) as pf:
        assert (pf.page_size, pf.payload_size) == (page_size, payload_size)
        assert pf.page_count == n_pages + 1
        assert pf.kind == "vectors" and pf.app_header == b"n=3;d=7"
        assert not pf.writable and not pf.closed
        out = np.empty(page_size, dtype=np.uint8)
        for page_no, payload in enumerate(payloads, start=1):
            got = pf.read_page(page_no)
            assert got.dtype == np.uint8 and got.shape == (payload_size,)
            assert not got.flags.writeable
            np.testing.assert_array_equal(got, padded(payload, payload_size))  # zero padding
            pf.read_page_into(page_no, out)
            np.testing.assert_array_equal(out[:payload_size], got)
            assert struct.unpack_from("<II", out, payload_size) == (
                page_no,
                zlib.crc32(out[: page_size - 4].tobytes()),
            )
        run = pf.read_run(1, n_pages)
        assert run.shape == (n_pages, payload_size) and not run.flags.writeable
        np.testing.assert_array_equal(run, np.stack([padded(p, payload_size) for p in payloads]))
        assert pf.read_run(2, 0).shape == (0, payload_size)
    assert pf.closed


def test_page_file_accepts_numpy_payloads_and_an_empty_file(tmp_path):
    path = tmp_path / "np.pages"
    arr = np.arange(100, dtype=np.float32)
    write_file(path, [arr, arr[:0]])
    with PageFile.open(path) as pf:
        assert pf.page_count == 3
        np.testing.assert_array_equal(pf.read_page(1)[:400].view(np.float32), arr)
        assert not pf.read_page(1)[400:].any() and not pf.read_page(2).any()

    empty = write_file(tmp_path / "empty.pages", [])
    assert empty.stat().st_size == 512
    with PageFile.open(empty) as pf:
        assert pf.page_count == 1
        assert pf.read_run(1, 0).shape == (0, 504)
        with pytest.raises(IndexError):
            pf.read_page(1)


def test_page_file_header_page_bytes_follow_the_format_table(tmp_path):
    path = write_file(tmp_path / "h.pages", [b"x"] * 2, kind="btree", app_header=b"\x01app\xff")
    raw = path.read_bytes()[:512]
    assert raw[0:8] == MAGIC == b"LSHDPAGE"
    assert struct.unpack_from("<HHIQ", raw, 8) == (FORMAT_MAJOR, FORMAT_MINOR, 512, 3)
    assert raw[24:40] == b"btree" + b"\0" * 11
    assert raw[40:56] == b"\0" * 16  # build id, not stamped yet
    data = path.read_bytes()
    crcs = b"".join(data[p * 512 + 508:(p + 1) * 512] for p in (1, 2))
    assert raw[56:64] == hashlib.blake2b(crcs, digest_size=8).digest()  # content digest
    assert struct.unpack_from("<I", raw, 64) == (5,)
    assert raw[68:73] == b"\x01app\xff"
    assert raw[73:504] == b"\0" * (504 - 73)
    assert struct.unpack_from("<II", raw, 504) == (0, zlib.crc32(raw[:508]))

    data_page = path.read_bytes()[2 * 512 : 3 * 512]
    assert data_page[:504] == b"x" + b"\0" * 503
    assert struct.unpack_from("<II", data_page, 504) == (2, zlib.crc32(data_page[:508]))


def test_page_file_app_header_of_maximum_size_round_trips_and_one_more_byte_is_refused(tmp_path):
    limit = 512 - 8 - APP_HEADER_OFFSET - 4  # 436 bytes for 512-byte pages
    big = bytes(range(256)) + bytes(range(limit - 256))
    path = tmp_path / "a.pages"
    pf = PageFile.create(path, kind="vectors", page_size=512)
    pf.append_page(b"row")
    with pytest.raises(ValueError, match="does not fit"):
        pf.finalize(big + b"!")
    assert pf.writable  # the refused finalize changed nothing: the file can still be finished
    pf.finalize(big)
    pf.close()
    with PageFile.open(path) as reopened:
        assert reopened.app_header == big
        assert bytes(reopened.read_page(1)[:3]) == b"row"


@pytest.mark.parametrize("bad", [1000, 256, 2 * MiB, 0, -512, 513])
def test_page_file_create_refuses_bad_page_sizes_and_makes_no_file(tmp_path, bad):
    path = tmp_path / "bad.pages"
    with pytest.raises(ValueError, match=f"page_size must be a power of two.*got {bad}"):
        PageFile.create(path, kind="vectors", page_size=bad)
    assert not path.exists()


def test_page_file_create_refuses_non_int_page_size_and_bad_kind(tmp_path):
    path = tmp_path / "bad.pages"
    with pytest.raises(TypeError, match="page_size"):
        PageFile.create(path, kind="vectors", page_size=4096.0)
    with pytest.raises(ValueError, match="kind"):
        PageFile.create(path, kind="", page_size=512)
    with pytest.raises(ValueError, match="kind"):
        PageFile.create(path, kind="k" * 17, page_size=512)
    assert not path.exists()
    write_file(path, [b"ok"], kind="k" * 16)  # 16 characters is the limit, and allowed
    with PageFile.open(path, kind="k" * 16) as pf:
        assert pf.kind == "k" * 16


def test_page_file_create_refuses_an_existing_path_and_leaves_it_untouched(tmp_path):
    other = tmp_path / "other.bin"
    other.write_bytes(b"precious bytes")
    with pytest.raises(FileExistsError):
        PageFile.create(other, kind="vectors", page_size=512)
    assert other.read_bytes() == b"precious bytes"

    existing = write_file(tmp_path / "f.pages", [b"a", b"b"])
    before = existing.read_bytes()
    with pytest.raises(FileExistsError):
        PageFile.create(existing, kind="vectors", page_size=4096)
    assert existing.read_bytes() == before


def test_page_file_open_refuses_files_that_are_not_page_files(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    noise = tmp_path / "noise"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 3 * 512, dtype=np.uint8).tobytes())
    magic_only = tmp_path / "magic_only"
    magic_only.write_bytes(MAGIC)  # right magic, but shorter than a header
    for path in (empty, noise, magic_only):
        with pytest.raises(NotAPageFileError, match="not an lshdisk page file"):
            PageFile.open(path)
    assert issubclass(NotAPageFileError, StorageError) and issubclass(NotAPageFileError, ValueError)
    with pytest.raises(FileNotFoundError):
        PageFile.open(tmp_path / "missing")


def test_page_file_unknown_major_version_is_refused_but_newer_minor_opens(tmp_path):
    path = write_file(tmp_path / "v.pages", [b"abc"])
    original = path.read_bytes()
    rewrite_header(path, 512, major=2)
    assert path.read_bytes()[:8] == MAGIC  # still ours
    with pytest.raises(UnsupportedVersionError, match=rf"format 2\.{FORMAT_MINOR}") as info:
        PageFile.open(path)
    assert isinstance(info.value, StorageError) and not isinstance(info.value, NotAPageFileError)

    path.write_bytes(original)
    rewrite_header(path, 512, minor=FORMAT_MINOR + 5)
    with PageFile.open(path) as pf:
        assert not pf.writable
        assert bytes(pf.read_page(1)[:3]) == b"abc"
        with pytest.raises(ReadOnlyError):
            pf.append_page(b"more")


def test_page_file_truncated_or_grown_file_is_corrupt(tmp_path):
    path = write_file(tmp_path / "t.pages", [b"a", b"b", b"c"])
    raw = path.read_bytes()
    path.write_bytes(raw[:-512])  # drop the last page
    with pytest.raises(CorruptPageError, match="truncated"):
        PageFile.open(path)
    path.write_bytes(raw + b"\0")
    with pytest.raises(CorruptPageError, match="3 pages|4 pages"):
        PageFile.open(path)
    assert issubclass(CorruptPageError, OSError) and issubclass(CorruptPageError, StorageError)


def test_page_file_unfinalized_file_does_not_open(tmp_path):
    path = tmp_path / "u.pages"
    pf = PageFile.create(path, kind="vectors", page_size=512)
    pf.append_page(b"a")
    pf.append_page(b"b")
    pf.close()  # flushed, but the header still declares the placeholder page count of 1
    assert path.stat().st_size == 3 * 512
    with pytest.raises(CorruptPageError, match="declares 1 pages"):
        PageFile.open(path)


def test_page_file_header_with_bad_checksum_page_size_or_app_length_is_corrupt(tmp_path):
    path = write_file(tmp_path / "c.pages", [b"a"])
    original = path.read_bytes()

    raw = bytearray(original)
    raw[200] ^= 0x10  # inside the header page's zero area
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptPageError, match="page 0 fails its CRC32"):
        PageFile.open(path)

    path.write_bytes(original)
    rewrite_header(path, 512, page_size=1000)
    with pytest.raises(CorruptPageError, match="invalid page size 1000"):
        PageFile.open(path)

    path.write_bytes(original)
    rewrite_header(path, 512, app_header_length=437)  # one more than fits a 512-byte page
    with pytest.raises(CorruptPageError, match="application header of 437 bytes"):
        PageFile.open(path)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_page_file_open_of_a_corrupt_header_closes_its_descriptor(tmp_path):
    path = write_file(tmp_path / "c.pages", [b"a"])
    raw = bytearray(path.read_bytes())
    raw[200] ^= 0x10
    path.write_bytes(bytes(raw))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(CorruptPageError):
            PageFile.open(path)
    assert len(os.listdir("/proc/self/fd")) == before


def test_page_file_descriptors_are_closed_after_refused_opens(tmp_path):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    bad = tmp_path / "noise"
    bad.write_bytes(b"\x07" * 1024)
    good = write_file(tmp_path / "g.pages", [b"a", b"b"])
    short = tmp_path / "short.pages"
    short.write_bytes(good.read_bytes()[:-512])
    before = len(os.listdir("/proc/self/fd"))
    for path, kind, error in ((bad, None, NotAPageFileError), (short, None, CorruptPageError),
                              (good, "btree", NotAPageFileError)):
        with pytest.raises(error):
            PageFile.open(path, kind=kind)
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("offset", [0, 3, 300, 503, 504, 508, 511], ids=lambda o: f"byte{o}")
def test_page_file_flipped_byte_in_a_data_page_is_caught_by_every_reader(tmp_path, offset):
    payloads = [bytes([i]) * 50 for i in range(1, 5)]
    path = write_file(tmp_path / "f.pages", payloads)
    raw = bytearray(path.read_bytes())
    raw[2 * 512 + offset] ^= 0x01  # page 2: payload, padding, page number or CRC
    path.write_bytes(bytes(raw))
    with PageFile.open(path) as pf:
        with pytest.raises(CorruptPageError, match="page 2"):
            pf.read_page(2)
        with pytest.raises(CorruptPageError, match="page 2"):
            pf.read_page_into(2, np.empty(512, dtype=np.uint8))
        with pytest.raises(CorruptPageError, match="page 2"):
            pf.read_run(1, 3)
        with pytest.raises(CorruptPageError, match="page 2"):
            pf.read_run(2, 1)
        for page_no in (1, 3, 4):  # the other pages still read fine
            np.testing.assert_array_equal(pf.read_page(page_no), padded(payloads[page_no - 1], 504))
        np.testing.assert_array_equal(pf.read_run(3, 2)[:, 0], [3, 4])


def test_page_file_page_copied_to_another_place_is_caught(tmp_path):
    path = write_file(tmp_path / "f.pages", [b"one", b"two", b"three"])
    raw = bytearray(path.read_bytes())
    raw[3 * 512 : 4 * 512] = raw[2 * 512 : 3 * 512]  # page 2 (valid CRC) written at page 3
    path.write_bytes(bytes(raw))
    with PageFile.open(path) as pf:
        with pytest.raises(CorruptPageError, match="page 3 holds the content of page 2"):
            pf.read_page(3)
        with pytest.raises(CorruptPageError, match="page 3 holds the content of page 2"):
            pf.read_page_into(3, np.empty(512, dtype=np.uint8))
        with pytest.raises(CorruptPageError, match="page 3"):
            pf.read_run(1, 3)
        assert bytes(pf.read_page(2)[:3]) == b"two"


def test_page_file_kind_mismatch_is_not_a_page_file_of_that_kind(tmp_path):
    path = write_file(tmp_path / "f.pages", [b"a"], kind="vectors")
    with pytest.raises(NotAPageFileError, match="'vectors'.*'btree'"):
        PageFile.open(path, kind="btree")
    with PageFile.open(path, kind="vectors") as pf:
        assert pf.kind == "vectors"


def test_page_file_use_after_close_raises_closed_file_error(tmp_path):
    path = write_file(tmp_path / "f.pages", [b"a", b"b"])
    pf = PageFile.open(path)
    pf.close()
    pf.close()  # closing twice is harmless
    assert pf.closed and "closed" in repr(pf)
    with pytest.raises(ClosedFileError):
        pf.read_page(1)
    with pytest.raises(ClosedFileError):
        pf.read_page_into(1, np.empty(512, dtype=np.uint8))
    with pytest.raises(ClosedFileError):
        pf.read_run(1, 2)

    writer = PageFile.create(tmp_path / "w.pages", kind="vectors", page_size=512)
    writer.close()
    with pytest.raises(ClosedFileError):
        writer.append_page(b"late")
    with pytest.raises(ClosedFileError):
        writer.finalize()


def test_page_file_writes_on_a_read_only_file_raise_read_only_error(tmp_path):
    path = write_file(tmp_path / "f.pages", [b"a"])
    with PageFile.open(path) as pf:
        with pytest.raises(ReadOnlyError, match="read-only"):
            pf.append_page(b"b")
        with pytest.raises(ReadOnlyError):
            pf.finalize()
        assert isinstance(ReadOnlyError("x"), PermissionError)
        assert pf.page_count == 2
    assert path.stat().st_size == 2 * 512

    pf = PageFile.create(tmp_path / "g.pages", kind="vectors", page_size=512)
    pf.append_page(b"a")
    pf.finalize()
    with pytest.raises(ReadOnlyError):  # finalize makes the new file read-only
        pf.append_page(b"b")
    pf.close()


def test_page_file_reads_outside_the_file_raise_index_error(tmp_path):
    path = write_file(tmp_path / "f.pages", [b"a", b"b"])
    out = np.empty(512, dtype=np.uint8)
    with PageFile.open(path) as pf:
        for page_no in (3, 4, -1, 2**40):
            with pytest.raises(IndexError, match="outside"):
                pf.read_page(page_no)
            with pytest.raises(IndexError, match="outside"):
                pf.read_page_into(page_no, out)
        for first, n in ((2, 2), (0, 4), (-1, 1), (1, -1)):
            with pytest.raises(IndexError, match="outside"):
                pf.read_run(first, n)
        np.testing.assert_array_equal(pf.read_page(0)[:8], np.frombuffer(MAGIC, np.uint8))


def test_page_file_oversized_payload_is_refused_and_appends_nothing(tmp_path):
    pf = PageFile.create(tmp_path / "f.pages", kind="vectors", page_size=512)
    pf.append_page(b"\1" * 504)
    with pytest.raises(ValueError, match="505 bytes exceeds the page payload size 504"):
        pf.append_page(b"\1" * 505)
    assert pf.append_page(b"next") == 2
    pf.finalize()
    pf.close()
    with PageFile.open(tmp_path / "f.pages") as reopened:
        assert reopened.page_count == 3
        assert bytes(reopened.read_page(2)[:4]) == b"next"


def test_page_file_buffered_appends_past_four_mib_round_trip(tmp_path):
    # 1,100 pages of 4 KiB: the write buffer (4 MiB) is flushed once mid-stream.
    rng = np.random.default_rng(5)
    rows = rng.integers(0, 256, (1100, 16), dtype=np.uint8)
    path = write_file(tmp_path / "big.pages", [r.tobytes() for r in rows], page_size=4096)
    with PageFile.open(path) as pf:
        assert pf.page_count == 1101
        np.testing.assert_array_equal(pf.read_run(1, 1100)[:, :16], rows)
        assert not pf.read_run(1, 1100)[:, 16:].any()


def test_page_file_shared_counter_judges_open_header_read_as_a_counted_read(tmp_path):
    path = write_file(tmp_path / "f.pages", [b"a"])
    counter = IOCounter()
    with PageFile.open(path, counter=counter) as pf:
        stats = counter.snapshot()
        assert (stats.page_reads, stats.seeks, stats.bytes_read) == (1, 1, 512)  # page 0
        pf.read_page(1)  # right after the header page: sequential
        assert counter.snapshot().seeks == 1
