"""Durable writes and atomic publication of directories, as LMDB and SQLite do them.

Every byte the storage layer writes goes through :func:`pwrite_all` or :func:`write_all`:
a short write is continued where it stopped, a write that makes no progress, ENOSPC, EDQUOT
and EIO raise a one-line :class:`~storage.errors.WriteFailedError` (or its subclass
:class:`~storage.errors.NoSpaceError`) naming the path and the bytes that did not fit.
``os.pwrite`` and ``os.write`` are looked up at each call, so tests can inject short writes
and errors by replacing them.

A directory built under a temporary sibling name is published by :func:`publish_dir`,
after :func:`sync_tree` has fsynced its files and directories. The switch is one atomic
step, so that at every instant the target path holds either the complete old directory or
the complete new one (the protocol is laid out in :mod:`storage.format`, "Publishing an
index"):

- no target yet: ``renameat2(RENAME_NOREPLACE)`` (Linux), ``renamex_np(RENAME_EXCL)``
  (macOS), else ``rename`` after checking that the target is still absent;
- a target to replace: ``renameat2(RENAME_EXCHANGE)`` / ``renamex_np(RENAME_SWAP)`` swaps
  the two directories, then the old one (now under the temporary name) is removed. Where
  neither call exists or the file system refuses it, two renames with the old directory
  parked as ``TARGET.replaced-PID-TOKEN`` in between; if the process dies between them,
  :func:`remove_leftovers` puts the old directory back.

A :class:`TargetLock` (``flock`` on ``TARGET.lshdisk-lock``) makes a second writer of the same
target fail at once. :func:`remove_leftovers` removes ``TARGET.building-PID-*`` and
``TARGET.replaced-PID-*`` siblings whose process is gone, under the target's lock.

:func:`fault_point` lets tests kill the process (SIGKILL) at a named step: it does nothing
unless the environment variable ``LSHDISK_FAULT_POINT`` names that step.
"""

import ctypes
import ctypes.util
import errno
import fcntl
import functools
import os
import platform
import re
import secrets
import shutil
import signal
import sys
import time

from .errors import LockedError, NoSpaceError, WriteFailedError

__all__ = ["pwrite_all", "write_all", "fsync_fd", "fsync_dir", "sync_tree", "publish_dir",
           "work_path", "TargetLock", "remove_leftovers", "check_free_space", "free_bytes",
           "fault_point", "FAULT_ENV", "LOCK_SUFFIX"]

#: Environment variable naming the :func:`fault_point` at which a test wants the process killed.
FAULT_ENV = "LSHDISK_FAULT_POINT"
LOCK_SUFFIX = ".lshdisk-lock"
_LOCK_TAG = b"lshdisk build lock"
_MAX_IDLE_WRITES = 3  # writes in a row that store nothing before the device is declared broken
_LEFTOVER = re.compile(r"^(?P<base>.+)\.(?P<kind>building|replaced)-(?P<pid>\d+)-[0-9a-f]+$")
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, getattr(errno, "ENOTSUP", errno.EINVAL),
                getattr(errno, "EOPNOTSUPP", errno.EINVAL)}
_AT_FDCWD = -100
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2  # linux/fs.h
_RENAME_SWAP, _RENAME_EXCL = 2, 4  # macOS sys/stdio.h
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "riscv64": 276}


def fault_point(name):
    """Kill this process with SIGKILL if ``$LSHDISK_FAULT_POINT`` is ``name`` (tests only).

    Parameters
    ----------
    name : str
        The step, e.g. ``"publish:exchanged"``.
    """
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------- checked writes

def _mib(n_bytes):
    return f"{n_bytes / 2**20:.1f} MiB"


def free_bytes(path):
    """Bytes available to this user on the file system holding ``path`` (``statvfs``)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _write_error(exc, path, n_bytes, offset):
    """The one-line error for an OS error ``exc`` while writing ``n_bytes`` of ``path``."""
    where = f" at offset {offset}" if offset is not None else ""
    if exc.errno in _NO_SPACE:
        try:
            free = f", {_mib(free_bytes(os.path.dirname(os.path.abspath(path))))} free"
        except OSError:
            free = ""
        return NoSpaceError(f"{path}: no space left on the device for {n_bytes} more bytes"
                            f"{where}{free}: free space or write to another disk",
                            errno=exc.errno, path=path, bytes_needed=n_bytes)
    return WriteFailedError(f"{path}: writing {n_bytes} bytes{where} failed "
                            f"({exc.strerror or exc}): check the device", errno=exc.errno,
                            path=path)


def _write_fully(write, fd, data, offset, path):
    view = memoryview(data).cast("B")
    done, idle = 0, 0
    while done < view.nbytes:
        at = None if offset is None else offset + done
        try:
            n = write(fd, view[done:]) if offset is None else write(fd, view[done:], at)
        except OSError as exc:
            raise _write_error(exc, path, view.nbytes - done, at) from exc
        if n <= 0:
            idle += 1
            if idle >= _MAX_IDLE_WRITES:
                raise WriteFailedError(f"{path}: the device stored nothing of {view.nbytes - done} "
                                       f"bytes at offset {at} in {idle} writes: check the device",
                                       path=path)
            continue
        idle = 0
        done += n


def pwrite_all(fd, data, offset, *, path):
    """Write all of ``data`` at ``offset`` of ``fd`` with ``os.pwrite``, continuing short writes.

    Parameters
    ----------
    fd : int
    data : bytes-like
    offset : int
    path : str
        Named in errors.

    Raises
    ------
    NoSpaceError
        ENOSPC or EDQUOT: the device is full.
    WriteFailedError
        Any other OS error (EIO...), or writes that store nothing three times in a row.
    """
    _write_fully(lambda f, b, o: os.pwrite(f, b, o), fd, data, offset, path)


def write_all(fd, data, *, path):
    """Write all of ``data`` at the file position of ``fd`` with ``os.write``; as
    :func:`pwrite_all`."""
    _write_fully(lambda f, b: os.write(f, b), fd, data, None, path)


def fsync_fd(fd, *, path):
    """``os.fsync(fd)``; an OS error becomes a :class:`WriteFailedError` naming ``path``."""
    try:
        os.fsync(fd)
    except OSError as exc:
        raise WriteFailedError(f"{path}: fsync failed ({exc.strerror or exc}): the data may not "
                               f"be on the device; check it", errno=exc.errno, path=path) from exc


def fsync_dir(path):
    """fsync directory ``path``, so that the entries created or renamed in it are durable.

    Raises
    ------
    WriteFailedError
        If the directory cannot be opened or synced.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise WriteFailedError(f"{path}: cannot open the directory to fsync it "
                               f"({exc.strerror or exc})", errno=exc.errno, path=path) from exc
    try:
        fsync_fd(fd, path=path)
    finally:
        os.close(fd)


def sync_tree(path):
    """fsync every file and directory under ``path`` (directories after their entries).

    Disk access: one ``fsync`` per file and directory; files already synced cost little.
    """
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            full = os.path.join(root, name)
            fd = os.open(full, os.O_RDONLY)
            try:
                fsync_fd(fd, path=full)
            finally:
                os.close(fd)
        fsync_dir(root)


def check_free_space(directory, bytes_needed, *, what):
    """Refuse to start writing ``what`` if the file system of ``directory`` has less than
    ``bytes_needed`` bytes free.

    Raises
    ------
    NoSpaceError
        Naming the directory, the estimate and the free space.
    """
    free = free_bytes(directory)
    if free < bytes_needed:
        raise NoSpaceError(f"{what} needs about {_mib(bytes_needed)} in {directory} but only "
                           f"{_mib(free)} are free: free space or build on another disk",
                           errno=errno.ENOSPC, path=directory, bytes_needed=bytes_needed)


# ----------------------------------------------------------------------- atomic renames

@functools.cache
def _rename_call():
    """``(kind, function)``: libc's ``renameat2`` or ``renamex_np``, the raw syscall, or None."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        fn = libc.renamex_np
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        return "renamex_np", fn
    if sys.platform.startswith("linux"):
        if hasattr(libc, "renameat2"):
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
            return "renameat2", fn
        number = _SYS_RENAMEAT2.get(platform.machine())
        if number is not None:
            syscall = libc.syscall
            return "renameat2", lambda *args: syscall(ctypes.c_long(number), *args)
    return None, None


def _rename_flags(src, dst, *, exchange):
    """Rename with RENAME_EXCHANGE (``exchange``) or RENAME_NOREPLACE semantics.

    Returns
    -------
    bool
        False if this system or file system has no such rename (the caller falls back).

    Raises
    ------
    FileExistsError
        NOREPLACE and ``dst`` exists.
    OSError
        Any other failure.
    """
    kind, fn = _rename_call()
    if fn is None:
        return False
    a, b = os.fsencode(src), os.fsencode(dst)
    if kind == "renamex_np":
        rc = fn(a, b, _RENAME_SWAP if exchange else _RENAME_EXCL)
    else:
        rc = fn(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE if exchange else _RENAME_NOREPLACE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), src, None, dst)


def _rename(src, dst):
    try:
        os.rename(src, dst)
    except OSError as exc:
        raise WriteFailedError(f"cannot rename {src} to {dst} ({exc.strerror or exc})",
                               errno=exc.errno, path=dst) from exc


def work_path(target):
    """A fresh temporary sibling name for building ``target``: ``TARGET.building-PID-TOKEN``."""
    return f"{target}.building-{os.getpid()}-{secrets.token_hex(4)}"


def publish_dir(work, target, *, exchange=True):
    """Make the finished directory ``work`` appear at ``target`` in one atomic step.

    ``work`` is fsynced first (:func:`sync_tree`), the parent directory after the switch.
    An old directory at ``target`` is removed once the new one is in place.

    Parameters
    ----------
    work : str
        Sibling of ``target`` (the same file system), e.g. from :func:`work_path`.
    target : str
    exchange : bool
        Use the atomic exchange where the system has one (tests turn it off to exercise the
        two-rename fallback).

    Raises
    ------
    FileExistsError
        ``target`` appeared while it was being published to as absent.
    WriteFailedError
        A rename or an fsync failed; ``target`` still holds the old directory (or nothing if
        it had none).

    Notes
    -----
    Fault points, in order: ``publish:synced``, then ``publish:renamed`` (new target) or
    ``publish:exchanged`` (after the swap, old directory under the temporary name) or
    ``publish:old-moved`` (fallback, between its two renames), then ``publish:done``.
    """
    parent = os.path.dirname(os.path.abspath(target))
    sync_tree(work)
    fault_point("publish:synced")
    old = None
    if not os.path.lexists(target):
        try:
            done = _rename_flags(work, target, exchange=False)
        except OSError as exc:
            if isinstance(exc, FileExistsError):
                raise FileExistsError(f"{target} appeared while the build was running: nothing "
                                      f"was replaced; remove it or build elsewhere") from exc
            raise WriteFailedError(f"cannot rename {work} to {target} ({exc.strerror})",
                                   errno=exc.errno, path=target) from exc
        if not done:
            if os.path.lexists(target):
                raise FileExistsError(f"{target} appeared while the build was running: "
                                      f"nothing was replaced; remove it or build elsewhere")
            _rename(work, target)
        fault_point("publish:renamed")
    else:
        try:
            swapped = exchange and _rename_flags(work, target, exchange=True)
        except OSError as exc:
            raise WriteFailedError(f"cannot exchange {work} and {target} ({exc.strerror})",
                                   errno=exc.errno, path=target) from exc
        if swapped:
            old = work
            fault_point("publish:exchanged")
        else:
            old = f"{target}.replaced-{os.getpid()}-{secrets.token_hex(4)}"
            _rename(target, old)
            fault_point("publish:old-moved")
            try:
                _rename(work, target)
            except BaseException:
                os.rename(old, target)  # put the old directory back
                raise
    fsync_dir(parent)
    if old is not None:
        # Best effort: what cannot be removed now is a leftover that remove_leftovers takes.
        shutil.rmtree(old, ignore_errors=True)
        fsync_dir(parent)
    fault_point("publish:done")


# ----------------------------------------------------------------------- locks, leftovers

class TargetLock:
    """Exclusive ``flock`` on ``TARGET.lshdisk-lock``, held while ``TARGET`` is written.

    The lock file is created on :meth:`acquire` and removed on :meth:`release`; one left by a
    killed process is free (the kernel drops its lock) and is taken over. Locks are per open
    file, so two builds of one target fail against each other even in one process.

    Parameters
    ----------
    target : str or os.PathLike

    Raises
    ------
    LockedError
        From :meth:`acquire`, if another holder has the lock.
    """

    def __init__(self, target):
        self.target = os.path.abspath(os.fspath(target))
        self.path = self.target + LOCK_SUFFIX
        self._fd = None

    def try_acquire(self):
        """Take the lock without waiting; True on success, False if someone holds it.

        Raises
        ------
        OSError
            The lock file cannot be created (e.g. no write permission in the directory).
        """
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # else a releasing holder unlinked the file between open and flock
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            pwrite_all(fd, _LOCK_TAG + f" pid={os.getpid()}\n".encode(), 0, path=self.path)
        except BaseException:
            try:
                os.unlink(self.path)  # ours while we hold the lock
            except FileNotFoundError:
                pass
            os.close(fd)
            raise
        self._fd = fd
        return True

    def acquire(self, wait_seconds=0.0):
        """Take the lock, or fail at once (or after trying for ``wait_seconds``, for a lock
        held only briefly, e.g. by an open cleaning leftovers).

        Raises
        ------
        LockedError
            Naming the target, the holder's pid and the lock file.
        """
        deadline = time.monotonic() + wait_seconds
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        else:
            return self
        holder = ""
        try:
            with open(self.path, "rb") as f:
                text = f.read(200)
            if text.startswith(_LOCK_TAG):
                holder = f" (pid {text.split(b'pid=')[-1].strip().decode('ascii', 'replace')})"
        except OSError:
            pass
        raise LockedError(f"{self.target} is being written by another build{holder}, which holds "
                          f"{self.path}: wait for it to finish or build to another path")

    def release(self):
        """Remove the lock file and drop the lock. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    @property
    def held(self):
        return self._fd is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_leftovers(parent, *, holding=None):
    """Remove the leftovers of interrupted builds in directory ``parent``.

    For every target ``T`` with siblings ``T.building-PID-*``, ``T.replaced-PID-*`` or a lock
    file ``T.lshdisk-lock``, and whose lock is free (or is ``holding``): if ``T`` is missing
    and a ``T.replaced-*`` exists, an interrupted two-rename replacement is rolled back (the
    newest one is renamed to ``T``); other ``T.replaced-*`` are removed, and so is each
    ``T.building-PID-*`` whose process no longer exists. Targets being written by a live
    holder of their lock are left alone.

    Best effort: a target whose lock file cannot be created (a read-only directory) or whose
    leftovers cannot be removed is skipped; a later build retries.

    Parameters
    ----------
    parent : str
    holding : TargetLock, optional
        A lock the caller already holds (its target's leftovers are handled under it).

    Returns
    -------
    list of str
        Paths removed, and targets restored.
    """
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    groups = {}
    for name in names:
        match = _LEFTOVER.match(name)
        if match:
            groups.setdefault(match["base"], []).append((match["kind"], int(match["pid"]), name))
        elif name.endswith(LOCK_SUFFIX) and len(name) > len(LOCK_SUFFIX):
            groups.setdefault(name[: -len(LOCK_SUFFIX)], [])
    done = []
    for base, items in sorted(groups.items()):
        target = os.path.join(os.path.abspath(parent), base)
        held = holding is not None and holding.held and holding.target == target
        lock = holding if held else TargetLock(target)
        try:
            if not held and not lock.try_acquire():
                continue
        except OSError:
            continue  # cannot write here: leave the leftovers to someone who can
        try:
            done += _clean_target(parent, target, items)
        except OSError:
            pass  # what could not be removed stays a leftover, retried later
        finally:
            if not held:
                lock.release()
    return done


def _clean_target(parent, target, items):
    done = []
    replaced = [os.path.join(parent, name) for kind, _, name in items if kind == "replaced"]
    if replaced and not os.path.lexists(target):
        newest = max(replaced, key=os.path.getmtime)
        os.rename(newest, target)
        fsync_dir(parent)
        replaced.remove(newest)
        done.append(target)
    for path in replaced:
        shutil.rmtree(path, ignore_errors=True)
        done.append(path)
    for kind, pid, name in items:
        if kind == "building" and not _alive(pid):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            done.append(os.path.join(parent, name))
    return done
