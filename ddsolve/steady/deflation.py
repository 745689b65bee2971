r"""Deflation: every stationary state reachable from a set of guesses, at fixed parameters.

After states :math:`z_1,\dots,z_k` are found, Newton's method is applied to the deflated
residual

.. math:: \mathcal M(z)R(z), \qquad \mathcal M(z) = \prod_{j=1}^k
          \Big(\frac{1}{\|z - z_j\|^p} + s\Big),

which has the same zeros as :math:`R` except the :math:`z_j`, which repel the iteration
(Farrell, Birkisson & Funke, SIAM J. Sci. Comput. 37, 2015, Thm 3.1, with the defaults
:math:`p = 2`, :math:`s = 1`). Its Newton step is the Newton step :math:`\delta` of
:math:`R` rescaled by :math:`\tau = 1/(1 - \nabla\log\mathcal M\cdot\delta)` (ibid. §3.2),
so deflation reuses the Jacobian and linear solver of :func:`~ddsolve.steady.newton`.

The distance is the :math:`L^2` norm of the interaction potential
(:meth:`SelfConsistency.norm`). Guesses: the Gibbs state of :math:`V` alone, the user's
initial density, perturbations along the eigenvectors of the Jacobian at the Gibbs state
of :math:`V` with the smallest eigenvalues (the directions in which states bifurcate),
and randomised restarts. A guess that fails (iteration cap, residual blow-up, line-search
failure) is counted and dropped.

Examples
--------
>>> from ddsolve.grid import cartesian, GridModel
>>> from ddsolve.model import Model, DoubleWellPotential, QuadraticKernel
>>> gm = GridModel(Model(DoubleWellPotential(), QuadraticKernel(1.0), beta=3.0),
...                cartesian([-3.0, 3.0], 150))
>>> result = find_states(SelfConsistency(gm), seed=0)
>>> len(result.states)
3
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ddsolve.steady.selfconsistency import NewtonFailure, SelfConsistency, SteadyState, newton

__all__ = ["Deflation", "DeflationResult", "find_states", "default_guesses"]


class Deflation:
    """The deflation operator of a list of known states.

    Parameters
    ----------
    power : float
        :math:`p > 0`.
    shift : float
        :math:`s \\ge 0`.
    """

    def __init__(self, power: float = 2.0, shift: float = 1.0) -> None:
        if not power > 0:
            raise ValueError(f"deflation power must be positive, got {power}")
        if not shift >= 0:
            raise ValueError(f"deflation shift must be non-negative, got {shift}")
        self.power, self.shift = float(power), float(shift)
        self.known: list[np.ndarray] = []

    def add(self, z: np.ndarray) -> None:
        self.known.append(np.array(z, float))

    def factor(self, problem: SelfConsistency, z: np.ndarray) -> float:
        f = 1.0
        for zk in self.known:
            d = problem.norm(z - zk)
            f *= (d ** -self.power if d > 0 else math.inf) + self.shift
        return f

    def scale_step(self, problem: SelfConsistency, y: np.ndarray, step: np.ndarray) -> np.ndarray:
        """The deflated Newton step from the Newton step ``step`` (reduced unknowns)."""
        if not self.known:
            return step
        z, dz = problem.expand(y), problem.expand(step)
        w, dw = problem.potential(z), problem.potential(dz)
        vol = problem.vol
        g = 0.0  # grad log M . dz
        for zk in self.known:
            diff = w - problem.potential(zk)
            d2 = float(diff @ diff) * vol
            if d2 == 0:
                continue
            d = math.sqrt(d2)
            m = d ** -self.power
            # d/dz (d^-p) . dz = -p d^-p-2 <diff, dw>
            g += (-self.power * m / d2 * float(diff @ dw) * vol) / (m + self.shift)
        denom = 1.0 - g
        return step / denom if abs(denom) > 1e-12 else step


@dataclass
class DeflationResult:
    """States found (distinct, in order of discovery) and the bookkeeping."""

    states: list[SteadyState]
    guesses_tried: int
    failures: int
    newton_iterations: int
    messages: list[str] = field(default_factory=list)


def default_guesses(problem: SelfConsistency, n_random: int = 8, amplitudes=(0.5, 2.0),
                    n_modes: int = 3, rng: np.random.Generator | None = None) -> list[tuple[str, np.ndarray]]:
    """Named guesses: the Gibbs state of :math:`V`, ± perturbations along the ``n_modes``
    eigenvectors of the Jacobian there with the smallest eigenvalues, and ``n_random``
    random combinations of them (or random potentials when there are none)."""
    rng = np.random.default_rng() if rng is None else rng
    z0 = problem.initial_guess()
    out = [("gibbs of V", z0)]
    if problem.n == 0:
        return out
    scale = max(problem.norm(z0), 1.0 / problem.beta)
    modes = _soft_modes(problem, z0, n_modes)
    for k, v in enumerate(modes):
        vn = v / max(problem.norm(v), 1e-300)
        for a in amplitudes:
            for sgn in (1, -1):
                out.append((f"mode {k} x {sgn * a:g}", z0 + sgn * a * scale * vn))
    for j in range(n_random):
        if modes:
            c = rng.standard_normal(len(modes)) * rng.uniform(0.2, 3.0)
            v = sum(ci * m / max(problem.norm(m), 1e-300) for ci, m in zip(c, modes))
        else:
            v = rng.standard_normal(problem.n)
            v /= max(problem.norm(v), 1e-300)
        out.append((f"random {j}", z0 + scale * v))
    return out


def _soft_modes(problem: SelfConsistency, z: np.ndarray, k: int) -> list[np.ndarray]:
    """Eigenvectors of the Jacobian (reduced, expanded back) with the smallest eigenvalues."""
    y = problem.reduce(z)
    J = problem.reduced_jacobian(y)
    if not isinstance(J, np.ndarray):
        import scipy.sparse.linalg as spla

        k = min(k, J.shape[0] - 2)
        if k < 1:
            return []
        lam, vec = spla.eigs(J, k=k, which="SR")
    else:
        lam, vec = np.linalg.eig(J)
    order = np.argsort(lam.real)[:k]
    return [problem.expand(np.real(vec[:, i])) for i in order]


def _same(problem: SelfConsistency, a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    scale = 1.0 + max(problem.norm(a), problem.norm(b))
    return problem.norm(a - b) <= tol * scale


def find_states(problem: SelfConsistency, guesses: list[tuple[str, np.ndarray]] | None = None, *,
                n_random: int = 8, power: float = 2.0, shift: float = 1.0, tol: float = 1e-12,
                max_iter: int = 100, seed: int | None = None, distinct_tol: float = 1e-6,
                max_states: int = 50) -> DeflationResult:
    """Run deflated Newton from every guess; return the distinct states found.

    Parameters
    ----------
    problem : SelfConsistency
    guesses : list of (label, z), optional
        Default :func:`default_guesses` with ``n_random`` random restarts.
    power, shift : float
        Deflation parameters (:class:`Deflation`).
    tol, max_iter : float, int
        Newton tolerance and iteration cap per guess.
    seed : int, optional
        Seed of the random restarts.
    distinct_tol : float
        Relative distance below which two converged states are the same (a state that
        escapes deflation by converging onto a known one, or onto its image under the
        symmetry, is not counted twice).
    max_states : int
        Stop after this many states.

    Returns
    -------
    DeflationResult
    """
    rng = np.random.default_rng(seed)
    if guesses is None:
        guesses = default_guesses(problem, n_random=n_random, rng=rng)
    defl = Deflation(power, shift)
    states: list[SteadyState] = []
    tried = failures = iterations = 0
    messages = []
    for label, z0 in guesses:
        # each guess is rerun while it keeps finding new states (the deflated residual
        # may have further zeros reachable from the same start)
        for _ in range(max_states):
            tried += 1
            try:
                st = newton(problem, z0, tol=tol, max_iter=max_iter, deflate=defl)
            except NewtonFailure as err:
                failures += 1
                messages.append(f"{label}: {err}")
                break
            iterations += st.iterations
            if any(_same(problem, st.z, s.z, distinct_tol) for s in states) or any(
                    _same(problem, st.z, img, distinct_tol) for s in states for img in problem.translation_images(s.z)):
                messages.append(f"{label}: converged onto a known state")
                break
            states.append(st)
            defl.add(st.z)
            for img in problem.translation_images(st.z):
                if not _same(problem, img, st.z, distinct_tol):
                    defl.add(img)
            if len(states) >= max_states:
                break
        if len(states) >= max_states:
            break
    return DeflationResult(states, tried, failures, iterations, messages)
