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
