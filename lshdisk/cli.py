"""The ``lshdisk`` command line: build, insert, delete, compact, search, groundtruth, evaluate,
tune, info, verify, demo.

Each command parses its options, makes one library call, and prints the result: a table for
people, or JSON with ``--json``. Failures print one line naming the problem and the fix and
exit with status 1 (2 for usage errors).
"""

import json
import os
import signal
import sys
import time
from dataclasses import dataclass

import click
import numpy as np

from . import registry
from .errors import LshdiskError
from .termination import POLICIES
from storage.errors import StorageError

__all__ = ["main", "InsertConfig", "DeleteConfig", "CompactConfig"]

_FORMATS = click.Choice(["fvecs", "bvecs", "ivecs", "fbin", "u8bin", "i8bin", "raw", "npy", "hdf5"])
_DTYPES = click.Choice(["uint8", "int8", "uint16", "int32", "float32", "float64"])


class _Progress:
    """Progress bars on a terminal for ``progress(stage, done, total)`` callbacks."""

    LABELS = {"read": "reading and projecting", "tables": "writing hash tables", "search": "searching",
              "sample": "reading the training sample", "train": "training",
              "layout": "placing rows in the layout's cells (two passes)",
              "groundtruth": "scanning the base"}

    def __init__(self, enabled):
        self.enabled = enabled
        self.bar = None
        self.stage = None
        self.done = 0

    def __call__(self, stage, done, total):
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.done = 0
            self.bar = click.progressbar(length=max(total, 1), label=self.LABELS.get(stage, stage),
                                         file=sys.stderr, show_eta=True)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def _unwind_on_terminate():
    """SIGTERM and SIGHUP unwind like Ctrl-C, so that partial files are removed before the
    process ends (SIGKILL cannot be caught: the next build, change or open removes what it
    leaves)."""
    signal.signal(signal.SIGTERM, _terminate)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _terminate)


def _progress_enabled(quiet):
    return not quiet and sys.stderr.isatty()


def _fail(exc):
    raise click.ClickException(str(exc)) from exc


def _parse_ks(text):
    parts = str(text).split(",")
    try:
        if any(not x.strip() for x in parts):
            raise ValueError
        ks = [int(x) for x in parts]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 1,10,100, got {text!r}")
    if not ks or min(ks) < 1:
        raise click.BadParameter(f"every k must be >= 1, got {text!r}")
    return ks


def _check_k(ks, index):
    """Refuse a k above the index's point count (its results would be padding only, and the
    result arrays could exhaust memory)."""
    big = max(ks)
    if big > index.n:
        raise click.BadParameter(f"k = {big} exceeds the {index.n} points of {index.path}: use "
                                 f"-k <= {index.n}", param_hint="-k")


def _check_out_dir(path, option):
    """Fail before any work if the directory of an output file does not exist."""
    if path is not None:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise click.BadParameter(f"the directory {parent} of {path} does not exist: create "
                                     f"it first", param_hint=option)


def _queries_arg(positional, option):
    """QUERIES given as the argument or as --queries (the spelling of 'lshdisk report')."""
    if (positional is None) == (option is None):
        raise click.UsageError("give the query file once: as QUERIES or as --queries")
    return positional if positional is not None else option


def _parse_targets(text):
    """Comma-separated recall targets in (0, 1], for report's --recall-target; () if None."""
    if text is None:
        return ()
    try:
        targets = [float(x) for x in str(text).split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers such as 0.8,0.9, got "
                                 f"{text!r}", param_hint="--recall-target") from None
    if not all(0 < r <= 1 for r in targets):
        raise click.BadParameter(f"every recall target must lie in (0, 1], got {text!r}",
                                 param_hint="--recall-target")
    return tuple(targets)


def _parse_params(items):
    """--param NAME=VALUE pairs as a dict of ints (or floats)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--param")
        try:
            out[name.strip()] = int(value)
        except ValueError:
            try:
                out[name.strip()] = float(value)
            except ValueError:
                raise click.BadParameter(f"{name} must be a number, got {value!r}",
                                         param_hint="--param") from None
    return out or None


def _parse_unit(text):
    """'auto' or a positive number, for --unit."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise click.BadParameter(f"expected auto or a positive number, got {text!r}",
                                 param_hint="--unit") from None


def _table(rows, columns):
    """Format dict rows as an aligned text table; columns = [(key, header, fmt)]."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append([fmt.format(r[key]) for key, _, fmt in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lshdisk")
def main():
    """lshdisk: external-memory LSH for c-approximate k-NN search on data larger than RAM.

    Build a disk index with 'lshdisk build', query it with 'lshdisk search', measure it
    against exact ground truth with 'lshdisk evaluate'; change it with 'lshdisk insert',
    'lshdisk delete' and 'lshdisk compact'. Every page the index reads is counted (page
    reads, seeks, bytes), so results come with their disk cost.
    """


@main.command()
@click.argument("source")
@click.argument("index_dir", type=click.Path())
@click.option("--algorithm", type=click.Choice(list(registry.names())), default="qalsh",
              show_default=True,
              help="LSH scheme: " + "; ".join(f"{name}, {registry.method(name).title}"
                                             for name in registry.names())
                   + " (c2lsh needs an integer -c).")
@click.option("--preset", type=click.Choice(list(registry.preset_names())), default=None,
              help="Named parameters: jafari2021 = the 2021 experimental study's delta = 0.1, w per method.")
@click.option("-c", "--ratio", "c", type=float, default=2.0, show_default=True,
              help="Approximation ratio c > 1.")
@click.option("--memory", default="1GiB", show_default=True,
              help="Memory limit of the build's buffers, e.g. 256MiB; larger data are sorted on disk.")
@click.option("--page-size", type=int, default=4096, show_default=True,
              help="Page size in bytes (power of two, 512 to 1048576).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the hash functions (same seed and data: byte-identical index).")
@click.option("--format", "fmt", type=_FORMATS, default=None,
              help="Source format; default from the extension. HDF5 sources are FILE.hdf5:train.")
@click.option("--dtype", type=_DTYPES, default=None, help="Coordinate type of a raw source.")
@click.option("--dim", type=int, default=None, help="Dimension of a raw source.")
@click.option("--delta", type=float, default=None,
              help="Error probability (default: 1/e for qalsh/ilsh, 0.01 for c2lsh).")
@click.option("-w", "--bucket-width", "w", type=float, default=None,
              help="Bucket width w (default: from c for qalsh/ilsh, 1 for c2lsh).")
@click.option("--beta", type=float, default=None, help="False-positive share (default 100/n).")
@click.option("--unit", default="auto", show_default=True,
              help="Radius unit u (radii u*c^j): auto measures the data's nearest-neighbour "
                   "scale, so the search does not depend on the data's units; 1 gives the "
                   "papers' radii 1, c, c^2, ...")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A further parameter of the method, repeatable; kmeans: m (tables, default "
                   "16), centroids (per table, 256), l (collision threshold, 4), probes (cells "
                   "per table in the first round, 1), train_rows (200000), iterations (10); "
                   "pca: m (QALSH's m for c, at most d), l and share (calibrated: w so that "
                   "this share of true neighbours collide, QALSH's p1 by default), "
                   "train_rows; neoph: those, hidden (128), steps (300).")
@click.option("--layout", type=click.Choice(["source", "partition"]), default="source",
              show_default=True,
              help="Order of the stored vectors: the source's, or cell by cell of a partition "
                   "learned from a sample, so that a query's candidates share pages (one more "
                   "pass over the source at build).")
@click.option("--overwrite", is_flag=True, help="Replace an existing index once the new one is complete.")
@click.option("--json", "as_json", is_flag=True, help="Print the index summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def build(source, index_dir, algorithm, preset, c, memory, page_size, seed, fmt, dtype, dim, delta,
          w, beta, unit, params, layout, overwrite, as_json, quiet):
    """Build an index of SOURCE in INDEX_DIR, out of core.

    SOURCE is a .fvecs/.bvecs/.ivecs, .fbin/.u8bin/.i8bin, .npy or FILE.hdf5:DATASET file, or a
    raw headerless file with --dtype and --dim. The data are read once, in chunks; the
    projections are sorted on disk within --memory; the index is written under a temporary
    name and renamed into place when complete.
    """
    from .index import build as build_index
    progress = _Progress(_progress_enabled(quiet))
    t0 = time.perf_counter()
    _unwind_on_terminate()
    try:
        index = build_index(source, index_dir, algorithm=algorithm, c=c, page_size=page_size,
                            memory_limit=memory, seed=seed, progress=progress,
                            overwrite=overwrite, format=fmt, dtype=dtype, dim=dim, delta=delta,
                            beta=beta, w=w, preset=preset, unit=_parse_unit(unit),
                            options=_parse_params(params), layout=layout)
    except (LshdiskError, StorageError, ValueError, OSError) as exc:
        _fail(exc)
    finally:
        progress.close()
    with index:
        info = index.info()
    seconds = time.perf_counter() - t0
    if as_json:
        click.echo(json.dumps(dict(info, seconds=seconds), indent=2, sort_keys=True))
        return
    p = info["params"]
    train = info["build"].get("train_seconds")
    click.echo(f"built {info['algorithm']} index {info['path']} in {seconds:.2f} s"
               + (f" (training {train:.2f} s)" if train is not None else "")
               + f": n = {info['n']}, d = {info['d']} ({info['dtype']}), m = {p['m']}, "
               f"l = {p['l']}, " + (f"w = {p['w']:.4f}, " if "w" in p else "")
               + f"{info['index_bytes'] / 2**20:.1f} MiB")


# --------------------------------------------------------------------------- changes

@dataclass(frozen=True, slots=True, kw_only=True)
class InsertConfig:
    """What 'lshdisk insert' does: add the points of ``source`` to ``index_dir``."""

    index_dir: str
    source: str
    format: str | None
    dtype: str | None
    dim: int | None
    memory_limit: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteConfig:
    """What 'lshdisk delete' does: delete ``ids`` (int64, 1-D) from ``index_dir``."""

    index_dir: str
    ids: np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class CompactConfig:
    """What 'lshdisk compact' does: merge the segments of ``index_dir``."""

    index_dir: str
    memory_limit: str


def _read_ids(path, singles):
    """The ids of --ids FILE (a .npy array of integers, or text: integers separated by
    whitespace or newlines) and of the repeated --id N, as int64 (c,)."""
    parts = [np.asarray(singles, dtype=np.int64)]
    if path is not None:
        if str(path).lower().endswith(".npy"):
            try:
                ids = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise click.BadParameter(f"cannot read {path} as a .npy array ({exc}): save "
                                         f"the ids with numpy.save", param_hint="--ids") from None
            if ids.dtype.kind not in "iu":
                raise click.BadParameter(f"{path} holds {ids.dtype} values, not integers: save "
                                         f"the ids as an integer array", param_hint="--ids")
            parts.append(ids.astype(np.int64).ravel())
        else:
            try:
                with open(path, encoding="utf-8") as f:
                    tokens = f.read().split()
            except (OSError, UnicodeDecodeError) as exc:
                raise click.BadParameter(f"cannot read {path} ({exc}): give a text file of "
                                         f"integer ids or a .npy array",
                                         param_hint="--ids") from None
            try:
                parts.append(np.array([int(t) for t in tokens], dtype=np.int64))
            except ValueError:
                bad = next(t for t in tokens if not t.lstrip("+-").isdigit())
                raise click.BadParameter(f"{path} holds {bad!r}, not an integer id: give one "
                                         f"integer id per line or separated by spaces",
                                         param_hint="--ids") from None
            except OverflowError:
                raise click.BadParameter(f"{path} holds an id beyond int64: pass ids the index "
                                         f"returned", param_hint="--ids") from None
    return np.concatenate(parts)


def _segment_rows(manifest):
    """One dict per segment of ``manifest`` (lshdisk.segments.Manifest): name, n, ids."""
    rows = []
    for s in manifest.segments:
        ids = (f"{s.id_start} .. {s.id_start + s.n - 1}" if s.id_start is not None
               else f"id map ({s.id_map})")
        rows.append({"name": s.name, "n": s.n, "id_start": s.id_start, "id_map": s.id_map,
                     "ids": ids})
    return rows


def _segments_summary(manifest):
    """The segments part of 'lshdisk info' (and of the change commands' --json)."""
    return {"segments": _segment_rows(manifest), "next_id": manifest.next_id,
            "tombstones": manifest.tombstone_count, "rows": manifest.rows,
            "live": manifest.live, "generation": manifest.generation}


@main.command()
@click.argument("index_dir", type=click.Path())
@click.argument("source")
@click.option("--format", "fmt", type=_FORMATS, default=None,
              help="Source format; default from the extension. HDF5 sources are FILE.hdf5:train.")
@click.option("--dtype", type=_DTYPES, default=None, help="Coordinate type of a raw source.")
@click.option("--dim", type=int, default=None, help="Dimension of a raw source.")
@click.option("--memory", default="1GiB", show_default=True,
              help="Memory limit of the new segment's build, e.g. 256MiB.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the ids added and the segments as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def insert(index_dir, source, fmt, dtype, dim, memory, as_json, quiet):
    """Insert the points of SOURCE into the index in INDEX_DIR as a new segment.

    SOURCE is read as 'lshdisk build' reads it; its points must have the index's dimension
    and values the index's dtype holds exactly (uint8 points into a float32 index, whole
    numbers 0..255 into a uint8 index). The segment is built out of core with the index's
    own hash functions and parameters, and the index switches to it in one atomic step: an
    interrupted insert leaves the index as it was. The new points get the ids after the
    largest id the index ever gave; searches see them at once. Prints the id range added.
    """
    from .index import open as open_index
    from .updates import add
    config = InsertConfig(index_dir=index_dir, source=source, format=fmt, dtype=dtype, dim=dim,
                          memory_limit=memory)
    progress = _Progress(_progress_enabled(quiet))
    _unwind_on_terminate()
    try:
        ids = add(config.index_dir, config.source, memory_limit=config.memory_limit,
                  progress=progress, format=config.format, dtype=config.dtype, dim=config.dim)
        with open_index(config.index_dir, termination_model=False) as index:
            n, summary = index.n, _segments_summary(index.manifest)
    except (LshdiskError, StorageError, ValueError, OSError) as exc:
        _fail(exc)
    finally:
        progress.close()
    first, last = int(ids[0]), int(ids[-1])
    if as_json:
        click.echo(json.dumps(dict(summary, added={"count": int(ids.size), "first_id": first,
                                                   "last_id": last}, n=n), indent=2))
        return
    click.echo(f"inserted {ids.size} points into {os.path.abspath(index_dir)} as "
               f"{summary['segments'][-1]['name']}: ids {first} .. {last}; n = {n} in "
               f"{len(summary['segments'])} segments")


@main.command()
@click.argument("index_dir", type=click.Path())
@click.option("--ids", "ids_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="File of the ids to delete: text, integers one per line or separated by "
                   "whitespace, or a .npy array of integers.")
@click.option("--id", "singles", type=int, multiple=True, metavar="N",
              help="An id to delete; repeatable, and combines with --ids.")
@click.option("--json", "as_json", is_flag=True, help="Print the count and the segments as JSON.")
def delete(index_dir, ids_path, singles, as_json):
    """Delete points of the index in INDEX_DIR by id: no later search returns them.

    Ids are those searches return (any order; repeats and ids deleted before are allowed and
    not counted again). The deleted ids are written to a new tombstone file and the index
    switches to it in one atomic step; their space is reclaimed by 'lshdisk compact'. Prints
    how many points were newly deleted.
    """
    from .index import open as open_index
    from .updates import delete as delete_ids
    if ids_path is None and not singles:
        raise click.UsageError("give the ids to delete: --ids FILE and/or --id N")
    config = DeleteConfig(index_dir=index_dir, ids=_read_ids(ids_path, singles))
    try:
        count = delete_ids(config.index_dir, config.ids)
        with open_index(config.index_dir, termination_model=False) as index:
            n, summary = index.n, _segments_summary(index.manifest)
    except (LshdiskError, StorageError, ValueError, TypeError, OSError) as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(dict(summary, deleted=count, n=n), indent=2))
        return
    click.echo(f"deleted {count} of {config.ids.size} ids given from "
               f"{os.path.abspath(index_dir)}: n = {n}, {summary['tombstones']} deleted in all")


@main.command()
@click.argument("index_dir", type=click.Path())
@click.option("--memory", default="1GiB", show_default=True,
              help="Memory limit of the rebuild, e.g. 256MiB.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def compact(index_dir, memory, as_json, quiet):
    """Merge the segments of the index in INDEX_DIR into one, dropping deleted points.

    The live points keep their ids; the result is the index 'lshdisk build' gives on them
    (in id order) with the index's build arguments, its parameters derived from n derived
    again for the live count. It is built beside the old index and exchanged with it in one
    atomic step. A tuned termination model is dropped: run 'lshdisk tune' again. An index
    of one segment with nothing deleted is left as it is. Prints the points kept.
    """
    from .index import open as open_index
    from .updates import compact as compact_index
    config = CompactConfig(index_dir=index_dir, memory_limit=memory)
    progress = _Progress(_progress_enabled(quiet))
    _unwind_on_terminate()
    try:
        with open_index(config.index_dir, termination_model=False) as index:
            before = index.manifest
        kept = compact_index(config.index_dir, memory_limit=config.memory_limit,
                             progress=progress)
        with open_index(config.index_dir, termination_model=False) as index:
            summary = _segments_summary(index.manifest)
    except (LshdiskError, StorageError, ValueError, OSError) as exc:
        _fail(exc)
    finally:
        progress.close()
    merged, dropped = len(before.segments), before.tombstone_count
    if as_json:
        click.echo(json.dumps(dict(summary, kept=kept, merged=merged, dropped=dropped),
                              indent=2))
        return
    click.echo(f"compacted {os.path.abspath(index_dir)}: {kept} points kept, {merged} "
               f"segment(s) merged into 1, {dropped} deleted point(s) dropped")


def _load_queries(queries, fmt, dtype, d):
    from .datasets import read_queries
    q = read_queries(queries, format=fmt, dtype=dtype, dim=d if fmt == "raw" or dtype else None,
                     expected_dim=d)
    _note_raw_layout(queries, fmt, dtype, d, q.shape[0])
    return q


def _note_raw_layout(path, fmt, dtype, d, n_read):
    """On a raw query file whose size also fits rows of another coordinate type, say which
    layout was assumed (a float32 file read as uint8 would give 4x as many queries)."""
    from .datasets import _EXTENSIONS
    ext = os.path.splitext(str(path))[1].lower()
    raw = fmt == "raw" or (fmt is None and ext not in _EXTENSIONS)
    if not raw or dtype is None or not os.path.isfile(str(path)):
        return
    size = os.path.getsize(str(path))
    others = [f"{size // (d * np.dtype(t).itemsize)} {t}" for t in _DTYPES.choices
              if t != dtype and np.dtype(t).itemsize != np.dtype(dtype).itemsize
              and size % (d * np.dtype(t).itemsize) == 0]
    if others:
        click.echo(f"note: read {path} as {n_read} raw {dtype} queries of d = {d}; its {size} "
                   f"bytes would also be {' or '.join(others)} queries: pass the right "
                   f"--query-dtype if {dtype} is not it", err=True)


_query_options = [
    click.option("--query-format", type=_FORMATS, default=None,
                 help="Format of QUERIES; default from the extension (raw if unknown)."),
    click.option("--query-dtype", type=_DTYPES, default=None,
                 help="Coordinate type of raw QUERIES (their dimension is the index's)."),
    click.option("--cache", default="0", show_default=True,
                 help="Buffer-pool size, e.g. 64MiB; 0 counts every page access as a read."),
]


def _with_query_options(f):
    for opt in reversed(_query_options):
        f = opt(f)
    return f


_queries_option = click.option("--queries", "queries_opt", default=None,
                               help="The query file, instead of the QUERIES argument.")

_policy_options = [
    click.option("--max-candidates", type=click.IntRange(min=1), default=None,
                 help="Candidate cap (>= k) instead of T2's k + beta*n: trades page reads for "
                      "recall in every method."),
    click.option("--termination", type=click.Choice(list(POLICIES)), default=None,
                 help="paper (default): stop at T1 (k candidates within c*R) or T2 (the cap); "
                      "budget: T2 alone, widening rounds until the cap."),
]
_recall_target_option = click.option(
    "--recall-target", type=float, default=None,
    help="Stop each query at the candidate cap the index's tuned model predicts for this mean "
         "recall@k (see 'lshdisk tune').")
_threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None,
    help="Threads searching the queries in parallel (default: one per core); answers and "
         "per-query counts do not depend on it.")


def _with_search_options(f):
    for opt in reversed([*_policy_options, _recall_target_option, _threads_option]):
        f = opt(f)
    return f


def _with_policy_options(f):
    for opt in reversed(_policy_options):
        f = opt(f)
    return f


@main.command()
@click.argument("index_dir", type=click.Path())
@click.argument("queries", required=False)
@_queries_option
@click.option("-k", type=int, default=10, show_default=True, help="Neighbours per query.")
@click.option("--out", type=click.Path(), required=True,
              help="Result file: .ivecs (ids) or anything else for the QALSH layout "
                   "(per query k records of float32 distance, int32 id).")
@_with_query_options
@_with_search_options
@click.option("--start-radius", is_flag=True,
              help="Start each query's rounds at the radius the index's tuned start model "
                   "predicts (QALSH, C2LSH; see 'lshdisk tune').")
@click.option("--json", "as_json", is_flag=True, help="Print the cost summary as JSON.")
def search(index_dir, queries, queries_opt, k, out, query_format, query_dtype, cache,
           max_candidates, termination, recall_target, threads, start_radius, as_json):
    """Search INDEX_DIR for the k nearest neighbours of each query in QUERIES."""
    from .datasets import write_groundtruth
    from .index import open as open_index
    queries = _queries_arg(queries, queries_opt)
    if k < 1:
        raise click.BadParameter(f"k must be >= 1, got {k}", param_hint="-k")
    _check_out_dir(out, "--out")
    progress = _Progress(_progress_enabled(False))
    try:
        with open_index(index_dir, cache_bytes=cache) as index:
            _check_k([k], index)
            q = _load_queries(queries, query_format, query_dtype, index.d)
            D, I, stats = index.search(q, k, return_stats=True, threads=threads,
                                       max_candidates=max_candidates, termination=termination,
                                       recall_target=recall_target, start_radius=start_radius,
                                       progress=lambda done, total: progress("search", done, total))
        fmt = "ivecs" if out.endswith(".ivecs") else "qalsh"
        write_groundtruth(out, D, I, format=fmt)
    except (LshdiskError, StorageError, ValueError, OSError) as exc:
        _fail(exc)
    finally:
        progress.close()
    mean = stats.mean()
    summary = {"queries": int(q.shape[0]), "k": k, "out": out,
               "page_reads": mean["page_reads"], "seeks": mean["seeks"],
               "mb_read": mean["bytes_read"] / 1e6, "candidates": mean["candidates"],
               "cpu_ms": mean["cpu_seconds"] * 1e3}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"{summary['queries']} queries, k = {k}: {summary['page_reads']:.1f} page reads, "
                   f"{summary['seeks']:.1f} seeks, {summary['mb_read']:.2f} MB, "
                   f"{summary['cpu_ms']:.2f} ms per query; results in {out}")


@main.command()
@click.argument("source")
@click.argument("queries")
@click.option("-k", type=int, default=100, show_default=True, help="Neighbours per query.")
@click.option("--out", type=click.Path(), required=True,
              help="Output: .ivecs (ids only) or the QALSH layout (float32 distance, int32 id).")
@click.option("--memory", default="256MiB", show_default=True, help="Memory for base chunks.")
@click.option("--format", "fmt", type=_FORMATS, default=None, help="Format of SOURCE.")
@click.option("--dtype", type=_DTYPES, default=None, help="Coordinate type of a raw SOURCE.")
@click.option("--dim", type=int, default=None, help="Dimension of a raw SOURCE.")
@click.option("--query-format", type=_FORMATS, default=None, help="Format of QUERIES.")
@click.option("--query-dtype", type=_DTYPES, default=None, help="Coordinate type of raw QUERIES.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def groundtruth(source, queries, k, out, memory, fmt, dtype, dim, query_format, query_dtype, quiet):
    """Exact k nearest neighbours of QUERIES in SOURCE, by a chunked scan (out of core)."""
    from ._units import parse_bytes
    from .datasets import open_source, write_groundtruth
    from .groundtruth import compute_groundtruth
    if k < 1:
        raise click.BadParameter(f"k must be >= 1, got {k}", param_hint="-k")
    _check_out_dir(out, "--out")
    progress = _Progress(_progress_enabled(quiet))
    try:
        with open_source(source, format=fmt, dtype=dtype, dim=dim) as src:
            q = _load_queries(queries, query_format, query_dtype, src.d)
            D, I = compute_groundtruth(src, q, k, memory_limit_bytes=parse_bytes(memory, name="--memory"),
                                       progress=lambda done, total: progress("groundtruth", done, total))
        write_groundtruth(out, D, I, format="ivecs" if out.endswith(".ivecs") else "qalsh")
    except (LshdiskError, StorageError, ValueError, OSError) as exc:
        _fail(exc)
    finally:
        progress.close()
    click.echo(f"exact {k}-NN of {q.shape[0]} queries written to {out}")


@main.command()
@click.argument("index_dir", type=click.Path())
@click.argument("queries", required=False)
@_queries_option
@click.option("--gt", "gt_path", required=True, help="Exact ground truth of QUERIES.")
@click.option("--gt-format", type=click.Choice(["qalsh", "hdf5"]), default="qalsh", show_default=True,
              help="qalsh: per query K records of (float32 distance, int32 id); hdf5: ann-benchmarks "
                   "file with 'distances'.")
@click.option("-k", "ks", default="1,10,100", show_default=True, help="Comma-separated k values.")
@_with_query_options
@_with_search_options
@click.option("--start-radius", is_flag=True,
              help="Start each query's rounds at the radius the index's tuned start model "
                   "predicts (QALSH, C2LSH; see 'lshdisk tune').")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def evaluate(index_dir, queries, queries_opt, gt_path, gt_format, ks, query_format, query_dtype,
             cache, max_candidates, termination, recall_target, threads, start_radius, as_json,
             quiet):
    """Search QUERIES for each k and report overall ratio, recall and disk cost per query."""
    from .evaluate import evaluate as run
    from .index import open as open_index
    queries = _queries_arg(queries, queries_opt)
    ks = _parse_ks(ks)
    progress = _Progress(_progress_enabled(quiet))
    try:
        with open_index(index_dir, cache_bytes=cache) as index:
            _check_k(ks, index)
            q = _load_queries(queries, query_format, query_dtype, index.d)
            gt_D = _load_groundtruth(gt_path, gt_format, q, [index])
            rows = run(index, q, gt_D, ks, threads=threads, max_candidates=max_candidates,
                       termination=termination, recall_target=recall_target,
                       start_radius=start_radius,
                       progress=lambda done, total: progress("search", done, total))
    except (LshdiskError, StorageError, ValueError, OSError) as exc:
        _fail(exc)
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps({"rows": rows}, indent=2))
        return
    click.echo(_table(rows, [("algorithm", "algorithm", "{}"), ("k", "k", "{}"),
                             ("ratio", "ratio", "{:.4f}"), ("recall", "recall", "{:.3f}"),
                             ("page_reads", "page I/O", "{:.1f}"), ("seeks", "seeks", "{:.1f}"),
                             ("mb_read", "MB read", "{:.2f}"), ("candidates", "cands", "{:.1f}"),
                             ("cpu_ms", "ms/query", "{:.2f}")]))


def _load_groundtruth(gt_path, gt_format, q, indexes):
    """Ground-truth distances of queries ``q``, refused unless they belong to ``q`` and to
    the data of every index (:func:`lshdisk.evaluate.check_groundtruth`)."""
    from .datasets import read_groundtruth
    from .evaluate import check_groundtruth
    gt_D, gt_I = read_groundtruth(gt_path, format=gt_format, n_queries=q.shape[0])
    if gt_D is None:
        raise ValueError(f"{gt_path} holds no distances: use a ground truth with distances "
                         f"(lshdisk groundtruth writes them)")
    for index in indexes:
        check_groundtruth(index, q, gt_D, gt_I, label=str(gt_path))
    return gt_D


@main.command()
@click.argument("index_dir", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def verify(index_dir, as_json):
    """Check INDEX_DIR completely: every catalog value's checksum, every page's CRC32 and
    page number, and the facts tying the page files to the catalog and to each other.

    Prints a summary and exits with status 1 if anything is wrong (the model is SQLite's
    PRAGMA integrity_check). Reads the whole index once.
    """
    from .verify import verify_index
    try:
        result = verify_index(index_dir)
    except (LshdiskError, StorageError, ValueError, OSError) as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        pages = sum(result.files.values())
        click.echo(f"{result.path}: {result.catalog_entries} catalog entries, {len(result.files)} "
                   f"page files, {pages} pages checked")
        for name, count in sorted(result.files.items()):
            click.echo(f"file       {name}: {count} pages")
        for problem in result.problems:
            click.echo(f"problem    {problem}")
        click.echo("ok" if result.ok
                   else f"{len(result.problems)} problem(s) found: rebuild the index")
    if not result.ok:
        sys.exit(1)


@main.command()
@click.argument("index_dir", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def info(index_dir, as_json):
    """Describe the index in INDEX_DIR: algorithm, parameters (with the derived m and l),
    segments (name, points, ids), the next id, deleted points, files.

    n is the count of points a search can return (deleted ones left out).
    """
    from .index import open as open_index
    try:
        with open_index(index_dir) as index:
            data = index.info()
            sizes = {row["name"]: row for row in data["segments"]}
            data["segments"] = _segments_summary(index.manifest)
            for row in data["segments"]["segments"]:  # bytes on disk and deleted points
                row.update(bytes=sizes[row["name"]]["bytes"],
                           deleted=sizes[row["name"]]["deleted"])
    except (LshdiskError, StorageError, ValueError, OSError) as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    p = data["params"]
    click.echo(f"index      {data['path']}")
    click.echo(f"algorithm  {data['algorithm']} (format {data['format_version']})")
    click.echo(f"data       n = {data['n']}, d = {data['d']}, dtype = {data['dtype']}, "
               f"source = {data['dataset']['source']}")
    click.echo("params     " + ", ".join(f"{k} = {p[k]:.6g}" if isinstance(p[k], float) else f"{k} = {p[k]}"
                                         for k in ("c", "w", "delta", "beta", "p1", "p2", "alpha", "m",
                                                   "centroids", "l", "probes") if k in p))
    st = data["structure"]
    click.echo("structure  " + ", ".join(f"{k} = {v}" for k, v in st.items())
               + f"; page size {data['page_size']} B; seed {data['seed']}"
               + (f"; preset {data['preset']}" if data.get("preset") else ""))
    unit = data["unit"]
    if unit is not None:
        click.echo(f"unit       u = {unit['u']:.6g} ("
                   + ("none recorded: built before radii followed a data unit"
                      if unit.get("recorded") is False else "given" if unit.get("given") else
                      f"measured: nearest-neighbour scale {unit.get('scaled_distance') or 0:.6g} "
                      f"over sqrt(c)") + "; radii u c^j)")
    seg = data["segments"]
    click.echo(f"segments   {len(seg['segments'])}; next id {seg['next_id']}; "
               f"{seg['tombstones']} deleted of {seg['rows']} rows")
    for row in seg["segments"]:
        click.echo(f"segment    {row['name']}: n = {row['n']}, ids {row['ids']}, "
                   f"{row['deleted']} deleted, {row['bytes'] / 2**20:.2f} MiB")
    for name, f in sorted(data["files"].items()):
        click.echo(f"file       {name}: {f['pages']} pages, {f['bytes'] / 2**20:.2f} MiB")
    train = data["build"].get("train_seconds")
    click.echo(f"built in   {data['build']['seconds']:.2f} s with memory limit "
               f"{data['build']['memory_limit_bytes'] / 2**20:.0f} MiB"
               + (f" (training {train:.2f} s)" if train is not None else ""))
    model = data.get("termination_model")
    if model is not None:
        click.echo(f"learned    termination model for k = {model['k']}, recall targets "
                   + ", ".join(f"{t:g}" for t in model["targets"])
                   + f" (scikit-learn {model['sklearn']})")
        for line in _figure_lines(model["figures"]):
            click.echo("           " + line)
        start = model.get("start")
        if start is not None:
            click.echo(f"           start radius: {start['n_train']} train / {start['n_val']} "
                       f"validation queries, shift {start['shift']:.2f}: "
                       f"{start['val_mean_steps_skipped']:.2f} of "
                       f"{start['val_mean_steps_skippable']:.2f} skippable rounds (radius steps) "
                       f"skipped, {100 * start['val_overshoot']:.1f} % start too far")


def _figure_lines(figures):
    """One line per recall target of a model's training figures."""
    lines = []
    for target, f in sorted(figures.items(), key=lambda item: float(item[0])):
        fixed = ("no fixed cap up to the cap limit reaches it" if f["fixed_cap"] is None else
                 f"best fixed cap {f['fixed_cap']}: recall {f['fixed_mean_recall']:.3f}, "
                 f"{f['fixed_mean_candidates']:.1f} candidates")
        lines.append(f"r = {target}: {f['n_train']} train / {f['n_val']} validation queries, "
                     f"multiplier {f['multiplier']:.3g}: validation recall "
                     f"{f['val_mean_recall']:.3f}, {f['val_mean_candidates']:.1f} candidates; "
                     f"{fixed}")
        if f["val_mean_recall"] < float(target) - 1e-9:
            lines.append(f"r = {target} is not reached within the cap limit: searches with it "
                         f"stop at the limit; tune again with a larger --cap-limit")
    return lines


@main.command()
@click.argument("index_dir", type=click.Path())
@click.option("--queries", "queries", default=None,
              help="Training queries (default: a seeded sample of the indexed points).")
@click.option("--gt", "gt_path", default=None,
              help="Exact ground truth of --queries (default: computed over the index's vectors).")
@click.option("--gt-format", type=click.Choice(["qalsh", "hdf5"]), default="qalsh",
              show_default=True, help="Format of --gt.")
@click.option("--sample", type=click.IntRange(min=4), default=2000, show_default=True,
              help="Indexed points to train on when no --queries are given.")
@click.option("--recall", "recalls", default="0.8,0.9,0.95", show_default=True,
              help="Comma-separated recall targets to tune for.")
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Neighbours per query.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the sample, the validation split and the trees.")
@click.option("--cap-limit", type=click.IntRange(min=1), default=None,
              help="Largest candidate cap the learned search may set (default: T2, k + beta*n; "
                   "raise it where T2 does not reach a target).")
@_with_query_options
@_threads_option
@click.option("--json", "as_json", is_flag=True, help="Print the training figures as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def tune(index_dir, queries, gt_path, gt_format, sample, recalls, k, seed, cap_limit,
         query_format, query_dtype, cache, threads, as_json, quiet):
    """Train the learned termination of INDEX_DIR (search(..., recall_target=r)) and store it
    in the index's catalog, replacing any earlier model."""
    from .index import open as open_index
    from .tune import tune as run, write_model
    try:
        targets = sorted({float(t) for t in recalls.split(",") if t.strip()})
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {recalls!r}",
                                 param_hint="--recall") from None
    if not targets or any(not 0.0 < t <= 1.0 for t in targets):
        raise click.BadParameter(f"recall targets must be in (0, 1], got {recalls!r}",
                                 param_hint="--recall")
    if gt_path is not None and queries is None:
        raise click.BadParameter("--gt needs --queries", param_hint="--gt")
    progress = _Progress(_progress_enabled(quiet))
    try:
        with open_index(index_dir, cache_bytes=cache, termination_model=False) as index:
            _check_k([k], index)
            q = gt = None
            if queries is not None:
                q = _load_queries(queries, query_format, query_dtype, index.d)
                if gt_path is not None:
                    from .datasets import read_groundtruth
                    from .evaluate import check_groundtruth
                    gt = read_groundtruth(gt_path, format=gt_format, n_queries=q.shape[0])
                    if gt[0] is None or gt[1] is None:
                        raise ValueError(f"{gt_path} must hold distances and ids")
                    check_groundtruth(index, q, gt[0], gt[1], label=str(gt_path))
            model = run(index, targets, k=k, queries=q, gt=gt, sample=sample, seed=seed,
                        threads=threads, cap_limit=cap_limit, progress=progress)
        progress.close()
        write_model(index_dir, model)  # the index is closed: no catalog handle is open
    except (ImportError, LshdiskError, StorageError, ValueError, OSError) as exc:
        progress.close()
        _fail(exc)
    if as_json:
        click.echo(json.dumps({"k": k, "targets": targets, "figures": model.figures}, indent=2))
        return
    click.echo(f"tuned {index_dir} for k = {k}, caps up to {model.cap_limit}:")
    for line in _figure_lines(model.figures):
        click.echo("  " + line)


#: The demo's evaluation: k values, and queries searched first, untimed, so that the timings
#: exclude numba's compilation of the search kernels (cached on disk after the first run).
_DEMO_KS = (1, 10, 100)
_DEMO_WARMUP_QUERIES = 5


@main.command()
@click.option("--dir", "workdir", type=click.Path(), default="data/demo", show_default=True,
              help="Where the demo data, index and figures go.")
@click.option("-n", "n", type=int, default=50000, show_default=True, help="Points to generate.")
@click.option("-d", "d", type=int, default=64, show_default=True, help="Dimension.")
@click.option("--memory", default="64MiB", show_default=True, help="Build memory limit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def demo(workdir, n, d, memory, quiet):
    """Generate clustered unit-norm data, build a QALSH index, search and evaluate it, and cost
    it on HDD and SSD beside a linear scan.

    Everything is made from scratch under --dir (existing demo files are replaced). The search
    timings exclude compilation: a few queries are searched first, untimed. The cost report is
    the one 'lshdisk report' prints (k = 1, 10, ..., 100 on the HDD and SSD profiles), and its
    seven figures are written to --dir/figures.
    """
    import importlib.util
    if importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException("lshdisk demo draws its figures with matplotlib, which is not "
                                   "installed: pip install 'lshdisk[plot]' (make demo does)")
    from .datasets import read_groundtruth, write_groundtruth
    from .evaluate import evaluate as run
    from .groundtruth import compute_groundtruth
    from .index import build as build_index
    from .report import build_report, format_tables, plot_report
    from .synthetic import clustered_chunks, write_clustered
    os.makedirs(workdir, exist_ok=True)
    base = os.path.join(workdir, "base.npy")
    queries_path = os.path.join(workdir, "queries.npy")
    gt_path = os.path.join(workdir, "groundtruth.gt")
    index_dir = os.path.join(workdir, "base.qalsh")
    figures_dir = os.path.join(workdir, "figures")
    progress = _Progress(_progress_enabled(quiet))
    click.echo(f"1/5 generating {n} x {d} clustered unit-norm float32 points in {base}")
    write_clustered(base, n, d, seed=1)
    q = next(clustered_chunks(100, d, seed=1, stream=1))  # same centres, held-out points
    np.save(queries_path, q)
    click.echo(f"2/5 building a QALSH index in {index_dir} (memory limit {memory})")
    t0 = time.perf_counter()
    try:
        index = build_index(base, index_dir, memory_limit=memory, progress=progress, overwrite=True)
    finally:
        progress.close()
    build_s = time.perf_counter() - t0
    click.echo(f"    built in {build_s:.2f} s: m = {index.params.m}, l = {index.params.l}")
    click.echo("3/5 exact ground truth by a chunked scan")
    D, I = compute_groundtruth(base, q, 100)
    write_groundtruth(gt_path, D, I)
    gt_D, _ = read_groundtruth(gt_path, n_queries=q.shape[0])
    click.echo(f"4/5 searching and evaluating (no buffer pool: every page access is a read; "
               f"{_DEMO_WARMUP_QUERIES} queries searched first, untimed, so that the times "
               f"exclude compilation)")
    try:
        with index:
            for k in _DEMO_KS:
                index.search(q[:_DEMO_WARMUP_QUERIES], k)
            rows = run(index, q, gt_D, _DEMO_KS)
            click.echo(_table(rows, [("k", "k", "{}"), ("ratio", "overall ratio", "{:.4f}"),
                                     ("recall", "recall", "{:.3f}"),
                                     ("page_reads", "page I/O", "{:.1f}"),
                                     ("seeks", "seeks", "{:.1f}"), ("mb_read", "MB read", "{:.2f}"),
                                     ("candidates", "candidates", "{:.1f}"),
                                     ("cpu_ms", "ms/query", "{:.2f}")]))
            click.echo("5/5 cost report, as 'lshdisk report' prints it: query processing time on "
                       "HDD and SSD beside a linear scan")
            result = build_report([index], q, gt_D, _parse_ks(_REPORT_KS), ("hdd", "ssd"),
                                  progress=lambda stage, done, total: progress(
                                      _REPORT_LABELS.get(stage, stage), done, total))
    finally:
        progress.close()
    figures = plot_report(result, figures_dir)
    click.echo(format_tables(result))
    click.echo(f"\nthe seven figures ({figures_dir}):")
    for path in figures:
        click.echo(f"wrote {path}")
    click.echo(f"\nindex: {index_dir}   try: lshdisk info {index_dir}")


_CALIBRATE_LABELS = {"write": "writing the test file", "random": "random page reads",
                     "sequential": "sequential read"}


@main.command()
@click.argument("directory", type=click.Path())
@click.option("--size", default="2GiB", show_default=True,
              help="Size of the test file written under DIRECTORY (deleted afterwards).")
@click.option("--out", type=click.Path(), default=None,
              help="Save the profile as JSON, for 'lshdisk report --device FILE'.")
@click.option("--name", default="local", show_default=True,
              help="Profile name: the prefix of its report columns (<name>_qpt_ms).")
@click.option("--reads", "random_reads", type=int, default=2000, show_default=True,
              help="Random page reads to time.")
@click.option("--page-size", type=int, default=4096, show_default=True,
              help="Bytes per random read: the index page size.")
@click.option("--json", "as_json", is_flag=True, help="Print the measurement as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def calibrate(directory, size, out, name, random_reads, page_size, as_json, quiet):
    """Measure the disk under DIRECTORY: random page-read time and sequential read rate.

    Writes a test file, reads it bypassing the page cache (O_DIRECT, or posix_fadvise eviction
    where the file system refuses O_DIRECT), and prints a device profile for the I/O cost
    model: seek_ms = mean random read time minus one page's transfer, read_mb_per_ms = the
    sequential rate (1 MB = 10^6 bytes). Put DIRECTORY on the file system of your indexes.
    """
    from cost_model import save_profile
    from .calibrate import measure
    progress = _Progress(_progress_enabled(quiet))
    try:
        result = measure(directory, size=size, random_reads=random_reads,
                         page_size_bytes=page_size, name=name,
                         progress=lambda stage, done, total: progress(
                             _CALIBRATE_LABELS.get(stage, stage), done, total))
        if out:
            save_profile(result.profile, out)
    except (LshdiskError, ValueError, OSError) as exc:
        _fail(exc)
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    p = result.profile
    click.echo(f"device     {result.device or 'unknown'} under {result.directory} "
               f"({result.method}, {result.file_bytes / 2**20:.0f} MiB test file)")
    click.echo(f"random     {result.random_reads} reads of {p.page_size_bytes} B: mean "
               f"{result.random_read_ms_mean:.4f} ms, median {result.random_read_ms_median:.4f} ms, "
               f"p90 {result.random_read_ms_p90:.4f} ms, max {result.random_read_ms_max:.3f} ms")
    click.echo(f"sequential {result.sequential_block_bytes // 1024} KiB reads: "
               f"{result.sequential_mb_per_ms:.4f} MB/ms ({result.sequential_mb_per_ms * 1e3:.0f} MB/s)")
    click.echo(f"profile    {p.name}: seek_ms = {p.seek_ms:.6g}, read_mb_per_ms = "
               f"{p.read_mb_per_ms:.6g}, page_size_bytes = {p.page_size_bytes}, "
               f"readahead_bytes = {p.readahead_bytes}")
    for note in result.notes:
        click.echo(f"note       {note}")
    if out:
        click.echo(f"saved      {out}  (use: lshdisk report ... --device hdd,ssd,{out})")


_REPORT_LABELS = {"search": "searching", "scan": "timing the linear scan"}
#: The k values of a cost report unless -k says otherwise ('lshdisk report' and the demo).
_REPORT_KS = "1,10,20,30,40,50,60,70,80,90,100"


@main.command()
@click.argument("index_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--queries", "queries_path", required=True, help="Query file.")
@click.option("--query-format", "--format", "fmt", type=_FORMATS, default=None,
              help="Format of the queries; default from the extension (raw if unknown). "
                   "--format is an alias.")
@click.option("--query-dtype", "--dtype", "dtype", type=_DTYPES, default=None,
              help="Coordinate type of raw queries (--dtype is an alias).")
@click.option("--dim", type=int, default=None,
              help="Dimension of raw queries (default: the indexes' dimension).")
@click.option("--gt", "gt_path", required=True, help="Exact ground truth of the queries.")
@click.option("--gt-format", type=click.Choice(["qalsh", "hdf5"]), default="qalsh", show_default=True,
              help="qalsh: per query K records of (float32 distance, int32 id); hdf5: ann-benchmarks "
                   "file with 'distances'.")
@click.option("-k", "ks", default=_REPORT_KS, show_default=True,
              help="Comma-separated k values.")
@click.option("--device", "devices", default="hdd,ssd", show_default=True,
              help="Comma-separated device profiles: hdd, ssd (Jafari & Nagarkar 2021) or JSON "
                   "files from 'lshdisk calibrate --out'.")
@click.option("--json", "json_path", type=click.Path(), default=None,
              help='Write {"rows": [...], "linear_scan": [...], ...} to this file.')
@click.option("--csv", "csv_path", type=click.Path(), default=None, help="Write the rows as CSV.")
@click.option("--plot", "plot_dir", type=click.Path(), default=None,
              help="Write the seven figures (PNG: the study's six and recall@10 against MB read) into this directory.")
@_with_policy_options
@click.option("--recall-target", "recall_targets", default=None,
              help="Comma-separated recall targets: also search each index with its learned "
                   "termination (see 'lshdisk tune') at the k it was tuned for, in rows and "
                   "figures of their own beside the fixed rules.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def report(index_dirs, queries_path, fmt, dtype, dim, gt_path, gt_format, ks, devices, json_path,
           csv_path, plot_dir, max_candidates, termination, recall_targets, quiet):
    """Query processing time of INDEX_DIRS on HDD, SSD and measured devices, beside a linear scan.

    Searches the queries for every k with no buffer pool, then prints per device and
    algorithm x k the seeks, MB read, algorithm ms, the seek and read terms, QPT ms =
    seeks x seek_ms + MB / read_mb_per_ms + algorithm ms, QPT relative to a linear scan of
    the same data, overall ratio and recall (means per query), and says where the scan wins.
    """
    from .datasets import read_queries
    from .index import open as open_index
    from .report import build_report, format_tables, plot_report, write_csv, write_json
    from cost_model import get_profile
    ks = _parse_ks(ks)
    targets = _parse_targets(recall_targets)
    _check_out_dir(json_path, "--json")
    _check_out_dir(csv_path, "--csv")
    try:
        profiles = [get_profile(d.strip()) for d in devices.split(",") if d.strip()]
    except (ValueError, OSError) as exc:
        raise click.BadParameter(str(exc), param_hint="--device")
    progress = _Progress(_progress_enabled(quiet))
    indexes = []
    try:
        for path in index_dirs:
            indexes.append(open_index(path))
        d = indexes[0].d
        if any(ix.d != d for ix in indexes):
            raise ValueError("the indexes have different dimensions (" +
                             ", ".join(f"{ix.path}: d = {ix.d}" for ix in indexes) +
                             "): report indexes of the same data together")
        for ix in indexes:
            _check_k(ks, ix)
        raw = fmt == "raw" or (fmt is None and dtype is not None)
        q = read_queries(queries_path, format=fmt, dtype=dtype,
                         dim=(dim or d) if raw or dtype else None, expected_dim=d)
        _note_raw_layout(queries_path, fmt, dtype, dim or d, q.shape[0])
        gt_D = _load_groundtruth(gt_path, gt_format, q, indexes)
        result = build_report(indexes, q, gt_D, ks, profiles, max_candidates=max_candidates,
                              termination=termination,
                              recall_targets=targets,
                              progress=lambda stage, done, total: progress(
                                  _REPORT_LABELS.get(stage, stage), done, total))
        progress.close()
        written = []
        if json_path:
            write_json(result, json_path)
            written.append(json_path)
        if csv_path:
            write_csv(result, csv_path)
            written.append(csv_path)
        if plot_dir:
            written += plot_report(result, plot_dir)
    except (LshdiskError, StorageError, ValueError, OSError) as exc:
        _fail(exc)
    finally:
        progress.close()
        for ix in indexes:
            ix.close()
    click.echo(format_tables(result))
    for path in written:
        click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
