"""The Bernoulli function of the sg flux: the inline, vectorised form of
``ddsolve.schemes.fv.bernoulli`` against the C library's ``expm1``, side by side in one run.

For M faces of the Curie–Weiss flagship's potential (β = 3 on [−3, 3]: arguments up to
|x| ≈ 9 on 96 cells) the face coefficients a_L = cB(x), a_R = −c(B(x) + x) are computed
in a compiled loop

* with ``x / math.expm1(x)`` (a library call per face: the kernel before),
* with the inline ``bernoulli`` (no call, vectorised by LLVM),

and, as the NumPy baseline, by the array expression ``x / np.expm1(x)``. Each time is the
median over repeats of a compiled loop of 2000 evaluations; the last column is the ratio
to the library loop. Also printed: the largest difference from the library, in ulps.

Run: ``python benchmarks/bench_bernoulli.py [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import math
import time

import numba as nb
import numpy as np
from _harness import table  # noqa: E402

from ddsolve.schemes.fv.bernoulli import bernoulli

INNER = 2000


@nb.njit(error_model="numpy", inline="always")
def _library(x):
    if abs(x) < 1e-2:
        x2 = x * x
        return 1.0 - 0.5 * x + x2 * (1.0 / 12.0) - x2 * x2 * (1.0 / 720.0)
    return x / math.expm1(x)


def _coefficient_loop(bern):
    """The face-coefficient loop with ``bern`` for B (a direct call, so numba inlines it)."""
    @nb.njit(error_model="numpy")
    def loop(q, c, aL, aR, n):
        for _ in range(n):
            for f in range(q.size - 1):
                x = q[f + 1] - q[f]
                B = bern(x)
                aL[f] = c * B
                aR[f] = -c * (B + x)
    return loop


_loop_library, _loop_inline = _coefficient_loop(_library), _coefficient_loop(bernoulli)


def _numpy(q, c, aL, aR, n):
    for _ in range(n):
        x = np.diff(q)
        B = x / np.expm1(x)
        small = np.abs(x) < 1e-2
        B[small] = 1.0 - 0.5 * x[small] + x[small] ** 2 / 12.0 - x[small] ** 4 / 720.0
        aL[:-1] = c * B
        aR[:-1] = -c * (B + x)


def _median(fn, repeats, n):
    fn(2)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(n)
        ts.append((time.perf_counter() - t0) / n)
    return float(np.median(ts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    rows = []
    for M in (96, 1000, 10000):
        xc = np.linspace(-3.0, 3.0, M + 1)
        xc = 0.5 * (xc[1:] + xc[:-1])
        q = 3.0 * (0.25 * xc**4 - 0.5 * xc**2 - 0.1 * xc)  # beta (V - mean x), the flagship's
        aL, aR, bL, bR = (np.zeros(M) for _ in range(4))
        _loop_library(q, 1.0, aL, aR, 1)
        _loop_inline(q, 1.0, bL, bR, 1)
        ulps = np.max(np.abs(bL[:-1] - aL[:-1]) / (np.finfo(float).eps * np.abs(aL[:-1])))
        n = max(1, INNER * 96 // M)
        t_lib = _median(lambda k: _loop_library(q, 1.0, aL, aR, k), args.repeats, n)
        t_inl = _median(lambda k: _loop_inline(q, 1.0, bL, bR, k), args.repeats, n)
        t_np = _median(lambda k: _numpy(q, 1.0, aL, aR, k), args.repeats, max(1, n // 10))
        for name, t in (("compiled loop, math.expm1 (before)", t_lib), ("numpy x / np.expm1(x)", t_np),
                        ("compiled loop, inline bernoulli", t_inl)):
            rows.append([M, name, f"{t * 1e6:.3f}", f"{t / (M - 1) * 1e9:.2f}", f"{t_lib / t:.2f}",
                         f"{ulps:.2f}" if "inline" in name else ""])
    print(table(["faces+1", "method", "us / evaluation", "ns / face", "speed-up vs library loop",
                 "max ulps vs library"], rows, [">", "<", ">", ">", ">", ">"]))


if __name__ == "__main__":
    main()
