"""Parsing of byte sizes such as ``"256MiB"`` or ``"1GiB"``."""

import re

__all__ = ["parse_bytes", "format_bytes"]

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6,
          "mib": 2**20, "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12,
          "tib": 2**40}


def parse_bytes(value, *, name="size"):
    """Bytes in ``value``: an int, or a string like ``"512MiB"``, ``"1.5GiB"``, ``"4096"``.

    Raises
    ------
    ValueError
        If the text is not a non-negative number with a known unit (B, kB, KiB, MB, MiB, GB,
        GiB, TB, TiB).
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a string such as '1GiB', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} must be >= 0 bytes, got {value}")
        return value
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"{name} must be a size such as '256MiB' or '1GiB', got {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_bytes(n):
    """``n`` bytes as a short human-readable string (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
