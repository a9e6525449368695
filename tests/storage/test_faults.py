"""Fault injection in the storage layer: short writes, full and failing devices, interrupted
publication, locks, leftovers, and damaged or truncated catalogs.

Faults are injected by replacing ``os.pwrite`` / ``os.write`` (storage.durable looks them up
at each call; the ``write_faults`` fixture of tests/conftest.py). Catalog damage that could
crash the process (a SIGBUS) is tried in a child
process, so a crash fails the test instead of ending the test run.
"""

import errno
import json
import os
import subprocess
import sys
import zlib

import lmdb
import numpy as np
import pytest

from storage import ExternalSorter, PageFile, durable
from storage import catalog as catalog_module
from storage.catalog import Catalog
from storage.errors import (CatalogInUseError, CorruptCatalogError, LockedError, NoSpaceError,
                            NotACatalogError, StorageError, UnsupportedVersionError,
                            WriteFailedError)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _one_line(exc, *needles):
    text = str(exc)
    assert "\n" not in text and text, text
    for needle in needles:
        assert needle in text, text


# --------------------------------------------------------------------------- checked writes

def test_faults_short_writes_are_continued_and_give_the_same_file(tmp_path, write_faults):
    payloads = [bytes([i]) * 300 for i in range(40)]

    def write(path):
        pf = PageFile.create(path, kind="test", page_size=512)
        for p in payloads:
            pf.append_page(p)
        pf.finalize(b"app")
        pf.close()

    write(tmp_path / "clean.pages")
    faults = write_faults()
    write(tmp_path / "probe.pages")
    n_calls = len(faults.calls)
    assert n_calls >= 2
    for at in range(n_calls):
        write_faults(at=at, fault="short")
        write(tmp_path / f"short{at}.pages")
        got = (tmp_path / f"short{at}.pages").read_bytes()
        assert got == (tmp_path / "clean.pages").read_bytes()


@pytest.mark.parametrize("fault,cls,needle", [("enospc", NoSpaceError, "no space left"),
                                              ("eio", WriteFailedError, "failed"),
                                              ("zero", WriteFailedError, "stored nothing")])
def test_faults_failed_writes_raise_one_line_errors_naming_the_file(tmp_path, write_faults, fault,
                                                                   cls, needle):
    path = tmp_path / "f.pages"
    write_faults(at=1, fault=fault)  # call 0 is the placeholder header
    pf = PageFile.create(path, kind="test", page_size=512)
    pf.append_page(b"x")
    with pytest.raises(cls) as info:
        pf.finalize()
    _one_line(info.value, str(path), needle)
    assert isinstance(info.value, StorageError) and isinstance(info.value, OSError)
    assert (fault == "enospc") == isinstance(info.value, NoSpaceError)
    if fault != "zero":
        assert info.value.errno == {"enospc": errno.ENOSPC, "eio": errno.EIO}[fault]
    pf.close()  # the failed flush dropped its pages: closing writes nothing more


def test_faults_page_file_create_that_cannot_write_leaves_no_file(tmp_path, write_faults):
    write_faults(at=0, fault="enospc")
    with pytest.raises(NoSpaceError):
        PageFile.create(tmp_path / "c.pages", kind="test", page_size=512)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fault", ["short", "enospc"])
def test_faults_external_sort_run_files_check_every_write(tmp_path, write_faults, fault):
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**40, 600_000, dtype=np.uint64)
    ids = np.arange(keys.size, dtype=np.uint32)
    probe = write_faults()
    sorter = ExternalSorter(tmp_path, memory_limit_bytes=4 << 20)
    sorter.add(keys, ids)
    expected = np.concatenate([k for k, _ in sorter.sorted_chunks()])
    sorter.close()
    assert probe.calls, "the sort must spill to run files for this test"
    write_faults(at=len(probe.calls) // 2, fault=fault)
    sorter = ExternalSorter(tmp_path, memory_limit_bytes=4 << 20)
    try:
        if fault == "short":
            sorter.add(keys, ids)
            got = np.concatenate([k for k, _ in sorter.sorted_chunks()])
            np.testing.assert_array_equal(got, expected)
        else:
            with pytest.raises(NoSpaceError) as info:
                sorter.add(keys, ids)
                list(sorter.sorted_chunks())
            _one_line(info.value, "lshdisk-extsort-")
    finally:
        sorter.close()
    assert list(tmp_path.iterdir()) == []


def test_faults_free_space_check_names_the_need(tmp_path):
    durable.check_free_space(tmp_path, 1, what="a test")
    with pytest.raises(NoSpaceError) as info:
        durable.check_free_space(tmp_path, 1 << 62, what="building x")
    _one_line(info.value, "building x needs about", "MiB", str(tmp_path))
    assert info.value.bytes_needed == 1 << 62


# --------------------------------------------------------------------------- publication

def _make_dir(path, text):
    os.mkdir(path)
    (path / "content").write_text(text)


@pytest.mark.parametrize("exchange", [True, False])
def test_faults_publish_replaces_a_directory_whole(tmp_path, exchange):
    target = tmp_path / "t"
    _make_dir(tmp_path / "w1", "one")
    durable.publish_dir(str(tmp_path / "w1"), str(target), exchange=exchange)
    assert (target / "content").read_text() == "one"
    _make_dir(tmp_path / "w2", "two")
    durable.publish_dir(str(tmp_path / "w2"), str(target), exchange=exchange)
    assert (target / "content").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_faults_publish_to_an_absent_target_never_replaces_one_that_appeared(tmp_path,
                                                                            monkeypatch):
    _make_dir(tmp_path / "w", "new")
    _make_dir(tmp_path / "t", "someone else's")
    monkeypatch.setattr(os.path, "lexists", lambda p: False)  # the target "appears" late
    with pytest.raises(FileExistsError, match="appeared"):
        durable.publish_dir(str(tmp_path / "w"), str(tmp_path / "t"))
    monkeypatch.undo()
    assert (tmp_path / "t" / "content").read_text() == "someone else's"


def test_faults_atomic_exchange_is_available_here():
    """Linux and macOS have the atomic exchange; elsewhere the fallback is documented."""
    kind, fn = durable._rename_call()
    if sys.platform.startswith("linux") or sys.platform == "darwin":
        assert fn is not None and kind in ("renameat2", "renamex_np")


# --------------------------------------------------------------------------- locks, leftovers

def test_faults_second_lock_of_a_target_fails_at_once(tmp_path):
    target = tmp_path / "idx"
    with durable.TargetLock(target) as lock:
        assert (tmp_path / "idx.lshdisk-lock").read_bytes().startswith(b"lshdisk build lock pid=")
        with pytest.raises(LockedError) as info:
            durable.TargetLock(target).acquire()
        _one_line(info.value, str(target), f"pid {os.getpid()}", "wait for it")
        assert isinstance(info.value, BlockingIOError)
        assert lock.held
    assert list(tmp_path.iterdir()) == []  # released: lock file removed
    # A lock file left by a dead holder is taken over.
    (tmp_path / "idx.lshdisk-lock").write_bytes(b"lshdisk build lock pid=999999\n")
    with durable.TargetLock(target):
        pass
    assert list(tmp_path.iterdir()) == []


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_faults_leftovers_of_dead_builds_are_removed_and_live_ones_kept(tmp_path):
    dead = _dead_pid()
    _make_dir(tmp_path / "a", "index a")
    _make_dir(tmp_path / f"a.building-{dead}-0000abcd", "partial")
    _make_dir(tmp_path / f"a.replaced-{dead}-00001234", "old a")
    _make_dir(tmp_path / f"b.building-{os.getpid()}-0000ffff", "running here")
    (tmp_path / "c.lshdisk-lock").write_bytes(b"lshdisk build lock pid=1\n")
    (tmp_path / "d.building-x").mkdir()  # not our naming: never touched
    durable.remove_leftovers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a", f"b.building-{os.getpid()}-0000ffff", "d.building-x"]
    assert (tmp_path / "a" / "content").read_text() == "index a"


def test_faults_leftovers_of_a_target_being_built_are_left_alone(tmp_path):
    dead = _dead_pid()
    _make_dir(tmp_path / f"a.building-{dead}-0000abcd", "partial")
    with durable.TargetLock(tmp_path / "a") as lock:
        durable.remove_leftovers(str(tmp_path))
        assert (tmp_path / f"a.building-{dead}-0000abcd").exists()
        durable.remove_leftovers(str(tmp_path), holding=lock)  # the holder may clean
        assert not (tmp_path / f"a.building-{dead}-0000abcd").exists()


def test_faults_cut_two_rename_replacement_is_rolled_back(tmp_path):
    """The fallback's window: the old index parked, the new one not yet in place."""
    dead = _dead_pid()
    _make_dir(tmp_path / f"a.replaced-{dead}-0000beef", "old a")
    _make_dir(tmp_path / f"a.building-{dead}-0000cafe", "new a")
    assert durable.remove_leftovers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    assert (tmp_path / "a" / "content").read_text() == "old a"


# --------------------------------------------------------------------------- catalog damage

def _small_catalog(path):
    with Catalog.create(path) as cat:
        cat.put_json("params", {"w": 2.5, "m": 3, "name": "qalsh"})
        cat.put_array("a", np.arange(12, dtype=np.float32).reshape(3, 4))
    return path


_READ_ALL = """
import sys
from storage.catalog import Catalog
from storage.errors import StorageError
try:
    with Catalog.open(sys.argv[1]) as cat:
        print("read", cat.get_json("params"), cat.get_array("a").tolist())
except StorageError as exc:
    print(type(exc).__name__, str(exc).count(chr(10)))
"""


def test_faults_truncated_catalog_gives_a_clean_error_never_a_crash(tmp_path):
    good = _small_catalog(tmp_path / "good")
    raw = (good / "data.mdb").read_bytes()
    assert len(raw) >= 4 * 4096
    paths = []
    for size in (16, 200, 4096, 4096 + 100, 8192, len(raw) - 4096, len(raw) - 1):
        cut = tmp_path / f"cut{size}"
        cut.mkdir()
        (cut / "data.mdb").write_bytes(raw[:size])
        paths.append(cut)
    code = "import runpy, sys\nfor p in sys.argv[1:]:\n    sys.argv = ['x', p]\n" \
           "    exec(compile(open(%r).read(), 'read', 'exec'))\n"
    script = tmp_path / "read.py"
    script.write_text(_READ_ALL)
    out = subprocess.run([sys.executable, "-c", code % str(script), *map(str, paths)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr  # no SIGBUS (-7)
    lines = out.stdout.splitlines()
    assert len(lines) == len(paths)
    for path, line in zip(paths, lines):
        name, newlines = line.split()
        assert name in ("CorruptCatalogError", "NotACatalogError") and newlines == "0", (path, line)
    assert lines[-1].startswith("CorruptCatalogError")


def test_faults_every_flipped_bit_of_a_catalog_value_is_detected(tmp_path, value_offsets):
    good = _small_catalog(tmp_path / "good")
    raw = (good / "data.mdb").read_bytes()
    offsets = value_offsets(good)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    checked = 0
    for key, (off, n) in sorted(offsets.items()):
        for pos in range(off, off + n, max(1, n // 40)):
            bad = bytearray(raw)
            bad[pos] ^= 1 << (pos % 8)
            (damaged / "data.mdb").write_bytes(bad)
            try:
                with Catalog.open(damaged) as cat:
                    if key == b"j/params":
                        cat.get_json("params")
                    elif key == b"a/a":
                        cat.get_array("a")
                raise AssertionError(f"flip at {pos} in {key!r} went unnoticed")
            except (CorruptCatalogError, NotACatalogError, UnsupportedVersionError) as exc:
                _one_line(exc)
                assert key == catalog_module._FORMAT_KEY or isinstance(exc, CorruptCatalogError)
            checked += 1
    assert checked >= 60


def test_faults_value_moved_under_another_key_fails_its_checksum(tmp_path):
    good = _small_catalog(tmp_path / "c")
    env = lmdb.open(str(good))
    with env.begin(write=True) as txn:
        txn.put(b"j/other", txn.get(b"j/params"))
    env.close()
    with Catalog.open(good) as cat:
        assert cat.get_json("params")["m"] == 3
        with pytest.raises(CorruptCatalogError, match="'other' fails its checksum"):
            cat.get_json("other")


def test_faults_format_record_checksum(tmp_path):
    good = _small_catalog(tmp_path / "c")
    record = json.loads(catalog_module.format_record())
    assert record["checksum"] == zlib.crc32(json.dumps(
        {"format": record["format"], "version": record["version"]},
        sort_keys=True, separators=(",", ":")).encode())
    env = lmdb.open(str(good))
    with env.begin(write=True) as txn:
        txn.put(catalog_module._FORMAT_KEY, json.dumps(dict(record, checksum=1)).encode())
    env.close()
    with pytest.raises(CorruptCatalogError, match="format record fails its checksum"):
        Catalog.open(good)


# --------------------------------------------------------------------------- catalog sharing

def test_faults_catalog_opens_from_many_threads_share_one_environment(tmp_path, in_threads):
    path = _small_catalog(tmp_path / "c")

    def worker():
        for _ in range(20):
            with Catalog.open(path) as cat:
                assert cat.get_json("params")["m"] == 3
                assert cat.get_array("a").shape == (3, 4)

    assert in_threads(worker, 8) == []
    assert not catalog_module._OPEN_ENVS  # the last close closed the environment


def test_faults_catalog_nested_opens_and_exclusive_writer(tmp_path):
    path = _small_catalog(tmp_path / "c")
    a = Catalog.open(path)
    b = Catalog.open(path)
    assert a._env is b._env
    with pytest.raises(CatalogInUseError, match="close them before opening it for writing"):
        Catalog.open(path, readonly=False)
    a.close()
    assert b.get_json("params")["name"] == "qalsh"  # still open through b
    b.close()
    with Catalog.open(path, readonly=False) as writer:
        with pytest.raises(CatalogInUseError, match="open for writing"):
            Catalog.open(path)
        writer.put_json("x", 1)
    with Catalog.open(path) as cat:
        assert cat.get_json("x") == 1
    assert not catalog_module._OPEN_ENVS


def test_faults_lmdb_write_errors_are_told_apart_by_free_space(tmp_path, monkeypatch):
    """LMDB turns a short write on a full device into EIO; the free space tells them apart."""
    error = lmdb.Error("mdb_txn_commit: Input/output error")
    monkeypatch.setattr(durable, "free_bytes", lambda path: 100)
    full = catalog_module._lmdb_write_error(str(tmp_path), error, 5000)
    assert isinstance(full, NoSpaceError) and "no space left" in str(full)
    monkeypatch.setattr(durable, "free_bytes", lambda path: 1 << 40)
    failed = catalog_module._lmdb_write_error(str(tmp_path), error, 5000)
    assert isinstance(failed, WriteFailedError) and not isinstance(failed, NoSpaceError)
    _one_line(failed, str(tmp_path), "Input/output error")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_faults_forked_child_opens_its_own_catalog_environment(tmp_path):
    path = _small_catalog(tmp_path / "c")
    with Catalog.open(path) as parent:
        pid = os.fork()
        if pid == 0:  # the child: must not reuse the parent's environment
            code = 1
            try:
                with Catalog.open(path) as cat:
                    code = 0 if cat.get_json("params")["m"] == 3 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert parent.get_json("params")["m"] == 3
