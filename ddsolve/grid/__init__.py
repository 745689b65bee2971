"""The discretisation in space: coordinates (Cartesian boxes, tori, radial half-lines,
charge axes), cell quadrature, face differences, the cell-averaged interaction operators
and :class:`GridModel`, the model seen on a grid (cell values of V, Ψ[ρ], the discrete
mass, energy and free energy)."""

from ddsolve.grid.coordinates import Axis, Coordinates, cartesian, radial, with_charge
from ddsolve.grid.grid_model import DENSITY_FLOOR, GridModel
from ddsolve.grid.interaction import INTERACTION_METHODS, make_interaction

__all__ = ["Axis", "Coordinates", "cartesian", "radial", "with_charge", "GridModel",
           "DENSITY_FLOOR", "INTERACTION_METHODS", "make_interaction"]
