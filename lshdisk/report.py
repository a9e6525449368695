"""I/O cost reports: query processing time (QPT) on HDD, SSD and measured devices.

For each index and each k, the queries are searched once with no buffer pool (every page
access is a counted device read, as in the reference codes) and the per-query counts become
device time with the QPT model of Jafari & Nagarkar (2021, ADC, Section 4.2)::

    QPT = seeks * seek_ms + MB_read / read_mb_per_ms + algorithm_ms        (1 MB = 10**6 B)

where ``algorithm_ms`` is the measured CPU time of candidate generation and false-positive
removal (``SearchStats.cpu_seconds``, with the index's files read into the page cache first:
a search that waits on the device also spends CPU in the kernel's I/O path, which the seek and
read terms already charge). Every row also carries the linear scan of the same data on the same device: one
seek, ``n * d * itemsize`` bytes, and the CPU time of an exact scan (see :data:`SCAN_METHOD`),
so a report says plainly where LSH did not pay off.

Deviations from the study: the study plots one QPT per method and k from its own runs;
here the counts are lshdisk's exact page accounting (a seek whenever a read is not the page
right after the previous read, across all of an index's files) and the study's two drive
profiles can be joined by profiles measured with ``lshdisk calibrate``.
"""

import csv
import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from cost_model import DeviceProfile, get_profile, linear_scan_cost, query_cost
from .datasets import read_queries
from .evaluate import overall_ratio, recall_at_k
from .groundtruth import compute_groundtruth

__all__ = ["Report", "build_report", "io_report", "measure_scan_ms", "format_tables",
           "write_json", "write_csv", "plot_report", "SCAN_METHOD", "FIGURES"]

#: How the linear scan's algorithm time is measured (printed with every report).
SCAN_METHOD = ("linear-scan algorithm time = CPU time (all threads, time.process_time) of one "
               "exact k-NN scan of all queries by lshdisk.compute_groundtruth over the index's "
               "own vector file (already in the page cache), divided by the number of queries")

#: The study's six figures: (file stem, metric key or None for a device's QPT, title, y label).
FIGURES = (
    ("seeks", "seeks", "Seeks per query", "seeks per query"),
    ("mb_read", "mb_read", "Data read per query", "MB read per query (1 MB = 10^6 B)"),
    ("algorithm_ms", "algorithm_ms", "Algorithm time per query",
     "CPU time of candidate generation\nand false-positive removal (ms per query)"),
    ("qpt", None, "Query processing time on {device}", "QPT (ms per query)"),
    ("overall_ratio", "ratio", "Overall ratio", "overall ratio (returned / exact distance)"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """The rows of a cost report.

    Attributes
    ----------
    rows : list of dict
        One row per (index, k), means over the queries: ``index, algorithm, label, k,
        n_queries, page_reads, seeks, mb_read, candidates, algorithm_ms, ratio, recall`` and,
        per device ``<name>``: ``<name>_seek_term_ms, <name>_read_term_ms, <name>_qpt_ms``,
        ``<name>_scan_qpt_ms`` and ``<name>_vs_scan`` (scan QPT / LSH QPT: above 1 LSH is
        faster).
    linear_scan : list of dict
        One per dataset: ``dataset, n, d, dtype, seeks, mb_read, algorithm_ms`` and per device
        ``<name>_seek_term_ms, <name>_read_term_ms, <name>_qpt_ms``.
    devices : tuple of DeviceProfile
    n_queries : int
    ks : tuple of int
    scan_method : str
    """

    rows: list
    linear_scan: list
    devices: tuple
    n_queries: int
    ks: tuple
    scan_method: str = SCAN_METHOD

    def to_dict(self):
        """JSON-ready dict: ``{"rows": [...], "linear_scan": [...], "devices": [...], ...}``
        (non-finite numbers become None)."""
        return _finite({"rows": self.rows, "linear_scan": self.linear_scan,
                        "devices": [p.to_dict() for p in self.devices],
                        "n_queries": self.n_queries, "ks": list(self.ks),
                        "scan_method": self.scan_method})


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- linear scan


class _IndexRows:
    """Rows of an index's own vector file, sliced lazily (``rows[a:b]``) for a streaming scan.

    Reads with its own descriptor, so the index's I/O counts are untouched.
    """

    def __init__(self, index):
        store = index.vectors
        pf = store.page_file
        self.dtype = store.dtype
        self.shape = (store.n, store.d)
        self._row_bytes = store.row_bytes
        self._ppp = store.points_per_page
        self._pages_per_point = store.pages_per_point
        self._page = pf.page_size
        self._payload = pf.payload_size
        self._fd = os.open(pf.path, os.O_RDONLY)

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("index rows are read by contiguous slices only")
        start, stop, _ = key.indices(self.shape[0])
        if stop <= start:
            return np.empty((0, self.shape[1]), dtype=self.dtype)
        if self._pages_per_point > 1:
            k = self._pages_per_point
            first, count = 1 + start * k, (stop - start) * k
            raw = np.frombuffer(self._read(first, count), dtype=np.uint8)
            raw = raw.reshape(stop - start, k * self._page)
            raw = raw.reshape(stop - start, k, self._page)[:, :, :self._payload]
            raw = raw.reshape(stop - start, k * self._payload)[:, :self._row_bytes]
            return np.ascontiguousarray(raw).view(self.dtype).reshape(stop - start, self.shape[1])
        ppp = self._ppp
        p0, p1 = start // ppp, (stop - 1) // ppp
        raw = np.frombuffer(self._read(1 + p0, p1 - p0 + 1), dtype=np.uint8)
        raw = raw.reshape(p1 - p0 + 1, self._page)[:, :ppp * self._row_bytes]
        rows = np.ascontiguousarray(raw).view(self.dtype).reshape(-1, self.shape[1])
        return rows[start - p0 * ppp: stop - p0 * ppp]

    def _read(self, first_page, n_pages):
        want = n_pages * self._page
        data = os.pread(self._fd, want, first_page * self._page)
        if len(data) != want:
            raise OSError(f"short read of the vector file ({len(data)} of {want} bytes)")
        return data

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def measure_scan_ms(index, queries, k=10, *, memory_limit_bytes=256 * 2**20):
    """CPU ms per query of an exact linear scan of ``index``'s data (see :data:`SCAN_METHOD`).

    Parameters
    ----------
    index : lshdisk.Index
    queries : ndarray of float32, shape (n_queries, d)
    k : int
        Neighbours kept by the scan.
    memory_limit_bytes : int
        Passed to :func:`lshdisk.compute_groundtruth`.

    Returns
    -------
    float
        ms per query.

    Notes
    -----
    Disk access: reads the index's vector file twice (a first, one-query pass warms the page
    cache and the compiled kernel; the second pass is timed).
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[0] == 0:
        raise ValueError(f"queries must have shape (n_queries >= 1, d), got {queries.shape}")
    k = max(1, min(int(k), index.n))
    rows = _IndexRows(index)
    try:
        compute_groundtruth(rows, queries[:1], k, memory_limit_bytes=memory_limit_bytes)
        t0 = time.process_time()
        compute_groundtruth(rows, queries, k, memory_limit_bytes=memory_limit_bytes)
        cpu = time.process_time() - t0
    finally:
        rows.close()
    return cpu * 1e3 / queries.shape[0]


def _warm_page_cache(index, block_bytes=8 * 2**20):
    """Read the index's files once, so that searches find their pages in the page cache."""
    for name in index.info()["files"]:
        fd = os.open(os.path.join(index.path, name), os.O_RDONLY)
        try:
            offset = 0
            while True:
                n = len(os.pread(fd, block_bytes, offset))
                if n == 0:
                    break
                offset += n
        finally:
            os.close(fd)


def _dataset_key(index):
    ds = index.meta.get("dataset", {})
    return ds.get("fingerprint") or f"{ds.get('source')}:{index.n}x{index.d}:{index.dtype}"


def _dataset_name(index):
    source = index.meta.get("dataset", {}).get("source")
    return os.path.basename(source) if source else os.path.basename(index.path)


def _scan_row(index, scan_ms, devices):
    row = {"dataset": _dataset_name(index), "n": index.n, "d": index.d,
           "dtype": index.dtype.name, "algorithm": "linear scan", "seeks": 1.0,
           "mb_read": index.n * index.d * index.dtype.itemsize / 1e6, "algorithm_ms": scan_ms}
    for p in devices:
        m = linear_scan_cost(index.n, index.d, index.dtype.itemsize, scan_ms, p).mean()
        row[f"{p.name}_seek_term_ms"] = m["seek_term_ms"]
        row[f"{p.name}_read_term_ms"] = m["read_term_ms"]
        row[f"{p.name}_qpt_ms"] = m["qpt_ms"]
    return row


# --------------------------------------------------------------------------- report


def _profiles(devices):
    if isinstance(devices, (str, os.PathLike, DeviceProfile)):
        devices = [devices]
    profiles = tuple(get_profile(d) for d in devices)
    if not profiles:
        raise ValueError("devices must name at least one profile, e.g. ['hdd', 'ssd']")
    names = [p.name for p in profiles]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"device profiles must have distinct names, got {', '.join(dup)} twice; "
                         f"rename one (its JSON 'name' field)")
    return profiles


def build_report(indexes, queries, gt_distances, ks, devices=("hdd", "ssd"), *, progress=None,
                 max_candidates=None, termination="paper", recall_targets=()):
    """Search every index for every k and cost the searches on every device.

    Parameters
    ----------
    indexes : sequence of lshdisk.Index
        Open indexes of data of the same dimension (each should have no buffer pool, as
        :func:`lshdisk.open` gives by default, so that every page access is counted).
    queries : ndarray of float32, shape (n_queries, d)
    gt_distances : ndarray of float32, shape (n_queries, K)
        Exact neighbour distances, K >= max(ks).
    ks : sequence of int
    devices : sequence of (DeviceProfile, str or os.PathLike)
        Profiles, built-in names (``"hdd"``, ``"ssd"``) or JSON profile paths.
    progress : callable, optional
        ``progress(stage, done, total)``; stage ``"search"`` counts (index, k) pairs, stage
        ``"scan"`` the datasets whose linear scan is timed.
    max_candidates, termination : optional
        Passed to :meth:`lshdisk.Index.search` (the candidate cap, the termination policy).
    recall_targets : sequence of float
        Also search each index with its learned termination at these targets
        (``recall_target=r``, :mod:`lshdisk.learned_termination`), at the k it was tuned for:
        rows labelled ``"<label>, recall target r"`` beside the others, so the figures and
        tables compare learned and fixed termination.

    Returns
    -------
    Report

    Raises
    ------
    ValueError
        No index or k, a k < 1, queries or ground truth of the wrong shape, duplicate
        device names; a recall target some index was not tuned for, or whose tuned k is not
        among ``ks``.

    Notes
    -----
    Disk access: per index, one sequential read of its files (to warm the page cache, so that
    ``algorithm_ms`` holds CPU only; an index larger than memory keeps some device work in
    it) and a one-query warm-up search, then one search of all queries per k, on one thread
    (``algorithm_ms`` is one query's CPU time on an otherwise idle machine, as the cost model
    takes it); per dataset, two scans of the vector file.
    """
    indexes = list(indexes)
    if not indexes:
        raise ValueError("indexes must hold at least one open index")
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be one or more integers >= 1, got {ks}")
    profiles = _profiles(devices)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    gt_distances = np.asarray(gt_distances)
    if gt_distances.ndim != 2 or gt_distances.shape[0] != queries.shape[0]:
        raise ValueError(f"gt_distances must have shape ({queries.shape[0]}, K), got "
                         f"{gt_distances.shape}")
    nq = queries.shape[0]
    labels = [ix.algorithm for ix in indexes]
    labels = [lab if labels.count(lab) == 1 else f"{lab} ({os.path.basename(ix.path)})"
              for lab, ix in zip(labels, indexes)]

    keys = list(dict.fromkeys(_dataset_key(ix) for ix in indexes))
    scans = {}
    for ix in indexes:
        key = _dataset_key(ix)
        if key not in scans:
            if progress is not None:
                progress("scan", len(scans), len(keys))
            scans[key] = _scan_row(ix, measure_scan_ms(ix, queries, max(ks)), profiles)
    if progress is not None:
        progress("scan", len(keys), len(keys))

    runs = []  # (index, label, k, search keywords)
    for ix, label in zip(indexes, labels):
        runs += [(ix, label, k, {"max_candidates": max_candidates, "termination": termination})
                 for k in ks]
        for r in recall_targets:
            model = ix.termination_model
            if model is None or model.k not in ks:
                raise ValueError(f"{ix.path} has no learned termination tuned for one of k = "
                                 f"{_ks_text(ks)}: run 'lshdisk tune {ix.path} --recall {r:g}' "
                                 f"or report its tuned k")
            ix.search(queries[:1], model.k, recall_target=r)  # the target is tuned: check
            runs.append((ix, f"{label}, recall target {r:g}", model.k, {"recall_target": r}))
    rows = []
    total, done = len(runs), 0
    warmed = set()
    for ix, label, k, search_kw in runs:
        if id(ix) not in warmed:
            _warm_page_cache(ix)  # algorithm_ms must hold no device wait: the terms count it
            ix.search(queries[:1], max(ks))  # load the compiled kernels
            warmed.add(id(ix))
        scan = scans[_dataset_key(ix)]
        D, _, stats = ix.search(queries, k, return_stats=True, threads=1, **search_kw)
        bytes_read = float(np.mean(stats.bytes_read))
        row = {"index": ix.path, "algorithm": ix.algorithm, "label": label, "k": k,
               "n_queries": nq, "page_reads": float(np.mean(stats.page_reads)),
               "seeks": float(np.mean(stats.seeks)), "mb_read": bytes_read / 1e6,
               "candidates": float(np.mean(stats.candidates)),
               "algorithm_ms": float(np.mean(stats.cpu_seconds)) * 1e3,
               "ratio": overall_ratio(D, gt_distances, k),
               "recall": recall_at_k(D, gt_distances, k)}
        for p in profiles:
            # Means of the per-query terms; the model is linear, so these equal the
            # formula applied to the row's own mean seeks, MB and algorithm ms.
            m = query_cost(row["seeks"], bytes_read, row["algorithm_ms"], p).mean()
            row[f"{p.name}_seek_term_ms"] = m["seek_term_ms"]
            row[f"{p.name}_read_term_ms"] = m["read_term_ms"]
            row[f"{p.name}_qpt_ms"] = m["qpt_ms"]
            row[f"{p.name}_scan_qpt_ms"] = scan[f"{p.name}_qpt_ms"]
            row[f"{p.name}_vs_scan"] = scan[f"{p.name}_qpt_ms"] / m["qpt_ms"]
        rows.append(row)
        done += 1
        if progress is not None:
            progress("search", done, total)
    return Report(rows=rows, linear_scan=list(scans.values()), devices=profiles, n_queries=nq,
                  ks=tuple(ks))


def io_report(index, stats, device="ssd", *, queries=None, scan_algorithm_ms=None):
    """QPT terms of one search's stats on one device, beside the linear scan.

    Parameters
    ----------
    index : lshdisk.Index
        The index that was searched.
    stats : SearchStats
        From ``index.search(..., return_stats=True)``.
    device : DeviceProfile, str or os.PathLike
        Profile, built-in name (``"hdd"``, ``"ssd"``) or JSON profile path.
    queries : array-like, shape (n_queries, d), optional
        The queries searched; used to time the linear scan when ``scan_algorithm_ms`` is not
        given (else up to 10 evenly spaced points of the index are used as queries).
    scan_algorithm_ms : float, optional
        The linear scan's CPU ms per query, if already measured.

    Returns
    -------
    dict
        ``device, n_queries`` and the means over the queries of ``seeks, mb_read,
        seek_term_ms, read_term_ms, algorithm_ms, qpt_ms``; ``per_query``: the same terms as
        float64 arrays (n_queries,); ``linear_scan``: the scan's terms; ``vs_scan``: scan
        QPT / mean QPT (above 1 LSH is faster); ``lsh_pays_off``: bool; ``scan_method``.

    Notes
    -----
    Disk access: none unless the scan must be timed (two passes over the vector file).
    """
    profile = get_profile(device)
    cost = query_cost(stats.seeks, stats.bytes_read, np.asarray(stats.cpu_seconds) * 1e3, profile)
    if scan_algorithm_ms is None:
        if queries is None:  # the scan's CPU time depends on n, d and k, not on the queries
            rows = _IndexRows(index)
            try:
                picks = np.unique(np.linspace(0, index.n - 1, num=min(10, index.n)).astype(int))
                queries = np.concatenate([rows[int(i):int(i) + 1] for i in picks])
            finally:
                rows.close()
        q = read_queries(queries, expected_dim=index.d)
        scan_algorithm_ms = measure_scan_ms(index, q, 10)
    scan = linear_scan_cost(index.n, index.d, index.dtype.itemsize, scan_algorithm_ms, profile)
    means = cost.mean()
    scan_means = scan.mean()
    terms = ("seeks", "mb_read", "seek_term_ms", "read_term_ms", "algorithm_ms", "qpt_ms")
    return {"device": profile.name, "n_queries": len(cost), **means,
            "per_query": {t: getattr(cost, t) for t in terms},
            "linear_scan": scan_means,
            "vs_scan": scan_means["qpt_ms"] / means["qpt_ms"] if means["qpt_ms"] > 0 else math.inf,
            "lsh_pays_off": bool(means["qpt_ms"] < scan_means["qpt_ms"]),
            "scan_method": SCAN_METHOD}


# --------------------------------------------------------------------------- output


def _ks_text(ks):
    return ", ".join(str(k) for k in ks)


def format_tables(report):
    """The report as text: one table per device, then the linear scan and a verdict."""
    out = []
    for p in report.devices:
        n = p.name
        out.append(f"== {n}: seek {p.seek_ms:g} ms, read {p.read_mb_per_ms:g} MB/ms, page "
                   f"{p.page_size_bytes} B" + (f" -- {p.description}" if p.description else ""))
        cells = [["algorithm", "k", "seeks", "MB read", "alg ms", "seek ms", "read ms",
                  "QPT ms", "scan/QPT", "ratio", "recall"]]
        for r in report.rows:
            cells.append([r["label"], str(r["k"]), f"{r['seeks']:.1f}", f"{r['mb_read']:.3f}",
                          f"{r['algorithm_ms']:.2f}", f"{r[n + '_seek_term_ms']:.2f}",
                          f"{r[n + '_read_term_ms']:.2f}", f"{r[n + '_qpt_ms']:.2f}",
                          f"{r[n + '_vs_scan']:.3f}", f"{r['ratio']:.4f}", f"{r['recall']:.3f}"])
        for s in report.linear_scan:
            cells.append([f"linear scan ({s['dataset']})", "any", "1", f"{s['mb_read']:.3f}",
                          f"{s['algorithm_ms']:.2f}", f"{s[n + '_seek_term_ms']:.2f}",
                          f"{s[n + '_read_term_ms']:.2f}", f"{s[n + '_qpt_ms']:.2f}", "1.000",
                          "1.0000", "1.000"])
        widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                           enumerate(zip(row, widths))) for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        out.extend(lines)
        out.extend(_verdict(report, p))
        out.append("")
    out.append(f"QPT = seeks x seek_ms + MB_read / read_mb_per_ms + algorithm_ms (Jafari & "
               f"Nagarkar 2021, Section 4.2); means over {report.n_queries} queries; "
               f"scan/QPT > 1: LSH is faster than the linear scan.")
    out.append(report.scan_method + ".")
    return "\n".join(out)


def _verdict(report, profile):
    n = profile.name
    lines = []
    for label in dict.fromkeys(r["label"] for r in report.rows):
        mine = [r for r in report.rows if r["label"] == label]
        lsh = [r["k"] for r in mine if r[f"{n}_qpt_ms"] < r[f"{n}_scan_qpt_ms"]]
        scan = [r["k"] for r in mine if r["k"] not in lsh]
        s = mine[0][f"{n}_scan_qpt_ms"]
        if not lsh:
            slow = sorted(1.0 / r[n + "_vs_scan"] for r in mine)
            times = (f"{slow[0]:.3g}x" if f"{slow[0]:.3g}" == f"{slow[-1]:.3g}"
                     else f"{slow[0]:.3g}x to {slow[-1]:.3g}x")
            lines.append(f"{n}: {label} did not pay off: the linear scan ({s:.2f} ms) is faster "
                         f"at every k; LSH's QPT is {times} the scan's")
        elif not scan:
            lines.append(f"{n}: {label} beats the linear scan ({s:.2f} ms) at every k")
        else:
            lines.append(f"{n}: {label} beats the linear scan ({s:.2f} ms) at k = {_ks_text(lsh)}; "
                         f"the scan would have won at k = {_ks_text(scan)}")
    return lines


def write_json(report, path):
    """Write :meth:`Report.to_dict` to ``path`` as JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report.to_dict(), f, indent=2, allow_nan=False)
        f.write("\n")


def write_csv(report, path):
    """Write the rows, then the linear-scan rows, to ``path`` as CSV (one header)."""
    fields = list(report.rows[0]) if report.rows else []
    for s in report.linear_scan:
        fields += [k for k in s if k not in fields]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        for r in report.rows:
            writer.writerow(r)
        for s in report.linear_scan:
            writer.writerow(dict(s, label="linear scan", k=""))


def plot_report(report, directory):
    """Write the study's six figures (one QPT figure per device) and a seventh as PNG files.

    One line per algorithm over k: (1) seeks, (2) MB read, (3) algorithm time, (4, 5) QPT on
    each device with the linear scan as a dashed horizontal line, (6) overall ratio; then
    (7) recall@10 against MB read per query, one line per method through its indexes, the
    linear scan's MB marked.

    Parameters
    ----------
    report : Report
    directory : str or os.PathLike
        Created if missing.

    Returns
    -------
    list of str
        The files written: ``fig1_seeks.png``, ``fig2_mb_read.png``,
        ``fig3_algorithm_ms.png``, ``fig4_qpt_<device>.png``, ... , ``figN_overall_ratio.png``,
        ``fig(N+1)_recall_mb.png``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    os.makedirs(directory, exist_ok=True)
    labels = list(dict.fromkeys(r["label"] for r in report.rows))
    ds = report.linear_scan
    subtitle = "; ".join(f"{s['dataset']}: n = {s['n']:,}, d = {s['d']} ({s['dtype']})" for s in ds)
    subtitle += f"; {report.n_queries} queries, no buffer pool"
    specs = []
    for stem, key, title, ylabel in FIGURES:
        if key is None:
            for p in report.devices:
                specs.append((f"qpt_{p.name}", f"{p.name}_qpt_ms",
                              title.format(device=p.name.upper()),
                              f"QPT on {p.name.upper()} (ms per query)", p))
        else:
            specs.append((stem, key, title, ylabel, None))
    paths = []
    markers = "osD^v<>ph*"
    for number, (stem, key, title, ylabel, profile) in enumerate(specs, start=1):
        fig = Figure(figsize=(7.0, 4.8), dpi=150)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        values = []
        for i, label in enumerate(labels):
            mine = [r for r in report.rows if r["label"] == label]
            x = [r["k"] for r in mine]
            y = [r[key] if r[key] is not None and math.isfinite(r[key]) else np.nan for r in mine]
            values += [v for v in y if np.isfinite(v)]
            ax.plot(x, y, marker=markers[i % len(markers)], linewidth=1.8, markersize=5,
                    label=label)
        if profile is not None:
            for j, s in enumerate(ds):
                v = s[f"{profile.name}_qpt_ms"]
                values.append(v)
                ax.axhline(v, color="0.25", linestyle="--" if j == 0 else ":", linewidth=1.4,
                           label=f"linear scan{' (' + s['dataset'] + ')' if len(ds) > 1 else ''}:"
                                 f" {v:,.2f} ms")
            pos = [v for v in values if v > 0]
            if pos and max(pos) / min(pos) > 30:
                ax.set_yscale("log")
            ax.set_title(f"({chr(96 + number)}) {title}\nseek {profile.seek_ms:g} ms, "
                         f"{profile.read_mb_per_ms:g} MB/ms -- {subtitle}", fontsize=9.5)
        else:
            ax.set_title(f"({chr(96 + number)}) {title}\n{subtitle}", fontsize=9.5)
        ax.set_xlabel("k (neighbours per query)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(sorted({r["k"] for r in report.rows}))
        ax.grid(True, which="major", alpha=0.35)
        ax.legend(fontsize=8.5, loc="best")
        fig.tight_layout()
        path = os.path.join(os.fspath(directory), f"fig{number}_{stem}.png")
        fig.savefig(path)
        paths.append(path)
    path = _plot_recall_mb(report, directory, len(specs) + 1, subtitle)
    if path is not None:
        paths.append(path)
    return paths


def _plot_recall_mb(report, directory, number, subtitle):
    """The seventh figure: recall@k against MB read per query at k = 10 (else the k nearest
    10), one line per method through its indexes (and their recall-target rows), sorted by
    MB, with each linear scan's MB as a vertical line. None when no row has a recall."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ks = sorted({r["k"] for r in report.rows if r.get("recall") is not None})
    if not ks:
        return None
    k = min(ks, key=lambda v: (abs(v - 10), v))
    fig = Figure(figsize=(7.0, 4.8), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    markers = "osD^v<>ph*"
    methods = list(dict.fromkeys(r["algorithm"] for r in report.rows))
    for i, method in enumerate(methods):
        mine = sorted((r for r in report.rows if r["algorithm"] == method and r["k"] == k
                       and r.get("recall") is not None), key=lambda r: r["mb_read"])
        if not mine:
            continue
        ax.plot([r["mb_read"] for r in mine], [r["recall"] for r in mine],
                marker=markers[i % len(markers)], linewidth=1.8, markersize=5, label=method)
        for r in mine:
            ax.annotate(r["label"], (r["mb_read"], r["recall"]), fontsize=6.5,
                        xytext=(3, 3), textcoords="offset points")
    for j, scan in enumerate(report.linear_scan):
        ax.axvline(scan["mb_read"], color="0.25", linestyle="--" if j == 0 else ":",
                   linewidth=1.4, label=f"linear scan ({scan['dataset']}): "
                                        f"{scan['mb_read']:,.2f} MB")
    ax.set_xscale("log")
    ax.set_title(f"({chr(96 + number)}) Recall@{k} against data read per query\n{subtitle}",
                 fontsize=9.5)
    ax.set_xlabel("MB read per query (1 MB = 10^6 B), log scale")
    ax.set_ylabel(f"recall@{k}")
    ax.grid(True, which="both", alpha=0.35)
    ax.legend(fontsize=8.5, loc="best")
    fig.tight_layout()
    path = os.path.join(os.fspath(directory), f"fig{number}_recall_mb.png")
    fig.savefig(path)
    return path
