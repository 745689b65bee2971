r"""Momentum variants of (stochastic) gradient descent and their particle dynamics.

Two layers:

1. **Optimisers** acting on any numpy array :math:`w` with a (stochastic) gradient
   oracle ``grad(u) -> ndarray`` of the same shape: :class:`GradientDescent`,
   :class:`Nesterov`, :class:`RestartedNesterov` and :class:`MaSS`. All of them are the
   two-sequence scheme

   .. math::

       w_{t+1} &= u_t - \eta_1\,g_t, \qquad g_t = \tilde\nabla f(u_t),\\
       u_{t+1} &= (1+\gamma_t)\,w_{t+1} - \gamma_t\,w_t + \eta_2\,g_t,

   with :math:`\gamma_t = \eta_2 = 0` (gradient descent), constant :math:`\gamma` and
   :math:`\eta_2 = 0` (Nesterov 1983), :math:`\gamma_t = (\alpha_t-1)/(\alpha_t+2)` with
   gradient restarts (O'Donoghue & Candès 2015), and constant :math:`\gamma` with the
   compensation term :math:`\eta_2 > 0` (MaSS, Liu & Belkin 2020). ``w`` is the iterate
   that is reported; ``u`` is the extrapolated point where the gradient is taken.
   Usage::

       opt = Nesterov(lr=1 / L, momentum=0.8)
       state = opt.init(w0)
       for _ in range(steps):
           opt.step(state, grad)      # updates state.w, state.u, state.w_prev in place

2. :class:`MomentumSGD`, a :class:`~particles.base.Dynamics` that runs one of these
   optimisers on the *whole* particle array of a two-layer SGD object (the
   ``TwoLayerSGD`` of :mod:`particles.sgd` or anything with the same duck-typed
   interface), with the gradient oracle :math:`g(u) = 2 s_k\,\hat g(u)`, where
   :math:`\hat g` is the minibatch gradient of the SGD object and :math:`s_k` its step.
   With ``lr = 1`` and zero momentum this is plain SGD, step for step.

These are the momentum methods of the report of Tassopoulos (Imperial UROP 2023,
§3.1.5–3.1.6), which compares them with the interacting-agent and homogenised SGLD
schemes of Kantas, Parpas & Pavliotis ("The sharp, the flat and the shallow", 2019).

References
----------
Y. Nesterov, A method for solving the convex programming problem with convergence rate
:math:`O(1/k^2)`, Dokl. Akad. Nauk SSSR 269 (1983) 543–547; *Introductory Lectures on
Convex Optimization*, Kluwer 2004, §2.2.

B. O'Donoghue and E. Candès, Adaptive restart for accelerated gradient schemes,
Found. Comput. Math. 15 (2015) 715–732.

C. Liu and M. Belkin, Accelerating SGD with momentum for over-parameterized learning,
ICLR 2020 (arXiv:1810.13395).

W. Su, S. Boyd and E. Candès, A differential equation for modeling Nesterov's accelerated
gradient method, JMLR 17 (2016) 1–43.

N. Kantas, P. Parpas and G. A. Pavliotis, The sharp, the flat and the shallow: can weakly
interacting agents learn to escape bad minima?, arXiv:1905.04121 (2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddsolve.schema import POSITIVE, Real, check_argument

from .base import Dynamics, ParticleFailure, ParticleState

__all__ = [
    "OptimizerState",
    "Optimizer",
    "GradientDescent",
    "Nesterov",
    "RestartedNesterov",
    "MaSS",
    "OPTIMIZERS",
    "make_optimizer",
    "least_squares_constants",
    "MomentumSGD",
]

Gradient = Callable[[np.ndarray], np.ndarray]


_MOMENTUM = Real(0.0, 1.0, high_open=True)  # momentum parameters lie in [0, 1)


# ---------------------------------------------------------------------------------------
# optimisers
# ---------------------------------------------------------------------------------------
@dataclass
class OptimizerState:
    r"""State of a two-sequence momentum scheme; the arrays are updated in place.

    Attributes
    ----------
    w : ndarray
        The current iterate :math:`w_t` (what is reported / compared).
    u : ndarray
        The extrapolated point :math:`u_t` where the next gradient is evaluated.
    w_prev : ndarray
        The previous iterate :math:`w_{t-1}` (equal to ``w`` before the first step).
    t : int
        Number of steps taken.
    alpha : float
        Restart counter of :class:`RestartedNesterov` (1 at the start and after a
        restart); the momentum of the next step is :math:`(\alpha-1)/(\alpha+2)`.
    restarts : int
        Number of restarts so far.
    restarted : bool
        Whether the last step restarted.
    gamma : float
        The momentum used in the last step.
    """

    w: np.ndarray
    u: np.ndarray
    w_prev: np.ndarray
    t: int = 0
    alpha: float = 1.0
    restarts: int = 0
    restarted: bool = False
    gamma: float = 0.0


class Optimizer:
    r"""Base class of the two-sequence schemes

    .. math::

        w_{t+1} = u_t - \eta_1\,g_t,\qquad
        u_{t+1} = (1+\gamma_t)\,w_{t+1} - \gamma_t\,w_t + \eta_2\,g_t,\qquad
        g_t = \tilde\nabla f(u_t).

    Subclasses set :math:`\eta_1` (``lr``), :math:`\eta_2` (``lr2``) and the momentum
    rule :meth:`_gamma`.
    """

    name = ""
    lr: float
    lr2: float = 0.0

    def init(self, w0) -> OptimizerState:
        """A fresh state at ``w0`` (copied, as float): :math:`u_0 = w_0`."""
        w = np.array(w0, dtype=float, copy=True)
        if w.size == 0:
            raise ValueError("w0 must be a non-empty array")
        if not np.all(np.isfinite(w)):
            raise ValueError("w0 must be finite")
        return OptimizerState(w=w, u=w.copy(), w_prev=w.copy())

    def _gamma(self, state: OptimizerState, g: np.ndarray, w_new: np.ndarray) -> float:
        raise NotImplementedError

    def step(self, state: OptimizerState, grad: Gradient) -> OptimizerState:
        """One step in place: evaluate ``grad(state.u)`` once and update ``w``, ``u``,
        ``w_prev``. Returns ``state`` for convenience."""
        g = np.asarray(grad(state.u), dtype=float)
        if g.shape != state.u.shape:
            raise ValueError(f"grad(u) has shape {g.shape}, expected {state.u.shape}")
        w_new = state.u - self.lr * g
        gamma = self._gamma(state, g, w_new)
        u_new = (1.0 + gamma) * w_new - gamma * state.w if gamma != 0.0 else w_new.copy()
        if self.lr2 != 0.0:
            u_new += self.lr2 * g
        state.w_prev[...] = state.w
        state.w[...] = w_new
        state.u[...] = u_new
        state.gamma = gamma
        state.t += 1
        return state

    @property
    def time_scale(self) -> float:
        r"""Effective step :math:`(\eta_1-\eta_2)/(1-\gamma)` in units of the gradient
        oracle's step: for a slowly varying gradient the increments satisfy
        :math:`w_{t+1}-w_t = \gamma(w_t-w_{t-1}) - \eta_1 g_t + \eta_2 g_{t-1}`, whose
        fixed point is :math:`-(\eta_1-\eta_2)g/(1-\gamma)`. Small-step limit of a
        constant-momentum scheme = gradient flow sped up by this factor."""
        return (self.lr - self.lr2) / (1.0 - getattr(self, "momentum", 0.0))

    def describe(self) -> dict[str, Any]:
        return {"optimizer": self.name, "lr": self.lr}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "optimizer")
        return f"{type(self).__name__}({args})"


class GradientDescent(Optimizer):
    r"""(Stochastic) gradient descent :math:`w_{t+1} = w_t - \eta\,\tilde\nabla f(w_t)`
    (:math:`u_t = w_t`).

    Parameters
    ----------
    lr : float
        Step :math:`\eta > 0`; :math:`\eta = 1/L` is the optimal constant step for an
        :math:`L`-smooth, :math:`\mu`-strongly convex quadratic up to a factor
        :math:`2/(1+1/\kappa)`, with rate :math:`1-1/\kappa`, :math:`\kappa = L/\mu`.
    """

    name = "gd"

    def __init__(self, lr: float):
        self.lr = check_argument("lr", lr, POSITIVE)

    def _gamma(self, state, g, w_new):
        return 0.0


class Nesterov(Optimizer):
    r"""Nesterov's accelerated gradient with constant momentum (Nesterov 1983; the
    "Nesterov SGD" of Liu & Belkin 2020 and of Tassopoulos 2023, Eq. (32)):

    .. math::

        w_{t+1} = u_t - \eta\,\tilde\nabla f(u_t),\qquad
        u_{t+1} = (1+\gamma)\,w_{t+1} - \gamma\,w_t .

    For an :math:`L`-smooth, :math:`\mu`-strongly convex :math:`f` and
    :math:`\eta = 1/L`, :math:`\gamma = (\sqrt\kappa-1)/(\sqrt\kappa+1)` it converges
    linearly with rate :math:`1-1/\sqrt\kappa` (Nesterov 2004, §2.2.1) instead of
    gradient descent's :math:`1-1/\kappa`; on a quadratic the slowest mode is a double
    root of the characteristic polynomial, so the error is
    :math:`O(t\,(1-1/\sqrt\kappa)^t)`. See :meth:`from_condition`.

    Parameters
    ----------
    lr : float
        Step :math:`\eta > 0`.
    momentum : float
        :math:`\gamma \in [0, 1)`; ``0`` is gradient descent.
    """

    name = "nesterov"

    def __init__(self, lr: float, momentum: float = 0.9):
        self.lr = check_argument("lr", lr, POSITIVE)
        self.momentum = check_argument("momentum", momentum, _MOMENTUM)

    @classmethod
    def from_condition(cls, L: float, mu: float) -> Nesterov:
        r""":math:`\eta = 1/L`, :math:`\gamma = (\sqrt\kappa-1)/(\sqrt\kappa+1)`,
        :math:`\kappa = L/\mu`."""
        L, mu = check_argument("L", L, POSITIVE), check_argument("mu", mu, POSITIVE)
        if mu > L:
            raise ValueError(f"mu must not exceed L, got mu={mu}, L={L}")
        s = math.sqrt(L / mu)
        return cls(1.0 / L, (s - 1.0) / (s + 1.0))

    def _gamma(self, state, g, w_new):
        return self.momentum

    def describe(self):
        return {**super().describe(), "momentum": self.momentum}


class RestartedNesterov(Optimizer):
    r"""Nesterov's method with the :math:`(k-1)/(k+2)` momentum and *gradient restart*
    (O'Donoghue & Candès 2015, §3.2; Tassopoulos 2023, Eq. (33)).

    .. math::

        w_{t+1} &= u_t - \eta\,g_t,\qquad g_t = \tilde\nabla f(u_t),\\
        &\text{restart if } g_t^\top(w_{t+1}-w_t) > 0:\ \alpha \leftarrow 1,\\
        u_{t+1} &= (1+\gamma_t)\,w_{t+1} - \gamma_t\,w_t,\qquad
        \gamma_t = \frac{\alpha-1}{\alpha+2},\\
        \alpha &\leftarrow \alpha + 1 .

    :math:`\alpha = 1` at the start, so without restarts the momenta are
    :math:`0, 1/4, 2/5, 1/2, \dots` (FISTA's :math:`(k-1)/(k+2)`). The restart test is
    O'Donoghue–Candès' :math:`\nabla f(y^{k-1})^\top(x^k - x^{k-1}) > 0` with
    :math:`y \leftrightarrow u`, :math:`x \leftrightarrow w`: the step just taken makes
    an acute angle with the gradient, i.e. it goes uphill, so the accumulated momentum is
    discarded. No knowledge of :math:`\mu` is needed and the rate on strongly convex
    problems is close to the optimal :math:`1-1/\sqrt\kappa` (O'Donoghue & Candès,
    §4–5).

    Parameters
    ----------
    lr : float
        Step :math:`\eta > 0` (``1/L`` in the deterministic case).
    reset_momentum : bool
        ``True`` (default, O'Donoghue–Candès): a restart also zeroes the momentum of the
        current step, :math:`u_{t+1} = w_{t+1}` (their "restart the algorithm from
        :math:`x^k`"). ``False`` (the box of Tassopoulos 2023): :math:`u_{t+1}` still uses the
        old momentum and only the counter is reset.

    Notes
    -----
    The :math:`(k-1)/(k+2)` schedule has no first-order small-step limit (it tends to the
    second-order ODE :math:`\ddot X + (3/t)\dot X + \nabla f = 0`, Su, Boyd & Candès
    2016), so :attr:`time_scale` is only nominal (``lr``).
    """

    name = "restarted-nesterov"

    def __init__(self, lr: float, reset_momentum: bool = True):
        self.lr = check_argument("lr", lr, POSITIVE)
        if not isinstance(reset_momentum, (bool, np.bool_)):
            raise ValueError(f"reset_momentum must be True or False, got {reset_momentum!r}")
        self.reset_momentum = bool(reset_momentum)

    def _gamma(self, state, g, w_new):
        restart = float(np.vdot(g, w_new - state.w)) > 0.0
        state.restarted = restart
        if restart:
            state.restarts += 1
            if self.reset_momentum:
                state.alpha = 1.0
        gamma = (state.alpha - 1.0) / (state.alpha + 2.0)
        state.alpha = (1.0 if restart else state.alpha) + 1.0
        return gamma

    @property
    def time_scale(self) -> float:
        return self.lr

    def describe(self):
        return {**super().describe(), "reset_momentum": self.reset_momentum}


class MaSS(Optimizer):
    r"""MaSS, the momentum-added stochastic solver (Liu & Belkin, ICLR 2020, Eq. (3);
    Tassopoulos 2023, Eq. (34)): Nesterov plus the compensation term
    :math:`+\eta_2\tilde\nabla f(u_t)`,

    .. math::

        w_{t+1} = u_t - \eta_1\,\tilde\nabla f(u_t),\qquad
        u_{t+1} = (1+\gamma)\,w_{t+1} - \gamma\,w_t + \eta_2\,\tilde\nabla f(u_t).

    Equivalent three-sequence form (Liu & Belkin's Eq. (14), and their reference code):

    .. math::

        w_{t+1} &= u_t - \eta\,\tilde\nabla f(u_t),\\
        v_{t+1} &= (1-\alpha)\,v_t + \alpha\,u_t - \delta\,\tilde\nabla f(u_t),\\
        u_{t+1} &= \tfrac{\alpha}{1+\alpha}\,v_{t+1} + \tfrac{1}{1+\alpha}\,w_{t+1},

    with :math:`\eta_1 = \eta`, :math:`\gamma = (1-\alpha)/(1+\alpha)`,
    :math:`\eta_2 = (\eta-\alpha\delta)/(1+\alpha)` (eliminate :math:`v` using
    :math:`\alpha v_t = (1+\alpha)u_t - w_t`; checked by hand and in the tests).

    Parameters
    ----------
    lr : float
        :math:`\eta_1 > 0`.
    lr2 : float
        Compensation :math:`\eta_2`, ``0 <= lr2 < lr`` (``lr2 = 0`` is Nesterov).
    momentum : float
        :math:`\gamma \in [0, 1)`.

    See Also
    --------
    MaSS.from_condition, least_squares_constants
    """

    name = "mass"

    def __init__(self, lr: float, lr2: float, momentum: float):
        self.lr = check_argument("lr", lr, POSITIVE)
        try:
            lr2f = float(lr2)
        except (TypeError, ValueError):
            raise ValueError(f"lr2 must be a number in [0, lr), got {lr2!r}") from None
        if isinstance(lr2, bool) or not (0.0 <= lr2f < self.lr):
            raise ValueError(f"lr2 must satisfy 0 <= lr2 < lr = {self.lr}, got {lr2!r}")
        self.lr2 = lr2f
        self.momentum = check_argument("momentum", momentum, _MOMENTUM)

    @classmethod
    def from_condition(cls, L: float, mu: float, kappa_tilde: float | None = None) -> MaSS:
        r"""Liu & Belkin's hyper-parameters for a quadratic loss (their Theorem 2 /
        Eq. (15), "from memory, re-derived"):

        .. math::

            \eta_1 = \frac1L,\quad \alpha = \frac{1}{\sqrt{\kappa\tilde\kappa}},\quad
            \delta = \frac{\eta_1}{\alpha\tilde\kappa},\quad
            \gamma = \frac{1-\alpha}{1+\alpha},\quad
            \eta_2 = \frac{\eta_1-\alpha\delta}{1+\alpha}
                   = \frac{\eta_1(1-1/\tilde\kappa)}{1+\alpha},

        with :math:`\kappa = L/\mu`; the claimed rate is
        :math:`\mathbb E\|w_t-w^*\|^2 \le C(1-1/\sqrt{\kappa\tilde\kappa})^t`.

        Parameters
        ----------
        L, mu : float
            For minibatch size :math:`m` on least squares use :math:`L_m` and :math:`\mu`
            (:func:`least_squares_constants`): :math:`L_m = L_1/m + (m-1)L/m`, where
            :math:`L_1` is the smallest constant with
            :math:`\mathbb E[\|x\|^2xx^\top] \preceq L_1 H`.
        kappa_tilde : float, optional
            Statistical condition number :math:`\tilde\kappa_m \in [1, \kappa]`
            (smallest :math:`\tilde\kappa` with
            :math:`\mathbb E[\|x\|^2_{H^{-1}}xx^\top] \preceq \tilde\kappa H`, then
            :math:`\tilde\kappa_m = \tilde\kappa/m + (m-1)/m`). Default ``None`` means
            exact (full-batch) gradients, :math:`\tilde\kappa = 1`: then
            :math:`\eta_2 = 0` and MaSS *is* Nesterov with
            :math:`\gamma = (\sqrt\kappa-1)/(\sqrt\kappa+1)`.

        Notes
        -----
        Doubts. (i) The v-form, :math:`\delta = \eta/(\alpha\tilde\kappa)` and the
        reduction to :math:`(\eta_1,\eta_2,\gamma)` are certain (the reference code
        ts66395/MaSS computes ``delta = lr/alpha/kappa_t`` and the algebra is checked in
        the tests). (ii) :math:`\alpha = 1/\sqrt{\kappa\tilde\kappa}` and
        :math:`\eta = 1/L_m` are recalled from the paper, not re-read; they are
        consistent with the full-batch limit (:math:`\tilde\kappa\to1` gives Nesterov's
        optimal parameters) and give the accelerated rate in the tests. (iii) Taking
        :math:`\tilde\kappa = \kappa` (a worst case) gives :math:`\alpha = 1/\kappa` and
        only the SGD rate :math:`1-1/\kappa`; it is *not* the full-batch value.
        """
        L, mu = check_argument("L", L, POSITIVE), check_argument("mu", mu, POSITIVE)
        if mu > L:
            raise ValueError(f"mu must not exceed L, got mu={mu}, L={L}")
        kappa = L / mu
        kt = 1.0 if kappa_tilde is None else check_argument("kappa_tilde", kappa_tilde, POSITIVE)
        if not (1.0 <= kt <= kappa * (1 + 1e-12)):
            raise ValueError(f"kappa_tilde must lie in [1, L/mu = {kappa:.6g}], got {kappa_tilde!r}")
        eta = 1.0 / L
        alpha = 1.0 / math.sqrt(kappa * kt)
        return cls(eta, eta * (1.0 - 1.0 / kt) / (1.0 + alpha), (1.0 - alpha) / (1.0 + alpha))

    @classmethod
    def from_momentum(cls, lr: float, momentum: float, kappa_tilde: float) -> MaSS:
        r"""Liu & Belkin's reference-code parametrisation (ts66395/MaSS: ``lr``,
        ``alpha``, ``kappa_t``; :math:`\delta = \eta/(\alpha\tilde\kappa)`) with
        :math:`\alpha = (1-\gamma)/(1+\gamma)`: :math:`\eta_1 = ` ``lr``,
        :math:`\eta_2 = \eta_1(1-1/\tilde\kappa)/(1+\alpha)`. Use when :math:`\mu`
        (hence :math:`\kappa`) is unknown, e.g. for neural networks; ``lr`` plays the
        role of :math:`1/L_m`."""
        lr, gamma = check_argument("lr", lr, POSITIVE), check_argument("momentum", momentum, _MOMENTUM)
        kt = check_argument("kappa_tilde", kappa_tilde, POSITIVE)
        if kt < 1.0:
            raise ValueError(f"kappa_tilde must be >= 1, got {kappa_tilde!r}")
        alpha = (1.0 - gamma) / (1.0 + gamma)
        return cls(lr, lr * (1.0 - 1.0 / kt) / (1.0 + alpha), gamma)

    def _gamma(self, state, g, w_new):
        return self.momentum

    def describe(self):
        return {**super().describe(), "lr2": self.lr2, "momentum": self.momentum}


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "gd": GradientDescent,
    "sgd": GradientDescent,
    "nesterov": Nesterov,
    "restarted-nesterov": RestartedNesterov,
    "mass": MaSS,
}


def make_optimizer(name: str | Optimizer, **params) -> Optimizer:
    """An optimiser from its name (``"gd"``/``"sgd"``, ``"nesterov"``,
    ``"restarted-nesterov"``, ``"mass"``) and constructor parameters, or an
    :class:`Optimizer` instance passed through (then ``params`` must be empty)."""
    if isinstance(name, Optimizer):
        if params:
            raise ValueError(f"optimizer parameters {sorted(params)} given with an optimizer instance")
        return name
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an Optimizer, got {name!r}")
    cls = OPTIMIZERS[name.lower()]
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for optimizer {name!r}: {exc}") from None


def least_squares_constants(X, batch: int = 1) -> dict[str, float]:
    r"""Liu–Belkin constants of least squares :math:`f(w) = \frac1{2n}\sum_i
    (x_i^\top w - y_i)^2` with minibatches of ``batch`` rows drawn with replacement.

    :math:`H = \frac1n\sum x_ix_i^\top`, :math:`\mu = \lambda_{\min}(H)`,
    :math:`L = \lambda_{\max}(H)`; :math:`L_1 = \lambda_{\max}(H^{-1/2}MH^{-1/2})` with
    :math:`M = \frac1n\sum\|x_i\|^2x_ix_i^\top`; :math:`\tilde\kappa =
    \lambda_{\max}(H^{-1/2}\tilde MH^{-1/2})` with :math:`\tilde M = \frac1n\sum
    \|x_i\|^2_{H^{-1}}x_ix_i^\top`; and for batch :math:`m`:
    :math:`L_m = L_1/m + (m-1)L/m`, :math:`\kappa_m = L_m/\mu`,
    :math:`\tilde\kappa_m = \tilde\kappa/m + (m-1)/m`.

    Returns
    -------
    dict with ``mu``, ``L``, ``L1``, ``kappa_tilde``, ``L_m``, ``kappa_m``,
    ``kappa_tilde_m``. Use ``MaSS.from_condition(c["L_m"], c["mu"], c["kappa_tilde_m"])``
    and ``GradientDescent(1 / c["L_m"])``.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] < X.shape[1]:
        raise ValueError(f"X must be an (n, d) array with n >= d, got shape {X.shape}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    n = X.shape[0]
    H = X.T @ X / n
    lam, Q = np.linalg.eigh(H)
    if not lam[0] > 0:
        raise ValueError("X must have full column rank (H = X^T X / n is singular)")
    Hmh = (Q / np.sqrt(lam)) @ Q.T                         # H^{-1/2}
    Z = X @ Hmh                                            # rows H^{-1/2} x_i
    sq = np.einsum("ij,ij->i", X, X)                       # |x_i|^2
    sqh = np.einsum("ij,ij->i", Z, Z)                      # |x_i|^2_{H^{-1}}
    L1 = np.linalg.eigvalsh((Z * sq[:, None]).T @ Z / n)[-1]
    kt = np.linalg.eigvalsh((Z * sqh[:, None]).T @ Z / n)[-1]
    m = int(batch)
    Lm = L1 / m + (m - 1) * lam[-1] / m
    return {"mu": float(lam[0]), "L": float(lam[-1]), "L1": float(L1), "kappa_tilde": float(kt),
            "L_m": float(Lm), "kappa_m": float(Lm / lam[0]), "kappa_tilde_m": float(kt / m + (m - 1) / m)}


# ---------------------------------------------------------------------------------------
# particle dynamics
# ---------------------------------------------------------------------------------------
_SGD_ATTRS = ("n", "dt", "names", "initial_state", "coordinates", "stochastic_gradient", "data", "batch")


class MomentumSGD(Dynamics):
    r"""A momentum optimiser run on the particles of a two-layer SGD object.

    Step :math:`k` draws a minibatch :math:`(x_b, y_b)_{b\le B}` =
    ``sgd.data.sample(sgd.batch, rng)`` and applies the optimiser to the whole array
    :math:`\theta = (\theta_i)_{i\le N}` with the gradient oracle

    .. math::

        g(u) = 2 s_k\,\hat g(u),\qquad
        \hat g_i(u) = -\frac1B\sum_b\big(y_b-\hat y_b(u)\big)\nabla_\theta\sigma_*(x_b;u_i),

    i.e. ``2 * s_k * sgd.stochastic_gradient(u, xb, yb)``, where
    :math:`s_k` = ``sgd.step_size(k)`` or, if the object has no ``step_size``,
    :math:`\varepsilon\,\xi(k\varepsilon)/2` from ``sgd.eps`` and ``sgd.xi`` (ddsolve's
    :math:`\xi` is twice Mei–Montanari–Nguyen's). Plain SGD is
    :math:`\theta\leftarrow\theta-2s_k\hat g(\theta)`, so ``"nesterov"`` with ``lr=1``,
    ``momentum=0`` reproduces it exactly (same random numbers, same floating-point
    operations).

    Parameters
    ----------
    sgd : object
        Duck-typed two-layer SGD: ``n``, ``dt``, ``names``, ``batch``, ``data.sample``,
        ``initial_state(rng)``, ``coordinates(state)``, ``stochastic_gradient(x, xb, yb)``
        (``x`` the ``(N, D)`` parameter array), optionally ``vectors``, ``diagnostics``,
        ``describe`` and ``step_size(k)`` (else ``eps`` and ``xi``).
    optimizer : str or Optimizer
        ``"nesterov"``, ``"restarted-nesterov"``, ``"mass"`` (or ``"sgd"``), or an
        :class:`Optimizer` instance. The learning rates are *dimensionless*, in units of
        the SGD step :math:`2s_k` (``lr = 1``, the default, is SGD's own step).
    **params
        The optimiser's parameters (``lr``, ``momentum``, ``lr2``, ``reset_momentum``).
        ``"mass"`` takes either ``lr2`` and ``momentum`` explicitly, or ``momentum``
        (default 0.9) and ``kappa_tilde`` (:meth:`MaSS.from_momentum`); a missing
        ``kappa_tilde`` is estimated as the :math:`\tilde\kappa_m` of the *input* law
        (:func:`least_squares_constants` on 4000 inputs from ``sgd.data``, fixed seed,
        batch ``sgd.batch``). That is Liu–Belkin's constant for a model linear in
        :math:`x`; for a two-layer net (features
        :math:`\sigma'(\langle w,x\rangle)x`) it is only a heuristic.

    Attributes
    ----------
    time_scale : float
        :math:`(\eta_1-\eta_2)/(1-\gamma)`. For constant momentum and small steps the
        iterates :math:`w` follow the SGD gradient flow sped up by this factor, so
        ``dt = sgd.dt * time_scale`` is the PDE time per step (exact in the small-step
        limit for a constant :math:`\xi`; with a time-dependent :math:`\xi` the particles
        see :math:`\xi(t/\text{time\_scale})`, so choose ``lr = 1 - momentum + lr2`` to
        validate against such a PDE). For ``"restarted-nesterov"`` there is no
        first-order limit and ``time_scale = lr`` is nominal.

    Notes
    -----
    ``state.x`` is the iterate :math:`w` (the optimiser's ``w`` array itself);
    ``state.extra["optimizer"]`` is the :class:`OptimizerState` (with :math:`u`,
    :math:`w_{t-1}`, the restart counter). Coordinates, vectors and diagnostics are those
    of ``sgd`` evaluated at :math:`w`, never at the extrapolated :math:`u`. Any noise or
    extra term inside ``sgd``'s own ``advance`` (e.g. noisy SGD) is *not* applied; only
    its minibatch gradient is used.
    """

    def __init__(self, sgd, optimizer: str | Optimizer = "nesterov", **params):
        missing = [a for a in _SGD_ATTRS if not hasattr(sgd, a)]
        if missing:
            raise TypeError(f"sgd lacks the attribute(s) {missing} of the two-layer SGD interface")
        self._step_size = self._step_size_function(sgd)
        batch = sgd.batch
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"sgd.batch must be a positive integer, got {batch!r}")
        self.sgd = sgd
        self.kappa_tilde: float | None = None
        if not isinstance(optimizer, Optimizer):
            params.setdefault("lr", 1.0)
            if isinstance(optimizer, str) and optimizer.lower() == "mass" and "lr2" not in params:
                kt = params.pop("kappa_tilde", None)
                if kt is None:
                    kt = self._estimate_kappa_tilde(sgd)
                optimizer = MaSS.from_momentum(params.pop("lr"), params.pop("momentum", 0.9), kt)
                self.kappa_tilde = float(kt)
                if params:
                    raise ValueError(f"unknown MaSS parameter(s) {sorted(params)}")
        self.optimizer = make_optimizer(optimizer, **params)
        self.n = int(sgd.n)
        self.time_scale = float(self.optimizer.time_scale)
        self.dt = float(sgd.dt) * self.time_scale
        self.names = tuple(sgd.names)
        self.method = self.optimizer.name                  # the config's method name

    @staticmethod
    def _step_size_function(sgd) -> Callable[[int], float]:
        f = getattr(sgd, "step_size", None)
        if callable(f):
            return lambda k: float(f(k))
        if hasattr(sgd, "eps") and callable(getattr(sgd, "xi", None)):
            return lambda k: float(sgd.eps) * float(sgd.xi(k * float(sgd.eps))) / 2.0
        raise TypeError("sgd needs a step_size(k) method, or attributes eps and a callable xi "
                        "(s_k = eps * xi(k * eps) / 2)")

    @staticmethod
    def _estimate_kappa_tilde(sgd, samples: int = 4000) -> float:
        """:math:`\\tilde\\kappa_m` of the *input* law at the SGD batch size, from a
        sample drawn with a fixed seed (the run's generator is not touched)."""
        x, _ = sgd.data.sample(samples, np.random.default_rng(20240601))
        x = np.asarray(x, dtype=float).reshape(samples, -1)
        return least_squares_constants(x, int(sgd.batch))["kappa_tilde_m"]

    def step_size(self, k: int) -> float:
        """The SGD step :math:`s_k` of the wrapped object."""
        return self._step_size(k)

    # -- state ------------------------------------------------------------------------
    def initial_state(self, rng: np.random.Generator) -> ParticleState:
        s0 = self.sgd.initial_state(rng)
        ost = self.optimizer.init(s0.x)
        extra = dict(getattr(s0, "extra", {}) or {})
        extra["optimizer"] = ost
        return ParticleState(x=ost.w, step=int(getattr(s0, "step", 0)), extra=extra)

    @staticmethod
    def _ostate(state: ParticleState) -> OptimizerState:
        ost = state.extra.get("optimizer") if state.extra else None
        if not isinstance(ost, OptimizerState):
            raise ValueError("state was not made by MomentumSGD.initial_state "
                             "(no OptimizerState in state.extra['optimizer'])")
        return ost

    def _at_w(self, state: ParticleState) -> ParticleState:
        ost = self._ostate(state)
        if state.x is ost.w:
            return state
        return ParticleState(x=ost.w, step=state.step, extra=state.extra)

    def advance(self, state: ParticleState, steps: int, rng: np.random.Generator) -> None:
        ost = self._ostate(state)
        sgd, opt, batch = self.sgd, self.optimizer, int(self.sgd.batch)
        for _ in range(int(steps)):
            c = 2.0 * self._step_size(state.step)
            xb, yb = sgd.data.sample(batch, rng)

            def grad(u, c=c, xb=xb, yb=yb):
                return c * sgd.stochastic_gradient(u, xb, yb)

            opt.step(ost, grad)
            state.step += 1
            if not (np.all(np.isfinite(ost.w)) and np.all(np.isfinite(ost.u))):
                state.x = ost.w
                raise ParticleFailure(f"non-finite parameters after step {state.step} "
                                      f"(t = {state.step * self.dt:.6g}); reduce the step or lr",
                                      (state.step - 1) * self.dt)
        state.x = ost.w

    # -- checkpoints --------------------------------------------------------------------
    def checkpoint_state(self, state: ParticleState) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The base class's ``(meta, arrays)`` of the iterate :math:`w`, plus the optimiser's
        :math:`u`, :math:`w_{t-1}` and counters (every step is composable: all memory is
        there and each step draws its minibatch from the run's generator)."""
        ost = self._ostate(state)
        rest = {k: v for k, v in state.extra.items() if k != "optimizer"}
        meta, arrays = super().checkpoint_state(ParticleState(x=ost.w, step=state.step, extra=rest))
        arrays.update({"optimizer.u": ost.u, "optimizer.w_prev": ost.w_prev})
        meta["optimizer"] = {"t": int(ost.t), "alpha": float(ost.alpha), "restarts": int(ost.restarts),
                             "restarted": bool(ost.restarted), "gamma": float(ost.gamma)}
        return meta, arrays

    def restore_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> ParticleState:
        rest = {k: v for k, v in arrays.items() if not k.startswith("optimizer.")}
        state = super().restore_state(meta, rest)
        o = meta["optimizer"]
        state.extra["optimizer"] = OptimizerState(
            w=state.x, u=np.array(arrays["optimizer.u"], dtype=float, order="C"),
            w_prev=np.array(arrays["optimizer.w_prev"], dtype=float, order="C"), t=int(o["t"]),
            alpha=float(o["alpha"]), restarts=int(o["restarts"]), restarted=bool(o["restarted"]),
            gamma=float(o["gamma"]))
        return state

    # -- outputs ----------------------------------------------------------------------
    def coordinates(self, state: ParticleState) -> np.ndarray:
        return self.sgd.coordinates(self._at_w(state))

    def vectors(self, state: ParticleState) -> np.ndarray | None:
        f = getattr(self.sgd, "vectors", None)
        return f(self._at_w(state)) if callable(f) else None

    def diagnostics(self, state: ParticleState) -> dict[str, float]:
        f = getattr(self.sgd, "diagnostics", None)
        out = dict(f(self._at_w(state))) if callable(f) else {}
        if isinstance(self.optimizer, RestartedNesterov):
            out["restarts"] = float(self._ostate(state).restarts)
        return out

    def describe(self) -> dict[str, Any]:
        inner = getattr(self.sgd, "describe", None)
        base = dict(inner()) if callable(inner) else {}
        if "method" in base:
            base["sgd_method"] = base.pop("method")
        out = {**base, "method": self.method, "n": self.n, "dt": self.dt,
               "time_scale": self.time_scale, **self.optimizer.describe()}
        if self.kappa_tilde is not None:
            out["kappa_tilde"] = self.kappa_tilde
        return out
