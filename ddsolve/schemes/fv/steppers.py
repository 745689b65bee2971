"""The finite-volume steppers, registered in :mod:`ddsolve.schemes.registry` as
``("fv", False)`` and ``("fv", True)``.

``("fv", False)`` steps by ``scheme.time``: ``"explicit"`` (SSP Runge–Kutta, adaptive
step under the positivity bound of CCH Thm 3.1), ``"implicit"`` / ``"imex"``
(error-controlled ESDIRK / additive ESDIRK, :mod:`ddsolve.schemes.fv.adaptive`) or
``"exponential"`` (linear 1D problems: the matrix exponential of
:mod:`ddsolve.schemes.fv.exponential`, exact in time) or ``"auto"`` (the rule of
:mod:`ddsolve.schemes.fv.auto`; absent: explicit).
``("fv", True)`` is backward Euler / BDF2 with Newton at a fixed step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ddsolve.grid.grid_model import GridModel
from ddsolve.schema import config_key
from ddsolve.schemes.fv.auto import choose_time, default_integrator, linear_operator_reason
from ddsolve.schemes.fv.pde import DistributionalDynamicsPDE
from ddsolve.schemes.fv.ssprk import SSPRKSolver
from ddsolve.schemes.registry import register_stepper

__all__ = ["explicit_fv", "implicit_fv"]


def _given(options: Mapping[str, Any], *names: str, **renamed: str) -> dict[str, Any]:
    """The options that are set (absent ones keep the solver's defaults)."""
    out = {n: options[n] for n in names if options.get(n) is not None}
    out.update({new: options[old] for new, old in renamed.items() if options.get(old) is not None})
    return out


@register_stepper("fv", implicit=False, doc="finite volume: SSP Runge-Kutta (CFL step) or "
                  "error-controlled ESDIRK/IMEX, chosen by scheme.time")
def explicit_fv(grid_model: GridModel, options: Mapping[str, Any]):
    mode = options.get("time") or "explicit"
    reason = options.get("time_reason") or "requested (scheme.time)"
    if mode == "auto":
        mode, reason = choose_time(grid_model, options)
    if mode == "explicit":
        eq = DistributionalDynamicsPDE(grid_model, **_given(options, "order", "theta"))
        solver = SSPRKSolver(eq, **_given(options, "rk_order", "cfl", "dt_min", dt_max="dt"))
    elif mode == "exponential":
        from ddsolve.schemes.fv.exponential import ExponentialFVSolver

        eq = DistributionalDynamicsPDE(grid_model, order=1)
        if options.get("flux") not in (None, "auto", "sg"):
            with config_key("scheme.flux"):
                raise ValueError(f"time = 'exponential' uses the sg flux, got {options['flux']!r}")
        why = linear_operator_reason(eq)
        if why is not None:
            with config_key("scheme.time"):
                raise ValueError(f"'exponential' {why}; use 'implicit' or 'auto'")
        with config_key("scheme.rtol"):
            solver = ExponentialFVSolver(eq, **_given(options, "rtol"))
    else:
        from ddsolve.schemes.fv.adaptive import AdaptiveFVSolver

        eq = DistributionalDynamicsPDE(grid_model, order=1)
        method = options.get("integrator")
        if method in (None, "auto"):
            method = default_integrator(mode)
        with config_key("scheme.flux"):
            solver = AdaptiveFVSolver(eq, method, **_given(options, "rtol", "atol", "flux", "dt",
                                                           "dt_min", "dt_max", "max_newton"))
    solver.info.update(time=mode, time_reason=reason)
    return eq, solver


@register_stepper("fv", implicit=True, doc="finite volume, backward Euler or BDF2 with Newton")
def implicit_fv(grid_model: GridModel, options: Mapping[str, Any]):
    from ddsolve.schemes.fv.implicit import ImplicitEulerSolver

    if options.get("dt") is None:
        raise ValueError("implicit stepping needs dt")
    eq = DistributionalDynamicsPDE(grid_model, order=1, **_given(options, "theta"))
    with config_key("scheme.flux"):  # e.g. the log-mean flux without diffusion
        solver = ImplicitEulerSolver(eq, **_given(options, "dt", "time_order", "flux", "newton_tol",
                                                  "max_newton", "dt_min"))
    return eq, solver
