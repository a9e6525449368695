"""A trace sink on an index's counter sees every page its searches count, for every method,
with and without a buffer pool: what tools/validate_cost_model.py relies on."""

import os

import numpy as np
import pytest

import lshdisk
from storage.iostats import CACHE_HIT, DEVICE_READ


@pytest.fixture(scope="module", params=["qalsh", "c2lsh", "ilsh"])
def method_index_dir(request, integer_data, tmp_path_factory):
    path = tmp_path_factory.mktemp(f"trace-{request.param}") / "index"
    lshdisk.build(integer_data.x, path, algorithm=request.param, memory_limit="16MiB",
                  seed=0).close()
    return path


@pytest.mark.parametrize("cache", [0, "64MiB"], ids=["no pool", "pool"])
def test_trace_of_a_search_sums_to_its_counted_reads_and_hits(method_index_dir, integer_data,
                                                              cache):
    calls = []
    with lshdisk.open(method_index_dir, cache_bytes=cache) as index:
        index.set_trace(lambda f, first, n, access: calls.append((f, first, n, access)))
        searches = [index.search(integer_data.q[:4], 10, return_stats=True) for _ in range(2)]
        index.set_trace(None)
        paths = {f: index.file_path(f) for f, _, _, _ in calls}
        hash_file = "tables.pages" if index.algorithm == "c2lsh" else "trees.pages"
    reads = sum(s.page_reads.sum() for _, _, s in searches)
    hits = sum(s.cache_hits.sum() for _, _, s in searches)
    assert sum(n for _, _, n, a in calls if a == DEVICE_READ) == reads > 0
    assert sum(n for _, _, n, a in calls if a == CACHE_HIT) == hits
    assert (hits > 0) == bool(cache)  # the repeated search is served by the pool
    # Both of the index's files are seen: the tree or table pages and the vector pages.
    assert {os.path.basename(p) for p in paths.values()} == {"vectors.pages", hash_file}
    firsts = np.array([first for _, first, _, _ in calls])
    assert np.all(firsts >= 1)  # no header page: those are read by open(), before the sink
