"""DeviceProfile: the study's built-ins, JSON round trip, and rejection of bad profiles."""

import dataclasses
import json

import pytest

from cost_model import (BUILTIN_PROFILES, HDD, SSD, DeviceProfile, get_profile, load_profile,
                        save_profile)


def test_profile_builtins_match_jafari2021_section_4_2():
    assert (HDD.name, HDD.seek_ms, HDD.read_mb_per_ms, HDD.page_size_bytes) == ("hdd", 8.5, 0.156, 4096)
    assert (SSD.name, SSD.seek_ms, SSD.read_mb_per_ms, SSD.page_size_bytes) == ("ssd", 0.01, 0.56, 4096)
    assert BUILTIN_PROFILES == {"hdd": HDD, "ssd": SSD}
    assert "Barracuda" in HDD.description and "Barracuda 120" in SSD.description


def test_profile_page_read_is_seek_plus_one_page_transfer():
    assert HDD.page_read_ms == pytest.approx(8.5 + 4096 / 1e6 / 0.156)


def test_profile_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        HDD.seek_ms = 1.0


@pytest.mark.parametrize("profile", [
    HDD, SSD,
    DeviceProfile(name="vm_disk", seek_ms=0.0587, read_mb_per_ms=1.82, page_size_bytes=8192,
                  readahead_bytes=8 * 2**20, description="measured"),
    DeviceProfile(name="ramdisk", seek_ms=0.0, read_mb_per_ms=20.0),
])
def test_profile_json_round_trip(profile, tmp_path):
    path = tmp_path / "p.json"
    save_profile(profile, path)
    assert load_profile(path) == profile
    assert get_profile(path) == profile
    assert get_profile(str(path)) == profile
    data = json.loads(path.read_text())
    assert data["format"] == "lshdisk-device-profile" and data["format_version"] == 1


def test_profile_get_by_name_and_instance():
    assert get_profile("hdd") is HDD and get_profile("ssd") is SSD
    assert get_profile(SSD) is SSD
    with pytest.raises(ValueError, match="hdd, ssd"):
        get_profile("floppy")
    with pytest.raises(TypeError):
        get_profile(3)


@pytest.mark.parametrize("field, value", [
    ("seek_ms", -0.5), ("seek_ms", float("nan")), ("seek_ms", "fast"), ("seek_ms", True),
    ("read_mb_per_ms", 0.0), ("read_mb_per_ms", -1.0), ("read_mb_per_ms", float("inf")),
    ("page_size_bytes", 0), ("page_size_bytes", 4096.0), ("readahead_bytes", -1),
    ("name", ""), ("name", "my disk"), ("name", "1st"),
])
def test_profile_rejects_bad_values_naming_the_field(field, value):
    fields = dict(name="x", seek_ms=1.0, read_mb_per_ms=1.0)
    fields[field] = value
    with pytest.raises(ValueError, match=field):
        DeviceProfile(**fields)


@pytest.mark.parametrize("missing", ["name", "seek_ms", "read_mb_per_ms", "page_size_bytes"])
def test_profile_missing_field_is_named(missing, tmp_path):
    data = HDD.to_dict()
    del data[missing]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=repr(missing)):
        load_profile(path)


@pytest.mark.parametrize("data, match", [
    ({"format": "something-else"}, "not a device profile"),
    ({"format_version": 2}, "version 2"),
    ({"seek_ms": -3.0}, "seek_ms"),
    ({"read_mb_per_ms": 0}, "read_mb_per_ms"),
])
def test_profile_file_with_bad_content_rejected(data, match, tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(dict(HDD.to_dict(), **data)))
    with pytest.raises(ValueError, match=match):
        load_profile(path)


def test_profile_file_not_json_or_not_object(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("seek 8.5 ms")
    with pytest.raises(ValueError, match="not JSON"):
        load_profile(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        load_profile(path)
