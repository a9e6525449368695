"""Storage-device profiles for the I/O cost model.

A :class:`DeviceProfile` holds the two numbers the query-processing-time (QPT) model of
Jafari & Nagarkar (2021, "Experimental Analysis of Locality Sensitive Hashing Techniques for
High-Dimensional Approximate Nearest Neighbor Searches", ADC 2021, Section 4.2) needs: the
time of one seek and the sequential read rate, plus the page size they were measured with.

Built-in profiles are the two drives of that study (Section 4.2):

=======  ======================================  =========  =================  =========
name     device                                  seek (ms)  read rate (MB/ms)  page (B)
=======  ======================================  =========  =================  =========
``hdd``  Seagate Barracuda 7200 RPM, 1 TB        8.5        0.156              4096
``ssd``  Seagate Barracuda 120 SSD, 1 TB         0.01       0.56               4096
=======  ======================================  =========  =================  =========

MB are 10**6 bytes throughout. The study does not state a page size; 4096 B is the page of
the disk-based QALSH and C2LSH codes it measured, and of lshdisk's default.

Profiles are saved as versioned JSON::

    {"format": "lshdisk-device-profile", "format_version": 1, "name": "ssd",
     "seek_ms": 0.01, "read_mb_per_ms": 0.56, "page_size_bytes": 4096,
     "readahead_bytes": 0, "description": "..."}

A reader refuses another ``format`` or an unknown major ``format_version``. ``name``,
``seek_ms``, ``read_mb_per_ms`` and ``page_size_bytes`` are required; ``readahead_bytes``
(0 = not modelled) and ``description`` are optional.
"""

import json
import math
import os
import re
from dataclasses import asdict, dataclass

__all__ = ["DeviceProfile", "HDD", "SSD", "BUILTIN_PROFILES", "PROFILE_FORMAT",
           "PROFILE_VERSION", "get_profile", "load_profile", "save_profile"]

PROFILE_FORMAT = "lshdisk-device-profile"
PROFILE_VERSION = 1
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_REQUIRED = ("name", "seek_ms", "read_mb_per_ms", "page_size_bytes")


def _number(field, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{field} must be finite, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceProfile:
    """Cost parameters of one storage device (Jafari & Nagarkar 2021, Section 4.2).

    Parameters
    ----------
    name : str
        Identifier, also the prefix of report columns (``<name>_qpt_ms``): a letter, then
        letters, digits or ``_``.
    seek_ms : float
        Time of one seek (one random access) in ms, >= 0. A calibrated profile stores the
        mean random page-read time minus the transfer time of that page, so that a random
        page read costs ``seek_ms + page_size_bytes / 1e6 / read_mb_per_ms``.
    read_mb_per_ms : float
        Sequential read rate in MB/ms (1 MB = 10**6 bytes), > 0.
    page_size_bytes : int
        Page size the profile was measured with, > 0.
    readahead_bytes : int
        The operating system's read-ahead window for the device in bytes (Linux
        ``read_ahead_kb``); 0 when not known. Used only by the read-ahead term
        (:func:`cost_model.readahead_io`), never by the study's QPT formula.
    description : str
        Free text: where the numbers come from.

    Raises
    ------
    ValueError
        For an invalid name, a negative or non-finite seek time, a rate that is not > 0, or
        a page size / read-ahead window that is not a positive (non-negative) integer.
    """

    name: str
    seek_ms: float
    read_mb_per_ms: float
    page_size_bytes: int = 4096
    readahead_bytes: int = 0
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"name must be a letter followed by letters, digits or '_' "
                             f"(it prefixes report columns), got {self.name!r}")
        if _number("seek_ms", self.seek_ms) < 0:
            raise ValueError(f"seek_ms must be >= 0 ms, got {self.seek_ms!r}")
        if not _number("read_mb_per_ms", self.read_mb_per_ms) > 0:
            raise ValueError(f"read_mb_per_ms must be > 0 MB/ms, got {self.read_mb_per_ms!r}")
        for field, low in (("page_size_bytes", 1), ("readahead_bytes", 0)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{field} must be an integer >= {low} bytes, got {value!r}")
        if not isinstance(self.description, str):
            raise ValueError(f"description must be a string, got {type(self.description).__name__}")

    @property
    def page_read_ms(self):
        """Modelled time of one random page read in ms: a seek plus one page's transfer."""
        return self.seek_ms + self.page_size_bytes / 1e6 / self.read_mb_per_ms

    def to_dict(self):
        """The profile as a JSON-ready dict, with its format and version."""
        return {"format": PROFILE_FORMAT, "format_version": PROFILE_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data, *, source="profile"):
        """Build a profile from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If ``data`` is not a dict, belongs to another format or major version, misses a
            required field (named in the message) or holds an invalid value.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a device profile is a JSON object, got "
                             f"{type(data).__name__}")
        fmt = data.get("format", PROFILE_FORMAT)
        if fmt != PROFILE_FORMAT:
            raise ValueError(f"{source} is not a device profile (format {fmt!r}, expected "
                             f"{PROFILE_FORMAT!r})")
        version = data.get("format_version", PROFILE_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version != PROFILE_VERSION:
            raise ValueError(f"{source} has profile format version {version!r}; this lshdisk "
                             f"reads version {PROFILE_VERSION}: recreate it with 'lshdisk calibrate'")
        for field in _REQUIRED:
            if field not in data:
                raise ValueError(f"{source} lacks the required field {field!r} (a profile needs "
                                 f"{', '.join(_REQUIRED)})")
        known = {"name", "seek_ms", "read_mb_per_ms", "page_size_bytes", "readahead_bytes",
                 "description"}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None


#: Seagate Barracuda 7200 RPM 1 TB hard disk (Jafari & Nagarkar 2021, Section 4.2).
HDD = DeviceProfile(name="hdd", seek_ms=8.5, read_mb_per_ms=0.156, page_size_bytes=4096,
                    description="Seagate Barracuda 7200 RPM 1 TB HDD (Jafari & Nagarkar 2021, "
                                "Section 4.2)")
#: Seagate Barracuda 120 SSD 1 TB (Jafari & Nagarkar 2021, Section 4.2).
SSD = DeviceProfile(name="ssd", seek_ms=0.01, read_mb_per_ms=0.56, page_size_bytes=4096,
                    description="Seagate Barracuda 120 SSD 1 TB (Jafari & Nagarkar 2021, "
                                "Section 4.2)")
#: The built-in profiles by name.
BUILTIN_PROFILES = {"hdd": HDD, "ssd": SSD}


def load_profile(path):
    """Read a profile from a JSON file written by :func:`save_profile`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not JSON or not a valid profile (the message names the field).
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not JSON ({exc}); a profile is written by "
                             f"'lshdisk calibrate --out'") from None
    return DeviceProfile.from_dict(data, source=path)


def save_profile(profile, path):
    """Write ``profile`` to ``path`` as JSON (replacing the file atomically)."""
    if not isinstance(profile, DeviceProfile):
        raise TypeError(f"profile must be a DeviceProfile, got {type(profile).__name__}")
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(profile.to_dict(), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def get_profile(spec):
    """Resolve ``spec`` to a :class:`DeviceProfile`.

    Parameters
    ----------
    spec : DeviceProfile, str or os.PathLike
        A profile, a built-in name (``"hdd"``, ``"ssd"``) or the path of a JSON profile.

    Raises
    ------
    ValueError
        If ``spec`` is neither a built-in name nor an existing file, or the file is invalid.
    """
    if isinstance(spec, DeviceProfile):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if text in BUILTIN_PROFILES:
            return BUILTIN_PROFILES[text]
        if os.path.isfile(text):
            return load_profile(text)
        raise ValueError(f"device must be one of {', '.join(BUILTIN_PROFILES)} or the path of a "
                         f"JSON profile (from 'lshdisk calibrate --out'), got {text!r}")
    raise TypeError(f"device must be a DeviceProfile, a name or a path, got {type(spec).__name__}")
