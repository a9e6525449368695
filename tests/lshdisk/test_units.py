"""Tests of lshdisk._units: byte sizes with decimal and binary units."""

import pytest

from lshdisk._units import format_bytes, parse_bytes


@pytest.mark.parametrize("text,want", [
    ("256MiB", 256 * 2**20),
    ("1GiB", 2**30),
    ("1.5GB", 1_500_000_000),
    ("1.5GiB", 3 * 2**29),
    ("4096", 4096),
    (4096, 4096),
    (0, 0),
    ("0", 0),
    ("512 KiB", 512 * 1024),
    ("64mib", 64 * 2**20),
    ("10kB", 10_000),
    ("2TiB", 2 * 2**40),
    ("7B", 7),
    (" 16MiB ", 16 * 2**20),
])
def test_units_parse_bytes(text, want):
    got = parse_bytes(text)
    assert got == want and isinstance(got, int)


@pytest.mark.parametrize("bad", ["lots", "-1", "1 GiBs", "", "GiB", "1e9", "1,5GB", "0x10", -1])
def test_units_parse_bytes_rejects_with_the_name(bad):
    with pytest.raises(ValueError, match="^memory_limit"):
        parse_bytes(bad, name="memory_limit")


@pytest.mark.parametrize("bad", [True, False])
def test_units_parse_bytes_rejects_bool(bad):
    with pytest.raises(TypeError, match="^cache_bytes"):
        parse_bytes(bad, name="cache_bytes")


def test_units_format_bytes():
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1024) == "1.0 KiB"
    assert format_bytes(256 * 2**20) == "256.0 MiB"
    assert format_bytes(3 * 2**29) == "1.5 GiB"
    assert format_bytes(2**50) == "1024.0 TiB"


def test_units_round_trip_of_binary_sizes():
    for n in (1024, 5 * 2**20, 2**30, 2**40):
        value, unit = format_bytes(n).split()
        assert parse_bytes(value + unit) == n
