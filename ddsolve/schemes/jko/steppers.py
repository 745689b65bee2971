"""The minimising-movement (JKO) stepper, registered as ``("jko", True)``: the exact
Lagrangian step on 1D and radial grids, the finite-volume (linearised) step elsewhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ddsolve.grid.grid_model import GridModel
from ddsolve.schema import ConfigError
from ddsolve.schemes.jko.solver import JKOSolver
from ddsolve.schemes.registry import register_stepper

__all__ = ["JKO_METHODS", "jko", "jko_method_name"]

JKO_METHODS = ("auto", "lagrangian", "fv")


def jko_method_name(grid_model: GridModel, method: str = "auto") -> str:
    """``lagrangian`` on a 1D non-periodic grid, ``fv`` otherwise (for ``"auto"``)."""
    coords = grid_model.coords
    lagrangian_ok = coords.ndim == 1 and not coords.periodic[0]
    if method == "auto":
        return "lagrangian" if lagrangian_ok else "fv"
    if method == "lagrangian" and not lagrangian_ok:
        raise ConfigError("scheme.method", "'lagrangian' needs a 1D non-periodic grid (an interval "
                                           "or a radius); use 'fv' or 'auto'")
    return method


@register_stepper("jko", implicit=True,
                  doc="minimising movement (JKO): exact Lagrangian step in 1D/radial, "
                      "finite-volume linearised JKO on other grids; BDF2 with time_order = 2")
def jko(grid_model: GridModel, options: Mapping[str, Any]):
    if options.get("dt") is None:
        raise ConfigError("scheme.dt", "required for the JKO scheme (the initial step tau)")
    name = jko_method_name(grid_model, options.get("method", "auto"))
    inner = {k: options[k] for k in ("inner_tol", "max_inner") if options.get(k) is not None}
    if name == "lagrangian":
        from ddsolve.schemes.jko.lagrangian import LagrangianJKO

        method = LagrangianJKO(grid_model, atoms=options.get("atoms"),
                               masses=options.get("atom_masses", "graded"), **inner)
    else:
        from ddsolve.schemes.jko.fv import FiniteVolumeJKO

        if options.get("atoms") is not None:
            raise ConfigError("scheme.atoms", "only used by the Lagrangian method")
        if options.get("time_order", 1) == 2:
            raise ConfigError("scheme.time_order", "2 (BDF2) needs the Lagrangian method (1D or radial "
                                                   "grids); the finite-volume JKO step is first order")
        try:
            method = FiniteVolumeJKO(grid_model, **inner)
        except ValueError as err:
            raise ConfigError("scheme.method", str(err)) from None
    solver = JKOSolver(method, grid_model.model.xi, dt=options["dt"],
                       time_order=options.get("time_order", 1), dt_max=options.get("dt_max"),
                       dt_min=options.get("dt_min", 1e-12), growth=options.get("growth", 2.0))
    return method, solver
