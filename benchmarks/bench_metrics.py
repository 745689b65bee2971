"""Particles-vs-PDE distances: the exact quantile-form W_p of validation.metrics against
POT, side by side in one run.

Parts (one process, warm):

a. Grid density vs N particles in 1D (N(0.3, 0.8^2) on [-6, 6], M cells): ``wasserstein``
   (exact, the density as piecewise constant) against POT's ``ot.wasserstein_1d`` with the
   density as M weighted atoms at the cell centres (the baseline a user reaches for). Times
   and the atom baseline's bias (its distance minus the exact one, against a 1e6-cell
   reference), for M = 200, 1000, 5000 and N = 1000, 10^4, 10^5.
b. Sample vs sample: ``wasserstein_samples`` against ``scipy.stats.wasserstein_distance``.
c. The circle: exact ``wasserstein_circle_w1`` against POT's ``wasserstein_circle``.

Run: ``python benchmarks/bench_metrics.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import ot
import scipy.stats as st
from _harness import median_time, table  # noqa: E402

from validation import metrics as M


def gaussian(cells: int) -> M.Law1D:
    e = np.linspace(-6.0, 6.0, cells + 1)
    return M.Law1D(e, np.diff(st.norm.cdf(e, 0.3, 0.8)))


def part_a(repeats: int) -> None:
    rng = np.random.default_rng(0)
    ref = gaussian(10**6)
    rows = []
    for n in (1000, 10**4, 10**5):
        x = rng.normal(0.3, 0.8, n)
        w_ref = M.wasserstein(ref, x, 2)
        for cells in (200, 1000, 5000):
            law = gaussian(cells)
            mid = 0.5 * (law.edges[1:] + law.edges[:-1])
            t_ex = median_time(lambda: M.wasserstein(law, x, 2), repeats)
            t_pot = median_time(lambda: ot.wasserstein_1d(x, mid, None, law.weights, p=2), repeats)
            w_ex = M.wasserstein(law, x, 2)
            w_pot = float(ot.wasserstein_1d(x, mid, None, law.weights, p=2)) ** 0.5
            rows.append([n, cells, f"{t_ex * 1e3:.2f}", f"{t_pot * 1e3:.2f}", f"{t_pot / t_ex:.2f}",
                         f"{abs(w_ex - w_ref):.1e}", f"{abs(w_pot - w_ref):.1e}"])
    print("a. grid density vs particles, W2 (ms; error against a 1e6-cell reference)")
    print(table(["N", "cells", "exact ms", "POT atoms ms", "POT/exact", "exact err", "atoms err"], rows))


def part_b(repeats: int) -> None:
    rng = np.random.default_rng(1)
    rows = []
    for n in (1000, 10**4, 10**5):
        x, y = rng.normal(size=n), rng.normal(0.1, 1.2, size=n)
        t_ex = median_time(lambda: M.wasserstein_samples(x, y, 1), repeats)
        t_sp = median_time(lambda: st.wasserstein_distance(x, y), repeats)
        diff = abs(M.wasserstein_samples(x, y, 1) - st.wasserstein_distance(x, y))
        rows.append([n, f"{t_ex * 1e3:.2f}", f"{t_sp * 1e3:.2f}", f"{t_sp / t_ex:.2f}", f"{diff:.1e}"])
    print("\nb. sample vs sample, W1 (ms)")
    print(table(["N", "ours ms", "scipy ms", "scipy/ours", "|difference|"], rows))


def part_c(repeats: int) -> None:
    rng = np.random.default_rng(2)
    rows = []
    for n in (1000, 10**4):
        z = rng.random(n)
        law = M.Law1D(np.linspace(0.0, 1.0, 401), 1.0 + 0.5 * np.cos(2 * np.pi * np.linspace(0, 1, 400)))
        t_ex = median_time(lambda: M.wasserstein_circle_w1(law, z), repeats)
        t_pot = median_time(lambda: M.wasserstein_circle(law, z, p=1, refine=16), repeats)
        diff = abs(M.wasserstein_circle_w1(law, z) - M.wasserstein_circle(law, z, p=1, refine=16))
        rows.append([n, f"{t_ex * 1e3:.2f}", f"{t_pot * 1e3:.2f}", f"{t_pot / t_ex:.2f}", f"{diff:.1e}"])
    print("\nc. circle W1, 400 cells (ms): exact CDF formula vs POT with 16 atoms a cell")
    print(table(["N", "exact ms", "POT ms", "POT/exact", "|difference|"], rows))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--parts", default="abc")
    args = ap.parse_args()
    for p in args.parts:
        {"a": part_a, "b": part_b, "c": part_c}[p](args.repeats)
