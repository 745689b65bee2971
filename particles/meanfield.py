r"""The mean-field particle system of a :class:`ddsolve.Model`.

N particles follow the McKean–Vlasov SDE with the empirical measure in place of the law,

.. math::

    d\theta_i = -\xi(t)\,\nabla\Psi[\rho_N](\theta_i)\,dt + \sqrt{2\xi(t)/\beta}\;dB_i,
    \qquad \rho_N = \frac1N\sum_j\delta_{\theta_j},

whose law converges (propagation of chaos, Sznitman 1991) to the solution of ddsolve's PDE
:math:`\partial_t\rho = \xi\nabla\cdot(\rho\nabla(\Psi[\rho] + \beta^{-1}\log\rho))`
(:mod:`ddsolve.model.base`). The same model object drives both: :math:`\nabla V` from
``model.potential.gradient`` and the interaction force from :mod:`particles.forces`.

**Coordinates.** Cartesian axes hold one number per particle; periodic axes are wrapped
and bounded axes reflect (the PDE's zero-flux walls). A *radial* axis of dimension
:math:`d` (the PDE's law of :math:`r=|w|`, reference measure :math:`m = r^{d-1}`) is
represented in one of two ways:

``radial = "vector"``
    full vectors :math:`w_i\in\mathbb{R}^d` moved by
    :math:`-\xi\,\partial_r\Psi(|w_i|)\,w_i/|w_i|` plus isotropic noise — for a
    rotation-invariant law this is the exact dynamics of the unreduced problem, and
    :math:`r_i = |w_i|` is a radial Langevin (Bessel-type) process;
``radial = "radius"``
    the radii themselves. The SDE is :math:`dr = (-\xi\,\partial_r\Psi +
    \xi\beta^{-1}(d-1)/r)\,dt + \sqrt{2\xi/\beta}\,dB` (Itô's formula for :math:`|w|`;
    the drift :math:`(d-1)/r` is the :math:`\beta^{-1}\partial_r\log m` term of the
    PDE), but Euler–Maruyama on that singular drift overshoots from small radii. The step
    used instead is the vector step seen through its norm,
    :math:`r' = ((r - \xi\partial_r\Psi\,\Delta t + \sigma g)^2 + \sigma^2\chi^2_{d-1})^{1/2}`
    with :math:`\sigma^2 = 2\xi\Delta t/\beta`: the same law as the vector
    representation at the cost of two random numbers per particle.

**Integrators.** ``"euler-maruyama"`` (strong order ½, weak order 1) and ``"heun"``
(predictor–corrector with the same increment; second order for :math:`\beta=\infty`,
Süli & Mayers 2003, and strong order 1 for additive noise, Kloeden & Platen 1992 §11).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ddsolve.model.base import Model

from .base import Dynamics, ParticleFailure, ParticleState
from .forces import InteractionForce, make_force

__all__ = ["MeanFieldParticles", "INTEGRATORS", "RADIAL_MODES", "uniform_directions"]

INTEGRATORS = ("euler-maruyama", "heun")
RADIAL_MODES = ("vector", "radius")


def uniform_directions(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` unit vectors uniform on :math:`S^{dim-1}`."""
    g = rng.standard_normal((n, dim))
    norm = np.linalg.norm(g, axis=1, keepdims=True)
    return g / np.where(norm > 0, norm, 1.0)


class MeanFieldParticles(Dynamics):
    r"""Euler–Maruyama / Heun for the mean-field SDE of ``model``.

    Parameters
    ----------
    model : Model
        The same model the PDE solves (potential, interaction, :math:`\beta`, :math:`\xi`).
    n : int
        Number of particles.
    dt : float
        Time step (PDE time).
    initial : callable or ndarray
        ``initial(rng, n)`` returning the particles in the model's coordinates, shape
        ``(n, ndim)`` (radial axes as radii; lifted to uniform directions in vector
        mode), or an array of that shape.
    names : sequence of str, optional
        Coordinate names (default ``x, y`` or ``r`` for radial axes).
    lower, upper : array_like, optional
        The domain per coordinate (``±inf`` for unbounded); walls reflect.
    periodic : sequence of bool, optional
        Periodic axes wrap into ``[lower, upper)``.
    integrator : {"euler-maruyama", "heun"}
    interaction : {"auto", "mean", "pairwise", "mesh", "generic"}
        How the interaction force is computed (:func:`particles.forces.make_force`).
    radial : {"vector", "radius"}, optional
        Representation of radial axes (default ``"vector"`` with noise, ``"radius"``
        without).
    mesh_cells : int
        Mesh size per axis for ``interaction = "mesh"``.
    """

    def __init__(self, model: Model, n: int, dt: float, initial: Callable | np.ndarray, *,
                 names=None, lower=None, upper=None, periodic=None,
                 integrator: str = "euler-maruyama", interaction: str = "auto",
                 radial: str | None = None, mesh_cells: int = 256) -> None:
        if int(n) != n or n < 1:
            raise ValueError(f"n (number of particles) must be a positive integer, got {n}")
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"dt must be a positive number, got {dt}")
        if integrator not in INTEGRATORS:
            raise ValueError(f"integrator must be one of {', '.join(INTEGRATORS)}, got {integrator!r}")
        self.model, self.n, self.dt = model, int(n), float(dt)
        self.integrator = integrator
        nd = model.ndim
        self.radial_dims = tuple(model.radial_dims)
        if radial is None:
            radial = "radius" if math.isinf(model.beta) else "vector"
        if radial not in RADIAL_MODES:
            raise ValueError(f"radial must be one of {', '.join(RADIAL_MODES)}, got {radial!r}")
        self.radial = radial if any(d is not None for d in self.radial_dims) else None
        cart = "xyz" if nd <= 3 else [f"x{k + 1}" for k in range(nd)]
        default_names = [("r" if d is not None else cart[k]) for k, d in enumerate(self.radial_dims)]
        if sum(d is not None for d in self.radial_dims) > 1:
            default_names = [f"r{k + 1}" if d is not None else default_names[k]
                             for k, d in enumerate(self.radial_dims)]
        self.names = tuple(names) if names is not None else tuple(default_names)
        if len(self.names) != nd:
            raise ValueError(f"names needs {nd} entries, got {list(self.names)}")
        self.lower = np.full(nd, -np.inf) if lower is None else np.asarray(lower, dtype=float).ravel()
        self.upper = np.full(nd, np.inf) if upper is None else np.asarray(upper, dtype=float).ravel()
        self.periodic = np.zeros(nd, bool) if periodic is None else np.asarray(periodic, bool).ravel()
        for k, d in enumerate(self.radial_dims):
            if d is not None:
                self.lower[k] = 0.0
        if not (self.lower.size == self.upper.size == self.periodic.size == nd):
            raise ValueError(f"lower, upper and periodic need one entry per coordinate ({nd})")
        if np.any(self.periodic & ~np.isfinite(self.upper - self.lower)):
            raise ValueError("periodic axes need finite lower and upper bounds")
        period = np.where(self.periodic, self.upper - self.lower, 0.0)
        self.force: InteractionForce = make_force(
            model.interaction, interaction, period=period, lower=self.lower, upper=self.upper,
            periodic=self.periodic, cells=mesh_cells)
        # columns of the state per coordinate
        self._blocks: list[slice] = []
        col = 0
        for d in self.radial_dims:
            width = d if (d is not None and self.radial == "vector") else 1
            self._blocks.append(slice(col, col + width))
            col += width
        self.width = col
        self._initial = initial
        self.method = f"mean-field ({integrator})"

    # state <-> model coordinates ----------------------------------------------------
    def coordinates(self, state: ParticleState) -> np.ndarray:
        if self.width == self.model.ndim:
            return state.x
        return np.stack([np.linalg.norm(state.x[:, b], axis=1) if (b.stop - b.start) > 1
                         else state.x[:, b.start] for b in self._blocks], axis=1)

    def vectors(self, state: ParticleState) -> np.ndarray | None:
        return state.x if self.width != self.model.ndim else None

    def initial_state(self, rng: np.random.Generator) -> ParticleState:
        y = self._initial(rng, self.n) if callable(self._initial) else np.array(self._initial, dtype=float)
        y = np.asarray(y, dtype=float)
        if y.ndim == 1:
            y = y[:, None]
        if y.shape == (self.n, self.width):
            return ParticleState(np.array(y))
        if y.shape != (self.n, self.model.ndim):
            raise ValueError(f"initial particles must have shape ({self.n}, {self.model.ndim}), got {y.shape}")
        x = np.empty((self.n, self.width))
        for k, b in enumerate(self._blocks):
            if b.stop - b.start > 1:
                x[:, b] = np.abs(y[:, k])[:, None] * uniform_directions(rng, self.n, b.stop - b.start)
            else:
                x[:, b.start] = y[:, k]
        self._fold(x)
        return ParticleState(x)

    # dynamics ------------------------------------------------------------------------
    def psi_gradient(self, y: np.ndarray) -> np.ndarray:
        r""":math:`\nabla\Psi[\rho_N]` at the particles, in model coordinates."""
        return self.model.potential.gradient(y) + self.force.gradient(y)

    def _drift(self, x: np.ndarray, t: float) -> np.ndarray:
        xi = self.model.xi(t)
        y = self.coordinates(ParticleState(x))
        g = self.psi_gradient(y)
        out = np.empty_like(x)
        for k, b in enumerate(self._blocks):
            if b.stop - b.start > 1:  # vector representation: radial force along w/|w|
                r = y[:, k:k + 1]
                out[:, b] = -xi * g[:, k:k + 1] * np.where(r > 0, x[:, b] / np.where(r > 0, r, 1.0), 0.0)
            else:
                out[:, b.start] = -xi * g[:, k]
        return out

    def _fold(self, x: np.ndarray) -> None:
        """Periodic wrap and reflection at the walls, in place."""
        for k, b in enumerate(self._blocks):
            lo, hi = self.lower[k], self.upper[k]
            if b.stop - b.start > 1:
                r = np.linalg.norm(x[:, b], axis=1)
                if math.isfinite(hi):
                    over = r > hi
                    if np.any(over):
                        x[over, b] *= ((2 * hi - r[over]) / r[over])[:, None]
                continue
            v = x[:, b.start]
            if self.periodic[k]:
                v[:] = lo + np.mod(v - lo, hi - lo)
                continue
            if math.isfinite(lo) and math.isfinite(hi):  # reflect repeatedly into [lo, hi]
                span = hi - lo
                u = np.mod(v - lo, 2 * span)
                v[:] = lo + np.where(u > span, 2 * span - u, u)
            elif math.isfinite(lo):
                v[:] = np.where(v < lo, 2 * lo - v, v)
            elif math.isfinite(hi):
                v[:] = np.where(v > hi, 2 * hi - v, v)

    def _add_noise(self, x: np.ndarray, sigma: float, g: np.ndarray, chi2: np.ndarray) -> None:
        r"""Add :math:`\sigma\times` the increment ``g``; radius columns move as the norm of
        a :math:`d`-dimensional step, :math:`r' = ((r + \sigma g_1)^2 + \sigma^2\chi^2_{d-1})^{1/2}`
        (the law of :math:`|r e_1 + \sigma G|`, i.e. exactly the vector representation)."""
        if sigma == 0.0:
            return
        x += sigma * g
        for col, c2 in chi2.items():
            x[:, col] = np.sqrt(x[:, col] ** 2 + sigma**2 * c2)

    def advance(self, state: ParticleState, steps: int, rng: np.random.Generator) -> None:
        x, dt = state.x, self.dt
        T = self.model.temperature
        radius_cols = {b.start: self.radial_dims[k] for k, b in enumerate(self._blocks)
                       if self.radial_dims[k] is not None and b.stop - b.start == 1}
        for _ in range(int(steps)):
            t = state.step * dt
            sigma = math.sqrt(2 * self.model.xi(t) * T * dt) if T > 0 else 0.0
            if sigma > 0:
                g = rng.standard_normal(x.shape)
                chi2 = {col: rng.chisquare(d - 1, self.n) if d > 1 else np.zeros(self.n)
                        for col, d in radius_cols.items()}
            else:
                g, chi2 = None, {}
            b0 = self._drift(x, t)
            if self.integrator == "heun":
                pred = x + dt * b0
                self._add_noise(pred, sigma, g, chi2)
                self._fold(pred)
                x += 0.5 * dt * (b0 + self._drift(pred, t + dt))
            else:
                x += dt * b0
            self._add_noise(x, sigma, g, chi2)
            self._fold(x)
            state.step += 1
            if not np.all(np.isfinite(x)):
                raise ParticleFailure(f"non-finite particle positions after step {state.step} "
                                      f"(t = {state.step * dt:.6g}); reduce dt", (state.step - 1) * dt)

    # diagnostics ---------------------------------------------------------------------
    def energy(self, state: ParticleState) -> float:
        r""":math:`E[\rho_N] = \frac1N\sum_iV(\theta_i) + \frac1{2N^2}\sum_{ij}U(\theta_i,\theta_j)`."""
        y = self.coordinates(state)
        return float(np.mean(self.model.potential(y)) + self.force.energy(y))

    def diagnostics(self, state: ParticleState) -> dict[str, float]:
        e = self.energy(state)
        out = {"energy": e}
        if self.model.has_risk:
            out["risk"] = self.model.risk_offset + 2 * e
        return out

    def describe(self) -> dict:
        return {**super().describe(), "integrator": self.integrator, "interaction": self.force.method,
                "radial": self.radial, "model": self.model.to_dict()}
