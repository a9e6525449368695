"""Tests of learned termination (lshdisk.learned_termination, lshdisk.tune, recall_target).

Small data: 4,000 clustered points, k = 10, trained on 600 indexed points. Recall@10 takes
the values 0, 0.1, ..., 1 per query, and the 100 held-out queries make the mean noisy by
about +-0.03 (the standard error of a mean of 100 such values near 0.9), so the achieved mean
recall is asserted within r +- 0.05 only.
"""

import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import lshdisk
from lshdisk.cli import main
from lshdisk.evaluate import recall_at_k
from lshdisk.learned_termination import (FEATURES, MODEL_DOC, LearnedBudget, TerminationModel,
                                         TrainingSet,
                                         prefix_recalls, _warm_up_row, export_trees, labels,
                                         predict, train)
from lshdisk.search import RoundView
from lshdisk.termination import paper_cap
from lshdisk.tune import tune, write_model
from storage.catalog import Catalog

K = 10
TARGET = 0.9


@pytest.fixture(scope="module")
def tuned(clustered, clustered_index_dir, tmp_path_factory):
    """A private copy of the clustered index, tuned for r = 0.8 and 0.9 on 600 of its points."""
    path = tmp_path_factory.mktemp("learned") / "index"
    shutil.copytree(clustered_index_dir, path)
    with lshdisk.open(path) as index:
        model = tune(index, [0.8, TARGET], k=K, sample=600, seed=0)
    write_model(path, model)
    return path, model


def test_numpy_predictor_matches_sklearn():
    from sklearn.ensemble import HistGradientBoostingRegressor
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, len(FEATURES)))
    x[::7, 0] = 1000.0  # the UNKNOWN value of an unknown k-th distance
    y = np.sin(x[:, 1]) + 0.5 * x[:, 2] + 0.1 * rng.standard_normal(400)
    model = HistGradientBoostingRegressor(max_iter=50, max_depth=4, random_state=0).fit(x, y)
    nodes, offsets, baseline = export_trees(model)
    assert nodes.dtype == np.float64 and offsets[-1] == nodes.shape[0]
    np.testing.assert_allclose(predict(nodes, offsets, baseline, x), model.predict(x),
                               rtol=0, atol=1e-9)
    assert predict(nodes, offsets, baseline, x[3]) == pytest.approx(model.predict(x[3:4])[0],
                                                                    abs=1e-9)
    # The compiled one-sample predictor the search uses gives the same values, NaN included.
    from lshdisk._kernels.forest import predict_one
    x[5, 2] = np.nan
    want = model.predict(x)
    got = np.array([predict_one(nodes, offsets, baseline, row) for row in x])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_labels_by_hand():
    # true 3rd distance 2.0 (k = 3); candidates in verification order
    k = 3
    recalls = [prefix_recalls(np.array([5.0, 1.0, 2.0, 9.0, 0.5]), 2.0, k),  # hits at 2, 3, 5
               prefix_recalls(np.array([4.0, 1.5]), 2.0, k)]  # one hit: 1/3 at most
    np.testing.assert_allclose(recalls[0], [0, 0, 1 / 3, 2 / 3, 2 / 3, 1])
    counts, reached = labels(recalls, 2 / 3)
    np.testing.assert_array_equal(counts, [3, 2])
    np.testing.assert_array_equal(reached, [True, False])
    counts, reached = labels(recalls, 1.0)
    np.testing.assert_array_equal(counts, [5, 2])
    np.testing.assert_array_equal(reached, [True, False])
    # a tie at the k-th distance counts as a hit, as recall_at_k counts it
    assert prefix_recalls(np.array([2.0 * (1 + 1e-7)]), 2.0, 1)[1] == 1.0


def test_warm_up_row_is_the_last_round_before_k():
    assert _warm_up_row(np.array([0, 0, 4, 30, 40]), 10) == 2
    assert _warm_up_row(np.array([25, 40]), 10) == 0
    assert _warm_up_row(np.array([0, 3]), 10) == 1  # never k: the last round


def test_multiplier_reaches_the_target_on_validation_queries():
    rng = np.random.default_rng(1)
    n = 80
    need = rng.integers(10, 60, n)  # query i reaches recall 1 at need[i] candidates
    recalls = [np.minimum(np.arange(101), need[i]) / need[i] for i in range(n)]
    data = TrainingSet(k=K, cap_limit=100, features=np.c_[need, rng.random((n, len(FEATURES) - 1))],
                       floor=np.full(n, K), recalls=recalls, pages=[np.zeros(1)] * n)
    model = train(data, [0.9], seed=0)
    f = model.figures["0.9"]
    assert f["n_train"] + f["n_val"] == n and f["val_mean_recall"] >= 0.9 - 1e-9
    assert f["fixed_mean_recall"] >= 0.9 - 1e-9


def test_learned_budget_sets_the_cap_only_before_k_candidates(tuned):
    _, model = tuned
    policy = LearnedBudget(model, TARGET, 1.0)
    base = dict(round=2, k=K, cap=110, c=2.0, radius=1.0, c_radius=2.0, n_candidates=3,
                n_verified=3, kth_distance=np.inf, entries=100, page_reads=50, stale_rounds=0,
                k_round=-1)
    assert policy.cap_after(RoundView(**base)) >= K
    later = dict(base, round=3, n_candidates=20, n_verified=20, kth_distance=0.5, k_round=3)
    assert policy.cap_after(RoundView(**later)) is None
    first = dict(later, round=0, k_round=0)
    assert policy.cap_after(RoundView(**first)) >= 20
    assert not policy.should_stop(RoundView(**later))


def test_recall_target_reaches_the_target_on_held_out_queries(tuned, clustered):
    path, _ = tuned
    with lshdisk.open(path) as index:
        D, _, stats = index.search(clustered.q, K, recall_target=TARGET, return_stats=True)
        Dp, _, paper = index.search(clustered.q, K, return_stats=True)
    recall = recall_at_k(D, clustered.gt_d, K)
    assert TARGET - 0.05 <= recall <= TARGET + 0.05, recall
    assert stats.candidates.mean() <= paper.candidates.mean()


def test_model_survives_reopen_and_is_in_info(tuned, clustered):
    path, model = tuned
    with lshdisk.open(path) as index:
        first = index.search(clustered.q[:20], K, recall_target=0.8)
        info = index.info()["termination_model"]
    with lshdisk.open(path) as index:
        again = index.search(clustered.q[:20], K, recall_target=0.8)
        loaded = index.termination_model
    np.testing.assert_array_equal(first[1], again[1])
    assert info["targets"] == [0.8, TARGET] and info["k"] == K
    assert loaded.targets == model.targets and loaded.figures == model.figures


def test_recall_target_errors_are_one_line(tuned, tiny_index_dir, tiny_data):
    path, _ = tuned
    with lshdisk.open(path) as index:
        q = index.vectors.fetch(np.arange(3)).astype(np.float32)
        for kwargs, needle in [(dict(recall_target=0.95), "lshdisk tune"),
                               (dict(recall_target=0.9, termination="paper"), "termination"),
                               (dict(recall_target=0.9, max_candidates=50), "max_candidates")]:
            with pytest.raises(ValueError, match=needle) as exc:
                index.search(q, K, **kwargs)
            assert "\n" not in str(exc.value)
        with pytest.raises(ValueError, match="tuned for k = 10") as exc:
            index.search(q, 5, recall_target=0.9)
        assert "0.8" in str(lshdisk.open(path).termination_model.targets)
    with lshdisk.open(tiny_index_dir) as index:
        with pytest.raises(ValueError, match="no tuned termination model"):
            index.search(tiny_data.q, K, recall_target=0.9)


def test_catalog_holds_plain_arrays_and_json_no_pickle(tuned):
    path, _ = tuned
    with Catalog.open(os.path.join(path, "catalog")) as cat:
        doc = cat.get_json(MODEL_DOC)
        assert doc["format"] == "lshdisk-termination" and doc["version"] == [1, 1]
        assert doc["k"] == K and doc["targets"] == [0.8, TARGET]
        assert doc["features"] == list(FEATURES) and "sklearn" in doc and "figures" in doc
        names = [n for n in cat.names() if n.startswith(MODEL_DOC + "/")]
        assert names and all(cat.get_array(n).dtype.kind in "fi" for n in names)
        # a 1.0 model (no start radius) still reads, without a start model
        old_doc = {key: value for key, value in doc.items() if key != "start"}
        old_doc["version"] = [1, 0]
        old_model = TerminationModel.from_catalog(old_doc, cat.get_array)
        assert old_model.start is None and old_model.targets == (0.8, TARGET)
    raw = open(os.path.join(path, "catalog", "data.mdb"), "rb").read()
    assert b"sklearn.ensemble" not in raw and b"\x80\x04\x95" not in raw  # no pickle stream
    from lshdisk.verify import verify_index
    assert verify_index(path).ok  # the model's entries pass the index's integrity check


def test_search_with_a_model_needs_no_sklearn(tuned, clustered, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    path, _ = tuned
    with lshdisk.open(path) as index:
        D, _ = index.search(clustered.q[:5], K, recall_target=TARGET)
        assert np.isfinite(D).all()
        with pytest.raises(ImportError, match=r"pip install lshdisk\[learn\]"):
            tune(index, [0.9], k=K, sample=10)


def test_cli_tune_then_search_and_info(clustered, tmp_path):
    base, queries = tmp_path / "base.npy", tmp_path / "q.npy"
    np.save(base, clustered.x[:1500])
    np.save(queries, clustered.q[:20])
    index_dir = tmp_path / "base.qalsh"
    runner = CliRunner()
    assert runner.invoke(main, ["build", str(base), str(index_dir), "--memory", "16MiB",
                                "-q"]).exit_code == 0
    result = runner.invoke(main, ["tune", str(index_dir), "--sample", "200", "--recall",
                                  "0.9", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "r = 0.9" in result.output and "multiplier" in result.output
    info = runner.invoke(main, ["info", str(index_dir)])
    assert "recall targets 0.9" in info.output
    assert "start radius:" in info.output
    out = tmp_path / "res.bin"
    result = runner.invoke(main, ["search", str(index_dir), str(queries), "--out", str(out),
                                  "--recall-target", "0.9"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["search", str(index_dir), str(queries), "--out", str(out),
                                  "--recall-target", "0.9", "--start-radius"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["search", str(index_dir), str(queries), "--out", str(out),
                                  "--recall-target", "0.7"])
    assert result.exit_code == 1 and "lshdisk tune" in result.stderr
    assert "\n" not in result.stderr.strip()


def test_learned_run_verifies_a_prefix_of_the_permissive_run(tuned, clustered):
    # what makes training offline exact: the cap set at the warm-up cuts the permissive
    # run's candidate sequence, nothing else changes
    path, _ = tuned
    with lshdisk.open(path) as index:
        *_, learned = index.search(clustered.q[:30], K, recall_target=TARGET,
                                   return_candidates=True, threads=1)
        *_, full = index.search(clustered.q[:30], K, termination="budget",
                                max_candidates=index.n, return_candidates=True, threads=1)
    for (ids, _), (all_ids, _) in zip(learned, full):
        np.testing.assert_array_equal(ids, all_ids[:ids.size])


def test_cap_limit_defaults_to_t2_and_is_checked(tuned, clustered):
    path, model = tuned
    with lshdisk.open(path) as index:
        t2 = paper_cap(K, index.n, index.params.beta)
        assert model.cap_limit == t2
        assert LearnedBudget(model, TARGET, 1.0).candidate_cap(K, index.n, 0.0) == t2
        with pytest.raises(ValueError, match="cap_limit must be in"):
            tune(index, [0.9], k=K, sample=20, cap_limit=K - 1)
        wide = tune(index, [0.9], k=K, sample=40, cap_limit=3 * t2)
    assert wide.cap_limit == 3 * t2


def test_a_damaged_model_is_refused_and_tune_replaces_it(tuned, tmp_path):
    path = tmp_path / "index"
    shutil.copytree(tuned[0], path)
    with Catalog.open(os.path.join(path, "catalog"), readonly=False) as cat:
        doc = cat.get_json(MODEL_DOC)
        del doc["cap_limit"]
        cat.put_json(MODEL_DOC, doc)
    with pytest.raises(lshdisk.CorruptIndexError, match="lshdisk tune") as exc:
        lshdisk.open(path)
    assert "\n" not in str(exc.value)
    with lshdisk.open(path, termination_model=False) as index:
        assert index.termination_model is None
    result = CliRunner().invoke(main, ["tune", str(path), "--sample", "100", "--recall", "0.8",
                                       "--threads", "1"])
    assert result.exit_code == 0, result.output
    with lshdisk.open(path) as index:
        assert index.termination_model.targets == (0.8,)
    with Catalog.open(os.path.join(path, "catalog")) as cat:  # the old targets' arrays are gone
        assert not [n for n in cat.names() if n.startswith(MODEL_DOC + "/r0.9")]


def test_report_compares_learned_and_fixed_termination(tuned, clustered, tmp_path):
    """build_report(recall_targets=...) adds rows of the learned search at the tuned k, costed
    on every device beside the fixed rules; the figures get a line of their own; an untuned
    target is a one-line error."""
    from lshdisk.report import build_report, plot_report
    path, _ = tuned
    with lshdisk.open(path) as index:
        rep = build_report([index], clustered.q, clustered.gt_d.astype(np.float32), [1, K],
                           ("hdd", "ssd"), recall_targets=(TARGET,))
        _, _, st = index.search(clustered.q, K, return_stats=True, recall_target=TARGET,
                                threads=1)
        with pytest.raises(ValueError, match="lshdisk tune"):
            build_report([index], clustered.q, clustered.gt_d.astype(np.float32), [1, K],
                         ("hdd",), recall_targets=(0.7,))
    learned = [r for r in rep.rows if "recall target" in r["label"]]
    assert [(r["k"], r["label"]) for r in learned] == [(K, f"qalsh, recall target {TARGET:g}")]
    assert learned[0]["page_reads"] == pytest.approx(float(np.mean(st.page_reads)))
    assert learned[0]["hdd_qpt_ms"] > 0 and learned[0]["ssd_qpt_ms"] > 0
    assert len([r for r in rep.rows if "recall target" not in r["label"]]) == 2
    pytest.importorskip("matplotlib")
    written = plot_report(rep, tmp_path / "figs")
    assert len(written) == 7 and all(os.path.getsize(p) > 0 for p in written)
    result = CliRunner().invoke(main, ["report", str(path), "--queries", "x.npy", "--gt", "x",
                                       "--recall-target", "1.5"])
    assert result.exit_code == 2 and "every recall target must lie in (0, 1]" in result.output


def test_tune_reports_progress_of_the_scan_then_the_searches(clustered_index_dir):
    calls = []
    with lshdisk.open(clustered_index_dir) as index:
        tune(index, [TARGET], k=K, sample=40, seed=1, threads=1,
             progress=lambda stage, done, total: calls.append((stage, done, total)))
        n = index.n
    stages = [c[0] for c in calls]
    assert stages == sorted(stages)  # "groundtruth" first, then "search"
    assert calls[stages.index("search") - 1][1:] == (n, n)
    assert calls[-1] == ("search", 40, 40)
