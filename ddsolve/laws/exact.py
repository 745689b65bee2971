r"""Exact solutions: the initial laws of runs (Gaussian and chi cell averages) and the
references of the tests, benchmarks and validation.

Each function states its derivation; all return *cell averages* on a grid so errors
measure the scheme, not the sampling.

* Linear Fokker–Planck with quadratic potential :math:`V = \tfrac12 x^\top A x`:
  :math:`\partial_t\rho = \nabla\cdot(\rho A x) + \beta^{-1}\Delta\rho`. Gaussian data stay
  Gaussian with :math:`\dot m = -Am` and :math:`\dot\Sigma = -A\Sigma - \Sigma A + 2\beta^{-1}I`
  (moments of the Ornstein–Uhlenbeck SDE :math:`dX = -AX\,dt + \sqrt{2/\beta}\,dB`). With
  :math:`A = Q\Lambda Q^\top`, in the eigenbasis
  :math:`\tilde\Sigma_{ij}(t) = e^{-(\lambda_i+\lambda_j)t}\tilde\Sigma_{ij}(0)
  + \frac{2\beta^{-1}\delta_{ij}}{2\lambda_i}(1-e^{-2\lambda_i t})`.
* Radial Ornstein–Uhlenbeck in :math:`\mathbb{R}^d`, :math:`V = a|\theta|^2/2`: from
  :math:`\theta_0\sim N(0, s_0^2 I_d)`, :math:`\theta_t\sim N(0, s_t^2 I_d)` with
  :math:`s_t^2 = s_0^2 e^{-2at} + (1-e^{-2at})/(a\beta)`, so :math:`r=|\theta_t|` is
  :math:`s_t\chi_d`.
* Quadratic Curie–Weiss, :math:`V = a x^2/2`, :math:`U = \theta(x-y)^2/2` in 1D: here
  :math:`\Psi = a x^2/2 + \theta(x^2 - 2xm_1 + m_2)/2`, so :math:`\partial_x\Psi
  = (a+\theta)x - \theta m_1` and for *any* initial law
  :math:`\dot m_1 = -a m_1` and :math:`\dot v = -2(a+\theta)v + 2\beta^{-1}` for the
  variance :math:`v` (Dawson 1983; Carrillo et al., ARMA 2020, for the torus case).
* Noisy SGD for a ReLU network :math:`\sigma_*(x;w) = (\langle w,x\rangle)_+` on the isotropic
  Gaussians of Mei–Montanari–Nguyen (:func:`relu_noisy_stationary`): :math:`g(A) =
  A/\sqrt{2\pi}` gives :math:`V(r) = -a_0r` with :math:`a_0 = \Delta/\sqrt{2\pi}`, and the
  arc-cosine kernel gives :math:`\bar u(r,r') = b_0rr'` with :math:`b_0 = (1+\Delta^2)
  \bar\kappa_d` (:func:`ddsolve.networks.reduction.arccos_kernel_mean`). So :math:`\Psi[\rho](r)
  = \lambda r` is *linear* with :math:`\lambda = b_0\bar r - a_0`, :math:`\bar r = \int
  r\rho`, and a stationary state :math:`\rho\propto r^{d-1}e^{-\beta\Psi}` is the Gamma law
  of shape :math:`d` and rate :math:`\beta\lambda`. Self-consistency :math:`\bar r =
  d/(\beta\lambda)` is the quadratic :math:`\beta b_0\bar r^2 - \beta a_0\bar r - d = 0`
  with the single positive root :math:`\bar r = (a_0 + \sqrt{a_0^2 + 4b_0d/\beta})/(2b_0)`
  (unique: :math:`U` is positive semi-definite, so :math:`F` is strictly convex).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammainc, gammaincc, gammaln, log_ndtr

__all__ = [
    "log_normal_mass",
    "gaussian_cell_averages",
    "chi_log_pdf",
    "chi_mean",
    "ou_moments",
    "gaussian_2d_cell_averages",
    "chi_cell_averages",
    "chi_density",
    "radial_ou_scale",
    "curie_weiss_moments",
]


def log_normal_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r""":math:`\log(\Phi(b) - \Phi(a))` for :math:`a < b`, accurate in both tails."""
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    flip = a > 0  # use the symmetry Phi(b) - Phi(a) = Phi(-a) - Phi(-b) on the right
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    lhi = log_ndtr(hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = lhi + np.log(-np.expm1(log_ndtr(lo) - lhi))
    # a cell so far in the tail that Phi(b) underflows has mass 0 (not -inf - -inf = nan)
    return np.where(lhi == -np.inf, -np.inf, out)


def gaussian_cell_averages(edges: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Cell averages of the N(mean, std²) density on cells with the given edges (normal
    CDF differences in logs, so no tail cell underflows by cancellation)."""
    e = (np.asarray(edges, float) - mean) / std
    return np.exp(log_normal_mass(e[:-1], e[1:])) / np.diff(edges)


def ou_moments(A, m0, S0, t: float, beta: float):
    """Mean and covariance at time t of the linear Fokker–Planck / OU flow (module doc)."""
    A = np.atleast_2d(np.asarray(A, float))
    lam, Q = np.linalg.eigh(A)
    m = Q @ (np.exp(-lam * t) * (Q.T @ np.asarray(m0, float)))
    St = Q.T @ np.atleast_2d(np.asarray(S0, float)) @ Q
    decay = np.exp(-(lam[:, None] + lam[None, :]) * t)
    St = decay * St + np.diag((1.0 - np.exp(-2 * lam * t)) / (beta * lam))
    return m, Q @ St @ Q.T


def gaussian_2d_cell_averages(coords, mean, cov, order: int = 3) -> np.ndarray:
    """Cell averages of a 2D Gaussian density, by Gauss–Legendre quadrature."""
    mean = np.asarray(mean, float)
    P = np.linalg.inv(cov)
    norm = 1.0 / (2 * np.pi * np.sqrt(np.linalg.det(cov)))

    def dens(x):
        z = x - mean
        return norm * np.exp(-0.5 * np.einsum("...i,ij,...j->...", z, P, z))

    return coords.cell_average(dens, order)


def chi_log_pdf(r: np.ndarray, dim: int, std: float) -> np.ndarray:
    r"""Log density of :math:`r = |\theta|` for :math:`\theta \sim N(0, s^2 I_d)`:

    .. math:: \log p(r) = (d-1)\log r - \frac{r^2}{2s^2} - (\tfrac d2 - 1)\log 2
              - \log\Gamma(\tfrac d2) - d\log s.
    """
    r = np.asarray(r, dtype=float)
    d, s = float(dim), float(std)
    log_norm = (d / 2 - 1) * math.log(2.0) + gammaln(d / 2) + d * math.log(s)
    s2 = np.float64(s) ** 2 if s < 1e150 else np.inf  # a float's s**2 would raise OverflowError
    with np.errstate(divide="ignore"):
        return (d - 1) * np.log(r) - r**2 / (2 * s2) - log_norm


def chi_mean(dim: int, std: float) -> float:
    r""":math:`E|\theta| = s\sqrt2\,\Gamma(\frac{d+1}2)/\Gamma(\frac d2)`."""
    return float(std * math.sqrt(2.0) * math.exp(gammaln((dim + 1) / 2) - gammaln(dim / 2)))


def chi_density(r: np.ndarray, d: int, scale: float) -> np.ndarray:
    r"""Density of :math:`s\chi_d`, i.e. of :math:`|\theta|` for :math:`\theta\sim N(0,s^2I_d)`."""
    return np.exp(chi_log_pdf(r, d, scale))


def chi_cell_averages(edges: np.ndarray, d: int, scale: float) -> np.ndarray:
    """Exact cell averages of the :math:`s\\chi_d` density: :math:`r^2/(2s^2)` is
    Gamma(d/2), so cell masses are differences of regularised incomplete gamma functions
    (lower tail below the mode, upper tail above, to avoid cancellation)."""
    x = np.asarray(edges, float) ** 2 / (2 * scale**2)
    lo, up = gammainc(d / 2, x), gammaincc(d / 2, x)
    mode = max(d / 2 - 1, 0.0)
    mass = np.where(x[1:] <= mode, lo[1:] - lo[:-1], up[:-1] - up[1:])
    return mass / np.diff(edges)


def radial_ou_scale(s0: float, t: float, a: float = 1.0, beta: float = 1.0) -> float:
    """:math:`s_t` for the radial OU flow (module doc)."""
    return float(np.sqrt(s0**2 * np.exp(-2 * a * t) + (1 - np.exp(-2 * a * t)) / (a * beta)))


def curie_weiss_moments(m0: float, v0: float, t: float, a: float, theta: float, beta: float):
    """Mean and variance of quadratic Curie–Weiss dynamics from any initial law."""
    k = a + theta
    m = m0 * np.exp(-a * t)
    v = v0 * np.exp(-2 * k * t) + (1 - np.exp(-2 * k * t)) / (beta * k)
    return float(m), float(v)


def relu_noisy_stationary(dim: int, delta: float, beta: float) -> dict[str, float]:
    r"""The stationary radial law of noisy SGD for a ReLU network on isotropic Gaussians
    (module doc): ``{"a0", "b0", "mean", "shape", "rate"}`` with the Gamma law
    :math:`p(r) = \mathrm{rate}^{d} r^{d-1}e^{-\mathrm{rate}\,r}/\Gamma(d)`, in ddsolve's
    convention :math:`\partial_t\rho = \xi\nabla\cdot(\rho\nabla(\Psi + \beta^{-1}\log(\rho/m)))`."""
    from ddsolve.networks.reduction import arccos_kernel_mean

    a0 = delta / math.sqrt(2 * math.pi)
    b0 = (1 + delta**2) * arccos_kernel_mean(dim)
    mean = (a0 + math.sqrt(a0 * a0 + 4 * b0 * dim / beta)) / (2 * b0)
    return {"a0": a0, "b0": b0, "mean": mean, "shape": float(dim), "rate": dim / mean}


def gamma_cell_averages(edges: np.ndarray, shape: float, rate: float) -> np.ndarray:
    """Exact cell averages of the Gamma(shape, rate) density (regularised incomplete
    gamma function differences)."""
    e = np.asarray(edges, dtype=float)
    return np.diff(gammainc(shape, rate * e)) / np.diff(e)
