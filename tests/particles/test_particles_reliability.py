"""``ddsolve particles`` when things go wrong: chunked stepping that changes nothing,
checkpoints, SIGINT/SIGTERM, ``kill -9`` then ``--resume`` (bit for bit), the locked
directory, the failure paths (divergence, overflow, budget) and the final step.

In-process tests first (fast); the subprocess tests (``kill -9``, SIGTERM) last.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tomllib

from ddsolve.app.checkpoint import read_checkpoint
from ddsolve.app.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, main
from ddsolve.app.lifecycle import RunInterrupted
from ddsolve.app.outdir import DirectoryLock
from ddsolve.schema import ConfigError
from particles import runner
from particles.base import ParticleFailure
from particles.runner import build_dynamics, run_particles
from particles.storage import load_particles
from tests.helpers import start_command, wait_until_locked

OU = """
[model]
problem = "fokker-planck"
potential = "quadratic"
stiffness = 1.0
beta = 2.0
[grid]
bounds = [-6.0, 6.0]
cells = 60
[initial]
kind = "gaussian"
mean = 1.5
std = 0.4
[particles]
n = {n}
steps = {steps}
dt = 0.001
snapshots = {snapshots}
seed = 3
checkpoint_every = {every}
"""

SGD = """
[model]
problem = "two-layer"
activation = "relu"
dim = 40
delta = 0.5
kappa = 0.4
beta = 50.0
[particles]
method = "sgd"
n = 300
eps = 1e-4
steps = {steps}
snapshots = {snapshots}
dropout = 0.8
risk = "none"
seed = 1
checkpoint_every = {every}
"""
"""Noisy SGD with dropout: noise drawn per block from the run's generator, data and masks
from the per-chunk streams; the strictest case for cutting calls."""

RADIAL_LANGEVIN = """
[model]
problem = "fokker-planck"
potential = "quadratic"
beta = 2.0
[grid]
coordinates = "radial"
dim = [3]
r_max = 6.0
cells = 60
[initial]
kind = "gaussian"
std = 0.5
[particles]
n = 10000
steps = 1000
dt = 0.001
snapshots = 6
seed = 3
diagnostics_every = 50
checkpoint_every = 0.05
"""
"""Langevin particles of the radial law in R^3, as full vectors (stored in particles.h5)."""


def _raw(text: str, **sets) -> dict:
    raw = tomllib.loads(text)
    for key, value in sets.items():
        section, name = key.split("__")
        raw.setdefault(section, {})[name] = value
    return raw


def _ou(n=200, steps=300, snapshots=4, every="inf", **sets) -> dict:
    return _raw(OU.format(n=n, steps=steps, snapshots=snapshots, every=every), **sets)


def _sgd(steps=600, snapshots=3, every="inf", **sets) -> dict:
    return _raw(SGD.format(steps=steps, snapshots=snapshots, every=every), **sets)


CW = {"model": {"problem": "curie-weiss", "potential": "double-well", "theta": 1.0, "beta": 3.0},
      "grid": {"bounds": [-3.0, 3.0], "cells": 40},
      "initial": {"kind": "gaussian", "mean": 0.2, "std": 0.5}}
RADIAL = {"model": {"problem": "fokker-planck", "potential": "quadratic", "beta": 1.0},
          "grid": {"coordinates": "radial", "dim": [4], "r_max": 6.0, "cells": 60},
          "initial": {"kind": "gaussian", "std": 0.5}}
NET = {"model": {"problem": "two-layer", "activation": "relu", "dim": 12, "delta": 0.5, "kappa": 0.4}}

DYNAMICS = {
    "mean-field": {**CW, "particles": {"n": 100, "steps": 10, "dt": 0.01}},
    "heun-radial-vector": {**RADIAL, "particles": {"n": 100, "steps": 10, "dt": 0.01, "integrator": "heun"}},
    "radial-radius": {**RADIAL, "particles": {"n": 100, "steps": 10, "dt": 0.01, "radial": "radius"}},
    "hmm": {**CW, "particles": {"method": "hmm", "n": 30, "steps": 10, "dt": 0.01, "inner_steps": 20,
                                "burn_in": 5}},
    "landscape-nesterov": {**CW, "particles": {"method": "nesterov", "n": 50, "steps": 10, "eps": 0.01}},
    "sgd": {**NET, "particles": {"method": "sgd", "n": 40, "steps": 10, "eps": 1e-3, "batch": 2,
                                 "risk": "none"}},
    "noisy-sgd-dropout": _sgd(),
    "noisy-sgd-train-a": {"model": {**NET["model"], "beta": 20.0, "trained": ["w", "a"]},
                          "particles": {"method": "sgd", "n": 40, "steps": 10, "eps": 1e-3, "batch": 3,
                                        "risk": "none"}},
    "nesterov": {**NET, "particles": {"method": "nesterov", "n": 40, "steps": 10, "eps": 1e-3,
                                      "risk": "none"}},
    "restarted-nesterov": {**NET, "particles": {"method": "restarted-nesterov", "n": 40, "steps": 10,
                                                "eps": 1e-3, "risk": "none"}},
    "mass": {**NET, "particles": {"method": "mass", "n": 40, "steps": 10, "eps": 1e-3, "risk": "none",
                                  "kappa_tilde": 5.0}},
}


def _arrays(dyn, state) -> dict:
    meta, arrays = dyn.checkpoint_state(state)
    return {"meta": json.dumps(meta, sort_keys=True), **arrays}


def _assert_same(dyn, a, b) -> None:
    ma, mb = _arrays(dyn, a), _arrays(dyn, b)
    assert ma.keys() == mb.keys() and ma["meta"] == mb["meta"]
    for key in ma:
        if key != "meta":
            np.testing.assert_array_equal(ma[key], mb[key], err_msg=key)


# --- chunks and checkpoints change nothing ------------------------------------------------

@pytest.mark.parametrize("name", list(DYNAMICS))
def test_advance_cut_at_split_points_and_restored_from_a_checkpoint_is_bitwise_the_same(name):
    _, dyn = build_dynamics(DYNAMICS[name])
    total, row = 700, 333          # one uninterrupted run with a recorded step at 333
    rng = np.random.default_rng(7)
    ref = dyn.initial_state(rng)
    dyn.advance(ref, row, rng)
    dyn.advance(ref, total - row, rng)
    rng_ref = rng.bit_generator.state

    pick = random.Random(name)
    rng = np.random.default_rng(7)
    state = dyn.initial_state(rng)
    cuts = 0
    for stop in (row, total):
        while state.step < stop:
            end = dyn.split_point(state.step, stop, state.step + pick.randint(1, 150))
            assert state.step < end <= stop
            dyn.advance(state, end - state.step, rng)
            cuts += end < stop
            if cuts == 2:                # a checkpoint round trip in the middle
                meta, arrays = dyn.checkpoint_state(state)
                meta = json.loads(json.dumps(meta))
                state = dyn.restore_state(meta, {k: np.array(v) for k, v in arrays.items()})
                rng = runner._generator(json.loads(json.dumps(rng.bit_generator.state)))
    assert cuts >= 3
    _assert_same(dyn, state, ref)
    assert rng.bit_generator.state == rng_ref


def test_sgd_split_points_keep_the_blocks_of_the_call():
    _, dyn = build_dynamics(_sgd())
    sgd = dyn                                   # plain sgd: the TwoLayerSGD itself
    assert (sgd.chunk, sgd.block) == (1000, 128)
    assert sgd.split_point(0, 5000, 1) == 128
    assert sgd.split_point(0, 5000, 990) == 1000          # a piece ends at the chunk multiple
    assert sgd.split_point(300, 5000, 1100) == 1128       # blocks of a later piece start at it
    assert sgd.split_point(300, 5000, 301) == 428         # blocks of the first start at the call
    assert sgd.split_point(300, 350, 301) == 350


# --- signals in process: interrupt, checkpoint, resume ------------------------------------

def _signal_at_call(monkeypatch, dyn_class, call: int, sig=signal.SIGINT) -> None:
    """Send ``sig`` to this process during the ``call``-th advance (it is deferred: the loop
    sees it when the call returns)."""
    original = dyn_class.advance
    count = {"n": 0}

    def advance(self, state, steps, rng):
        count["n"] += 1
        if count["n"] == call:
            os.kill(os.getpid(), sig)
        return original(self, state, steps, rng)

    monkeypatch.setattr(dyn_class, "advance", advance)


@pytest.mark.parametrize("name", ["mean-field", "hmm", "noisy-sgd-dropout", "restarted-nesterov"])
def test_an_interrupted_run_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch, name):
    cfg = json.loads(json.dumps(DYNAMICS[name]))
    cfg["particles"].update(steps=2000 if name != "hmm" else 300, snapshots=3, diagnostics_every=None)
    cfg["particles"] = {k: v for k, v in cfg["particles"].items() if v is not None}
    reference = run_particles(cfg, tmp_path / "reference")
    _, dyn = build_dynamics(cfg)
    with monkeypatch.context() as m:
        _signal_at_call(m, type(dyn), 4, signal.SIGTERM)
        with pytest.raises(RunInterrupted) as info:
            run_particles(cfg, tmp_path / "run")
    assert info.value.signal == "SIGTERM"
    out = tmp_path / "run"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure"]["cause"] == "interrupted"
    assert summary["failure"]["signal"] == "SIGTERM"
    meta, _ = read_checkpoint(out / "checkpoint.npz")
    t_stop = info.value.t
    assert 0 < meta["step"] * reference.dynamics.dt == t_stop < reference.summary["final"]["t"]
    snaps = load_particles(out)   # the state reached is the last snapshot (and row)
    assert snaps.t[-1] == t_stop and snaps.step[-1] == meta["step"]
    assert (out / "particles.png").exists() is False          # no figures for a stopped run
    resumed = run_particles(cfg, out, exists="resume")
    assert resumed.summary["status"] == "ok" and resumed.summary["resumed"]["t"] == t_stop
    _assert_same(reference.dynamics, resumed.state, reference.state)
    assert (out / "diagnostics.csv").read_text() == (tmp_path / "reference" / "diagnostics.csv").read_text()
    a, b = load_particles(out), load_particles(tmp_path / "reference")
    np.testing.assert_array_equal(a.t, b.t)
    np.testing.assert_array_equal(a.coordinates, b.coordinates)
    assert not (out / "checkpoint.npz").exists() and (out / "particles.png").exists()


def test_resume_checks_the_config_and_leaves_a_complete_run_as_it_is(tmp_path, monkeypatch):
    cfg = _ou(steps=2000)
    _, dyn = build_dynamics(cfg)
    with monkeypatch.context() as m:
        _signal_at_call(m, type(dyn), 3)
        with pytest.raises(RunInterrupted):
            run_particles(cfg, tmp_path / "a")
    before = (tmp_path / "a" / "summary.json").read_text()
    with pytest.raises(ConfigError) as info:
        run_particles(_ou(steps=2000, particles__seed=4), tmp_path / "a", exists="resume")
    assert info.value.key == "particles.seed" and "differs from the run being resumed" in str(info.value)
    assert (tmp_path / "a" / "summary.json").read_text() == before   # untouched
    # changing only the checkpoint interval or the budget is allowed
    done = run_particles(_ou(steps=2000, particles__checkpoint_every=5.0), tmp_path / "a", exists="resume")
    again = run_particles(_ou(steps=2000), tmp_path / "a", exists="resume")   # complete: nothing to do
    assert again.summary == done.summary
    np.testing.assert_array_equal(again.state.x, done.state.x)
    fresh = run_particles(_ou(steps=2000), tmp_path / "empty", exists="resume")  # nothing to resume
    np.testing.assert_array_equal(fresh.state.x, done.state.x)
    with pytest.raises(ConfigError) as info:
        run_particles(_ou(steps=2000), tmp_path / "a")                     # the default refuses
    assert info.value.key == "particles.out" and "--overwrite" in str(info.value)
    over = run_particles(_ou(steps=2000), tmp_path / "a", exists="overwrite")
    np.testing.assert_array_equal(over.state.x, done.state.x)


def test_periodic_checkpoints_hold_the_counts_written_so_far(tmp_path, monkeypatch):
    cfg = _ou(steps=3000, snapshots=7, every=1e-9)    # a checkpoint after every chunk and row
    _, dyn = build_dynamics(cfg)
    seen = []
    original = runner.write_checkpoint

    def spy(path, meta, arrays):
        seen.append((meta["step"], meta["rows"], meta["snapshots"], meta["next_row"]))
        original(path, meta, arrays)

    monkeypatch.setattr(runner, "write_checkpoint", spy)
    res = run_particles(cfg, tmp_path / "c")
    assert res.summary["checkpoints"] == len(seen) > 5
    steps = [0, 500, 1000, 1500, 2000, 2500, 3000]
    for step, rows, snaps, next_row in seen:
        assert rows == snaps == next_row == sum(s <= step for s in steps)
    assert not (tmp_path / "c" / "checkpoint.npz").exists()


def test_every_command_knows_the_particle_files():
    # the CLI loads particles.command for every command (not the runner): --overwrite of
    # ddsolve run into a particle run's directory must remove its files too
    from particles.storage import PARTICLES_FILE

    code = ("import sys, particles.command; from ddsolve.app.outdir import output_files; "
            "assert 'particles.runner' not in sys.modules; print(' '.join(output_files()))")
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert {PARTICLES_FILE, runner.PARTICLES_FIGURE, "checkpoint.npz"} <= set(names.split())


def test_the_progress_bar_counts_steps(capsys):
    part = {"method": "hmm", "inner_steps": 100, "burn_in": 20}
    bar = runner._progress_bar(None, part, 5000, 1000)
    bar.update(2500)
    bar.close()
    err = capsys.readouterr().err
    assert "hmm: 5,000 steps x 120 fast" in err and "2.50k/5.00k" in err


# --- failure paths ---------------------------------------------------------------------------

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v) if v == v and abs(v) != float("inf") else str(v)


def _toml(raw: dict) -> str:
    return "".join(f"[{section}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in table.items())
                   for section, table in raw.items())


def _main(tmp_path, capsys, raw: dict, *args: str) -> tuple[int, str, Path]:
    cfg = tmp_path / "c.toml"
    cfg.write_text(_toml(raw))
    out = tmp_path / "out"
    code = main(["particles", str(cfg), "--out", str(out), "--quiet", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err, out


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_sgd_divergence_exits_3_and_the_figures_never_fail_the_run(tmp_path, capsys):
    # eps = 10: |w| grows to 1e152 (finite: snapshots a histogram cannot bin), then overflows
    raw = {**NET, "particles": {"method": "sgd", "n": 60, "eps": 10.0, "steps": 400, "snapshots": 101}}
    code, err, out = _main(tmp_path, capsys, raw)
    assert code == EXIT_FAILURE and "numerical failure" in err
    s = _summary(out)
    assert s["status"] == "failed" and s["failure"]["cause"] == "non-finite"
    assert s["failure"]["t"] == s["final"]["t"] > 0            # the last good row
    last = load_particles(out).coordinates[-1][:, 0]
    with pytest.raises(ValueError, match="Too many bins"):     # what the histogram used to meet
        np.histogram(last, bins=10)
    assert (out / "particles.png").exists() and "figures_error" not in s


def test_a_figure_that_raises_is_recorded_not_fatal(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("Too many bins for data range")

    monkeypatch.setattr(runner, "plot_particle_file", broken)
    res = run_particles(_ou(), tmp_path / "f")
    assert res.summary["status"] == "ok"
    assert res.summary["figures_error"] == "ValueError: Too many bins for data range"
    assert _summary(tmp_path / "f")["figures_error"].startswith("ValueError")


def test_overflowing_noise_is_a_numerical_failure_not_a_crash(tmp_path, capsys):
    # eps = 1e300 with noise: the Brownian-bridge covariance overflowed into a numba assertion
    from ddsolve.networks.activations import relu
    from ddsolve.networks.data import GaussianMixtureData
    from particles.sgd import TwoLayerSGD

    sgd = TwoLayerSGD(GaussianMixtureData.isotropic(12, 0.5), relu(), 60, 1e300, beta=10.0, risk="none")
    rng = np.random.default_rng(0)
    state = sgd.initial_state(rng)
    with pytest.raises(ParticleFailure, match="non-finite"):
        sgd.advance(state, 300, rng)
    # through the command: refused by the config (eps is bounded) or a numerical failure
    raw = {"model": {**NET["model"], "beta": 10.0},
           "particles": {"method": "sgd", "n": 60, "eps": 1e300, "steps": 300, "snapshots": 3}}
    code, err, out = _main(tmp_path, capsys, raw)
    assert (code, err.startswith("ddsolve: error: particles.eps")) == (EXIT_CONFIG, True) or (
        code == EXIT_FAILURE and _summary(out)["status"] == "failed"), err


@pytest.mark.parametrize("where", ["initial_state", "diagnostics"])
def test_any_exception_leaves_the_summary_failed_and_the_directory_free(tmp_path, monkeypatch, where):
    from particles.meanfield import MeanFieldParticles

    def boom(self, *args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(MeanFieldParticles, where, boom)
    with pytest.raises(RuntimeError, match="a bug"):
        run_particles(_ou(), tmp_path / "e")
    s = _summary(tmp_path / "e")
    assert s["status"] == "failed" and s["failure"]["cause"] == "error"
    DirectoryLock(tmp_path / "e", "x").release()              # not held any more


def test_the_run_always_reaches_t_final(tmp_path):
    res = run_particles(_ou(steps=500, snapshots=[0.1, 0.3]), tmp_path / "s")
    assert res.summary["status"] == "ok" and res.summary["steps"] == 500
    assert res.rows[-1]["t"] == 500 * 0.001
    assert load_particles(tmp_path / "s").step.tolist() == [100, 300, 500]


@pytest.mark.parametrize("sets, words", [
    ({"t_final": 1e300}, "1e+303 steps"),
    ({"steps": 10**12}, "1e+12 steps"),
    ({"steps": 2000, "max_steps": 1000}, "particles.max_steps = 1000"),
    ({"method": "hmm", "steps": 10, "inner_steps": 10**9}, "(10 macro steps x 1000000020 fast steps)"),
])
def test_runs_above_the_step_budget_are_refused_before_they_start(tmp_path, capsys, sets, words):
    raw = _ou()
    raw["particles"].update(sets)
    if "t_final" in sets:
        del raw["particles"]["steps"]
    code, err, out = _main(tmp_path, capsys, raw)
    assert code == EXIT_CONFIG
    assert err.strip().startswith("ddsolve: error: particles.max_steps:") and words in err, err
    assert not out.exists()


def test_a_directory_in_use_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    lock = DirectoryLock(out, "particles.out", {"command": "particles"})
    try:
        code, err, _ = _main(tmp_path, capsys, _ou())
    finally:
        lock.release()
    assert code == EXIT_CONFIG and "in use by another run" in err and f"pid {os.getpid()}" in err
    assert not (out / "summary.json").exists()
    code, _, _ = _main(tmp_path, capsys, _ou())
    assert code == EXIT_OK


# --- subprocesses: kill -9 and SIGTERM ---------------------------------------------------------

def _start(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    return start_command("particles", config, out, *extra)


def _wait_until_stepping(out: Path, proc: subprocess.Popen) -> None:
    """Until ``proc`` holds the directory's lock (it is past its imports and about to step)."""
    wait_until_locked(out, proc)


def _complete_rows(path: Path) -> list[str]:
    """The complete lines of a diagnostics.csv (a kill may cut the last one)."""
    text = path.read_text()
    return text.splitlines()[: text.count("\n")]


def _checkpoint_step(out: Path, pid: int) -> int | None:
    """The step of the checkpoint in ``out`` if process ``pid`` wrote it (the lock file
    names the holder; the checkpoint's mtime is after the lock's)."""
    try:
        mtime = (out / "checkpoint.npz").stat().st_mtime_ns
        lock = out / ".ddsolve.lock"
        if json.loads(lock.read_text() or "{}").get("pid") != pid or mtime < lock.stat().st_mtime_ns:
            return None
        return read_checkpoint(out / "checkpoint.npz")[0]["step"]
    except (OSError, ValueError, ConfigError):
        return None


def _wait_for_progress(out: Path, proc: subprocess.Popen, step: int) -> None:
    """Until ``proc`` wrote a checkpoint at ``step`` or later."""
    end = time.monotonic() + 120
    while (_checkpoint_step(out, proc.pid) or -1) < step:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end
        time.sleep(0.002)


def _kill_and_resume(tmp_path: Path, raw_text: str, fractions: list[tuple[float, float]], seed: int,
                     first_at_random_time: bool = False) -> None:
    """One run killed with SIGKILL per ``(lo, hi)`` of ``fractions``, each resuming the one
    before: at a random moment shortly after it wrote a checkpoint past a random fraction
    in ``[lo, hi)`` of the steps (the first, with ``first_at_random_time``, at a random time
    from its start, maybe before any checkpoint); then a last ``--resume`` to the end, which
    must equal the uninterrupted run bit for bit. Progress, not wall time, places the kills:
    the speed of a shared machine varies fivefold."""
    config = tmp_path / "config.toml"
    config.write_text(raw_text)
    reference = run_particles(tomllib.loads(raw_text), tmp_path / "reference")
    steps = reference.summary["steps"]
    ref = load_particles(tmp_path / "reference")
    ref_rows = (tmp_path / "reference" / "diagnostics.csv").read_text().splitlines()
    out = tmp_path / "killed"
    pick = random.Random(seed)
    for kill, (lo, hi) in enumerate(fractions):
        proc = _start(config, out, "--resume")
        _wait_until_stepping(out, proc)
        if kill == 0 and first_at_random_time:
            time.sleep(pick.uniform(0.0, 0.3))
        else:
            _wait_for_progress(out, proc, int(pick.uniform(lo, hi) * steps))
            time.sleep(pick.uniform(0.0, 0.02))
        assert proc.poll() is None, "the run ended before it was killed: make it longer"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with h5py.File(out / "particles.h5", "r"):                  # readable after every kill
            pass
        snaps = load_particles(out)
        n = len(snaps.t)
        np.testing.assert_array_equal(snaps.t, ref.t[:n])            # a prefix of the one series
        np.testing.assert_array_equal(snaps.vectors, ref.vectors[:n])
        rows = _complete_rows(out / "diagnostics.csv")
        assert rows == ref_rows[: len(rows)]
    meta, _ = read_checkpoint(out / "checkpoint.npz")
    assert 0 < meta["step"] < steps
    proc = _start(config, out, "--resume")
    assert proc.wait(timeout=120) == 0, proc.communicate()
    got = load_particles(out)
    np.testing.assert_array_equal(got.t, ref.t)
    np.testing.assert_array_equal(got.step, ref.step)
    np.testing.assert_array_equal(got.vectors, ref.vectors)
    np.testing.assert_array_equal(got.coordinates, ref.coordinates)
    assert (out / "diagnostics.csv").read_text().splitlines() == ref_rows
    summary = _summary(out)
    assert summary["status"] == "ok" and summary["steps"] == steps
    assert summary["resumed"]["step"] == meta["step"]
    assert not (out / "checkpoint.npz").exists()


def test_kill_9_at_random_moments_then_resume_equals_the_uninterrupted_sgd_run(tmp_path):
    text = SGD.format(steps=12000, snapshots=7, every=0.05).replace("seed = 1", "seed = 1\ndiagnostics_every = 250")
    _kill_and_resume(tmp_path, text, [(0.0, 0.0), (0.35, 0.6)], seed=2, first_at_random_time=True)


def test_kill_9_then_resume_equals_the_uninterrupted_langevin_run(tmp_path):
    _kill_and_resume(tmp_path, RADIAL_LANGEVIN, [(0.2, 0.6)], seed=3)


def test_sigterm_stops_within_a_chunk_and_keeps_the_state_reached(tmp_path):
    # two rows only (t = 0 and the end, minutes away): the signal must not wait for the next
    # one. (That such a run resumes to the uninterrupted one is shown in process above.)
    text = SGD.format(steps=2_000_000, snapshots=2, every="inf")
    config = tmp_path / "config.toml"
    config.write_text(text)
    out = tmp_path / "run"
    proc = _start(config, out)
    try:
        _wait_until_stepping(out, proc)
        time.sleep(0.8)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        line = proc.stderr.readline()
        noticed = time.perf_counter() - sent
        assert proc.wait(timeout=30) == 130, proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
    # chunks of ~0.2 s, then a checkpoint and a row: measured 0.04-0.17 s (1.1 s with the two
    # cores saturated by other processes)
    assert noticed < 1.5, noticed
    assert line.startswith("ddsolve: stopped by SIGTERM at t=") and "Traceback" not in proc.stderr.read()
    summary = _summary(out)
    assert summary["status"] == "failed" and summary["failure"]["cause"] == "interrupted"
    assert summary["failure"]["signal"] == "SIGTERM"
    snaps = load_particles(out)
    assert snaps.t[0] == 0 and snaps.t[-1] == summary["failure"]["t"] > 0
    with open(out / "diagnostics.csv", newline="") as fh:
        assert float(list(csv.DictReader(fh))[-1]["t"]) == summary["failure"]["t"]
    meta, _ = read_checkpoint(out / "checkpoint.npz")
    assert meta["rows"] == meta["snapshots"] == 1                  # the state reached is beyond it
    assert meta["step"] * 1e-4 == pytest.approx(summary["failure"]["t"], rel=1e-12)
