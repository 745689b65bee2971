#!/usr/bin/env python
r"""Performance of the minimising-movement (JKO) schemes against the finite-volume solvers.

(a) Work–precision on 1D Ornstein–Uhlenbeck (V = x²/2, β = 1, [-6, 6], ρ0 = N(1, 0.5²),
    t = 1): L1 error against the exact Gaussian cell averages (mean e^{-t}, variance
    1 - e^{-2t} + 0.25 e^{-2t}) vs wall time (median of warm repeats) for the Lagrangian JKO
    (backward Euler and variational BDF2), the linearised FV JKO ("LJKO"), the explicit FV
    SSPRK(4,3) (the baseline) and the implicit FV BDF2 with log-mean flux. Each method runs
    along a sequence of (grid, atoms, step) chosen so that its space and time errors are of
    the same size; the time to reach the targets 1e-3, 1e-4 (1e-5) is interpolated in
    log-log along each curve and divided by the baseline's.
(b) Time per JKO step vs size: Lagrangian on 1D OU (N = 250..4000 atoms, τ = 0.01) and on
    Curie–Weiss (quadratic interaction, the rank-K Woodbury path), LJKO on 1D OU
    (M = 250..4000) and 2D OU (32², 64², 128²), with the fitted exponents; the baseline is
    the explicit FV solver's time per unit simulated time on the same grid.
(c) MMN two-layer network (examples/mmn_nonmonotone.toml, radial d = 320, 1000 cells),
    κ = 0.4 and κ = 0.1: Lagrangian JKO (fixed dt = 0.5, and dt = 0.5 growing to
    dt_max = 20) against the explicit FV solver (the baseline): wall time, steps, final
    risk and mean radius.

Run ``python benchmarks/bench_jko.py`` (full, ~5 min on 2 cores, most of it the two
fixed-step JKO runs of part (c)) or with ``--quick`` (~20 s smoke run; part (c) to t = 20). ``--json out.json`` writes every number. Times are wall-clock medians
of warm repeats (numba compiled, caches loaded) unless labelled otherwise.
"""

from __future__ import annotations

import sys

from _harness import (
    add_blas_threads_arg,
    add_common_args,
    finish,
    fmt_t,
    log,
    make_parser,
    run_meta,
    run_parts,
    set_blas_threads,
    table,
    timed,
    write_json,
)


def parse_args(argv=None):
    p = make_parser(__doc__)
    add_common_args(p, parts="abc")
    p.add_argument("--repeats", type=int, default=None,
                   help="warm repeats per timing (default 3, quick 1); runs longer than "
                        "--budget s are timed once")
    p.add_argument("--budget", type=float, default=None,
                   help="a run slower than this (s) is not repeated (default 2, quick 0.5)")
    p.add_argument("--t-mmn", type=float, default=None,
                   help="final time of part (c) (default 1000, quick 20)")
    add_blas_threads_arg(p, 1, "threads for OpenBLAS/OpenMP (banded and small dense solves); "
                               "0 = library default. Default 1: threaded OpenBLAS is much slower "
                               "on this machine for small solves.")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else parse_args([])
set_blas_threads(ARGS.blas_threads)  # must happen before numpy is imported

import logging
import math
import time
import warnings
from pathlib import Path

import numpy as np
import scipy

import ddsolve
from ddsolve import GridModel, Model, cartesian, evolve
from ddsolve.app.config import build, read_toml, resolve
from ddsolve.laws.exact import gaussian_cell_averages
from ddsolve.model.potentials import QuadraticPotential
from ddsolve.schemes.jko.fv import FiniteVolumeJKO
from ddsolve.schemes.jko.lagrangian import LagrangianJKO

logging.getLogger("pde").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", category=DeprecationWarning)

T_END = 1.0
DOMAIN = (-6.0, 6.0)
MEAN0, STD0 = 1.0, 0.5
MMN_TOML = Path(__file__).resolve().parent.parent / "examples" / "mmn_nonmonotone.toml"
CURIE_WEISS = {"model": {"problem": "curie-weiss", "potential": "double-well", "theta": 1.0, "beta": 3.0},
               "grid": {"bounds": [-3.0, 3.0], "cells": 300},
               "initial": {"kind": "gaussian", "mean": 0.1, "std": 0.5}}


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def fit_slope(x, y):
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def ou_gm(cells):
    """1D OU grid model, ρ0 and the exact cell averages at T_END on ``cells`` cells."""
    c = cartesian([DOMAIN], cells)
    e = c.axes[0].edges
    gm = GridModel(Model(potential=QuadraticPotential(1.0), beta=1.0), c)
    mean = MEAN0 * math.exp(-T_END)
    var = STD0**2 * math.exp(-2 * T_END) + 1.0 - math.exp(-2 * T_END)
    return gm, gaussian_cell_averages(e, MEAN0, STD0), gaussian_cell_averages(e, mean, math.sqrt(var))


def ou_gm_2d(cells):
    c = cartesian([DOMAIN, DOMAIN], [cells, cells])
    gm = GridModel(Model(potential=QuadraticPotential(1.0), beta=1.0, ndim=2), c)
    g = gaussian_cell_averages(c.axes[0].edges, MEAN0, STD0)
    return gm, np.outer(g, g)


def config_gm(cfg):
    setup = build(resolve(cfg, solver=False), solver=False)
    return GridModel(setup.model, setup.coords), setup.initial.values


def measure(fn, R, budget):
    """Median wall time of ``fn()`` (already warm): one call, then up to R - 1 more
    (harness ``timed``) unless the first took longer than ``budget``. Returns (times, result)."""
    t0 = time.perf_counter()
    out = fn()
    ts = [time.perf_counter() - t0]
    if R > 1 and ts[0] < budget:
        tm, out = timed(fn, R - 1)
        ts += tm["all"]
    return {"median": float(np.median(ts)), "min": float(min(ts)), "all": ts}, out


def interp_time(points, target):
    """Time to reach ``target`` along a work–precision curve [(error, time), ...]: log-log
    interpolation between the last run above and the first run at or below the target
    (runs ordered by increasing cost); None if no run reaches it."""
    pts = sorted(points, key=lambda p: p[1])
    best = None
    for i, (e, t) in enumerate(pts):
        if e <= target:
            best = t
            # previous run with a larger error: interpolate between the two
            above = [(e0, t0) for e0, t0 in pts[:i] if e0 > target]
            if above:
                e0, t0 = above[-1]
                f = math.log(target / e0) / math.log(e / e0)
                best = math.exp(math.log(t0) + f * math.log(t / t0))
                best = min(best, t)
            break
    return best


# ---------------------------------------------------------------------------------------
# part (a): work–precision on 1D OU
# ---------------------------------------------------------------------------------------
def _runs_a(quick):
    """Per method, the (cells, atoms, tau) sequence. Calibrated on this problem (the
    Lagrangian readout/initial-data error is shown by the extra table of part (a)):
    Lagrangian time error ≈ 0.2τ (order 1) and 0.13τ² (BDF2); its readout error on M
    cells with N atoms ≈ 0.15 M/N² (the density is piecewise constant between atoms),
    so N = 2M and N ∝ τ^-2 (BDF2) or τ^-1 (order 1); LJKO is first order in h and τ;
    the FV schemes are second order in h (and dt)."""
    if quick:
        return {
            "JKO Lagrangian, order 1": [(M, 2 * M, tau) for M, tau in ((32, 0.04), (64, 0.02), (128, 0.01))],
            "JKO Lagrangian, BDF2": [(M, 2 * M, tau) for M, tau in ((32, 0.1), (128, 0.05), (512, 0.025))],
            "LJKO (fv method)": [(M, None, tau) for M, tau in ((160, 0.05), (320, 0.025))],
            "FV explicit SSPRK(4,3)": [(M, None, None) for M in (100, 200, 400)],
            "FV implicit BDF2 log-mean": [(M, None, dt) for M, dt in ((100, 0.04), (200, 0.02), (400, 0.01))],
        }
    return {
        "JKO Lagrangian, order 1": [(M, 2 * M, tau) for M, tau in
                                   ((32, 0.04), (64, 0.02), (128, 0.01), (192, 0.005), (384, 0.0025),
                                    (768, 0.00125), (1536, 0.000625), (3072, 0.0003125))],
        "JKO Lagrangian, BDF2": [(M, 2 * M, tau) for M, tau in
                                ((32, 0.1), (128, 0.05), (512, 0.025), (2048, 0.0125), (8192, 0.00625))],
        "LJKO (fv method)": [(M, None, tau) for M, tau in
                             ((160, 0.05), (320, 0.025), (640, 0.0125), (1280, 0.00625), (2560, 0.003125))],
        "FV explicit SSPRK(4,3)": [(M, None, None) for M in (100, 141, 200, 283, 400, 566, 800, 1131, 1600)],
        "FV implicit BDF2 log-mean": [(M, None, dt) for M, dt in
                                      ((100, 0.04), (200, 0.02), (400, 0.01), (800, 0.005),
                                       (1600, 0.0025), (3200, 0.00125))],
    }


def _kwargs_a(name, atoms, tau):
    if name.startswith("JKO Lagrangian"):
        return {"scheme": "jko", "method": "lagrangian", "atoms": atoms, "dt": tau,
                "time_order": 2 if "BDF2" in name else 1}
    if name.startswith("LJKO"):
        return {"scheme": "jko", "method": "fv", "dt": tau}
    if "implicit" in name:
        return {"implicit": True, "dt": tau, "time_order": 2, "flux": "logmean"}
    return {}


BASELINE_A = "FV explicit SSPRK(4,3)"


def part_a(args, R, results):
    log("\n=== (a) work–precision, 1D OU to t = 1 (L1 error of the cell averages) ===")
    runs = _runs_a(args.quick)
    # warm up every code path (numba compile / cache load of the FV kernels)
    gm, rho0, _ = ou_gm(64)
    for name in runs:
        kw = _kwargs_a(name, 64, 0.1 if "JKO" in name else (0.05 if "implicit" in name else None))
        evolve(gm, rho0, 0.2, **kw)
    out = {}
    for name, seq in runs.items():
        rows, recs = [], []
        for M, N, tau in seq:
            gm, rho0, exact = ou_gm(M)
            h = (DOMAIN[1] - DOMAIN[0]) / M
            kw = _kwargs_a(name, N, tau)
            tm, (rho, info) = measure(lambda gm=gm, rho0=rho0, kw=kw: evolve(gm, rho0, T_END, **kw),
                                      R, args.budget)
            err = float(np.sum(np.abs(rho - exact)) * h)
            steps = int(info.get("steps", 0))
            rec = {"cells": M, "atoms": N, "tau": tau, "steps": steps, "l1_error": err, "time": tm,
                   "mass_error": float(abs(np.sum(rho) * h - 1.0))}
            if "inner_iterations" in info:
                rec["inner_per_step"] = info["inner_iterations"] / max(steps, 1)
            elif "newton_iterations" in info:
                rec["inner_per_step"] = info["newton_iterations"] / max(steps, 1)
            rec["rejected"] = int(info.get("rejected", 0) or 0)
            recs.append(rec)
            its = f"{rec['inner_per_step']:.1f}" if "inner_per_step" in rec else "-"
            rows.append([M, N if N else "-", f"{tau:g}" if tau else "adaptive", steps, rec["rejected"],
                         its, f"{err:.3e}", fmt_t(tm["median"])])
        log(f"\n{name}")
        log(table(["cells", "atoms", "tau / dt", "steps", "rejected", "inner its/step", "L1 error", "time"],
                  rows))
        out[name] = recs

    # Lagrangian readout: the error depends on cells and atoms (M/N² law)
    if not args.quick:
        log("\nLagrangian readout error (BDF2, tau = 0.005, error ~ time error 3e-6 + readout):")
        rows, rec = [], []
        for M in (200, 400, 800):
            gm, rho0, exact = ou_gm(M)
            h = (DOMAIN[1] - DOMAIN[0]) / M
            row = [M]
            for N in (400, 800, 1600, 3200):
                rho, _ = evolve(gm, rho0, T_END, **_kwargs_a("JKO Lagrangian, BDF2", N, 0.005))
                e = float(np.sum(np.abs(rho - exact)) * h)
                row.append(f"{e:.2e}")
                rec.append({"cells": M, "atoms": N, "l1_error": e})
            rows.append(row)
        log(table(["cells \\ atoms", 400, 800, 1600, 3200], rows))
        results["a_readout"] = rec

    targets = [1e-3, 1e-4]
    if any(r["l1_error"] <= 1e-5 for recs in out.values() for r in recs):
        targets.append(1e-5)
    curves = {n: [(r["l1_error"], r["time"]["median"]) for r in recs] for n, recs in out.items()}
    base = {tg: interp_time(curves[BASELINE_A], tg) for tg in targets}
    rows, summ = [], {}
    for name in out:
        row = [name]
        for tg in targets:
            t = interp_time(curves[name], tg)
            ratio = t / base[tg] if (t is not None and base[tg]) else None
            summ[f"{name} @ {tg:g}"] = {"time": t, "ratio_to_fv_explicit": ratio}
            row += [fmt_t(t), f"{ratio:.2f}" if ratio is not None else "-"]
        # empirical exponent: time ∝ error^-p along the curve
        e, t = zip(*curves[name])
        summ[f"{name} cost exponent"] = -fit_slope(e, t) if len(e) > 1 else None
        row.append(f"{-fit_slope(e, t):.2f}" if len(e) > 1 else "-")
        rows.append(row)
    heads = ["method"] + [h for tg in targets for h in (f"time @ {tg:g}", "/ FV expl.")] + ["p (t ∝ err^-p)"]
    log(f"\nTime to reach the L1 target (log-log interpolation along each curve; "
        f"baseline: {BASELINE_A}):")
    log(table(heads, rows))
    results["a"] = {"runs": out, "targets": summ}


# ---------------------------------------------------------------------------------------
# part (b): time per JKO step vs size
# ---------------------------------------------------------------------------------------
def _time_steps(method, rho0, tau, steps, R, budget):
    """Median time of one step (``steps`` consecutive steps from the initial state, timed
    together); also returns the inner iterations per step."""
    y0 = method.initial_state(rho0)
    method.step(y0, tau)  # warm
    holder = {}

    def go():
        y, its = y0, 0
        for _ in range(steps):
            y, info = method.step(y, tau)
            if y is None:
                raise RuntimeError(f"JKO step failed: {info['reason']}")
            its += info["iterations"]
        holder["its"] = its / steps
        return y

    tm, _ = measure(go, R, budget)
    return tm["median"] / steps, holder["its"]


def _fv_per_unit_time(gm, rho0, R, budget, steps=200):
    """Explicit FV (adaptive SSPRK(4,3)) wall time per unit simulated time, measured over
    about ``steps`` steps from rho0 (the run length is set from a short probe run)."""
    t_probe = 1e-4
    _, info = evolve(gm, rho0, t_probe)  # warm; the probe's step count sizes the timed run
    while info["steps"] < 20:
        t_probe *= 4 * 20 / max(info["steps"], 1)
        _, info = evolve(gm, rho0, t_probe)
    t_run = t_probe * steps / info["steps"]
    tm, (_, info) = measure(lambda: evolve(gm, rho0, t_run), R, budget)
    return tm["median"] / t_run, int(info["steps"]), t_run


def part_b(args, R, results):
    log("\n=== (b) time per JKO step vs size (tau = 0.01) ===")
    tau = 0.01
    sizes = [250, 500, 1000] if args.quick else [250, 500, 1000, 2000, 4000]
    steps = 5 if args.quick else 10
    out = {}

    def table_1d(label, make, method_of, extra_cols=False):
        rows, rec = [], []
        for n in sizes:
            gm, rho0 = make(n)
            method = method_of(gm, n)
            t_step, its = _time_steps(method, rho0, tau, steps, R, args.budget)
            fv_unit, fv_steps, t_run = _fv_per_unit_time(gm, rho0, R, args.budget)
            jko_unit = t_step / tau
            rec.append({"size": n, "time_per_step": t_step, "inner_per_step": its,
                        "jko_per_unit_time": jko_unit, "fv_explicit_per_unit_time": fv_unit,
                        "fv_steps_measured": fv_steps, "fv_t_measured": t_run,
                        "ratio_jko_over_fv": jko_unit / fv_unit})
            rows.append([n, fmt_t(t_step), f"{its:.1f}", fmt_t(jko_unit), fmt_t(fv_unit),
                         f"{jko_unit / fv_unit:.3g}"])
        slope = fit_slope([r["size"] for r in rec], [r["time_per_step"] for r in rec])
        fv_slope = fit_slope([r["size"] for r in rec], [r["fv_explicit_per_unit_time"] for r in rec])
        log(f"\n{label}: time per step ∝ size^{slope:.2f}; FV explicit per unit time ∝ size^{fv_slope:.2f}")
        log(table(["size", "time/step", "inner its", "JKO per unit t", "FV expl. per unit t",
                   "JKO / FV"], rows))
        out[label] = {"runs": rec, "exponent": slope, "fv_exponent": fv_slope}

    def ou_1d(n):
        gm, rho0, _ = ou_gm(n)
        return gm, rho0

    def cw(n):
        cfg = {k: dict(v) for k, v in CURIE_WEISS.items()}
        cfg["grid"]["cells"] = n
        return config_gm(cfg)

    table_1d("Lagrangian JKO, 1D OU (atoms = cells)", ou_1d, lambda gm, n: LagrangianJKO(gm, atoms=n))
    table_1d("Lagrangian JKO, Curie-Weiss (low-rank interaction, atoms = cells)", cw,
             lambda gm, n: LagrangianJKO(gm, atoms=n))
    table_1d("LJKO (fv method), 1D OU", ou_1d, lambda gm, n: FiniteVolumeJKO(gm))

    sizes2 = [32, 64] if args.quick else [32, 64, 128]
    rows, rec = [], []
    for n in sizes2:
        gm, rho0 = ou_gm_2d(n)
        t_step, its = _time_steps(FiniteVolumeJKO(gm), rho0, tau, max(3, steps // 2), R, args.budget)
        fv_unit, fv_steps, _ = _fv_per_unit_time(gm, rho0, R, args.budget)
        jko_unit = t_step / tau
        rec.append({"size": n * n, "side": n, "time_per_step": t_step, "inner_per_step": its,
                    "jko_per_unit_time": jko_unit, "fv_explicit_per_unit_time": fv_unit,
                    "fv_steps_measured": fv_steps, "ratio_jko_over_fv": jko_unit / fv_unit})
        rows.append([f"{n}²", fmt_t(t_step), f"{its:.1f}", fmt_t(jko_unit), fmt_t(fv_unit),
                     f"{jko_unit / fv_unit:.3g}"])
    slope = fit_slope([r["size"] for r in rec], [r["time_per_step"] for r in rec])
    fv_slope = fit_slope([r["size"] for r in rec], [r["fv_explicit_per_unit_time"] for r in rec])
    log(f"\nLJKO (fv method), 2D OU: time per step ∝ cells^{slope:.2f}; "
        f"FV explicit per unit time ∝ cells^{fv_slope:.2f}")
    log(table(["grid", "time/step", "inner its", "JKO per unit t", "FV expl. per unit t", "JKO / FV"], rows))
    out["LJKO (fv method), 2D OU"] = {"runs": rec, "exponent": slope, "fv_exponent": fv_slope}
    log("\n(JKO per unit t = time per step / tau at tau = 0.01; FV explicit per unit t from about "
        "200 adaptive SSPRK(4,3) steps from rho0.)")
    results["b"] = out


# ---------------------------------------------------------------------------------------
# part (c): MMN two-layer network, radial d = 320
# ---------------------------------------------------------------------------------------
def mmn_gm(kappa):
    raw = read_toml(MMN_TOML)
    raw["model"]["kappa"] = kappa
    raw.pop("run", None)
    return config_gm(raw)


def part_c(args, R, results):
    t_final = args.t_mmn
    log(f"\n=== (c) MMN two-layer network, radial d = 320, 1000 cells, t = 0..{t_final:g} ===")
    out = {}
    for kappa in (0.4, 0.1):
        gm, rho0 = mmn_gm(kappa)
        vol = np.asarray(gm.coords.cell_volume, float)
        r = gm.coords.axes[0].centers

        def radius(rho, r=r, vol=vol):
            return float(np.sum(rho * r * vol) / np.sum(rho * vol))

        evolve(gm, rho0, 0.5)  # warm (numba)
        variants = [("FV explicit SSPRK(4,3) (baseline)", {}),
                    ("JKO Lagrangian, dt = 0.5", {"scheme": "jko", "method": "lagrangian", "dt": 0.5}),
                    ("JKO Lagrangian, dt = 0.5 -> dt_max = 20",
                     {"scheme": "jko", "method": "lagrangian", "dt": 0.5, "dt_max": 20.0})]
        recs, rows = {}, []
        for name, kw in variants:
            # a single timed run each (the JKO runs take minutes); FV is repeated
            reps = R if not kw else 1
            tm, (rho, info) = measure(lambda gm=gm, rho0=rho0, kw=kw: evolve(gm, rho0, t_final, **kw),
                                      reps, args.budget)
            risk = float(gm.risk(rho))
            rec = {"time": tm, "steps": int(info.get("steps", 0)), "risk": risk, "mean_radius": radius(rho),
                   "mass_error": float(abs(np.sum(rho * vol) - 1.0))}
            for k in ("rejected", "inner_iterations", "max_inner_iterations", "jko_violations",
                      "energy_increases", "dt_last"):
                if k in info:
                    rec[k] = info[k]
            recs[name] = rec
        base = recs[variants[0][0]]
        for name, rec in recs.items():
            rec["risk_rel_diff_to_fv"] = abs(rec["risk"] - base["risk"]) / abs(base["risk"])
            rec["time_ratio_to_fv"] = rec["time"]["median"] / base["time"]["median"]
            extra = (f"{rec.get('rejected', 0)} / {rec['inner_iterations'] / max(rec['steps'], 1):.1f}"
                     if "inner_iterations" in rec else "-")
            rows.append([name, fmt_t(rec["time"]["median"]), rec["steps"], extra, f"{rec['risk']:.9f}",
                         f"{rec['mean_radius']:.4f}", f"{rec['risk_rel_diff_to_fv']:.2e}",
                         f"{rec['time_ratio_to_fv']:.1f}"])
        log(f"\nkappa = {kappa} (initial risk {gm.risk(rho0):.4f}, mean radius {radius(rho0):.4f})")
        log(table(["method", "wall time", "steps", "rejected / inner its per step", "final risk",
                   "mean radius", "|dR| / R_FV", "time / FV"], rows))
        out[f"kappa={kappa}"] = recs
    results["c"] = {"t_final": t_final, "runs": out}


def main():
    args = ARGS
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.budget is None:
        args.budget = 0.5 if args.quick else 2.0
    if args.t_mmn is None:
        args.t_mmn = 20.0 if args.quick else 1000.0
    t_start = time.perf_counter()
    meta = run_meta({"numpy": np.__version__, "scipy": scipy.__version__,
                     "ddsolve": getattr(ddsolve, "__version__", "?")}, args.blas_threads,
                    quick=args.quick, repeats=args.repeats, budget=args.budget, t_mmn=args.t_mmn)
    log(f"bench_jko: python {meta['python']}, numpy {meta['numpy']}, {meta['cpus']} CPUs, "
        f"BLAS threads {meta['blas_threads']}, load average {meta['loadavg_start'][0]:.2f}")
    results = {"meta": meta}
    run_parts((("a", part_a), ("b", part_b), ("c", part_c)), args.parts, meta, args, args.repeats, results)
    finish(meta, t_start)
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
