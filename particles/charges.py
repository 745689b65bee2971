r"""Radial-basis-function networks with charges: Rotskoff & Vanden-Eijnden (RVE).

G. M. Rotskoff and E. Vanden-Eijnden, *Trainability and accuracy of artificial neural
networks: an interacting particle system approach*, arXiv:1805.00915, CPAM 75 (2022).

Network and target
------------------
A unit is a *particle* :math:`y_i\in\mathbb{R}^d` carrying a *charge* :math:`c_i\in\mathbb{R}`,

.. math:: f_n(x) = \frac1n\sum_{i=1}^n c_i\,\varphi(x, y_i),\qquad
          \varphi(x, y) = e^{-\frac12\kappa|x-y|^2},

with data :math:`x` uniform on the sphere :math:`S^{d-1}(\sqrt d)` (:math:`|x|^2 = d`);
the :math:`y_i` are free in :math:`\mathbb{R}^d` (not projected on the sphere). The target
is the spherical 3-spin function (:class:`ThreeSpinTarget`)
:math:`f(x) = d^{-1}\sum_{pqr} a_{pqr}x_px_qx_r`, :math:`a_{pqr}\sim N(0,1)` i.i.d. for a
fixed seed.

**Width.** ``kappa`` defaults to :math:`\kappa = 5/d` (the seeds' ":math:`\alpha = 5/d`").
For :math:`|y| = \sqrt d`, :math:`\varphi = e^{-\kappa d(1-\cos\theta)} = e^{-5(1-\cos\theta)}`
with :math:`\theta` the angle between :math:`x` and :math:`y`: the angular width of a unit is
the same in every dimension.

Loss, potentials and the particle ODE
-------------------------------------
.. math:: \ell = \tfrac12\mathbb{E}_x|f - f_n|^2
          = C_f - \frac1n\sum_i c_iF(y_i) + \frac1{2n^2}\sum_{ij}c_ic_jK(y_i, y_j),

:math:`C_f = \frac12\mathbb{E}f^2`, :math:`F(y) = \mathbb{E}[f(x)\varphi(x,y)]`,
:math:`K(y,y') = \mathbb{E}[\varphi(x,y)\varphi(x,y')]`. All three are **closed forms**
here (see below), so ``method="gradient-flow"`` integrates the exact population gradient
flow in RVE's time scaling (forward Euler, step ``dt``):

.. math:: \dot y_i = -n\nabla_{y_i}\ell = c_i\nabla F(y_i) - \frac1n\sum_j c_ic_j\nabla_1K(y_i,y_j),
          \qquad
          \dot c_i = -\gamma\,n\,\partial_{c_i}\ell
                   = \gamma\Big(F(y_i) - \frac1n\sum_j c_jK(y_i,y_j)\Big),

:math:`\gamma` = ``charge_rate`` (1 in RVE: :math:`y` and :math:`c` on the same time
scale; the :math:`j = i` terms are included). The empirical measure
:math:`\mu_n = \frac1n\sum_i\delta_{(y_i,c_i)}` then solves, weakly and for every :math:`n`,

.. math:: \partial_t\mu = \nabla_y\!\cdot\Big(\mu\,\nabla_y\frac{\delta\mathcal E}{\delta\mu}\Big)
          + \gamma\,\partial_c\Big(\mu\,\partial_c\frac{\delta\mathcal E}{\delta\mu}\Big),
          \qquad
          \frac{\delta\mathcal E}{\delta\mu}(y,c) = -cF(y) + c\!\int\! c'K(y,y')\,\mu(dy'\,dc'),

the mean-field PDE, whose energy :math:`\mathcal E[\mu] = \frac12\mathbb{E}_x|f - \int
c\varphi(\cdot,y)\,d\mu|^2` is ``loss_exact``. ``quadrature=P`` replaces :math:`\mathbb{E}_x`
by the mean over a fixed sample of :math:`P` points (full-batch gradient descent on a fixed
training set).

``method="sgd"`` draws a fresh minibatch :math:`x_1..x_P` (:math:`P` = ``batch``) each step
and, with :math:`r_p = f(x_p) - f_n(x_p)` (all updates from the old state),

.. math:: y_i \leftarrow y_i + \Delta t\,c_i\frac1P\sum_p r_p\nabla_y\varphi(x_p, y_i),\qquad
          c_i \leftarrow c_i + \gamma\,\Delta t\,\frac1P\sum_p r_p\varphi(x_p, y_i),

i.e. :math:`-n\Delta t` times the gradient of :math:`\ell_P = \frac1{2P}\sum_p r_p^2`: the
same drift as the gradient flow, plus noise of temperature :math:`\theta = \Delta t/P`
(RVE; they take :math:`P\sim n^2` to keep the noise below the :math:`O(n^{-1})` error).

Closed forms
------------
With :math:`\nu = d/2 - 1` and :math:`G_\mu(a) = \Gamma(\mu+1)(2/a)^\mu I_\mu(a) =
{}_0F_1(;\mu+1;a^2/4)`, :math:`\mathbb{E}\,e^{s\cdot x} = G_\nu(\sqrt d|s|)` on
:math:`S^{d-1}(\sqrt d)`, hence (:math:`a = \kappa\sqrt d|y+y'|`)

.. math:: K(y,y') = e^{-\frac12\kappa(2d+|y|^2+|y'|^2)}\,G_\nu(a),\qquad
          \nabla_yK = \kappa\,e^{-\frac12\kappa(2d+|y|^2+|y'|^2)}
                      \big[-yG_\nu(a) + \kappa(y+y')G_{\nu+1}(a)\big].

:math:`F` follows from three derivatives of the same generating function in :math:`s =
\kappa y` (:math:`S` = symmetrised :math:`a`, :math:`v_r = \sum_pS_{ppr}`, :math:`a =
\kappa\sqrt d|y|`):

.. math:: F(y) = e^{-\frac12\kappa(d+|y|^2)}\Big[\frac{d\,S(s,s,s)}{(d+2)(d+4)}G_{\nu+3}(a)
          + \frac{3\,v\cdot s}{d+2}G_{\nu+2}(a)\Big],

and :math:`C_f = \frac12\,\frac{6|S|^2 + 9|v|^2}{(d+2)(d+4)}` (sixth moments of the
sphere). :math:`G_\mu` is evaluated as :math:`e^{-a}G_\mu(a)` with ``scipy.special.ive``
(series for small :math:`a`); the :math:`n^2` kernel values use a cubic Hermite table
of it (relative error ~1e-12, :class:`SphereMGFTable`) read in a numba loop.

State and diagnostics
---------------------
``state.x`` has shape ``(n, d+1)``: rows :math:`(y_i, c_i)`. :meth:`RBFCharges.coordinates`
returns :math:`(|y_i|, c_i)` (names ``("r", "c")``: whether units leave the data sphere
:math:`r = \sqrt d`, and the charges); :meth:`RBFCharges.vectors` the full state.
:meth:`RBFCharges.diagnostics` gives ``loss`` (:math:`\ell` estimated on a fixed held-out
sample of ``holdout`` points), ``loss_exact`` (closed form) and ``energy`` (=
``loss_exact``, the Lyapunov function of the gradient flow).
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
from scipy.special import gammaln, ive

from ddsolve.schema import NON_NEGATIVE, POSITIVE, Integer, check_argument

from .base import Dynamics, ParticleFailure, ParticleState

__all__ = ["ThreeSpinTarget", "RBFCharges", "SphereMGFTable", "sphere_mgf", "sample_sphere",
           "CHARGE_METHODS"]

CHARGE_METHODS = ("gradient-flow", "sgd")
Y_INITS = ("sphere", "gaussian")


# ----------------------------------------------------------------------------- helpers
def _rng(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def sample_sphere(n: int, d: int, rng: Any) -> np.ndarray:
    """``n`` points uniform on :math:`S^{d-1}(\\sqrt d)`, shape ``(n, d)``."""
    g = _rng(rng).standard_normal((n, d))
    return g * (math.sqrt(d) / np.linalg.norm(g, axis=1, keepdims=True))


def sphere_mgf(mu: float, a: np.ndarray | float) -> np.ndarray:
    r""":math:`e^{-a}G_\mu(a)`, :math:`G_\mu(a) = \Gamma(\mu+1)(2/a)^\mu I_\mu(a) =
    {}_0F_1(;\mu+1;a^2/4)` (:math:`a\ge 0`, :math:`\mu > -1`).

    :math:`G_{d/2-1}(\sqrt d|s|) = \mathbb{E}\,e^{s\cdot x}` for :math:`x` uniform on
    :math:`S^{d-1}(\sqrt d)`. Values lie in :math:`(0, 1]`.
    """
    a = np.asarray(a, dtype=float)
    out = np.empty_like(a)
    small = a * a <= 4.0 * (mu + 1.0) + 4.0       # series terms decrease from the start
    if np.any(small):
        z = 0.25 * a[small] ** 2
        term = np.ones_like(z)
        total = np.ones_like(z)
        for k in range(1, 60):
            term = term * z / (k * (mu + k))
            total += term
        out[small] = total * np.exp(-a[small])
    big = ~small
    if np.any(big):
        ab = a[big]
        out[big] = np.exp(gammaln(mu + 1.0) + mu * np.log(2.0 / ab)) * ive(mu, ab)
    return out


class SphereMGFTable:
    r"""Cubic Hermite table of :math:`g_\mu(a) = e^{-a}G_\mu(a)` on :math:`[0, a_{max}]`
    (step ``h``; slopes :math:`g_\mu' = a\,g_{\mu+1}/(2(\mu+1)) - g_\mu`). Grows itself when
    asked beyond :math:`a_{max}`. Error :math:`\lesssim h^4\max|g^{(4)}|/384`."""

    def __init__(self, mu: float, a_max: float = 16.0, h: float = 1.0 / 256) -> None:
        self.mu, self.h = float(mu), float(h)
        self._build(a_max)

    def _build(self, a_max: float) -> None:
        m = int(math.ceil(a_max / self.h)) + 2
        nodes = self.h * np.arange(m)
        self.a_max = nodes[-2]
        self.val = sphere_mgf(self.mu, nodes)
        self.slope = nodes * sphere_mgf(self.mu + 1, nodes) / (2 * (self.mu + 1)) - self.val

    def ensure(self, top: float) -> None:
        """Extend the table so that it covers ``[0, top]``."""
        if top > self.a_max:
            self._build(max(2 * self.a_max, 1.25 * top))

    def __call__(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=float)
        self.ensure(float(a.max()) if a.size else 0.0)
        u = a / self.h
        k = np.minimum(u.astype(np.int64), self.val.size - 2)
        t = u - k
        t2, t3 = t * t, t * t * t
        h00 = 2 * t3 - 3 * t2 + 1
        h10 = t3 - 2 * t2 + t
        h01 = -2 * t3 + 3 * t2
        h11 = t3 - t2
        return (h00 * self.val[k] + h01 * self.val[k + 1]
                + self.h * (h10 * self.slope[k] + h11 * self.slope[k + 1]))


@nb.njit(cache=True, inline="always", fastmath=True)
def _hermite(u, val, slope, h):
    k = min(int(u), val.size - 2)
    t = u - k
    t2 = t * t
    t3 = t2 * t
    return ((2 * t3 - 3 * t2 + 1) * val[k] + (3 * t2 - 2 * t3) * val[k + 1]
            + h * ((t3 - 2 * t2 + t) * slope[k] + (t3 - t2) * slope[k + 1]))


@nb.njit(cache=True, fastmath=True)
def _pair_kernels(y, y2, n1, n2, kappa, d, h, val0, slope0, val1, slope1, symmetric):
    """A_ij = pref_ij g_nu(a_ij), B_ij = pref_ij g_{nu+1}(a_ij), a_ij = kappa sqrt(d)|y_i+y2_j|,
    pref_ij = exp(-kappa(2d + |y_i|^2 + |y2_j|^2)/2 + a_ij) (tables with step h); ``symmetric``:
    y2 is y, fill from the upper triangle."""
    m, m2, D = y.shape[0], y2.shape[0], y.shape[1]
    A = np.empty((m, m2))
    B = np.empty((m, m2))
    ks = kappa * np.sqrt(d)
    for i in range(m):
        for j in range(i if symmetric else 0, m2):
            s2 = 0.0
            for q in range(D):
                w = y[i, q] + y2[j, q]
                s2 += w * w
            a = ks * np.sqrt(s2)
            pref = np.exp(min(-0.5 * kappa * (2 * d + n1[i] + n2[j]) + a, 0.0))
            u = a / h
            A[i, j] = pref * _hermite(u, val0, slope0, h)
            B[i, j] = pref * _hermite(u, val1, slope1, h)
            if symmetric:
                A[j, i] = A[i, j]
                B[j, i] = B[i, j]
    return A, B


# ----------------------------------------------------------------------------- target
class ThreeSpinTarget:
    r"""Spherical 3-spin function :math:`f(x) = d^{-1}\sum_{pqr}a_{pqr}x_px_qx_r`,
    :math:`a_{pqr}\sim N(0,1)` i.i.d. drawn from ``rng`` (a Generator or a seed), data
    uniform on :math:`S^{d-1}(\sqrt d)`.

    Attributes: ``a`` (d, d, d), ``S`` its symmetrisation (same :math:`f`), ``v`` with
    :math:`v_r = \sum_p S_{ppr}`.
    """

    def __init__(self, d: int, rng: Any = 0) -> None:
        self.d = check_argument("d", d, Integer(low=1), "ThreeSpinTarget")
        self.a = _rng(rng).standard_normal((self.d,) * 3)
        a = self.a
        self.S = (a + a.transpose(0, 2, 1) + a.transpose(1, 0, 2) + a.transpose(1, 2, 0)
                  + a.transpose(2, 0, 1) + a.transpose(2, 1, 0)) / 6.0
        self.v = np.einsum("ppr->r", self.S)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """:math:`f(x)` for ``x`` of shape ``(..., d)`` (shape ``(...)``)."""
        x = np.asarray(x, dtype=float)
        if x.shape[-1] != self.d:
            raise ValueError(f"ThreeSpinTarget: x must have last axis {self.d}, got shape {x.shape}")
        return np.einsum("pqr,...p,...q,...r->...", self.a, x, x, x, optimize=True) / self.d

    def sample(self, n: int, rng: Any) -> tuple[np.ndarray, np.ndarray]:
        """``n`` data points uniform on the sphere and their labels: ``(x, f(x))``."""
        n = check_argument("n", n, Integer(low=1), "ThreeSpinTarget.sample")
        x = sample_sphere(n, self.d, rng)
        return x, self(x)

    def second_moment(self) -> float:
        r"""Exact :math:`\mathbb{E}_xf(x)^2 = (6|S|^2 + 9|v|^2)/((d+2)(d+4))`
        (its average over :math:`a` is :math:`d`)."""
        d = self.d
        return float((6 * np.sum(self.S ** 2) + 9 * np.sum(self.v ** 2)) / ((d + 2) * (d + 4)))


# ----------------------------------------------------------------------------- dynamics
class RBFCharges(Dynamics):
    r"""RVE's RBF network with charges learning a :class:`ThreeSpinTarget`
    (module docstring for the equations and scalings).

    Parameters
    ----------
    n : int
        Number of units.
    d : int
        Dimension of the data (sphere :math:`S^{d-1}(\sqrt d)`).
    kappa : float, optional
        Inverse squared width of :math:`\varphi`; default :math:`5/d`.
    dt : float
        Time step (PDE time per step, RVE's time scaling).
    method : {"gradient-flow", "sgd"}
    batch : int
        SGD minibatch size :math:`P` (fresh points every step).
    quadrature : int or None
        Gradient flow only: ``None`` = exact population gradients (closed forms), an
        integer ``P`` = mean over a fixed sample of ``P`` points (seed ``quadrature_seed``).
    charge_rate : float
        Factor :math:`\gamma` on the charge velocity (1 = RVE). Rescaling the unit,
        :math:`\varphi\to\lambda\varphi` with :math:`c\to c/\lambda`, leaves :math:`f_n`
        and the :math:`y`-dynamics unchanged and multiplies the charge rate by
        :math:`\lambda^2`, so :math:`\gamma` is the relative time scale of the charges for
        *this* normalisation of :math:`\varphi`; ``1 / mean_phi()**2`` (about 434 for
        :math:`\kappa d = 5`, :math:`d = 5`) is RVE's equal-rate dynamics for the normalised
        unit :math:`\varphi/\mathbb{E}_x\varphi`.
    y_init : {"sphere", "gaussian"}
        Initial :math:`y_i`: uniform on the sphere of radius ``y_scale`` (default
        :math:`\sqrt d`), or :math:`N(0, \text{y\_scale}^2I)` (default ``y_scale`` 1).
    c_std : float
        Initial charges :math:`c_i\sim N(0, \text{c\_std}^2)` (0: all zero).
    target_seed : int
        Seed of the 3-spin coefficients (ignored if ``target`` is given).
    target : ThreeSpinTarget, optional
    holdout, holdout_seed : int
        Size and seed of the fixed held-out sample behind the ``loss`` diagnostic.
    """

    names = ("r", "c")

    def __init__(self, n: int, d: int = 5, kappa: float | None = None, dt: float = 1e-2,
                 method: str = "gradient-flow", batch: int = 100, quadrature: int | None = None,
                 charge_rate: float = 1.0, y_init: str = "sphere", y_scale: float | None = None,
                 c_std: float = 0.0, target_seed: int = 0, target: ThreeSpinTarget | None = None,
                 holdout: int = 5000, holdout_seed: int = 20180502,
                 quadrature_seed: int = 1805) -> None:
        own = "RBFCharges"
        self.n = check_argument("n", n, Integer(low=1), own)
        self.d = check_argument("d", d, Integer(low=1), own)
        self.kappa = 5.0 / self.d if kappa is None else check_argument("kappa", kappa, POSITIVE, own)
        self.dt = check_argument("dt", dt, POSITIVE, own)
        if method not in CHARGE_METHODS:
            raise ValueError(f"{own}: method must be one of {CHARGE_METHODS}, got {method!r}")
        self.method = method
        self.batch = check_argument("batch", batch, Integer(low=1), own)
        if quadrature is not None:
            quadrature = check_argument("quadrature", quadrature, Integer(low=1), own)
            if method != "gradient-flow":
                raise ValueError(f"{own}: quadrature is only used with method='gradient-flow'")
        self.quadrature = quadrature
        self.charge_rate = check_argument("charge_rate", charge_rate, NON_NEGATIVE, own)
        if y_init not in Y_INITS:
            raise ValueError(f"{own}: y_init must be one of {Y_INITS}, got {y_init!r}")
        self.y_init = y_init
        if y_scale is None:
            y_scale = math.sqrt(self.d) if y_init == "sphere" else 1.0
        self.y_scale = check_argument("y_scale", y_scale, POSITIVE, own)
        self.c_std = check_argument("c_std", c_std, NON_NEGATIVE, own)
        self.holdout = check_argument("holdout", holdout, Integer(low=1), own)
        if target is None:
            self.target_seed = check_argument("target_seed", target_seed, Integer(low=0), own)
            target = ThreeSpinTarget(self.d, self.target_seed)
        else:
            if not isinstance(target, ThreeSpinTarget) or target.d != self.d:
                raise ValueError(f"{own}: target must be a ThreeSpinTarget with d = {self.d}")
            self.target_seed = None
        self.target = target
        self.nu = self.d / 2.0 - 1.0
        self.C_f = 0.5 * target.second_moment()
        self._table0 = SphereMGFTable(self.nu)
        self._table1 = SphereMGFTable(self.nu + 1)
        self.x_holdout, self.f_holdout = target.sample(self.holdout, np.random.default_rng(holdout_seed))
        if quadrature is not None:
            self.x_quad, self.f_quad = target.sample(quadrature, np.random.default_rng(quadrature_seed))
        self.quadrature_seed = quadrature_seed
        self.holdout_seed = holdout_seed

    # --------------------------------------------------------------- basic functions
    def mean_phi(self, r: float | None = None) -> float:
        r""":math:`\mathbb{E}_x\varphi(x, y)` for :math:`|y| = r` (default :math:`\sqrt d`)."""
        d, k = self.d, self.kappa
        r = math.sqrt(d) if r is None else float(r)
        a = k * math.sqrt(d) * r
        return float(math.exp(-0.5 * k * (r - math.sqrt(d)) ** 2) * sphere_mgf(self.nu, a))

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(y, c)`` views of a state array of shape ``(n, d+1)``."""
        return x[:, : self.d], x[:, self.d]

    def phi(self, pts: np.ndarray, y: np.ndarray) -> np.ndarray:
        r""":math:`\varphi(x_p, y_i)`, shape ``(P, n)``."""
        sq = (np.sum(pts * pts, 1)[:, None] + np.sum(y * y, 1)[None, :] - 2.0 * pts @ y.T)
        return np.exp(-0.5 * self.kappa * np.maximum(sq, 0.0))

    def network(self, x: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """:math:`f_n` of the state array ``x`` at the points ``pts`` (shape ``(P, d)``)."""
        y, c = self.split(x)
        return self.phi(pts, y) @ c / y.shape[0]

    def F(self, y: np.ndarray, grad: bool = False):
        r"""Exact :math:`F(y_i) = \mathbb{E}[f(x)\varphi(x, y_i)]` for ``y`` of shape ``(m, d)``;
        with ``grad`` also :math:`\nabla F(y_i)`, shape ``(m, d)``."""
        d, k, nu = self.d, self.kappa, self.nu
        S, v = self.target.S, self.target.v
        y = np.atleast_2d(np.asarray(y, dtype=float))
        s = k * y
        rad = np.linalg.norm(y, axis=1)
        a = k * math.sqrt(d) * rad
        pref = np.exp(-0.5 * k * (rad - math.sqrt(d)) ** 2)
        Ss = np.einsum("pqr,iq,ir->ip", S, s, s, optimize=True)
        S3 = np.sum(Ss * s, 1)
        vs = s @ v
        g2, g3 = sphere_mgf(nu + 2, a), sphere_mgf(nu + 3, a)
        c2, c3 = 3.0 / (d + 2), d / ((d + 2.0) * (d + 4.0))
        val = pref * (c3 * S3 * g3 + c2 * vs * g2)
        if not grad:
            return val
        g4 = sphere_mgf(nu + 4, a)
        c4 = d * d / ((d + 2.0) * (d + 4.0) * (d + 6.0))
        dJ = (3 * c3 * g3[:, None] * Ss + (c4 * S3 * g4)[:, None] * s + c2 * g2[:, None] * v[None, :]
              + (3 * c3 * vs * g3)[:, None] * s)
        return val, -k * y * val[:, None] + k * pref[:, None] * dJ

    def _pair(self, y: np.ndarray, y2: np.ndarray | None = None, exact: bool = False):
        """:math:`(K, \\tilde K)` with :math:`K_{ij} = p_{ij}g_\\nu(a_{ij})`,
        :math:`\\tilde K_{ij} = p_{ij}g_{\\nu+1}(a_{ij})` for all pairs, where
        :math:`p_{ij} = e^{-\\frac12\\kappa(2d+|y_i|^2+|y'_j|^2) + a_{ij}}\\le 1`."""
        d, k = self.d, self.kappa
        y = np.ascontiguousarray(y, dtype=float)
        y2 = y if y2 is None else np.ascontiguousarray(y2, dtype=float)
        n1, n2 = np.sum(y * y, 1), np.sum(y2 * y2, 1)
        if exact:
            s2 = np.maximum(n1[:, None] + n2[None, :] + 2.0 * y @ y2.T, 0.0)
            a = k * math.sqrt(d) * np.sqrt(s2)
            pref = np.exp(np.minimum(-0.5 * k * (2 * d + n1[:, None] + n2[None, :]) + a, 0.0))
            return pref * sphere_mgf(self.nu, a), pref * sphere_mgf(self.nu + 1, a)
        top = k * math.sqrt(d) * (math.sqrt(n1.max()) + math.sqrt(n2.max())) + 1.0
        t0, t1 = self._table0, self._table1
        t0.ensure(top)
        t1.ensure(top)
        return _pair_kernels(y, y2, n1, n2, k, float(d), t0.h, t0.val, t0.slope, t1.val,
                             t1.slope, y2 is y)

    def K(self, y: np.ndarray, y2: np.ndarray | None = None, exact: bool = False) -> np.ndarray:
        r""":math:`K(y_i, y'_j) = \mathbb{E}[\varphi(x,y_i)\varphi(x,y'_j)]`, shape ``(m, m')``
        (``exact``: direct Bessel evaluation instead of the table)."""
        y = np.atleast_2d(np.asarray(y, dtype=float))
        y2 = None if y2 is None else np.atleast_2d(np.asarray(y2, dtype=float))
        return self._pair(y, y2, exact)[0]

    def grad_K(self, y: np.ndarray, y2: np.ndarray, exact: bool = False) -> np.ndarray:
        r""":math:`\nabla_1K(y_i, y'_j)`, shape ``(m, m', d)``."""
        y = np.atleast_2d(np.asarray(y, dtype=float))
        y2 = np.atleast_2d(np.asarray(y2, dtype=float))
        A, B = self._pair(y, y2, exact)
        k = self.kappa
        return k * (-y[:, None, :] * A[:, :, None]
                    + k * (y[:, None, :] + y2[None, :, :]) * B[:, :, None])

    # --------------------------------------------------------------- losses and velocities
    def loss_exact(self, x: np.ndarray) -> float:
        r"""Closed-form :math:`\ell = C_f - \frac1n\sum c_iF(y_i) + \frac1{2n^2}c^\top Kc`."""
        y, c = self.split(x)
        n = y.shape[0]
        return float(self.C_f - c @ self.F(y) / n + 0.5 * c @ self.K(y) @ c / n ** 2)

    def loss_sample(self, x: np.ndarray, pts: np.ndarray, fpts: np.ndarray) -> float:
        r""":math:`\ell_P = \frac1{2P}\sum_p(f(x_p) - f_n(x_p))^2`."""
        r = fpts - self.network(x, pts)
        return float(0.5 * np.mean(r * r))

    def velocity(self, x: np.ndarray) -> np.ndarray:
        r"""Exact :math:`(\dot y_i, \dot c_i) = (-n\nabla_{y_i}\ell, -\gamma n\partial_{c_i}\ell)`,
        shape ``(n, d+1)``."""
        y, c = self.split(x)
        n, k = y.shape[0], self.kappa
        Fv, dF = self.F(y, grad=True)
        A, B = self._pair(y)
        Ac, Bc = A @ c, B @ c
        sumK = k * (-y * Ac[:, None] + k * (y * Bc[:, None] + B @ (c[:, None] * y)))
        out = np.empty_like(x)
        out[:, : self.d] = c[:, None] * (dF - sumK / n)
        out[:, self.d] = self.charge_rate * (Fv - Ac / n)
        return out

    def sample_velocity(self, x: np.ndarray, pts: np.ndarray, fpts: np.ndarray) -> np.ndarray:
        r""":math:`-n\nabla\ell_P` on the points ``pts`` with labels ``fpts`` (charge part times
        :math:`\gamma`), shape ``(n, d+1)``."""
        y, c = self.split(x)
        n, P = y.shape[0], pts.shape[0]
        Phi = self.phi(pts, y)
        r = fpts - Phi @ c / n
        W = Phi * r[:, None]
        out = np.empty_like(x)
        out[:, : self.d] = (self.kappa / P) * c[:, None] * (W.T @ pts - y * W.sum(0)[:, None])
        out[:, self.d] = self.charge_rate * (W.sum(0) / P)
        return out

    # --------------------------------------------------------------- Dynamics interface
    def initial_state(self, rng: np.random.Generator) -> ParticleState:
        rng = _rng(rng)
        if self.y_init == "sphere":
            y = sample_sphere(self.n, self.d, rng) * (self.y_scale / math.sqrt(self.d))
        else:
            y = self.y_scale * rng.standard_normal((self.n, self.d))
        c = self.c_std * rng.standard_normal(self.n)
        return ParticleState(x=np.column_stack([y, c]))

    def advance(self, state: ParticleState, steps: int, rng: np.random.Generator) -> None:
        x = state.x
        for _ in range(int(steps)):
            if self.method == "sgd":
                pts, fpts = self.target.sample(self.batch, rng)
                v = self.sample_velocity(x, pts, fpts)
            elif self.quadrature is not None:
                v = self.sample_velocity(x, self.x_quad, self.f_quad)
            else:
                v = self.velocity(x)
            new = x + self.dt * v
            if not np.all(np.isfinite(new)):
                raise ParticleFailure(f"RBFCharges: non-finite state after step {state.step + 1}",
                                      state.step * self.dt)
            x[...] = new
            state.step += 1

    def coordinates(self, state: ParticleState) -> np.ndarray:
        y, c = self.split(state.x)
        return np.column_stack([np.linalg.norm(y, axis=1), c])

    def vectors(self, state: ParticleState) -> np.ndarray:
        return state.x

    def diagnostics(self, state: ParticleState) -> dict[str, float]:
        exact = self.loss_exact(state.x)
        return {"loss": self.loss_sample(state.x, self.x_holdout, self.f_holdout),
                "loss_exact": exact, "energy": exact}

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "n": self.n, "dt": self.dt, "d": self.d,
                "kappa": self.kappa, "batch": self.batch if self.method == "sgd" else None,
                "quadrature": self.quadrature, "charge_rate": self.charge_rate,
                "y_init": self.y_init, "y_scale": self.y_scale, "c_std": self.c_std,
                "target_seed": self.target_seed, "holdout": self.holdout,
                "C_f": self.C_f}
