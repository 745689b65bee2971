r"""Exact solutions of configs, for ``ddsolve converge`` to measure errors against.

Gaussian laws stay Gaussian under linear drift and constant diffusion. For
:math:`V(x) = (x - c)^\top A (x - c)/2`, :math:`U(x, y) = \theta|x - y|^2/2` (or
:math:`U = 0`, :math:`\theta = 0`), constant :math:`\xi` and finite :math:`\beta`, the mean
feels no interaction (:math:`\int\nabla_x U\,\rho = \theta(x - m)` averages to zero) and the
deviations feel :math:`A + \theta I`:

.. math:: m(t) = c + e^{-\xi A t}(m_0 - c), \qquad
          \dot S = -(A + \theta)S\xi - S(A + \theta)\xi + 2\xi\beta^{-1} I ,

solved in closed form by :func:`ddsolve.laws.exact.ou_moments` (the Ornstein–Uhlenbeck
moments; Gardiner, *Stochastic Methods*, 2009, §4.5). The density at ``t`` is then the exact
Gaussian's cell averages on the run's grid (the boundary is assumed far in the tails; the
mass beyond it is reported). A config that is not of this form has no exact solution here
and converge falls back to self-convergence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ddsolve.laws.exact import gaussian_2d_cell_averages, gaussian_cell_averages, ou_moments
from ddsolve.model.kernels import QuadraticKernel
from ddsolve.model.potentials import QuadraticPotential

__all__ = ["GaussianSolution", "exact_solution"]


@dataclass(frozen=True)
class GaussianSolution:
    """The exact Gaussian law at time ``t``: mean (k,), covariance (k, k)."""

    t: float
    mean: np.ndarray
    cov: np.ndarray
    description: str

    def cell_averages(self, coords) -> np.ndarray:
        if coords.ndim == 1:
            return gaussian_cell_averages(coords.axes[0].edges, float(self.mean[0]),
                                          math.sqrt(self.cov[0, 0]))
        return gaussian_2d_cell_averages(coords, self.mean, self.cov)

    def scalars(self, names) -> dict[str, float]:
        """``mean_<axis>`` and ``m2_<axis>`` (second moments about 0, as the diagnostics)."""
        out = {}
        for k, name in enumerate(names):
            out[f"mean_{name}"] = float(self.mean[k])
            out[f"m2_{name}"] = float(self.cov[k, k] + self.mean[k] ** 2)
        return out


def exact_solution(setup, t: float) -> GaussianSolution | None:
    """The exact solution of the resolved config's problem at ``t``, or None."""
    model, coords, config = setup.model, setup.coords, setup.config
    init = config.get("initial", {})
    if (coords.radial_dim is not None or any(coords.periodic) or coords.ndim > 2
            or not isinstance(model.potential, QuadraticPotential) or init.get("kind") != "gaussian"
            or math.isinf(model.beta) or not model.xi.is_constant):
        return None
    kernel = model.interaction
    if not (kernel.is_zero or isinstance(kernel, QuadraticKernel)):
        return None
    n = coords.ndim
    theta = 0.0 if kernel.is_zero else kernel.theta
    A = np.atleast_2d(model.potential._matrix(n))
    c = np.broadcast_to(model.potential.center, (n,)).astype(float)
    m0 = np.broadcast_to(np.asarray(init.get("mean", 0.0), float), (n,))
    if init.get("cov") is not None:
        S0 = np.atleast_2d(np.asarray(init["cov"], float))
    else:
        sd = np.broadcast_to(np.asarray(init.get("std", 1.0), float), (n,))
        S0 = np.diag(sd**2)
    tau = model.xi(0.0) * t
    m, _ = ou_moments(A, m0 - c, S0, tau, model.beta)
    _, S = ou_moments(A + theta * np.eye(n), m0, S0, tau, model.beta)
    what = "Ornstein-Uhlenbeck" if theta == 0 else "quadratic Curie-Weiss"
    return GaussianSolution(float(t), m + c, S, f"exact Gaussian ({what}) at t = {t:g}")
