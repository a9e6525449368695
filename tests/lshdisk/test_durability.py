"""Durability of builds and integrity of indexes, under injected faults.

- Short writes and ENOSPC at every write site of a build (``os.pwrite``/``os.write`` replaced,
  the ``write_faults`` fixture of tests/conftest.py): a short write changes nothing, a full
  device fails the build with a one-line error, leaves nothing behind and the old index
  byte-identical, and the next build succeeds.
- SIGKILL at each named step of a build and of a replacement (``LSHDISK_FAULT_POINT`` in a
  child process): the path holds the old index byte-identical, or the complete new one once
  the switch is made; the next open removes the leftovers; the next build succeeds.
- Two builds of one path: the second fails at once.
- Page files from another build, page size or dataset are refused at open; damaged or
  truncated catalogs give one-line errors, never a crash or a changed answer.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import lshdisk
from lshdisk.verify import verify_index
from storage import PageFile
from storage.errors import LockedError, NoSpaceError, StorageError, WriteFailedError

ROOT = Path(__file__).resolve().parents[2]
N = 300  # points of the tiny set (tests/lshdisk/conftest.py)


def _tree(path):
    """{relative path: sha256} of every file under ``path``."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(path).rglob("*")) if p.is_file()}


def _names(directory):
    return sorted(p.name for p in Path(directory).iterdir())


@pytest.fixture(scope="module")
def data(tiny_data, tmp_path_factory):
    """The tiny set (300 x 8 float32), also saved as ``x.npy`` for child processes."""
    root = tmp_path_factory.mktemp("durability")
    np.save(root / "x.npy", tiny_data.x)
    return root, tiny_data.x


@pytest.fixture
def old_index(tiny_index_dir):
    """The good index (seed 0) that builds replace; never modified (tests use ``target``)."""
    return tiny_index_dir


@pytest.fixture
def target(index_copy):
    """A copy of the old index, the only entry of its directory."""
    return index_copy


def _assert_old_intact(target, old_index):
    assert _names(target.parent) == [target.name], _names(target.parent)
    assert _tree(target) == _tree(old_index)


# --------------------------------------------------------------------------- write faults

def _fault_sites(calls):
    """Call numbers to fault: every pwrite (page files, headers, lock) and a spread of the
    many small writes (sort runs, directory spills), first and last included."""
    writes = [i for i, (kind, _) in enumerate(calls) if kind == "write"]
    picked = {i for i, (kind, _) in enumerate(calls) if kind == "pwrite"}
    picked |= set(writes[:: max(1, len(writes) // 6)]) | set(writes[-1:])
    return sorted(picked)


@pytest.mark.parametrize("algorithm", ["qalsh", "c2lsh"])
def test_durability_enospc_at_every_write_site_keeps_the_old_index(data, old_index, target,
                                                                   write_faults, algorithm):
    _, x = data
    probe = write_faults()
    lshdisk.build(x, target.parent / "probe", algorithm=algorithm, memory_limit="16MiB").close()
    shutil.rmtree(target.parent / "probe")
    sites = _fault_sites(probe.calls)
    assert len(sites) >= 6
    for at in sites:
        write_faults(at=at, fault="enospc")
        with pytest.raises(NoSpaceError) as info:
            lshdisk.build(x, target, algorithm=algorithm, memory_limit="16MiB", seed=5,
                          overwrite=True)
        text = str(info.value)
        assert "\n" not in text and "no space left" in text, text
        _assert_old_intact(target, old_index)
    write_faults()  # no more faults: the next build succeeds
    with lshdisk.build(x, target, algorithm=algorithm, memory_limit="16MiB", seed=5,
                       overwrite=True) as index:
        assert index.info()["seed"] == 5
    assert _names(target.parent) == [target.name]


def test_durability_eio_fails_the_build_cleanly(data, old_index, target, write_faults):
    _, x = data
    write_faults(at=3, fault="eio")
    with pytest.raises(WriteFailedError, match="failed") as info:
        lshdisk.build(x, target, memory_limit="16MiB", seed=5, overwrite=True)
    assert not isinstance(info.value, NoSpaceError)
    _assert_old_intact(target, old_index)


@pytest.mark.parametrize("algorithm", ["qalsh", "c2lsh"])
def test_durability_short_writes_at_every_site_give_the_same_index(data, tmp_path, write_faults,
                                                                   algorithm):
    _, x = data
    probe = write_faults()
    clean = tmp_path / "clean"
    lshdisk.build(x, clean, algorithm=algorithm, memory_limit="16MiB").close()
    files = [n for n in _tree(clean) if n.endswith(".pages")]
    for at in _fault_sites(probe.calls):
        write_faults(at=at, fault="short")
        out = tmp_path / f"short{at}"
        lshdisk.build(x, out, algorithm=algorithm, memory_limit="16MiB").close()
        for name in files:
            assert (out / name).read_bytes() == (clean / name).read_bytes(), (at, name)
        assert verify_index(out).ok


def test_durability_free_space_is_checked_before_the_build_starts(data, target, old_index,
                                                                  monkeypatch):
    _, x = data
    from storage import durable
    monkeypatch.setattr(durable, "free_bytes", lambda path: 1000)
    with pytest.raises(NoSpaceError, match=r"needs about [\d.]+ MiB .* but only 0\.0 MiB are free"):
        lshdisk.build(x, target, memory_limit="16MiB", seed=5, overwrite=True)
    _assert_old_intact(target, old_index)


# --------------------------------------------------------------------------- kill -9

_CHILD = """
import sys
import numpy as np
import lshdisk
from storage import durable
path, target, seed, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if mode == "fallback":  # no atomic exchange: the two-rename replacement
    durable._rename_call = lambda: (None, None)
lshdisk.build(np.load(path), target, memory_limit="16MiB", seed=seed, overwrite=True).close()
"""

_BUILD_POINTS = ["build:started", "build:vectors-written", "build:tables-written",
                 "build:sealed", "build:catalog-written", "build:verified", "publish:synced"]


def _killed_build(data, target, point, mode="exchange"):
    root, _ = data
    env = dict(os.environ, LSHDISK_FAULT_POINT=point)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(root / "x.npy"), str(target), "9",
                          mode], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == -signal.SIGKILL, (point, out.returncode, out.stderr)


@pytest.mark.parametrize("point", _BUILD_POINTS + ["publish:renamed", "publish:done"])
def test_durability_kill_during_a_new_build_leaves_no_index(data, tmp_path, point):
    target = tmp_path / "idx"
    _killed_build(data, target, point)
    published = point in ("publish:renamed", "publish:done")
    assert target.exists() == published
    if published:
        assert verify_index(target).ok
    lshdisk.build(data[1], tmp_path / "other", memory_limit="16MiB").close()  # cleans the dir
    assert _names(tmp_path) == (["idx", "other"] if published else ["other"])
    with lshdisk.build(data[1], target, memory_limit="16MiB", overwrite=True) as index:
        assert index.n == N


@pytest.mark.parametrize("point,mode", [(p, "exchange") for p in _BUILD_POINTS]
                         + [("publish:exchanged", "exchange"), ("publish:done", "exchange"),
                            ("publish:old-moved", "fallback"), ("publish:done", "fallback")])
def test_durability_kill_during_a_replacement_keeps_a_whole_index(data, old_index, target,
                                                                  point, mode):
    _killed_build(data, target, point, mode)
    switched = point in ("publish:exchanged", "publish:done")
    if point == "publish:old-moved":
        assert not target.exists()  # the fallback's window; the next open rolls it back
    elif not switched:
        assert _tree(target) == _tree(old_index)
    with lshdisk.open(target) as index:  # removes the leftovers (and rolls back the cut)
        assert index.info()["seed"] == (9 if switched else 0)
    if not switched:
        _assert_old_intact(target, old_index)
    else:
        assert verify_index(target).ok
    assert _names(target.parent) == [target.name]
    with lshdisk.build(data[1], target, memory_limit="16MiB", seed=3, overwrite=True) as index:
        assert index.info()["seed"] == 3
    assert _names(target.parent) == [target.name]


def test_durability_atomic_exchange_never_leaves_the_path_empty(data, old_index, target):
    """With the exchange, every step of a replacement leaves an index at the path."""
    for point in _BUILD_POINTS + ["publish:exchanged", "publish:done"]:
        _killed_build(data, target, point)
        assert (target / "catalog").is_dir() and verify_index(target).ok, point


# --------------------------------------------------------------------------- two builds

def test_durability_second_build_of_a_path_fails_at_once(data, tmp_path):
    _, x = data
    target = tmp_path / "idx"
    started, release = threading.Event(), threading.Event()
    outcome = {}

    def progress(stage, done, total):
        started.set()
        release.wait(30)

    def first():
        with lshdisk.build(x, target, memory_limit="16MiB", progress=progress) as index:
            outcome["first"] = index.info()["seed"]

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(30)
    t0 = time.perf_counter()
    for overwrite in (False, True):
        with pytest.raises(LockedError, match="being written by another build") as info:
            lshdisk.build(x, target, memory_limit="16MiB", seed=1, overwrite=overwrite)
        assert "\n" not in str(info.value)
    assert time.perf_counter() - t0 < 5
    release.set()
    thread.join(60)
    assert outcome == {"first": 0}
    assert _names(tmp_path) == ["idx"]


# --------------------------------------------------------------------------- foreign files

@pytest.fixture(scope="module")
def foreign(data, tmp_path_factory):
    """Indexes whose files must not be mixed: seed 1, 8 KiB pages, another dataset."""
    _, x = data
    root = tmp_path_factory.mktemp("foreign")
    lshdisk.build(x, root / "seed1", memory_limit="16MiB", seed=1).close()
    lshdisk.build(x, root / "page8k", memory_limit="16MiB", page_size=8192).close()
    lshdisk.build(x[::-1].copy(), root / "otherdata", memory_limit="16MiB").close()
    return root


@pytest.mark.parametrize("source,name,needle", [
    ("seed1", "trees.pages", "belongs to another build"),
    ("page8k", "trees.pages", "8192-byte pages"),
    ("otherdata", "vectors.pages", "belongs to another build"),
    ("otherdata", "trees.pages", "belongs to another build"),
])
def test_durability_page_files_of_another_build_are_refused_at_open(target, foreign, source, name,
                                                                    needle):
    shutil.copy(foreign / source / name, target / name)
    with pytest.raises(lshdisk.CorruptIndexError, match=needle) as info:
        lshdisk.open(target)
    assert str(target / name) in str(info.value) and "\n" not in str(info.value)
    result = verify_index(target)
    assert not result.ok and any(name in p for p in result.problems)


def test_durability_verify_lists_every_damaged_page(target):
    assert verify_index(target).ok
    with PageFile.open(target / "trees.pages") as pf:
        ps, count = pf.page_size, pf.page_count
    raw = bytearray((target / "trees.pages").read_bytes())
    for page in (2, count - 1):
        raw[page * ps + 10] ^= 0xFF
    (target / "trees.pages").write_bytes(bytes(raw))
    result = verify_index(target)
    damaged = [p for p in result.problems if "fails its CRC32" in p]
    assert len(damaged) == 2 and "page 2 " in damaged[0]
    assert result.files["trees.pages"] == count - 1
    from click.testing import CliRunner
    from lshdisk.cli import main
    run = CliRunner().invoke(main, ["verify", str(target)])
    assert run.exit_code == 1 and "2 problem(s) found" in run.stdout


def test_durability_verify_of_a_sound_index_from_the_cli(target):
    from click.testing import CliRunner
    from lshdisk.cli import main
    run = CliRunner().invoke(main, ["verify", str(target)])
    assert run.exit_code == 0, run.output
    assert run.stdout.strip().endswith("ok") and "pages checked" in run.stdout


# --------------------------------------------------------------------------- damaged catalog

_OPEN_AND_SEARCH = """
import sys
import numpy as np
import lshdisk
q = np.load(sys.argv[1])[:5] + np.float32(0.01)
for path in sys.argv[2:]:
    try:
        with lshdisk.open(path) as index:
            print("ok", index.search(q, 5)[1].tobytes().hex())
    except (lshdisk.LshdiskError, Exception) as exc:
        print(type(exc).__name__, str(exc).count(chr(10)))
"""


def _open_in_child(data, paths):
    root, _ = data
    out = subprocess.run([sys.executable, "-c", _OPEN_AND_SEARCH, str(root / "x.npy"),
                          *map(str, paths)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr  # never SIGBUS (-7) or SIGSEGV (-11)
    lines = out.stdout.splitlines()
    assert len(lines) == len(paths)
    return lines


def test_durability_truncated_catalog_is_a_one_line_error(data, old_index, tmp_path):
    raw = (old_index / "catalog" / "data.mdb").read_bytes()
    paths = []
    for size in (100, 4096, 8192, 12288, len(raw) // 2, len(raw) - 4096, len(raw) - 1):
        copy = tmp_path / f"cut{size}"
        shutil.copytree(old_index, copy)
        (copy / "catalog" / "data.mdb").write_bytes(raw[:size])
        paths.append(copy)
    for line in _open_in_child(data, paths):
        name, newlines = line.split()
        assert name in ("CorruptIndexError", "NotAnIndexError") and newlines == "0", line
    from click.testing import CliRunner
    from lshdisk.cli import main
    run = CliRunner().invoke(main, ["info", str(paths[2])])
    assert run.exit_code == 1 and "truncated" in run.stderr and run.stderr.count("\n") == 1
    result = verify_index(paths[2])
    assert not result.ok and "truncated" in result.problems[0] and len(result.problems) == 1


def test_durability_flipped_catalog_bytes_never_change_an_answer(data, old_index, tmp_path,
                                                                value_offsets):
    raw = (old_index / "catalog" / "data.mdb").read_bytes()
    rng = np.random.default_rng(3)
    paths = [old_index]
    for _, (offset, n) in sorted(value_offsets(old_index / "catalog").items()):
        for _ in range(8):
            pos = offset + int(rng.integers(n))
            bad = bytearray(raw)
            bad[pos] ^= 1 << int(rng.integers(8))
            copy = tmp_path / f"flip{len(paths)}"
            shutil.copytree(old_index, copy)
            (copy / "catalog" / "data.mdb").write_bytes(bytes(bad))
            paths.append(copy)
    lines = _open_in_child(data, paths)
    assert lines[0].startswith("ok ")
    for line in lines[1:]:
        name, rest = line.split()
        assert name in ("CorruptIndexError", "NotAnIndexError") and rest == "0", line


# --------------------------------------------------------------------------- shared opens

def test_durability_one_index_opened_from_many_threads(target, data, in_threads):
    _, x = data
    with lshdisk.open(target) as first:
        expected = first.search(x[:3], 3)[1]

        def worker():
            for _ in range(5):
                with lshdisk.open(target) as index:
                    np.testing.assert_array_equal(index.search(x[:3], 3)[1], expected)

        assert in_threads(worker, 6) == []


def test_durability_storage_errors_are_one_line(target):
    """Every failure class the build and open raise on purpose is a StorageError or an
    LshdiskError, and also the matching builtin."""
    assert issubclass(LockedError, (StorageError, BlockingIOError))
    assert issubclass(NoSpaceError, (StorageError, OSError))
    assert issubclass(lshdisk.CorruptIndexError, (lshdisk.LshdiskError, OSError))


def test_durability_full_device_at_the_catalog_write_keeps_the_old_index(data, old_index, target,
                                                                         monkeypatch):
    """The catalog is written by LMDB in C, out of reach of the os.pwrite wrapper: fail its
    write transaction as LMDB does on a full device (EIO), with no space left."""
    import lmdb
    from storage import durable
    from storage.catalog import Catalog, _lmdb_write_error as catalog_error
    real_write = Catalog._write

    def failing_write(self, body, value_bytes):
        if self.path.startswith(str(target) + ".building-"):
            monkeypatch.setattr(durable, "free_bytes", lambda path: 0)
            raise catalog_error(self.path, lmdb.Error("mdb_txn_commit: Input/output error"),
                                value_bytes)
        return real_write(self, body, value_bytes)

    monkeypatch.setattr(Catalog, "_write", failing_write)
    with pytest.raises(NoSpaceError, match="no space left"):
        lshdisk.build(data[1], target, memory_limit="16MiB", seed=5, overwrite=True)
    _assert_old_intact(target, old_index)


def test_durability_overwrite_replaces_a_damaged_or_older_index(data, target):
    """Rebuilding is the fix the errors of a damaged or old-format index name."""
    from storage import catalog as catalog_module
    import lmdb
    raw = (target / "catalog" / "data.mdb").read_bytes()
    (target / "catalog" / "data.mdb").write_bytes(raw[:8192])  # truncated
    with pytest.raises(lshdisk.CorruptIndexError):
        lshdisk.open(target)
    lshdisk.build(data[1], target, memory_limit="16MiB", seed=2, overwrite=True).close()
    env = lmdb.open(str(target / "catalog"))
    with env.begin(write=True) as txn:  # the catalog format an older lshdisk wrote
        txn.put(catalog_module._FORMAT_KEY, b'{"format":"lshdisk-catalog","version":[1,0]}')
    env.close()
    with pytest.raises(lshdisk.NotAnIndexError, match="format version 1.0"):
        lshdisk.open(target)
    with lshdisk.build(data[1], target, memory_limit="16MiB", seed=4, overwrite=True) as index:
        assert index.info()["seed"] == 4
