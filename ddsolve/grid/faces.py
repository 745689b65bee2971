r"""The faces of a grid: which cells each face joins, and differences across faces.

Per axis, a face :math:`f` joins its left cell :math:`L(f)` and right cell :math:`R(f)`
(every interior face, plus the wrap-around face of a periodic axis; the boundary faces of
a no-flux axis carry no flux and are not listed). The face difference and its adjoint,

.. math:: (G\phi)_f = \frac{\phi_{R(f)} - \phi_{L(f)}}{h_f}, \qquad
          (G^\top F)_i = \sum_{f:\,R(f)=i} \frac{F_f}{h_f} - \sum_{f:\,L(f)=i} \frac{F_f}{h_f},

are the discrete gradient and minus the divergence of the finite-volume scheme (Carrillo,
Chertock & Huang, CiCP 17, 2015, eq. (2.3)): :math:`\dot\rho = G^\top F` conserves
:math:`\sum_i \rho_i` exactly. The implicit Newton solver and the discrete dissipation use
these index arrays; the compiled explicit kernels walk the same faces in their loops.
"""

from __future__ import annotations

import numpy as np

from ddsolve.grid.coordinates import Coordinates

__all__ = ["Faces"]


class Faces:
    """Face index arrays of ``coords`` (cells numbered in C order of the grid).

    Attributes
    ----------
    left, right : ndarray of int, shape (n_faces,)
        Flat indices of the cells on either side of each face.
    inv_h : ndarray, shape (n_faces,)
        ``1 / h`` of the axis each face crosses.

    Examples
    --------
    >>> from ddsolve.grid import cartesian
    >>> faces = Faces(cartesian([0.0, 1.0], 4))
    >>> faces.left.tolist(), faces.right.tolist()
    ([0, 1, 2], [1, 2, 3])
    """

    def __init__(self, coords: Coordinates) -> None:
        self.n_cells = coords.size
        idx = np.arange(coords.size).reshape(coords.shape)
        lefts, rights, inv_h = [], [], []
        for a, axis in enumerate(coords.axes):
            cells = np.moveaxis(idx, a, 0)
            if axis.periodic:
                L, R = cells.ravel(), np.roll(cells, -1, axis=0).ravel()
            else:
                L, R = cells[:-1].ravel(), cells[1:].ravel()
            lefts.append(L)
            rights.append(R)
            inv_h.append(np.full(L.size, 1.0 / axis.spacing))
        self.left, self.right = np.concatenate(lefts), np.concatenate(rights)
        self.inv_h = np.concatenate(inv_h)

    def difference(self, phi: np.ndarray) -> np.ndarray:
        r""":math:`(G\phi)_f = (\phi_R - \phi_L)/h` of flat cell values."""
        return (phi[self.right] - phi[self.left]) * self.inv_h

    def adjoint(self, F: np.ndarray) -> np.ndarray:
        r""":math:`G^\top F`: cell sums of :math:`\pm F/h` (minus the divergence)."""
        w = F * self.inv_h
        return (np.bincount(self.right, w, minlength=self.n_cells)
                - np.bincount(self.left, w, minlength=self.n_cells))

    def upwind(self, values: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        """Per face, the value of the cell the velocity comes from (left if it is positive)."""
        return np.where(velocity > 0, values[self.left], values[self.right])
