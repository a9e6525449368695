"""Measure this machine's storage device: a :class:`cost_model.DeviceProfile` from real reads.

:func:`measure` writes a test file under a directory, then times, with the page cache out of
the way, (1) random page reads (4 KiB by default) at uniformly drawn page offsets and (2) one
sequential pass over the file in large blocks. The profile's ``read_mb_per_ms`` is the
sequential rate; its ``seek_ms`` is the mean random page-read time minus that page's transfer
time, so that the QPT model of Jafari & Nagarkar (2021, Section 4.2) charges a random page
read exactly what it measured. The page cache is bypassed with ``O_DIRECT`` (page-aligned
buffers from anonymous ``mmap``); on file systems that refuse ``O_DIRECT`` (tmpfs, some
network and FUSE file systems) the file is evicted with ``posix_fadvise(POSIX_FADV_DONTNEED)``
before each phase instead, and the result says so.

Disk access: writes ``size`` bytes (fsync'd), reads ``random_reads`` pages and the whole file
once, then deletes the file. About 2 GiB and 10 s by default on an SSD; on a hard disk the
random phase takes ``random_reads * ~10 ms``.

Deviations from the study: the study's HDD and SSD figures come from the vendors' and their
own measurements; lshdisk measures one queue-depth-1 random read stream and one sequential
stream, which is what a single query of the engine issues.
"""

import mmap
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass

import numpy as np

from cost_model import DeviceProfile
from ._units import parse_bytes

__all__ = ["Calibration", "measure", "calibrate"]

_WRITE_CHUNK = 8 * 2**20
_MIN_SIZE = 1 * 2**20
_O_DIRECT = getattr(os, "O_DIRECT", 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """The result of :func:`measure`: the profile and what it was computed from.

    Attributes
    ----------
    profile : DeviceProfile
    directory : str
        Where the test file was written.
    file_bytes : int
        Size of the test file.
    method : {"O_DIRECT", "posix_fadvise"}
        How the page cache was bypassed.
    random_reads : int
        Random page reads timed.
    random_read_ms_mean, random_read_ms_median, random_read_ms_p90, random_read_ms_max : float
        Random page-read times, ms.
    sequential_block_bytes : int
        Block size of the sequential pass.
    sequential_mb_per_ms : float
        Sequential read rate, MB/ms (1 MB = 10**6 bytes).
    device : str
        The block device under ``directory`` as sysfs names it (e.g. ``"vda (virtio)"``), or
        ``""`` if unknown.
    notes : tuple of str
        Warnings for people: fallbacks used, implausible speeds, virtual disks.
    """

    profile: DeviceProfile
    directory: str
    file_bytes: int
    method: str
    random_reads: int
    random_read_ms_mean: float
    random_read_ms_median: float
    random_read_ms_p90: float
    random_read_ms_max: float
    sequential_block_bytes: int
    sequential_mb_per_ms: float
    device: str
    notes: tuple

    def to_dict(self):
        """JSON-ready dict (the profile as :meth:`DeviceProfile.to_dict`)."""
        out = asdict(self)
        out["profile"] = self.profile.to_dict()
        out["notes"] = list(self.notes)
        return out


def _report(progress, stage, done, total):
    if progress is not None:
        progress(stage, done, total)


def _block_device(directory):
    """(description, read-ahead bytes or 0) of the block device holding ``directory``."""
    try:
        st = os.stat(directory)
        major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    except (OSError, AttributeError):
        return "", 0
    readahead = 0
    try:  # the backing device of the file system: what the page cache's read-ahead uses
        with open(f"/sys/class/bdi/{major}:{minor}/read_ahead_kb") as f:
            readahead = int(f.read().strip()) * 1024
    except (OSError, ValueError):
        pass
    try:
        real = os.path.realpath(f"/sys/dev/block/{major}:{minor}")
    except OSError:
        return "", readahead
    if not os.path.exists(real):
        return "", readahead
    name = os.path.basename(real)
    disk = real if os.path.exists(os.path.join(real, "queue")) else os.path.dirname(real)
    if not readahead:
        try:
            with open(os.path.join(disk, "queue", "read_ahead_kb")) as f:
                readahead = int(f.read().strip()) * 1024
        except (OSError, ValueError):
            pass
    kind = ""
    for marker, label in (("/virtio", "virtio, a virtual disk"), ("/vbd-", "Xen, a virtual disk"),
                          ("/nvme", "NVMe"), ("/loop", "loop device"),
                          ("/mmc", "MMC/SD")):
        if marker in real:
            kind = label
            break
    return (f"{name} ({kind})" if kind else name), readahead


def _open_direct(path, page_size):
    """An O_DIRECT descriptor that has served one aligned read, or None."""
    if not _O_DIRECT:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | _O_DIRECT)
    except OSError:
        return None
    buf = mmap.mmap(-1, page_size)
    try:
        os.preadv(fd, [buf], 0)
    except OSError:
        os.close(fd)
        return None
    finally:
        buf.close()
    return fd


def _evict(fd, advice=None):
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    if advice is not None:
        os.posix_fadvise(fd, 0, 0, advice)


def measure(directory, *, size="2GiB", random_reads=2000, page_size_bytes=4096,
            block_bytes=2**20, name="local", seed=0, progress=None):
    """Measure the device under ``directory``.

    Parameters
    ----------
    directory : str or os.PathLike
        An existing, writable directory on the device to measure (put it on the same file
        system as the indexes).
    size : int or str
        Test-file size, e.g. ``"2GiB"`` (at least 1 MiB; rounded down to whole blocks).
        Larger than the device's own cache makes the random reads honest.
    random_reads : int
        Random page reads to time (distinct pages), >= 10.
    page_size_bytes : int
        Bytes per random read, a multiple of 512 (the profile's ``page_size_bytes``).
    block_bytes : int
        Bytes per read of the sequential pass, a multiple of ``page_size_bytes``.
    name : str
        Name of the profile (prefix of report columns).
    seed : int
        Seed of the random offsets and file contents.
    progress : callable, optional
        ``progress(stage, done, total)`` with stage ``"write"`` (bytes), ``"random"`` (reads)
        or ``"sequential"`` (bytes).

    Returns
    -------
    Calibration

    Raises
    ------
    ValueError
        For a bad argument, or too little free space (the message gives both sizes).
    FileNotFoundError
        If ``directory`` does not exist.
    OSError
        If the file cannot be written or read.
    """
    directory = os.path.abspath(os.fspath(directory))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory} is not a directory: create it first, on the disk "
                                f"to measure")
    size_bytes = parse_bytes(size, name="size")
    for label, value, low in (("random_reads", random_reads, 10),
                              ("page_size_bytes", page_size_bytes, 512),
                              ("block_bytes", block_bytes, 512)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{label} must be an integer >= {low}, got {value!r}")
    if page_size_bytes % 512:
        raise ValueError(f"page_size_bytes must be a multiple of 512, got {page_size_bytes}")
    if block_bytes % page_size_bytes:
        raise ValueError(f"block_bytes must be a multiple of page_size_bytes "
                         f"({page_size_bytes}), got {block_bytes}")
    size_bytes -= size_bytes % block_bytes
    if size_bytes < max(_MIN_SIZE, block_bytes):
        raise ValueError(f"size must be at least 1MiB and one block ({block_bytes} bytes), "
                         f"got {size!r}")
    free = shutil.disk_usage(directory).free
    if free < size_bytes + 64 * 2**20:
        raise ValueError(f"{directory} has {free / 2**20:.0f} MiB free, too little for a "
                         f"{size_bytes / 2**20:.0f} MiB test file: pass a smaller --size")
    n_pages = size_bytes // page_size_bytes
    random_reads = min(random_reads, n_pages)
    rng = np.random.default_rng(seed)
    notes = []
    path = os.path.join(directory, f".lshdisk-calibrate-{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    rfd = None
    buf = mmap.mmap(-1, block_bytes)  # page-aligned, as O_DIRECT needs
    block = memoryview(buf)
    page = block[:page_size_bytes]
    try:
        written = 0
        while written < size_bytes:  # incompressible data: no dedup or compression below us
            chunk = rng.bytes(min(_WRITE_CHUNK, size_bytes - written))
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            written += len(chunk)
            _report(progress, "write", written, size_bytes)
        os.fsync(fd)
        os.close(fd)
        fd = None

        rfd = _open_direct(path, page_size_bytes)
        method = "O_DIRECT"
        if rfd is None:
            method = "posix_fadvise"
            rfd = os.open(path, os.O_RDONLY)
            notes.append(f"O_DIRECT is not available on the file system of {directory}; the file "
                         f"was evicted from the page cache with posix_fadvise(POSIX_FADV_DONTNEED) "
                         f"before each phase instead (read-ahead disabled for the random reads)")
            _evict(rfd, os.POSIX_FADV_RANDOM)

        offsets = rng.choice(n_pages, size=random_reads, replace=False) * page_size_bytes
        times = np.empty(random_reads, dtype=np.float64)
        step = max(1, random_reads // 100)
        for i, off in enumerate(offsets.tolist()):
            t0 = time.perf_counter()
            got = os.preadv(rfd, [page], off)
            times[i] = time.perf_counter() - t0
            if got != page_size_bytes:
                raise OSError(f"{path}: short read of {got} bytes at offset {off}")
            if i % step == 0 or i == random_reads - 1:
                _report(progress, "random", i + 1, random_reads)
        times *= 1e3

        if method != "O_DIRECT":
            _evict(rfd, os.POSIX_FADV_SEQUENTIAL)
        done = 0
        t0 = time.perf_counter()
        while done < size_bytes:
            got = os.preadv(rfd, [block], done)
            if got != block_bytes:
                raise OSError(f"{path}: short read of {got} bytes at offset {done}")
            done += got
            _report(progress, "sequential", done, size_bytes)
        seconds = time.perf_counter() - t0
    finally:
        for f in (fd, rfd):
            if f is not None:
                os.close(f)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        page.release()
        block.release()
        buf.close()

    rate = size_bytes / 1e6 / max(seconds * 1e3, 1e-9)
    mean = float(np.mean(times))
    median = float(np.median(times))
    p90 = float(np.percentile(times, 90))
    seek_ms = max(0.0, mean - page_size_bytes / 1e6 / rate)
    device, readahead = _block_device(directory)
    if mean < 0.02:
        notes.append(f"random {page_size_bytes} B reads averaged {mean:.4f} ms, faster than flash "
                     f"at queue depth 1 (about 0.05-0.1 ms): they were served from memory (tmpfs, "
                     f"or a cache below this machine); the profile describes that cache, not a disk")
    if rate > 20.0:
        notes.append(f"the sequential rate {rate:.1f} MB/ms exceeds any single disk: the reads "
                     f"were served from memory")
    if p90 > 10 * median:
        notes.append(f"random reads are bimodal (median {median:.3f} ms, p90 {p90:.3f} ms): some "
                     f"went to a slower tier than others")
    if "virtual disk" in device:
        notes.append(f"{directory} is on {device}: the host may keep the file this calibration "
                     f"just wrote in its own page cache, so these numbers can describe the host's "
                     f"memory rather than its disk; data the host has not cached read slower")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    description = (f"lshdisk calibrate {directory} ({device or 'unknown device'}), {stamp}: "
                   f"{random_reads} random {page_size_bytes} B reads ({method}) mean "
                   f"{mean:.4f} ms, median {median:.4f} ms, p90 {p90:.4f} ms; sequential "
                   f"{block_bytes // 1024} KiB reads of {size_bytes / 2**20:.0f} MiB at "
                   f"{rate:.3f} MB/ms")
    profile = DeviceProfile(name=name, seek_ms=round(seek_ms, 6), read_mb_per_ms=round(rate, 6),
                            page_size_bytes=page_size_bytes, readahead_bytes=readahead,
                            description=description)
    return Calibration(profile=profile, directory=directory, file_bytes=size_bytes, method=method,
                       random_reads=random_reads, random_read_ms_mean=mean,
                       random_read_ms_median=median, random_read_ms_p90=p90,
                       random_read_ms_max=float(np.max(times)),
                       sequential_block_bytes=block_bytes,
                       sequential_mb_per_ms=rate, device=device, notes=tuple(notes))


def calibrate(directory, **kwargs):
    """Measure the device under ``directory`` and return its :class:`DeviceProfile`.

    Takes the keyword arguments of :func:`measure`.
    """
    return measure(directory, **kwargs).profile
