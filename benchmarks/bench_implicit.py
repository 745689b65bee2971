#!/usr/bin/env python
r"""Stiff diffusion: the error-controlled implicit path against explicit SSPRK(4,3).

On fine grids the explicit step is bound by dt <= 0.9 h^2 beta / 2 (with SSP coefficient
2), so the step count grows like M^2 and the cost like M^3 in 1D; the implicit step is set
by the tolerance, so its cost grows like M.

(a) Scaling of cost with M: 1D Ornstein–Uhlenbeck (V = x^2/2, beta = 1) on [-6, 6] from
    N(1, 0.5^2) to t = 2, explicit SSPRK(4,3) against the implicit defaults (ESDIRK4 with the
    tolerance that follows the grid, rtol = C/M^2 with C = 5, so the time error stays below a tenth of
    the spatial error on every grid), and the exponential integrator (``time =
    "exponential"``, what ``auto`` picks for this linear problem: one matrix exponential for
    the run); L1 error against the exact Gaussian cell averages and the fitted exponent of
    time ~ M^p.
(b) Crossover of ``scheme.time = "auto"``: OU (linear implicit operator, ``sg`` flux) and
    Curie–Weiss (theta = 1, beta = 3: nonlinear, ``sg`` flux) on 200 cells, run for
    spans that need n = 25 ... 1600 explicit steps at the diffusion bound; explicit vs the
    implicit defaults (ESDIRK4, rtol = C/M^2) and what the auto rule
    (:func:`ddsolve.schemes.fv.auto.choose_time`) picks.
(c) 2D: Müller–Brown Fokker–Planck (``examples/muller_brown_2d.toml``) on 128 x 128 to t = 1:
    explicit, implicit at two tolerances and auto, with the L1 distance to an ESDIRK4 rtol 1e-7
    run on the same grid (the time error) and between the explicit and implicit
    spatial schemes (minmod vs Scharfetter–Gummel flux).

(d) Simplified Newton: Curie–Weiss (theta = 1, beta = 3, t = 10, the Woodbury solver) with
    the implicit defaults (ESDIRK4, rtol = C/M^2), Newton factors kept across the stages of
    a step (the default) against a refactorisation at every iteration
    (``reuse_jacobian=False``): time, iterations and factorisations.
(e) The interaction rule of ``auto``: fully implicit ESDIRK4 (its default flux, ``sg``; Newton
    with the Woodbury or GMRES solver) against the semi-implicit ARK4 (``sg`` flux, one
    linear solve per stage), each at its auto tolerance, over the coupling strength: Curie–Weiss
    (beta = 3, t = 10, 300 cells) with theta = 1, 5, 20, 100; Kuramoto on [0, 2 pi) (beta = 1,
    t = 20, 256 cells, from 1 - 0.3 cos x) with kappa = 3, 10; a Gaussian attraction
    A exp(-z^2/(2 sigma^2)), sigma = 0.5 in V = x^4/4 on [-4, 4] (t = 5, 200 cells, a dense
    kernel: GMRES) with A = -1 (beta = 2) and A = -5 (beta = 5). Time, steps, failed steps,
    and the L1 distance to ARK4 at rtol 1e-10 on the same grid over the ARK4 spatial error
    (against 4x the cells): the time error of each, which the auto tolerance keeps below
    0.1. ``--logmean`` adds ESDIRK4 with the log-mean flux (its distance then also holds the
    difference of the two spatial schemes; expect minutes for Curie–Weiss theta = 100).
(f) Time error against the tolerance on two grids: the Curie–Weiss flagship (theta = 1,
    beta = 3, t = 10) on 96 and 600 cells, ARK4, ESDIRK3 and ESDIRK4 at rtol 1e-2 ... 1e-6
    (atol = 1e-3 rtol) and at their auto tolerance: time, steps, stage solves (Newton or
    linear), the L1 time error (against ESDIRK4 at rtol 1e-10 on the same grid) and its
    ratio to the spatial error (Richardson, from 2x the cells). The time error at a given
    rtol does not depend on the grid; the spatial error falls like M^-2. Last, per
    integrator, the cheapest run on 96 cells whose time error is at most a tenth of the
    spatial error (the auto rule's criterion) — what the rule could at best save there.

Run: ``python benchmarks/bench_implicit.py [--parts abcdef] [--repeats 3]``.
"""

from __future__ import annotations

from _harness import add_blas_threads_arg, add_common_args, log, make_parser, set_blas_threads, table, timed

ARGS_P = make_parser(__doc__)
add_common_args(ARGS_P, parts="abcdef", quick=False)
ARGS_P.add_argument("--repeats", type=int, default=3)
ARGS_P.add_argument("--cells", type=int, nargs="+", default=[200, 400, 800, 1600])
ARGS_P.add_argument("--mb-cells", type=int, default=128, help="cells per axis of part (c)")
ARGS_P.add_argument("--logmean", action="store_true",
                    help="part (e): also ESDIRK4 with the log-mean flux (slow at strong coupling)")
add_blas_threads_arg(ARGS_P, 1, "threads for OpenBLAS/OpenMP/numba; 0 = library default")

if __name__ == "__main__":
    ARGS = ARGS_P.parse_args()
    set_blas_threads(ARGS.blas_threads)

import time  # noqa: E402

import numpy as np  # noqa: E402

from ddsolve import GridModel, Model, cartesian, evolve  # noqa: E402
from ddsolve.laws.exact import gaussian_cell_averages, ou_moments  # noqa: E402
from ddsolve.model.kernels import QuadraticKernel  # noqa: E402
from ddsolve.model.potentials import DoubleWellPotential, QuadraticPotential  # noqa: E402
from ddsolve.schemes.fv.auto import TOLERANCE_CONSTANTS, diffusion_bound  # noqa: E402
from ddsolve.schemes.fv.pde import DistributionalDynamicsPDE  # noqa: E402


def ou(M):
    c = cartesian([-6, 6], M)
    gm = GridModel(Model(potential=QuadraticPotential(1.0), beta=1.0), c)
    return gm, gaussian_cell_averages(c.axes[0].edges, 1.0, 0.5)


def part_a(args, out):
    log("(a) OU to t = 2: cost vs M, explicit SSPRK(4,3) vs the implicit defaults (ESDIRK4, rtol "
        f"{TOLERANCE_CONSTANTS['esdirk4']:g}/M^2) vs the exponential (auto's choice for this linear problem)")
    T = 2.0
    m, S = ou_moments(1.0, [1.0], [[0.25]], T, 1.0)
    rows, res = [], []
    for M in args.cells:
        gm, rho0 = ou(M)
        exact = gaussian_cell_averages(gm.coords.axes[0].edges, m[0], np.sqrt(S[0, 0]))

        def err(rho):
            return float(np.sum(np.abs(rho - exact)) * gm.coords.cell_volume)

        evolve(gm, rho0, 0.01)
        evolve(gm, rho0, 0.01, time="implicit")  # compile / load the caches outside the timings
        evolve(gm, rho0, 0.01, time="exponential")
        te, (re, ie) = timed(lambda: evolve(gm, rho0, T), args.repeats)
        ti, (ri, ii) = timed(lambda: evolve(gm, rho0, T, time="implicit"), args.repeats)
        tx, (rx, ix) = timed(lambda: evolve(gm, rho0, T, time="exponential"), args.repeats)
        res.append({"M": M, "explicit_s": te["median"], "implicit_s": ti["median"],
                    "exponential_s": tx["median"], "explicit_l1": err(re), "implicit_l1": err(ri),
                    "exponential_l1": err(rx), "explicit_steps": ie["steps"],
                    "implicit_steps": ii["steps"], "newton_iterations": ii["newton_iterations"],
                    "exponential_nodes": ix["nodes_max"]})
        rows.append([M, ie["steps"], f"{err(re):.2e}", f"{te['median'] * 1e3:.1f} ms", ii["steps"],
                     ii["newton_iterations"], f"{err(ri):.2e}", f"{ti['median'] * 1e3:.1f} ms",
                     ix["nodes_max"], f"{err(rx):.2e}", f"{tx['median'] * 1e3:.3f} ms",
                     f"{te['median'] / ti['median']:.1f}x", f"{ti['median'] / tx['median']:.1f}x"])
    log(table(["M", "explicit steps", "L1", "time", "implicit steps", "Newton its", "L1", "time",
               "exp. nodes", "L1", "time", "explicit/implicit", "implicit/exponential"], rows))
    Ms = np.array([r["M"] for r in res], float)
    for key in ("explicit_s", "implicit_s", "exponential_s"):
        p = float(np.polyfit(np.log(Ms), np.log([r[key] for r in res]), 1)[0])
        out[f"exponent_{key[:-2]}"] = p
        log(f"  fitted cost exponent, {key[:-2]}: time ~ M^{p:.2f}")
    out["a"] = res


def curie_weiss(M):
    c = cartesian([-3, 3], M)
    model = Model(potential=DoubleWellPotential(), interaction=QuadraticKernel(1.0), beta=3.0)
    return GridModel(model, c), gaussian_cell_averages(c.axes[0].edges, 0.1, 0.5)


def part_b(args, out):
    log("\n(b) crossover of time = auto: 200 cells, explicit vs the implicit default")
    out["b"] = {}
    for name, make in (("ou", ou), ("curie-weiss", curie_weiss)):
        gm, rho0 = make(200)
        dtd = diffusion_bound(DistributionalDynamicsPDE(gm, order=1))
        rows, res = [], []
        evolve(gm, rho0, 0.01)
        flux = evolve(gm, rho0, 0.01, time="implicit")[1]["flux"]
        for n in (25, 50, 100, 200, 400, 800, 1600):
            T = n * dtd
            te, _ = timed(lambda: evolve(gm, rho0, T), args.repeats)
            ti, (_, ii) = timed(lambda: evolve(gm, rho0, T, time="implicit"), args.repeats)
            ta, (_, ia) = timed(lambda: evolve(gm, rho0, T, time="auto"), args.repeats)
            res.append({"n_explicit": n, "t": T, "explicit_s": te["median"], "implicit_s": ti["median"],
                        "auto": ia["time"]})
            rows.append([n, f"{T:.3g}", f"{te['median'] * 1e3:.2f} ms", f"{ti['median'] * 1e3:.2f} ms",
                         ii["steps"], f"{te['median'] / ti['median']:.2f}", ia["time"]])
        log(f"  {name} (implicit flux {flux})")
        log(table(["explicit steps", "t", "explicit", "implicit", "implicit steps", "explicit/implicit",
                   "auto picks"], rows))
        out["b"][name] = res


def part_c(args, out):
    from ddsolve.app.config import build, load_config

    n = args.mb_cells
    log(f"\n(c) 2D Müller–Brown Fokker–Planck, {n} x {n}, t = 1")
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "muller_brown_2d.toml"
    s = build(load_config(path, [("grid.cells", [n, n])]))
    gm, rho0, T = GridModel(s.model, s.coords), s.initial.values, 1.0
    vol = s.coords.cell_volume
    evolve(gm, rho0, 1e-3)
    evolve(gm, rho0, 1e-3, time="implicit")
    t0 = time.perf_counter()
    ref, iref = evolve(gm, rho0, T, time="implicit", integrator="esdirk4", rtol=1e-7, atol=1e-10)
    log(f"  reference: ESDIRK4 rtol 1e-7, {iref['steps']} steps, {time.perf_counter() - t0:.1f} s")
    runs = {"explicit SSPRK(4,3)": dict(), "implicit rtol 1e-4": dict(time="implicit", rtol=1e-4, atol=1e-7),
            "implicit rtol 1e-5": dict(time="implicit", rtol=1e-5, atol=1e-8),
            "auto (defaults)": dict(time="auto")}
    rows, res = [], []
    for label, kw in runs.items():
        tm, (rho, info) = timed(lambda: evolve(gm, rho0, T, **kw), 1 if label.startswith("explicit")
                                else args.repeats)
        d = float(np.abs(rho - ref).sum() * vol)
        res.append({"method": label, "s": tm["median"], "steps": info["steps"], "l1_vs_ref": d,
                    "time": info.get("time")})
        rows.append([label, info["steps"], f"{d:.2e}", f"{tm['median']:.2f} s"])
    log(table(["method", "steps", "L1 vs implicit reference", "time"], rows))
    log("  (the explicit run uses the minmod flux, the implicit ones the Scharfetter-Gummel flux "
        "(scheme.flux = auto, no interaction): its distance is the difference of the two "
        "second-order spatial schemes, not a time error)")
    out["c"] = res


def part_d(args, out):
    from ddsolve.schemes.fv.adaptive import AdaptiveFVSolver

    log("\n(d) simplified Newton on Curie-Weiss (ESDIRK4, auto tolerances), t = 10: kept factors vs "
        "refactorising every iteration")
    rows, res = [], []
    for M in (192, 600, 2400):
        gm, rho0 = curie_weiss(M)
        runs = {}
        for reuse in (False, True):
            solver = AdaptiveFVSolver(DistributionalDynamicsPDE(gm, order=1), reuse_jacobian=reuse)

            def go(solver=solver):
                state = gm.coords.field(rho0.copy())
                solver.make_stepper(state)(state, 0.0, 10.0)
                return dict(solver.info)
            go()
            runs[reuse] = timed(go, args.repeats)
        (tf, inf_), (tr, inr) = runs[False], runs[True]
        res.append({"M": M, "full_s": tf["median"], "kept_s": tr["median"], "full": inf_, "kept": inr})
        rows.append([M, f"{tf['median'] * 1e3:.2f} ms", inf_["newton_iterations"], inf_["factorizations"],
                     f"{tr['median'] * 1e3:.2f} ms", inr["newton_iterations"], inr["factorizations"],
                     f"{tf['median'] / tr['median']:.2f}x"])
    log(table(["M", "full Newton", "its", "factorisations", "kept factors", "its", "factorisations",
               "speed-up"], rows))
    out["d"] = res


COUPLING_CASES = [
    ("Curie-Weiss theta=%g", 300, [1.0, 5.0, 20.0, 100.0], lambda v: {
        "model": {"problem": "curie-weiss", "potential": "double-well", "theta": v, "beta": 3.0},
        "grid": {"bounds": [-3.0, 3.0]}, "initial": {"kind": "gaussian", "mean": 0.1, "std": 0.5},
        "run": {"t_final": 10.0}}),
    ("Kuramoto kappa=%g", 256, [3.0, 10.0], lambda v: {
        "model": {"problem": "kuramoto", "kappa": v, "beta": 1.0},
        "grid": {"bounds": [0.0, 2 * np.pi], "periodic": True},
        "initial": {"kind": "expression", "expression": "1 - 0.3*cos(x)"}, "run": {"t_final": 20.0}}),
    ("Gaussian attraction A=%g", 200, [-1.0, -5.0], lambda v: {
        "model": {"problem": "custom", "potential": "x^4/4", "beta": 2.0 if v > -2 else 5.0,
                  "interaction": f"{v}*exp(-z^2/(2*0.5^2))"},
        "grid": {"bounds": [-4.0, 4.0]}, "initial": {"kind": "gaussian", "mean": 0.5, "std": 0.7},
        "run": {"t_final": 5.0}}),
]


def part_e(args, out):
    from ddsolve.app.config import build
    from ddsolve.schemes.fv.auto import choose_time

    log("\n(e) the interaction rule of auto: ESDIRK4 (fully implicit) vs ARK4 (semi-implicit), "
        "auto tolerances")
    log("  L1 distance to ARK4 at rtol 1e-10 on the same grid (the time error; with the logmean flux also "
        "the difference of the spatial schemes) over ARK4's spatial error (against 4x the cells)")
    runs = [("esdirk4", "implicit", None), ("ark4", "imex", None)]  # None: the default flux
    if args.logmean:
        runs.insert(1, ("esdirk4", "implicit", "logmean"))
    rows, res = [], []
    for label, M, values, make in COUPLING_CASES:
        for v in values:
            cfg = make(v)
            T = cfg["run"]["t_final"]

            def setup(cells, cfg=cfg, T=T):
                s = build({**cfg, "grid": {**cfg["grid"], "cells": cells}, "run": {"t_final": T}})
                return GridModel(s.model, s.coords), s.initial.values
            gm, rho0 = setup(M)
            gm4, rho04 = setup(4 * M)
            vol = gm.coords.cell_volume
            picked = choose_time(gm, {"time": "auto"}, rho0, T)[0]
            ref = evolve(gm, rho0, T, time="imex", integrator="ark4", rtol=1e-10, atol=1e-13)[0]
            fine = evolve(gm4, rho04, T, time="imex", integrator="ark4", rtol=1e-10, atol=1e-13)[0]
            spatial = float(np.abs(ref - fine.reshape(M, 4).mean(axis=1)).sum() * vol)
            for integ, mode, flux in runs:
                tm, (rho, info) = timed(lambda: evolve(gm, rho0, T, time=mode, integrator=integ, flux=flux),
                                        args.repeats)
                d = float(np.abs(rho - ref).sum() * vol)
                res.append({"case": label % v, "M": M, "integrator": integ, "flux": info["flux"], "s": tm["median"],
                            "steps": info["steps"], "failed": info["failed"], "l1_vs_ark4_reference": d,
                            "ark4_spatial_error": spatial, "auto": picked})
                row = [label % v, f"{integ} ({info['flux']})", f"{tm['median'] * 1e3:.2f} ms", info["steps"], info["failed"],
                       f"{d / spatial:.3f}", "<- auto" if picked == mode else ""]
                rows.append(row)
                log("  " + "  ".join(str(c) for c in row) + f"  (ARK4 spatial L1 {spatial:.2e})")
    log(table(["case", "integrator", "time", "steps", "failed", "L1 vs ARK4 ref / ARK4 spatial", ""], rows))
    out["e"] = res


F_RTOLS = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]


def part_f(args, out):
    from ddsolve.schemes.fv.adaptive import AdaptiveFVSolver
    from ddsolve.schemes.fv.auto import grid_tolerances

    log("\n(f) Curie-Weiss flagship, t = 10: time error against the tolerance on 96 and 600 cells "
        "(stepping only)")
    res, cheapest = [], {}
    for M in (96, 600):
        gm, rho0 = curie_weiss(M)
        gm2, rho02 = curie_weiss(2 * M)
        vol = gm.coords.cell_volume
        ref = evolve(gm, rho0, 10.0, time="implicit", integrator="esdirk4", rtol=1e-10, atol=1e-13)[0]
        fine = evolve(gm2, rho02, 10.0, time="implicit", integrator="esdirk4", rtol=1e-10, atol=1e-13)[0]
        spatial = 4 / 3 * float(np.abs(ref - fine.reshape(M, 2).mean(axis=1)).sum() * vol)
        rows = []
        for integ in ("ark4", "esdirk3", "esdirk4"):
            auto = grid_tolerances(gm.coords, integ)[0]
            for rtol in sorted(F_RTOLS + [auto], reverse=True):
                solver = AdaptiveFVSolver(DistributionalDynamicsPDE(gm, order=1), integ, rtol=rtol,
                                          atol=1e-3 * rtol)

                def go(solver=solver):  # stepping only, as in bench_fv.py part (d)
                    state = gm.coords.field(rho0.copy())
                    solver.make_stepper(state)(state, 0.0, 10.0)
                    return state.data.copy(), dict(solver.info)
                go()
                tm, (rho, info) = timed(go, args.repeats)
                err = float(np.abs(rho - ref).sum() * vol)
                stages = info["newton_iterations"]
                row = {"M": M, "integrator": integ, "rtol": rtol, "auto": rtol == auto, "s": tm["median"],
                       "steps": info["steps"], "stage_solves": stages, "time_error": err,
                       "spatial_error": spatial, "ratio": err / spatial}
                res.append(row)
                rows.append([integ, f"{rtol:.2g}" + (" (auto)" if rtol == auto else ""),
                             f"{tm['median'] * 1e3:.2f} ms", info["steps"], stages, f"{err:.2e}",
                             f"{err / spatial:.3f}"])
                if M == 96 and err <= 0.1 * spatial and (
                        integ not in cheapest or tm["median"] < cheapest[integ]["s"]):
                    cheapest[integ] = row
        log(f"  M = {M}: spatial L1 error {spatial:.2e}")
        log(table(["integrator", "rtol", "time", "steps", "stage solves", "time error", "/ spatial"], rows))
    log("  cheapest run on 96 cells with the time error at most a tenth of the spatial error:")
    for integ, r in cheapest.items():
        log(f"    {integ}: rtol {r['rtol']:.2g}{' (auto)' if r['auto'] else ''}, {r['steps']} steps, "
            f"{r['stage_solves']} stage solves, {r['s'] * 1e3:.2f} ms (ratio {r['ratio']:.3f})")
    out["f"] = {"runs": res, "cheapest_96": cheapest}


def main() -> int:
    args = ARGS
    out: dict = {}
    for name, fn in (("a", part_a), ("b", part_b), ("c", part_c), ("d", part_d), ("e", part_e),
                     ("f", part_f)):
        if name in args.parts:
            fn(args, out)
    if args.json:
        from _harness import write_json

        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
