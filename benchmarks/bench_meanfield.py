#!/usr/bin/env python
r"""Interaction forces of the mean-field particle system at N = 10^4 (dense kernels).

For each kernel the force :math:`G_i = \frac1N\sum_j\nabla W(\theta_i-\theta_j)` on all
N particles is computed by

* ``pairwise`` — :mod:`particles.forces`' compiled double loop (numba, threads over i);
* baseline — plain NumPy broadcasting of ``kernel.W_gradient`` over blocks of 256 rows
  (the ``generic`` path, which is what a vectorised NumPy code would do);

and, for context, the O(N) / O(N + M log M) methods where they apply (``mean`` for the
Curie–Weiss kernel, ``mesh`` with 512 cells per axis). Printed: median wall time of
``--repeats`` calls after a warm-up, pair interactions per second (N² / time) and the
ratio baseline / pairwise.

Run ``python benchmarks/bench_meanfield.py`` (~1 min on 2 cores) or ``--n 2000`` for a
quick look.
"""

from __future__ import annotations

import argparse

import numpy as np

from ddsolve.model.kernels import AttractiveRepulsiveKernel, GaussianKernel, QuadraticKernel
from particles.forces import make_force

from _harness import median_time  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10_000, help="number of particles (default 1e4)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    n = args.n
    rng = np.random.default_rng(0)
    cases = [("gaussian, 1D", GaussianKernel(-1.0, 0.5), 1),
             ("gaussian, 2D", GaussianKernel(-1.0, 0.5), 2),
             ("|z|^2/2 - |z|, 1D", AttractiveRepulsiveKernel(2.0, 1.0), 1),
             ("curie-weiss theta|z|^2/2, 1D", QuadraticKernel(1.0), 1)]
    print(f"N = {n}: {n * n:.3g} pair interactions per force evaluation; medians of {args.repeats}")
    print(f"{'kernel':30s} {'method':9s} {'time [ms]':>10s} {'pairs/s':>10s} {'baseline/this':>14s}")
    for label, kernel, dim in cases:
        x = rng.standard_normal((n, dim))
        period = np.zeros(dim)
        base = median_time(lambda: make_force(kernel, "generic", period=period).gradient(x), args.repeats)
        rows = [("numpy", base)]
        rows.append(("pairwise", median_time(
            lambda: make_force(kernel, "pairwise", period=period).gradient(x), args.repeats)))
        if isinstance(kernel, QuadraticKernel):
            rows.append(("mean", median_time(lambda: make_force(kernel, "mean").gradient(x), args.repeats)))
        else:
            mesh = make_force(kernel, "mesh", lower=[-6.0] * dim, upper=[6.0] * dim,
                              periodic=[False] * dim, cells=512 if dim == 1 else 128)
            rows.append(("mesh", median_time(lambda: mesh.gradient(x), args.repeats)))
        for method, t in rows:
            print(f"{label:30s} {method:9s} {1e3 * t:10.2f} {n * n / t:10.3g} {base / t:14.1f}")


if __name__ == "__main__":
    main()
