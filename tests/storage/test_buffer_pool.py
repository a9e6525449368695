"""Tests of storage.buffer_pool: LRU order and byte bound, alone, under threads and under page
files."""

import sys
import threading

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from storage.buffer_pool import BufferPool
from storage.iostats import IOCounter
from storage.page_file import PageFile


def blob(n_bytes, fill=0):
    a = np.full(n_bytes, fill, dtype=np.uint8)
    a.flags.writeable = False
    return a


def write_pages(path, n_pages, *, page_size=512):
    pf = PageFile.create(path, kind="vectors", page_size=page_size)
    for i in range(n_pages):
        pf.append_page(bytes([i + 1]) * 16)
    pf.finalize()
    pf.close()
    return path


# ---------------------------------------------------------------------------------------------
# The pool alone
# ---------------------------------------------------------------------------------------------


def test_buffer_pool_rejects_negative_and_non_int_capacity():
    with pytest.raises(ValueError, match="capacity_bytes must be >= 0, got -1"):
        BufferPool(-1)
    for bad in (1.5, "10", True, None):
        with pytest.raises(TypeError, match="capacity_bytes"):
            BufferPool(bad)
    assert BufferPool().capacity_bytes == 0


def test_buffer_pool_evicts_the_least_recently_used_page_first():
    pool = BufferPool(300)
    a, b, c, d = blob(100, 1), blob(100, 2), blob(100, 3), blob(100, 4)
    pool.put("a", a)
    pool.put("b", b)
    pool.put("c", c)
    assert (len(pool), pool.used_bytes) == (3, 300)
    assert pool.get("a") is a  # a becomes the most recently used: b is now the oldest
    pool.put("d", d)
    assert pool.get("b") is None
    assert pool.get("a") is a and pool.get("c") is c and pool.get("d") is d
    assert (len(pool), pool.used_bytes) == (3, 300)
    # Re-putting c makes it the newest; a 200-byte page then evicts a and d (the two oldest).
    pool.put("c", c)
    big = blob(200, 9)
    pool.put("big", big)
    assert pool.get("a") is None and pool.get("d") is None
    assert pool.get("c") is c and pool.get("big") is big
    assert (len(pool), pool.used_bytes) == (2, 300)


def test_buffer_pool_replacing_a_key_updates_used_bytes():
    pool = BufferPool(1000)
    pool.put("k", blob(100))
    new = blob(400, 5)
    pool.put("k", new)
    assert (len(pool), pool.used_bytes) == (1, 400)
    assert pool.get("k") is new
    pool.put("j", blob(600))  # exactly fills the pool, evicts nothing
    assert (len(pool), pool.used_bytes) == (2, 1000)


def test_buffer_pool_page_larger_than_capacity_is_not_cached():
    pool = BufferPool(100)
    pool.put("small", blob(60))
    pool.put("huge", blob(101))
    assert pool.get("huge") is None
    assert (len(pool), pool.used_bytes) == (1, 60)  # and nothing was evicted for it
    pool.clear()
    assert (len(pool), pool.used_bytes) == (0, 0)
    assert pool.get("small") is None


def test_buffer_pool_capacity_zero_caches_nothing():
    pool = BufferPool(0)
    for i in range(5):
        pool.put(i, blob(1 + i))
    assert (len(pool), pool.used_bytes) == (0, 0)
    assert all(pool.get(i) is None for i in range(5))


def test_buffer_pool_oversized_put_does_not_leave_a_stale_payload():
    pool = BufferPool(100)
    pool.put("k", blob(50, 1))
    pool.put("k", blob(200, 2))
    cached = pool.get("k")
    assert cached is None or (cached.nbytes == 200 and cached[0] == 2)


class LruModel(RuleBasedStateMachine):
    """BufferPool against a dict + list LRU model (list[0] is the least recently used)."""

    keys = st.integers(0, 7)

    @initialize(capacity=st.integers(0, 400))
    def make_pool(self, capacity):
        self.capacity = capacity
        self.pool = BufferPool(capacity)
        self.payloads = {}
        self.order = []
        self.serial = 0

    def _touch(self, key):
        self.order.remove(key)
        self.order.append(key)

    @rule(key=keys, size=st.integers(1, 450))
    def put(self, key, size):
        self.serial += 1
        payload = blob(size, self.serial % 256)
        self.pool.put(key, payload)
        if key in self.payloads:  # a put always drops the old payload of its key
            self.order.remove(key)
            del self.payloads[key]
        if size > self.capacity:
            return
        while sum(p.nbytes for p in self.payloads.values()) + size > self.capacity:
            oldest = self.order.pop(0)
            del self.payloads[oldest]
        self.payloads[key] = payload
        self.order.append(key)

    @rule(key=keys)
    def get(self, key):
        got = self.pool.get(key)
        expected = self.payloads.get(key)
        assert got is expected
        if expected is not None:
            self._touch(key)

    @precondition(lambda self: self.payloads)
    @rule(data=st.data())
    def get_present(self, data):
        key = data.draw(st.sampled_from(sorted(self.payloads)))
        assert self.pool.get(key) is self.payloads[key]
        self._touch(key)

    @rule()
    def clear(self):
        self.pool.clear()
        self.payloads.clear()
        self.order.clear()

    @invariant()
    def bytes_and_count_agree(self):
        used = sum(p.nbytes for p in self.payloads.values())
        assert self.pool.used_bytes == used <= self.capacity
        assert len(self.pool) == len(self.payloads)


LruModel.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
test_buffer_pool_matches_an_lru_model = LruModel.TestCase


# ---------------------------------------------------------------------------------------------
# The pool under threads
# ---------------------------------------------------------------------------------------------


def _hammer(pool, n_threads, n_ops, *, clear_every=0):
    """Threads put, get and (one in ``clear_every`` operations) clear at once, each on its own
    keys, each against its own dict model of its last put per key. Returns the models."""
    models = [{} for _ in range(n_threads)]
    errors = []
    start = threading.Barrier(n_threads)

    def work(t):
        rng = np.random.default_rng(t)
        last = models[t]
        try:
            start.wait()
            for op in range(n_ops):
                key = (t, int(rng.integers(0, 12)))
                if clear_every and rng.integers(0, clear_every) == 0:
                    pool.clear()
                elif rng.random() < 0.5:
                    payload = blob(int(rng.integers(1, 200)), (t * 31 + op) % 256)
                    pool.put(key, payload)
                    last[key] = payload
                else:
                    got = pool.get(key)
                    # Only this thread puts this key; others may evict or clear it.
                    assert got is None or got is last.get(key), (t, op, key)
                    if not clear_every and pool.capacity_bytes >= 8 * 12 * 200:
                        assert got is last.get(key), (t, op, key)  # nothing is ever evicted
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[0]
    return models


def _held(pool, models):
    """{key: payload} the pool holds, looked up through get() for every key the models name."""
    held = {}
    for last in models:
        for key in last:
            got = pool.get(key)
            if got is not None:
                held[key] = got
    return held


def test_buffer_pool_shared_by_eight_threads_matches_their_dict_models():
    pool = BufferPool(8 * 12 * 200)  # room for every key: nothing is evicted
    models = _hammer(pool, 8, 3000)
    expected = {key: p for last in models for key, p in last.items()}
    held = _held(pool, models)
    assert held.keys() == expected.keys()
    assert all(held[key] is expected[key] for key in expected)
    assert len(pool) == len(expected)
    assert pool.used_bytes == sum(p.nbytes for p in expected.values())


@pytest.mark.parametrize("clear_every", [0, 500], ids=["evicting", "evicting+clearing"])
def test_buffer_pool_shared_by_eight_threads_keeps_its_bound_and_byte_count(clear_every):
    pool = BufferPool(1500)  # about 15 of the 96 keys fit: constant eviction
    models = _hammer(pool, 8, 3000, clear_every=clear_every)
    held = _held(pool, models)
    assert all(held[key] is models[key[0]][key] for key in held)  # only last puts are held
    assert len(pool) == len(held)
    assert pool.used_bytes == sum(p.nbytes for p in held.values()) <= pool.capacity_bytes


# ---------------------------------------------------------------------------------------------
# The pool under page files
# ---------------------------------------------------------------------------------------------


def test_buffer_pool_hit_counts_no_read_and_does_not_move_the_head(tmp_path):
    path = write_pages(tmp_path / "f.pages", 6)
    counter = IOCounter()
    pool = BufferPool(10 * 504)
    with PageFile.open(path, counter=counter, buffer_pool=pool) as pf:
        assert len(pool) == 1  # the header page read at open is cached too
        s = counter.snapshot()
        first = pf.read_page(1)  # miss, right after the header read at open: sequential
        pf.read_page(2)  # miss: sequential
        again = pf.read_page(1)  # hit: a read-only copy of the pooled payload
        np.testing.assert_array_equal(again, first)
        assert not again.flags.writeable
        d = counter.snapshot().delta(s)
        assert (d.page_reads, d.seeks, d.cache_hits) == (2, 0, 1)
        s = counter.snapshot()
        pf.read_page(3)  # judged from the last device read (page 2): sequential
        d = counter.snapshot().delta(s)
        assert (d.page_reads, d.seeks, d.cache_hits) == (1, 0, 0)
        s = counter.snapshot()
        pf.read_page(0)  # hit, even though it was read at open
        pf.read_page(5)  # miss: page 5 after device page 3 is a seek
        pf.read_page(6)  # miss: sequential
        d = counter.snapshot().delta(s)
        assert (d.page_reads, d.seeks, d.cache_hits, d.bytes_read) == (2, 1, 1, 2 * 512)
        assert (len(pool), pool.used_bytes) == (6, 6 * 504)


def test_buffer_pool_serves_read_page_into_and_is_filled_by_it(tmp_path):
    path = write_pages(tmp_path / "f.pages", 4)
    counter = IOCounter()
    pool = BufferPool(10 * 504)
    with PageFile.open(path, counter=counter, buffer_pool=pool) as pf:
        cached = pf.read_page(1)
        s = counter.snapshot()
        out = np.full(512, 0xEE, dtype=np.uint8)
        pf.read_page_into(1, out)  # served from the pool
        np.testing.assert_array_equal(out[:504], cached)
        assert (out[504:] == 0xEE).all()  # trailer bytes are left as they were on a hit
        d = counter.snapshot().delta(s)
        assert (d.page_reads, d.cache_hits) == (0, 1)

        s = counter.snapshot()
        pf.read_page_into(2, out)  # miss: read and cached
        got = pf.read_page(2)  # hit
        np.testing.assert_array_equal(got, out[:504])
        out[:] = 0  # the cached copy does not alias the caller's buffer
        assert got[0] == 2
        d = counter.snapshot().delta(s)
        assert (d.page_reads, d.cache_hits) == (1, 1)


def test_buffer_pool_page_cached_by_read_page_into_is_read_only(tmp_path):
    path = write_pages(tmp_path / "f.pages", 2)
    with PageFile.open(path, buffer_pool=BufferPool(4 * 504)) as pf:
        pf.read_page_into(1, np.empty(512, dtype=np.uint8))
        assert not pf.read_page(1).flags.writeable


def test_buffer_pool_is_bypassed_by_read_run(tmp_path):
    path = write_pages(tmp_path / "f.pages", 5)
    counter = IOCounter()
    pool = BufferPool(10 * 504)
    with PageFile.open(path, counter=counter, buffer_pool=pool) as pf:
        pf.read_page(2)
        s = counter.snapshot()
        pf.read_run(1, 4)  # page 2 is cached, but the run reads all four from the device
        d = counter.snapshot().delta(s)
        assert (d.page_reads, d.cache_hits) == (4, 0)
        assert len(pool) == 2  # header and page 2: the run added nothing


def test_buffer_pool_capacity_zero_makes_every_read_a_device_read(tmp_path):
    path = write_pages(tmp_path / "f.pages", 3)
    counter = IOCounter()
    with PageFile.open(path, counter=counter, buffer_pool=BufferPool(0)) as pf:
        s = counter.snapshot()
        out = np.empty(512, dtype=np.uint8)
        for _ in range(3):
            pf.read_page(1)
            pf.read_page_into(1, out)
        d = counter.snapshot().delta(s)
        assert (d.page_reads, d.seeks, d.cache_hits) == (6, 5, 0)


def test_buffer_pool_shared_by_two_files_keeps_their_pages_apart_and_evicts_lru(tmp_path):
    a_path = write_pages(tmp_path / "a.pages", 3)
    b_path = tmp_path / "b.pages"
    pf = PageFile.create(b_path, kind="vectors", page_size=512)
    for i in range(3):
        pf.append_page(bytes([100 + i]) * 16)
    pf.finalize()
    pf.close()
    counter = IOCounter()
    pool = BufferPool(3 * 504)  # room for three payloads
    with PageFile.open(a_path, counter=counter, buffer_pool=pool) as a, \
            PageFile.open(b_path, counter=counter, buffer_pool=pool) as b:
        assert a.read_page(1)[0] == 1 and b.read_page(1)[0] == 100  # same page number, two entries
        # pool now holds: b0, a1, b1 (a0 was evicted by b1)
        s = counter.snapshot()
        assert a.read_page(1)[0] == 1 and b.read_page(1)[0] == 100
        assert b.read_page(0)[:8].tobytes() == b"LSHDPAGE"
        assert counter.snapshot().delta(s).cache_hits == 3
        s = counter.snapshot()
        a.read_page(0)  # evicted earlier: a device read, which evicts a1 (now the oldest)
        a.read_page(1)
        d = counter.snapshot().delta(s)
        assert (d.page_reads, d.cache_hits) == (2, 0)
