r"""The model: external potential, interaction, temperature, schedule, reference measure.

A :class:`Model` describes the energy of a probability measure

.. math::

    E[\rho] = \int V\,d\rho + \tfrac12 \iint U\,d\rho\,d\rho, \qquad
    F[\rho] = E[\rho] + \beta^{-1}\int \rho\log(\rho/m), \qquad
    \Psi[\rho] = \frac{\delta E}{\delta\rho} = V + \int U(\cdot,\theta')\,\rho(d\theta'),

and the dynamics, the Wasserstein gradient flow of :math:`F` run at speed
:math:`\xi(t)`,

.. math::

    \partial_t\rho = \xi(t)\,\nabla\cdot\big(\rho\,\nabla(\Psi[\rho] + \beta^{-1}\log(\rho/m))\big)

(Jordan–Kinderlehrer–Otto 1998; Mei, Montanari & Nguyen, PNAS 2018, eq. (7) has the
same flow with :math:`2\xi` — see :mod:`ddsolve.model.schedule` for the conversion). Note
that there is no factor ½ in front of :math:`U` inside :math:`\Psi`. For square-loss
two-layer nets with output :math:`\frac1N\sum_i\sigma_*(x;\theta_i)` the risk is
:math:`R(\rho) = R_\# + 2E[\rho]` with :math:`R_\# = \mathbb{E}[y^2]`.

The same object serves the grid solver (via :mod:`ddsolve.grid.grid_model`) and the
particle dynamics (:meth:`Model.drift` is :math:`-\nabla\Psi[\rho_N]` at the particles).
The model lives in the *coordinates* of the problem: on a radial problem ``V`` and ``U``
are functions of radii and :math:`m(r) = r^{d-1}` (``radial_dim = d``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ddsolve.model.kernels import Kernel, ZeroKernel
from ddsolve.model.potentials import Potential, ZeroPotential
from ddsolve.model.schedule import Schedule

__all__ = ["Model"]


class Model:
    """Distributional-dynamics model.

    Parameters
    ----------
    potential : Potential, optional
        External potential :math:`V` (default zero).
    interaction : Kernel, optional
        Symmetric interaction kernel :math:`U` (default none).
    beta : float
        Inverse temperature :math:`\\beta \\in (0, \\infty]`; ``math.inf`` means no
        diffusion (plain gradient flow / noiseless SGD).
    xi : float, dict or Schedule
        Time schedule :math:`\\xi(t)` (default 1).
    ndim : int
        Dimension of the coordinates (1 or 2 for grids; any for particles).
    radial_dim : int or sequence, optional
        If the first coordinate is the radius of a rotation-invariant law on
        :math:`\\mathbb{R}^d`, ``d``; the reference measure is then :math:`r^{d-1}`.
        A sequence gives one entry per coordinate (``None`` for non-radial ones), e.g.
        ``(s0, d - s0)`` for block radii or ``(d, None)`` for :math:`(r, c)`.
    risk_offset : float, optional
        :math:`R_\\# = \\mathbb{E}[y^2]` for neural-network problems; if given the
        model has a risk :math:`R = R_\\# + 2E`.
    name : str
        Label used in outputs.
    """

    def __init__(
        self,
        potential: Potential | None = None,
        interaction: Kernel | None = None,
        beta: float = math.inf,
        xi: float | dict | Schedule = 1.0,
        ndim: int = 1,
        radial_dim: int | tuple[int | None, ...] | None = None,
        risk_offset: float | None = None,
        name: str = "model",
    ) -> None:
        self.potential = potential if potential is not None else ZeroPotential()
        self.interaction = interaction if interaction is not None else ZeroKernel()
        beta = float(beta)
        if not beta > 0 or math.isnan(beta):
            raise ValueError(f"beta must be positive (inf for no diffusion), got {beta}")
        self.beta = beta
        self.xi = Schedule.from_spec(xi)
        self.ndim = int(ndim)
        if radial_dim is None or np.ndim(radial_dim) == 0:
            dims = (radial_dim,) + (None,) * (self.ndim - 1)
        else:
            dims = tuple(None if d is None else int(d) for d in radial_dim)
            if len(dims) != self.ndim:
                raise ValueError(f"radial_dim needs one entry per coordinate ({self.ndim}), got {dims}")
        self.radial_dims: tuple[int | None, ...] = dims
        self.radial_dim = next((d for d in dims if d is not None), None)
        self.risk_offset = risk_offset
        self.name = name
        self.info: dict[str, Any] = {}  # problem-specific details for summary.json
        self.potential.check_ndim(self.ndim)
        self.interaction.check_ndim(self.ndim)

    @property
    def temperature(self) -> float:
        """:math:`\\beta^{-1}` (0 for ``beta = inf``)."""
        return 0.0 if math.isinf(self.beta) else 1.0 / self.beta

    @property
    def has_risk(self) -> bool:
        return self.risk_offset is not None

    # functionals on empirical measures (particles) ----------------------------------
    def psi_at(self, x: np.ndarray, points: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        r""":math:`\Psi[\rho_N](x)` for the empirical measure :math:`\rho_N=\sum_j w_j\delta_{\theta_j}`
        (uniform weights by default). ``x`` and ``points`` have shape ``(n, ndim)``."""
        w = _weights(points, weights)
        u = self.interaction(x[:, None, :], points[None, :, :])
        return self.potential(x) + u @ w

    def drift(self, points: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        r""":math:`-\nabla\Psi[\rho_N](\theta_i)` at the particles themselves."""
        w = _weights(points, weights)
        g = self.interaction.gradient1(points[:, None, :], points[None, :, :])
        return -(self.potential.gradient(points) + np.einsum("ijk,j->ik", g, w))

    def energy_particles(self, points: np.ndarray, weights: np.ndarray | None = None) -> float:
        r""":math:`E[\rho_N]` including the self-interaction terms :math:`j=i`."""
        w = _weights(points, weights)
        u = self.interaction(points[:, None, :], points[None, :, :])
        return float(self.potential(points) @ w + 0.5 * w @ u @ w)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "potential": type(self.potential).__name__,
            "interaction": type(self.interaction).__name__,
            "beta": self.beta,
            "xi": self.xi.description,
            "ndim": self.ndim,
            "radial_dim": self.radial_dim,
            "radial_dims": list(self.radial_dims),
            **self.info,
        }

    def __repr__(self) -> str:
        return (f"Model({self.name!r}, V={type(self.potential).__name__}, "
                f"U={type(self.interaction).__name__}, beta={self.beta:g})")


def _weights(points: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    n = points.shape[0]
    return np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=float)
