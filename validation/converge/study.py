r"""Convergence studies of one config: ``ddsolve converge CONFIG --param KEY=v1,v2,...``.

Each value of the refined key is one run (``run``, ``steady`` or ``particles``, the same
code path as the command), written to ``OUT/runs/<key>=<value>/``. From each run the study
takes scalar answers (the final diagnostics of a PDE or particle run; the located special
points and free energies of a ``steady`` run) and, for PDE runs, the final density. Errors are

- against the exact solution when the config has one (:mod:`validation.converge.exact`):
  :math:`\|\rho_h - \bar\rho(t)\|_{L^1}` for the density (exact cell averages) and the
  moment errors;
- otherwise successive differences (self-convergence): for the density the :math:`L^1`
  distance between successive runs after conservative restriction of the finer one
  (:func:`validation.metrics.grid_distance`; the grids must be nested), for scalars
  :math:`|q_{k+1} - q_k|`, with the observed orders and Richardson values of
  :mod:`ddsolve.orders`.

A study is one spatial scheme: when ``scheme.time = "auto"`` would step some runs
explicitly (minmod reconstruction) and others implicitly (the implicit face flux), all runs
are stepped implicitly and the report says so. The implicit runs' default tolerances follow
the grid (:func:`ddsolve.schemes.fv.auto.grid_tolerances`), so the time error stays below
the spatial error on every grid of the study.

The mesh size ``h`` is the geometric mean of the cell widths for ``grid.cells`` (and any key
ending in ``cells`` or naming the grid), the value itself for a step (``scheme.dt``), and
:math:`1/N` for a particle count (``particles.n``), so an order is always a power of ``h``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ddsolve import orders
from ddsolve.app.config import apply_overrides, build, resolve
from ddsolve.app.runner import build_grid_model, planned_scheme
from ddsolve.schema import ConfigError

from ..metrics import grid_distance
from .exact import exact_solution

__all__ = ["COMMANDS", "ERROR_MODES", "Point", "Study", "converge", "mesh_size", "run_dir_name"]

COMMANDS = ("run", "steady", "particles")
ERROR_MODES = ("auto", "exact", "difference")
_SKIP = {"t", "mass", "min_density"}


@dataclass
class Point:
    """One run of the study."""

    value: Any
    h: float
    out_dir: Path
    answers: dict[str, float]
    density: np.ndarray | None = None
    coords: Any = None
    exact: Any = None
    wall_time: float = math.nan


@dataclass
class Study:
    """What :func:`converge` returns: the runs and the order table rows."""

    command: str
    key: str
    points: list[Point]
    rows: list[dict[str, Any]]
    error_mode: str
    exact_description: str | None = None
    notes: list[str] = field(default_factory=list)


def run_dir_name(key: str, value: Any) -> str:
    text = f"{key}={value}".replace("/", "_").replace(" ", "")
    return "".join(ch if ch.isalnum() or ch in "._=-[],+" else "_" for ch in text)


def mesh_size(key: str, value: Any, setup=None) -> float:
    """``h`` of a study point (module doc)."""
    if key.startswith("grid.") and setup is not None:
        h = np.asarray(setup.coords.spacing, float)
        return float(h[0]) if h.size == 1 else float(np.exp(np.mean(np.log(h))))
    v = np.atleast_1d(np.asarray(value, dtype=float))
    size = float(v[0]) if v.size == 1 else float(np.exp(np.mean(np.log(v))))
    return 1.0 / size if key.endswith(".n") or key.endswith("cells") else size


def _run_one(command: str, raw: Mapping[str, Any], out: Path, steady_options: Mapping[str, Any]) -> Point:
    if command == "run":
        from ddsolve.app.runner import run

        res = run(raw, out, exists="overwrite")  # the study owns its runs/ tree
        final = res.summary["final"]
        answers = {k: float(v) for k, v in final.items() if k not in _SKIP}
        return Point(None, math.nan, out, answers, np.array(res.state.data, float), res.setup.coords,
                     wall_time=res.summary.get("wall_time", math.nan))
    if command == "steady":
        from ddsolve.steady.convergence import quantities
        from ddsolve.steady.runner import steady

        cont = steady_options.get("continuation")
        res = steady(raw, out, continuation=cont, guesses=steady_options.get("guesses"),
                     exists="overwrite")
        return Point(None, math.nan, out, quantities(res, cont[0] if cont else None))
    from particles.runner import run_particles

    res = run_particles(raw, out, exists="overwrite")
    answers = {k: float(v) for k, v in res.summary["final"].items() if k not in _SKIP}
    return Point(None, math.nan, out, answers, wall_time=res.summary.get("wall_time", math.nan))


def converge(raw: Mapping[str, Any], key: str, values: Sequence[Any], out_dir: str | Path, *,
             command: str = "run", quantities: Sequence[str] | None = None, error: str = "auto",
             steady_options: Mapping[str, Any] | None = None, progress=None) -> Study:
    """Run the study and build its order table (module doc).

    Parameters
    ----------
    raw : mapping
        The config (as read, overrides applied).
    key, values : str, sequence
        The refined key and its values, coarse to fine.
    out_dir : path-like
        The study's directory; the runs go in ``out_dir/runs/``.
    command : {"run", "steady", "particles"}
    quantities : sequence of str, optional
        Answers to tabulate (``density`` and diagnostics names); default all.
    error : {"auto", "exact", "difference"}
        ``auto`` uses the exact solution when the config has one.

    Raises
    ------
    ConfigError
        For invalid arguments (naming them) or a config any value makes invalid.
    """
    if command not in COMMANDS:
        raise ConfigError("--command", f"must be one of {', '.join(COMMANDS)}, got {command!r}")
    if error not in ERROR_MODES:
        raise ConfigError("--error", f"must be one of {', '.join(ERROR_MODES)}, got {error!r}")
    if len(values) < 2:
        raise ConfigError("--param", "a convergence study needs at least two values")
    out_dir = Path(out_dir)
    configs = [apply_overrides(raw, [(key, v)]) for v in values]
    setups, t_finals, modes = [], [], []
    for cfg in configs:  # validate every point before running any
        if command == "particles":
            setups.append(None)
            continue
        resolved = resolve(cfg, solver=command == "run")
        setups.append(build(resolved, solver=command == "run"))
        t_finals.append(resolved["run"]["t_final"] if command == "run" else None)
        if command == "run" and resolved["scheme"].get("time") == "auto":
            gm = build_grid_model(setups[-1], resolved["scheme"])
            modes.append(planned_scheme(resolved, setups[-1], gm)["time"])
    notes: list[str] = []
    if len(set(modes)) > 1:
        # explicit and implicit runs differ in the spatial scheme too (minmod reconstruction
        # against the implicit face flux): one study, one scheme, that of the runs auto
        # steps implicitly (imex for an interacting problem)
        stepped = sorted(set(modes) - {"explicit"})
        mode = stepped[0] if len(stepped) == 1 else "implicit"
        configs = [apply_overrides(cfg, [("scheme.time", mode)]) for cfg in configs]
        notes.append(f"scheme.time = auto would step these runs {', '.join(modes)}; explicit and "
                     f"implicit runs have different spatial schemes, so all runs use {mode}")
    points = []
    for k, (v, cfg, setup) in enumerate(zip(values, configs, setups)):
        p = _run_one(command, cfg, out_dir / "runs" / run_dir_name(key, v), steady_options or {})
        p.value, p.h = v, mesh_size(key, v, setup)
        if command == "run":
            p.exact = exact_solution(setup, float(t_finals[k]))
        points.append(p)
        if progress is not None:
            progress(p)
    hs = [p.h for p in points]
    if len(set(hs)) < len(hs):
        raise ConfigError("--param", f"the values of {key} give equal mesh sizes {hs}")
    use_exact = error != "difference" and all(p.exact is not None for p in points)
    if error == "exact" and not use_exact:
        raise ConfigError("--error", "exact: this config has no exact solution (quadratic V, "
                                     "U = 0 or quadratic, Gaussian initial law, Cartesian grid)")
    exact_values: dict[str, float] = {}
    errors: dict[str, list[float]] = {}
    answers = [dict(p.answers) for p in points]
    if command == "run":
        if use_exact:
            for p, a in zip(points, answers):
                ref = p.exact.cell_averages(p.coords)
                a["density"] = float(np.sum(np.abs(p.density - ref)) * p.coords.cell_volume)
            errors["density"] = [a["density"] for a in answers]
            exact_values["density"] = 0.0
            sc = points[-1].exact.scalars(points[-1].coords.names)
            exact_values.update({k: v for k, v in sc.items() if k in answers[-1]})
        else:
            diffs = []
            for a_pt, b_pt in zip(points[:-1], points[1:]):
                try:
                    if a_pt.coords.shape == b_pt.coords.shape:
                        d = float(np.sum(np.abs(a_pt.density - b_pt.density)) * a_pt.coords.cell_volume)
                    elif a_pt.coords.size < b_pt.coords.size:
                        d = grid_distance(a_pt.coords, a_pt.density, b_pt.coords, b_pt.density)
                    else:
                        d = grid_distance(b_pt.coords, b_pt.density, a_pt.coords, a_pt.density)
                except ValueError as err:
                    notes.append(f"density: no successive differences ({err})")
                    diffs = []
                    break
                diffs.append(d)
            if diffs:
                errors["density"] = diffs + [math.nan]
    if quantities:
        keep = set(quantities)
        unknown = keep - ({k for a in answers for k in a} | set(errors))
        if unknown:
            allowed = sorted({k for a in answers for k in a} | set(errors))
            raise ConfigError("--quantity", f"unknown {', '.join(sorted(unknown))}; this study has "
                                            f"{', '.join(allowed)}")
        answers = [{k: v for k, v in a.items() if k in keep} for a in answers]
        errors = {k: v for k, v in errors.items() if k in keep}
    rows = orders.order_table(key, list(values), hs, answers, exact_values if use_exact else None, errors)
    desc = points[-1].exact.description if use_exact else None
    return Study(command, key, points, rows, "exact" if use_exact else "difference", desc, notes)

