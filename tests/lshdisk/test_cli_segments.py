"""The change commands of the command line (lshdisk insert, delete, compact) and the segments
part of 'lshdisk info', with click's CliRunner.

Oracles: the library's own view of the index after each command (ids, n, manifest), and the
search finding inserted points at distance 0 and never a deleted one.
"""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import lshdisk
from lshdisk.cli import main

N_BASE, N_NEW, D = 1500, 500, 16


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _assert_clean_failure(result, *needles, status=1):
    """Exit ``status``, one error line on stderr naming ``needles``, no traceback."""
    assert result.exit_code == status, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert "Traceback" not in result.output
    err = result.stderr.strip()
    if status == 1:
        assert err.startswith("Error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def base_index(tmp_path_factory, clustered):
    """A QALSH index of 1500 clustered points built by 'lshdisk build', and 500 more points
    as .npy and as a raw float32 file."""
    root = tmp_path_factory.mktemp("cli-seg")
    np.save(root / "base.npy", clustered.x[:N_BASE])
    np.save(root / "new.npy", clustered.x[N_BASE:N_BASE + N_NEW])
    clustered.x[N_BASE:N_BASE + N_NEW].tofile(root / "new.raw")
    result = _run("build", root / "base.npy", root / "base.qalsh", "--memory", "16MiB", "-q")
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def index(base_index, tmp_path):
    """A private copy of the built index."""
    dest = tmp_path / "idx"
    shutil.copytree(base_index / "base.qalsh", dest)
    return dest


def test_cli_segments_help_explains_each_change():
    for cmd, needles in [("insert", ["new segment", "ids", "--memory", "--dtype", "--dim"]),
                         ("delete", ["tombstone", "--ids FILE", "--id N", ".npy"]),
                         ("compact", ["keep their ids", "--memory", "atomic"])]:
        result = _run(cmd, "--help")
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        for needle in needles:
            assert needle in text, (cmd, needle)
    assert "insert" in _run("--help").output


def test_cli_segments_insert_prints_the_id_range(base_index, index, clustered):
    result = _run("insert", index, base_index / "new.npy", "--memory", "16MiB", "-q")
    assert result.exit_code == 0, result.output
    assert f"inserted {N_NEW} points" in result.stdout
    assert f"ids {N_BASE} .. {N_BASE + N_NEW - 1}" in result.stdout
    assert "segments/s000001" in result.stdout
    with lshdisk.open(index) as ix:
        assert (ix.n, ix.segment_count) == (N_BASE + N_NEW, 2)
        rows = np.arange(N_BASE, N_BASE + N_NEW, 50)
        dist, ids = ix.search(clustered.x[rows], 1)
    np.testing.assert_array_equal(ids[:, 0], rows)
    np.testing.assert_array_equal(dist[:, 0], 0.0)


def test_cli_segments_insert_raw_json(base_index, index):
    result = _run("insert", index, base_index / "new.raw", "--format", "raw", "--dtype",
                  "float32", "--dim", D, "--memory", "16MiB", "--json", "-q")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["added"] == {"count": N_NEW, "first_id": N_BASE, "last_id": N_BASE + N_NEW - 1}
    assert data["n"] == N_BASE + N_NEW and data["next_id"] == N_BASE + N_NEW
    assert [s["n"] for s in data["segments"]] == [N_BASE, N_NEW]


def test_cli_segments_insert_failures_are_one_line(base_index, index, tmp_path, clustered):
    np.save(tmp_path / "narrow.npy", clustered.x[:10, :D - 1])
    _assert_clean_failure(_run("insert", index, tmp_path / "narrow.npy", "-q"),
                          f"dimension {D - 1}", f"insert {D}-dimensional points")
    _assert_clean_failure(_run("insert", tmp_path / "nothing", base_index / "new.npy", "-q"),
                          "nothing")
    _assert_clean_failure(_run("insert", index, base_index / "new.npy", "--memory", "1MiB",
                               "-q"), "16MiB")
    with lshdisk.open(index) as ix:
        assert ix.segment_count == 1


def test_cli_segments_delete_from_a_text_file_and_single_ids(index, tmp_path, clustered):
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("3\n5 7\n\n  11\t13\n3\n")
    result = _run("delete", index, "--ids", ids_file, "--id", 17, "--id", 5)
    assert result.exit_code == 0, result.output
    assert "deleted 6 of 8 ids given" in result.stdout
    again = _run("delete", index, "--id", 3, "--json")
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["deleted"] == 0 and data["tombstones"] == 6 and data["n"] == N_BASE - 6
    gone = [3, 5, 7, 11, 13, 17]
    with lshdisk.open(index) as ix:
        assert ix.n == N_BASE - 6
        _, ids = ix.search(clustered.x[gone], 5)
    assert not np.isin(ids, gone).any()


def test_cli_segments_delete_from_a_npy_file(index, tmp_path):
    np.save(tmp_path / "ids.npy", np.arange(0, 300, 2, dtype=np.uint32).reshape(15, 10))
    result = _run("delete", index, "--ids", tmp_path / "ids.npy")
    assert result.exit_code == 0, result.output
    assert "deleted 150 of 150" in result.stdout
    with lshdisk.open(index) as ix:
        assert ix.manifest.tombstone_count == 150


def test_cli_segments_delete_refuses_bad_ids(index, tmp_path):
    (tmp_path / "bad.txt").write_text("1 2 x3\n")
    _assert_clean_failure(_run("delete", index, "--ids", tmp_path / "bad.txt"), "'x3'",
                          "integer id", status=2)
    np.save(tmp_path / "float.npy", np.array([1.0, 2.5]))
    _assert_clean_failure(_run("delete", index, "--ids", tmp_path / "float.npy"), "float64",
                          "integer array", status=2)
    _assert_clean_failure(_run("delete", index), "--ids FILE", "--id N", status=2)
    _assert_clean_failure(_run("delete", index, "--id", N_BASE), f"id {N_BASE} is not an id",
                          "pass ids the index returned")
    _assert_clean_failure(_run("delete", index, "--id", -4), "id -4 is not an id")
    with lshdisk.open(index) as ix:
        assert ix.manifest.tombstones is None


def test_cli_segments_compact_prints_the_points_kept(base_index, index):
    assert _run("insert", index, base_index / "new.npy", "--memory", "16MiB", "-q").exit_code == 0
    assert _run("delete", index, "--id", 0, "--id", N_BASE + 1).exit_code == 0
    result = _run("compact", index, "--memory", "16MiB", "-q")
    assert result.exit_code == 0, result.output
    kept = N_BASE + N_NEW - 2
    assert f"{kept} points kept, 2 segment(s) merged into 1, 2 deleted point(s) dropped" \
        in result.stdout
    with lshdisk.open(index) as ix:
        assert (ix.n, ix.segment_count, ix.manifest.tombstone_count) == (kept, 1, 0)
    again = _run("compact", index, "--json", "-q")  # nothing left to do
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["kept"] == kept and data["merged"] == 1 and data["dropped"] == 0


def test_cli_segments_compact_of_nothing_live_fails_cleanly(index):
    (index.parent / "empty.txt").write_text("")
    empty = _run("delete", index, "--ids", index.parent / "empty.txt")
    assert empty.exit_code == 0 and "deleted 0 of 0" in empty.stdout
    np.save(index.parent / "all.npy", np.arange(N_BASE))
    assert _run("delete", index, "--ids", index.parent / "all.npy").exit_code == 0
    _assert_clean_failure(_run("compact", index, "-q"), "every point", "insert points")


def test_cli_segments_info_lists_segments_next_id_and_tombstones(base_index, index):
    plain = _run("info", index)
    assert plain.exit_code == 0, plain.output
    assert f"segments   1; next id {N_BASE}; 0 deleted of {N_BASE} rows" in plain.stdout
    assert f"segment    .: n = {N_BASE}, ids 0 .. {N_BASE - 1}" in plain.stdout
    assert _run("insert", index, base_index / "new.npy", "--memory", "16MiB", "-q").exit_code == 0
    assert _run("delete", index, "--id", 4, "--id", 9, "--id", N_BASE + 3).exit_code == 0
    result = _run("info", index)
    assert result.exit_code == 0, result.output
    rows = N_BASE + N_NEW
    assert f"segments   2; next id {rows}; 3 deleted of {rows} rows" in result.stdout
    assert f"segment    segments/s000001: n = {N_NEW}, ids {N_BASE} .. {rows - 1}" \
        in result.stdout
    assert f"n = {rows - 3}," in result.stdout
    data = json.loads(_run("info", index, "--json").stdout)["segments"]
    assert (data["next_id"], data["tombstones"], data["live"]) == (rows, 3, rows - 3)
    assert [(s["name"], s["n"], s["id_start"]) for s in data["segments"]] == [
        (".", N_BASE, 0), ("segments/s000001", N_NEW, N_BASE)]
    assert _run("compact", index, "--memory", "16MiB", "-q").exit_code == 0
    after = _run("info", index)
    assert f"segment    .: n = {rows - 3}, ids id map (global-ids.pages)" in after.stdout
    assert f"segments   1; next id {rows}; 0 deleted of {rows - 3} rows" in after.stdout


def test_cli_segments_evaluate_a_segmented_index(base_index, index, clustered, tmp_path):
    assert _run("insert", index, base_index / "new.npy", "--memory", "16MiB", "-q").exit_code == 0
    np.save(tmp_path / "all.npy", clustered.x[:N_BASE + N_NEW])
    np.save(tmp_path / "q.npy", clustered.q[:20])
    gt = tmp_path / "gt.gt"
    made = _run("groundtruth", tmp_path / "all.npy", tmp_path / "q.npy", "-k", 10, "--out", gt,
                "-q")
    assert made.exit_code == 0, made.output
    result = _run("evaluate", index, tmp_path / "q.npy", "--gt", gt, "-k", 10, "--json", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"][0]["recall"] >= 0.9
