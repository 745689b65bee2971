"""Stationary states: Newton on the self-consistency equation against time stepping to
stationarity, and the cost of continuation and of Newton on large grids.

Parts (all in one process, compiled code warm):

a. Curie-Weiss flagship (double well, theta = 1, beta = 3, 150 cells, rho0 = N(0.1, 0.5^2)):
   Newton from rho0 to the self-consistency residual 1e-12 against ``evolve`` (explicit
   SSPRK(3), the ``ddsolve run`` default) stepped in chunks of t = 1 until the same
   residual; the ratio of the two wall times (baseline: time stepping).
b. A continuation in beta over [1, 4] on 400 cells with ~200 points, stability at every
   point, branch switching at the pitchfork.
c. 2D: Mueller-Brown potential with a Curie-Weiss interaction on 100 x 100 cells: one
   Newton solve (separable, rank 5), and the same with the matrix-free (FFT + GMRES) path.
d. Radial d = 320, 1000 cells: the MMN non-monotone two-layer model at beta = 1000, one
   Newton solve from its initial law.

Run: ``python benchmarks/bench_steady.py [--parts abcd] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _harness import median_time, table  # noqa: E402

from ddsolve.app.config import build, resolve
from ddsolve.grid import GridModel, cartesian
from ddsolve.model import DoubleWellPotential, Model, QuadraticKernel
from ddsolve.model.potentials import make_potential
from ddsolve.schemes.evolve import evolve
from ddsolve.steady.continuation import BetaFamily, continue_states
from ddsolve.steady.deflation import find_states
from ddsolve.steady.selfconsistency import SelfConsistency, gibbs_residual, newton


def part_a(repeats: int) -> None:
    gm = GridModel(Model(DoubleWellPotential(), QuadraticKernel(1.0), beta=3.0), cartesian([-3.0, 3.0], 150))
    x = gm.coords.cell_centers()[..., 0]
    rho0 = np.exp(-((x - 0.1) ** 2) / (2 * 0.25))
    rho0 /= gm.mass(rho0)
    sc = SelfConsistency(gm)
    state = newton(sc, sc.encode(rho0), tol=1e-13)
    t_newton = median_time(lambda: newton(sc, sc.encode(rho0), tol=1e-13), repeats)
    tilted = newton(sc, sc.initial_guess(bias=1.0), tol=1e-13)  # towards +x, as rho0 leans
    t_tilted = median_time(lambda: newton(sc, sc.initial_guess(bias=1.0), tol=1e-13), repeats)
    found = find_states(sc, seed=0)
    t_all = median_time(lambda: find_states(sc, seed=0), repeats)

    def stepping():
        rho, t, steps = rho0.copy(), 0.0, 0
        while gibbs_residual(gm, rho) > 1e-12:
            rho, info = evolve(gm, rho, t + 1.0, t_start=t)
            t += 1.0
            steps += info.get("steps", 0)
        return rho, t, steps

    evolve(gm, rho0, 0.01)  # compile
    t0 = time.perf_counter()
    rho, t_stat, steps = stepping()
    t_step = time.perf_counter() - t0
    print(table(["method", "residual", "iterations / steps", "time", "time stepping / this"], [
        [f"Newton from rho0 (mean {state.moments['mean_x']:+.3f})", f"{state.residual:.1e}", state.iterations,
         f"{t_newton * 1e3:.2f} ms", f"{t_step / t_newton:.0f}"],
        [f"Newton, Gibbs of V tilted to +x (mean {tilted.moments['mean_x']:+.3f})", f"{tilted.residual:.1e}",
         tilted.iterations, f"{t_tilted * 1e3:.2f} ms", f"{t_step / t_tilted:.0f}"],
        [f"deflation: all {len(found.states)} states", "", f"{found.newton_iterations} ({found.guesses_tried} guesses)",
         f"{t_all * 1e3:.1f} ms", f"{t_step / t_all:.0f}"],
        ["evolve to stationarity", f"{gibbs_residual(gm, rho):.1e}", f"{steps} steps (t={t_stat:g})",
         f"{t_step:.2f} s", "1"],
    ]))
    d = min(np.max(np.abs(rho - s.rho)) for s in found.states)
    print(f"  time stepping and the tilted Newton reach the same state: max abs difference "
          f"{np.max(np.abs(rho - tilted.rho)):.1e}")
    print(f"  Newton from rho0 reaches the state of mean {state.moments['mean_x']:+.3g}; time stepping the one "
          f"of mean {gm.moments(rho)['mean_x']:+.6f}, which deflation found (max abs difference {d:.1e})")


def part_b(repeats: int) -> None:
    gm = GridModel(Model(DoubleWellPotential(), QuadraticKernel(1.0), beta=1.0), cartesian([-3.0, 3.0], 400))
    sc = SelfConsistency(gm)

    def run():
        return continue_states(BetaFamily(sc), (1.0, 4.0), ds=0.02, ds_max=0.03)

    d = run()
    n = sum(len(b.points) for b in d.branches)
    t = median_time(run, repeats, warmup=0)
    print(f"continuation on 400 cells: {n} points on {len(d.branches)} branches, stability at each: "
          f"{t:.2f} s ({t / n * 1e3:.2f} ms/point); " + "; ".join(s.describe("beta") for s in d.special))


def part_c(repeats: int) -> None:
    coords = cartesian([[-1.5, 1.2], [-0.2, 2.0]], [100, 100])
    pot = make_potential("muller-brown", 2, names=coords.names, scale=0.1)
    rows = []
    for method, rep in (("separable", "separable"), ("fft", "matrix-free")):
        gm = GridModel(Model(pot, QuadraticKernel(1.0), beta=1.0, ndim=2), coords, interaction=method)
        sc = SelfConsistency(gm, representation=rep)
        z0 = sc.initial_guess()
        st = newton(sc, z0)
        t = median_time(lambda: newton(sc, z0), repeats)
        rows.append([f"{rep} ({sc.n} unknowns)", st.iterations, f"{st.residual:.1e}", f"{t * 1e3:.1f} ms"])
    print("2D Mueller-Brown + Curie-Weiss, 100 x 100:")
    print(table(["Newton", "iterations", "residual", "time"], rows))


def part_d(repeats: int) -> None:
    raw = {"model": {"problem": "two-layer", "activation": "mmn-nonmonotone", "dim": 320, "delta": 0.5,
                     "kappa": 0.4, "beta": 1000.0},
           "grid": {"r_max": 4.0, "cells": 1000}}
    setup = build(resolve(raw, solver=False), solver=False)
    gm = GridModel(setup.model, setup.coords)
    sc = SelfConsistency(gm)
    z0 = sc.encode(setup.initial.values)
    st = newton(sc, z0, max_iter=200)
    t = median_time(lambda: newton(sc, z0, max_iter=200), repeats)
    print(f"radial d = 320, 1000 cells, MMN beta = 1000 ({sc.representation}, {sc.n} unknowns): "
          f"{st.iterations} iterations, residual {st.residual:.1e}, {t * 1e3:.1f} ms per Newton solve")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="abcd")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    for name, fn in (("a", part_a), ("b", part_b), ("c", part_c), ("d", part_d)):
        if name in args.parts:
            print(f"\n== part {name}")
            fn(args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
