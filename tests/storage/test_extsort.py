"""Tests of storage.extsort: the float32 order codes and the external sorter."""

import gc
import os
import time
import tracemalloc
from contextlib import contextmanager
from tempfile import TemporaryDirectory
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from storage import extsort
from storage.errors import ClosedFileError, StorageError
from storage.extsort import (
    MIN_MEMORY_LIMIT_BYTES,
    ExternalSorter,
    float32_to_ordered_u32,
    ordered_u32_to_float32,
)

MiB = 1 << 20
TINY_BLOCK_BYTES = 48  # 4 records per read block: forces many runs and merge passes
TINY_BUDGET = 184  # smallest budget under tiny_limits(): two runs of 4-record blocks


@contextmanager
def tiny_limits():
    """Let budgets of a few hundred bytes through, so small inputs make many runs."""
    with mock.patch.multiple(
        extsort, _MIN_MEMORY_LIMIT_BYTES=0, _MIN_BLOCK_BYTES=TINY_BLOCK_BYTES
    ):
        yield


def random_records(rng, n, *, key_pool=None, id_pool=None):
    if key_pool is None:
        keys = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    else:
        keys = rng.integers(0, key_pool, n, dtype=np.uint64)
    if id_pool is None:
        ids = rng.integers(0, 2**32 - 1, n, dtype=np.uint32, endpoint=True)
    else:
        ids = rng.integers(0, id_pool, n, dtype=np.uint32)
    return keys, ids


def sort_all(tmp_dir, keys, ids, budget, *, pieces=1, max_records=None):
    """Sort with an ExternalSorter; return (keys, ids, sorter) after the sorter is closed."""
    with ExternalSorter(tmp_dir, memory_limit_bytes=budget) as sorter:
        for part in np.array_split(np.arange(keys.shape[0]), pieces):
            sorter.add(keys[part], ids[part])
        chunks = list(sorter.sorted_chunks(max_records))
    out_keys = np.concatenate([c[0] for c in chunks]) if chunks else np.empty(0, np.uint64)
    out_ids = np.concatenate([c[1] for c in chunks]) if chunks else np.empty(0, np.uint32)
    return out_keys, out_ids, sorter, chunks


def assert_matches_lexsort(keys, ids, out_keys, out_ids):
    order = np.lexsort((ids, keys))
    assert out_keys.dtype == np.uint64 and out_ids.dtype == np.uint32
    np.testing.assert_array_equal(out_keys, keys[order])
    np.testing.assert_array_equal(out_ids, ids[order])


# ---------------------------------------------------------------------------------------------
# float32 order codes
# ---------------------------------------------------------------------------------------------

SPECIAL_FLOATS = np.array(
    [
        -np.inf,
        -np.finfo(np.float32).max,
        -1.0,
        -np.finfo(np.float32).tiny,  # smallest negative normal
        -np.finfo(np.float32).smallest_subnormal,
        -0.0,
        0.0,
        np.finfo(np.float32).smallest_subnormal,
        np.float32(3) * np.finfo(np.float32).smallest_subnormal,
        np.finfo(np.float32).tiny,
        1.0,
        np.finfo(np.float32).max,
        np.inf,
    ],
    dtype=np.float32,
)


def test_float_codes_follow_float_order_on_special_values():
    codes = float32_to_ordered_u32(SPECIAL_FLOATS)
    assert codes.dtype == np.uint32
    # SPECIAL_FLOATS is listed in increasing order, -0.0 just before +0.0.
    assert np.all(np.diff(codes.astype(np.int64)) > 0)
    back = ordered_u32_to_float32(codes)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.view(np.uint32), SPECIAL_FLOATS.view(np.uint32))


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.integers(0, 200),
        elements=st.floats(width=32, allow_nan=False, allow_subnormal=True),
    )
)
def test_float_codes_round_trip_and_order_on_random_floats(values):
    values = np.concatenate([values, SPECIAL_FLOATS])
    codes = float32_to_ordered_u32(values)
    back = ordered_u32_to_float32(codes)
    np.testing.assert_array_equal(back.view(np.uint32), values.view(np.uint32))
    by_code = values[np.argsort(codes, kind="stable")]
    assert np.all(by_code[1:] >= by_code[:-1])  # code order is float order
    a, b = values[:, None], values[None, :]
    ca, cb = codes[:, None], codes[None, :]
    assert np.all((ca < cb)[a < b])  # strictly smaller float -> strictly smaller code


def test_float_codes_keep_shape_and_accept_big_endian():
    values = np.array([[1.5, -2.0], [0.0, np.inf]], dtype=">f4")
    codes = float32_to_ordered_u32(values)
    assert codes.shape == (2, 2)
    np.testing.assert_array_equal(ordered_u32_to_float32(codes), values.astype(np.float32))


def test_float_codes_reject_nan_and_wrong_dtypes():
    with pytest.raises(ValueError, match="NaN"):
        float32_to_ordered_u32(np.array([1.0, np.nan], dtype=np.float32))
    with pytest.raises(TypeError, match="float32"):
        float32_to_ordered_u32(np.array([1.0], dtype=np.float64))
    with pytest.raises(TypeError, match="uint32"):
        ordered_u32_to_float32(np.array([1], dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# ExternalSorter: correctness
# ---------------------------------------------------------------------------------------------


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.data(),
    n=st.integers(0, 400),
    key_pool=st.sampled_from([None, 1, 3, 50]),
    id_pool=st.sampled_from([None, 1, 4, 1000]),
    budget=st.one_of(st.integers(TINY_BUDGET, 700), st.integers(700, 4000)),
    pieces=st.integers(1, 9),
    max_records=st.sampled_from([None, 1, 7, 64]),
)
def test_sorter_matches_lexsort_with_tiny_budgets(
    data, n, key_pool, id_pool, budget, pieces, max_records
):
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    keys, ids = random_records(np.random.default_rng(seed), n, key_pool=key_pool, id_pool=id_pool)
    with tiny_limits(), TemporaryDirectory() as tmp:
        out_keys, out_ids, sorter, chunks = sort_all(
            tmp, keys, ids, budget, pieces=pieces, max_records=max_records
        )
        assert os.listdir(tmp) == []
    assert_matches_lexsort(keys, ids, out_keys, out_ids)
    assert sorter.n_records == n
    first_runs = -(-n // (budget // 32)) if n > budget // 32 else 0
    event("several merge passes" if sorter.runs_written > first_runs else "at most one pass")
    assert sorter.peak_bytes <= budget
    assert all(c[0].shape[0] >= 1 for c in chunks)
    if max_records is not None:
        assert all(c[0].shape[0] <= max_records for c in chunks)


def test_sorter_merges_in_several_passes_when_runs_are_many(tmp_path):
    keys, ids = random_records(np.random.default_rng(3), 1000, key_pool=40, id_pool=5)
    budget = TINY_BUDGET  # 5 records per buffer, merge fan-in 2
    with tiny_limits():
        out_keys, out_ids, sorter, _ = sort_all(tmp_path, keys, ids, budget, pieces=13)
    initial_runs = -(-1000 // (budget // 32))
    assert sorter.runs_written > initial_runs  # intermediate passes wrote longer runs
    assert sorter.bytes_spilled > 12 * 1000
    assert_matches_lexsort(keys, ids, out_keys, out_ids)
    assert list(tmp_path.iterdir()) == []


def test_sorter_output_is_identical_across_budgets(tmp_path):
    # ~300k records: 1 MiB makes ~10 runs (more than one pass can merge), 64 MiB none.
    rng = np.random.default_rng(11)
    keys, ids = random_records(rng, 300_000, key_pool=5_000, id_pool=None)
    keys[:1000] = keys[1000:2000]  # exact duplicate (key, id) records
    ids[:1000] = ids[1000:2000]
    outputs = []
    for budget in (MIN_MEMORY_LIMIT_BYTES, 3 * MiB, 64 * MiB):
        out_keys, out_ids, sorter, _ = sort_all(tmp_path, keys, ids, budget, pieces=5)
        outputs.append((out_keys.tobytes(), out_ids.tobytes(), sorter.runs_written))
        assert sorter.peak_bytes <= budget
    assert outputs[0][2] > outputs[1][2] > outputs[2][2] == 0
    assert outputs[0][:2] == outputs[1][:2] == outputs[2][:2]
    assert_matches_lexsort(
        keys, ids, np.frombuffer(outputs[0][0], np.uint64), np.frombuffer(outputs[0][1], np.uint32)
    )


def test_sorter_with_no_records_yields_nothing(tmp_path):
    with ExternalSorter(tmp_path, memory_limit_bytes=MiB) as sorter:
        sorter.add(np.empty(0, np.uint64), np.empty(0, np.uint32))
        assert list(sorter.sorted_chunks()) == []
    assert (sorter.n_records, sorter.runs_written, sorter.bytes_spilled) == (0, 0, 0)
    assert list(tmp_path.iterdir()) == []


def test_sorter_keeps_one_buffer_in_memory_without_files(tmp_path):
    keys, ids = random_records(np.random.default_rng(5), 20_000)
    with ExternalSorter(tmp_path, memory_limit_bytes=MiB) as sorter:
        sorter.add(keys, ids)
        keys[:] = 0  # the sorter copied the records
        chunks = sorter.sorted_chunks()
        first = next(chunks)
        assert list(tmp_path.iterdir()) == []
        rest = list(chunks)
    assert sorter.runs_written == 0 and sorter.bytes_spilled == 0
    keys, ids = random_records(np.random.default_rng(5), 20_000)
    out = [first, *rest]
    assert_matches_lexsort(
        keys, ids, np.concatenate([c[0] for c in out]), np.concatenate([c[1] for c in out])
    )


@pytest.mark.parametrize("extra, runs", [(0, 0), (1, 2)])
def test_sorter_spills_only_past_an_exactly_full_buffer(tmp_path, extra, runs):
    capacity = MiB // 32  # records per buffer, from the module's memory plan
    keys, ids = random_records(np.random.default_rng(9), capacity + extra)
    out_keys, out_ids, sorter, _ = sort_all(tmp_path, keys, ids, MiB, pieces=3)
    assert sorter.runs_written == runs
    assert_matches_lexsort(keys, ids, out_keys, out_ids)


def test_sorter_reports_progress_events(tmp_path):
    events = []
    keys, ids = random_records(np.random.default_rng(2), 200, key_pool=30)
    with tiny_limits():
        with ExternalSorter(
            tmp_path, memory_limit_bytes=TINY_BUDGET, progress=lambda *e: events.append(e)
        ) as sorter:
            sorter.add(keys, ids)
            total = sum(c[0].shape[0] for c in sorter.sorted_chunks())
    kinds = {e[0] for e in events}
    assert kinds == {"run", "merge", "emit"} and total == 200
    assert events[-1] == ("emit", 200, 200)
    assert [e for e in events if e[0] == "run"][-1][1:] == (200, 200)


# ---------------------------------------------------------------------------------------------
# ExternalSorter: memory
# ---------------------------------------------------------------------------------------------


def test_sorter_sorts_50_mb_with_4_mib_quickly_and_within_budget(tmp_path):
    rng = np.random.default_rng(42)
    n = 50_000_000 // 12
    keys, ids = random_records(rng, n, key_pool=2**40)
    budget = 4 * MiB
    start = time.perf_counter()
    count = 0
    key_sum = id_sum = np.uint64(0)
    prev = None
    with ExternalSorter(tmp_path, memory_limit_bytes=budget) as sorter:
        for s in range(0, n, 250_000):
            sorter.add(keys[s : s + 250_000], ids[s : s + 250_000])
        for k, i in sorter.sorted_chunks():
            assert np.all((k[1:] > k[:-1]) | ((k[1:] == k[:-1]) & (i[1:] >= i[:-1])))
            if prev is not None:
                assert prev <= (k[0], i[0])
            prev = (k[-1], i[-1])
            count += k.shape[0]
            key_sum += k.sum(dtype=np.uint64)
            id_sum += i.sum(dtype=np.uint64)
    elapsed = time.perf_counter() - start
    assert count == n
    assert key_sum == keys.sum(dtype=np.uint64) and id_sum == ids.sum(dtype=np.uint64)
    assert sorter.runs_written > 1 and sorter.bytes_spilled >= 12 * n
    assert sorter.peak_bytes <= budget
    assert elapsed < 10.0, f"50 MB external sort took {elapsed:.1f} s"
    assert list(tmp_path.iterdir()) == []


def test_sorter_tracemalloc_peak_is_of_the_order_of_peak_bytes(tmp_path):
    keys, ids = random_records(np.random.default_rng(8), 600_000, key_pool=10**6)
    budget = 2 * MiB
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        with ExternalSorter(tmp_path, memory_limit_bytes=budget) as sorter:
            for s in range(0, keys.shape[0], 100_000):
                sorter.add(keys[s : s + 100_000], ids[s : s + 100_000])
            count = 0
            for k, _ in sorter.sorted_chunks():
                count += k.shape[0]
            del k, _
        traced_peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert count == keys.shape[0]
    assert budget // 2 <= sorter.peak_bytes <= budget
    # Only numpy arrays are accounted; Python objects add a little on top.
    assert sorter.peak_bytes // 2 <= traced_peak <= sorter.peak_bytes + 256 * 1024


# ---------------------------------------------------------------------------------------------
# ExternalSorter: cleanup and errors
# ---------------------------------------------------------------------------------------------


def spilled_sorter(tmp_path, **kwargs):
    sorter = ExternalSorter(tmp_path, memory_limit_bytes=MiB, **kwargs)
    keys, ids = random_records(np.random.default_rng(1), 100_000)
    sorter.add(keys, ids)
    assert sorter.runs_written >= 2 and len(list(tmp_path.iterdir())) == sorter.runs_written
    return sorter


def test_sorter_close_mid_iteration_removes_run_files(tmp_path):
    sorter = spilled_sorter(tmp_path)
    chunks = sorter.sorted_chunks(max_records=10)
    next(chunks)
    sorter.close()
    assert list(tmp_path.iterdir()) == []
    assert list(chunks) == []
    sorter.close()  # idempotent
    with pytest.raises(ClosedFileError, match="closed"):
        sorter.add(np.zeros(1, np.uint64), np.zeros(1, np.uint32))


def test_sorter_with_block_removes_run_files_on_exception(tmp_path):
    with pytest.raises(KeyError, match="boom"):
        with spilled_sorter(tmp_path) as sorter:
            next(sorter.sorted_chunks())
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_sorter_failing_progress_callback_removes_run_files(tmp_path):
    def progress(event, done, total):
        if event == "emit":
            raise RuntimeError("callback failed")

    sorter = spilled_sorter(tmp_path, progress=progress)
    with pytest.raises(RuntimeError, match="callback failed"):
        list(sorter.sorted_chunks())
    assert list(tmp_path.iterdir()) == []


def test_sorter_failing_spill_removes_run_files_and_closes(tmp_path):
    sorter = spilled_sorter(tmp_path)
    with mock.patch.object(extsort, "_write_array", side_effect=OSError("disk full")):
        with pytest.raises(OSError, match="disk full"):
            sorter.add(*random_records(np.random.default_rng(0), MiB // 32 + 1))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ClosedFileError):
        sorter.sorted_chunks()


def test_sorter_truncated_run_file_raises_storage_error(tmp_path):
    sorter = spilled_sorter(tmp_path)
    victim = sorted(tmp_path.iterdir())[0]
    os.truncate(victim, 100)
    with pytest.raises(StorageError, match="truncated"):
        list(sorter.sorted_chunks())
    assert list(tmp_path.iterdir()) == []


def test_sorter_yields_once_and_takes_no_records_after(tmp_path):
    with ExternalSorter(tmp_path, memory_limit_bytes=MiB) as sorter:
        sorter.add(np.arange(5, dtype=np.uint64), np.arange(5, dtype=np.uint32))
        chunks = sorter.sorted_chunks()
        with pytest.raises(ClosedFileError, match="once"):
            sorter.sorted_chunks()
        with pytest.raises(ClosedFileError, match="sorted_chunks"):
            sorter.add(np.zeros(1, np.uint64), np.zeros(1, np.uint32))
        np.testing.assert_array_equal(next(chunks)[0], np.arange(5))


def test_sorter_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=f"at least {MIN_MEMORY_LIMIT_BYTES} bytes"):
        ExternalSorter(tmp_path, memory_limit_bytes=MIN_MEMORY_LIMIT_BYTES - 1)
    with pytest.raises(TypeError, match="memory_limit_bytes"):
        ExternalSorter(tmp_path, memory_limit_bytes=float(MiB))
    with pytest.raises(ValueError, match="tmp_dir"):
        ExternalSorter(tmp_path / "missing", memory_limit_bytes=MiB)
    with pytest.raises(TypeError, match="progress"):
        ExternalSorter(tmp_path, memory_limit_bytes=MiB, progress=3)
    with ExternalSorter(tmp_path, memory_limit_bytes=MiB) as sorter:
        with pytest.raises(TypeError, match="keys must have dtype uint64"):
            sorter.add(np.zeros(3, np.int64), np.zeros(3, np.uint32))
        with pytest.raises(TypeError, match="ids must have dtype uint32"):
            sorter.add(np.zeros(3, np.uint64), np.zeros(3, np.int32))
        with pytest.raises(TypeError, match="numpy array"):
            sorter.add([1, 2], np.zeros(2, np.uint32))
        with pytest.raises(ValueError, match="same length"):
            sorter.add(np.zeros(3, np.uint64), np.zeros(2, np.uint32))
        with pytest.raises(ValueError, match="1-D"):
            sorter.add(np.zeros((2, 2), np.uint64), np.zeros((2, 2), np.uint32))
        with pytest.raises(ValueError, match="max_records must be at least 1"):
            sorter.sorted_chunks(max_records=0)
        sorter.add(np.array([2, 1], np.uint64), np.array([0, 0], np.uint32))  # still usable
        assert [c[0].tolist() for c in sorter.sorted_chunks()] == [[1, 2]]


def test_sorter_tiny_limits_minimum_is_enforced(tmp_path):
    with tiny_limits():
        ExternalSorter(tmp_path, memory_limit_bytes=TINY_BUDGET).close()
        with pytest.raises(ValueError, match=f"at least {TINY_BUDGET} bytes"):
            ExternalSorter(tmp_path, memory_limit_bytes=TINY_BUDGET - 1)


def test_sorter_dropped_without_close_removes_run_files(tmp_path):
    sorter = spilled_sorter(tmp_path)
    next(sorter.sorted_chunks())  # a suspended generator refers back to the sorter
    del sorter
    gc.collect()
    assert list(tmp_path.iterdir()) == []
