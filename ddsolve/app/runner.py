"""One PDE run from a config: coordinates → model → grid model → PDE → solver →
py-pde :class:`~pde.Controller`, writing the output directory of :mod:`ddsolve.app.io`.

A numerical failure (:class:`~ddsolve.schemes.fv.ssprk.SolverFailure`) still leaves a complete
output directory: the snapshots and diagnostics rows written so far, plus the last
good state at the failure time, and ``summary.json`` with ``status = "failed"``; the
exception is then re-raised (the CLI exits with status 3).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pde
from pde.trackers.interrupts import FixedInterrupts

from ddsolve.app.config import Setup, build, resolve
from ddsolve.app.io import OutputDirectory, jsonable, save_times, show_progress
from ddsolve.app.lifecycle import RunInterrupted, RunRecord
from ddsolve.grid.grid_model import GridModel
from ddsolve.schema import ConfigError, config_key
from ddsolve.schemes import make_stepper
from ddsolve.schemes.fv.auto import choose_time
from ddsolve.schemes.fv.ssprk import SolverFailure

__all__ = ["RunResult", "RunInterrupted", "run"]


@dataclass
class RunResult:
    """What :func:`run` returns: the output directory, status (``"ok"``), final state,
    diagnostics rows, the summary written to ``summary.json`` and the built objects."""

    out_dir: Path
    status: str
    state: pde.ScalarField
    diagnostics: list[dict[str, float]]
    summary: dict[str, Any]
    setup: Setup


def _prepare(config: Mapping[str, Any], out_dir: str | Path | None):
    config = resolve(config)
    if out_dir is not None:
        config["run"]["out"] = str(out_dir)
    setup = build(config)
    scheme = config["scheme"]
    with config_key("scheme.interaction"):
        grid_model = GridModel(setup.model, setup.coords, interaction=scheme["interaction"])
    if scheme["name"] == "fv" and scheme.get("time") == "auto":
        # decided here, where the initial density and the length of the run are known
        mode, reason = choose_time(grid_model, scheme, setup.initial.values, config["run"]["t_final"])
        scheme = {**scheme, "time": mode, "time_reason": reason}
    with config_key("scheme.name"):
        eq, solver = make_stepper(grid_model, scheme)
    return config, setup, grid_model, eq, solver


def run(config: Mapping[str, Any], out_dir: str | Path | None = None, *,
        progress: bool = False) -> RunResult:
    """Run the PDE described by ``config`` (raw or resolved) and write ``out_dir``
    (default ``config["run"]["out"]``).

    Parameters
    ----------
    config : mapping
        Config sections as read from TOML (validated here).
    out_dir : path-like, optional
        Output directory; overrides ``[run] out`` (and is recorded in the summary).
    progress : bool
        Show a progress bar (only if stderr is a terminal and ``CI`` is unset).

    Raises
    ------
    ConfigError
        Before anything is written, for an invalid config.
    SolverFailure
        After writing the partial output, for a numerical failure.
    RunInterrupted
        After closing the output (complete up to the last save), if the user
        interrupted the run.
    """
    config, setup, grid_model, eq, solver = _prepare(config, out_dir)
    params = setup.model_params

    def diagnostics(rho, t):
        row = grid_model.diagnostics(rho, t)
        row.update(setup.problem.extra_diagnostics(params, grid_model, rho))
        return row

    times = save_times(config["run"]["t_final"], config["run"]["save_every"])
    try:
        out = OutputDirectory(config["run"]["out"], diagnostics, times,
                              info={"ddsolve_config": json.dumps(jsonable(config))})
    except OSError as err:
        raise ConfigError("run.out", f"cannot write the output directory: {err}") from None
    record = RunRecord(out.path, "run.out", config, problem=setup.problem.name,
                       model=setup.model.to_dict(), coordinates=setup.coords.to_dict(),
                       interaction_method=getattr(grid_model.operator, "method", "none"),
                       initial_mass_on_grid=setup.initial.mass_on_grid)
    record.close_with(out.close)
    state = setup.coords.field(setup.initial.values)
    trackers = out.trackers(progress=show_progress(progress))
    # a scheme with a representation of its own (the JKO atoms) stores it beside density.h5
    extra = getattr(solver, "output_trackers", None)
    if extra is not None:
        trackers += extra(out.path, FixedInterrupts(times))
    controller = pde.Controller(solver, t_range=config["run"]["t_final"], tracker=trackers)

    def keep_last_good_state(err: SolverFailure) -> None:
        nonlocal state  # the controller evolves a copy; after a failure it is here:
        state = controller.diagnostics["last_state"]
        out.record(state, err.t)

    with record.running(now=lambda: out.last_saved_time, on_failure=keep_last_good_state):
        state = controller.run(state)
        if not controller.info.get("successful", False):
            # the controller caught Ctrl-C; the state may be part-way through an interval,
            # so nothing beyond the last saved snapshot is recorded
            record.interrupt(float(controller.info.get("t_final", out.last_saved_time or 0.0)))
    record.close()
    figures_error = out.write_figures(setup.coords)
    summary = record.finish(steps=solver.info.get("steps"), solver=solver.info,
                            saved_times=[r["t"] for r in out.rows],
                            final=out.rows[-1] if out.rows else None,
                            **({"figures_error": figures_error} if figures_error else {}))
    return RunResult(out.path, "ok", state, out.rows, summary, setup)
