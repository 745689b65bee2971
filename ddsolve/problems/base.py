"""The :class:`Problem` base class: a named family of models with a declared parameter
table (the vocabulary is :mod:`ddsolve.schema`).

A :class:`Problem` owns a parameter table and builds a :class:`~ddsolve.model.Model`
on given :class:`~ddsolve.grid.Coordinates`. It may also contribute initial laws
(``initial_kinds``, subclasses of :class:`~ddsolve.laws.initial.InitialKind`) and
diagnostics (``extra_diagnostics``) of its own.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ddsolve.model.base import Model
from ddsolve.schema import *  # noqa: F401,F403 - the vocabulary problems are written in
from ddsolve.schema import XI, ConfigError, OneOf, Param, Real, ScheduleSpec, format_table, resolve_table

if TYPE_CHECKING:  # pragma: no cover
    from ddsolve.grid.coordinates import Coordinates
    from ddsolve.grid.grid_model import GridModel
    from ddsolve.laws.initial import InitialKind

__all__ = ["COMMON_PARAMS", "BETA", "BETA_MIN", "MAX_STRENGTH", "Problem"]


# ---------------------------------------------------------------------------------------
# problems
# ---------------------------------------------------------------------------------------
BETA_MIN = 1e-6
"""Smallest inverse temperature: a diffusion coefficient 1/beta above 1e6 makes every time
step vanish (and particle noise overflow)."""

MAX_STRENGTH = 1e6
"""Largest ``|theta|``, ``|kappa|`` of an interaction strength."""

BETA = Real(low=BETA_MIN, allow_inf=True)
"""An inverse temperature: a number >= :data:`BETA_MIN`, or inf (no diffusion)."""

COMMON_PARAMS: tuple[Param, ...] = (
    Param("beta", BETA, 1.0, "inverse temperature beta (TOML inf: no diffusion)"),
    Param("xi", OneOf((XI, ScheduleSpec())), 1.0,
          "time schedule xi(t): a positive number, or {kind=\"power\", xi0, t0, p} "
          "for xi0 (1 + t/t0)^-p, or {kind=\"table\", times, values} (piecewise linear)"),
)


class Problem:
    """A named family of models with a declared parameter table.

    Subclasses set :attr:`name`, :attr:`doc`, :attr:`params` and implement
    :meth:`build_model`. The parameters ``beta`` and ``xi`` are common to every problem
    (:data:`COMMON_PARAMS`); a problem overrides them by declaring a parameter of the
    same name (e.g. ``Param("beta", Fixed(math.inf), math.inf, ...)``).

    Attributes
    ----------
    coordinates : tuple of str
        Coordinate kinds (``"cartesian"``, ``"radial"``) the problem is defined on.
    """

    name: str = ""
    doc: str = ""
    params: tuple[Param, ...] = ()
    coordinates: tuple[str, ...] = ("cartesian",)
    default_initial: str = "gaussian"

    def parameters(self) -> tuple[Param, ...]:
        """The full table: ``problem``-specific parameters plus the common ones."""
        own = {p.name for p in self.params}
        common = tuple(p for p in COMMON_PARAMS if p.name not in own)
        return common + self.params

    def resolve(self, raw: Mapping[str, Any], prefix: str = "model") -> dict[str, Any]:
        """Validate the problem's parameters (without the ``problem`` key)."""
        return resolve_table(raw, self.parameters(), prefix, what=f"problem {self.name!r}")

    # hooks ------------------------------------------------------------------------------
    def check_coordinates(self, coords: Coordinates) -> None:
        """Raise :class:`ConfigError` if the problem is not defined on ``coords``."""
        kind = "radial" if coords.radial_dim is not None else "cartesian"
        if kind not in self.coordinates:
            raise ConfigError(
                "grid.coordinates",
                f"the {self.name!r} problem is defined on {' or '.join(self.coordinates)} "
                f"coordinates, not {kind}",
            )

    def grid_defaults(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``[grid]`` keys implied by the model parameters (e.g. the radial dimension of a
        two-layer problem); keys given in the config file take precedence."""
        return {}

    def memory_demands(self, params: Mapping[str, Any], ndim: int) -> list[tuple[str, float, str]]:
        """Memory the model needs beyond the grid's cell arrays, as ``(config key, bytes,
        what for)`` (see :mod:`ddsolve.app.resources`), for resolved ``params`` on a grid
        of ``ndim`` axes."""
        return []

    def build_model(self, params: Mapping[str, Any], coords: Coordinates) -> Model:
        """The :class:`~ddsolve.model.base.Model` for resolved ``params`` on ``coords``."""
        raise NotImplementedError

    def make_model(self, params: Mapping[str, Any], coords: Coordinates, **kwargs) -> Model:
        """Helper for subclasses: a :class:`Model` with this problem's ``beta``/``xi``
        and the dimensions of ``coords``."""
        return Model(beta=params["beta"], xi=params["xi"], ndim=coords.ndim,
                     radial_dim=coords.radial_dims, name=self.name, **kwargs)

    def initial_kinds(self) -> dict[str, InitialKind]:
        """Problem-specific initial laws, by ``[initial] kind`` name."""
        return {}

    def extra_diagnostics(self, params: Mapping[str, Any], grid_model: GridModel,
                          rho: np.ndarray) -> dict[str, float]:
        """Problem-specific numbers appended to each ``diagnostics.csv`` row."""
        return {}

    def describe(self, common: bool = True) -> str:
        """Name, doc and parameter table, as printed by ``ddsolve problems``
        (``common=False`` leaves out the unchanged :data:`COMMON_PARAMS`)."""
        head = f"{self.name}\n" + textwrap.indent(textwrap.fill(self.doc, 88), "  ")
        params = self.parameters() if common else tuple(
            p for p in self.parameters() if p not in COMMON_PARAMS)
        text = head + "\n  parameters ([model]):\n" + format_table(params, "    ")
        kinds = self.initial_kinds()
        if kinds:
            text += "\n  initial kinds ([initial] kind = ...): " + ", ".join(kinds)
        if self.default_initial != "gaussian":
            text += f" (default kind for this problem: {self.default_initial})"
        return text
