r"""Coordinate systems for densities: Cartesian boxes, tori, radial half-lines, charges.

Every coordinate system is a product of at most two *axes* laid on a py-pde
:class:`~pde.grids.CartesianGrid`; the unknown is always the probability density in
those coordinates (Lebesgue measure :math:`dx`, :math:`dr`, :math:`dc`), so the
finite-volume scheme is one and the same everywhere. What distinguishes the axes is the
**reference measure** :math:`m` that enters the entropy :math:`\int\rho\log(\rho/m)`:

* Cartesian / periodic axis: :math:`m \equiv 1`;
* radial axis for a rotation-invariant law on :math:`\mathbb{R}^d`: the unknown is the
  density :math:`p(r)` of :math:`r = |\theta|` on :math:`[0, R]` and
  :math:`m(r) = r^{d-1}`, because :math:`\rho(\theta) = p(r)/(|S^{d-1}| r^{d-1})` turns
  :math:`\partial_t\rho = \nabla\cdot(\rho\nabla(\Psi+\beta^{-1}\log\rho))` into
  :math:`\partial_t p = \partial_r\big(p\,\partial_r(\Psi + \beta^{-1}\log(p/r^{d-1}))\big)`;
* charge axis :math:`c \in [c_{\min}, c_{\max}]`: :math:`m \equiv 1`;
* two radial axes :math:`(r_1, r_2) = (|\theta_1|, |\theta_2|)` for a law on
  :math:`\mathbb{R}^{d_1}\times\mathbb{R}^{d_2}` invariant under rotations of each
  factor (anisotropic two-layer problems): :math:`m = r_1^{d_1-1}r_2^{d_2-1}`.

Cell values of :math:`\log m` are logarithms of exact cell averages, evaluated without
forming :math:`r^{d-1}` (which overflows for :math:`d = 320`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pde

from ddsolve.grid.quadrature import gauss_legendre

__all__ = ["Axis", "Coordinates", "cartesian", "radial", "with_charge", "log_radial_measure"]



def log_radial_measure(a, b, d: int) -> np.ndarray:
    r""":math:`\log\int_a^b r^{d-1}dr = \log\big((b^d - a^d)/d\big)` for
    :math:`0 \le a < b`, as :math:`d\log b + \log(-\mathrm{expm1}(d\log(a/b))) - \log d`
    (no overflow for large d); ``-inf`` where ``b <= a``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = d * np.log(b) + np.log(-np.expm1(d * (np.log(a) - np.log(b)))) - np.log(float(d))
    return np.where(b > a, out, -np.inf)


@dataclass(frozen=True)
class Axis:
    """One axis of a coordinate system.

    Parameters
    ----------
    name : str
        Coordinate name (``"x"``, ``"y"``, ``"r"``, ``"c"``...), used in diagnostics.
    lower, upper : float
        Extent of the axis.
    cells : int
        Number of finite-volume cells.
    periodic : bool
        Periodic axis (a torus direction); otherwise the boundary is no-flux.
    radial_dim : int, optional
        If given, this is the radius :math:`r\\ge 0` of a rotation-invariant law on
        :math:`\\mathbb{R}^d` with ``d = radial_dim`` and the reference measure is
        :math:`r^{d-1}`.
    """

    name: str
    lower: float
    upper: float
    cells: int
    periodic: bool = False
    radial_dim: int | None = None

    def __post_init__(self) -> None:
        if int(self.cells) != self.cells or self.cells < 2:
            raise ValueError(f"axis {self.name!r}: cells must be an integer >= 2, got {self.cells}")
        if not (np.isfinite(self.lower) and np.isfinite(self.upper) and self.upper > self.lower):
            raise ValueError(
                f"axis {self.name!r}: bounds must be finite with lower < upper, "
                f"got [{self.lower}, {self.upper}]"
            )
        if self.radial_dim is not None:
            if int(self.radial_dim) != self.radial_dim or self.radial_dim < 1:
                raise ValueError(f"radial dimension must be an integer >= 1, got {self.radial_dim}")
            if self.lower != 0:
                raise ValueError("a radial axis starts at r = 0")
            if self.periodic:
                raise ValueError("a radial axis cannot be periodic")

    @property
    def spacing(self) -> float:
        return (self.upper - self.lower) / self.cells

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.lower, self.upper, self.cells + 1)

    @property
    def centers(self) -> np.ndarray:
        e = self.edges
        return 0.5 * (e[1:] + e[:-1])

    def log_weight(self) -> np.ndarray:
        r"""Log of the cell average of the reference measure along this axis.

        For a radial axis, :math:`\log\big((r_+^d - r_-^d)/(d\,h)\big)`
        (:func:`log_radial_measure`).
        """
        if self.radial_dim is None or self.radial_dim == 1:
            return np.zeros(self.cells)
        e = self.edges
        return log_radial_measure(e[:-1], e[1:], self.radial_dim) - np.log(self.spacing)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "bounds": [self.lower, self.upper], "cells": self.cells,
               "periodic": self.periodic}
        if self.radial_dim is not None:
            out["radial_dim"] = self.radial_dim
        return out


class Coordinates:
    """A product of one or two :class:`Axis` objects on a py-pde ``CartesianGrid``.

    Attributes
    ----------
    grid : pde.CartesianGrid
        The grid carrying the density fields (periodicity per axis as in the axes).
    log_m : numpy.ndarray
        Cell values of :math:`\\log m`, shape ``grid.shape``.
    """

    def __init__(self, axes: list[Axis] | tuple[Axis, ...]):
        axes = tuple(axes)
        if len(axes) not in (1, 2):
            raise ValueError(f"coordinates have 1 or 2 axes, got {len(axes)}")
        self.axes = axes
        self.grid = pde.CartesianGrid(
            [[a.lower, a.upper] for a in axes], [a.cells for a in axes],
            periodic=[a.periodic for a in axes],
        )
        logs = [a.log_weight() for a in axes]
        self.log_m = logs[0] if len(logs) == 1 else logs[0][:, None] + logs[1][None, :]
        self.log_m = np.ascontiguousarray(self.log_m, dtype=float)

    # geometry -------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.cells for a in self.axes)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def spacing(self) -> np.ndarray:
        return np.array([a.spacing for a in self.axes])

    @property
    def periodic(self) -> tuple[bool, ...]:
        return tuple(a.periodic for a in self.axes)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([a.upper - a.lower for a in self.axes])

    @property
    def cell_volume(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def radial_dim(self) -> int | None:
        """Dimension ``d`` of the first radial axis (``None`` without one)."""
        for a in self.axes:
            if a.radial_dim is not None:
                return a.radial_dim
        return None

    @property
    def radial_dims(self) -> tuple[int | None, ...]:
        """Per axis: ``d`` of a radial axis, ``None`` otherwise."""
        return tuple(a.radial_dim for a in self.axes)

    @property
    def has_reference_measure(self) -> bool:
        return bool(np.any(self.log_m != 0))

    def cell_centers(self) -> np.ndarray:
        """Cell centres, shape ``(*shape, ndim)``."""
        return np.stack(np.meshgrid(*(a.centers for a in self.axes), indexing="ij"), axis=-1)

    def quadrature_nodes(self, order: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """Tensor Gauss–Legendre nodes in every cell, for cell averages.

        Returns ``(nodes, weights)`` with ``nodes`` of shape ``(*shape, q, ndim)`` and
        ``weights`` of shape ``(q,)`` summing to one; ``order`` points per axis make
        averages of smooth functions exact to :math:`O(h^{2\\,order})`.
        """
        g, w = gauss_legendre(order)
        w = 0.5 * w  # weights of the average over [-1, 1]
        centers = self.cell_centers()
        offsets = np.stack(np.meshgrid(*([g] * self.ndim), indexing="ij"), -1).reshape(-1, self.ndim)
        offsets = offsets * (0.5 * self.spacing)
        weights = np.prod(np.stack(np.meshgrid(*([w] * self.ndim), indexing="ij"), -1)
                          .reshape(-1, self.ndim), axis=-1)
        return centers[..., None, :] + offsets, weights

    def cell_average(self, func, order: int = 2) -> np.ndarray:
        """Cell averages of ``func(points)`` with points of shape ``(..., ndim)``."""
        nodes, weights = self.quadrature_nodes(order)
        return np.asarray(func(nodes), dtype=float) @ weights

    # fields and integrals -------------------------------------------------------
    def integrate(self, values: np.ndarray) -> float:
        """:math:`\\int f\\,dx` of cell values, by the midpoint rule over cells."""
        return float(np.sum(values) * self.cell_volume)

    def field(self, data: np.ndarray | None = None, label: str = "density") -> pde.ScalarField:
        return pde.ScalarField(self.grid, data if data is not None else 0.0, label=label)

    def to_dict(self) -> dict[str, Any]:
        return {"axes": [a.to_dict() for a in self.axes]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Coordinates:
        axes = []
        for a in data["axes"]:
            axes.append(Axis(a["name"], a["bounds"][0], a["bounds"][1], a["cells"],
                             a.get("periodic", False), a.get("radial_dim")))
        return cls(axes)

    def __repr__(self) -> str:
        parts = []
        for a in self.axes:
            tag = " periodic" if a.periodic else (f" radial d={a.radial_dim}" if a.radial_dim else "")
            parts.append(f"{a.name}∈[{a.lower:g},{a.upper:g}]×{a.cells}{tag}")
        return f"Coordinates({', '.join(parts)})"


def cartesian(bounds, cells, periodic=False, names=None) -> Coordinates:
    """A 1D interval or 2D rectangle.

    Parameters
    ----------
    bounds : sequence of (lower, upper)
        One pair per axis (a single pair is accepted for 1D).
    cells : int or sequence of int
    periodic : bool or sequence of bool
    names : sequence of str, optional
        Axis names, default ``x`` and ``y``.
    """
    b = np.asarray(bounds, dtype=float)
    if b.ndim == 1:
        b = b[None, :]
    ndim = b.shape[0]
    cells = np.broadcast_to(np.asarray(cells), (ndim,))
    periodic = np.broadcast_to(np.asarray(periodic, dtype=bool), (ndim,))
    names = names or ("x", "y")[:ndim]
    return Coordinates([Axis(names[k], b[k, 0], b[k, 1], int(cells[k]), bool(periodic[k]))
                        for k in range(ndim)])


def radial(dim: int | Sequence[int], r_max: float | Sequence[float],
           cells: int | Sequence[int]) -> Coordinates:
    """Radius :math:`r = |\\theta| \\in [0, R]` of a rotation-invariant law on
    :math:`\\mathbb{R}^{dim}`; with two dimensions ``[d1, d2]`` the block radii
    :math:`(r_1, r_2)` of a law on :math:`\\mathbb{R}^{d_1}\\times\\mathbb{R}^{d_2}`."""
    dims = [int(d) for d in np.atleast_1d(dim)]
    n = len(dims)
    if n not in (1, 2):
        raise ValueError(f"radial coordinates take 1 or 2 dimensions, got {dims}")
    r_max = np.broadcast_to(np.asarray(r_max, dtype=float), (n,))
    cells = np.broadcast_to(np.asarray(cells), (n,))
    names = ("r",) if n == 1 else ("r1", "r2")
    return Coordinates([Axis(names[k], 0.0, float(r_max[k]), int(cells[k]), False, dims[k])
                        for k in range(n)])


def with_charge(base: Coordinates, c_bounds, c_cells: int, name: str = "c") -> Coordinates:
    """Product of a 1D coordinate system with a charge axis :math:`c` (no-flux)."""
    if base.ndim != 1:
        raise ValueError("a charge axis is added to 1D coordinates only")
    return Coordinates([base.axes[0], Axis(name, float(c_bounds[0]), float(c_bounds[1]), int(c_cells))])
