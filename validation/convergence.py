r"""Grid-convergence studies of the finite-volume solver against exact solutions.

Each *case* is a function ``error(cells) -> (h, error)`` that solves one problem with a
known solution (derivations in :mod:`ddsolve.laws.exact`) on a grid with ``cells`` cells per
axis and returns the mesh size and an error measure. :func:`grid_study` runs a case on a
sequence of grids and reports the observed orders
:math:`p_k = \log(e_k/e_{k+1})/\log(h_k/h_{k+1})`.

Run ``python -m validation.convergence`` for the table of all cases (``--fine`` adds a
finer grid to each).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ddsolve import GridModel, Model, cartesian, evolve, radial
from ddsolve.laws.exact import (
    chi_cell_averages,
    curie_weiss_moments,
    gaussian_2d_cell_averages,
    gaussian_cell_averages,
    ou_moments,
    radial_ou_scale,
)
from ddsolve.model.kernels import QuadraticKernel
from ddsolve.model.potentials import ExpressionPotential, QuadraticPotential
from ddsolve.orders import observed_orders

__all__ = ["observed_orders", "l1_distance", "StudyResult", "grid_study", "CASES", "Case"]


def l1_distance(coords, a: np.ndarray, b: np.ndarray) -> float:
    """:math:`\\sum_i |a_i - b_i|\\,|C|`."""
    return float(np.sum(np.abs(a - b)) * coords.cell_volume)


@dataclass
class StudyResult:
    name: str
    cells: list[int]
    hs: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def orders(self) -> np.ndarray:
        return observed_orders(self.hs, self.errors)

    def rows(self) -> list[str]:
        out = []
        orders = [np.nan] + list(self.orders)
        for M, h, e, p, s in zip(self.cells, self.hs, self.errors, orders, self.seconds):
            out.append(f"{self.name:<34} {M:>6} {h:>9.4g} {e:>11.3e} {p:>6.2f} {s:>7.2f}")
        return out


def grid_study(name: str, case: Callable[[int], tuple[float, float]],
               cells: Sequence[int]) -> StudyResult:
    """Run ``case`` on each grid size and collect errors and timings."""
    res = StudyResult(name, list(cells))
    for M in cells:
        t0 = time.perf_counter()
        h, err = case(M)
        res.seconds.append(time.perf_counter() - t0)
        res.hs.append(h)
        res.errors.append(err)
    return res


# --- cases -------------------------------------------------------------------------------

def ou_1d(M: int, T: float = 1.0, beta: float = 1.0) -> tuple[float, float]:
    """1D OU, V = x^2/2 on [-6, 6], from N(1, 0.5^2): L1 error vs the exact Gaussian."""
    c = cartesian([-6, 6], M)
    e = c.axes[0].edges
    gm = GridModel(Model(potential=QuadraticPotential(1.0), beta=beta), c)
    rho, _ = evolve(gm, gaussian_cell_averages(e, 1.0, 0.5), T)
    m, S = ou_moments(1.0, [1.0], [[0.25]], T, beta)
    return 12.0 / M, l1_distance(c, rho, gaussian_cell_averages(e, m[0], np.sqrt(S[0, 0])))


def ou_2d_nondiagonal(M: int) -> tuple[float, float]:
    """2D OU with A = [[1, .6], [.6, 2]], beta = 2, to t = 0.5: L1 error vs the exact
    Gaussian with rotating covariance."""
    A = np.array([[1.0, 0.6], [0.6, 2.0]])
    m0, S0 = np.array([1.0, -0.5]), np.array([[0.3, 0.05], [0.05, 0.2]])
    T, beta = 0.5, 2.0
    c = cartesian([[-4, 4], [-4, 4]], [M, M])
    gm = GridModel(Model(potential=QuadraticPotential(A), beta=beta, ndim=2), c)
    rho, _ = evolve(gm, gaussian_2d_cell_averages(c, m0, S0), T)
    m, S = ou_moments(A, m0, S0, T, beta)
    return 8.0 / M, l1_distance(c, rho, gaussian_2d_cell_averages(c, m, S))


def radial_ou(d: int, R: float = 7.0) -> Callable[[int], tuple[float, float]]:
    """Radial OU in R^d, V = r^2/2 on [0, R], from N(0, 0.25 I_d), to t = 1: L1 error vs
    the exact s_t chi_d law."""

    def case(M: int) -> tuple[float, float]:
        s0, T = 0.5, 1.0
        c = radial(d, R, M)
        gm = GridModel(Model(potential=ExpressionPotential("r**2/2", names=["r"]), beta=1.0,
                             radial_dim=d), c)
        e = c.axes[0].edges
        rho, _ = evolve(gm, chi_cell_averages(e, d, s0), T)
        return R / M, l1_distance(c, rho, chi_cell_averages(e, d, radial_ou_scale(s0, T)))

    return case


def curie_weiss_variance(M: int) -> tuple[float, float]:
    """Quadratic Curie-Weiss (a = 1, theta = 2, beta = 2) from a skewed two-bump law, to
    t = 0.5: error of the variance vs its closed ODE."""
    a, theta, beta, T = 1.0, 2.0, 2.0, 0.5
    w, mus, sds = np.array([0.7, 0.3]), np.array([-1.0, 1.5]), np.array([0.4, 0.3])
    m0 = float(w @ mus)
    v0 = float(w @ (sds**2 + mus**2)) - m0**2
    _, v_ex = curie_weiss_moments(m0, v0, T, a, theta, beta)
    c = cartesian([-6, 6], M)
    e = c.axes[0].edges
    gm = GridModel(Model(potential=QuadraticPotential(a), interaction=QuadraticKernel(theta),
                         beta=beta), c)
    rho0 = sum(wk * gaussian_cell_averages(e, mk, sk) for wk, mk, sk in zip(w, mus, sds))
    rho, _ = evolve(gm, rho0, T)
    mom = gm.moments(rho)
    return 12.0 / M, abs(mom["m2_x"] - mom["mean_x"] ** 2 - v_ex)


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[int], tuple[float, float]]
    cells: tuple[int, ...]
    min_order: float
    max_error: float  # bound on the finest grid's error


CASES: dict[str, Case] = {
    "ou-1d": Case("OU 1D (L1)", ou_1d, (50, 100, 200), 1.9, 4e-4),
    "ou-2d-nondiagonal": Case("OU 2D non-diagonal A (L1)", ou_2d_nondiagonal, (40, 80, 160), 1.9, 2e-3),
    "radial-ou-d3": Case("radial OU d=3 (L1)", radial_ou(3), (80, 160, 320), 1.9, 1e-4),
    "radial-ou-d10": Case("radial OU d=10 (L1)", radial_ou(10), (80, 160, 320), 1.9, 1e-4),
    "radial-ou-d320": Case("radial OU d=320 (L1)", radial_ou(320, 30.0), (400, 800, 1600), 1.9, 2e-3),
    "curie-weiss-variance": Case("Curie-Weiss variance (abs)", curie_weiss_variance,
                                 (120, 240, 480), 1.9, 1e-4),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fine", action="store_true", help="add one finer grid to each case")
    args = parser.parse_args(argv)
    print(f"{'case':<34} {'cells':>6} {'h':>9} {'error':>11} {'order':>6} {'sec':>7}")
    for case in CASES.values():
        cells = case.cells + ((2 * case.cells[-1],) if args.fine else ())
        for row in grid_study(case.name, case.run, cells).rows():
            print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
