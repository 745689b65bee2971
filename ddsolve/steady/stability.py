r"""Linear stability of stationary states: the unstable directions, and the decay rates of
the linearised finite-volume dynamics.

At a stationary state :math:`\rho` (constant chemical potential) the discrete dynamics
:math:`\dot\rho = -\xi\,G^\top R\,G\,\mu(\rho)` (face differences :math:`G`, face
densities :math:`R`; :mod:`ddsolve.grid.faces`) linearise to

.. math:: \dot{\delta\rho} = -\xi\,A H\,\delta\rho, \qquad A = G^\top R G, \qquad
          H = \beta^{-1}D_\rho^{-1} + K|C|,

:math:`H` the Hessian of the discrete free energy and :math:`A` a weighted graph
Laplacian acting on mass-preserving perturbations. The decay rates are the eigenvalues
of :math:`\xi AH`, real because :math:`AH` is similar to the symmetric
:math:`A^{1/2}HA^{1/2}`; their non-zero part is the spectrum of the face matrix
:math:`\xi B H B^\top`, :math:`B = R^{1/2}G` (:func:`decay_rates`). By Sylvester's law
of inertia the number of negative rates equals the number of negative eigenvalues of
:math:`H` on :math:`\{\sum_i\delta\rho_i = 0\}`, i.e. of

.. math:: \tilde H = \beta^{-1}I + P D_\rho^{1/2} K D_\rho^{1/2}P\,|C|, \qquad
          P = I - qq^\top,\ q \propto \sqrt\rho,

whose spectrum is :math:`\beta^{-1}` times that of the Newton Jacobian of the
self-consistency map (:mod:`ddsolve.steady.selfconsistency`): the classification
needs no face weights and works in any dimension (:func:`stability`). This is the
discrete counterpart of the linear stability criterion of the uniform state of
McKean–Vlasov on the torus, :math:`1 + \beta\hat W(k) > 0` for all :math:`k`
(Carrillo, Gvalani, Pavliotis & Schlichting, ARMA 235, 2020, on the linear stability of
the uniform state).

Examples
--------
>>> from ddsolve.grid import cartesian, GridModel
>>> from ddsolve.model import Model, DoubleWellPotential, QuadraticKernel
>>> from ddsolve.steady.selfconsistency import SelfConsistency, newton
>>> gm = GridModel(Model(DoubleWellPotential(), QuadraticKernel(1.0), beta=3.0),
...                cartesian([-3.0, 3.0], 150))
>>> sc = SelfConsistency(gm)
>>> stability(sc, newton(sc, sc.initial_guess()))["n_unstable"]  # the symmetric state
1
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla

from ddsolve.grid.faces import Faces
from ddsolve.steady.selfconsistency import DENSE_MAX, SelfConsistency, SteadyState

__all__ = ["stability", "hessian_eigenvalues", "decay_rates", "NEUTRAL_TOL"]

NEUTRAL_TOL = 1e-8
"""Eigenvalues of the Jacobian with :math:`|\\lambda| \\le` this are neutral (symmetries)."""


def _scaled_operator(problem: SelfConsistency, rho: np.ndarray):
    """:math:`P D^{1/2} K D^{1/2} P |C|` as a dense array or a LinearOperator."""
    s = np.sqrt(rho.ravel())
    q = s / np.linalg.norm(s)
    shape = problem.coords.shape
    op = problem.grid_model.operator

    def proj(v):
        return v - q * (q @ v)

    if problem.representation == "separable":
        Fs = problem._F * s  # rank r: the spectrum lives in the span of the features
        Gs = problem._G * s
        Fp = Fs - np.outer(Fs @ q, q)
        Gp = Gs - np.outer(Gs @ q, q)
        return ("lowrank", Fp, Gp)
    if problem.representation == "dense":
        K = problem._K
        C = (K * s[None, :]) * s[:, None]
        C -= np.outer(q, q @ C)
        C -= np.outer(C @ q, q)
        C *= problem.vol
        return ("dense", 0.5 * (C + C.T))
    M = s.size

    def matvec(v):
        v = proj(np.asarray(v).ravel())
        return proj(s * op.apply((s * v).reshape(shape)).ravel())

    return ("operator", spla.LinearOperator((M, M), matvec=matvec, dtype=float))


def hessian_eigenvalues(problem: SelfConsistency, rho: np.ndarray, k: int = 6) -> np.ndarray:
    r"""The ``k`` smallest eigenvalues of :math:`\beta\tilde H` on the mass-preserving
    subspace (equivalently of the Newton Jacobian), ascending; every other eigenvalue is
    larger (``1`` for the directions the interaction does not see)."""
    T = 1.0 / problem.beta
    if problem.n == 0:
        return np.ones(min(k, problem.coords.size - 1))
    kind, *parts = _scaled_operator(problem, rho)
    if kind == "lowrank":
        Fp, Gp = parts
        # nonzero eigenvalues of Fp^T Gp |C| are those of Gp Fp^T |C| (r x r)
        lam = np.linalg.eigvals(Gp @ Fp.T * problem.vol).real
    elif kind == "dense":
        lam = scipy.linalg.eigh(parts[0], eigvals_only=True, subset_by_index=[0, min(k, parts[0].shape[0]) - 1])
    else:
        op = parts[0]
        lam = spla.eigsh(op, k=min(k, op.shape[0] - 2), which="SA", return_eigenvectors=False)
    lam = 1.0 + problem.beta * np.sort(lam)
    full = np.concatenate([lam, np.ones(max(0, k - lam.size))])  # the untouched directions
    return np.sort(full)[:k] if T > 0 else full


def stability(problem: SelfConsistency, state: SteadyState, k: int = 6,
              neutral_tol: float = NEUTRAL_TOL) -> dict[str, Any]:
    """Classify a state: ``n_unstable`` (negative Hessian eigenvalues on mass-preserving
    perturbations), ``n_neutral`` (zero ones: continuous symmetries or a bifurcation),
    ``stable`` (no unstable direction) and the ``k`` smallest ``eigenvalues``."""
    lam = hessian_eigenvalues(problem, state.rho, k)
    n_unstable = int(np.sum(lam < -neutral_tol))
    n_neutral = int(np.sum(np.abs(lam) <= neutral_tol))
    return {"eigenvalues": lam, "n_unstable": n_unstable, "n_neutral": n_neutral,
            "stable": n_unstable == 0}


def _dense_G(faces: Faces) -> np.ndarray:
    n_f = faces.left.size
    G = np.zeros((n_f, faces.n_cells))
    rows = np.arange(n_f)
    G[rows, faces.right] += faces.inv_h
    G[rows, faces.left] -= faces.inv_h
    return G


def decay_rates(problem: SelfConsistency, state: SteadyState, k: int = 6, xi: float = 1.0) -> np.ndarray:
    r"""The ``k`` smallest decay rates of mass-preserving perturbations under the
    linearised finite-volume dynamics (negative: growth), from the face matrix
    :math:`\xi BHB^\top`; face densities are the means of the two cells (the face
    value of either flux to :math:`O(h^2)` at a smooth state). Dense: at most
    :data:`~ddsolve.steady.selfconsistency.DENSE_MAX` cells."""
    coords = problem.coords
    if coords.size > DENSE_MAX:
        raise ValueError(f"decay_rates is dense: at most {DENSE_MAX} cells, got {coords.size}")
    faces = Faces(coords)
    rho = state.rho.ravel()
    G = _dense_G(faces)
    R = 0.5 * (rho[faces.left] + rho[faces.right])
    B = np.sqrt(R)[:, None] * G
    op = problem.grid_model.operator
    K = np.zeros((coords.size,) * 2) if op is None else op.matrix()
    H = np.diag(1.0 / (problem.beta * rho)) + K * coords.cell_volume
    S = B @ H @ B.T
    # remove the circulations (kernel of B^T: constant flux around a periodic axis)
    null = scipy.linalg.null_space(B.T, rcond=1e-12)
    if null.size:
        Q = scipy.linalg.null_space(null.T)
        S = Q.T @ S @ Q
    lam = scipy.linalg.eigh(0.5 * (S + S.T), eigvals_only=True)
    return xi * lam[:k]
