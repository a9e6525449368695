"""`lshdisk report`, `lshdisk calibrate` and io_report: QPT columns, figures, profiles.

Small clustered data (3000 x 16 float32, 20 queries); one index per algorithm in
lshdisk.ALGORITHMS, so new methods are covered as soon as they exist.
"""

import importlib.util
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

import lshdisk
from cost_model import HDD, SSD, DeviceProfile, load_profile, save_profile
from lshdisk.cli import main
from lshdisk.report import _IndexRows, io_report, measure_scan_ms
from lshdisk.synthetic import clustered_chunks

N, D, NQ = 3000, 16, 20
#: Every method whose build needs nothing beyond the test extra (neoph needs PyTorch).
BUILT = tuple(a for a in lshdisk.ALGORITHMS
              if a != "neoph" or importlib.util.find_spec("torch") is not None)
KS = (1, 5, 10)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report_setup(tmp_path_factory):
    """Data, queries (.npy), qalsh-layout ground truth, and one index per algorithm."""
    root = tmp_path_factory.mktemp("report")
    x = next(clustered_chunks(N, D, seed=5, n_clusters=20, stream=0))
    q = next(clustered_chunks(NQ, D, seed=5, n_clusters=20, stream=1))
    np.save(root / "queries.npy", q)
    gt_d, gt_i = lshdisk.compute_groundtruth(x, q, max(KS))
    lshdisk.write_groundtruth(root / "gt.qalsh", gt_d, gt_i)
    indexes = []
    for algorithm in BUILT:
        path = root / f"data.{algorithm}"
        lshdisk.build(x, path, algorithm=algorithm, memory_limit="16MiB", seed=0).close()
        indexes.append(str(path))
    return SimpleNamespace(root=root, x=x, q=q, gt_d=gt_d, indexes=indexes,
                           queries=str(root / "queries.npy"), gt=str(root / "gt.qalsh"))


def _run(args):
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result


def _qpt(row, p, prefix=""):
    return row[prefix + "seeks"] * p.seek_ms + row[prefix + "mb_read"] / p.read_mb_per_ms \
        + row[prefix + "algorithm_ms"]


def test_report_cli_writes_json_csv_and_seven_figures(report_setup, tmp_path):
    s = report_setup
    out_json, out_csv, figs = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "figs"
    result = _run(["report", *s.indexes, "--queries", s.queries, "--gt", s.gt, "-k", "1,5,10",
                   "--device", "hdd,ssd", "--json", str(out_json), "--csv", str(out_csv),
                   "--plot", str(figs), "-q"])
    assert result.exit_code == 0, result.output
    assert "== hdd" in result.output and "== ssd" in result.output
    assert "linear scan" in result.output and "QPT = seeks x seek_ms" in result.output

    data = json.loads(out_json.read_text())
    rows = data["rows"]
    assert len(rows) == len(BUILT) * len(KS)
    assert {(r["algorithm"], r["k"]) for r in rows} == {(a, k) for a in BUILT for k in KS}
    for r in rows:
        for key in ("algorithm", "k", "seeks", "mb_read", "algorithm_ms", "hdd_qpt_ms",
                    "ssd_qpt_ms", "ratio", "recall"):
            assert key in r, key
        # The QPT columns follow the formula from the row's own means, term by term.
        assert r["hdd_qpt_ms"] == pytest.approx(_qpt(r, HDD), rel=1e-12)
        assert r["ssd_qpt_ms"] == pytest.approx(_qpt(r, SSD), rel=1e-12)
        assert r["hdd_seek_term_ms"] == pytest.approx(r["seeks"] * 8.5, rel=1e-12)
        assert r["ssd_read_term_ms"] == pytest.approx(r["mb_read"] / 0.56, rel=1e-12)
        assert r["hdd_vs_scan"] == pytest.approx(r["hdd_scan_qpt_ms"] / r["hdd_qpt_ms"])
        assert r["seeks"] > 0 and r["mb_read"] > 0 and r["algorithm_ms"] > 0
        assert 0.0 <= r["recall"] <= 1.0 and r["ratio"] >= 1.0 - 1e-6
        assert r["n_queries"] == NQ
    [scan] = data["linear_scan"]
    assert scan["seeks"] == 1.0 and scan["mb_read"] == pytest.approx(N * D * 4 / 1e6)
    assert scan["hdd_qpt_ms"] == pytest.approx(_qpt(scan, HDD), rel=1e-12)
    assert scan["ssd_qpt_ms"] == pytest.approx(_qpt(scan, SSD), rel=1e-12)
    assert [d["name"] for d in data["devices"]] == ["hdd", "ssd"]
    assert "process_time" in data["scan_method"]

    lines = out_csv.read_text().splitlines()
    header = lines[0].split(",")
    assert {"algorithm", "k", "seeks", "mb_read", "algorithm_ms", "hdd_qpt_ms", "ssd_qpt_ms",
            "ratio", "recall"} <= set(header)
    assert len(lines) == 1 + len(rows) + 1  # rows, then the linear scan

    pngs = sorted(os.listdir(figs))
    assert pngs == ["fig1_seeks.png", "fig2_mb_read.png", "fig3_algorithm_ms.png",
                    "fig4_qpt_hdd.png", "fig5_qpt_ssd.png", "fig6_overall_ratio.png",
                    "fig7_recall_mb.png"]
    for name in pngs:
        blob = (figs / name).read_bytes()
        assert blob.startswith(PNG_MAGIC) and len(blob) > 20_000, name


def test_report_cli_extra_profile_gets_its_own_column(report_setup, tmp_path):
    s = report_setup
    mine = DeviceProfile(name="mine", seek_ms=0.25, read_mb_per_ms=2.0)
    save_profile(mine, tmp_path / "mine.json")
    out_json = tmp_path / "r.json"
    result = _run(["report", s.indexes[0], "--queries", s.queries, "--gt", s.gt, "-k", "3",
                   "--device", f"ssd,{tmp_path / 'mine.json'}", "--json", str(out_json), "-q"])
    assert result.exit_code == 0, result.output
    data = json.loads(out_json.read_text())
    [row] = data["rows"]
    assert row["mine_qpt_ms"] == pytest.approx(_qpt(row, mine), rel=1e-12)
    assert "hdd_qpt_ms" not in row and "== mine" in result.output


@pytest.mark.parametrize("args, code, message", [
    (["--device", "floppy"], 2, "hdd, ssd"),
    (["--device", "hdd,hdd"], 1, "distinct names"),
    (["-k", "11"], 1, "compute ground truth with -k >= 11"),
    (["-k", "0"], 2, "every k must be >= 1"),
])
def test_report_cli_errors_name_the_fix(report_setup, args, code, message):
    s = report_setup
    result = _run(["report", s.indexes[0], "--queries", s.queries, "--gt", s.gt, "-q", *args])
    assert result.exit_code == code
    assert message in result.output


def test_report_io_report_matches_the_formula(report_setup):
    s = report_setup
    with lshdisk.open(s.indexes[0]) as index:
        _, _, stats = index.search(s.q, 5, return_stats=True)
        rep = io_report(index, stats, device="hdd", queries=s.q)
        again = io_report(index, stats, device=HDD, scan_algorithm_ms=rep["linear_scan"]["algorithm_ms"])
    expect = stats.seeks * 8.5 + stats.bytes_read / 1e6 / 0.156 + stats.cpu_seconds * 1e3
    np.testing.assert_allclose(rep["per_query"]["qpt_ms"], expect, rtol=1e-12)
    assert rep["qpt_ms"] == pytest.approx(expect.mean())
    assert rep["device"] == "hdd" and rep["n_queries"] == NQ
    scan = rep["linear_scan"]
    assert scan["seeks"] == 1.0
    assert scan["qpt_ms"] == pytest.approx(8.5 + N * D * 4 / 1e6 / 0.156 + scan["algorithm_ms"])
    assert rep["lsh_pays_off"] == (rep["qpt_ms"] < scan["qpt_ms"])
    assert again["qpt_ms"] == pytest.approx(rep["qpt_ms"]) and again["linear_scan"] == scan


def test_report_scan_reads_the_index_vectors_exactly(report_setup, tmp_path):
    s = report_setup
    with lshdisk.open(s.indexes[0]) as index:
        rows = _IndexRows(index)
        try:
            np.testing.assert_array_equal(rows[0:N], s.x)
            np.testing.assert_array_equal(rows[17:1234], s.x[17:1234])
            assert rows[5:5].shape == (0, D)
        finally:
            rows.close()
        assert measure_scan_ms(index, s.q[:3], 4) > 0
    # Points larger than a page: each spans two 1 KiB pages.
    wide = np.random.default_rng(1).random((40, 300), dtype=np.float32)
    with lshdisk.build(wide, tmp_path / "wide", memory_limit="16MiB", page_size=1024) as index:
        assert index.vectors.pages_per_point == 2
        rows = _IndexRows(index)
        try:
            np.testing.assert_array_equal(rows[0:40], wide)
            np.testing.assert_array_equal(rows[3:7], wide[3:7])
        finally:
            rows.close()


def test_report_calibrate_writes_a_loadable_profile(tmp_path):
    out = tmp_path / "profile.json"
    work = tmp_path / "disk"
    work.mkdir()
    result = _run(["calibrate", str(work), "--size", "8MiB", "--reads", "200", "--out", str(out),
                   "--name", "vm", "-q"])
    assert result.exit_code == 0, result.output
    profile = load_profile(out)
    assert profile.name == "vm" and profile.page_size_bytes == 4096
    assert profile.seek_ms >= 0 and profile.read_mb_per_ms > 0
    assert "seek_ms" in result.output and "random" in result.output
    assert os.listdir(work) == []  # the test file is gone


def test_report_calibrate_json_and_bad_directory(tmp_path):
    result = _run(["calibrate", str(tmp_path), "--size", "2MiB", "--reads", "50", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["method"] in ("O_DIRECT", "posix_fadvise")
    assert data["random_reads"] == 50 and data["file_bytes"] == 2 * 2**20
    assert data["profile"]["format"] == "lshdisk-device-profile"
    missing = _run(["calibrate", str(tmp_path / "nope"), "--size", "2MiB"])
    assert missing.exit_code == 1 and "create it first" in missing.output
    tiny = _run(["calibrate", str(tmp_path), "--size", "100kB"])
    assert tiny.exit_code == 1 and "at least 1MiB" in tiny.output


def test_verdict_names_one_factor_when_every_k_is_equally_slow():
    from lshdisk.report import _verdict

    def rows(*vs_scan):
        return [{"label": "qalsh", "k": k, "hdd_qpt_ms": 100.0, "hdd_scan_qpt_ms": 10.0,
                 "hdd_vs_scan": v} for k, v in zip((1, 10), vs_scan)]

    hdd = SimpleNamespace(name="hdd")
    one = _verdict(SimpleNamespace(rows=rows(0.1, 0.1)), hdd)
    assert "LSH's QPT is 10x the scan's" in one[0]
    two = _verdict(SimpleNamespace(rows=rows(0.1, 0.05)), hdd)
    assert "LSH's QPT is 10x to 20x the scan's" in two[0]
