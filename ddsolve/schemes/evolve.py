"""One-call evolution of a grid density, for scripts, tests and studies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pde

from ddsolve.grid.grid_model import GridModel
from ddsolve.schemes.fv.auto import choose_time
from ddsolve.schemes.registry import make_stepper

__all__ = ["evolve", "check_density"]


def check_density(grid_model: GridModel, rho: np.ndarray, name: str = "rho") -> np.ndarray:
    """Return ``rho`` as a float array after checking it is a density on the grid: the
    grid's shape, finite, non-negative, positive mass. Raises ``ValueError`` naming
    ``name`` otherwise."""
    rho = np.asarray(rho, dtype=float)
    shape = grid_model.coords.shape
    if rho.shape != shape:
        raise ValueError(f"{name} must have the grid's shape {shape}, got {rho.shape}")
    if not np.all(np.isfinite(rho)):
        raise ValueError(f"{name} has non-finite values")
    if rho.min() < 0:
        raise ValueError(f"{name} has negative values (min {rho.min():.3g})")
    if not grid_model.mass(rho) > 0:
        raise ValueError(f"{name} has zero mass")
    return rho


def evolve(
    grid_model: GridModel,
    rho0: np.ndarray,
    t_final: float,
    *,
    order: int = 2,
    theta: float = 2.0,
    rk_order: int = 3,
    cfl: float = 0.9,
    dt: float | None = None,
    implicit: bool = False,
    time_order: int = 1,
    flux: str | None = None,
    tracker: Any = None,
    t_start: float = 0.0,
    scheme: str = "fv",
    time: str = "explicit",
    **options: Any,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Evolve cell averages ``rho0`` from ``t_start`` to ``t_final``.

    Parameters
    ----------
    grid_model : GridModel
    rho0 : numpy.ndarray
        Initial cell averages (shape of the grid).
    order, theta : int, float
        Spatial order (1 or 2) and minmod parameter of :class:`DistributionalDynamicsPDE`.
    rk_order, cfl : int, float
        SSP-RK order and CFL fraction (explicit stepping).
    dt : float, optional
        Maximal step (explicit) or the step (``implicit=True``, required there).
    implicit : bool
        Newton-based implicit stepping (:class:`~ddsolve.schemes.fv.implicit.ImplicitEulerSolver`),
        with ``time_order`` 1 (backward Euler) or 2 (BDF2) and face ``flux`` ``"upwind"``
        (first order, its default), ``"logmean"`` or ``"sg"`` (second order, finite beta).
        For ``time="implicit"``/``"imex"`` the default is ``"auto"`` (see
        :class:`~ddsolve.schemes.fv.adaptive.AdaptiveFVSolver`).
    tracker : optional
        Anything py-pde's ``Controller`` accepts as ``tracker`` (the run then goes through
        the ``Controller``; without one the stepper is called directly).
    t_start : float
        Initial time.
    time : str
        Time stepping of the ``"fv"`` scheme (with ``implicit=False``): ``"explicit"``
        (SSP-RK, the default here so that scripts reproduce), ``"implicit"`` or ``"imex"``
        (error-controlled ESDIRK / ARK: ``integrator``, ``rtol``, ``atol`` in
        ``options``), or ``"auto"`` (the rule of :mod:`ddsolve.schemes.fv.auto`, the
        default of ``ddsolve run``).
    scheme : str
        A scheme registered in :mod:`ddsolve.schemes.registry`: ``"fv"``, or ``"jko"``
        (minimising movement; ``dt`` is the initial step and ``time_order`` 2 selects
        BDF2; ``implicit`` does not apply).
    **options
        Further ``[scheme]`` keys of the scheme (``method``, ``atoms``, ``inner_tol``,
        ``dt_max``, ... for ``"jko"``).

    Returns
    -------
    rho : numpy.ndarray
        Final cell averages.
    info : dict
        Solver information (steps, last dt, ...).
    """
    rho0 = check_density(grid_model, rho0, "rho0")
    if not t_final > t_start:
        raise ValueError(f"t_final must exceed t_start={t_start}, got {t_final}")
    options = {"name": scheme, "order": order, "theta": theta, "rk_order": rk_order, "cfl": cfl,
               "dt": dt, "time_order": time_order, "flux": flux, **options}
    if scheme == "fv":
        options["implicit"] = implicit
        if not implicit:
            mode, reason = choose_time(grid_model, {**options, "time": time}, rho0, t_final - t_start)
            options.update(time=mode, time_reason=reason)
    _, solver = make_stepper(grid_model, options)
    state = grid_model.coords.field(np.array(rho0, dtype=float))
    if tracker is None:
        # the stepper lands on t_final exactly; py-pde's Controller would compare times with
        # an absolute tolerance (half a fixed step: a step larger than the run took none)
        stepper = solver.make_stepper(state)
        t = float(t_start)
        while t < t_final:
            t = stepper(state, t, float(t_final))
        return state.data.copy(), dict(solver.info)
    controller = pde.Controller(solver, t_range=(t_start, t_final), tracker=tracker)
    final = controller.run(state)
    return final.data.copy(), dict(solver.info)
