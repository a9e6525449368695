"""Changes through one handle while other threads search on it or open the index: every
search answers from the index as it was before a change or as it is after it, no search,
open or change fails, and later searches see the change."""

import threading
from contextlib import contextmanager

import numpy as np

import lshdisk

N, D, K = 1500, 8, 5


@contextmanager
def _running(work, threads=3):
    """Run ``work()`` in a loop on ``threads`` threads for the body of the block; yields
    the list of their errors (checked by the caller after the block)."""
    stop = threading.Event()
    errors = []

    def loop():
        while not stop.is_set():
            try:
                work()
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
                return

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for t in pool:
        t.start()
    try:
        yield errors
    finally:
        stop.set()
        for t in pool:
            t.join()


def test_segments_changes_while_other_threads_search(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(N + 500, D)).astype(np.float32)
    q = x[N:N + 20]  # inserted points: found at distance 0 once inserted
    index = lshdisk.build(x[:N], tmp_path / "i", memory_limit="16MiB")
    _, before = index.search(q, K, threads=1)
    seen = []
    with _running(lambda: seen.append(index.search(q, K, threads=1)[1])) as errors:
        ids = index.add(x[N:], memory_limit="16MiB")
        _, after_add = index.search(q, K, threads=1)
        index.delete(ids[:10])
        _, after_delete = index.search(q, K, threads=1)
    assert not errors, repr(errors[0])
    assert np.array_equal(after_add[:, 0], ids[:20])  # each inserted query finds itself
    assert not np.isin(after_delete, ids[:10]).any()
    allowed = [before.tolist(), after_add.tolist(), after_delete.tolist()]
    assert seen and all(s.tolist() in allowed for s in seen)
    index.close()


def test_segments_opens_and_searches_while_another_handle_changes_the_index(tmp_path):
    """Other threads open the index (handles of their own) while one handle deletes and
    compacts: the catalog's readers and the manifest switch wait for each other, and an
    open that raced a change reads again."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2000, D)).astype(np.float32)
    path = tmp_path / "i"
    index = lshdisk.build(x[:1500], path, memory_limit="16MiB")
    index.add(x[1500:], memory_limit="16MiB")
    opens = []

    def open_and_search():
        with lshdisk.open(path) as other:
            other.search(x[:2], K, threads=1)
        opens.append(1)

    with _running(open_and_search) as errors:
        for r in range(12):
            index.delete(np.arange(r * 20, r * 20 + 20))
        index.compact(memory_limit="16MiB")
        index.delete(np.arange(300, 320))
    assert not errors, repr(errors[0])
    assert opens
    _, I = index.search(x[:400], K, threads=1)
    assert not np.isin(I, np.arange(0, 240)).any() and not np.isin(I, np.arange(300, 320)).any()
    index.close()


def test_segments_searches_while_the_same_handle_compacts(tmp_path):
    """Searches of many threads on the handle that compacts: new readers wait for the new
    view; idle ones finish on the old files."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2000, D)).astype(np.float32)
    index = lshdisk.build(x[:1500], tmp_path / "i", memory_limit="16MiB")
    with _running(lambda: index.search(x[:16], K, threads=4)) as errors:
        for r in range(3):
            index.add(x[1500 + 100 * r:1600 + 100 * r], memory_limit="16MiB")
            index.delete(np.arange(r * 10, r * 10 + 10))
            index.compact(memory_limit="16MiB")
    assert not errors, repr(errors[0])
    assert index.segment_count == 1 and index.n == 1800 - 30
    index.close()
