r"""The interaction term of :math:`\Psi` as an operator on grid densities.

Given cell averages :math:`\rho_j` the operator returns cell values

.. math:: (\mathcal{U}\rho)_i = \sum_j K_{ij}\,\rho_j\,|C_j|, \qquad
          K_{ij} = \frac{1}{|C_i||C_j|}\int_{C_i}\!\int_{C_j} U(x, y)\,dy\,dx,

the cell-averaged kernel, evaluated with tensor Gauss–Legendre quadrature (2 points per
axis by default: error :math:`O(h^4)` for smooth :math:`U`, :math:`O(h^2)` across a kink
such as :math:`|x-y|` on the diagonal). :math:`K` is symmetric, so
:math:`\Psi_i = V_i + (\mathcal U\rho)_i` is exactly the gradient of the discrete energy
:math:`E_h = \sum_i V_i\rho_i|C_i| + \tfrac12\sum_{ij}\rho_i K_{ij}\rho_j|C_i||C_j|`
— the structure behind the discrete free-energy decay of the finite-volume scheme
(Carrillo, Chertock & Huang, CiCP 17, 2015, §2).

Three representations of the *same* :math:`K`:

* :class:`DenseInteraction` — the matrix, built once (``O(M^2)`` memory);
* :class:`ConvolutionInteraction` — :math:`U = W(x-y)` on a uniform grid: :math:`K_{ij}`
  depends on :math:`i-j` only and is applied by FFT (circular on periodic axes,
  zero-padded otherwise), :math:`O(M\log M)`;
* :class:`SeparableInteraction` — :math:`U = \sum_k f_k(x)g_k(y)`: :math:`K = F^\top G`
  with :math:`r` rows, :math:`O(rM)`.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from ddsolve.grid.coordinates import Coordinates
from ddsolve.model.kernels import Kernel

__all__ = [
    "InteractionOperator",
    "DenseInteraction",
    "ConvolutionInteraction",
    "SeparableInteraction",
    "make_interaction",
    "interaction_method",
    "quadrature_matrix",
    "INTERACTION_METHODS",
    "pack_operator",
]

INTERACTION_METHODS = ("auto", "dense", "fft", "separable")

# The operator kinds of compiled code (ddsolve.schemes.fv.kernels.compute_psi); each
# operator packs its own arrays into the tuple (kind, vol, K, F, G, Khat, fft_shape).
KIND_NONE, KIND_DENSE, KIND_SEPARABLE, KIND_FFT = 0, 1, 2, 3
_D2, _DC, _S1 = np.zeros((1, 1)), np.zeros((1, 1), dtype=complex), (1, 1)
_DENSE_MAX_CELLS = 20_000


def _wrap(z: np.ndarray, coords: Coordinates) -> np.ndarray:
    """Minimal-image displacement on periodic axes."""
    z = np.array(z, dtype=float, copy=True)
    for k, axis in enumerate(coords.axes):
        if axis.periodic:
            L = axis.upper - axis.lower
            z[..., k] -= L * np.round(z[..., k] / L)
    return z


def _kernel_values(kernel: Kernel, x: np.ndarray, y: np.ndarray, coords: Coordinates) -> np.ndarray:
    """U(x, y), with translation-invariant kernels seen through the minimal image."""
    if kernel.translation_invariant and any(coords.periodic):
        return kernel.W(_wrap(x - y, coords))
    return kernel(x, y)


def quadrature_matrix(kernel: Kernel, coords: Coordinates, quadrature: int = 2,
                      block_bytes: int = 64 * 2**20) -> np.ndarray:
    """:math:`K_{ij}` by tensor Gauss–Legendre quadrature over every pair of cells, in
    row blocks of about ``block_bytes``."""
    M = coords.size
    nodes, w = coords.quadrature_nodes(quadrature)
    nodes = nodes.reshape(M, -1, coords.ndim)
    q = w.size
    ww = np.outer(w, w)
    K = np.empty((M, M))
    rows = max(1, int(block_bytes // (8 * M * q * q * max(coords.ndim, 1))))
    for start in range(0, M, rows):
        x = nodes[start:start + rows, None, :, None, :]
        y = nodes[None, :, None, :, :]
        K[start:start + rows] = np.einsum("ijab,ab->ij", _kernel_values(kernel, x, y, coords), ww)
    return K


class InteractionOperator:
    """Base class. ``apply(rho)`` returns :math:`\\mathcal U\\rho` with the grid's shape."""

    method = "none"

    def __init__(self, kernel: Kernel, coords: Coordinates, quadrature: int = 2):
        self.kernel = kernel
        self.coords = coords
        self.quadrature = quadrature

    def apply(self, rho: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def packed(self) -> tuple:
        """``(kind, vol, K, F, G, Khat, fft_shape)`` for compiled code; unused slots are
        dummies."""
        raise NotImplementedError

    def matrix(self) -> np.ndarray:
        """The dense matrix :math:`K` (for tests and small grids)."""
        M = self.coords.size
        eye = np.eye(M) / self.coords.cell_volume
        return np.stack([self.apply(eye[j].reshape(self.coords.shape)).ravel() for j in range(M)], 1)

    def energy(self, rho: np.ndarray) -> float:
        """:math:`\\tfrac12\\sum_{ij}\\rho_iK_{ij}\\rho_j|C_i||C_j|`."""
        return 0.5 * float(np.sum(rho * self.apply(rho))) * self.coords.cell_volume


class DenseInteraction(InteractionOperator):
    """Cell-averaged kernel matrix, built once: gathered from the convolution offsets for
    translation-invariant kernels on Cartesian grids, by :func:`quadrature_matrix`
    otherwise."""

    method = "dense"

    def __init__(self, kernel: Kernel, coords: Coordinates, quadrature: int = 2,
                 block_bytes: int = 64 * 2**20):
        super().__init__(kernel, coords, quadrature)
        M = coords.size
        if M > _DENSE_MAX_CELLS:
            raise ValueError(
                f"dense interaction on {M} cells needs {M * M * 8 / 2**30:.1f} GiB; "
                f"use interaction method 'fft' (convolution kernels) or 'separable', "
                f"or at most {_DENSE_MAX_CELLS} cells"
            )
        if kernel.translation_invariant and coords.radial_dim is None:
            # K_ij depends on i - j only: gather it from the offsets of the convolution
            # operator (the same quadrature), O(M) kernel evaluations instead of O(M^2)
            K = ConvolutionInteraction(kernel, coords, quadrature).toeplitz_matrix()
        else:
            K = quadrature_matrix(kernel, coords, quadrature, block_bytes)
        self.K = np.ascontiguousarray(0.5 * (K + K.T))  # exact symmetry despite rounding

    def apply(self, rho):
        return (self.K @ rho.ravel()).reshape(rho.shape) * self.coords.cell_volume

    def packed(self):
        return (KIND_DENSE, self.coords.cell_volume, self.K, _D2, _D2, _DC, _S1)

    def matrix(self):
        return self.K.copy()


class ConvolutionInteraction(InteractionOperator):
    """FFT application of a translation-invariant kernel :math:`W(x-y)` on a uniform grid.

    The offsets :math:`K(i-j)` are the same cell-averaged quantities as in
    :class:`DenseInteraction`, so both operators agree to round-off.
    """

    method = "fft"

    def __init__(self, kernel: Kernel, coords: Coordinates, quadrature: int = 2):
        if not kernel.translation_invariant:
            raise ValueError("FFT interaction needs a translation-invariant kernel U = W(x - y)")
        if coords.radial_dim is not None:
            raise ValueError("FFT interaction is not available on radial coordinates")
        super().__init__(kernel, coords, quadrature)
        shape = coords.shape
        # FFT length per axis: n on periodic axes, 2n (zero padding) otherwise
        self.fft_shape = tuple(n if p else 2 * n for n, p in zip(shape, coords.periodic))
        offs = []
        for n, p, h in zip(shape, coords.periodic, coords.spacing):
            k = np.arange(n) if p else np.concatenate([np.arange(n), [0], np.arange(-n + 1, 0)])
            offs.append(k * h)
        disp = np.stack(np.meshgrid(*offs, indexing="ij"), axis=-1)  # (*fft_shape, ndim)
        g, _ = coords.quadrature_nodes(quadrature)
        centers = coords.cell_centers()
        rel = (g - centers[..., None, :]).reshape(-1, g.shape[-2], coords.ndim)[0]  # (q, ndim)
        _, w = coords.quadrature_nodes(quadrature)
        z = disp[..., None, None, :] + rel[:, None, :] - rel[None, :, :]
        vals = kernel.W(_wrap(z, coords))
        kvec = np.einsum("...ab,a,b->...", vals, w, w)
        pad_mask = np.ones(self.fft_shape, dtype=bool)
        for ax, (n, p) in enumerate(zip(shape, coords.periodic)):
            if not p:
                idx = [slice(None)] * coords.ndim
                idx[ax] = n
                pad_mask[tuple(idx)] = False
        kvec = np.where(pad_mask, kvec, 0.0)
        self.kernel_vector = kvec
        self._kernel_hat = scipy.fft.rfftn(kvec)

    def toeplitz_matrix(self) -> np.ndarray:
        """The dense matrix :math:`K_{ij} = k(i - j)` gathered from the offsets."""
        idx = [np.arange(n) for n in self.coords.shape]
        grids = np.meshgrid(*idx, indexing="ij")
        cells = np.stack([g.ravel() for g in grids], axis=-1)  # (M, ndim) multi-indices
        diff = cells[:, None, :] - cells[None, :, :]
        # offset k >= 0 sits at index k; k < 0 at L + k (L = fft length on that axis)
        index = tuple(np.mod(diff[..., a], L) for a, L in enumerate(self.fft_shape))
        return self.kernel_vector[index]

    def packed(self):
        kvec = self.kernel_vector.reshape(self.kernel_vector.shape[0], -1)
        shape = tuple(int(n) for n in kvec.shape)
        khat = np.fft.rfft(kvec[:, 0]).reshape(-1, 1) if shape[1] == 1 else np.fft.rfftn(kvec)
        return (KIND_FFT, self.coords.cell_volume, _D2, _D2, _D2, np.ascontiguousarray(khat), shape)

    def apply(self, rho):
        shape = self.coords.shape
        rho_hat = scipy.fft.rfftn(rho, s=self.fft_shape)
        conv = scipy.fft.irfftn(rho_hat * self._kernel_hat, s=self.fft_shape)
        return conv[tuple(slice(0, n) for n in shape)] * self.coords.cell_volume


class SeparableInteraction(InteractionOperator):
    """:math:`U(x,y) = \\sum_k f_k(x) g_k(y)`: :math:`(\\mathcal U\\rho)_i =
    \\sum_k \\bar f_k(i) \\sum_j \\bar g_k(j)\\rho_j|C_j|` with cell averages
    :math:`\\bar f_k,\\bar g_k`."""

    method = "separable"

    def __init__(self, kernel: Kernel, coords: Coordinates, quadrature: int = 2, terms=None):
        super().__init__(kernel, coords, quadrature)
        M = coords.size
        fmap = kernel.feature_map(coords.ndim) if terms is None else None
        if fmap is not None:
            # symmetric form: the same cell-averaged features on both sides
            F = coords.cell_average(fmap, quadrature).reshape(-1, M)
            self.F = self.G = np.ascontiguousarray(_compress(F))
            return
        terms = kernel.separable_terms(coords.ndim) if terms is None else terms
        if terms is None:
            raise ValueError(f"{type(kernel).__name__} has no separable representation")
        F = [coords.cell_average(f, quadrature).ravel() for f, _ in terms]
        G = [coords.cell_average(g, quadrature).ravel() for _, g in terms]
        self.F = np.array(F).reshape(len(terms), M)
        self.G = np.array(G).reshape(len(terms), M)

    @property
    def rank(self) -> int:
        return self.F.shape[0]

    def packed(self):
        return (KIND_SEPARABLE, self.coords.cell_volume, _D2, np.ascontiguousarray(self.F),
                np.ascontiguousarray(self.G), _DC, _S1)

    def apply(self, rho):
        c = self.G @ rho.ravel() * self.coords.cell_volume
        return (c @ self.F).reshape(rho.shape)


COMPRESS_TOL = 1e-15
"""Relative threshold on the squared singular values kept by :func:`_compress`."""


def _compress(F: np.ndarray, tol: float = COMPRESS_TOL) -> np.ndarray:
    r"""Rows ``G`` with ``G.T @ G = F.T @ F`` up to ``tol * ||F.T F||_2``, as few as the
    numerical rank allows.

    A smooth kernel on a grid has small numerical rank however many series terms
    produced it (the two-block Hermite series has ~K^2/4 terms): with the thin SVD
    :math:`F = USV^T`, :math:`F^TF = VS^2V^T`, and dropping :math:`s_i^2 \le tol\,s_1^2`
    changes no entry of :math:`K` by more than :math:`tol\,\|K\|_2`.
    """
    if F.shape[0] <= 16:
        return F
    # eigenvectors of the small Gram matrix F F^T = U S^2 U^T give S V^T = U^T F
    lam, U = np.linalg.eigh(F @ F.T)
    order = np.argsort(lam)[::-1]
    lam, U = lam[order], U[:, order]
    keep = lam > tol * lam[0] if lam[0] > 0 else np.zeros(lam.size, bool)
    keep[0] = True
    return U[:, keep].T @ F


def _separable_ok(kernel: Kernel, coords: Coordinates) -> bool:
    """Separable terms are valid on periodic axes only for kernels with that period."""
    if kernel.separable_terms(coords.ndim) is None and kernel.feature_map(coords.ndim) is None:
        return False
    if not any(coords.periodic):
        return True
    period = getattr(kernel, "length", None)
    return period is not None and all(
        np.isclose(L, period) for L, p in zip(coords.lengths, coords.periodic) if p
    )


def pack_operator(op: InteractionOperator | None, coords: Coordinates) -> tuple:
    """The tuple of compiled code for ``op`` (a zero interaction when ``op`` is None)."""
    if op is None:
        return (KIND_NONE, coords.cell_volume, _D2, _D2, _D2, _DC, _S1)
    return op.packed()


def interaction_method(kernel: Kernel, coords: Coordinates, method: str = "auto") -> str | None:
    """The method :func:`make_interaction` uses for ``method`` (``None`` for a zero kernel),
    without building anything.

    ``auto`` prefers separable (exact, :math:`O(rM)`), then FFT for convolution kernels
    on Cartesian grids with more than 256 cells, then dense.
    """
    if method not in INTERACTION_METHODS:
        raise ValueError(f"interaction method must be one of {INTERACTION_METHODS}, got {method!r}")
    if kernel.is_zero:
        return None
    if method != "auto":
        return method
    if _separable_ok(kernel, coords):
        return "separable"
    if kernel.translation_invariant and coords.radial_dim is None and coords.size > 256:
        return "fft"
    return "dense"


def make_interaction(kernel: Kernel, coords: Coordinates, method: str = "auto",
                     quadrature: int = 2) -> InteractionOperator | None:
    """Choose (:func:`interaction_method`) and build the interaction operator (``None``
    for a zero kernel)."""
    method = interaction_method(kernel, coords, method)
    if method is None:
        return None
    if method == "separable" and not _separable_ok(kernel, coords):
        raise ValueError(f"{type(kernel).__name__} has no separable form valid on these coordinates")
    cls = {"dense": DenseInteraction, "fft": ConvolutionInteraction,
           "separable": SeparableInteraction}[method]
    return cls(kernel, coords, quadrature)
