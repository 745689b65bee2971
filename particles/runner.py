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

Runs are deterministic given ``[particles] seed``: one :class:`numpy.random.Generator`
draws the initial particles, then all noise and data, in a fixed order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ddsolve.app.config import build, resolve, resolve_model
from ddsolve.app.io import DIAGNOSTICS_FIGURE, DIAGNOSTICS_FILE, DiagnosticsCSV, jsonable, show_progress
from ddsolve.app.lifecycle import RunInterrupted, RunRecord
from ddsolve.grid.coordinates import Coordinates
from ddsolve.laws.initial import resolve_initial
from ddsolve.laws.moments import coordinate_moments
from ddsolve.model.kernels import QuadraticKernel
from ddsolve.schema import ConfigError, config_key

from .base import Dynamics, ParticleFailure, ParticleState
from .config import SGD_METHODS, record_steps, resolve_particles
from .meanfield import MeanFieldParticles
from .plotting import plot_particle_diagnostics, plot_particles
from .storage import PARTICLES_FILE, ParticleFile

__all__ = ["ParticleRunResult", "ParticleRunInterrupted", "build_dynamics", "run_particles",
           "sample_cells", "PARTICLES_FIGURE"]

PARTICLES_FIGURE = "particles.png"


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
    part = resolve_particles(config.get("particles"))
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


def run_particles(config: Mapping[str, Any], out_dir: str | Path | None = None, *,
                  progress: bool = False) -> ParticleRunResult:
    """Run the particle dynamics described by ``config`` and write ``out_dir``
    (default ``[particles] out``).

    Raises
    ------
    ConfigError
        Before anything is written, for an invalid config.
    ParticleFailure
        After writing the partial output, if the particles became non-finite.
    ParticleRunInterrupted
        After closing the output, if the user interrupted the run.
    """
    config, dyn = build_dynamics(config)
    part = config["particles"]
    if out_dir is not None:
        part["out"] = str(out_dir)
    record = RunRecord(part["out"], "particles.out", config, dynamics=dyn.describe())
    out = record.path
    try:
        csv = DiagnosticsCSV(out / DIAGNOSTICS_FILE)
    except OSError as err:
        raise ConfigError("particles.out", f"cannot write the output directory: {err}") from None
    record.close_with(csv.close)
    rows_at, snaps_at = record_steps(part)
    h5 = ParticleFile(out / PARTICLES_FILE, dyn.names,
                      {"method": part["method"], "n": part["n"], "dt": dyn.dt,
                       "config": json.dumps(jsonable(config))})
    record.close_with(h5.close)
    rng = np.random.default_rng(part["seed"])
    times, snapshots = [], []
    state = dyn.initial_state(rng)
    bar = None
    if show_progress(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=part["steps"], unit="step", leave=False)
        record.close_with(bar.close)
    with record.running(now=lambda: state.step * dyn.dt):
        for k in rows_at:
            if k > state.step:
                dyn.advance(state, k - state.step, rng)
                if bar is not None:
                    bar.update(k - bar.n)
            t = state.step * dyn.dt
            y = dyn.coordinates(state)
            row = {"t": t, **dyn.diagnostics(state), **coordinate_moments(y, dyn.names)}
            if not all(math.isfinite(v) for v in row.values()):
                raise ParticleFailure(f"non-finite diagnostics at t = {t:.6g}: {row}", t)
            csv.write(row)
            if k in snaps_at:
                h5.write(t, state.step, y, dyn.vectors(state) if part["save_vectors"] else None)
                times.append(t)
                snapshots.append(np.array(y))
    record.close()
    if times:
        plot_particles(times, snapshots, dyn.names, out / PARTICLES_FIGURE)
    plot_particle_diagnostics(csv.rows, out / DIAGNOSTICS_FIGURE)
    summary = record.finish(steps=state.step, final=csv.rows[-1] if csv.rows else None,
                            microseconds_per_step=1e6 * record.wall_time / max(state.step, 1))
    return ParticleRunResult(out, summary, csv.rows, state, dyn)
