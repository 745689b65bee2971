r"""``scheme.time = "auto"``: explicit SSP Runge–Kutta or error-controlled implicit stepping.

The explicit step obeys two bounds (:func:`ddsolve.schemes.fv.kernels.dt_bound`, with the
SSP coefficient 2 of the default SSPRK(4,3)): the transport (positivity) bound
:math:`\Delta t\le c\,h/(2\max|u|)` of Carrillo, Chertock & Huang (Thm 3.1), proportional
to :math:`h` and so of the size accuracy asks for anyway, and the diffusion bound
:math:`\Delta t_D = c/(2\xi\beta^{-1}\sum_a h_a^{-2})`, proportional to :math:`h^2`, which
an implicit method does not have. With diffusion the velocity
:math:`u=-\xi\nabla(\Psi+\beta^{-1}\log\rho)` vanishes at equilibrium, so near
stationarity the diffusion bound is the one that binds, and a run of length :math:`T`
takes at least :math:`T/\Delta t_D` explicit steps. The rule:

* no diffusion (:math:`\beta=\infty`): **explicit** (only the transport bound exists);
* diffusion, and the run needs at most :data:`EXPLICIT_STEPS_MAX` steps at the diffusion
  bound: **explicit** (too few steps for implicit stepping to pay off);
* otherwise **implicit** (ESDIRK with error control,
  :class:`~ddsolve.schemes.fv.adaptive.AdaptiveFVSolver`), whose step is set by the
  tolerances.

The choice and its reason (the bound and the explicit step count) go to the solver's
``info`` and so to ``summary.json``; ``ddsolve run`` prints them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ddsolve.model.schedule import schedule_value
from ddsolve.schemes.fv.kernels import dt_bound

__all__ = ["TIME_MODES", "EXPLICIT_STEPS_MAX", "choose_time", "diffusion_bound"]

TIME_MODES = ("auto", "explicit", "implicit", "imex")
EXPLICIT_STEPS_MAX = 200
"""Runs that need at most this many explicit steps stay explicit under ``auto``. A
conservative choice: ``benchmarks/bench_implicit.py`` part (b) measures the break-even on 1D
OU at 50-100 explicit steps, and the implicit default about 2x faster at 200."""


def diffusion_bound(eq, t0: float = 0.0, cfl: float = 0.9) -> float:
    """The diffusion bound of the SSPRK(4,3) step at time ``t0`` (``inf`` without diffusion)."""
    xi = schedule_value(eq.sched[0], eq.sched[1], t0)
    return float(2.0 * dt_bound(0.0, xi, eq.temperature, eq.geom, eq.two_d, cfl))


def choose_time(grid_model, options: Mapping[str, Any], rho0: np.ndarray | None = None,
                t_span: float | None = None) -> tuple[str, str]:
    """``(mode, reason)`` for ``options["time"]`` on ``grid_model``: ``"auto"`` is decided
    here by the rule of the module doc, from the length ``t_span`` of the run (default:
    unknown, which counts as long); other modes are returned as given. ``rho0`` is
    accepted for rules that look at the initial state (the current one does not)."""
    from ddsolve.schemes.fv.pde import DistributionalDynamicsPDE

    mode = options.get("time") or "auto"
    if mode != "auto":
        return mode, "requested (scheme.time)"
    if grid_model.temperature == 0:
        return "explicit", "no diffusion: the explicit step is the transport CFL bound dt ~ h"
    eq = DistributionalDynamicsPDE(grid_model, order=1)
    diffusion = diffusion_bound(eq, cfl=float(options.get("cfl") or 0.9))
    if t_span is not None:
        n_explicit = int(np.ceil(t_span / diffusion)) if diffusion > 0 else 2**63
        if n_explicit <= EXPLICIT_STEPS_MAX:
            return "explicit", (f"the run needs only {n_explicit} explicit steps at the diffusion "
                                f"bound dt <= {diffusion:.3g}")
        more = f"; explicit stepping would take at least {n_explicit} steps"
    else:
        more = ""
    return "implicit", f"diffusion bounds the explicit step by dt <= {diffusion:.3g} (~h^2){more}"
