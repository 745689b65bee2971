r"""(Noisy) SGD and its momentum variants on a loss landscape :math:`V`: the optimiser
baselines that interacting agents are compared with (Kantas, Parpas & Pavliotis, *The
sharp, the flat and the shallow*, 2019; the Müller–Brown study of Tassopoulos 2023, §3.2.4).

``[particles] method = "sgd" | "nesterov" | "restarted-nesterov" | "mass"`` on a problem
that is not a two-layer network runs :math:`N` independent agents on the model's
potential :math:`V` (the interaction is not used: these are single-agent optimisers run
:math:`N` times). The stochastic gradient of step :math:`k` is

.. math:: \hat g(x) = \nabla V(x) + \sqrt{2/(\beta\varepsilon)}\;z_k,\qquad z_k\sim N(0, I),

so that plain SGD, :math:`x \leftarrow x - 2s_k\hat g(x)` with :math:`2s_k = \varepsilon`
(:math:`\xi = 1`), is the Euler–Maruyama step of the overdamped Langevin equation
:math:`dX = -\nabla V\,dt + \sqrt{2/\beta}\,dB` at PDE time :math:`\varepsilon` per step:
SGLD at the model's temperature (noise-free for :math:`\beta = \infty`). Nesterov, restarted
Nesterov and MaSS (:mod:`particles.momentum`) use the same oracle; the noise sample
:math:`z_k` plays the part of the minibatch, so every method draws the same random numbers.
MaSS needs ``kappa_tilde`` (there is no data law to estimate it from). The momentum
methods accumulate the noise of the oracle with the gradient, so at the same
:math:`\varepsilon` they sample hotter than SGD (measured on Müller–Brown in
``examples/sweep_muller_brown.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import ParticleState
from .hmm import _gradient_function

__all__ = ["LandscapeSGD"]


class _NoiseSamples:
    """The "data" of landscape SGD: a standard normal sample per agent and step."""

    def __init__(self, n: int, dim: int) -> None:
        self.shape = (n, dim)

    def sample(self, batch: int, rng: np.random.Generator):
        return rng.standard_normal(self.shape), None


class LandscapeSGD:
    r"""Independent agents with the (noisy) gradient oracle of the module doc, in the
    duck-typed SGD interface that :class:`particles.momentum.MomentumSGD` drives.

    Parameters
    ----------
    potential : Potential
        The loss :math:`V` (``gradient`` of an ``(N, dim)`` array).
    n, dim : int
        Number of agents and their dimension.
    eps : float
        PDE time per step; the SGD step is :math:`s = \varepsilon/2`.
    beta : float
        Inverse temperature (``inf``: plain gradient descent).
    initial : callable
        ``initial(rng, n) -> (n, dim)`` starting points.
    names : tuple of str
        Coordinate names.
    """

    batch = 1

    def __init__(self, potential, n: int, dim: int, eps: float, beta: float, initial, names) -> None:
        self.potential = potential
        self.n, self.dim = int(n), int(dim)
        self.eps = float(eps)
        self.dt = self.eps
        self.beta = float(beta)
        self._grad = _gradient_function(potential)
        self._noise = 0.0 if np.isinf(self.beta) else float(np.sqrt(2.0 / (self.beta * self.eps)))
        self._initial = initial
        self.names = tuple(names)
        self.data = _NoiseSamples(self.n, self.dim)

    def step_size(self, k: int) -> float:
        return self.eps / 2.0

    def initial_state(self, rng: np.random.Generator) -> ParticleState:
        return ParticleState(x=np.array(self._initial(rng, self.n), dtype=float).reshape(self.n, self.dim))

    def stochastic_gradient(self, x: np.ndarray, z: np.ndarray, _y=None) -> np.ndarray:
        g = np.asarray(self._grad(x), dtype=float)
        return g + self._noise * z if self._noise else g

    def coordinates(self, state: ParticleState) -> np.ndarray:
        return state.x

    def diagnostics(self, state: ParticleState) -> dict[str, float]:
        """``loss``: the mean of :math:`V` over the agents."""
        return {"loss": float(np.mean(self.potential(state.x)))}

    def describe(self) -> dict[str, Any]:
        return {"method": "sgd", "landscape": type(self.potential).__name__, "eps": self.eps,
                "beta": self.beta, "n": self.n}
