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
* diffusion, no interaction, one axis: the operator is linear and constant (up to
  :math:`\xi(t)`), and each output interval is one matrix exponential, exact in time:
  **exponential** (:class:`~ddsolve.schemes.fv.exponential.ExponentialFVSolver`, a few
  complex tridiagonal solves per interval, fewer operations than a handful of explicit
  steps), unless ``scheme.flux`` names a flux other than ``sg``;
* diffusion, and the run needs at most :data:`EXPLICIT_STEPS_MAX` steps at the diffusion
  bound: **explicit** (too few steps for implicit stepping to pay off);
* diffusion and interaction: **imex**, the semi-implicit ARK4 pair of
  :class:`~ddsolve.schemes.fv.adaptive.AdaptiveFVSolver` (the interaction potential from the
  explicit stage value, the transport it drives implicit: each stage one linear M-matrix
  solve with the ``sg`` flux). Measured against the fully implicit ESDIRK4 (``sg``) at the
  auto tolerances (``benchmarks/bench_implicit.py`` part (e)), it is 1.2-3.9x faster on
  Curie–Weiss with :math:`\theta` = 1, 5, 20, Kuramoto and two Gaussian attractions
  (0.9x at :math:`\theta = 100`): a stage is one linear solve, not a Newton solve. An
  ``integrator`` that is not an IMEX pair keeps the fully implicit path;
* otherwise (diffusion, no interaction, and two axes or a flux other than ``sg``)
  **implicit** (ESDIRK with error control), whose step is set by the tolerances.

The choice and its reason (the bound and the explicit step count) go to the solver's
``info`` and so to ``summary.json``; ``ddsolve run`` prints them.

**Tolerances from the grid** (``scheme.rtol = "auto"``, the default). A fixed time
tolerance makes a grid-refinement study stall: the time error does not shrink with
:math:`h`, so below some :math:`h` it dominates the :math:`O(h^2)` spatial error and the
observed order falls to zero. The auto tolerance follows the spatial error of the
second-order scheme instead,

.. math:: r_{tol} = C_{\text{method}}\,\max_a (h_a/L_a)^2 = C_{\text{method}} / \min_a n_a^2,
          \qquad a_{tol} = 10^{-3}\,r_{tol},

(:math:`n_a` cells on axis :math:`a`), clipped to :data:`RTOL_RANGE`. The constants of
:data:`TOLERANCE_CONSTANTS` are measured: on Ornstein–Uhlenbeck (exact solution),
Curie–Weiss at :math:`\beta = 1, 3` and a double well with a weak Gaussian attraction,
on 160-1280 cells, the largest :math:`r_{tol}` at which the L1 time error (against
:math:`r_{tol} = 10^{-10}` on the same grid, with the same face flux) is at most a tenth of the
spatial error is at least :math:`C/n^2` with :math:`C` = 0.17 (trbdf2), 1.6 (esdirk3), 21 (esdirk4),
0.5 (ark3); the constants are half of that or less. The semi-implicit ARK4, whose potential
lags by a stage, was measured over more problems since ``auto`` picks it for every
interacting problem (``benchmarks/bench_implicit.py`` part (e), Curie–Weiss on 150-1200
cells, Kuramoto, Gaussian attractions): at :math:`C = 4` the ratio reached 0.23 (a strong
Gaussian attraction, 200 cells) and 0.17 (Curie–Weiss :math:`\beta = 3`, 600 cells), at
:math:`C = 2` 0.14, and at :math:`C = 1` at most 0.084. The embedded estimate is that of the lower-order
solution while the step propagates the higher-order one (local extrapolation), which is
why :math:`C` grows with the order. **Recalibrated** when the potential became the
centre value (:mod:`ddsolve.grid.grid_model`): the spatial error of non-quadratic
potentials fell by up to 3.8x while the time error stayed, and at the former constants the
ratio reached 0.198 (ARK3), 0.165 (ARK4; Curie–Weiss :math:`\beta = 3`, 600 cells, t = 10),
0.129 (ESDIRK4), 0.102 (ESDIRK3; Curie–Weiss :math:`\beta = 1.5`, 400 cells) and 0.107
(TR-BDF2; weak attraction, 640 cells). The constants are now half of those (a quarter for
ARK3): measured ratios at most 0.082 (ARK4), 0.065 (ESDIRK4), 0.058 (ESDIRK3), 0.068
(TR-BDF2) and 0.048 (ARK3) on the cases of
``tests/ddsolve/test_adaptive.py::test_auto_tolerance_keeps_the_time_error_below_a_tenth_of_the_spatial_error``
and ``::test_semi_implicit_auto_tolerance_on_long_interacting_runs``. At these tolerances ESDIRK4 takes the fewest implicit
stage solves from about 300 cells up (measured there 75 against 147 for ESDIRK3 on OU), so
it is the default integrator (:data:`DEFAULT_INTEGRATORS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ddsolve.grid.interaction import KIND_NONE
from ddsolve.model.schedule import schedule_value
from ddsolve.schemes.fv.kernels import dt_bound
from ddsolve.schemes.fv.tableaux import TABLEAUX

__all__ = ["TIME_MODES", "EXPLICIT_STEPS_MAX", "TOLERANCE_CONSTANTS", "RTOL_RANGE", "DEFAULT_INTEGRATORS",
           "choose_time", "diffusion_bound", "grid_tolerances", "default_integrator",
           "linear_operator_reason"]

TIME_MODES = ("auto", "explicit", "implicit", "imex", "exponential")
EXPLICIT_STEPS_MAX = 50
"""Runs that need at most this many explicit steps stay explicit under ``auto``.
``benchmarks/bench_implicit.py`` part (b) (200 cells, the implicit defaults) measures the
break-even at about 25 explicit steps on OU and 50 on Curie–Weiss; at 100 steps the
implicit path is 2.3x (OU) and 1.3x (Curie–Weiss) faster."""

TOLERANCE_CONSTANTS = {"trbdf2": 0.04, "esdirk3": 0.4, "esdirk4": 5.0, "ark3": 0.0625, "ark4": 0.5,
                       "exponential": 10.0}
r"""``C`` of the auto tolerance :math:`r_{tol} = C/\min_a n_a^2`, by integrator (module doc)."""
RTOL_RANGE = (1e-10, 1e-2)
"""The auto ``rtol`` is clipped to this range (round-off below; above, coarse grids)."""
ATOL_PER_RTOL = 1e-3
"""``atol = ATOL_PER_RTOL * rtol`` when ``atol`` is auto (the ratio the constants were
measured with; with ``rtol = 1e-4`` it is the former default ``atol = 1e-7``)."""
DEFAULT_INTEGRATORS = {"implicit": "esdirk4", "imex": "ark4"}
"""The integrator of ``scheme.integrator`` when not given, by ``scheme.time`` mode."""


def default_integrator(mode: str) -> str:
    """The default integrator of an ``"implicit"`` or ``"imex"`` run; ``"auto"`` for
    ``time = "auto"`` (the integrator follows the mode the rule picks)."""
    if mode == "auto":
        return "auto"
    return DEFAULT_INTEGRATORS["imex" if mode == "imex" else "implicit"]


def _given_integrator(options: Mapping[str, Any]) -> str | None:
    """The integrator named in ``options`` (None when absent or ``"auto"``)."""
    name = options.get("integrator")
    return None if name in (None, "auto") else name


def _number(name: str, value) -> float:
    if isinstance(value, str) or not np.isscalar(value):
        raise ValueError(f"{name} must be a non-negative number or 'auto', got {value!r}")
    return float(value)


def _is_auto(value) -> bool:
    return value is None or (isinstance(value, str) and value == "auto")


def grid_tolerances(coords, method: str, rtol: float | str = "auto",
                    atol: float | str = "auto") -> tuple[float, float, str]:
    """``(rtol, atol, reason)`` for ``method`` on the grid ``coords``: ``"auto"`` (or None)
    values follow the grid by the rule of the module doc; numbers are kept.

    Examples
    --------
    >>> from ddsolve import cartesian
    >>> grid_tolerances(cartesian([-6, 6], 400), "esdirk4")[:2]
    (6.25e-05, 6.25e-08)
    """
    if method not in TOLERANCE_CONSTANTS:
        raise ValueError(f"integrator must be one of {tuple(TOLERANCE_CONSTANTS)}, got {method!r}")
    parts = []
    if _is_auto(rtol):
        n = int(min(coords.shape))
        c = TOLERANCE_CONSTANTS[method]
        rtol = float(np.clip(c / n**2, *RTOL_RANGE))
        parts.append(f"rtol {rtol:.3g} = {c:g}/{n}^2 from the grid ({method}: time error "
                     "below a tenth of the O(h^2) spatial error)")
    else:
        rtol = _number("rtol", rtol)
        parts.append(f"rtol {rtol:.3g} (given)")
    if _is_auto(atol):
        atol = ATOL_PER_RTOL * rtol
        parts.append(f"atol {atol:.3g} = {ATOL_PER_RTOL:g} rtol")
    else:
        atol = _number("atol", atol)
        parts.append(f"atol {atol:.3g} (given)")
    return rtol, atol, "; ".join(parts)


def diffusion_bound(eq, t0: float = 0.0, cfl: float = 0.9) -> float:
    """The diffusion bound of the SSPRK(4,3) step at time ``t0`` (``inf`` without diffusion)."""
    xi = schedule_value(eq.sched[0], eq.sched[1], t0)
    return float(2.0 * dt_bound(0.0, xi, eq.temperature, eq.geom, eq.two_d, cfl))


def linear_operator_reason(eq) -> str | None:
    """Why the exponential integrator does not apply to ``eq`` (None when it does): it
    needs diffusion, no interaction and one axis."""
    if not eq.temperature > 0:
        return "needs diffusion (finite beta): without it the operator is pure transport"
    if eq.inter[0] != KIND_NONE:
        return "needs a linear operator: the interaction makes it depend on the density"
    if eq.two_d:
        return "is one-dimensional only (tridiagonal shifted solves)"
    return None


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
    if linear_operator_reason(eq) is None and options.get("flux") in (None, "auto", "sg"):
        return "exponential", ("linear operator (diffusion, no interaction, one axis): each output "
                               "interval is one matrix exponential, exact in time")
    diffusion = diffusion_bound(eq, cfl=float(options.get("cfl") or 0.9))
    if t_span is not None:
        n_explicit = int(np.ceil(t_span / diffusion)) if diffusion > 0 else 2**63
        if n_explicit <= EXPLICIT_STEPS_MAX:
            return "explicit", (f"the run needs only {n_explicit} explicit steps at the diffusion "
                                f"bound dt <= {diffusion:.3g}")
        more = f"; explicit stepping would take at least {n_explicit} steps"
    else:
        more = ""
    bound = f"diffusion bounds the explicit step by dt <= {diffusion:.3g} (~h^2){more}"
    integrator = _given_integrator(options)
    if integrator is not None:
        return ("imex" if TABLEAUX[integrator].imex else "implicit"), f"{bound}; integrator {integrator} (given)"
    if eq.inter[0] != KIND_NONE:
        return "imex", (f"{bound}; the interaction is explicit in the potential of each stage, "
                        "the transport implicit (one linear solve per stage)")
    return "implicit", bound
