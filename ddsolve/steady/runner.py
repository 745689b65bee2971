"""``ddsolve steady`` from a config: find the stationary states (deflation), classify
them, optionally continue them in a parameter, and write the output directory
(:mod:`ddsolve.steady.outputs`) through the run lifecycle of
:mod:`ddsolve.app.lifecycle` (``summary.json`` running → ok/failed; a Newton failure
keeps what was found and exits with status 3)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ddsolve.app.config import Setup, apply_overrides, build, resolve
from ddsolve.app.io import jsonable
from ddsolve.app.lifecycle import RunRecord
from ddsolve.grid.grid_model import GridModel
from ddsolve.schema import ConfigError, config_key
from ddsolve.steady.config import resolve_steady
from ddsolve.steady.continuation import BetaFamily, Diagram, RebuildFamily, continue_states
from ddsolve.steady.deflation import default_guesses, find_states
from ddsolve.steady.outputs import (
    BIFURCATION_FIGURE,
    BRANCHES_FILE,
    SPECIAL_FILE,
    STATES_FILE,
    order_column,
    plot_bifurcation,
    write_rows,
    write_state,
)
from ddsolve.steady.selfconsistency import NewtonFailure, SelfConsistency, SteadyState
from ddsolve.steady.stability import stability

__all__ = ["SteadyResult", "prepare", "steady", "state_row"]


@dataclass
class SteadyResult:
    """What :func:`steady` returns."""

    out_dir: Path
    states: list[dict[str, Any]]
    summary: dict[str, Any]
    diagram: Diagram | None = None
    special: list[dict[str, Any]] = field(default_factory=list)
    branch_rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Prepared:
    config: dict[str, Any]
    setup: Setup
    grid_model: GridModel
    options: dict[str, Any]


def prepare(raw: Mapping[str, Any], overrides: Sequence[tuple[str, Any]] = ()) -> Prepared:
    """Resolve a raw config (``[steady]`` included) and build its grid model."""
    raw = apply_overrides(raw, overrides) if overrides else raw
    config = resolve(raw, solver=False)
    from ddsolve.app.config import _resolve_scheme

    config["scheme"] = _resolve_scheme(raw.get("scheme", {}))
    config["steady"] = resolve_steady(raw.get("steady"))
    setup = build(config, solver=False)
    with config_key("scheme.interaction"):
        gm = GridModel(setup.model, setup.coords, interaction=config["scheme"]["interaction"],
                       potential_values=config["scheme"].get("potential_values", "point"))
    return Prepared(config, setup, gm, config["steady"])


def _problem(prep: Prepared) -> SelfConsistency:
    with config_key("steady.representation"):
        return SelfConsistency(prep.grid_model, mass=prep.setup.initial.values.sum() * prep.setup.coords.cell_volume,
                               representation=prep.options["representation"])


def state_row(prep: Prepared, sc: SelfConsistency, st: SteadyState, k: int,
              stab: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of ``states.csv`` / ``branches.csv`` (``stab``: the state's stability, if
    computed already)."""
    stab = stability(sc, st, k) if stab is None else stab
    row: dict[str, Any] = {"mass": st.mass, "free_energy": st.free_energy, "energy": st.energy,
                           "residual": st.residual, "stable": stab["stable"],
                           "n_unstable": stab["n_unstable"], "n_neutral": stab["n_neutral"]}
    row.update(st.moments)
    extra = prep.setup.problem.extra_diagnostics(prep.setup.model_params, prep.grid_model, st.rho)
    row.update({k_: v for k_, v in extra.items() if k_ != "dissipation"})
    row.update(st.extra)
    row["norm"] = sc.norm(st.z)
    for i, lam in enumerate(stab["eigenvalues"][:k]):
        row[f"eig_{i}"] = float(lam)
    return row


def _guesses(prep: Prepared, sc: SelfConsistency, rng: np.random.Generator, n_random: int):
    guesses = default_guesses(sc, n_random=n_random, rng=rng)
    if prep.options["use_initial"]:
        guesses.insert(1, ("[initial] density", sc.encode(prep.setup.initial.values)))
    return guesses


def _family(raw: Mapping[str, Any], prep: Prepared, key: str, sc: SelfConsistency):
    if key == "model.beta":
        return BetaFamily(sc)

    def build_at(p: float) -> SelfConsistency:
        other = prepare(raw, [(key, float(p))])
        return _problem(other)

    return RebuildFamily(key, build_at)


def steady(raw: Mapping[str, Any], out_dir: str | Path | None = None, *,
           continuation: tuple[str, float, float] | None = None, guesses: int | None = None,
           progress: bool = False, exists: str = "error") -> SteadyResult:
    """Find, classify and (with ``continuation = (key, start, stop)``) continue the
    stationary states of the config ``raw``; write the output directory. ``exists``: what
    to do with an earlier run's files there (:mod:`ddsolve.app.outdir`; there is no
    checkpoint, so ``"resume"`` starts again like ``"overwrite"``).

    Raises
    ------
    ConfigError
        Invalid config or arguments (nothing written).
    NewtonFailure
        After writing what was found (exit status 3).
    """
    raw = dict(raw)
    exists = "overwrite" if exists == "resume" else exists
    if out_dir is not None:
        raw["steady"] = {**dict(raw.get("steady", {}) or {}), "out": str(out_dir)}
    if continuation is not None:
        key, start, _ = continuation
        raw = apply_overrides(raw, [(key, start)])
    with config_key(continuation[0] if continuation else "config"):
        prep = prepare(raw)
    opts = prep.options
    n_random = opts["guesses"] if guesses is None else int(guesses)
    if math.isinf(prep.setup.model.beta):
        if continuation is not None:
            raise ConfigError("--continue", "continuation needs a finite beta (model.beta = inf "
                                            "has no self-consistency equation)")
        return steady_noiseless(prep, exists)
    sc = _problem(prep)
    out = Path(opts["out"])
    record = RunRecord(out, "steady.out", jsonable(prep.config), command="steady", exists=exists,
                       problem=prep.setup.problem.name, representation=sc.representation,
                       unknowns=sc.n, symmetry="reflection-even" if sc.basis is not None else "none")
    for old in out.glob("state_*.h5"):
        old.unlink()
    rows: list[dict[str, Any]] = []
    result = SteadyResult(out, rows, {})
    info = {"ddsolve_config": json.dumps(jsonable(prep.config))}
    found: list[SteadyState] = []
    with record.running(now=lambda: math.nan):
        defl = find_states(sc, _guesses(prep, sc, np.random.default_rng(opts["seed"]), n_random),
                           power=opts["deflation_power"], shift=opts["deflation_shift"], tol=opts["tol"],
                           max_iter=opts["max_iter"])
        found = sorted(defl.states, key=lambda s: s.free_energy)
        for i, st in enumerate(found):
            row = {"id": i, **state_row(prep, sc, st, opts["eigenvalues"])}
            rows.append(row)
            write_state(out / f"state_{i}.h5", prep.setup.coords.field(st.rho), {**info, "state_id": i})
        write_rows(out / STATES_FILE, rows, first=("id",))
        record.summary.update(states_found=len(found), guesses_tried=defl.guesses_tried,
                              guesses_failed=defl.failures, newton_iterations=defl.newton_iterations)
        if not found:
            raise NewtonFailure(f"no stationary state found from {defl.guesses_tried} guesses "
                                f"(first failure: {defl.messages[0] if defl.messages else '-'})")
        if continuation is not None:
            _continue(raw, prep, sc, found, continuation, result, record)
    summary = record.finish(states=rows, special_points=result.special)
    result.summary = summary
    return result


def _continue(raw, prep, sc, found, continuation, result, record) -> None:
    key, start, stop = continuation
    opts = prep.options
    family = _family(raw, prep, key, sc)
    diagram = continue_states(family, (start, stop), [(s.z, start) for s in found], ds=opts["ds"],
                              ds_min=opts["ds_min"], ds_max=opts["ds_max"], max_points=opts["max_points"],
                              tol=max(opts["tol"], 1e-11), locate_tol=opts["locate_tol"],
                              switch=opts["switch"], stability_k=opts["eigenvalues"])
    result.diagram = diagram
    out = result.out_dir
    rows = result.branch_rows
    for br in diagram.branches:
        for i, pt in enumerate(br.points):
            sc_p = family.problem(pt.parameter)
            row = {"branch": br.id, "point": i, key: pt.parameter, **state_row(prep, sc_p, pt.state, opts["eigenvalues"], pt.stability),
                   "kind": pt.kind}
            rows.append(row)
    column = order_column(rows, prep.setup.coords.names) if rows else "free_energy"
    special = []
    for sp in diagram.special:
        row = next((r for r in rows if r["kind"] == sp.kind and r[key] == sp.state.parameter), {})
        special.append({"id": sp.id, "kind": sp.kind, key: sp.parameter, "bracket_low": min(sp.bracket),
                        "bracket_high": max(sp.bracket), "branch": sp.branch,
                        "joined_by": " ".join(str(b) for b in sp.joined),
                        column: row.get(column, math.nan), "free_energy": sp.state.free_energy,
                        "description": sp.describe(key)})
    result.special = special
    write_rows(out / BRANCHES_FILE, rows, first=("branch", "point", key, "free_energy", "stable", "n_unstable", "kind"))
    write_rows(out / SPECIAL_FILE, special, first=("id", "kind", key, "bracket_low", "bracket_high"))
    record.summary.update(continuation={"key": key, "start": start, "stop": stop,
                                        "branches": [{"id": b.id, "points": len(b.points), "origin": b.origin,
                                                      "stopped": b.stopped} for b in diagram.branches],
                                        "failures": diagram.failures})
    try:
        plot_bifurcation(out / BIFURCATION_FIGURE, key, rows, special, column)
    except Exception as err:  # noqa: BLE001 - a figure must not fail finished numerics
        record.summary["figures_error"] = f"{type(err).__name__}: {err}"
    if diagram.failures:
        raise NewtonFailure("continuation stopped early: " + "; ".join(diagram.failures[:3]),
                            math.nan)


def steady_noiseless(prep: Prepared, exists: str = "error") -> SteadyResult:
    """beta = inf: time-step the [initial] density to stationarity, certify it (supp rho
    in argmin Psi), compute the global minimum of the energy/risk over all measures on
    the grid, and classify the limit (:mod:`ddsolve.steady.noiseless`). ``states.csv``
    holds the limit (id 0) and the global minimiser (id 1)."""
    from ddsolve.steady.noiseless import certificate, classify, global_minimum, relax_to_stationarity

    opts, gm, setup = prep.options, prep.grid_model, prep.setup
    out = Path(opts["out"])
    record = RunRecord(out, "steady.out", jsonable(prep.config), command="steady", exists=exists,
                       problem=setup.problem.name, beta="inf")
    for old in out.glob("state_*.h5"):
        old.unlink()
    rows: list[dict[str, Any]] = []
    info = {"ddsolve_config": json.dumps(jsonable(prep.config))}
    with record.running(now=lambda: math.nan):
        relax = relax_to_stationarity(gm, setup.initial.values, t_max=opts["t_max"],
                                      dissipation_tol=opts["dissipation_tol"], change_tol=opts["change_tol"])
        mass = gm.mass(relax.rho)
        qp = global_minimum(gm, mass=mass)
        cls = classify(gm, relax.rho, qp)
        for i, (kind, rho) in enumerate((("time-stepping limit", relax.rho), ("global minimum", qp.rho))):
            cert = certificate(gm, rho)
            energy = gm.energy(rho)
            row: dict[str, Any] = {"id": i, "kind": kind, "mass": gm.mass(rho), "free_energy": energy,
                                   "energy": energy, "residual": gm.dissipation(rho) / gm.mass(rho),
                                   "stable": "" if i == 0 else qp.convex, "n_unstable": "" if i == 0 else 0,
                                   "certificate_gap": cert.gap, "weighted_gap": cert.weighted_gap}
            row.update(gm.moments(rho))
            if gm.model.has_risk:
                row["risk"] = gm.risk(rho)
            row["is_global"] = cls.is_global if i == 0 else qp.convex
            rows.append(row)
            write_state(out / f"state_{i}.h5", setup.coords.field(rho), {**info, "state_id": i, "kind": kind})
        write_rows(out / STATES_FILE, rows, first=("id", "kind"))
        record.summary.update(relaxation={"t": relax.t, "converged": relax.converged, "reason": relax.reason,
                                          "steps": relax.steps},
                              global_minimum={"energy": qp.energy, "risk": qp.risk, "gap": qp.gap,
                                              "convex": qp.convex, "support_cells": int(qp.support.size)},
                              classification=cls.description, states_found=len(rows))
    summary = record.finish(states=rows)
    return SteadyResult(out, rows, summary)
