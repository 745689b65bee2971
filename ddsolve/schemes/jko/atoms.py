r"""Potential and interaction energies of weighted atoms on a line, with exact gradients
and the Hessians Newton's method needs.

For atoms :math:`y_i` with masses :math:`m_i` (the Lagrangian unknowns of
:mod:`ddsolve.schemes.jko.lagrangian`),

.. math::

    E(y) = \sum_i m_i V(y_i) + \tfrac12\sum_{ij} m_i m_j U(y_i, y_j), \qquad
    \partial_i E = m_i V'(y_i) + m_i\sum_j m_j\,\partial_1U(y_i,y_j),

    \partial_{ij}E = \delta_{ij}\Big(m_iV''(y_i) + m_i\sum_k m_k\,\partial_{11}U(y_i,y_k)\Big)
                     + m_im_j\,\partial_{12}U(y_i,y_j).

The interaction Hessian has the structure of the kernel: for a separable kernel
:math:`U(x,y)=\sum_k f_k(x)g_k(y)` (Curie–Weiss, Kuramoto, the Hermite features of
two-layer networks) it is a diagonal plus the rank-:math:`K` matrix :math:`P^\top Q`,
:math:`P_{ki} = m_if_k'(y_i)`, :math:`Q_{kj} = m_jg_k'(y_j)`, so a Newton step costs
:math:`O(NK^2)` by Sherman–Morrison–Woodbury; other kernels give a dense matrix.

Gradients are analytic where the model provides them (``Potential.gradient``,
``Kernel.gradient1``, feature gradients) and otherwise by the complex step
:math:`f'(x) = \operatorname{Im} f(x+ih)/h` (exact to round-off for analytic
functions; Squire & Trapp, SIAM Rev. 40, 1998), checked once against ``gradient1``.
Second derivatives, which only enter the Newton matrix and so change the convergence
rate but never the solution, are central differences of first derivatives.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ddsolve.grid.coordinates import Coordinates
from ddsolve.model.base import Model

__all__ = ["AtomEnergy", "HessianParts"]

_COMPLEX_STEP = 1e-30


@dataclass
class HessianParts:
    """``diag`` (N,) plus either the low-rank ``P.T @ Q`` (P, Q of shape (K, N)) or the
    dense ``dense`` (N, N); absent parts are ``None``."""

    diag: np.ndarray
    P: np.ndarray | None = None
    Q: np.ndarray | None = None
    dense: np.ndarray | None = None


def _complex_derivative(f: Callable, x: np.ndarray) -> np.ndarray:
    """``f'(x)`` by the complex step for a function of points ``(..., 1)``."""
    with np.errstate(all="ignore"):
        return np.imag(f((x + 1j * _COMPLEX_STEP)[..., None])) / _COMPLEX_STEP


class AtomEnergy:
    """:math:`E(y)` of a model's potential and interaction for atoms on a 1D axis.

    Parameters
    ----------
    model : Model
        A model in one coordinate (Cartesian or radial).
    coords : Coordinates
        The run's grid: its length sets the finite-difference steps, and its quadrature
        nodes fix the truncation of two-layer feature maps (the same as the grid
        operator's, so JKO and FV runs see the same kernel).

    Examples
    --------
    >>> energy = AtomEnergy(model, coords)                  # doctest: +SKIP
    >>> E, grad = energy.value_and_gradient(y, m)           # doctest: +SKIP
    """

    def __init__(self, model: Model, coords: Coordinates) -> None:
        if coords.ndim != 1:
            raise ValueError("atoms live on a one-dimensional grid")
        self.potential = model.potential
        self.kernel = model.interaction
        self.fd = 1e-5 * float(coords.lengths[0])
        self.mode = "none"
        if self.kernel.is_zero:
            return
        nodes = coords.quadrature_nodes(2)[0].reshape(-1, 1)
        fmap = self.kernel.feature_map(1)
        if fmap is not None:
            if "K" in inspect.signature(fmap).parameters and hasattr(self.kernel, "reduction"):
                K, _ = self.kernel.reduction.choose_order(nodes)  # the grid operator's truncation
                fmap_k = fmap

                def fmap(points, gradient=False, _f=fmap_k, _K=K):
                    return _f(points, K=_K, gradient=gradient)
            self.features = fmap
            self.feature_gradients = bool(getattr(self.kernel, "feature_gradients", False))
            self.mode = "features"
            return
        terms = self.kernel.separable_terms(1)
        if terms is not None and self._complex_step_ok(terms, nodes[:, 0]):
            self.terms = terms
            self.mode = "separable"
            return
        self.mode = "translation" if self.kernel.translation_invariant else "dense"

    def _complex_step_ok(self, terms, x: np.ndarray) -> bool:
        """Whether complex-step derivatives of the separable terms reproduce ``gradient1``."""
        try:
            x = x[:: max(1, x.size // 7)][:7]
            y = x[::-1].copy()
            d = sum(_complex_derivative(f, x) * g(y[:, None]) for f, g in terms)
            ref = self.kernel.gradient1(x[:, None], y[:, None])[:, 0]
        except Exception:  # noqa: BLE001 - a term that rejects complex input: use the dense path
            return False
        scale = max(1.0, float(np.max(np.abs(ref))))
        return bool(np.all(np.isfinite(d)) and np.max(np.abs(d - ref)) <= 1e-10 * scale)

    # potential ------------------------------------------------------------------------
    def _potential(self, y: np.ndarray, m: np.ndarray, hessian: bool):
        p = y[:, None]
        E = float(m @ self.potential(p))
        g = m * self.potential.gradient(p)[:, 0]
        if not hessian:
            return E, g, None
        h = self.fd
        d2 = (self.potential.gradient(p + h)[:, 0] - self.potential.gradient(p - h)[:, 0]) / (2 * h)
        return E, g, m * d2

    # interaction ----------------------------------------------------------------------
    def _feature_values(self, y: np.ndarray, need: int):
        """Features F (K, N) and, for ``need`` >= 1, their derivatives dF, for ``need`` = 2
        also the second derivatives d2F at y (``None`` where not needed)."""
        p = y[:, None]
        h = self.fd
        if need == 0:
            return self.features(p), None, None
        if self.feature_gradients:
            F, dF = self.features(p, gradient=True)
            dF = dF[..., 0]
            if need < 2:
                return F, dF, None
            _, dp = self.features(p + h, gradient=True)
            _, dm = self.features(p - h, gradient=True)
            return F, dF, (dp[..., 0] - dm[..., 0]) / (2 * h)
        F = self.features(p)
        Fp, Fm = self.features(p + h), self.features(p - h)
        return F, (Fp - Fm) / (2 * h), ((Fp - 2 * F + Fm) / h**2 if need == 2 else None)

    def _interaction(self, y: np.ndarray, m: np.ndarray, hessian: bool, gradient: bool = True):
        mode = self.mode
        N = y.size
        if mode == "none":
            return 0.0, np.zeros(N), (HessianParts(np.zeros(N)) if hessian else None)
        if mode == "features":
            F, dF, d2F = self._feature_values(y, 2 if hessian else int(gradient))
            c = F @ m
            E = 0.5 * float(c @ c)
            if not gradient:
                return E, None, None
            g = m * (c @ dF)
            if not hessian:
                return E, g, None
            J = dF * m
            return E, g, HessianParts(m * (c @ d2F), J, J)
        if mode == "separable":
            h = self.fd
            E, g = 0.0, np.zeros(N)
            diag = np.zeros(N)
            P, Q = [], []
            for f, gk in self.terms:
                fv, gv = f(y[:, None]), gk(y[:, None])
                df, dg = _complex_derivative(f, y), _complex_derivative(gk, y)
                G = float(gv @ m)
                E += 0.5 * float(fv @ m) * G
                g += m * df * G
                if hessian:
                    d2f = (_complex_derivative(f, y + h) - _complex_derivative(f, y - h)) / (2 * h)
                    diag += m * d2f * G
                    P.append(m * df)
                    Q.append(m * dg)
            if not hessian:
                return E, g, None
            return E, g, HessianParts(diag, np.array(P), np.array(Q))
        # dense pairwise evaluation
        x1, x2 = y[:, None, None], y[None, :, None]
        U = self.kernel(x1, x2)
        E = 0.5 * float(m @ U @ m)
        G1 = self.kernel.gradient1(x1, x2)[..., 0]
        g = m * (G1 @ m)
        if not hessian:
            return E, g, None
        h = self.fd
        if mode == "translation":
            z = (y[:, None] - y[None, :])[..., None]
            W2 = (self.kernel.W_gradient(z + h) - self.kernel.W_gradient(z - h))[..., 0] / (2 * h)
            np.fill_diagonal(W2, 0.0)  # the self term U(y_i, y_i) = W(0) is constant
            D11, D12 = W2, -W2
        else:
            D11 = (self.kernel.gradient1(x1 + h, x2) - self.kernel.gradient1(x1 - h, x2))[..., 0] / (2 * h)
            D12 = (self.kernel.gradient1(x1, x2 + h) - self.kernel.gradient1(x1, x2 - h))[..., 0] / (2 * h)
        return E, g, HessianParts(m * (D11 @ m), dense=D12 * np.outer(m, m))

    # public -----------------------------------------------------------------------------
    def value(self, y: np.ndarray, m: np.ndarray) -> float:
        """:math:`E(y)` alone (what a line search needs)."""
        Eu = self._interaction(y, m, False, gradient=False)[0] if self.mode == "features" else \
            self._interaction(y, m, False)[0]
        return float(m @ self.potential(y[:, None])) + Eu

    def value_and_gradient(self, y: np.ndarray, m: np.ndarray) -> tuple[float, np.ndarray]:
        """:math:`E(y)` and :math:`\\nabla E(y)`, shape (N,)."""
        Ev, gv, _ = self._potential(y, m, False)
        Eu, gu, _ = self._interaction(y, m, False)
        return Ev + Eu, gv + gu

    def evaluate(self, y: np.ndarray, m: np.ndarray) -> tuple[float, np.ndarray, HessianParts]:
        """:math:`E`, :math:`\\nabla E` and the Hessian parts."""
        Ev, gv, hv = self._potential(y, m, True)
        Eu, gu, parts = self._interaction(y, m, True)
        parts.diag = parts.diag + hv
        return Ev + Eu, gv + gu, parts
