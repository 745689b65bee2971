"""Sparse (SciPy) reference implementation of the implicit finite-volume operator and its
exact Jacobian, used by the tests to check the compiled kernels of
:mod:`ddsolve.schemes.fv.newton` (the package itself uses only the compiled ones).

Faces are index arrays (left cell, right cell, spacing), so the operator and Jacobian are
assembled with vectorised gathers; the nonlocal part of the Jacobian is a matrix-free
product through the interaction operator.
"""

import numpy as np
import scipy.sparse as sp

from ddsolve.grid.faces import Faces
from ddsolve.grid.grid_model import DENSITY_FLOOR
from ddsolve.schemes.fv.pde import DistributionalDynamicsPDE

FLUXES = ("upwind", "logmean", "sg")


def log_mean(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Logarithmic mean :math:`\Lambda(a,b)=(b-a)/(\log b-\log a)` and its partial
    derivatives, for :math:`a, b > 0` (series near :math:`a=b`)."""
    a = np.maximum(a, DENSITY_FLOOR)
    b = np.maximum(b, DENSITY_FLOOR)
    D = np.log(b) - np.log(a)
    near = np.abs(D) < 1e-3
    Ds = np.where(near, 1.0, D)
    lam = np.where(near, 0.0, (b - a) / Ds)
    da = np.where(near, 0.0, (lam / a - 1.0) / Ds)
    db = np.where(near, 0.0, (1.0 - lam / b) / Ds)
    # near a = b: Lambda = s/2 - d^2/(6 s) + O(d^4/s^3), s = a + b, d = b - a
    s, d = a + b, b - a
    lam = np.where(near, 0.5 * s - d * d / (6 * s), lam)
    da = np.where(near, 0.5 + d / (3 * s) + d * d / (6 * s * s), da)
    db = np.where(near, 0.5 - d / (3 * s) + d * d / (6 * s * s), db)
    return lam, da, db


def bernoulli(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`B(x) = x/(e^x-1)` and :math:`B'(x) = (e^x - 1 - x e^x)/(e^x-1)^2` (Taylor
    series to :math:`O(x^5)` for :math:`|x| < 0.05`)."""
    near = np.abs(x) < 0.05
    xs = np.where(near, 1.0, x)
    em = np.expm1(xs)
    B = np.where(near, 1 - x / 2 + x**2 / 12 - x**4 / 720, xs / em)
    with np.errstate(over="ignore", invalid="ignore"):
        dB = (em - xs * np.exp(xs)) / em**2
    dB = np.where(near, -0.5 + x / 6 - x**3 / 180 + x**5 / 5040, np.nan_to_num(dB))
    return B, dB


class ImplicitFVOperator:
    """The finite-volume operator :math:`L_h` on flattened cell values and its exact
    Jacobian, with the ``"upwind"`` or ``"logmean"`` face flux (module doc).

    Faces are stored as index arrays (left cell, right cell, spacing), one entry per
    interior face of every axis (and the wrap-around faces of periodic axes), so the
    operator and the Jacobian are assembled with vectorised gathers and one sparse
    conversion per Newton iteration.

    Parameters
    ----------
    eq : DistributionalDynamicsPDE
        Supplies the grid model (cell potentials, interaction, temperature, schedule).
    flux : str
        ``"upwind"``, ``"logmean"`` or ``"sg"`` (Scharfetter-Gummel); the last two need a
        finite ``beta``.
    """

    def __init__(self, eq: DistributionalDynamicsPDE, flux: str = "upwind") -> None:
        if flux not in FLUXES:
            raise ValueError(f"implicit flux must be one of {FLUXES}, got {flux!r}")
        gm = eq.grid_model
        if flux != "upwind" and gm.temperature == 0:
            raise ValueError(f"the {flux!r} flux needs diffusion (finite beta); use 'upwind'")
        self.eq, self.gm, self.flux = eq, gm, flux
        coords = gm.coords
        M = coords.size
        self.M = M
        self.faces = Faces(coords)
        self.L, self.R, self.inv_h = self.faces.left, self.faces.right, self.faces.inv_h
        # sparsity pattern of the Jacobian (with the diagonal for the identity)
        cells = np.arange(M)
        self._rows = np.concatenate([self.L, self.L, self.R, self.R, cells])
        self._cols = np.concatenate([self.L, self.R, self.L, self.R, cells])
        self.log_m = gm.log_m.ravel()
        self.T = gm.temperature
        self.vol = coords.cell_volume

    def _grad(self, phi: np.ndarray) -> np.ndarray:
        r"""Face differences :math:`(\phi_R - \phi_L)/h`."""
        return self.faces.difference(phi)

    def _div(self, F: np.ndarray) -> np.ndarray:
        r""":math:`G^\top F` (minus the divergence)."""
        return self.faces.adjoint(F)

    def _phi(self, rho: np.ndarray) -> np.ndarray:
        r""":math:`\Psi + \beta^{-1}\log(\rho/m)` (upwind) or
        :math:`\Psi - \beta^{-1}\log m` (log-mean, Scharfetter-Gummel), without :math:`\xi`."""
        phi = self.gm.psi(rho.reshape(self.gm.coords.shape)).ravel()
        if self.T > 0:
            if self.flux == "upwind":
                phi = phi + self.T * (np.log(np.maximum(rho, DENSITY_FLOOR)) - self.log_m)
            else:
                phi = phi - self.T * self.log_m
        return phi

    def _fluxes(self, rho: np.ndarray, xi: float):
        """Face fluxes ``F`` and their derivatives: w.r.t. the left and right densities
        at fixed potential (``dL, dR``) and w.r.t. the potential difference ``dg``."""
        g = self._grad(self._phi(rho))
        rL, rR = rho[self.L], rho[self.R]
        if self.flux == "upwind":
            u = -xi * g
            F = np.maximum(u, 0.0) * rL + np.minimum(u, 0.0) * rR
            return F, np.maximum(u, 0.0), np.minimum(u, 0.0), -xi * np.where(u > 0, rL, rR)
        if self.flux == "sg":
            # F = xi T/h (B(x) rho_L - B(-x) rho_R), x = h g / T; dL, dR are the full
            # derivatives here (the diffusion is inside B)
            x = g / (self.T * self.inv_h)
            B, dB = bernoulli(x)
            Bm, dBm = bernoulli(-x)
            c = xi * self.T * self.inv_h
            F = c * (B * rL - Bm * rR)
            return F, c * B, -c * Bm, xi * (dB * rL + dBm * rR)
        lam, la, lb = log_mean(rL, rR)
        F = -xi * (lam * g + self.T * (rR - rL) * self.inv_h)
        return F, -xi * la * g, -xi * lb * g, -xi * lam

    def rate(self, rho: np.ndarray, t: float) -> np.ndarray:
        r""":math:`L_h(\rho)` on flattened cell values."""
        return self._div(self._fluxes(rho, self.gm.model.xi(t))[0])

    def jacobian_parts(self, rho: np.ndarray, t: float, shift: float = 0.0, scale: float = 1.0):
        """``shift*I + scale*J_local`` as a CSC matrix, and a function applying the
        nonlocal part of ``J`` (``None`` without interaction)."""
        xi = self.gm.model.xi(t)
        F, dL, dR, dg = self._fluxes(rho, xi)
        # dF/drho_L and dF/drho_R including the local part of the potential difference
        if self.T > 0 and self.flux == "upwind":
            inv_rho = 1.0 / np.maximum(rho, DENSITY_FLOOR)
            a = dL - dg * self.inv_h * self.T * inv_rho[self.L]
            b = dR + dg * self.inv_h * self.T * inv_rho[self.R]
        elif self.T > 0 and self.flux == "logmean":
            a = dL + xi * self.T * self.inv_h
            b = dR - xi * self.T * self.inv_h
        else:
            a, b = dL, dR
        wa, wb = scale * a * self.inv_h, scale * b * self.inv_h
        data = np.concatenate([-wa, -wb, wa, wb, np.full(self.M, shift)])
        J = sp.csc_matrix((data, (self._rows, self._cols)), shape=(self.M, self.M))
        op = self.gm.operator
        if op is None:
            return J, None
        shape = self.gm.coords.shape

        def nonlocal_matvec(v: np.ndarray) -> np.ndarray:
            return self._div(dg * self._grad(op.apply(v.reshape(shape)).ravel()))

        return J, nonlocal_matvec


class UpwindOperator(ImplicitFVOperator):
    """:class:`ImplicitFVOperator` with the first-order upwind flux."""

    def __init__(self, eq: DistributionalDynamicsPDE) -> None:
        super().__init__(eq, "upwind")
