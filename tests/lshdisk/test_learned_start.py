"""Tests of the learned start radius (lshdisk.learned_start, the searchers' start_features /
skip_to, search(start_radius=True)).

Small data: the 4,000 clustered points of the shared fixtures, k = 10."""

import shutil

import numpy as np
import pytest

import lshdisk
from lshdisk.learned_start import START_ARRAYS, LearnedStart, StartModel, start_labels
from lshdisk.search import TRACE_DTYPE
from lshdisk.termination import PaperTermination
from lshdisk.tune import tune, write_model
from storage.catalog import Catalog

K = 10


class _StartAt(PaperTermination):
    """T1/T2 with the rounds started at one given radius."""

    __slots__ = ("r",)

    def __init__(self, r):
        self.r = r

    def start_radius(self, features):
        return self.r


@pytest.fixture(scope="module", params=["qalsh", "c2lsh"])
def index_dir(request, clustered, tmp_path_factory):
    path = tmp_path_factory.mktemp("start") / request.param
    lshdisk.build(clustered.x, path, algorithm=request.param, memory_limit="16MiB",
                  seed=0).close()
    return path


def test_starting_at_the_last_empty_round_changes_nothing_but_seeks_and_rounds(index_dir,
                                                                                 clustered):
    with lshdisk.open(index_dir) as index:
        q = clustered.q[:30]
        D, I, st, traces = index.search(q, K, return_stats=True, trace=True, threads=1)
        skipped = 0
        for i, trace in enumerate(traces):
            first = int(np.flatnonzero(trace["candidates"] > 0)[0])
            if first == 0:
                continue
            skipped += 1
            D2, I2, st2 = index.search(q[i], K, return_stats=True, threads=1,
                                       termination=_StartAt(float(trace["radius"][first - 1])))
            np.testing.assert_array_equal(I2[0], I[i])
            np.testing.assert_array_equal(D2[0], D[i])
            assert st2.page_reads[0] == st.page_reads[i]
            assert st2.seeks[0] <= st.seeks[i]
            assert st2.rounds[0] == st.rounds[i] - (first - 1)
        assert skipped > 0
        # a start below the first radius is no start
        D3, I3 = index.search(q, K, threads=1, termination=_StartAt(1e-30))
        np.testing.assert_array_equal(I3, I)


def test_start_labels_by_hand():
    trace = np.zeros(4, dtype=TRACE_DTYPE)
    trace["radius"] = [0.25, 0.5, 1.0, 2.0]
    trace["candidates"] = trace["verified"] = [1, 1, 1, 12]
    ids = np.array([7] + list(range(100, 111)))  # the query itself (id 7) first
    labels, first = start_labels([trace], [(ids, None)], 2.0, 0.5)
    assert labels[0] == -1 and first[0] == -1  # a candidate in round 0: no rounds to skip
    labels, first = start_labels([trace], [(ids, None)], 2.0, 0.5, exclude_self=np.array([7]))
    assert labels[0] == 2 and first[0] == -1  # the first other candidate: round 3, 0.5 * 2^2


def test_tune_stores_a_start_model_that_search_uses(index_dir, clustered, tmp_path):
    path = tmp_path / "tuned"
    shutil.copytree(index_dir, path)
    with lshdisk.open(path) as index:
        with pytest.raises(ValueError, match="lshdisk tune") as err:
            index.search(clustered.q[:2], K, start_radius=True)
        assert "\n" not in str(err.value)
        model = tune(index, [0.9], k=K, sample=300, seed=0, threads=1)
    assert isinstance(model.start, StartModel)
    assert model.start.figures["val_overshoot"] <= 0.05 + 1e-9
    write_model(path, model)
    with Catalog.open(str(path / "catalog")) as cat:
        names = cat.names()
        assert START_ARRAYS + "/nodes" in names and START_ARRAYS + "/offsets" in names
        assert cat.get_json("termination")["version"] == [1, 1]
    with lshdisk.open(path) as index:
        assert index.info()["termination_model"]["start"]["n_val"] == 75
        q = clustered.q[:40]
        D, I, st = index.search(q, K, return_stats=True, threads=1)
        Ds, Is, sts = index.search(q, K, return_stats=True, threads=1, start_radius=True)
        assert sts.rounds.sum() <= st.rounds.sum()
        # with the learned cap as well
        Dl, _, stl = index.search(q, K, return_stats=True, threads=1, recall_target=0.9,
                                  start_radius=True)
        assert stl.candidates.max() <= model.cap_limit
        x = index.start_features(q)
        assert x.shape == (40, len(index.start_feature_names))
        policy = LearnedStart(PaperTermination(), index.termination_model.start,
                              index.metadata.method.unit.u)
        assert policy.name == "paper+start"
        D2, I2 = index.search(q, K, threads=1, termination=policy)
        np.testing.assert_array_equal(I2, Is)
        from lshdisk.evaluate import evaluate
        row, = evaluate(index, q, clustered.gt_d[:40].astype(np.float32), [K], threads=1,
                        start_radius=True)
        assert row["seeks"] == pytest.approx(float(np.mean(sts.seeks)))


def test_ilsh_has_no_start_radius(clustered, tmp_path):
    path = tmp_path / "ilsh"
    lshdisk.build(clustered.x[:1500], path, algorithm="ilsh", memory_limit="16MiB").close()
    with lshdisk.open(path) as index:
        assert index.start_feature_names == ()
        with pytest.raises(ValueError, match="no rounds to skip"):
            index.search(clustered.q[:2], K, start_radius=True)
        model = tune(index, [0.9], k=K, sample=100, seed=0, threads=1)
    assert model.start is None
