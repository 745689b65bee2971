#!/usr/bin/env python
"""Overhead of ``ddsolve sweep`` (Dask) against running the same PDE runs directly.

The run: 1D Ornstein-Uhlenbeck (``examples/ou_relaxation.toml``'s model) on
``--cells`` cells to ``--t-final``, about 2 s on this machine for the whole command
(solve, density.h5, diagnostics.csv, summary.json, two PNGs). ``--seeds K`` makes K runs
of identical cost (``run.seed`` does not change a Gaussian initial law).

Baseline (named ``direct`` in the tables): the same command run directly in this process,
``ddsolve.app.cli.main(["run", ...])``, warm (imports and numba caches loaded), median of
``--repeats``.

a. Overhead per run: a LocalCluster of ONE worker (runs in sequence, no contention),
   warmed by one run. First K rounds of one direct run followed by the same run as a
   1-run sweep (interleaved, since the load of a shared machine drifts; the median of
   the rounds' ratios). Then a K-run sweep (:class:`validation.sweep.study.Study` on the
   running client). Per-run sweep time = sweep wall / K; overhead = that minus the
   direct time, as a fraction of it (target < 5% of a 2 s run); "outside" = (sweep wall -
   sum of the command's times inside the worker) / K, the part of the overhead that is
   not the command itself (scheduling, results, markers, sweep.csv), which does not
   depend on comparing two different executions of the run. The same with
   ``--subprocess`` (each run a fresh ``python -m ddsolve``), the alternative design.
   Also the one-off cost of a cold start: the whole ``ddsolve sweep`` command of one
   run in a fresh interpreter against one direct run.
b. Throughput: 16 runs on a warmed LocalCluster of 2 workers against the ideal
   16 x direct / 2 (target within 1.2x); the sum of the runs' in-worker times / 2 shows
   how much of the gap is the runs themselves being slower in two parallel workers (CPU
   contention: other load, memory bandwidth) rather than scheduling; and the whole ``ddsolve sweep --workers 2``
   command for the same 16 runs in a fresh interpreter (cluster start and worker
   imports included).

Run ``python benchmarks/bench_sweep.py`` (~3 min on 2 idle cores) or ``--quick``
(fewer runs, no cold-start parts). The machine's load average goes into the output:
on a shared 2-core machine, the 2-worker part is only meaningful when it is idle.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import (
    add_blas_threads_arg,
    add_common_args,
    finish,
    fmt_t,
    log,
    make_parser,
    run_meta,
    set_blas_threads,
    table,
    write_json,
)

CONFIG = """\
[model]
problem = "fokker-planck"
potential = "quadratic"
stiffness = 1.0
beta = 1.0

[grid]
bounds = [-7.0, 7.0]
cells = {cells}

[initial]
kind = "gaussian"
mean = 2.0
std = 0.5

[run]
t_final = {t_final}
save_every = 0.25
"""


def direct_time(config: Path, out: Path, repeats: int) -> tuple[float, list[float]]:
    """Median wall time of the run executed directly (after one warm-up run)."""
    from ddsolve.app.cli import main

    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        assert main(["run", str(config), "--out", str(out / f"direct{i}"), "--quiet"]) == 0
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def sweep_time(config: Path, out: Path, client, seeds: int, subprocess_mode: bool = False,
               seed0: int = 0) -> tuple[float, list[float]]:
    """Wall time of a sweep of ``seeds`` runs on ``client``, and the runs' in-worker times."""
    from validation.sweep.study import Study, SweepSettings, plan

    settings = SweepSettings(config, out, "run", [], seeds=seeds, overrides=[f"run.seed={seed0}"],
                             subprocess=subprocess_mode)
    study = Study(settings, plan(settings))
    t0 = time.perf_counter()
    outcome = study.run(client)
    wall = time.perf_counter() - t0
    assert outcome.ok == seeds and outcome.submitted == seeds, outcome.failed
    return wall, [r["wall_time"] for r in outcome.rows]


def local_client(workers: int):
    from validation.sweep.study import dask_client

    return dask_client(None, workers)


def cli_time(config: Path, out: Path, args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ddsolve", "sweep", str(config), "--out", str(out), "--quiet",
                    *args], check=True)
    return time.perf_counter() - t0


def part_a(ctx: dict) -> None:
    from ddsolve.app.cli import main as ddsolve_main

    config, tmp, base, k = ctx["config"], ctx["tmp"], ctx["direct"], ctx["k"]
    res = ctx["results"]["a"] = {"direct_s": base, "runs": k}
    rows = []
    with local_client(1) as client:
        sweep_time(config, tmp / "warm1", client, 1, seed0=1000)  # worker imports, numba caches
        # interleaved: a direct run, then the same run as a 1-run sweep (the load drifts)
        pairs = []
        for i in range(k):
            t0 = time.perf_counter()
            assert ddsolve_main(["run", str(config), "--out", str(tmp / f"pair-direct{i}"), "--quiet"]) == 0
            t_direct = time.perf_counter() - t0
            t_sweep, _ = sweep_time(config, tmp / f"pair-sweep{i}", client, 1, seed0=3000 + i)
            pairs.append((t_direct, t_sweep))
        d_med = statistics.median(p[0] for p in pairs)
        s_med = statistics.median(p[1] for p in pairs)
        ratio = statistics.median(p[1] / p[0] for p in pairs)
        res["interleaved"] = {"pairs_s": pairs, "direct_median_s": d_med, "sweep_median_s": s_med,
                              "median_ratio": ratio}
        rows.append([f"direct (baseline), interleaved, median of {k}", fmt_t(d_med), "-", "-", "1.00", "-"])
        rows.append([f"1-run sweeps, interleaved, median of {k}", fmt_t(s_med), "-", "-",
                     f"{ratio:.3f}", f"{100 * (ratio - 1):+.1f}%"])
        rows.append(["direct (baseline), before the cluster, median", fmt_t(base), "-", "-", "1.00", "-"])
        for label, mode, n in (("sweep, in-process (default)", False, k),
                               ("sweep, --subprocess", True, max(2, k // 2))):
            wall, inner = sweep_time(config, tmp / f"a-{mode}", client, n, subprocess_mode=mode)
            per_run = wall / n
            over = per_run - base
            outside = (wall - sum(inner)) / n  # scheduling, results, sweep.csv: not the command
            rows.append([f"{label}, {n} runs", fmt_t(per_run), fmt_t(statistics.median(inner)),
                         fmt_t(outside), f"{per_run / base:.3f}", f"{100 * over / base:+.1f}%"])
            res["subprocess" if mode else "in_process"] = {
                "runs": n, "wall_s": wall, "per_run_s": per_run, "worker_wall_s": inner,
                "outside_command_per_run_s": outside, "overhead_s": over, "overhead_fraction": over / base}
    log(table(["1 worker, runs in sequence", "per run", "in worker", "outside", "x direct", "overhead"],
              rows))
    log("interleaved: each round one direct run, then the same run as a sweep of 1 (with its "
        "sweep.json and sweep.csv), x direct = median of the rounds' ratios; per run = sweep wall "
        "/ runs; in worker = median time of the command inside the worker; outside = (sweep wall - "
        "sum of in-worker times) / runs: scheduling, result transfer, markers and sweep.csv; "
        "overhead = per run - direct")
    if not ctx["quick"]:
        t_cli = cli_time(config, tmp / "cold1", ["--workers", "1", "--seeds", "1"])
        res["cold_cli_one_run_s"] = t_cli
        log(f"\ncold start: `ddsolve sweep` of 1 run in a fresh interpreter {fmt_t(t_cli)} "
            f"= direct + {fmt_t(t_cli - base)} (interpreter, imports, cluster start, worker imports)")


def part_b(ctx: dict) -> None:
    config, tmp, base = ctx["config"], ctx["tmp"], ctx["direct"]
    n = 8 if ctx["quick"] else 16
    ideal = n * base / 2
    res = ctx["results"]["b"] = {"runs": n, "direct_s": base, "ideal_s": ideal}
    rows = [[f"ideal {n} x direct / 2 (baseline)", fmt_t(ideal), "1.00"]]
    with local_client(2) as client:
        sweep_time(config, tmp / "warm2", client, 2, seed0=2000)
        wall, inner = sweep_time(config, tmp / "b", client, n)
    res.update(warm_wall_s=wall, worker_wall_s=inner, warm_ratio=wall / ideal)
    rows.append([f"sweep, warm 2-worker cluster, {n} runs", fmt_t(wall), f"{wall / ideal:.3f}"])
    packed = sum(inner) / 2  # the same runs, perfectly packed on 2 workers
    res.update(packed_s=packed, packing_ratio=wall / packed)
    rows.append([f"  (median in-worker run time {fmt_t(statistics.median(inner))} "
                 f"= {statistics.median(inner) / base:.2f} x direct)", "", ""])
    rows.append(["  sum of in-worker times / 2 (no scheduling loss)", fmt_t(packed),
                 f"{packed / ideal:.3f}"])
    if not ctx["quick"]:
        t_cli = cli_time(config, tmp / "cold16", ["--workers", "2", "--seeds", str(n)])
        res.update(cold_cli_s=t_cli, cold_ratio=t_cli / ideal)
        rows.append([f"`ddsolve sweep --workers 2`, fresh interpreter, {n} runs", fmt_t(t_cli),
                     f"{t_cli / ideal:.3f}"])
    log(table([f"{n} runs on 2 workers", "wall", "x ideal"], rows))


def main(argv=None) -> None:
    p = make_parser(__doc__)
    add_common_args(p, parts="ab")
    add_blas_threads_arg(p, 1, "BLAS threads of this process (the Dask workers use 1); default 1")
    p.add_argument("--cells", type=int, default=1000, help="grid cells (default 1000)")
    p.add_argument("--t-final", type=float, default=1.5, help="final time (default 1.5)")
    p.add_argument("--repeats", type=int, default=3, help="direct runs for the baseline median")
    p.add_argument("--runs", type=int, default=6, help="runs of the part (a) sweep (default 6)")
    args = p.parse_args(argv)
    set_blas_threads(args.blas_threads)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    t_start = time.perf_counter()

    from ddsolve.app.io import package_versions

    meta = run_meta(package_versions(), args.blas_threads, quick=args.quick, cells=args.cells,
                    t_final=args.t_final)
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp_name:
        tmp = Path(tmp_name)
        config = tmp / "ou.toml"
        config.write_text(CONFIG.format(cells=args.cells, t_final=args.t_final))
        base, all_direct = direct_time(config, tmp, 2 if args.quick else args.repeats)
        log(f"run: 1D OU, {args.cells} cells to t = {args.t_final}; direct (baseline) "
            f"{fmt_t(base)} (median of {len(all_direct)}: {', '.join(fmt_t(t) for t in all_direct)}); "
            f"load average {os.getloadavg()[0]:.2f}\n")
        ctx = {"config": config, "tmp": tmp, "direct": base, "quick": args.quick,
               "k": 3 if args.quick else args.runs, "results": {"direct_all_s": all_direct}}
        for name, fn in (("a", part_a), ("b", part_b)):
            if name in args.parts:
                t0 = time.perf_counter()
                fn(ctx)
                meta[f"part_{name}_s"] = time.perf_counter() - t0
                log(f"[part ({name}) took {meta[f'part_{name}_s']:.0f} s]\n")
    finish(meta, t_start)
    if args.json:
        write_json(args.json, {"meta": meta, **ctx["results"]})


if __name__ == "__main__":
    main()
