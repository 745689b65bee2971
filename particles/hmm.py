r"""Multiscale interacting agents: the HMM scheme "MF-Hom-SGLD".

Kantas, Parpas & Pavliotis, *The sharp, the flat and the shallow: can weakly interacting
agents learn to escape bad minima?* (2019), combine two ways of smoothing a non-convex loss
:math:`\Phi`:

* **interacting agents** (their eq. (23)–(24), Tassopoulos 2023 §3.1.2): N copies of SGLD coupled
  by the Curie–Weiss kernel :math:`D(x,y)=\frac\lambda2|x-y|^2`,

  .. math:: dX^i = -\nabla\Phi(X^i)\,dt - \lambda(X^i-\bar X)\,dt + \sqrt{2\beta^{-1}}\,dB^i,
            \qquad \bar X = \tfrac1N\textstyle\sum_j X^j .

  These are exactly the mean-field particles of the ddsolve model
  :func:`interacting_agents_model` (potential :math:`\Phi`, interaction
  ``QuadraticKernel(lam)``, inverse temperature :math:`\beta`, :math:`\xi\equiv1`); they are
  integrated by :mod:`particles.meanfield`, not here.

* **homogenisation** (Chaudhari, Oberman, Osher, Soatto & Carlier, *Deep relaxation*,
  Res. Math. Sci. 2018; Tassopoulos 2023 §3.1.3): a slow :math:`X` tied to a fast :math:`Y`,

  .. math::
      dX &= -\tfrac1\gamma(X-Y)\,dt,\\
      dY &= -\tfrac1\varepsilon\big(\nabla\Phi(Y)-\tfrac1\gamma(X-Y)\big)\,dt
            + \sqrt{2\beta^{-1}/\varepsilon}\,dB .

MF-Hom-SGLD (Tassopoulos 2023 eqs. (30)–(31)) gives every agent both: slow :math:`X^i`, fast
:math:`Y^i`, and the Curie–Weiss pull on the slow variables only,

.. math::
    dX^i &= -\tfrac1\gamma(X^i-Y^i)\,dt - \lambda(X^i-\bar X)\,dt,\\
    dY^i &= -\tfrac1\varepsilon\big(\nabla\Phi(Y^i)-\tfrac1\gamma(X^i-Y^i)\big)\,dt
            + \sqrt{2\beta^{-1}/\varepsilon}\,dW^i .

**Homogenised limit.** At frozen :math:`x` the fast process is overdamped Langevin dynamics
in :math:`\Phi(y)+|x-y|^2/(2\gamma)`, with invariant law
:math:`\rho^x_\infty(dy)\propto e^{-\beta[\Phi(y)+|x-y|^2/(2\gamma)]}dy`. Averaging the slow
drift over it (:math:`\varepsilon\to0`) gives

.. math::
    \dot X^i = -\nabla\Phi^{\beta,\gamma}(X^i) - \lambda(X^i-\bar X),\qquad
    \Phi^{\beta,\gamma} = -\beta^{-1}\log\big(G_{\gamma/\beta}\star e^{-\beta\Phi}\big),

with :math:`G_s` the centred Gaussian density of variance :math:`s` per coordinate, and
:math:`\nabla\Phi^{\beta,\gamma}(x) = (x-\mathbb{E}_{\rho^x_\infty}Y)/\gamma`. This is the
"local entropy" of Chaudhari et al. (the Cole–Hopf solution of the viscous
Hamilton–Jacobi equation :math:`u_t + \frac12|\nabla u|^2 = \frac1{2\beta}\Delta u` at time
:math:`\gamma`, with :math:`u(0)=\Phi`); as :math:`\beta\to\infty` it becomes the Moreau
envelope :math:`\min_y \Phi(y)+|x-y|^2/(2\gamma)`. The seed's eq. (28) prints
:math:`+\beta^{-1}\log`; the sign must be minus (otherwise minima and maxima swap). The
limit is a deterministic flow: in ddsolve terms, the PDE of the slow agents is the model with
potential :math:`\Phi^{\beta,\gamma}` (:class:`GibbsSmoothedPotential`, or
:func:`smoothed_quadratic_potential` when :math:`\Phi` is quadratic), interaction
``QuadraticKernel(lam)`` and ``beta = inf``.

**Quadratic losses** are smoothed exactly. For :math:`\Phi(y)=\frac12(y-c)^\top A(y-c)` the
law :math:`\rho^x_\infty` is Gaussian with precision :math:`\beta(A+I/\gamma)` and mean
:math:`c+(I+\gamma A)^{-1}(x-c)` (equivalently: :math:`e^{-\beta\Phi}` is a Gaussian of
covariance :math:`(\beta A)^{-1}`; convolving with :math:`G_{\gamma/\beta}` adds
:math:`\gamma/\beta\,I`, giving covariance :math:`\beta^{-1}(A^{-1}+\gamma I)`), so

.. math::
    \Phi^{\beta,\gamma}(x) = \tfrac12(x-c)^\top A(I+\gamma A)^{-1}(x-c) + \text{const},

for every :math:`\beta` (scalar case: :math:`\frac12\frac{a}{1+a\gamma}x^2`). The slow mean
then decays like :math:`e^{-a t/(1+a\gamma)}` instead of :math:`e^{-at}`
(:func:`smoothed_potential_gradient`, used in the tests).

**The HMM discretisation** (E, Liu & Vanden-Eijnden, CPAM 58, 2005; Tassopoulos 2023 algorithm
"MF Hom SGLD"). One macro step of size :math:`\Delta` (= ``dt``, the PDE time per step) is,
for all agents at once:

1. warm start: the fast chain continues from its last state :math:`Y^i_{n,0}=Y^i_{n-1,\text{last}}`
   (at the start :math:`Y^i_{0}=X^i_0`);
2. ``burn_in`` :math:`+` ``inner_steps`` Euler–Maruyama steps of size :math:`\delta`
   (``inner_dt``) of the fast equation with the slow variable frozen at :math:`X^i_{n-1}`,

   .. math:: Y_{n,m} = Y_{n,m-1} - \tfrac\delta\varepsilon\big(\nabla\Phi(Y_{n,m-1})
             - \tfrac1\gamma(X_{n-1}-Y_{n,m-1})\big)
             + \sqrt{2\beta^{-1}\delta/\varepsilon}\,Z_{n,m};

3. the average over the last ``inner_steps`` :math:`=M` states,
   :math:`\mathcal Y_n = \frac1M\sum_{m=m_0+1}^{m_0+M} Y_{n,m}` with :math:`m_0` = ``burn_in``;
4. :math:`X_n = X_{n-1} - \frac\Delta\gamma(X_{n-1}-\mathcal Y_n)
   - \lambda\Delta(X_{n-1}-\bar X_{n-1})`.

The seed's averaging line is :math:`\frac1{m'+M-1}\sum_{m=m'}^{m'+M-1}Y_{n,m-1}`: it sums
:math:`M` states but divides by :math:`m'+M-1`, and its inner loop runs to :math:`M` while
the warm start reads state :math:`m'+M-1`. We read it as the standard HMM estimator:
:math:`m'-1` = ``burn_in`` discarded steps, then an average with weight :math:`1/M` of
:math:`M` states (the seed's normalisation is right only for :math:`m'=1`). We average the
states *after* each of the :math:`M` steps (the seed's indices would include the state
before the first averaged step and drop the last one; the two differ by one term in
:math:`M`).

Only :math:`\delta/\varepsilon` enters the inner chain, so :math:`\varepsilon` and
:math:`\delta` are not separately identifiable: the HMM realises the :math:`\varepsilon\to0`
limit through the averaging (the inner chain's own time :math:`M\delta` need not equal
:math:`\Delta`). The scheme approximates the homogenised flow when the inner chain mixes
within the averaging window, :math:`M\delta/\varepsilon \gg` the relaxation time of
:math:`\rho^x_\infty`, and is stable for :math:`\frac\delta\varepsilon\,
\mathrm{Lip}(\nabla\Phi+\frac1\gamma)\lesssim 1` and :math:`\Delta(\frac1\gamma+\lambda)<2`.
There is no noise on the slow variables; with ``beta = inf`` the fast chain is plain
gradient descent and :math:`\mathcal Y` approximates the proximal point of :math:`\Phi`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np

from ddsolve.model.base import Model
from ddsolve.model.kernels import QuadraticKernel
from ddsolve.model.potentials import MullerBrownPotential, Potential, QuadraticPotential
from ddsolve.schema import POSITIVE, POSITIVE_OR_INF, Integer, check_argument

from .base import Dynamics, ParticleFailure, ParticleState

__all__ = [
    "MFHomSGLD",
    "interacting_agents_model",
    "smoothed_potential_gradient",
    "smoothed_quadratic_potential",
    "GibbsSmoothedPotential",
]

_AXIS_NAMES = ("x", "y", "z")


def _axis_names(dim: int) -> tuple[str, ...]:
    return _AXIS_NAMES[:dim] if dim <= 3 else tuple(f"x{k + 1}" for k in range(dim))


_NOISE_BLOCK = 1 << 20  # normal variates drawn at once (same stream as one draw per step)


@nb.njit(cache=True, fastmath=False)
def _muller_brown_gradient(x, A, a, b, c, x0, y0, scale):  # pragma: no cover - compiled
    n = x.shape[0]
    out = np.empty_like(x)
    for i in range(n):
        gx = 0.0
        gy = 0.0
        for k in range(4):
            dx = x[i, 0] - x0[k]
            dy = x[i, 1] - y0[k]
            e = A[k] * np.exp(a[k] * dx * dx + b[k] * dx * dy + c[k] * dy * dy)
            gx += e * (2.0 * a[k] * dx + b[k] * dy)
            gy += e * (b[k] * dx + 2.0 * c[k] * dy)
        out[i, 0] = scale * gx
        out[i, 1] = scale * gy
    return out


def _gradient_function(potential) -> Callable[[np.ndarray], np.ndarray]:
    """``potential.gradient`` for ``(N, dim)`` arrays, compiled for Müller–Brown (the numpy
    version costs ~80 µs per call for 60 agents, the compiled one ~2 µs)."""
    if type(potential) is MullerBrownPotential:
        P = potential
        args = tuple(np.ascontiguousarray(v, dtype=float) for v in (P.A, P.a, P.b, P.c, P.x0, P.y0))
        scale = float(P.scale)
        return lambda y: _muller_brown_gradient(y, *args, scale)
    return potential.gradient


def _stiffness_matrix(stiffness, dim: int) -> np.ndarray:
    A = np.asarray(stiffness, dtype=float)
    if A.ndim == 0:
        return float(A) * np.eye(dim)
    if A.ndim == 1:
        if A.size != dim:
            raise ValueError(f"stiffness has {A.size} diagonal entries, x has dimension {dim}")
        return np.diag(A)
    if A.shape != (dim, dim) or not np.allclose(A, A.T):
        raise ValueError(f"stiffness must be a scalar, a diagonal or a symmetric ({dim}, {dim}) "
                         f"matrix, got shape {A.shape}")
    return A


def _smoothed_matrix(A: np.ndarray, gamma: float) -> np.ndarray:
    gamma = check_argument("gamma", gamma, POSITIVE)
    dim = A.shape[0]
    M = np.eye(dim) + gamma * A
    if np.linalg.eigvalsh(0.5 * (M + M.T)).min() <= 0:
        raise ValueError("I + gamma*stiffness must be positive definite (otherwise the Gibbs "
                         "measure of the fast variable is not normalisable)")
    S = A @ np.linalg.inv(M)
    return 0.5 * (S + S.T)


def smoothed_potential_gradient(x, stiffness, gamma: float, center=0.0) -> np.ndarray:
    r""":math:`\nabla\Phi^{\beta,\gamma}(x) = A(I+\gamma A)^{-1}(x-c)` for the quadratic loss
    :math:`\Phi(y)=\frac12(y-c)^\top A(y-c)`, exact and independent of :math:`\beta`
    (module docstring). ``x`` has shape ``(..., dim)`` (or is a scalar / 1D array of
    1D points when ``stiffness`` is a scalar: then the result has the shape of ``x``);
    ``stiffness`` is a scalar, the diagonal, or a symmetric matrix. In 1D:
    :math:`\frac{a}{1+a\gamma}(x-c)`."""
    x = np.asarray(x, dtype=float)
    if np.ndim(stiffness) == 0 and np.ndim(center) == 0:
        a = float(stiffness)
        if not 1 + check_argument("gamma", gamma, POSITIVE) * a > 0:
            raise ValueError("1 + gamma*stiffness must be positive")
        return a / (1 + gamma * a) * (x - float(center))
    dim = x.shape[-1]
    S = _smoothed_matrix(_stiffness_matrix(stiffness, dim), gamma)
    return (x - np.asarray(center, dtype=float)) @ S.T


def smoothed_quadratic_potential(stiffness, gamma: float, center=0.0, dim: int | None = None
                                 ) -> QuadraticPotential:
    r"""The homogenised potential :math:`\Phi^{\beta,\gamma}` of a quadratic loss as a
    :class:`~ddsolve.model.potentials.QuadraticPotential` with stiffness
    :math:`A(I+\gamma A)^{-1}` (up to the additive constant), e.g. for the PDE of the slow
    agents: ``Model(potential=smoothed_quadratic_potential(a, gamma),
    interaction=QuadraticKernel(lam), beta=inf)``. A scalar ``stiffness`` stays scalar
    (any dimension) unless ``dim`` is given."""
    if np.ndim(stiffness) == 0 and dim is None:
        a = float(stiffness)
        if not 1 + check_argument("gamma", gamma, POSITIVE) * a > 0:
            raise ValueError("1 + gamma*stiffness must be positive")
        return QuadraticPotential(a / (1 + gamma * a), center)
    if dim is None:
        dim = np.shape(stiffness)[0]
    return QuadraticPotential(_smoothed_matrix(_stiffness_matrix(stiffness, dim), gamma), center)


class GibbsSmoothedPotential(Potential):
    r""":math:`\Phi^{\beta,\gamma}(x) = -\beta^{-1}\log\int e^{-\beta[\Phi(y)+|x-y|^2/(2\gamma)]}dy`
    by midpoint quadrature on a box (any potential of 1 or 2 dimensions, e.g. Müller–Brown).

    The gradient is :math:`(x-\mathbb{E}_{\rho^x_\infty}Y)/\gamma`, the drift of the
    homogenised slow dynamics; values drop the additive constant
    :math:`-\beta^{-1}\log((2\pi\gamma/\beta)^{d/2})` (they equal
    :math:`-\beta^{-1}\log(G_{\gamma/\beta}\star e^{-\beta\Phi})` up to that constant).
    ``beta = inf`` gives the Moreau envelope :math:`\min_y\Phi(y)+|x-y|^2/(2\gamma)` on the
    quadrature nodes. Accurate when the box holds the mass of :math:`\rho^x_\infty` and the
    cells resolve :math:`\sqrt{\gamma/\beta}` and the wells of :math:`\Phi`. Cost
    :math:`O(\text{points}\times\text{cells}^d)`, evaluated in blocks.

    Parameters
    ----------
    potential : Potential or object with ``__call__``
        :math:`\Phi` on points of shape ``(..., dim)``.
    beta, gamma : float
    lower, upper : sequence of float
        The quadrature box, one entry per dimension.
    cells : int or sequence of int
        Quadrature nodes per axis.
    """

    def __init__(self, potential, beta: float, gamma: float, lower, upper, cells=200):
        self.potential = potential
        self.beta = check_argument("beta", beta, POSITIVE_OR_INF)
        self.gamma = check_argument("gamma", gamma, POSITIVE)
        lo = np.atleast_1d(np.asarray(lower, dtype=float))
        hi = np.atleast_1d(np.asarray(upper, dtype=float))
        if lo.shape != hi.shape or lo.ndim != 1 or not np.all(hi > lo):
            raise ValueError("lower and upper must be sequences of equal length with upper > lower")
        self.ndim = lo.size
        if self.ndim > 2:
            raise ValueError("GibbsSmoothedPotential supports 1 or 2 dimensions")
        c = np.broadcast_to(np.asarray(cells), (self.ndim,))
        axes = [lo[k] + (np.arange(check_argument("cells", int(c[k]), Integer(low=2))) + 0.5) * (hi[k] - lo[k]) / c[k]
                for k in range(self.ndim)]
        self.nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, self.ndim)
        self.values = np.asarray(potential(self.nodes), dtype=float)
        self.log_cell = float(np.sum(np.log((hi - lo) / c)))

    def _terms(self, x):
        x = np.asarray(x, dtype=float)
        if x.shape[-1:] != (self.ndim,):
            raise ValueError(f"points must have shape (..., {self.ndim}), got {x.shape}")
        pts = x.reshape(-1, self.ndim)
        vals = np.empty(len(pts))
        means = np.empty_like(pts)
        block = max(1, 2_000_000 // len(self.nodes))
        for s in range(0, len(pts), block):
            p = pts[s:s + block]
            d2 = ((p[:, None, :] - self.nodes[None, :, :]) ** 2).sum(-1)
            e = self.values[None, :] + d2 / (2 * self.gamma)
            if math.isinf(self.beta):
                k = e.argmin(axis=1)
                vals[s:s + block] = e[np.arange(len(p)), k]
                means[s:s + block] = self.nodes[k]
                continue
            le = -self.beta * e
            top = le.max(axis=1, keepdims=True)
            w = np.exp(le - top)
            z = w.sum(axis=1)
            vals[s:s + block] = -(top[:, 0] + np.log(z) + self.log_cell) / self.beta
            means[s:s + block] = (w @ self.nodes) / z[:, None]
        return x.shape[:-1], pts, vals, means

    def __call__(self, x):
        shape, _, vals, _ = self._terms(x)
        return vals.reshape(shape)

    def fast_mean(self, x) -> np.ndarray:
        r""":math:`\mathbb{E}_{\rho^x_\infty}Y` (the proximal point for ``beta = inf``)."""
        shape, _, _, means = self._terms(x)
        return means.reshape(shape + (self.ndim,))

    def gradient(self, x):
        shape, pts, _, means = self._terms(x)
        return ((pts - means) / self.gamma).reshape(shape + (self.ndim,))


def interacting_agents_model(potential: Potential, lam: float, beta: float,
                             ndim: int | None = None, name: str = "interacting-agents") -> Model:
    r"""The ddsolve model whose mean-field particles are the Kantas–Parpas–Pavliotis agents
    :math:`dX^i=-\nabla\Phi(X^i)dt-\lambda(X^i-\bar X)dt+\sqrt{2/\beta}\,dB^i`:
    ``Model(potential, QuadraticKernel(lam), beta)`` with :math:`\xi\equiv1`
    (:math:`\nabla_1\int\frac\lambda2|x-y|^2\rho_N(dy) = \lambda(x-\bar x)`). The McKean–Vlasov
    limit is :math:`\partial_t\eta=\nabla\cdot(\eta\nabla(\Phi+D\star\eta+\beta^{-1}\log\eta))`
    (Tassopoulos 2023 eq. (25) with :math:`\beta^{-1}` in front of the entropy). ``ndim`` defaults to
    ``potential.ndim``; ``beta = inf`` gives noiseless agents."""
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam (interaction strength) must be finite and >= 0, got {lam}")
    beta = check_argument("beta", beta, POSITIVE_OR_INF)
    if ndim is None:
        ndim = getattr(potential, "ndim", None)
        if ndim is None:
            raise ValueError("ndim is needed for a potential without a fixed dimension")
    return Model(potential=potential, interaction=QuadraticKernel(lam), beta=beta,
                 ndim=int(ndim), name=name)


class MFHomSGLD(Dynamics):
    r"""MF-Hom-SGLD (Kantas, Parpas & Pavliotis 2019): N agents, slow :math:`X^i` coupled by
    Curie–Weiss attraction, each driven by the running average of its own fast Langevin
    chain :math:`Y^i`; the HMM discretisation of the module docstring. One step = one macro
    step of PDE time ``dt``; the slow variables are the particles
    (:attr:`ParticleState.x`), the fast ones live in ``state.extra["fast"]`` and their last
    average in ``state.extra["fast_mean"]``. Every macro step draws its own noise, so
    :meth:`advance` is composable at any macro step (the runner pauses, for Ctrl-C and
    checkpoints, between macro steps; one macro step of ``burn_in + inner_steps`` fast steps
    is never cut).

    Parameters
    ----------
    potential : Potential or object with ``gradient``
        The loss :math:`\Phi`; ``gradient(y)`` maps ``(N, dim)`` to ``(N, dim)``. If it is
        callable its values give the ``energy`` diagnostics.
    n : int
        Number of agents :math:`N`.
    dim : int, optional
        Dimension of each agent (default ``potential.ndim``).
    gamma : float
        Coupling :math:`\gamma>0` of slow and fast variables (smoothing scale: the fast
        law has spread :math:`\sqrt{\gamma/\beta}` around :math:`X`).
    eps : float
        Scale separation :math:`\varepsilon>0` (only :math:`\delta/\varepsilon` matters).
    lam : float
        Curie–Weiss strength :math:`\lambda\ge0` on the slow variables.
    beta : float
        Inverse temperature of the fast chain (``inf``: no noise).
    inner_steps : int
        :math:`M`, number of fast states averaged per macro step.
    burn_in : int
        Fast steps discarded before the average in every macro step (seed's :math:`m'-1`).
    inner_dt : float
        Fast Euler–Maruyama step :math:`\delta`.
    dt : float
        Macro step :math:`\Delta` (PDE time per step).
    initial : array_like or callable
        Slow initial positions, shape ``(n, dim)`` (or ``(n,)`` for ``dim = 1``), or
        ``initial(rng, n)`` returning them. The fast chains start at the slow positions.
    """

    method = "mf-hom-sgld"

    def __init__(self, potential, n: int, dim: int | None = None, *, gamma: float, eps: float,
                 lam: float = 0.0, beta: float, inner_steps: int, burn_in: int = 0,
                 inner_dt: float, dt: float,
                 initial: np.ndarray | Callable[[np.random.Generator, int], np.ndarray]):
        if not callable(getattr(potential, "gradient", None)):
            raise ValueError("potential must have a gradient(x) method")
        self.potential = potential
        self._grad = _gradient_function(potential)
        self.n = check_argument("n", n, Integer(low=1))
        if dim is None:
            dim = getattr(potential, "ndim", None)
            if dim is None:
                raise ValueError("dim is needed for a potential without a fixed dimension")
        self.dim = check_argument("dim", dim, Integer(low=1))
        pdim = getattr(potential, "ndim", None)
        if isinstance(pdim, (int, np.integer)) and pdim != self.dim:
            raise ValueError(f"dim = {self.dim} but the potential lives in {pdim} dimension(s)")
        self.gamma = check_argument("gamma", gamma, POSITIVE)
        self.eps = check_argument("eps", eps, POSITIVE)
        lam = float(lam)
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lam must be finite and >= 0, got {lam}")
        self.lam = lam
        self.beta = check_argument("beta", beta, POSITIVE_OR_INF)
        self.inner_steps = check_argument("inner_steps", inner_steps, Integer(low=1))
        self.burn_in = check_argument("burn_in", burn_in, Integer(low=0))
        self.inner_dt = check_argument("inner_dt", inner_dt, POSITIVE)
        self.dt = check_argument("dt", dt, POSITIVE)
        if self.inner_dt / (self.eps * self.gamma) >= 2:
            raise ValueError(f"inner_dt/eps = {self.inner_dt / self.eps:g} must be < 2*gamma "
                             f"= {2 * self.gamma:g} for a stable fast chain")
        if self.dt * (1 / self.gamma + self.lam) >= 2:
            raise ValueError(f"dt*(1/gamma + lam) = {self.dt * (1 / self.gamma + self.lam):g} "
                             "must be < 2 for a stable macro step")
        if not callable(initial):
            initial = self._check_positions(initial, "initial")
        self.initial = initial
        self.names = _axis_names(self.dim)

    def _check_positions(self, x, what: str) -> np.ndarray:
        x = np.array(x, dtype=float, order="C")
        if self.dim == 1 and x.shape == (self.n,):
            x = x[:, None]
        if x.shape != (self.n, self.dim):
            raise ValueError(f"{what} positions must have shape ({self.n}, {self.dim}), "
                             f"got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{what} positions must be finite")
        return x

    # Dynamics interface -------------------------------------------------------------
    def initial_state(self, rng: np.random.Generator) -> ParticleState:
        if callable(self.initial):
            x = self._check_positions(self.initial(rng, self.n), "initial")
        else:
            x = self.initial.copy()
        return ParticleState(x=x, step=0, extra={"fast": x.copy(), "fast_mean": x.copy()})

    def advance(self, state: ParticleState, steps: int, rng: np.random.Generator) -> None:
        steps = check_argument("steps", steps, Integer(low=0))
        h = self.inner_dt / self.eps
        noise = 0.0 if math.isinf(self.beta) else math.sqrt(2 * h / self.beta)
        c = h / self.gamma
        grad = self._grad
        total = self.burn_in + self.inner_steps
        block = max(1, min(total, _NOISE_BLOCK // (self.n * self.dim)))
        x = state.x
        y = np.ascontiguousarray(state.extra["fast"], dtype=float)
        for _ in range(steps):
            acc = np.zeros_like(x)
            pull = c * x
            for m in range(total):
                if noise and m % block == 0:
                    z = rng.standard_normal((min(block, total - m), self.n, self.dim))
                y = (1 - c) * y + pull - h * grad(y)
                if noise:
                    y += noise * z[m % block]
                if m >= self.burn_in:
                    acc += y
            ybar = acc / self.inner_steps
            xbar = x.mean(axis=0)
            x_new = x - (self.dt / self.gamma) * (x - ybar) - (self.lam * self.dt) * (x - xbar)
            if not (np.all(np.isfinite(x_new)) and np.all(np.isfinite(y))):
                raise ParticleFailure(
                    f"MF-Hom-SGLD produced non-finite values at step {state.step + 1} "
                    f"(try smaller inner_dt/eps or dt)", t=state.step * self.dt)
            x = x_new
            state.x = x
            state.extra["fast"] = y
            state.extra["fast_mean"] = ybar
            state.step += 1

    def diagnostics(self, state: ParticleState) -> dict[str, float]:
        x = state.x
        out: dict[str, float] = {}
        if callable(self.potential):
            out["energy"] = float(np.mean(self.potential(x)))
            out["fast_energy"] = float(np.mean(self.potential(state.extra["fast"])))
        # |x - Ybar|/gamma estimates |grad Phi^{beta,gamma}(x)| (after the first step)
        gap = np.linalg.norm(x - state.extra["fast_mean"], axis=1) / self.gamma
        out["smoothed_grad_norm"] = float(np.mean(gap))
        out["spread"] = float(np.mean(np.sum((x - x.mean(axis=0)) ** 2, axis=1)))
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "dim": self.dim, "gamma": self.gamma, "eps": self.eps,
                "lam": self.lam, "beta": self.beta, "inner_steps": self.inner_steps,
                "burn_in": self.burn_in, "inner_dt": self.inner_dt,
                "potential": type(self.potential).__name__}
