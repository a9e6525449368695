"""Changes through one handle while other threads search on it: every search answers from
the index as it was before the change or as it is after it, never fails, and later searches
see the change."""

import threading

import numpy as np

import lshdisk

N, D, K = 1500, 8, 5


def test_segments_changes_while_other_threads_search(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(N + 500, D)).astype(np.float32)
    q = x[N:N + 20]  # inserted points: found at distance 0 once inserted
    index = lshdisk.build(x[:N], tmp_path / "i", memory_limit="16MiB")
    _, before = index.search(q, K, threads=1)
    stop = threading.Event()
    seen, errors = [], []

    def searcher():
        try:
            while not stop.is_set():
                seen.append(index.search(q, K, threads=1)[1])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        ids = index.add(x[N:], memory_limit="16MiB")
        _, after_add = index.search(q, K, threads=1)
        index.delete(ids[:10])
        _, after_delete = index.search(q, K, threads=1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert np.array_equal(after_add[:, 0], ids[:20])  # each inserted query finds itself
    assert not np.isin(after_delete, ids[:10]).any()
    allowed = [before.tolist(), after_add.tolist(), after_delete.tolist()]
    assert seen and all(s.tolist() in allowed for s in seen)
    index.close()


def test_segments_opens_and_searches_while_another_handle_changes_the_index(tmp_path):
    """Other threads opening the index (their own handles) while one handle deletes and
    compacts: no open fails (the catalog's readers and the manifest switch wait for each
    other, and an open that raced a change reads again), no change fails."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2000, D)).astype(np.float32)
    path = tmp_path / "i"
    index = lshdisk.build(x[:1500], path, memory_limit="16MiB")
    index.add(x[1500:], memory_limit="16MiB")
    stop = threading.Event()
    errors, opens = [], [0]

    def opener():
        while not stop.is_set():
            try:
                with lshdisk.open(path) as other:
                    other.search(x[:2], K, threads=1)
                opens[0] += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for r in range(12):
            index.delete(np.arange(r * 20, r * 20 + 20))
        index.compact(memory_limit="16MiB")
        index.delete(np.arange(300, 320))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, repr(errors[0])
    assert opens[0] > 0
    _, I = index.search(x[:400], K, threads=1)
    assert not np.isin(I, np.arange(0, 240)).any() and not np.isin(I, np.arange(300, 320)).any()
    index.close()


def test_segments_searches_while_the_same_handle_compacts(tmp_path):
    """Searches of many threads on the handle that compacts: none fails (new readers wait
    for the new view; idle ones finish on the old files)."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2000, D)).astype(np.float32)
    index = lshdisk.build(x[:1500], tmp_path / "i", memory_limit="16MiB")
    stop = threading.Event()
    errors = []

    def searcher():
        try:
            while not stop.is_set():
                index.search(x[:16], K, threads=4)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for r in range(3):
            index.add(x[1500 + 100 * r:1600 + 100 * r], memory_limit="16MiB")
            index.delete(np.arange(r * 10, r * 10 + 10))
            index.compact(memory_limit="16MiB")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, repr(errors[0])
    assert index.segment_count == 1 and index.n == 1800 - 30
    index.close()
