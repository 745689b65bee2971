"""Run configuration: TOML → validated plain dict → objects.

A config file has five sections (plus those of other commands, such as ``[particles]``)::

    [model]    problem = "<name>" plus that problem's parameters (``ddsolve problems``)
    [grid]     bounds, cells, periodic | coordinates = "radial", dim, r_max, cells;
               optional charge axis charge_bounds, charge_cells
    [initial]  kind = "gaussian" | "uniform" | "mixture" | "expression" | problem kinds
    [scheme]   name, time (auto | explicit | implicit | imex | exponential), integrator, rtol, atol,
               order, theta, implicit, rk_order, cfl, dt, dt_min, dt_max, newton_tol,
               max_newton, flux, interaction; for name = "jko": method, atoms,
               time_order, inner_tol, max_inner, dt_max, growth
    [run]      t_final, save_every, out, seed, checkpoint_every, max_steps

:func:`resolve` checks every key against its declared :class:`~ddsolve.problems.base.Param`
(unknown keys, wrong types and impossible values raise :class:`ConfigError` naming the
dotted key) and fills in defaults. The result is a plain dict of TOML/JSON values that
resolves to itself again (non-finite numbers are written to JSON as ``"inf"``, which
is accepted back). :func:`build` turns it into coordinates, model and initial density;
errors found only then (an expression that does not parse, a Kuramoto problem on a
non-periodic grid, an initial density that is negative or has no mass on the grid)
are :class:`ConfigError` as well.

The interaction method (``auto | dense | fft | separable``) is a numerical choice, so it
lives in ``[scheme] interaction``, not in ``[model]``.
"""

from __future__ import annotations

import codecs
import copy
import os
import re
import reprlib
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from ddsolve.app.commands import extension_sections
from ddsolve.app.resources import BYTES_PER_CELL, Demand, check_memory, grid_demands, interaction_demand
from ddsolve.grid.coordinates import Coordinates, cartesian, radial, with_charge
from ddsolve.grid.grid_model import GridModel
from ddsolve.grid.interaction import INTERACTION_METHODS, interaction_method
from ddsolve.laws.initial import InitialContext, InitialDensity, initial_density, resolve_initial
from ddsolve.model.base import Model
from ddsolve.problems import get_problem
from ddsolve.problems.base import Problem
from ddsolve.schema import (
    REQUIRED,
    Boolean,
    Bounds,
    Choice,
    ConfigError,
    FilePath,
    Integer,
    ListOf,
    OneOf,
    Param,
    Real,
    Text,
    ValueType,
    When,
    config_key,
    format_table,
    resolve_table,
    when_equals,
)
from ddsolve.schemes import scheme_names
from ddsolve.schemes.fv.auto import TIME_MODES, default_integrator
from ddsolve.schemes.fv.tableaux import TABLEAUX

__all__ = [
    "ConfigError",
    "parse_param",
    "split_values",
    "SECTIONS",
    "SOLVER_SECTIONS",
    "resolve_model",
    "GRID_PARAMS",
    "SCHEME_PARAMS",
    "RUN_PARAMS",
    "MAX_SNAPSHOTS",
    "MAX_COORDINATE",
    "resolve",
    "load_config",
    "read_toml",
    "parse_toml",
    "check_sections",
    "MAX_CONFIG_BYTES",
    "parse_override",
    "apply_overrides",
    "Setup",
    "build",
    "build_coordinates",
    "describe_schema",
]

SECTIONS = ("model", "grid", "initial", "scheme", "run")
#: the sections of a PDE run; sections owned by other commands (``[particles]``, see
#: :func:`ddsolve.app.commands.extension_sections`) are passed through unchanged
SOLVER_SECTIONS = ("scheme", "run")
MAX_SNAPSHOTS = 100_000
MAX_COORDINATE = 1e12
"""Largest ``|x|`` of a grid bound (``grid.bounds``, ``r_max``, ``charge_bounds``): squares
and products of coordinates stay far from overflow."""
MIN_SPACING = 1e-100
"""Smallest cell width; a cell must also be wider than ``1e-12`` times its distance from 0,
so that its edges are distinct doubles."""


class _SchemeName(ValueType):
    """A scheme registered in :mod:`ddsolve.schemes.registry`."""

    def check(self, value, key):
        return Choice(scheme_names()).check(value, key)

    def describe(self):
        return Choice(scheme_names()).describe()


INTEGRATORS = tuple(TABLEAUX)
_cartesian = when_equals("coordinates", "cartesian")
_radial = when_equals("coordinates", "radial")
_fv = when_equals("name", "fv")
_jko = when_equals("name", "jko")
_stepped = When("name = 'fv' and implicit = false",
                lambda p: p.get("name") == "fv" and p.get("implicit") is False)
_explicit = When("name = 'fv', implicit = false and time = 'auto' | 'explicit'",
                 lambda p: _stepped.test(p) and p.get("time") in ("auto", "explicit"))
_adaptive = When("name = 'fv', implicit = false and time = 'auto' | 'implicit' | 'imex'",
                 lambda p: _stepped.test(p) and p.get("time") in ("auto", "implicit", "imex"))
_tolerances = When("name = 'fv', implicit = false and time = 'auto' | 'implicit' | 'imex' | 'exponential'",
                   lambda p: _adaptive.test(p) or (_stepped.test(p) and p.get("time") == "exponential"))
_implicit = when_equals("implicit", True)
_newton = When("implicit = true or time = 'auto' | 'implicit' | 'imex'",
               lambda p: _implicit.test(p) or _adaptive.test(p))
_time_order = When("implicit = true or name = 'jko'",
                   lambda p: p.get("implicit") is True or p.get("name") == "jko")
_lagrangian = When("name = 'jko' and method = 'auto' | 'lagrangian'",
                   lambda p: p.get("name") == "jko" and p.get("method") in ("auto", "lagrangian"))

GRID_PARAMS: tuple[Param, ...] = (
    Param("coordinates", Choice(("cartesian", "radial")), "cartesian",
          "cartesian box/torus, or the radius r = |theta| of a rotation-invariant law on R^dim"),
    Param("bounds", Bounds(limit=MAX_COORDINATE), REQUIRED, "extent of each axis", when=_cartesian),
    Param("dim", ListOf(Integer(low=1), 1, 2, scalar_ok=True), REQUIRED,
          "dimension d of the space R^d (m(r) = r^(d-1)); two entries [d1, d2] for the block "
          "radii (r1, r2) of a law on R^d1 x R^d2 (m = r1^(d1-1) r2^(d2-1))", when=_radial),
    Param("r_max", ListOf(Real(0.0, MAX_COORDINATE, low_open=True), 1, 2, scalar_ok=True), REQUIRED,
          "outer radius R of [0, R] (one per radial axis, or one for both)", when=_radial),
    Param("cells", ListOf(Integer(low=2), 1, 2, scalar_ok=True), REQUIRED,
          "number of cells (per axis)"),
    Param("periodic", ListOf(Boolean(), 1, 2, scalar_ok=True), lambda p: [False] * len(p["bounds"]),
          "periodic axes (a torus direction); otherwise no-flux", when=_cartesian, default_doc="false"),
    Param("charge_bounds", ListOf(Real(-MAX_COORDINATE, MAX_COORDINATE), 2, 2), None,
          "[cmin, cmax] of an added charge axis c (1D base)"),
    Param("charge_cells", Integer(low=2), REQUIRED, "cells on the charge axis",
          when=When("charge_bounds is given", lambda p: "charge_bounds" in p)),
    Param("charge_name", Text(), "c", "name of the charge axis (diagnostics mean_<name>)",
          when=When("charge_bounds is given", lambda p: "charge_bounds" in p)),
)

SCHEME_PARAMS: tuple[Param, ...] = (
    Param("name", _SchemeName(), "fv",
          "fv: finite volume (Carrillo, Chertock & Huang 2015); jko: minimising movement "
          "(Jordan, Kinderlehrer & Otto 1998), see method"),
    Param("implicit", Boolean(), False,
          "fixed-step backward Euler / BDF2 with Newton (dt, time_order, flux) instead of the "
          "time stepping chosen by scheme.time", when=_fv),
    Param("time", Choice(TIME_MODES), "auto",
          "auto: exponential for a linear 1D problem (diffusion, no interaction), else explicit "
          "SSP-RK unless diffusion makes its dt ~ h^2 bound the binding one, then imex with "
          "interaction and implicit without (the choice and reason go to summary.json); "
          "explicit; implicit (error-controlled ESDIRK, "
          "see integrator, rtol, atol); imex (semi-implicit: interaction potential explicit); "
          "exponential (linear 1D "
          "problems: the matrix exponential, exact in time, see rtol)",
          when=_stepped),
    Param("integrator", Choice(("auto",) + INTEGRATORS), lambda p: default_integrator(p.get("time")),
          "error-controlled integrator: trbdf2 (2nd order), esdirk3, esdirk4 (implicit); ark3, "
          "ark4 (imex); auto: esdirk4 for implicit, ark4 for imex (with time = 'auto', given "
          "one also decides implicit or imex)",
          default_doc="esdirk4 (time = 'implicit'), ark4 ('imex'), auto ('auto')", when=_adaptive),
    Param("rtol", OneOf((Choice(("auto",)), Real(low=0))), "auto",
          "relative tolerance of the local time error; auto: C/n^2 for n cells on the "
          "coarsest axis (C by integrator, esdirk4: 5), which keeps the time error below a "
          "tenth of the spatial error as the grid is refined (exponential: the bound on its "
          "quadrature error, C = 10)", when=_tolerances),
    Param("atol", OneOf((Choice(("auto",)), Real(low=0))), "auto",
          "absolute tolerance of the local time error (density units); auto: 1e-3 rtol",
          when=_adaptive),
    Param("order", Choice((1, 2)), lambda p: 1 if p["implicit"] else 2,
          "1: upwind; 2: minmod-limited reconstruction (explicit only)",
          default_doc="2 (explicit), 1 (implicit)",
          when=When("name = 'fv' and (implicit = true or time = 'auto' | 'explicit')",
                    lambda p: _implicit.test(p) or _explicit.test(p))),
    Param("theta", Real(1.0, 2.0), 2.0, "generalised minmod parameter", when=when_equals("order", 2)),
    Param("interaction", Choice(INTERACTION_METHODS), "auto",
          "how U*rho is applied: auto, dense matrix, fft (U = W(x - y)), separable"),
    Param("potential_values", Choice(GridModel.POTENTIAL_VALUES), "point",
          "cell values of V: point (V at the cell centres; the face fluxes difference it "
          "exactly), average (2-point Gauss cell averages, the values of runs made before this "
          "key existed)"),
    Param("rk_order", Choice((1, 2, 3)), 3,
          "order of the SSP Runge-Kutta method: 1 Euler, 2 SSPRK(3,2), 3 SSPRK(4,3)", when=_explicit),
    Param("cfl", Real(0.0, 1.0, low_open=True), 0.9, "fraction of the positivity/diffusion step bound",
          when=_explicit),
    Param("dt", Real(low=0, low_open=True), None,
          "maximum step (explicit), the fixed step (implicit = true, required there), the first "
          "step (time = 'implicit' | 'imex'; default: estimated) or the initial step tau (jko, "
          "required there)",
          default_doc="none (explicit, time = implicit | imex); required (implicit = true, jko)"),
    Param("dt_min", Real(low=0, low_open=True), lambda p: 1e-14 if _explicit.test(p) else 1e-12,
          "a step below this is a failure (explicit: the step bound; implicit, jko: after halving)",
          default_doc="1e-14 (explicit), 1e-12 (implicit, jko)"),
    Param("time_order", Choice((1, 2)), 1,
          "1: backward Euler / JKO; 2: BDF2 / variational BDF2 (jko: Lagrangian method only)",
          when=_time_order),
    Param("flux", Choice(("auto", "upwind", "logmean", "sg")),
          lambda p: "upwind" if p.get("implicit") else "auto",
          "implicit face flux: first-order upwind (any beta), or the second-order log-mean or "
          "Scharfetter-Gummel (sg) flux (finite beta); auto: upwind without diffusion, else sg",
          default_doc="upwind (implicit = true), auto (time)", when=_newton),
    Param("newton_tol", Real(low=0, low_open=True), 1e-10, "Newton tolerance (L1 norm of the residual)",
          when=_implicit),
    Param("max_newton", Integer(low=1), lambda p: 30 if p.get("implicit") else 8,
          "Newton iterations before the step is shortened", default_doc="30 (implicit = true), 8 (time)",
          when=_newton),
    Param("method", Choice(("auto", "lagrangian", "fv")), "auto",
          "JKO step: lagrangian (exact W2 in quantile coordinates; 1D intervals and radii), fv "
          "(linearised JKO with upwind mobility, any grid); auto: lagrangian where it applies",
          when=_jko),
    Param("atoms", Integer(low=2), None, "number of atoms (quantile points) of the Lagrangian step",
          when=_lagrangian, default_doc="the number of grid cells"),
    Param("atom_masses", Choice(("graded", "uniform")), "graded",
          "masses of the atoms: graded (small at both tails, which resolves them) or uniform 1/N",
          when=_lagrangian),
    Param("inner_tol", Real(low=0, low_open=True), None,
          "tolerance of the inner (Newton) solve of each JKO step (lagrangian: largest atom "
          "displacement left, relative to the axis length; fv: L1 residual relative to the mass)",
          when=_jko, default_doc="1e-11 (lagrangian), 1e-10 (fv)"),
    Param("max_inner", Integer(low=1), 50, "inner iterations before a JKO step is rejected and halved",
          when=_jko),
    Param("dt_max", Real(low=0, low_open=True), None,
          "largest step the adaptive control may grow to (jko; time = 'implicit' | 'imex')",
          when=When("name = 'jko' or time = 'auto' | 'implicit' | 'imex'",
                    lambda p: _jko.test(p) or _adaptive.test(p)),
          default_doc="dt (jko), none (time)"),
    Param("growth", Real(low=1.0), 2.0, "factor of step growth after an accepted JKO step", when=_jko),
)

RUN_PARAMS: tuple[Param, ...] = (
    Param("t_final", Real(low=0, low_open=True), REQUIRED, "final time"),
    Param("save_every", Real(low=0, low_open=True), lambda p: p["t_final"] / 10,
          "interval between saved snapshots (t = 0 and t_final are always saved)",
          default_doc="t_final / 10"),
    Param("out", FilePath(), "out", "output directory (relative to the working directory); --out overrides"),
    Param("seed", Integer(low=0), 0, "seed of the random generator (random initial laws)"),
    Param("checkpoint_every", Real(low=0, low_open=True, allow_inf=True), 60.0,
          "wall-clock seconds between checkpoints (checkpoint.npz, for --resume); inf: none"),
    Param("max_steps", Integer(low=1), 10**8,
          "budget of time steps: a run estimated to need more is refused before it starts, "
          "and an adaptive run stops when it has taken this many"),
)


# ---------------------------------------------------------------------------------------
# resolution
# ---------------------------------------------------------------------------------------
def _resolve_grid(raw: Mapping[str, Any]) -> dict[str, Any]:
    grid = resolve_table(raw, GRID_PARAMS, "grid")
    n = len(grid["bounds"]) if grid["coordinates"] == "cartesian" else len(grid["dim"])
    for name in ("cells", "periodic", "r_max"):
        if name in grid:
            values = grid[name]
            if len(values) not in (1, n):
                raise ConfigError(f"grid.{name}", f"needs 1 or {n} entries for {n} axis/axes, got {len(values)}")
            grid[name] = list(values) * n if len(values) == 1 else list(values)
    if "charge_bounds" in grid:
        lo, hi = grid["charge_bounds"]
        if not lo < hi:
            raise ConfigError("grid.charge_bounds", f"lower bound must be below the upper bound, got {[lo, hi]}")
        if n != 1:
            raise ConfigError("grid.charge_bounds", "a charge axis is added to a 1D grid only")
        name = grid["charge_name"]
        base = "r" if grid["coordinates"] == "radial" else "x"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name == base:
            raise ConfigError("grid.charge_name", f"must be an identifier other than {base!r}, got {name!r}")
    _check_spacing(grid)
    return grid


def _check_spacing(grid: Mapping[str, Any]) -> None:
    """Every cell wider than :data:`MIN_SPACING` and than ``1e-12`` times its distance from 0."""
    if grid["coordinates"] == "radial":
        axes = [("grid.cells", (0.0, r), n) for r, n in zip(grid["r_max"], grid["cells"])]
    else:
        axes = [("grid.cells", tuple(b), n) for b, n in zip(grid["bounds"], grid["cells"])]
    if "charge_bounds" in grid:
        axes.append(("grid.charge_cells", tuple(grid["charge_bounds"]), grid["charge_cells"]))
    for key, (lo, hi), n in axes:
        h = (hi - lo) / n
        if not (h > MIN_SPACING and h > 1e-12 * max(abs(lo), abs(hi))):
            raise ConfigError(key, f"{n} cells on [{lo:g}, {hi:g}] are {h:.3g} wide, too narrow to "
                                   f"compute with (a cell must be wider than {MIN_SPACING:g} and than "
                                   "1e-12 times its distance from 0); use fewer cells or other bounds")


def _resolve_scheme(raw: Mapping[str, Any]) -> dict[str, Any]:
    scheme = resolve_table(raw, SCHEME_PARAMS, "scheme")
    if scheme["name"] == "jko" and "dt" not in scheme:
        raise ConfigError("scheme.dt", "required when scheme.name = 'jko' (the initial step tau): "
                                       "a positive number")
    if scheme["name"] == "jko" and scheme.get("dt_max") is not None and scheme["dt_max"] < scheme["dt"]:
        raise ConfigError("scheme.dt_max", f"must be at least scheme.dt = {scheme['dt']}")
    time, integrator = scheme.get("time"), scheme.get("integrator")
    if time in ("implicit", "imex") and integrator != "auto" and TABLEAUX[integrator].imex != (time == "imex"):
        kinds = [n for n, t in TABLEAUX.items() if t.imex == (time == "imex")]
        raise ConfigError("scheme.integrator", f"{integrator!r} does not apply to time = {time!r}; "
                                               f"one of {', '.join(kinds)}")
    if scheme.get("implicit") and scheme["order"] != 1:
        raise ConfigError("scheme.order", "the implicit scheme is first-order upwind: order must be 1")
    if scheme.get("implicit") and "dt" not in scheme:
        raise ConfigError("scheme.dt", "required when scheme.implicit = true (the fixed step): "
                                       "a positive number")
    return scheme


def _resolve_run(raw: Mapping[str, Any]) -> dict[str, Any]:
    run = resolve_table(raw, RUN_PARAMS, "run")
    if run["save_every"] < sys.float_info.min:  # the default t_final / 10 of a tiny t_final
        raise ConfigError("run.t_final", f"must be at least {10 * sys.float_info.min:.3g} (its default "
                                         f"save_every = t_final / 10 must be a normal number), "
                                         f"got {run['t_final']:.3g}")
    if not run["t_final"] / run["save_every"] <= MAX_SNAPSHOTS:  # inf (overflow) too
        raise ConfigError("run.save_every", f"would save more than {MAX_SNAPSHOTS} snapshots; "
                                            f"must be >= t_final / {MAX_SNAPSHOTS}")
    return run


def resolve_model(raw: Mapping[str, Any]) -> tuple[Problem, dict[str, Any]]:
    if not isinstance(raw, Mapping):
        raise ConfigError("model", f"must be a table of keys, got {raw!r}")
    if "problem" not in raw:
        from ddsolve.problems import problem_names

        raise ConfigError("model.problem", f"required: one of {', '.join(problem_names())}")
    problem = get_problem(raw["problem"])
    params = problem.resolve({k: v for k, v in raw.items() if k != "problem"})
    return problem, {"problem": problem.name, **params}


def all_sections() -> tuple[str, ...]:
    """ddsolve's sections, then those of the registered commands."""
    return SECTIONS + tuple(s for s in extension_sections() if s not in SECTIONS)


def resolve(raw: Mapping[str, Any], *, solver: bool = True) -> dict[str, Any]:
    """Validate a raw config (as read from TOML, or a resolved one) and fill in defaults.

    Returns a new dict with the sections ``model, grid, initial, scheme, run`` (and
    the sections of other commands, such as ``particles``, copied unchanged if present). With ``solver=False`` (particle runs)
    ``[scheme]`` and ``[run]`` are not required and not resolved.

    Raises
    ------
    ConfigError
        Naming the offending dotted key.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError("config", "must be a table of sections")
    for name in raw:
        if name not in all_sections():
            raise ConfigError(str(name), f"unknown section; allowed sections: {', '.join(all_sections())}")
    check_sections(raw)
    problem, model = resolve_model(raw.get("model", {}))
    grid_raw = raw.get("grid", {})
    if isinstance(grid_raw, Mapping):
        params = {k: v for k, v in model.items() if k != "problem"}
        defaults = problem.grid_defaults(params)
        if "charge_bounds" not in grid_raw:
            defaults.pop("charge_name", None)  # only meaningful with a charge axis
        grid_raw = {**defaults, **grid_raw}
    out = {
        "model": model,
        "grid": _resolve_grid(grid_raw),
        "initial": resolve_initial(raw.get("initial", {}), problem.initial_kinds(),
                                   problem.default_initial),
    }
    if solver:
        out["scheme"] = _resolve_scheme(raw.get("scheme", {}))
        out["run"] = _resolve_run(raw.get("run", {}))
    for name in extension_sections():  # checked by the command that owns them
        if name in raw:
            if not isinstance(raw[name], Mapping):
                raise ConfigError(name, f"must be a table of keys, got {raw[name]!r}")
            out[name] = copy.deepcopy(dict(raw[name]))
    return out


MAX_CONFIG_BYTES = 16 * 2**20
"""Largest config file read (16 MiB)."""


def _shown_path(path: object) -> str:
    text = repr(str(path)) if any(not ch.isprintable() for ch in str(path)) else str(path)
    return text if len(text) <= 160 else f"{text[:80]}...{text[-60:]}"


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; errors are :class:`ConfigError` on the key ``config``.

    Only a regular file (checked before it is opened: a FIFO or a device is refused, not
    read) of at most :data:`MAX_CONFIG_BYTES` bytes of UTF-8 text is read.
    """
    shown = _shown_path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("config", f"no such file: {shown}") from None
    except PermissionError:
        raise ConfigError("config", f"cannot read {shown}: permission denied") from None
    except (OSError, ValueError, TypeError) as err:  # ELOOP, ENAMETOOLONG, a NUL in the path
        raise ConfigError("config", f"cannot read {shown}: {getattr(err, 'strerror', None) or err}") from None
    _check_regular_file(info, shown)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as fh:
            _check_regular_file(os.fstat(fh.fileno()), shown)  # replaced since the stat
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except PermissionError:
        raise ConfigError("config", f"cannot read {shown}: permission denied") from None
    except OSError as err:  # EIO (/proc/self/mem), ...
        raise ConfigError("config", f"cannot read {shown}: {err.strerror or err}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError("config", f"{shown} is larger than {MAX_CONFIG_BYTES // 2**20} MiB; "
                                    "a config file is a small TOML text")
    return parse_toml(data, shown)


def _check_regular_file(info: os.stat_result, shown: str) -> None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise ConfigError("config", f"is a directory, not a file: {shown}")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
                else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise ConfigError("config", f"{shown} is {kind}, not a regular file; give a TOML file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigError("config", f"{shown} is larger than {MAX_CONFIG_BYTES // 2**20} MiB; "
                                    "a config file is a small TOML text")


def parse_toml(data: bytes, shown: str = "config") -> dict[str, Any]:
    """Parse the bytes of a TOML file (UTF-8, an optional byte-order mark); errors are
    :class:`ConfigError` on the key ``config`` naming ``shown``, the file."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError("config", f"{shown} is UTF-16 text; TOML files are UTF-8: save it as UTF-8")
    if b"\0" in data:
        raise ConfigError("config", f"{shown} is a binary file (it contains NUL bytes), not TOML text")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError("config", f"{shown} is not UTF-8 text (byte 0x{data[err.start]:02x} on line "
                                    f"{line}); TOML files are UTF-8: save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("config", f"{shown}: invalid TOML: {err}") from None
    except RecursionError:
        raise ConfigError("config", f"{shown}: invalid TOML: arrays or tables nested too deeply") from None
    except (ValueError, MemoryError) as err:  # e.g. a 5000-digit integer
        raise ConfigError("config", f"{shown}: unreadable value: {err or type(err).__name__}") from None


def check_sections(raw: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for a known section that is not a table (``run = 3``)."""
    for name in all_sections():
        if name in raw and not isinstance(raw[name], Mapping):
            raise ConfigError(name, f"must be a table of keys ([{name}] and key = value lines), "
                                    f"got {reprlib.repr(raw[name])}")


def load_config(path: str | Path, overrides: Iterable[str | tuple[str, Any]] = ()) -> dict[str, Any]:
    """Read, override (``--set`` strings or ``(key, value)`` pairs) and resolve a config file."""
    return resolve(apply_overrides(read_toml(path), overrides))


# ---------------------------------------------------------------------------------------
# --set key=value
# ---------------------------------------------------------------------------------------
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)+$")


def _parse_value(text: str) -> Any:
    """A TOML value (``3``, ``inf``, ``[100]``, ``true``, ``{kind="power", ...}``); text
    that is not TOML (a bare word, an expression) is taken as a string."""
    try:
        doc = tomllib.loads(f"v = {text}")
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):  # ValueError: huge integers
        return text
    return doc["v"] if list(doc) == ["v"] else text


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``section.key=value`` into the dotted key and its parsed value.

    >>> parse_override("model.beta=inf")
    ('model.beta', inf)
    """
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError("--set", f"expected section.key=value, got {text!r}")
    key, value = text.split("=", 1)
    key = key.strip()
    if not _KEY.match(key):
        raise ConfigError("--set", f"expected a dotted key like model.beta, got {key!r}")
    return key, _parse_value(value.strip())


_CLOSING = {"[": "]", "{": "}"}


def split_values(text: str, option: str = "--param") -> list[str]:
    """Split ``text`` at the commas outside brackets, braces and quotes.

    Empty items are kept (for the caller to reject); an unbalanced bracket or an unclosed
    quote is a :class:`ConfigError` on ``option``.

    >>> split_values('[100, 100],[200, 200]')
    ['[100, 100]', '[200, 200]']
    >>> split_values('"a,b", c')
    ['"a,b"', 'c']
    """
    items, current, stack = [], [], []
    quote: str | None = None
    escaped = False
    for ch in text:
        if quote is not None:
            current.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in _CLOSING:
            stack.append(_CLOSING[ch])
        elif ch in "]}":
            if not stack or stack.pop() != ch:
                raise ConfigError(option, f"unbalanced {ch!r} in {text!r}")
        elif ch == "," and not stack:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if quote is not None or stack:
        raise ConfigError(option, f"missing {quote if quote is not None else stack[-1]!r} in {text!r}")
    items.append("".join(current).strip())
    return items


def parse_param(text: str, min_values: int = 2, option: str = "--param") -> tuple[str, list[Any]]:
    """``KEY=V1,V2,...`` -> ``(key, [values])``, each value parsed as TOML like ``--set``
    (commas inside ``[...]`` belong to a list value: ``grid.cells=[50,50],[100,100]``).

    >>> parse_param("grid.cells=100,200")
    ('grid.cells', [100, 200])
    """
    if not isinstance(text, str):
        raise ConfigError(option, f"must be KEY=V1,V2,..., got {text!r}")
    key, eq, values = text.partition("=")
    items = split_values(values, option)
    if any(not v for v in items):
        raise ConfigError(option, f"{text!r} has an empty value; expected KEY=V1,V2,...")
    if not eq or len(items) < min_values:
        plural = f"at least {min_values} values" if min_values > 1 else "at least one value"
        raise ConfigError(option, f"must be KEY=V1,V2,... with {plural}, got {text!r}")
    key = key.strip()
    try:
        return key, [parse_override(f"{key}={v}")[1] for v in items]
    except ConfigError as err:
        raise ConfigError(option, f"{err.message} (in {text!r})") from None


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str | tuple[str, Any]]) -> dict[str, Any]:
    """A deep copy of ``raw`` with each override applied, creating tables and keys as
    needed (they are validated later like keys from the file)."""
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        parts = key.split(".")
        if parts[0] not in all_sections():
            raise ConfigError(parts[0], f"unknown section; allowed sections: {', '.join(all_sections())}")
        if len(parts) < 2:
            raise ConfigError(key, "cannot replace a whole section; set one key, e.g. model.beta=2")
        node = out
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(".".join(parts[: depth + 1]),
                                  f"is not a table, cannot set {key}; set the whole value instead")
        node[parts[-1]] = value
    check_sections(out)
    return out


# ---------------------------------------------------------------------------------------
# objects
# ---------------------------------------------------------------------------------------
@dataclass
class Setup:
    """The objects a resolved config describes."""

    config: dict[str, Any]
    problem: Problem
    coords: Coordinates
    model: Model
    initial: InitialDensity

    @property
    def model_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.config["model"].items() if k != "problem"}


def build_coordinates(grid: Mapping[str, Any]) -> Coordinates:
    """Coordinates of a resolved ``[grid]`` section."""
    with config_key("grid"):
        if grid["coordinates"] == "radial":
            coords = radial(grid["dim"], grid["r_max"], grid["cells"])
        else:
            coords = cartesian(grid["bounds"], grid["cells"], grid["periodic"])
        if "charge_bounds" in grid:
            coords = with_charge(coords, grid["charge_bounds"], grid["charge_cells"], grid["charge_name"])
    return coords


def build(config: Mapping[str, Any], *, solver: bool = True, seed: int | None = None) -> Setup:
    """Resolve ``config`` and build coordinates, model and initial density.

    ``solver=False`` builds without the ``[scheme]``/``[run]`` sections (particle
    runs); ``seed`` then seeds random initial laws (default ``[run] seed``).

    Raises
    ------
    ConfigError
        For invalid keys or values, including those only detectable on the grid.
    """
    config = resolve(config, solver=solver)
    problem = get_problem(config["model"]["problem"])
    params = {k: v for k, v in config["model"].items() if k != "problem"}
    demands = grid_demands(config["grid"], _saved_times(config["run"]) if solver else 0)
    ndim = len(config["grid"]["cells"]) + int("charge_bounds" in config["grid"])
    demands += [Demand(*d) for d in problem.memory_demands(params, ndim)]
    if solver and config["scheme"]["name"] == "jko":
        atoms = int(config["scheme"].get("atoms", 0))
        demands.append(Demand("scheme.atoms", float(atoms) * BYTES_PER_CELL, f"{atoms} atoms"))
    check_memory(demands)  # before any array of the grid is allocated
    coords = build_coordinates(config["grid"])
    problem.check_coordinates(coords)
    model = problem.build_model(params, coords)
    if solver:
        method = config["scheme"]["interaction"]
        with config_key("scheme.interaction"):
            used = interaction_method(model.interaction, coords, method)
        key = "scheme.interaction" if method == "dense" else "grid.cells"
        check_memory([*demands, interaction_demand(used, coords.size, coords.ndim, key)])
    if seed is None:
        seed = config["run"]["seed"] if "run" in config else 0
    ctx = InitialContext(coords, np.random.default_rng(seed), params)
    init = initial_density(config["initial"], ctx, problem.initial_kinds())
    return Setup(config, problem, coords, model, init)


def _saved_times(run: Mapping[str, Any]) -> int:
    """How many snapshots a resolved ``[run]`` section saves (at most)."""
    return int(run["t_final"] / run["save_every"]) + 2


def describe_schema() -> str:
    """The ``[grid]``, ``[scheme]`` and ``[run]`` tables, for ``ddsolve problems``."""
    blocks = []
    for name, params in (("grid", GRID_PARAMS), ("scheme", SCHEME_PARAMS), ("run", RUN_PARAMS)):
        blocks.append(f"[{name}]\n" + format_table(params, "  "))
    return "\n".join(blocks)
