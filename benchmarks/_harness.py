"""The timing, table and JSON helpers shared by every benchmark in this folder.

The scripts ``bench_*.py`` run as ``python benchmarks/bench_x.py``, so this folder is
``sys.path[0]`` and they import from here with ``from _harness import ...``.

Nothing here imports numpy at module level: the scripts parse their arguments and set the
BLAS thread variables (:func:`set_blas_threads`) *before* numpy is first imported.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = ["add_blas_threads_arg", "add_common_args", "finish", "fmt_t", "log", "make_parser",
           "median_time", "run_meta", "run_parts", "set_blas_threads", "table", "time_per_call",
           "timed", "write_json"]


# --- command line ----------------------------------------------------------------------
def make_parser(doc: str) -> argparse.ArgumentParser:
    """Parser described by the first paragraph of ``doc`` (the script's docstring)."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_common_args(p: argparse.ArgumentParser, parts: str | None = None, quick: bool = True) -> None:
    """``--quick`` (if ``quick``), ``--json PATH`` and ``--parts`` (if ``parts``, e.g. "abc")."""
    if quick:
        p.add_argument("--quick", action="store_true", help="fast smoke mode (< 60 s)")
    p.add_argument("--json", metavar="PATH", help="write all results as JSON to PATH")
    if parts:
        p.add_argument("--parts", default=parts,
                       help=f"which parts to run, subset of '{parts}' (default: {parts})")


def add_blas_threads_arg(p: argparse.ArgumentParser, default: int, help: str) -> None:
    """``--blas-threads N`` (0 = library default); apply it with :func:`set_blas_threads`."""
    p.add_argument("--blas-threads", type=int, default=default, help=help)


def set_blas_threads(n: int, numba: bool = True) -> None:
    """Limit OpenBLAS/OpenMP/MKL (and numba, if ``numba``) to ``n`` threads; 0 leaves the
    library defaults. Must run before numpy is imported."""
    if n > 0:
        names = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]
        for var in names + (["NUMBA_NUM_THREADS"] if numba else []):
            os.environ[var] = str(n)


# --- output ----------------------------------------------------------------------------
def log(msg: str = "") -> None:
    print(msg, flush=True)


def fmt_t(s: float | None) -> str:
    """Seconds -> readable string (µs, ms, s or h); None or NaN -> "-"."""
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    if s < 3600:
        return f"{s:.2f} s"
    return f"{s / 3600:.1f} h"


def table(headers: Sequence[Any], rows: Iterable[Sequence[Any]], aligns: Sequence[str] | None = None) -> str:
    """Plain-text table: a header line, a rule, one line a row; columns two spaces apart.
    ``aligns`` holds one format alignment ("<", ">") a column; default: first column left,
    the others right."""
    rows = list(rows)
    cols = [[str(h)] + [str(r[i]) for r in rows] for i, h in enumerate(headers)]
    widths = [max(len(c) for c in col) for col in cols]
    aligns = aligns or ["<"] + [">"] * (len(headers) - 1)
    out = ["  ".join(f"{h:{a}{w}}" for h, a, w in zip(headers, aligns, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(f"{v!s:{a}{w}}" for v, a, w in zip(r, aligns, widths)) for r in rows]
    return "\n".join(out)


# --- timing ----------------------------------------------------------------------------
def timed(fn: Callable[..., Any], repeats: int, setup: Callable[[], Any] | None = None,
          warmup: int = 0, keep: bool = True) -> tuple[dict[str, Any], Any]:
    """Wall time of ``repeats`` calls of ``fn()`` (or ``fn(setup())``, setup untimed) after
    ``warmup`` untimed calls. Returns ({"median", "min", "all"} in seconds, last result);
    ``keep=False`` drops each result as soon as ``fn`` returns (freeing it is timed) and
    returns None for it: for calls that build large results."""
    ts: list[float] = []
    out = None
    for i in range(warmup + repeats):
        arg = () if setup is None else (setup(),)
        t0 = time.perf_counter()
        out = fn(*arg)
        if not keep:
            out = None
        if i >= warmup:
            ts.append(time.perf_counter() - t0)
    return {"median": float(statistics.median(ts)), "min": float(min(ts)), "all": ts}, out


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed calls
    (numba compile or cache load)."""
    return timed(fn, repeats, warmup=warmup, keep=False)[0]["median"]


def time_per_call(fn: Callable[[], Any], repeats: int, budget: float = 0.05,
                  stat: Callable[[list[float]], float] = statistics.median) -> float:
    """``stat`` (median) over ``repeats`` of the mean time of a batch of calls lasting ~budget s."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(budget / one))
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        ts.append((time.perf_counter() - t0) / n)
    return float(stat(ts))


# --- a whole run: metadata, parts, JSON ------------------------------------------------
def run_meta(versions: Mapping[str, str], blas_threads: int, **extra: Any) -> dict[str, Any]:
    """Description of the run for the JSON: python and ``versions`` (e.g. numpy, ddsolve),
    machine, CPUs, ``extra`` (e.g. quick, repeats), BLAS threads, load average, argv."""
    return {"python": sys.version.split()[0], **versions, "machine": platform.machine(),
            "cpus": os.cpu_count(), **extra, "blas_threads": blas_threads or "library default",
            "loadavg_start": os.getloadavg(), "argv": sys.argv}


def run_parts(parts: Sequence[tuple[str, Callable[..., Any]]], selected: str, meta: dict[str, Any],
              *args: Any) -> None:
    """Run each ``fn(*args)`` of ``parts`` = [(name, fn), ...] whose name is in ``selected``;
    log and record (``meta["part_<name>_s"]``) its wall time."""
    for name, fn in parts:
        if name in selected:
            t0 = time.perf_counter()
            fn(*args)
            meta[f"part_{name}_s"] = time.perf_counter() - t0
            log(f"[part ({name}) took {meta[f'part_{name}_s']:.0f} s]")


def finish(meta: dict[str, Any], t_start: float) -> None:
    """Record the end load average and total time in ``meta`` and log them."""
    meta["loadavg_end"] = os.getloadavg()
    meta["total_s"] = time.perf_counter() - t_start
    log(f"\ntotal {meta['total_s']:.0f} s; load average at end {meta['loadavg_end'][0]:.2f}")


def _jsonable(o: Any) -> Any:
    """Plain JSON: tuples -> lists, numpy scalars -> Python, non-finite floats -> None,
    other objects -> str."""
    import numpy as np  # here, not at import time: see the module docstring

    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, (str, int, bool)) or o is None:
        return o
    return str(o)


def write_json(path: str, results: Any) -> None:
    """Write ``results`` as plain JSON (see :func:`_jsonable`) to ``path`` and log it."""
    with open(path, "w") as f:
        json.dump(_jsonable(results), f, indent=1)
    log(f"wrote {path}")
