"""The ``[particles]`` section of a config file (``ddsolve particles CONFIG.toml``).

A particle run reads the same file as ``ddsolve run``: ``[model]`` (the same problem
and parameters, hence the same :math:`V, U, \\beta, \\xi`), ``[grid]`` and
``[initial]`` for the mean-field system (the domain, and the initial law sampled from
the same cell averages the PDE starts from), plus ``[particles]``::

    [particles]
    method = "mean-field"      # or sgd, nesterov, restarted-nesterov, mass, hmm
    n = 1000                   # particles / neurons / agents
    t_final = 2.0              # or steps = ...; PDE time is step * dt (or * eps)
    dt = 0.01                  # time step (mean-field, hmm); eps for the SGD family
    seed = 0
    snapshots = 11             # a count (evenly spaced, t = 0 and t_final included) or a list of times

``[scheme]`` and ``[run]`` belong to the PDE and are ignored here. Every key is checked
(:data:`PARTICLE_PARAMS`); ``ddsolve particles --help`` and :func:`describe_particles`
list them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

from ddsolve.app.resources import DIAGNOSTICS_ROW_BYTES, Demand, check_memory, grid_demands
from ddsolve.schema import (
    Boolean,
    Choice,
    ConfigError,
    FilePath,
    Integer,
    ListOf,
    OneOf,
    Param,
    Real,
    format_table,
    resolve_table,
    when_equals,
)

from .forces import FORCE_METHODS
from .meanfield import INTEGRATORS, RADIAL_MODES

__all__ = ["METHODS", "SGD_METHODS", "PARTICLE_PARAMS", "resolve_particles", "describe_particles",
           "check_resources", "MAX_SNAPSHOTS", "MAX_ROWS", "MAX_STEP"]

SGD_METHODS = ("sgd", "nesterov", "restarted-nesterov", "mass")
METHODS = ("mean-field", *SGD_METHODS, "hmm")
MAX_SNAPSHOTS = 10_000
MAX_ROWS = 100_000
"""Most diagnostics rows of a run (they are kept in memory)."""
MAX_STEP = 10.0
"""Largest time step ``dt``, ``eps``, ``inner_dt``: one step of an explicit scheme much
longer than the time scales of any model here is garbage, not a result."""
_mf = when_equals("method", "mean-field")
_sgd = when_equals("method", *SGD_METHODS)
_stepped = when_equals("method", "mean-field", "hmm")
_hmm = when_equals("method", "hmm")

PARTICLE_PARAMS: tuple[Param, ...] = (
    Param("method", Choice(METHODS), "mean-field",
          "mean-field: Euler-Maruyama/Heun for the McKean-Vlasov SDE of the model (any problem); "
          "sgd: online/mini-batch/noisy/dropout SGD of the real two-layer network; nesterov, "
          "restarted-nesterov, mass: momentum SGD; on other problems these four run independent agents on "
          "the potential V with SGLD noise (particles.landscape); hmm: MF-Hom-SGLD multiscale agents"),
    Param("n", Integer(low=1), 1000, "number of particles (neurons, agents)"),
    Param("steps", Integer(low=1), None, "number of steps (give steps or t_final)"),
    Param("t_final", Real(low=0, low_open=True), None, "final PDE time (give steps or t_final)"),
    Param("dt", Real(0.0, MAX_STEP, low_open=True), 0.01, "time step (PDE time per step)", when=_stepped),
    Param("eps", Real(0.0, MAX_STEP, low_open=True), 1e-3,
          "SGD time unit epsilon: PDE time per step, step size s_k = eps xi(k eps) / 2", when=_sgd),
    Param("batch", Integer(low=1), 1, "samples per SGD step (1: online SGD)", when=_sgd),
    Param("dropout", Real(0.0, 1.0, low_open=True), 1.0,
          "keep-probability p of each neuron per step (1: no dropout)", when=when_equals("method", "sgd")),
    Param("risk", Choice(("exact", "sample", "none")), "exact",
          "population risk in diagnostics.csv: exact (Gaussian data laws), held-out sample, or none",
          when=_sgd),
    Param("momentum", Real(0.0, 1.0, high_open=True), 0.9, "Nesterov momentum gamma",
          when=when_equals("method", "nesterov")),
    Param("kappa_tilde", Real(low=1.0), None,
          "MaSS: statistical condition number (default: computed from a data sample)",
          when=when_equals("method", "mass")),
    Param("integrator", Choice(INTEGRATORS), "euler-maruyama", "time integrator", when=_mf),
    Param("interaction", Choice(FORCE_METHODS), "auto",
          "interaction force: auto, mean (Curie-Weiss/Kuramoto, O(N)), features (reduced two-layer "
          "kernels, O(N T)), pairwise (O(N^2), numba), mesh (particle-mesh FFT), generic (any kernel)", when=_mf),
    Param("radial", Choice(RADIAL_MODES), None,
          "radial axes as full vectors in R^d or as radii (default: vector with noise, radius without)",
          when=_mf),
    Param("mesh_cells", Integer(low=4), 256, "mesh cells per axis for interaction = mesh",
          when=when_equals("interaction", "mesh")),
    Param("gamma", Real(low=0, low_open=True), 0.1, "HMM coupling width gamma", when=_hmm),
    Param("scale_separation", Real(low=0, low_open=True), 0.01, "HMM fast time scale epsilon",
          when=_hmm),
    Param("inner_steps", Integer(low=1), 100, "HMM inner (fast) steps M per macro step", when=_hmm),
    Param("burn_in", Integer(low=0), 20, "HMM inner steps discarded before averaging", when=_hmm),
    Param("inner_dt", Real(0.0, MAX_STEP, low_open=True), None,
          "HMM inner step delta (default: scale_separation / 10)", when=_hmm),
    Param("seed", Integer(low=0), 0, "seed of the random generator (initial law, noise, data)"),
    Param("snapshots", OneOf((Integer(low=2), ListOf(Real(low=0)))), 11,
          "snapshot count (evenly spaced in time, 0 and t_final included) or a list of PDE times"),
    Param("diagnostics_every", Integer(low=1), None,
          "also write a diagnostics row every this many steps (default: at snapshots only)"),
    Param("save_vectors", Boolean(), True, "store the full vectors (e.g. w_i in R^d) in particles.h5"),
    Param("checkpoint_every", Real(low=0, low_open=True, allow_inf=True), 60.0,
          "wall-clock seconds between checkpoints (checkpoint.npz, for --resume); inf: none"),
    Param("max_steps", Integer(low=1), 10**8,
          "budget of steps (hmm: macro steps x (burn_in + inner_steps)); a run that needs more is "
          "refused before it starts"),
    Param("out", FilePath(), "out-particles", "output directory; --out overrides"),
)


def resolve_particles(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``[particles]``; exactly one of ``steps`` and ``t_final`` is set on
    return (both filled in)."""
    raw = dict(raw or {})
    # keys of another method are ignored with a warning, so that one file can switch
    # methods with --set particles.method=...; unknown keys stay errors
    method = raw.get("method", "mean-field")
    if method in METHODS:
        probe = {"method": method, "interaction": raw.get("interaction", "auto")}
        for p in PARTICLE_PARAMS:
            if p.name in raw and p.when is not None and not p.when.test(probe):
                warnings.warn(f"particles.{p.name} is not used by method {method!r} (ignored)",
                              stacklevel=2)
                del raw[p.name]
    out = resolve_table(raw, PARTICLE_PARAMS, "particles")
    unit = out["eps"] if out["method"] in SGD_METHODS else out["dt"]
    unit_key = "particles.eps" if out["method"] in SGD_METHODS else "particles.dt"
    if ("steps" in out) == ("t_final" in out):
        raise ConfigError("particles.t_final", "give exactly one of particles.steps and particles.t_final")
    if "t_final" in out:
        steps = out["t_final"] / unit
        if not math.isfinite(steps):
            raise ConfigError("particles.t_final", f"t_final / {unit_key} (the number of steps) is beyond "
                                                   "floating point; shorten particles.t_final")
        if abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
            raise ConfigError("particles.t_final", f"must be a multiple of {unit_key} = {unit:g} "
                                                   f"(got {steps:.6g} steps); or give particles.steps")
        out["steps"] = max(1, int(round(steps)))
    out["t_final"] = out["steps"] * unit
    snaps = out["snapshots"]
    if isinstance(snaps, int) and snaps > MAX_SNAPSHOTS:
        raise ConfigError("particles.snapshots", f"at most {MAX_SNAPSHOTS} snapshots")
    if isinstance(snaps, list):
        if len(snaps) > MAX_SNAPSHOTS:
            raise ConfigError("particles.snapshots",
                              f"at most {MAX_SNAPSHOTS} snapshot times, got {len(snaps)}")
        if not snaps or any(t > out["t_final"] * (1 + 1e-12) for t in snaps):
            raise ConfigError("particles.snapshots", f"times must lie in [0, t_final = {out['t_final']:g}]")
    every = out.get("diagnostics_every")
    if every and out["steps"] // every > MAX_ROWS:
        rows, least = out["steps"] // every + 1, out["steps"] / MAX_ROWS
        raise ConfigError("particles.diagnostics_every", f"would write {rows:.3g} diagnostics rows, more "
                                                         f"than {MAX_ROWS}; must be >= steps / {MAX_ROWS} "
                                                         f"= {least:.6g}")
    if out["method"] == "hmm" and out.get("burn_in", 0) >= out["inner_steps"]:
        raise ConfigError("particles.burn_in", f"must be below inner_steps = {out['inner_steps']}")
    if out["method"] == "hmm" and "inner_dt" not in out:
        out["inner_dt"] = out["scale_separation"] / 10
    return out


def record_steps(particles: Mapping[str, Any]) -> tuple[list[int], set[int]]:
    """Steps at which diagnostics rows are written, and the subset with snapshots."""
    steps, unit = particles["steps"], particles["t_final"] / particles["steps"]
    snaps = particles["snapshots"]
    if isinstance(snaps, int):
        snap_steps = {int(round(k * steps / (snaps - 1))) for k in range(snaps)}
    else:
        snap_steps = {int(round(t / unit)) for t in snaps}
    rows = set(snap_steps)
    every = particles.get("diagnostics_every")
    if every:
        rows |= set(range(0, steps + 1, every)) | {steps}
    if not math.isfinite(unit):  # pragma: no cover - guarded by resolve_particles
        raise ConfigError("particles.dt", "must be finite")
    return sorted(rows), snap_steps


_SGD_CHUNK = 1000      # steps whose data TwoLayerSGD draws at once
_MESH_ARRAYS = 4       # mesh arrays per axis and force component (kernel, gradients, FFTs)
_BLOCK_ROWS = 256      # rows of a block of the generic pairwise force
_EXPRESSION_KERNELS = ("custom", "aggregation")  # kernels that may be expressions (generic force)


def _particle_demands(part: Mapping[str, Any], width: int, network_dim: int | None,
                      model: Mapping[str, Any], axes: int, width_key: str = "model.dim") -> list[Demand]:
    """The arrays of the particle run ``part`` with ``width`` numbers per particle (the
    state of a neuron, ``network_dim + 1`` for SGD of a network; ``width_key`` sets it)."""
    n = int(part["n"])
    nkey = "particles.n" if n >= width else width_key
    out = [Demand(nkey, 8.0 * 16 * n * width, f"{n} particles x {width} numbers")]
    snaps = part["snapshots"] if isinstance(part["snapshots"], int) else len(part["snapshots"])
    out.append(Demand("particles.snapshots", 8.0 * snaps * n * max(axes, 1),
                      f"{snaps} snapshots of {n} particles"))
    every = part.get("diagnostics_every")
    if every:
        rows = float(part["steps"] // every + 1)
        out.append(Demand("particles.diagnostics_every", rows * DIAGNOSTICS_ROW_BYTES,
                          "the diagnostics rows"))
    if network_dim is not None:
        d, batch = network_dim, int(part["batch"])
        data_key = "particles.batch" if batch > 1 else "model.dim"
        out.append(Demand(data_key, 8.0 * 2 * _SGD_CHUNK * batch * (d + 2),
                          f"{_SGD_CHUNK} x {batch} data samples in R^{d}"))
        if model.get("beta", math.inf) < math.inf:
            block = max(1, 128 // batch)
            out.append(Demand(nkey, 8.0 * -(-_SGD_CHUNK // block) * n * d,
                              "the SGD noise of a chunk of steps"))
            out.append(Demand(data_key if batch > 1 else "particles.n", 8.0 * _SGD_CHUNK * batch * n,
                              "the per-sample noise of a chunk of steps"))
        if part.get("dropout", 1.0) < 1:
            out.append(Demand("particles.n", 8.0 * 2 * _SGD_CHUNK * n,
                              "the dropout masks of a chunk of steps"))
        if part.get("risk") == "exact":
            out.append(Demand("particles.n", 8.0 * 8 * n * n, f"the exact risk's {n}x{n} interaction matrix",
                              "use fewer particles or particles.risk = 'sample' or 'none'"))
        elif part.get("risk") == "sample":
            out.append(Demand(nkey, 8.0 * 4096 * (d + n), "the held-out risk sample"))
        if part["method"] != "sgd":
            out.append(Demand(nkey, 8.0 * 4 * n * (d + 1), "the momentum state"))
        return out
    interaction = part.get("interaction")
    if interaction == "mesh":
        m = int(part["mesh_cells"])
        out.append(Demand("particles.mesh_cells", 8.0 * _MESH_ARRAYS * (axes + 2) * float(2 * m) ** axes,
                          f"the {m}^{axes} interaction mesh"))
    if interaction == "generic" or (interaction == "auto" and model["problem"] in _EXPRESSION_KERNELS):
        out.append(Demand("particles.n", 8.0 * 4 * _BLOCK_ROWS * n * max(axes, 1),
                          "the pairwise force blocks"))
    return out


def check_resources(config: Mapping[str, Any]) -> float:
    """Refuse a particle run (a raw config, as read) whose arrays would not fit in
    memory (:mod:`ddsolve.app.resources`): a :class:`ConfigError` naming the key that
    needs most of it (``particles.n``, ``particles.batch``, ``particles.mesh_cells``,
    ``model.dim``, ``grid.cells``). Invalid configs raise their own :class:`ConfigError`.

    Returns
    -------
    float
        The estimate in bytes.
    """
    from ddsolve.app.config import check_sections, resolve, resolve_model

    if not isinstance(config, Mapping):
        raise ConfigError("config", "must be a table of sections")
    check_sections(config)
    with warnings.catch_warnings():  # the run itself warns about ignored keys
        warnings.simplefilter("ignore")
        part = resolve_particles(config.get("particles"))
        problem, model = resolve_model(config.get("model", {}))
        if part["method"] in SGD_METHODS and problem.name == "two-layer":
            d = int(model["dim"])
            demands = _particle_demands(part, d + 1, d, model, 2)
        else:
            grid = resolve(config, solver=False)["grid"]
            if grid["coordinates"] == "radial":
                vector = part.get("radial") == "vector" or (part.get("radial") is None
                                                            and model.get("beta", math.inf) < math.inf)
                width = sum(int(d) if vector else 1 for d in grid["dim"])
                axes = len(grid["dim"])
            else:
                width = axes = len(grid["bounds"])
            if "charge_bounds" in grid:
                width, axes = width + 1, axes + 1
            demands = grid_demands(grid) + _particle_demands(part, width, None, model, axes, "grid.dim")
    return check_memory(demands, "the particle run")


def describe_particles() -> str:
    """The ``[particles]`` table, for ``ddsolve problems`` and ``ddsolve particles --help``."""
    return "[particles]\n" + format_table(PARTICLE_PARAMS, "  ")
