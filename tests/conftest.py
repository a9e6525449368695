"""Fixtures shared by the storage and lshdisk tests: write-fault injection, threads, where
catalog values lie in their LMDB file."""

import errno
import os
import threading
from pathlib import Path

import lmdb
import numpy as np
import pytest


class WriteFaults:
    """Replaces ``os.pwrite`` and ``os.write``: call number ``at`` (0-based, counting both)
    gets ``fault``: ``"short"`` (half the bytes are written), ``"zero"`` (nothing, every call
    from then on), ``"enospc"`` or ``"eio"`` (raises). Records every call's byte count."""

    def __init__(self, monkeypatch, *, at=None, fault=None):
        self.calls = []  # (kind, bytes asked) per call, kind "pwrite" or "write"
        self.at, self.fault = at, fault
        real_pwrite, real_write = os.pwrite, os.write

        def pick(kind, data):
            i = len(self.calls)
            self.calls.append((kind, len(memoryview(data).cast("B"))))
            if self.fault == "zero" and self.at is not None and i >= self.at:
                return "zero"
            return self.fault if i == self.at else None

        def pwrite(fd, data, offset):
            return self._apply(pick("pwrite", data), data, lambda b: real_pwrite(fd, b, offset))

        def write(fd, data):
            return self._apply(pick("write", data), data, lambda b: real_write(fd, b))

        monkeypatch.setattr(os, "pwrite", pwrite)
        monkeypatch.setattr(os, "write", write)

    @staticmethod
    def _apply(fault, data, do):
        view = memoryview(data).cast("B")
        if fault == "short" and view.nbytes > 1:
            return do(view[: view.nbytes // 2])
        if fault == "zero":
            return 0
        if fault == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if fault == "eio":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return do(view)



@pytest.fixture
def write_faults(monkeypatch):
    """``write_faults(at=None, fault=None)`` installs a :class:`WriteFaults` (a later call
    replaces the earlier one); undone at the end of the test."""
    return lambda **kw: WriteFaults(monkeypatch, **kw)


def _in_threads(work, n_threads):
    """Run ``work()`` in ``n_threads`` threads released together; return their errors."""
    errors, barrier = [], threading.Barrier(n_threads)

    def run():
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # returned to the test, which asserts there are none
            errors.append(repr(exc))

    threads = [threading.Thread(target=run) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.fixture
def in_threads():
    """``in_threads(work, n)``: run ``work`` in n threads at once, return the errors raised."""
    return _in_threads


def _value_offsets(path):
    """{key: (file offset, length)} of the live values of the LMDB environment in ``path``."""
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin(buffers=True) as txn:
        addrs = {bytes(k): (np.frombuffer(v, np.uint8).ctypes.data, len(v))
                 for k, v in txn.cursor()}
    with env.begin() as txn:
        values = {bytes(k): bytes(v) for k, v in txn.cursor()}
    env.close()
    data = (Path(path) / "data.mdb").read_bytes()
    # The map's base address from a value stored once in the file (stale pages hold copies).
    key = next(k for k, v in values.items() if data.count(v) == 1)
    base = addrs[key][0] - data.find(values[key])
    out = {k: (a - base, n) for k, (a, n) in addrs.items()}
    for k, (off, n) in out.items():
        assert data[off:off + n] == values[k]
    return out


@pytest.fixture
def value_offsets():
    """``value_offsets(catalog_dir)``: {key: (offset in data.mdb, length)} of live values."""
    return _value_offsets
