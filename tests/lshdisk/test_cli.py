"""Tests of the ``lshdisk`` command line (lshdisk.cli.main) with click's CliRunner."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import lshdisk
from lshdisk.cli import main
from lshdisk.evaluate import recall_at_k

COMMANDS = ["build", "insert", "delete", "compact", "search", "groundtruth", "evaluate", "tune", "info", "verify", "demo"]


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _assert_clean_failure(result, *needles):
    """Exit status 1, one 'Error: ...' line on stderr naming ``needles``, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    err = result.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err, err
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, clustered):
    """A small .npy base and query file, an index built by 'lshdisk build', and ground truth."""
    root = tmp_path_factory.mktemp("cli")
    base, queries = root / "base.npy", root / "queries.npy"
    np.save(base, clustered.x[:1500])
    np.save(queries, clustered.q[:20])
    index_dir = root / "base.qalsh"
    result = _run("build", base, index_dir, "--memory", "16MiB", "--seed", "1", "-q")
    assert result.exit_code == 0, result.output
    gt = root / "gt.gt"
    result = _run("groundtruth", base, queries, "-k", "10", "--out", gt, "-q")
    assert result.exit_code == 0, result.output
    return root, base, queries, index_dir, gt, result


def test_cli_help_of_every_command():
    result = _run("--help")
    assert result.exit_code == 0
    for cmd in COMMANDS:
        assert cmd in result.output
        sub = _run(cmd, "--help")
        assert sub.exit_code == 0, (cmd, sub.output)
        assert sub.output.startswith("Usage: ") and cmd in sub.output.splitlines()[0]
    assert _run("build", "-h").exit_code == 0


def test_cli_version():
    result = _run("--version")
    assert result.exit_code == 0 and lshdisk.__version__ in result.output


def test_cli_build_writes_an_index(cli_files):
    root, base, _, index_dir, _, _ = cli_files
    with lshdisk.open(index_dir) as index:
        assert (index.n, index.d, index.info()["seed"]) == (1500, 16, 1)
        assert index.info()["build"]["memory_limit_bytes"] == 16 * 2**20
        assert index.info()["dataset"]["source"] == str(base)


def test_cli_build_json(cli_files, tmp_path):
    _, base, _, _, _, _ = cli_files
    result = _run("build", base, tmp_path / "j.idx", "--json", "-q", "-c", "3", "--page-size",
                  "8192")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["params"]["c"] == 3.0 and data["page_size"] == 8192
    assert data["params"]["m"] == lshdisk.qalsh_params(1500, c=3.0).m
    assert data["seconds"] >= 0


def test_cli_info_text_and_json(cli_files):
    _, _, _, index_dir, _, _ = cli_files
    p = lshdisk.qalsh_params(1500)
    text = _run("info", index_dir)
    assert text.exit_code == 0, text.output
    assert "algorithm  qalsh" in text.stdout
    assert f"m = {p.m}" in text.stdout and f"l = {p.l}" in text.stdout
    assert "n = 1500, d = 16" in text.stdout
    js = _run("info", index_dir, "--json")
    assert js.exit_code == 0
    data = json.loads(js.stdout)
    assert (data["params"]["m"], data["params"]["l"]) == (p.m, p.l)
    assert data["n"] == 1500 and set(data["files"]) == {"trees.pages", "vectors.pages"}


def test_cli_search_writes_readable_results(cli_files, clustered, oracle):
    root, _, queries, index_dir, _, _ = cli_files
    out = root / "res.gt"
    result = _run("search", index_dir, queries, "-k", "5", "--out", out)
    assert result.exit_code == 0, result.output
    assert "20 queries, k = 5" in result.stdout and str(out) in result.stdout
    D, I = lshdisk.read_groundtruth(out, n_queries=20)
    assert D.shape == I.shape == (20, 5)
    with lshdisk.open(index_dir) as index:
        D_api, I_api = index.search(clustered.q[:20], 5)
    np.testing.assert_array_equal(I, I_api)
    np.testing.assert_array_equal(D, D_api)
    np.testing.assert_allclose(D, oracle.true_distances(clustered.x, clustered.q[:20], I),
                               rtol=1e-5)


def test_cli_search_json_and_ivecs(cli_files):
    root, _, queries, index_dir, _, _ = cli_files
    out = root / "res.ivecs"
    result = _run("search", index_dir, queries, "-k", "3", "--out", out, "--json",
                  "--cache", "8MiB")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["queries"] == 20 and summary["k"] == 3
    assert summary["page_reads"] > 0 and summary["candidates"] >= 3
    D, I = lshdisk.read_groundtruth(out, format="ivecs", n_queries=20)
    assert D is None and I.shape == (20, 3)


def test_cli_groundtruth_matches_numpy(cli_files, clustered, oracle):
    _, _, _, _, gt, result = cli_files
    assert "exact 10-NN of 20 queries" in result.stdout
    D, I = lshdisk.read_groundtruth(gt, n_queries=20)
    want_d, want_i = oracle.exact_knn(clustered.x[:1500], clustered.q[:20], 10)
    np.testing.assert_array_equal(I, want_i)
    np.testing.assert_allclose(D, want_d, rtol=1e-6)


def test_cli_evaluate_json_rows(cli_files):
    _, _, queries, index_dir, gt, _ = cli_files
    result = _run("evaluate", index_dir, queries, "--gt", gt, "-k", "1,5", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [r["k"] for r in rows] == [1, 5]
    for r in rows:
        assert {"ratio", "recall", "page_reads", "seeks", "mb_read", "candidates",
                "cpu_ms"} <= set(r)
        assert 1.0 <= r["ratio"] <= 1.2 and 0.0 <= r["recall"] <= 1.0
    assert rows[1]["recall"] >= 0.8


def test_cli_evaluate_table(cli_files):
    _, _, queries, index_dir, gt, _ = cli_files
    result = _run("evaluate", index_dir, queries, "--gt", gt, "-k", "1,10")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["algorithm", "k", "ratio", "recall"]
    assert set(lines[1]) <= {"-", " "}
    assert [ln.split()[1] for ln in lines[2:]] == ["1", "10"]


def test_cli_evaluate_k_beyond_ground_truth_fails_cleanly(cli_files):
    _, _, queries, index_dir, gt, _ = cli_files
    result = _run("evaluate", index_dir, queries, "--gt", gt, "-k", "1,20")
    _assert_clean_failure(result, "k = 20", "-k >= 20")


def test_cli_evaluate_ground_truth_of_other_queries_fails_cleanly(cli_files, tmp_path):
    _, _, queries, index_dir, gt, _ = cli_files
    fewer = tmp_path / "q.npy"
    np.save(fewer, np.load(queries)[:7])  # gt.gt holds 20 x 10 records: not 7 x K
    result = _run("evaluate", index_dir, fewer, "--gt", gt, "-k", "1")
    _assert_clean_failure(result, "n_queries")


@pytest.mark.parametrize("ks", ["0", "1,x", ""])
def test_cli_evaluate_bad_k_list_is_a_usage_error(cli_files, ks):
    _, _, queries, index_dir, gt, _ = cli_files
    result = _run("evaluate", index_dir, queries, "--gt", gt, "-k", ks)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_cli_build_into_existing_dir_fails_cleanly(cli_files):
    _, base, _, index_dir, _, _ = cli_files
    before = sorted(p.name for p in index_dir.iterdir())
    result = _run("build", base, index_dir, "-q")
    _assert_clean_failure(result, "already exists", "--overwrite")
    assert sorted(p.name for p in index_dir.iterdir()) == before


def test_cli_build_overwrite(cli_files, tmp_path):
    _, base, _, _, _, _ = cli_files
    target = tmp_path / "o.idx"
    assert _run("build", base, target, "-q", "--seed", "1").exit_code == 0
    result = _run("build", base, target, "-q", "--seed", "2", "--overwrite")
    assert result.exit_code == 0, result.output
    with lshdisk.open(target) as index:
        assert index.info()["seed"] == 2


@pytest.mark.parametrize("args,needle", [
    (["--memory", "lots"], "memory_limit"),
    (["--memory", "1MiB"], "memory_limit"),
    (["--page-size", "1000"], "page_size"),
    (["-c", "1"], "approximation ratio"),
    (["--seed", "-3"], "seed"),
    (["--dim", "7"], "dim"),
])
def test_cli_build_bad_options_fail_cleanly(cli_files, tmp_path, args, needle):
    _, base, _, _, _, _ = cli_files
    result = _run("build", base, tmp_path / "x.idx", "-q", *args)
    _assert_clean_failure(result, needle)
    assert not (tmp_path / "x.idx").exists()


def test_cli_build_of_a_missing_or_raw_source_fails_cleanly(tmp_path):
    result = _run("build", tmp_path / "nope.fvecs", tmp_path / "x.idx", "-q")
    _assert_clean_failure(result)
    (tmp_path / "data.bin").write_bytes(bytes(100))
    result = _run("build", tmp_path / "data.bin", tmp_path / "x.idx", "-q")
    _assert_clean_failure(result, "--dtype", "--dim")


def test_cli_info_and_search_of_a_non_index_fail_cleanly(tmp_path, cli_files):
    _, _, queries, _, _, _ = cli_files
    _assert_clean_failure(_run("info", tmp_path), "not an lshdisk index")
    _assert_clean_failure(_run("search", tmp_path / "missing", queries, "--out",
                               tmp_path / "r.gt"), "is not a directory")
    assert not (tmp_path / "r.gt").exists()


def test_cli_search_wrong_dimension_and_bad_k(cli_files, tmp_path):
    _, _, _, index_dir, _, _ = cli_files
    q = tmp_path / "q.npy"
    np.save(q, np.zeros((3, 15), dtype=np.float32))
    result = _run("search", index_dir, q, "--out", tmp_path / "r.gt")
    _assert_clean_failure(result, "15", "16")
    result = _run("search", index_dir, q, "-k", "0", "--out", tmp_path / "r.gt")
    assert result.exit_code == 2 and "k must be >= 1" in result.output


def test_cli_evaluate_mnist_raw_queries(mnist_dir, mnist_index_dir, mnist_queries):
    result = _run("evaluate", mnist_index_dir, mnist_dir / "Mnist.q", "--gt",
                  mnist_dir / "Mnist.gt2.0", "--query-dtype", "uint8", "-k", "10", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["rows"]
    assert row["k"] == 10
    assert row["ratio"] <= 1.01 and row["recall"] >= 0.90
    assert row["page_reads"] <= 1768
    assert row["mb_read"] == pytest.approx(row["page_reads"] * 4096 / 1e6)


def test_cli_mnist_raw_queries_need_their_dtype(mnist_dir, mnist_index_dir):
    result = _run("evaluate", mnist_index_dir, mnist_dir / "Mnist.q", "--gt",
                  mnist_dir / "Mnist.gt2.0", "-k", "10")
    _assert_clean_failure(result, "--dtype")


def test_cli_demo_small(tmp_path):
    work = tmp_path / "demo"
    result = _run("demo", "--dir", work, "-n", "3000", "-d", "16", "-q")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for step in ("1/5", "2/5", "3/5", "4/5", "5/5"):
        assert sum(ln.startswith(step) for ln in out.splitlines()) == 1, step
    assert "untimed" in out  # the warm-up queries are not in the timings
    lines = out.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["k"])
    assert lines[header].split()[:3] == ["k", "overall", "ratio"]
    ks = [lines[header + 2 + j].split()[0] for j in range(3)]
    assert ks == ["1", "10", "100"]
    ratio_k10 = float(lines[header + 3].split()[1])
    assert 1.0 <= ratio_k10 <= 1.1
    # The cost report after the evaluation: per device, one row per k, then the linear scan.
    report = lines[next(i for i, ln in enumerate(lines) if ln.startswith("5/5")):]
    for device in ("hdd", "ssd"):
        top = next(i for i, ln in enumerate(report) if ln.startswith(f"== {device}: seek "))
        assert report[top + 1].split()[:3] == ["algorithm", "k", "seeks"]
        rows = [report[top + 3 + j].split() for j in range(11)]
        assert [r[0] for r in rows] == ["qalsh"] * 11
        assert [int(r[1]) for r in rows] == [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
        scan = report[top + 3 + 11].split()
        assert scan[:4] == ["linear", "scan", "(base.npy)", "any"]
        assert float(scan[5]) == pytest.approx(3000 * 16 * 4 / 1e6, abs=1e-3)  # MB read
        assert any(ln.startswith(f"{device}: qalsh ") for ln in report[top:])  # the verdict
    # The seven figures, written under the demo directory, each path printed.
    figures = work / "figures"
    names = ["fig1_seeks.png", "fig2_mb_read.png", "fig3_algorithm_ms.png", "fig4_qpt_hdd.png",
             "fig5_qpt_ssd.png", "fig6_overall_ratio.png", "fig7_recall_mb.png"]
    assert sorted(p.name for p in figures.iterdir()) == sorted(names)
    for name in names:
        assert f"wrote {figures / name}" in lines
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in work.iterdir()) == ["base.npy", "base.qalsh", "figures",
                                                      "groundtruth.gt", "queries.npy"]
    with lshdisk.open(work / "base.qalsh") as index:
        assert (index.n, index.d) == (3000, 16)
    # Running it again replaces the demo files.
    again = _run("demo", "--dir", work, "-n", "3000", "-d", "16", "-q")
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in figures.iterdir()) == sorted(names)


def test_cli_demo_without_matplotlib_fails_before_any_work(tmp_path, monkeypatch):
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else find_spec(name, *a))
    result = _run("demo", "--dir", tmp_path / "demo", "-n", "3000", "-d", "16", "-q")
    _assert_clean_failure(result, "matplotlib", "lshdisk[plot]")
    assert not (tmp_path / "demo").exists()


def test_cli_search_results_score_like_the_api(cli_files, clustered):
    root, _, queries, index_dir, gt, _ = cli_files
    out = root / "res10.gt"
    assert _run("search", index_dir, queries, "-k", "10", "--out", out).exit_code == 0
    D, _ = lshdisk.read_groundtruth(out, n_queries=20)
    gt_d, _ = lshdisk.read_groundtruth(gt, n_queries=20)
    assert recall_at_k(D, gt_d, 10) >= 0.8


# --------------------------------------------------------------------------- issue 10 items

def test_cli_evaluate_refuses_the_ground_truth_of_other_data(cli_files, clustered, tmp_path):
    _, _, queries, index_dir, _, _ = cli_files
    other = tmp_path / "other.gt"
    D, I = lshdisk.compute_groundtruth(clustered.x[1500:3000], np.load(queries), 10)
    lshdisk.write_groundtruth(other, D, I)
    result = _run("evaluate", index_dir, queries, "--gt", other, "-k", "1,10")
    _assert_clean_failure(result, "does not belong to these queries/this data")
    result = _run("report", index_dir, "--queries", queries, "--gt", other, "-k", "1",
                  "--device", "ssd")
    _assert_clean_failure(result, "does not belong to these queries/this data")


def test_cli_k_beyond_the_index_is_refused_before_searching(cli_files, tmp_path):
    _, _, queries, index_dir, gt, _ = cli_files
    result = _run("search", index_dir, queries, "-k", "1000000000", "--out", tmp_path / "r.gt")
    assert result.exit_code == 2 and "exceeds the 1500 points" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r.gt").exists()
    result = _run("evaluate", index_dir, queries, "--gt", gt, "-k", "1,2000")
    assert result.exit_code == 2 and "-k <= 1500" in result.output


def test_cli_output_into_a_missing_directory_fails_first(cli_files, tmp_path):
    _, base, queries, index_dir, _, _ = cli_files
    for args in (["search", index_dir, queries], ["groundtruth", base, queries]):
        result = _run(*args, "-k", "5", "--out", tmp_path / "missing" / "r.gt")
        assert result.exit_code == 2 and "does not exist: create it first" in result.output


@pytest.mark.parametrize("ks", ["1,,10", "1,", ",5"])
def test_cli_k_list_with_an_empty_item_is_refused(cli_files, ks):
    _, _, queries, index_dir, gt, _ = cli_files
    result = _run("evaluate", index_dir, queries, "--gt", gt, "-k", ks)
    assert result.exit_code == 2 and "comma-separated integers" in result.output


def test_cli_query_options_have_one_spelling_everywhere(cli_files, tmp_path):
    _, _, queries, index_dir, gt, _ = cli_files
    out = tmp_path / "r.gt"
    assert _run("search", index_dir, "--queries", queries, "-k", "3", "--out", out).exit_code == 0
    result = _run("evaluate", index_dir, "--queries", queries, "--gt", gt, "-k", "1", "--json")
    assert result.exit_code == 0, result.output
    both = _run("search", index_dir, queries, "--queries", queries, "-k", "3", "--out", out)
    assert both.exit_code == 2 and "give the query file once" in both.output
    for fmt_opt in ("--query-format", "--format"):
        result = _run("report", index_dir, "--queries", queries, fmt_opt, "npy", "--gt", gt,
                      "-k", "1", "--device", "ssd")
        assert result.exit_code == 0, result.output


def test_cli_raw_queries_that_fit_two_layouts_say_which_was_assumed(cli_files, tmp_path):
    _, _, queries, index_dir, _, _ = cli_files
    raw = tmp_path / "q.raw"
    np.load(queries).astype("<f4").tofile(raw)  # 20 float32 queries of d = 16 = 80 uint8 ones
    result = _run("search", index_dir, raw, "--query-dtype", "uint8", "-k", "3", "--out",
                  tmp_path / "r.gt")
    assert result.exit_code == 0, result.output
    assert "note: read" in result.stderr and "80 raw uint8 queries" in result.stderr
    assert "20 float32" in result.stderr
    quiet = _run("search", index_dir, raw, "--query-dtype", "float32", "-k", "3", "--out",
                 tmp_path / "r.gt")
    assert quiet.exit_code == 0 and "20 float32" not in quiet.stderr


def test_cli_search_threads_and_candidate_cap_pass_through(cli_files, clustered):
    root, _, queries, index_dir, _, _ = cli_files
    out = root / "capped.gt"
    result = _run("search", index_dir, queries, "-k", "5", "--out", out, "--threads", "2",
                  "--max-candidates", "12", "--termination", "budget", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["candidates"] == 12  # the budget policy verifies up to the cap
    D, I = lshdisk.read_groundtruth(out, n_queries=20)
    with lshdisk.open(index_dir) as index:
        D_api, I_api = index.search(clustered.q[:20], 5, max_candidates=12, termination="budget",
                                    threads=1)
    np.testing.assert_array_equal(I, I_api)


def test_cli_candidate_cap_below_k_is_a_one_line_error(cli_files):
    root, _, queries, index_dir, gt, _ = cli_files
    result = _run("search", index_dir, queries, "-k", "5", "--out", root / "x.gt",
                  "--max-candidates", "3")
    _assert_clean_failure(result, "max_candidates must be >= k = 5")
    result = _run("evaluate", index_dir, queries, "--gt", gt, "-k", "1,10", "--max-candidates",
                  "5", "-q")
    _assert_clean_failure(result, "max_candidates must be >= k = 10")


def test_cli_build_with_the_papers_unit(cli_files, tmp_path):
    _, base, _, _, _, _ = cli_files
    result = _run("build", base, tmp_path / "u1", "--memory", "16MiB", "--unit", "1", "-q")
    assert result.exit_code == 0, result.output
    with lshdisk.open(tmp_path / "u1") as index:
        assert index.meta["unit"]["u"] == 1.0
    result = _run("build", base, tmp_path / "bad", "--unit", "wide", "-q")
    assert result.exit_code == 2 and "expected auto or a positive number" in result.output
