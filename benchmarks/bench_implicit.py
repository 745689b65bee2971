"""Stiff diffusion: implicit (BDF2 + log-mean flux, Newton) vs explicit SSPRK(4,3).

On fine grids the explicit step is bound by dt <= 0.9 h^2 beta / 2 (with SSP coefficient
2), so the step count grows like M^2; the implicit step is set by accuracy. The problem is
1D Ornstein-Uhlenbeck (V = x^2/2, beta = 1) on [-6, 6] from N(1, 0.5^2) to t = 2, with
the L1 error against the exact Gaussian cell averages. For each M both solvers run in the
same process (warm numba cache); the implicit step is the largest of a halving sequence
whose L1 error stays within 10% of the explicit one, so both reach the same accuracy.

Run: ``python benchmarks/bench_implicit.py [--cells 400 800 1600] [--repeats 3]``.
"""

from __future__ import annotations

import argparse

import numpy as np

from ddsolve import GridModel, Model, cartesian, evolve
from ddsolve.laws.exact import gaussian_cell_averages, ou_moments
from ddsolve.model.potentials import QuadraticPotential

from _harness import timed  # noqa: E402

T_END = 2.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, nargs="+", default=[400, 800, 1600])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    m, S = ou_moments(1.0, [1.0], [[0.25]], T_END, 1.0)
    print(f"{'M':>5} {'method':<26} {'dt / steps':>14} {'L1 error':>10} {'time':>10}  ratio")
    for M in args.cells:
        c = cartesian([-6, 6], M)
        e = c.axes[0].edges
        gm = GridModel(Model(potential=QuadraticPotential(1.0), beta=1.0), c)
        rho0 = gaussian_cell_averages(e, 1.0, 0.5)
        exact = gaussian_cell_averages(e, m[0], np.sqrt(S[0, 0]))

        def err(rho):
            return float(np.sum(np.abs(rho - exact)) * c.cell_volume)

        evolve(gm, rho0, 0.01)  # compile / load the cache outside the timings
        tm, (rho_e, info_e) = timed(lambda: evolve(gm, rho0, T_END), args.repeats)
        t_exp = tm["median"]
        e_exp = err(rho_e)
        dt, pick = 0.2, None
        while dt > 1e-4:
            rho_i, info_i = evolve(gm, rho0, T_END, implicit=True, dt=dt, time_order=2, flux="logmean")
            if err(rho_i) <= 1.1 * e_exp:
                pick = dt
                break
            dt /= 2
        if pick is None:
            print(f"{M:>5} implicit: no step reached the explicit error {e_exp:.3e}")
            continue
        tm, (rho_i, info_i) = timed(
            lambda: evolve(gm, rho0, T_END, implicit=True, dt=pick, time_order=2, flux="logmean"),
            args.repeats)
        t_imp = tm["median"]
        print(f"{M:>5} {'explicit SSPRK(4,3)':<26} {info_e['steps']:>14d} {e_exp:>10.3e} {t_exp:>9.3f}s")
        steps = f"{pick:g} / {info_i['steps']}"
        print(f"{M:>5} {'implicit BDF2 log-mean':<26} {steps:>14} "
              f"{err(rho_i):>10.3e} {t_imp:>9.3f}s  explicit/implicit = {t_exp / t_imp:.1f}x "
              f"({info_i['newton_iterations'] / info_i['steps']:.1f} Newton its/step)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
