"""One particle run from a config: the engine of ``ddsolve particles``.

Output directory (same conventions as a PDE run, :mod:`ddsolve.app.io`):

=================== ==============================================================
``particles.h5``    snapshots with their PDE times (:mod:`particles.storage`)
``diagnostics.csv`` one row per recorded step: ``t``, ``energy`` (and ``risk`` for
                    two-layer problems, ``loss`` where it applies), the moments
                    ``mean_<name>, m2_<name>`` of the PDE coordinates — the columns
                    the PDE run writes under the same names
``summary.json``    resolved config, versions, the dynamics' settings, wall time,
                    steps, final diagnostics, status (``ok`` / ``failed``)
``particles.png``   histograms (one coordinate) or scatter (two) at snapshot times
``diagnostics.png`` risk / energy and means against t
=================== ==============================================================

``checkpoint.npz`` (while it runs, :mod:`ddsolve.app.checkpoint`) holds the particle
state (positions and whatever the dynamics carries: velocities of momentum methods, the
fast variables of HMM, the data stream of SGD), the step, the random generator's state and
how many rows and snapshots were written; it is written every
``particles.checkpoint_every`` wall seconds and when a signal stops the run, and deleted
when the run completes.

Runs are deterministic given ``[particles] seed``: one :class:`numpy.random.Generator`
draws the initial particles, then all noise and data, in a fixed order. They are also
deterministic given the seed alone whatever stops them: the loop advances between
recorded steps in chunks of about 0.2 s of wall time, cut only where the dynamics says a
cut changes nothing bit for bit (:meth:`~particles.base.Dynamics.split_point`), so that
SIGINT/SIGTERM are honoured within a chunk (the state reached is saved as a last row and
snapshot, a checkpoint is written, exit status 130), and ``--resume`` continues from the
checkpoint with the generator's state restored: a run stopped any number of times, even
by ``kill -9``, ends in the state of an uninterrupted run, bit for bit.

The final step is always recorded (a row and a snapshot), whatever ``snapshots`` lists.
A run whose work (steps; for hmm steps x (burn_in + inner_steps)) exceeds
``particles.max_steps`` is refused before it starts (exit status 2).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ddsolve.app.checkpoint import CHECKPOINT_FILE, read_checkpoint, same_config, write_checkpoint
from ddsolve.app.config import build, resolve, resolve_model
from ddsolve.app.io import (
    DIAGNOSTICS_FIGURE,
    DIAGNOSTICS_FILE,
    SUMMARY_FILE,
    DiagnosticsCSV,
    jsonable,
    read_diagnostics,
    show_progress,
    write_json,
)
from ddsolve.app.lifecycle import RunInterrupted, RunRecord, StopRequest
from ddsolve.grid.coordinates import Coordinates
from ddsolve.laws.initial import resolve_initial
from ddsolve.laws.moments import coordinate_moments
from ddsolve.model.kernels import QuadraticKernel
from ddsolve.schema import ConfigError, config_key

from .base import Dynamics, ParticleFailure, ParticleState
from .config import SGD_METHODS, check_resources, record_steps, resolve_particles
from .meanfield import MeanFieldParticles
from .plotting import plot_particle_diagnostics, plot_particle_file
from .storage import PARTICLES_FILE, ParticleFile, load_particles

__all__ = ["ParticleRunResult", "ParticleRunInterrupted", "build_dynamics", "run_particles",
           "sample_cells", "resolve_particle_section", "check_budget", "PARTICLES_FIGURE"]

PARTICLES_FIGURE = "particles.png"

_RESUME_FREE = ("particles.out", "particles.checkpoint_every", "particles.max_steps")
"""Keys a resumed run may change (they do not change the trajectory)."""
_PAUSE_SECONDS = 0.2
"""Target wall time of one chunk of steps: a signal waits at most about this long."""


ParticleRunInterrupted = RunInterrupted
"""The user interrupted a particle run (the one :class:`ddsolve.failures.RunInterrupted`)."""


@dataclass
class ParticleRunResult:
    """What :func:`run_particles` returns."""

    out_dir: Path
    summary: dict[str, Any]
    rows: list[dict[str, float]]
    state: ParticleState
    dynamics: Dynamics


def sample_cells(coords: Coordinates, values: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points from the piecewise-constant law with cell averages ``values``
    (a cell by its mass, then uniformly inside it): the exact law of the PDE's
    discrete initial datum. Shape ``(n, ndim)``, in the grid's coordinates."""
    p = np.asarray(values, dtype=float).ravel()
    p = np.maximum(p, 0.0) / np.sum(np.maximum(p, 0.0))
    flat = rng.choice(p.size, size=n, p=p)
    idx = np.unravel_index(flat, coords.shape)
    u = rng.random((n, coords.ndim))
    out = np.empty((n, coords.ndim))
    for k, a in enumerate(coords.axes):
        out[:, k] = a.lower + (idx[k] + u[:, k]) * a.spacing
    return out


def _grid_dynamics(config: Mapping[str, Any], part: Mapping[str, Any]) -> Dynamics:
    setup = build(config, solver=False, seed=part["seed"])
    coords, model = setup.coords, setup.model
    values = setup.initial.values

    def initial(rng, n):
        return sample_cells(coords, values, n, rng)

    lower = [a.lower for a in coords.axes]
    upper = [a.upper for a in coords.axes]
    if part["method"] == "hmm":
        from .hmm import MFHomSGLD

        kernel = model.interaction
        if not (kernel.is_zero or isinstance(kernel, QuadraticKernel)):
            raise ConfigError("particles.method", "hmm agents couple through the Curie-Weiss mean "
                                                  "lambda (X - mean): the model's interaction must be "
                                                  "quadratic (problem curie-weiss) or none")
        if any(coords.periodic) or coords.radial_dim is not None:
            raise ConfigError("particles.method", "hmm runs on Cartesian, non-periodic coordinates")
        lam = 0.0 if kernel.is_zero else kernel.theta
        with config_key("particles"):
            return MFHomSGLD(model.potential, n=part["n"], dim=coords.ndim, gamma=part["gamma"],
                             eps=part["scale_separation"], lam=lam, beta=model.beta,
                             inner_steps=part["inner_steps"], burn_in=part["burn_in"],
                             inner_dt=part["inner_dt"], dt=part["dt"], initial=initial)
    with config_key("particles"):
        return MeanFieldParticles(model, part["n"], part["dt"], initial, names=coords.names,
                                  lower=lower, upper=upper, periodic=coords.periodic,
                                  integrator=part["integrator"], interaction=part["interaction"],
                                  radial=part.get("radial"), mesh_cells=part.get("mesh_cells", 256))


def _momentum(sgd, part: Mapping[str, Any]) -> Dynamics:
    """``sgd`` itself for plain SGD, else the momentum method of ``[particles]`` on it."""
    if part["method"] == "sgd":
        return sgd
    from .momentum import MomentumSGD

    options = {}
    if part["method"] == "nesterov":
        options["momentum"] = part["momentum"]
    if part["method"] == "mass" and "kappa_tilde" in part:
        options["kappa_tilde"] = part["kappa_tilde"]
    return MomentumSGD(sgd, part["method"], **options)


def _landscape_dynamics(config: Mapping[str, Any], part: Mapping[str, Any]) -> Dynamics:
    """SGD-type optimisers on the potential of a problem that is not a network
    (:mod:`particles.landscape`)."""
    from .landscape import LandscapeSGD
    from .momentum import MomentumSGD

    setup = build(config, solver=False, seed=part["seed"])
    coords, model = setup.coords, setup.model
    if any(coords.periodic) or coords.radial_dim is not None:
        raise ConfigError("particles.method", f"{part['method']} on a loss landscape runs on Cartesian, "
                                              "non-periodic coordinates")
    for key, neutral in (("batch", 1), ("dropout", 1.0)):
        if part.get(key, neutral) != neutral:
            raise ConfigError(f"particles.{key}", f"only for two-layer networks; the {part['method']} "
                                                  "agents on a potential draw one noise sample per step")
    if part["method"] == "mass" and "kappa_tilde" not in part:
        raise ConfigError("particles.kappa_tilde", "required for mass on a potential (no data law to "
                                                   "estimate it from), e.g. kappa_tilde = 10")
    values = setup.initial.values
    sgd = LandscapeSGD(model.potential, part["n"], coords.ndim, part["eps"], model.beta,
                       lambda rng, n: sample_cells(coords, values, n, rng), coords.names)
    options = {k: part[k] for k in ("momentum", "kappa_tilde") if k in part
               and (k != "momentum" or part["method"] == "nesterov")}
    with config_key("particles"):
        dyn = MomentumSGD(sgd, part["method"], **options)  # "sgd": plain SGD, step for step
    dyn.method = part["method"]
    return dyn


def _sgd_dynamics(config: Mapping[str, Any], part: Mapping[str, Any]) -> Dynamics:
    from ddsolve.problems.two_layer import build_network

    problem, model = resolve_model(config.get("model", {}))
    params = {k: v for k, v in model.items() if k != "problem"}
    init = resolve_initial(config.get("initial", {}), problem.initial_kinds(), problem.default_initial)
    if init["kind"] != "network":
        raise ConfigError("initial.kind", "SGD runs start from the network initialisation "
                                          "w ~ N(0, kappa^2/d I): kind must be \"network\"")
    spec = build_network(params)
    from .sgd import TwoLayerSGD

    with config_key("particles"):
        sgd = TwoLayerSGD(spec.data, spec.activation, part["n"], part["eps"], xi=params["xi"],
                          beta=params["beta"], batch=part["batch"], dropout=part.get("dropout", 1.0),
                          train_a=spec.train_a, kappa=spec.kappa, a_mean=init.get("a_mean", 1.0),
                          a_std=init.get("a_std", 0.1), risk=part["risk"])
        return _momentum(sgd, part)


def build_dynamics(config: Mapping[str, Any]) -> tuple[dict[str, Any], Dynamics]:
    """Resolve ``config`` (raw or resolved) and build the dynamics its ``[particles]``
    section asks for. Returns ``(resolved_config, dynamics)``."""
    if not isinstance(config, Mapping):
        raise ConfigError("config", "must be a table of sections")
    check_resources(config)  # before any array is allocated
    part = resolve_particle_section(config.get("particles"))
    if part["method"] in SGD_METHODS:
        network = resolve_model(config.get("model", {}))[0].name == "two-layer"
        if network:
            dyn = _sgd_dynamics(config, part)
        else:
            resolved = resolve(config, solver=False)
            resolved["particles"] = part
            dyn = _landscape_dynamics(resolved, part)
        if not math.isclose(dyn.dt, part["eps"], rel_tol=1e-12):
            # momentum methods move time faster than plain SGD (particles.momentum): the
            # PDE time per step is dyn.dt, so t_final and the snapshot times convert with it
            raw_part = config.get("particles") or {}
            if "t_final" in raw_part:
                part["steps"] = max(1, int(round(part["t_final"] / dyn.dt)))
            part["t_final"] = part["steps"] * dyn.dt
        if not network:
            return resolved, dyn
        problem, model = resolve_model(config.get("model", {}))
        resolved = {"model": model, "particles": part}
        if "initial" in config:
            resolved["initial"] = resolve_initial(config["initial"], problem.initial_kinds(),
                                                  problem.default_initial)
    else:
        resolved = resolve(config, solver=False)
        resolved["particles"] = part
        dyn = _grid_dynamics(resolved, part)
    return resolved, dyn


def resolve_particle_section(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """:func:`particles.config.resolve_particles`, with a number of steps that overflows
    (``t_final / dt`` beyond floating point) reported on ``particles.t_final``."""
    try:
        return resolve_particles(raw)
    except OverflowError:
        raise ConfigError("particles.t_final", "t_final / dt (the number of steps) is not a finite "
                                               "number; shorten particles.t_final") from None


def _count(n: int) -> str:
    """``n`` to three significant digits, also beyond the range of floats."""
    try:
        return f"{n:.3g}"
    except OverflowError:
        return f"about 10^{len(str(n)) - 1}"


def check_budget(part: Mapping[str, Any]) -> int:
    """The work of the run of the resolved ``[particles]`` section ``part``: its steps, for
    hmm times the ``burn_in + inner_steps`` fast steps of each; a :class:`ConfigError` on
    ``particles.max_steps`` if it exceeds that budget (or on the step unit if the run's
    final time is not a finite number)."""
    steps = int(part["steps"])
    inner = int(part.get("burn_in", 0)) + int(part["inner_steps"]) if part["method"] == "hmm" else 1
    work = steps * inner
    budget = int(part.get("max_steps", 10**8))
    if work > budget:
        how = f" ({_count(steps)} macro steps x {inner} fast steps)" if inner > 1 else ""
        raise ConfigError("particles.max_steps", f"the run would take {_count(work)} steps{how}, above "
                                                 f"the budget particles.max_steps = {budget}; shorten "
                                                 "particles.t_final (or steps), or raise particles.max_steps")
    unit_key = "particles.eps" if part["method"] in SGD_METHODS else "particles.dt"
    if not math.isfinite(float(part["t_final"])):
        raise ConfigError(unit_key, f"steps x {unit_key.split('.')[1]} (the final time) is not a "
                                    "finite number")
    return work


def run_particles(config: Mapping[str, Any], out_dir: str | Path | None = None, *,
                  progress: bool = False, exists: str = "error") -> ParticleRunResult:
    """Run the particle dynamics described by ``config`` and write ``out_dir``
    (default ``[particles] out``).

    Parameters
    ----------
    config : mapping
        Config sections as read from TOML, or resolved.
    out_dir : path-like, optional
        Output directory; overrides ``[particles] out``.
    progress : bool
        Show a progress bar over the steps (only if stderr is a terminal and ``CI`` is unset).
    exists : {"error", "overwrite", "resume"}
        What to do if the directory holds an earlier run (:mod:`ddsolve.app.outdir`):
        refuse, replace it, or continue it from its checkpoint (``--resume``; a directory
        without a checkpoint starts from the beginning, one whose run completed with the
        same config is left as it is).

    Raises
    ------
    ConfigError
        Before any step, for an invalid config, a run above ``particles.max_steps``, a
        directory in use, or a checkpoint that does not match the config.
    ParticleFailure
        After writing the partial output, if the particles became non-finite.
    ParticleRunInterrupted
        After saving the state reached and a checkpoint, on Ctrl-C or SIGTERM.
    """
    config, dyn = build_dynamics(config)
    part = config["particles"]
    if out_dir is not None:
        part["out"] = str(out_dir)
    work = check_budget(part)
    steps = int(part["steps"])
    t_final = steps * dyn.dt
    rows_at, snaps_at = record_steps(part)
    rows_at = sorted(set(rows_at) | {steps})   # the final state is always recorded
    snaps_at = set(snaps_at) | {steps}
    record = RunRecord(part["out"], "particles.out", config, exists=exists, command="particles",
                       check=lambda record: _resume_point(record, config, exists),
                       dynamics=dyn.describe(), steps_planned=steps,
                       **({"work_planned": work} if work != steps else {}))
    out = record.path
    resume = record.checked
    try:
        if resume is not None and resume["complete"]:
            done = _completed(record, dyn, steps)
            if done is not None:
                return done
            resume = None
        keep_rows = None if resume is None else int(resume["meta"]["rows"])
        keep_snaps = None if resume is None else int(resume["meta"]["snapshots"])
        for name in (PARTICLES_FIGURE, DIAGNOSTICS_FIGURE):
            (out / name).unlink(missing_ok=True)
        csv = DiagnosticsCSV(out / DIAGNOSTICS_FILE, keep_rows)
        record.close_with(csv.close)
        h5 = ParticleFile(out / PARTICLES_FILE, dyn.names,
                          {"method": part["method"], "n": part["n"], "dt": dyn.dt,
                           "config": json.dumps(jsonable(config))}, keep=keep_snaps)
        record.close_with(h5.close)
    except (OSError, ValueError) as err:
        key = "--resume" if exists == "resume" else "particles.out"
        what = "cannot continue the run in" if exists == "resume" else "cannot write"
        error = ConfigError(key, f"{what} the output directory {out}: {err}")
        _abandon(record, error)
        raise error from None
    except BaseException as err:
        _abandon(record, err)
        raise
    bar = None
    if show_progress(progress):
        bar = _progress_bar(dyn, part, steps, 0 if resume is None else int(resume["meta"]["step"]))
        record.close_with(bar.close)

    def write_row(state: ParticleState, snapshot: bool) -> None:
        t = state.step * dyn.dt
        y = dyn.coordinates(state)
        row = {"t": t, **dyn.diagnostics(state), **coordinate_moments(y, dyn.names)}
        if not all(math.isfinite(v) for v in row.values()):
            last = csv.rows[-1]["t"] if csv.rows else 0.0
            raise ParticleFailure(f"non-finite diagnostics at t = {t:.6g}: {row}", last)
        csv.write(row)
        if snapshot:
            h5.write(t, state.step, y, dyn.vectors(state) if part["save_vectors"] else None)

    def checkpoint(loop: _ParticleLoop) -> None:
        meta, arrays = dyn.checkpoint_state(loop.state)
        try:
            write_checkpoint(out / CHECKPOINT_FILE,
                             {"command": "particles", "step": int(loop.state.step), "next_row": loop.next_row,
                              "recorded": loop.recorded, "rows": len(csv.rows), "snapshots": h5.count,
                              "config": config,
                              "rng": loop.rng.bit_generator.state, "state": meta,
                              "resumed": 0 if resume is None else int(resume["meta"].get("resumed", 0)) + 1},
                             {f"state.{k}": v for k, v in arrays.items()})
        except OSError as err:  # a run is not stopped by a checkpoint it cannot write
            record.summary["checkpoint_error"] = f"{type(err).__name__}: {err}"

    loop = _ParticleLoop(dyn, rows_at, snaps_at, write_row=write_row, stop=record.stop,
                         checkpoint=checkpoint, checkpoint_every=float(part["checkpoint_every"]),
                         progress=None if bar is None else bar.update)
    with record.running(now=lambda: loop.t):
        if resume is None:
            rng = np.random.default_rng(part["seed"])
            loop.start(dyn.initial_state(rng), rng, next_row=0)
        else:
            meta = resume["meta"]
            state = dyn.restore_state(meta["state"], {k.removeprefix("state."): v for k, v in
                                                      resume["arrays"].items() if k.startswith("state.")})
            loop.start(state, _generator(meta["rng"]), next_row=int(meta["next_row"]),
                       recorded=meta.get("recorded"))
            record.summary["resumed"] = {"t": state.step * dyn.dt, "step": state.step,
                                         "times": int(meta.get("resumed", 0)) + 1}
        with record.stop.deferred():
            loop.run()
    record.close()
    interrupted = record.failure is not None and record.failure.get("cause") == "interrupted"
    # a stopped run exits at once (a resumed run draws the figures when it completes)
    figures_error = None if interrupted else _write_figures(record.stop, out, dyn.names, csv.rows)
    state = loop.state
    taken = state.step - loop.first_step
    summary = record.finish(t_final=t_final, t_reached=csv.rows[-1]["t"] if csv.rows else None,
                            steps=state.step, final=csv.rows[-1] if csv.rows else None,
                            microseconds_per_step=1e6 * record.wall_time / max(taken, 1),
                            checkpoints=loop.checkpoints,
                            **({"figures_error": figures_error} if figures_error else {}))
    (out / CHECKPOINT_FILE).unlink(missing_ok=True)  # complete: nothing to resume
    return ParticleRunResult(out, summary, csv.rows, state, dyn)


class _ParticleLoop:
    """The steps of a run: advance between the recorded steps in chunks of about
    ``pause_seconds``, honour a signal and write checkpoints between chunks (module
    docstring). ``start`` gives it the state, ``run`` runs it."""

    def __init__(self, dyn: Dynamics, rows_at: list[int], snaps_at: set[int], *,
                 write_row: Callable[[ParticleState, bool], None], stop: StopRequest,
                 checkpoint: Callable[[_ParticleLoop], None], checkpoint_every: float,
                 progress: Callable[[int], None] | None = None,
                 pause_seconds: float = _PAUSE_SECONDS) -> None:
        self.dyn, self.rows_at, self.snaps_at = dyn, rows_at, snaps_at
        self.write_row, self.stop = write_row, stop
        self._checkpoint_fn, self.checkpoint_every = checkpoint, checkpoint_every
        self.progress, self.pause_seconds = progress, pause_seconds
        self.state: ParticleState | None = None
        self.rng: np.random.Generator | None = None
        self.next_row = 0
        self.first_step = 0
        self.checkpoints = 0
        self.pause = 1
        self.recorded: int | None = None
        self._last_checkpoint = time.perf_counter()

    @property
    def t(self) -> float:
        return 0.0 if self.state is None else self.state.step * self.dyn.dt

    def start(self, state: ParticleState, rng: np.random.Generator, next_row: int,
              recorded: int | None = None) -> None:
        """Run from ``state`` with ``rng``; ``rows_at[next_row]`` is the next step to record
        and ``recorded`` the last one recorded."""
        self.state, self.rng, self.next_row = state, rng, int(next_row)
        self.first_step = state.step
        self.recorded = None if recorded is None else int(recorded)
        self._last_checkpoint = time.perf_counter()

    def run(self) -> None:
        try:
            self._run()
        except (OverflowError, FloatingPointError) as err:
            raise ParticleFailure(f"{type(err).__name__} at step {self.state.step}: {err}", self.t) from err

    def _run(self) -> None:
        state = self.state
        while self.next_row < len(self.rows_at):
            k = self.rows_at[self.next_row]
            while state.step < k:
                self._chunk(k)
                if self.stop.requested:
                    self._interrupt()
                if state.step < k and self._checkpoint_due():
                    self._checkpoint()
            self.write_row(state, k in self.snaps_at)
            self.recorded = state.step
            self.next_row += 1
            if self.stop.requested:
                self._interrupt()
            if self.next_row < len(self.rows_at) and self._checkpoint_due():
                self._checkpoint()

    def _chunk(self, k: int) -> None:
        """Advance towards step ``k`` by about ``pause`` steps, cut where the dynamics allows;
        rescale ``pause`` towards ``pause_seconds`` of wall time."""
        state = self.state
        start = state.step
        end = self.dyn.split_point(start, k, start + self.pause)
        wall = time.perf_counter()
        self.dyn.advance(state, end - start, self.rng)
        wall = time.perf_counter() - wall
        if end - start >= self.pause or wall > self.pause_seconds:
            want = self.pause_seconds * (end - start) / max(wall, 1e-9)
            self.pause = int(min(max(want, self.pause / 4, 1), self.pause * 4, 10**12))
        if self.progress is not None:
            self.progress(state.step)

    def _checkpoint_due(self) -> bool:
        return time.perf_counter() - self._last_checkpoint >= self.checkpoint_every

    def _checkpoint(self) -> None:
        self._checkpoint_fn(self)
        self.checkpoints += 1
        self._last_checkpoint = time.perf_counter()

    def _interrupt(self) -> None:
        """Checkpoint, record the state reached (a row and a snapshot, beyond what the
        checkpoint saw, so ``--resume`` drops them) and stop."""
        self._checkpoint()
        if self.recorded != self.state.step:
            self.write_row(self.state, True)
            self.recorded = self.state.step
        raise RunInterrupted(self.t, self.stop.signal or "SIGINT")


def _generator(state: Mapping[str, Any]) -> np.random.Generator:
    """A :class:`numpy.random.Generator` in the bit-generator state ``state``."""
    bitgen = getattr(np.random, str(state["bit_generator"]))()
    bitgen.state = dict(state)
    return np.random.Generator(bitgen)


def _resume_point(record: RunRecord, config: Mapping[str, Any], exists: str) -> dict[str, Any] | None:
    """The checkpoint to continue from (``exists="resume"``), checked against ``config``;
    ``{"complete": True}`` for a run that completed with the same config; ``None``: start.
    Called by :class:`RunRecord` with the directory locked, before anything is written."""
    if exists != "resume":
        return None
    path = record.path / CHECKPOINT_FILE
    if not path.exists():
        previous = record.previous
        if (previous is not None and previous.get("status") == "ok" and previous.get("command") == "particles"
                and same_config(previous.get("config", {}), config, ignore=_RESUME_FREE) is None):
            return {"complete": True}
        return None  # nothing to continue: start from the beginning
    meta, arrays = read_checkpoint(path)
    if meta.get("command") != "particles":
        raise ConfigError("--resume", f"the checkpoint in {record.path} is of ddsolve {meta.get('command')}, "
                                      "not ddsolve particles")
    differs = same_config(meta.get("config", {}), config, ignore=_RESUME_FREE)
    if differs is not None:
        raise ConfigError(differs, f"differs from the run being resumed in {record.path}; resume with the "
                                   "same config, or pass --overwrite to start again")
    return {"complete": False, "meta": meta, "arrays": arrays}


def _completed(record: RunRecord, dyn: Dynamics, steps: int) -> ParticleRunResult | None:
    """``--resume`` of a run that had completed: its output, unchanged (``None`` if it
    cannot be read back: then the run starts again). ``state.x`` is the last snapshot's
    vectors, or its coordinates when the vectors were not saved."""
    try:
        snaps = load_particles(record.path)
        columns = read_diagnostics(record.path / DIAGNOSTICS_FILE)
        x = snaps.vectors[-1] if snaps.vectors is not None else snaps.coordinates[-1]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    write_json(record.path / SUMMARY_FILE, record.previous)  # RunRecord wrote "running" over it
    record.release()
    return ParticleRunResult(record.path, record.previous, rows, ParticleState(np.array(x), step=steps), dyn)


def _abandon(record: RunRecord, err: BaseException) -> None:
    """Release a run that stops before its first step: the summary found in the directory
    is put back (``--resume``), else the summary says why the run did not start."""
    try:
        if record.previous is not None:
            write_json(record.path / SUMMARY_FILE, record.previous)
        else:
            record.summary.update(status="failed", failure={"message": f"{type(err).__name__}: {err}",
                                                            "t": None, "cause": "error"})
            record.write()
    finally:
        record.release()


def _write_figures(stop: StopRequest, out: Path, names, rows) -> str | None:
    """``particles.png`` and ``diagnostics.png``; an error message instead of an exception
    (the numerical output is on disk: figures never fail a run). Signals wait for them."""
    try:
        with stop.installed(), stop.deferred():
            try:
                plot_particle_file(out / PARTICLES_FILE, names, out / PARTICLES_FIGURE)
                plot_particle_diagnostics(rows, out / DIAGNOSTICS_FIGURE)
            except Exception as err:  # noqa: BLE001 - figures must not fail a finished run
                return f"{type(err).__name__}: {' '.join(str(err).split())}"
    except KeyboardInterrupt:  # a second signal
        return "KeyboardInterrupt: the figures were interrupted"
    return None


def _progress_bar(dyn: Dynamics, part: Mapping[str, Any], steps: int, initial: int):
    """A tqdm bar over the steps on stderr, labelled with their number (and, for hmm, the
    fast steps each)."""
    from tqdm import tqdm

    label = f"{part['method']}: {steps:,} steps"
    if part["method"] == "hmm":
        label += f" x {int(part.get('burn_in', 0)) + int(part['inner_steps'])} fast"
    bar = tqdm(total=steps, initial=initial, file=sys.stderr, unit="step", unit_scale=True, leave=False,
               desc=label)

    class _Bar:
        def update(self, step: int) -> None:
            bar.n = min(int(step), steps)
            bar.refresh()

        def close(self) -> None:
            bar.close()

    return _Bar()
