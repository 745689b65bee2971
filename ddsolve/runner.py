"""One PDE run from a config: coordinates → model → grid model → PDE → solver →
py-pde :class:`~pde.Controller`, writing the output directory of :mod:`ddsolve.io`.

A numerical failure (:class:`~ddsolve.solvers.SolverFailure`) still leaves a complete
output directory: the snapshots and diagnostics rows written so far, plus the last
good state at the failure time, and ``summary.json`` with ``status = "failed"``; the
exception is then re-raised (the CLI exits with status 3).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pde

from .config import Setup, build, resolve
from .discretization import GridModel
from .fv import DistributionalDynamicsPDE
from .io import OutputDirectory, jsonable, package_versions, save_times, show_progress
from .problems.base import ConfigError, config_key
from .solvers import SolverFailure, SSPRKSolver

__all__ = ["RunResult", "RunInterrupted", "make_solver", "run"]


class RunInterrupted(KeyboardInterrupt):
    """The user interrupted a run; its output directory is complete up to ``t``."""

    def __init__(self, t: float) -> None:
        super().__init__(f"interrupted at t={t:.6g}")
        self.t = t


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


def make_solver(eq: DistributionalDynamicsPDE, scheme: Mapping[str, Any]):
    """The py-pde solver for a resolved ``[scheme]`` section.

    ``implicit = true`` selects :class:`ddsolve.implicit.ImplicitEulerSolver`; an
    impossible combination (the log-mean flux with beta = inf) is a :class:`ConfigError`.
    """
    if scheme["implicit"]:
        from .implicit import ImplicitEulerSolver

        try:
            return ImplicitEulerSolver(eq, dt=scheme["dt"], time_order=scheme["time_order"],
                                       flux=scheme["flux"], newton_tol=scheme["newton_tol"],
                                       max_newton=scheme["max_newton"], dt_min=scheme["dt_min"])
        except ValueError as err:  # e.g. the log-mean flux without diffusion
            raise ConfigError("scheme.flux", str(err)) from None
    return SSPRKSolver(eq, rk_order=scheme["rk_order"], cfl=scheme["cfl"],
                       dt_max=scheme.get("dt"), dt_min=scheme["dt_min"])


def _prepare(config: Mapping[str, Any], out_dir: str | Path | None):
    config = resolve(config)
    if out_dir is not None:
        config["run"]["out"] = str(out_dir)
    setup = build(config)
    scheme = config["scheme"]
    with config_key("scheme.interaction"):
        grid_model = GridModel(setup.model, setup.coords, interaction=scheme["interaction"])
    eq = DistributionalDynamicsPDE(grid_model, order=scheme["order"], theta=scheme.get("theta", 2.0))
    return config, setup, grid_model, eq, make_solver(eq, scheme)


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
    summary: dict[str, Any] = {
        "status": "running",
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "versions": package_versions(),
        "problem": setup.problem.name,
        "model": setup.model.to_dict(),
        "coordinates": setup.coords.to_dict(),
        "interaction_method": getattr(grid_model.operator, "method", "none"),
        "initial_mass_on_grid": setup.initial.mass_on_grid,
    }
    out.write_summary(summary)

    state = setup.coords.field(setup.initial.values)
    controller = pde.Controller(solver, t_range=config["run"]["t_final"],
                                tracker=out.trackers(progress=show_progress(progress)))
    failure: dict[str, Any] | None = None
    error: BaseException | None = None
    start = time.perf_counter()
    try:
        # the controller evolves a copy; after an exception it is diagnostics["last_state"]
        state = controller.run(state)
        if not controller.info.get("successful", False):
            # the controller caught Ctrl-C; the state may be part-way through an interval,
            # so nothing beyond the last saved snapshot is recorded
            t = float(controller.info.get("t_final", out.last_saved_time or 0.0))
            error = RunInterrupted(t)
            failure = {"message": f"interrupted by the user at t={t:.6g}", "t": t, "cause": "interrupted"}
    except SolverFailure as err:
        state = controller.diagnostics["last_state"]
        out.record(state, err.t)
        error = err
        failure = {"message": str(err), "t": err.t, "cause": err.cause}
    except BaseException as err:
        failure = {"message": f"{type(err).__name__}: {err}", "t": out.last_saved_time, "cause": "error"}
        raise
    finally:
        wall = time.perf_counter() - start
        out.close()
        summary.update(
            status="ok" if failure is None else "failed",
            failure=failure,
            wall_time=wall,
            steps=solver.info.get("steps"),
            solver=solver.info,
            saved_times=[r["t"] for r in out.rows],
            final=out.rows[-1] if out.rows else None,
        )
        figures_error = out.write_figures(setup.coords)
        if figures_error:
            summary["figures_error"] = figures_error
        out.write_summary(summary)
    if error is not None:
        raise error
    return RunResult(out.path, "ok", state, out.rows, summary, setup)
