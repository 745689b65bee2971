"""One PDE run from a config: coordinates → model → grid model → PDE → solver → the time
loop of :mod:`ddsolve.app.timeloop`, writing the output directory of :mod:`ddsolve.app.io`
(with ``checkpoint.npz`` while it runs, :mod:`ddsolve.app.checkpoint`).

A numerical failure (:class:`~ddsolve.schemes.fv.ssprk.SolverFailure`) still leaves a complete
output directory: the snapshots and diagnostics rows written so far, plus the last
good state at the failure time, and ``summary.json`` with ``status = "failed"``; the
exception is then re-raised (the CLI exits with status 3).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pde

from ddsolve.app.checkpoint import CHECKPOINT_FILE, read_checkpoint, same_config, write_checkpoint
from ddsolve.app.config import Setup, build, resolve
from ddsolve.app.io import SUMMARY_FILE, OutputDirectory, jsonable, save_times, show_progress, write_json
from ddsolve.app.lifecycle import RunInterrupted, RunRecord
from ddsolve.app.timeloop import TimeLoop
from ddsolve.grid.grid_model import GridModel
from ddsolve.schema import ConfigError, config_key
from ddsolve.schemes import make_stepper
from ddsolve.schemes.fv.auto import choose_time
from ddsolve.schemes.fv.ssprk import SolverFailure

__all__ = ["RunResult", "RunInterrupted", "build_grid_model", "planned_scheme", "run"]



@dataclass
class RunResult:
    """What :func:`run` returns: the output directory, status (``"ok"``; ``"complete"`` for
    a ``--resume`` of a run that had completed, returned unchanged), final state,
    diagnostics rows, the summary written to ``summary.json`` and the built objects."""

    out_dir: Path
    status: str
    state: pde.ScalarField
    diagnostics: list[dict[str, float]]
    summary: dict[str, Any]
    setup: Setup


def build_grid_model(setup: Setup, scheme: Mapping[str, Any]) -> GridModel:
    """The grid model of a built config (``scheme.interaction`` names its errors)."""
    with config_key("scheme.interaction"):
        return GridModel(setup.model, setup.coords, interaction=scheme["interaction"],
                         potential_values=scheme.get("potential_values", "point"))


def planned_scheme(config: Mapping[str, Any], setup: Setup, grid_model: GridModel) -> dict[str, Any]:
    """``config["scheme"]`` (resolved) with ``scheme.time = "auto"`` decided: the mode and
    its reason (``time_reason``), from the initial density and the length of the run."""
    scheme = dict(config["scheme"])
    if scheme["name"] == "fv" and scheme.get("time") == "auto":
        mode, reason = choose_time(grid_model, scheme, setup.initial.values, config["run"]["t_final"])
        scheme.update(time=mode, time_reason=reason)
    return scheme


def _prepare(config: Mapping[str, Any], out_dir: str | Path | None):
    config = resolve(config)
    if out_dir is not None:
        config["run"]["out"] = str(out_dir)
    setup = build(config)
    scheme = config["scheme"]
    grid_model = build_grid_model(setup, scheme)
    scheme = planned_scheme(config, setup, grid_model)
    with config_key("scheme.name"):
        eq, solver = make_stepper(grid_model, scheme)
    return config, setup, grid_model, eq, solver


def run(config: Mapping[str, Any], out_dir: str | Path | None = None, *,
        progress: bool = False, exists: str = "error") -> RunResult:
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
    exists : {"error", "overwrite", "resume"}
        What to do if the directory holds an earlier run (:mod:`ddsolve.app.outdir`):
        refuse, replace it, or continue it from its checkpoint (``--resume``; a directory
        without a checkpoint starts from the beginning, one whose run completed is left
        as it is).

    Raises
    ------
    ConfigError
        Before anything is written, for an invalid config, a directory in use, or a
        checkpoint that does not match the config.
    SolverFailure
        After writing the partial output, for a numerical failure.
    RunInterrupted
        After saving the state reached and a checkpoint, on Ctrl-C or SIGTERM.
    """
    config, setup, grid_model, eq, solver = _prepare(config, out_dir)
    params = setup.model_params
    run_cfg = config["run"]
    t_final = float(run_cfg["t_final"])

    def diagnostics(rho, t):
        row = grid_model.diagnostics(rho, t)
        row.update(setup.problem.extra_diagnostics(params, grid_model, rho))
        return row

    times = save_times(t_final, run_cfg["save_every"])
    state = setup.coords.field(setup.initial.values)
    stepper = solver.make_stepper(state)
    estimate = _check_budget(solver, state, t_final, run_cfg["max_steps"])
    record = RunRecord(run_cfg["out"], "run.out", config, exists=exists, command="run",
                       problem=setup.problem.name, model=setup.model.to_dict(),
                       coordinates=setup.coords.to_dict(),
                       interaction_method=getattr(grid_model.operator, "method", "none"),
                       initial_mass_on_grid=setup.initial.mass_on_grid,
                       check=lambda record: _resume_point(record, config, exists),
                       **({"steps_estimate": estimate} if estimate is not None else {}))
    resume = record.checked
    try:
        if resume is not None and resume["complete"]:
            done = _completed(record, setup)
            record.release()
            return done
        keep = None if resume is None else resume["saved"]
        out = OutputDirectory(record.path, diagnostics, times, keep=keep,
                              info={"ddsolve_config": json.dumps(jsonable(config))})
    except OSError as err:
        record.release()
        raise ConfigError("run.out", f"cannot write the output directory: {err}") from None
    except BaseException:
        record.release()
        raise
    record.close_with(out.close)
    t, next_index = 0.0, 0
    if resume is not None:
        solver.restore_state(resume["solver"])
        state.data[...] = resume["density"].reshape(state.data.shape)
        t, next_index = resume["t"], resume["next_save"]
        record.summary["resumed"] = {"t": t, "checkpoint_steps": resume["solver_steps"],
                                     "times": resume["resumed"] + 1}
    extra = getattr(solver, "output_savers", None)
    savers = extra(record.path, keep) if extra is not None else []
    for saver in savers:
        record.close_with(saver.close)
    out.start(state)

    def save(state, t):
        out.save(state, t)
        for saver in savers:
            saver.save(state, t)

    def checkpoint(t, next_index):
        write_checkpoint(record.path / CHECKPOINT_FILE,
                         {"command": "run", "t": t, "next_save": next_index, "saved": len(out.rows),
                          "config": config, "resumed": 0 if resume is None else resume["resumed"] + 1,
                          "solver_steps": solver.info.get("steps")},
                         {"density": np.array(state.data),
                          **{f"solver.{k}": v for k, v in solver.checkpoint_state().items()}})

    bar = _progress_bar(t_final, estimate, t) if show_progress(progress) else None
    if bar is not None:
        record.close_with(bar.close)
    loop = TimeLoop(solver, stepper, times, save=save, stop=record.stop,
                    checkpoint=checkpoint, checkpoint_every=run_cfg["checkpoint_every"],
                    on_interrupt=lambda state, t: out.record(state, t),
                    progress=None if bar is None else bar.update, max_steps=run_cfg["max_steps"])

    def keep_last_good_state(err: SolverFailure) -> None:
        out.record(state, err.t)  # the stepper leaves the last good state in `state`

    with record.running(now=lambda: loop.t, on_failure=keep_last_good_state):
        loop.run(state, t, next_index)
    record.close()
    # an interrupted run exits at once: its figures are left out (the data are on disk)
    figures_error = None if isinstance(record.error, RunInterrupted) else out.write_figures(setup.coords)
    summary = record.finish(t_final=t_final, t_reached=out.last_saved_time if out.rows else None,
                            steps=solver.info.get("steps"), solver=solver.info,
                            saved_times=[r["t"] for r in out.rows],
                            final=out.rows[-1] if out.rows else None, checkpoints=loop.checkpoints,
                            **({"figures_error": figures_error} if figures_error else {}))
    (record.path / CHECKPOINT_FILE).unlink(missing_ok=True)  # complete: nothing to resume
    return RunResult(out.path, "ok", state, out.rows, summary, setup)


def _check_budget(solver, state, t_final: float, max_steps: int) -> float | None:
    """The solver's step estimate; a run estimated above ``run.max_steps`` is refused. An
    error-controlled solver cannot estimate: it gets the budget as its step limit."""
    if hasattr(solver, "max_steps"):
        solver.max_steps = min(int(solver.max_steps), int(max_steps))
    est = solver.estimate_steps(state.data, 0.0, t_final) if hasattr(solver, "estimate_steps") else None
    if est is None:
        return None
    steps, how = est
    if not steps <= max_steps:  # NaN too
        raise ConfigError("run.max_steps", f"the run would take about {steps:.3g} steps ({how}), above "
                                           f"the budget run.max_steps = {max_steps}; shorten run.t_final, "
                                           "use scheme.time = \"implicit\", or raise run.max_steps")
    return float(steps)


def _resume_point(record: RunRecord, config: Mapping[str, Any], exists: str) -> dict[str, Any] | None:
    """The checkpoint to continue from (``exists="resume"``), checked against ``config``."""
    if exists != "resume":
        return None
    path = record.path / CHECKPOINT_FILE
    previous = record.previous
    if previous is not None:
        if previous.get("command", "run") != "run":
            raise ConfigError("--resume", f"{record.path} holds a ddsolve {previous.get('command')} run, not "
                                          "ddsolve run; pass --overwrite to replace it")
        _same_config(previous.get("config", {}), config, record.path)
    if not path.exists():
        if previous is not None and previous.get("status") == "ok":
            return {"complete": True, "summary": previous}
        return None  # nothing to continue: start from the beginning
    meta, arrays = read_checkpoint(path)
    if meta.get("command") != "run":
        raise ConfigError("--resume", f"the checkpoint in {record.path} is of ddsolve {meta.get('command')}, "
                                      "not ddsolve run")
    _same_config(meta["config"], config, record.path)
    solver = {k.removeprefix("solver."): v for k, v in arrays.items() if k.startswith("solver.")}
    return {"complete": False, "t": float(meta["t"]), "next_save": int(meta["next_save"]),
            "saved": int(meta["saved"]), "density": arrays["density"], "solver": solver,
            "resumed": int(meta.get("resumed", 0)), "solver_steps": meta.get("solver_steps")}


_RESUME_FREE = ("run.out", "run.checkpoint_every")
"""Keys a resumed run may change."""


def _same_config(stored: Mapping[str, Any], config: Mapping[str, Any], path: Path) -> None:
    differs = same_config(stored, config, ignore=_RESUME_FREE)
    if differs is not None:
        raise ConfigError(differs, f"differs from the run being resumed in {path}; resume with the same "
                                   "config, or pass --overwrite to start again")


def _completed(record: RunRecord, setup: Setup) -> RunResult:
    """``--resume`` of a run that had completed: its output, unchanged."""
    from ddsolve.app.results import load_run

    write_json(record.path / SUMMARY_FILE, record.previous)  # RunRecord wrote "running" over it
    done = load_run(record.path)
    columns = done.diagnostics
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    return RunResult(record.path, "complete", setup.coords.field(done.density(-1)), rows, done.summary, setup)


def _progress_bar(t_final: float, estimate: float | None, t0: float):
    """A tqdm bar over simulated time on stderr, with the step estimate."""
    from tqdm import tqdm

    label = f"~{estimate:.3g} steps" if estimate is not None else "adaptive steps"
    bar = tqdm(total=t_final, initial=t0, file=sys.stderr, unit="t", leave=False, desc=label,
               bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}{postfix}]")

    class _Bar:
        def update(self, t: float, steps: int) -> None:
            bar.n = min(float(t), t_final)
            bar.set_postfix_str(f"{steps} steps", refresh=False)
            bar.refresh()

        def close(self) -> None:
            bar.close()

    return _Bar()
