"""Reliability of ``ddsolve run``: the last saved time is ``t_final`` at any magnitude of t,
pausing and resuming take the same steps, ``kill -9`` loses nothing that a ``--resume``
cannot recompute bit for bit, SIGINT/SIGTERM act within a pause and keep the state
reached, one run at a time per directory, and runs too long for the step budget are
refused before they start."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pde
import pytest

from ddsolve import GridModel, Model, cartesian, evolve
from ddsolve.app.cli import main
from ddsolve.app.config import resolve
from ddsolve.app.io import save_times
from ddsolve.app.lifecycle import RunRecord, StopRequest
from ddsolve.app.outdir import DirectoryLock
from ddsolve.app.runner import run
from ddsolve.app.timeloop import TimeLoop
from ddsolve.failures import NumericalFailure, RunInterrupted
from ddsolve.model import DoubleWellPotential
from ddsolve.model.kernels import QuadraticKernel
from ddsolve.schema import ConfigError
from ddsolve.schemes import make_stepper
from tests.helpers import start_command, wait_until_locked

TINY = """
[model]
problem = "fokker-planck"
potential = "quadratic"
stiffness = 1.0
beta = 1.0
[grid]
bounds = [-3.0, 3.0]
cells = 6
[initial]
kind = "gaussian"
mean = 0.5
std = 1.0
"""

CURIE_WEISS = """
[model]
problem = "curie-weiss"
potential = "double-well"
theta = 1.0
beta = 3.0
[grid]
bounds = [-3.0, 3.0]
cells = {cells}
[initial]
kind = "gaussian"
mean = 0.1
std = 0.5
[scheme]
{scheme}
[run]
t_final = {t_final}
save_every = {save_every}
checkpoint_every = {checkpoint_every}
"""

SCHEMES = {
    "explicit": 'time = "explicit"',
    "implicit": 'time = "implicit"\nrtol = 1e-9\natol = 1e-12',
    "bdf2": 'implicit = true\ntime_order = 2\ndt = 0.01\nflux = "logmean"',
    "jko": 'name = "jko"\nmethod = "lagrangian"\ndt = 0.02\natoms = 60',
    "exponential": 'time = "exponential"',  # on the double well without interaction (linear)
}


def _config(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _snapshots(out: Path) -> tuple[np.ndarray, np.ndarray]:
    """Times and data of density.h5, read with py-pde (the file must be complete)."""
    storage = pde.FileStorage(out / "density.h5", write_mode="readonly")
    try:
        return np.array(storage.times), np.array(storage.data)
    finally:
        storage.close()


# --- time bookkeeping at large t -----------------------------------------------------------

@pytest.mark.parametrize("t_final, save_every, scheme", [
    (16385.0, 16385.0, 'time = "explicit"'),      # an ulp of t exceeds 1e-12: was saved at t = 0 only
    (20000.0, 200.0, 'time = "explicit"'),        # used to end at 19800
    (1e5, 1e4, 'time = "explicit"'),
    (1e9, 1e8, 'time = "implicit"'),
    (1e9, 1e8, "implicit = true\ndt = 1e6"),     # fixed step far larger than the intervals
    (0.5, 0.1, "implicit = true\ndt = 1e6"),     # used to take 0 steps and report success
    (0.5, 0.1, "implicit = true\ndt = 1e5"),     # used to stop at t = 0.4
])
def test_long_and_coarse_runs_save_every_time_exactly(tmp_path, t_final, save_every, scheme):
    text = TINY + f"[scheme]\n{scheme}\n[run]\nt_final = {t_final!r}\nsave_every = {save_every!r}\n"
    out = tmp_path / "out"
    assert main(["run", str(_config(tmp_path, text)), "--out", str(out), "--quiet"]) == 0
    summary = _summary(out)
    expected = save_times(t_final, save_every).tolist()
    assert summary["status"] == "ok"
    assert summary["saved_times"] == expected          # exact equality, t_final included
    times, data = _snapshots(out)
    assert times.tolist() == expected
    assert summary["final"]["t"] == t_final
    assert abs(summary["final"]["mass"] - 1.0) < 1e-12
    if t_final >= 1e5:  # long enough to be at the Gibbs state exp(-x^2/2) on the grid
        assert summary["steps"] > 0 and np.all(data[-1] > 0)


def test_evolve_takes_a_fixed_step_larger_than_the_run():
    """A fixed step of 1e6 on a run of length 0.5 is one step of 0.5 (py-pde's Controller
    took none: its time tolerance was half the step)."""
    gm, rho0 = _grid_model()
    big, info = evolve(gm, rho0, 0.5, implicit=True, dt=1e6)
    exact, _ = evolve(gm, rho0, 0.5, implicit=True, dt=0.5)
    assert info["steps"] == 1
    np.testing.assert_array_equal(big, exact)


def test_finish_never_reports_ok_short_of_t_final(tmp_path):
    record = RunRecord(tmp_path / "r", "run.out", {})
    with record.running(now=lambda: 0.5):
        pass
    with pytest.raises(NumericalFailure, match="ended at t=0.5 instead of t_final=1.0") as info:
        record.finish(t_final=1.0, t_reached=0.5)
    assert info.value.cause == "incomplete"
    assert _summary(tmp_path / "r")["status"] == "failed"


# --- pausing is invisible -----------------------------------------------------------------

def _grid_model(beta: float = 3.0) -> tuple[GridModel, np.ndarray]:
    coords = cartesian([-3.0, 3.0], 90)
    gm = GridModel(Model(potential=DoubleWellPotential(), interaction=QuadraticKernel(1.0), beta=beta), coords)
    x = coords.cell_centers()[..., 0]
    rho = np.exp(-((x - 0.3) ** 2) / 0.5)
    return gm, rho / gm.mass(rho)


@pytest.mark.parametrize("options", [
    {"name": "fv", "time": "explicit"},
    {"name": "fv", "time": "implicit", "integrator": "esdirk3", "rtol": 1e-6},
    {"name": "fv", "time": "imex", "integrator": "ark3", "rtol": 1e-5},
    {"name": "fv", "implicit": True, "dt": 0.01, "time_order": 2, "flux": "logmean"},
    {"name": "jko", "method": "lagrangian", "dt": 0.02, "atoms": 60},
], ids=["ssprk", "esdirk3", "ark3", "bdf2", "jko"])
def test_pausing_and_restoring_take_the_same_steps(options):
    """Stepping 0 -> 1 in one call, in pauses of 3 steps, and restarted from a
    checkpoint half-way (a fresh solver given the checkpointed state) agree bit for bit."""
    gm, rho0 = _grid_model()

    def fresh():
        _, solver = make_stepper(gm, dict(options))
        state = gm.coords.field(rho0.copy())
        return solver, solver.make_stepper(state), state

    solver, stepper, state = fresh()
    assert stepper(state, 0.0, 0.5) == 0.5 and stepper(state, 0.5, 1.0) == 1.0
    whole, steps = state.data.copy(), solver.info["steps"]

    solver, stepper, state = fresh()
    solver.pause_steps = 3
    t, calls, checkpoint = 0.0, 0, None
    for t_end in (0.5, 1.0):
        while t < t_end:
            t = stepper(state, t, t_end)
            calls += 1
            if checkpoint is None and t > 0.2:
                checkpoint = (t, state.data.copy(), solver.checkpoint_state())
    np.testing.assert_array_equal(state.data, whole)
    assert solver.info["steps"] == steps and calls >= steps // 3

    t0, data, saved = checkpoint
    solver, stepper, state = fresh()
    solver.restore_state(saved)
    state.data[...] = data
    t = t0
    for t_end in (0.5, 1.0):
        if t < t_end:
            t = stepper(state, t, t_end)
    np.testing.assert_array_equal(state.data, whole)
    assert solver.info["steps"] == steps


# --- interrupts and resume, in process ---------------------------------------------------

def _stop_after(monkeypatch, calls: int) -> None:
    """A SIGINT that 'arrives' during the ``calls``-th stepper call of the time loop."""
    count = {"n": 0}

    def requested(self):
        count["n"] += 1
        if count["n"] >= calls:
            self.signal = self.signal or "SIGINT"
        return self.signal is not None

    monkeypatch.setattr(StopRequest, "requested", property(requested))
    monkeypatch.setattr(TimeLoop, "PAUSE_SECONDS", 0.0)  # pauses shrink to single steps


@pytest.mark.parametrize("scheme", ["explicit", "implicit", "bdf2", "jko", "exponential"])
def test_interrupted_run_resumes_to_the_same_final_state(tmp_path, monkeypatch, scheme):
    text = CURIE_WEISS.format(cells=90, scheme=SCHEMES[scheme], t_final=2.0,
                              save_every=0.1 if scheme == "exponential" else 0.5, checkpoint_every="inf")
    if scheme == "exponential":  # one stepper call per output interval: 20 of them
        text = text.replace('problem = "curie-weiss"\npotential = "double-well"\ntheta = 1.0',
                            'problem = "fokker-planck"\npotential = "double-well"')
        assert "fokker-planck" in text
    raw = resolve(__import__("tomllib").loads(text))
    reference = run(raw, tmp_path / "reference")
    ref_times, ref_data = _snapshots(tmp_path / "reference")
    for where in (2, 5, 9):  # stepper calls before the "signal"
        out = tmp_path / f"stopped{where}"
        with monkeypatch.context() as m:
            _stop_after(m, where)
            with pytest.raises(RunInterrupted) as info:
                run(raw, out)
        t_stop = info.value.t
        summary = _summary(out)
        assert summary["status"] == "failed" and summary["failure"]["cause"] == "interrupted"
        assert summary["failure"]["signal"] == "SIGINT"
        times, _ = _snapshots(out)
        assert times[-1] == t_stop > 0                  # the state reached is the last snapshot
        assert (out / "checkpoint.npz").exists()
        resumed = run(raw, out, exists="resume")
        assert resumed.summary["status"] == "ok" and resumed.summary["resumed"]["t"] == t_stop
        times, data = _snapshots(out)
        assert times.tolist() == ref_times.tolist()    # one series: the extra snapshot is gone
        np.testing.assert_array_equal(data, ref_data)  # bit for bit
        np.testing.assert_array_equal(resumed.state.data, reference.state.data)
        assert resumed.summary["steps"] == reference.summary["steps"]
        assert not (out / "checkpoint.npz").exists()
        if scheme == "jko":  # the atoms beside density.h5 form one series too
            with h5py.File(out / "quantiles.h5") as a, h5py.File(tmp_path / "reference" / "quantiles.h5") as b:
                np.testing.assert_array_equal(a["t"][()], b["t"][()])
                np.testing.assert_array_equal(a["atoms"][()], b["atoms"][()])


def test_resume_checks_the_config_and_handles_complete_and_empty_directories(tmp_path, monkeypatch):
    text = CURIE_WEISS.format(cells=60, scheme=SCHEMES["explicit"], t_final=1.0, save_every=0.5,
                              checkpoint_every="inf")
    raw = resolve(__import__("tomllib").loads(text))
    with monkeypatch.context() as m:
        _stop_after(m, 3)
        with pytest.raises(RunInterrupted):
            run(raw, tmp_path / "a")
    other = resolve(__import__("tomllib").loads(text.replace("beta = 3.0", "beta = 2.0")))
    with pytest.raises(ConfigError) as info:
        run(other, tmp_path / "a", exists="resume")
    assert info.value.key == "model.beta" and "differs from the run being resumed" in str(info.value)
    done = run(raw, tmp_path / "a", exists="resume")
    again = run(raw, tmp_path / "a", exists="resume")          # complete: left as it is
    np.testing.assert_array_equal(again.state.data, done.state.data)
    assert again.summary["wall_time"] == done.summary["wall_time"]
    fresh = run(raw, tmp_path / "empty", exists="resume")       # nothing to resume: starts
    np.testing.assert_array_equal(fresh.state.data, done.state.data)


# --- the output directory -----------------------------------------------------------------

def test_a_directory_holds_one_run_and_is_not_overwritten_silently(tmp_path, capsys):
    config = _config(tmp_path, TINY + "[run]\nt_final = 0.1\n")
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("ddsolve: error: run.out:") and "--overwrite" in err and "--resume" in err
    (out / "notes.txt").write_text("mine")
    assert main(["run", str(config), "--out", str(out), "--quiet", "--overwrite",
                 "--set", "run.t_final=0.2"]) == 0
    assert _summary(out)["saved_times"][-1] == 0.2 and (out / "notes.txt").read_text() == "mine"

    lock = DirectoryLock(out, "run.out", {"command": "particles"})
    try:
        capsys.readouterr()
        assert main(["run", str(config), "--out", str(out), "--quiet", "--overwrite"]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"is in use by another run (pid {os.getpid()}, ddsolve particles" in err
    finally:
        lock.release()
    assert main(["run", str(config), "--out", str(out), "--quiet", "--overwrite"]) == 0


def test_every_command_declares_the_files_it_writes():
    from ddsolve.app import io
    from ddsolve.app.checkpoint import CHECKPOINT_FILE
    from ddsolve.app.commands import commands
    from ddsolve.schemes.jko.solver import QUANTILE_FILE
    from ddsolve.steady import outputs

    declared = commands()
    assert {io.DENSITY_FILE, io.DIAGNOSTICS_FILE, io.SUMMARY_FILE, io.DENSITY_FIGURE, io.DIAGNOSTICS_FIGURE,
            CHECKPOINT_FILE, QUANTILE_FILE} <= set(declared["run"].outputs)
    assert {outputs.STATES_FILE, outputs.BRANCHES_FILE, outputs.SPECIAL_FILE, outputs.CONVERGENCE_FILE,
            outputs.BIFURCATION_FIGURE} <= set(declared["steady"].outputs)
    from particles.runner import PARTICLES_FIGURE
    from particles.storage import PARTICLES_FILE

    assert {PARTICLES_FILE, PARTICLES_FIGURE, CHECKPOINT_FILE} <= set(declared["particles"].outputs)


def test_overwrite_removes_another_commands_files(tmp_path):
    """A PDE run over a particle run's directory leaves no particles.h5 behind."""
    particles = tmp_path / "p.toml"
    particles.write_text(TINY + "[run]\nt_final = 0.1\n[particles]\nmethod = \"mean-field\"\nn = 50\n"
                         "t_final = 0.1\n")
    out = tmp_path / "out"
    assert main(["particles", str(particles), "--out", str(out), "--quiet"]) == 0
    assert (out / "particles.h5").exists()
    assert main(["run", str(particles), "--out", str(out), "--quiet"]) == 2
    assert main(["run", str(particles), "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert not (out / "particles.h5").exists() and not (out / "particles.png").exists()
    assert _summary(out)["command"] == "run"


def test_runs_too_long_for_the_step_budget_are_refused(tmp_path, capsys):
    config = _config(tmp_path, TINY)
    explicit = "scheme.time=explicit"
    for sets, words in (([explicit, "run.t_final=1e300", "run.save_every=1e299"], "steps"),
                        ([explicit, "run.t_final=1", "model.xi=1e9"], "steps"),
                        (["run.t_final=1", "scheme.implicit=true", "scheme.dt=1e-10"], "scheme.dt"),
                        ([explicit, "run.t_final=1000", "run.max_steps=1000"], "run.max_steps = 1000")):
        argv = ["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]
        for s in sets:
            argv += ["--set", s]
        assert main(argv) == 2, sets
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("ddsolve: error: run.max_steps:") and words in err, err
        assert not (tmp_path / "out").exists()


def test_an_adaptive_run_that_cannot_finish_within_the_budget_stops_early(tmp_path, capsys):
    """An implicit run held to steps of dt_max = 1e-11 would take 1e9 steps to t = 0.01; the
    projection stops it after 20423 steps (measured) instead of at the budget of 10^8.
    The stiff xi = 1e12 runs finish: ESDIRK3 with the log-mean flux at rtol 1e-4, atol 1e-7
    (its stage rates from the stage equation; with L_h(z_i) instead, round-off in the
    Newton residual, scaled by xi, held the step near 1e-11: ~7e8 steps, measured), and the
    defaults."""
    config = _config(tmp_path, TINY.replace("cells = 6", "cells = 16") + "[run]\nt_final = 0.01\n")
    out = tmp_path / "out"
    start = time.perf_counter()
    assert main(["run", str(config), "--out", str(out), "--quiet", "--set", "scheme.time=implicit",
                 "--set", "scheme.dt_max=1e-11"]) == 3
    assert time.perf_counter() - start < 60
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "would take about 1e+09 steps" in err and "more than run.max_steps = 100000000" in err
    summary = _summary(out)
    assert summary["failure"]["cause"] == "step budget" and summary["solver"]["time"] == "implicit"
    assert summary["solver"]["steps"] < 10**5
    times, _ = _snapshots(out)
    assert times[-1] == summary["failure"]["t"] > 0            # the state reached is kept
    assert main(["run", str(config), "--out", str(out), "--quiet", "--overwrite",
                 "--set", "run.max_steps=5", "--set", "scheme.time=implicit", "--set", "run.t_final=50"]) == 3
    assert "step budget exhausted (run.max_steps)" in capsys.readouterr().err
    assert main(["run", str(config), "--out", str(out), "--quiet", "--overwrite", "--set", "model.xi=1e12",
                 "--set", "scheme.flux=logmean", "--set", "scheme.rtol=1e-4", "--set", "scheme.atol=1e-7",
                 "--set", "scheme.integrator=esdirk3"]) == 0
    assert _summary(out)["solver"]["steps"] < 200
    assert main(["run", str(config), "--out", str(out), "--quiet", "--overwrite", "--set", "model.xi=1e12"]) == 0
    solver = _summary(out)["solver"]
    assert solver["flux"] == "sg" and solver["steps"] < 200
    assert main(["run", str(config), "--out", str(out), "--quiet", "--overwrite", "--set", "model.xi=1e12",
                 "--set", "scheme.flux=logmean"]) == 0
    solver = _summary(out)["solver"]
    assert solver["method"] == "esdirk4" and solver["steps"] < 200


# --- signals and kill -9, in a subprocess -------------------------------------------------

def _start(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    return start_command("run", config, out, *extra)


def _wait_for(out: Path, proc: subprocess.Popen) -> None:
    """Until ``proc`` holds the lock on ``out`` and has opened its density.h5 (it steps)."""
    wait_until_locked(out, proc, also="density.h5")


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until ``proc`` (already running) has written a checkpoint of its own."""
    start = time.time()
    end = time.monotonic() + timeout
    path = out / "checkpoint.npz"
    while not (path.exists() and path.stat().st_mtime >= start):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end
        time.sleep(0.01)


@pytest.mark.parametrize("scheme", ["explicit", "implicit"])
def test_kill_9_at_random_moments_then_resume_equals_the_uninterrupted_run(tmp_path, scheme):
    cells = {"explicit": 650, "implicit": 5000}[scheme]  # about 3 s of stepping each
    text = CURIE_WEISS.format(cells=cells, scheme=SCHEMES[scheme], t_final=10.0, save_every=0.5,
                              checkpoint_every=0.1)
    config = _config(tmp_path, text)
    reference = run(resolve(__import__("tomllib").loads(text)), tmp_path / "reference")
    ref_times, ref_data = _snapshots(tmp_path / "reference")
    out = tmp_path / "killed"
    rng = random.Random(1)
    kills = with_checkpoint = 0
    for attempt in range(6):
        proc = _start(config, out, "--resume")
        _wait_for(out, proc)
        if attempt > 0:  # the first kill may come before any checkpoint; the others after one
            _wait_for_checkpoint(out, proc)
        time.sleep(rng.uniform(0.0, 0.5))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        with h5py.File(out / "density.h5", "r") as h5:     # readable after every kill
            assert h5["times"].shape[0] == h5["data"].shape[0] >= 1
        times, _ = _snapshots(out)
        assert times.tolist() == ref_times[: len(times)].tolist()
        with_checkpoint += (out / "checkpoint.npz").exists()
        if kills == 3:
            break
    assert kills >= 2 and with_checkpoint >= 1
    resumes = (out / "checkpoint.npz").exists()
    proc = _start(config, out, "--resume")
    assert proc.wait(timeout=300) == 0, proc.communicate()
    times, data = _snapshots(out)
    assert times.tolist() == ref_times.tolist()
    np.testing.assert_array_equal(data, ref_data)
    summary = _summary(out)
    assert summary["status"] == "ok" and summary["steps"] == reference.summary["steps"]
    assert ("resumed" in summary) == resumes


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_within_a_pause_and_keeps_the_state_reached(tmp_path, sig):
    # one save interval covering the whole run: the signal must not wait for it
    text = CURIE_WEISS.format(cells=600, scheme=SCHEMES["explicit"], t_final=50.0, save_every=50.0,
                              checkpoint_every="inf")
    out = tmp_path / "out"
    proc = _start(_config(tmp_path, text), out)
    _wait_for(out, proc)
    time.sleep(0.8)
    sent = time.monotonic()
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 130
    latency = time.monotonic() - sent
    _, err = proc.communicate()
    assert "Traceback" not in err
    name = signal.Signals(sig).name
    assert err.strip().splitlines()[-1].startswith("ddsolve: " + (
        "interrupted by the user" if name == "SIGINT" else "stopped by SIGTERM"))
    assert latency < 1.5, latency  # measured 0.47 s: the pause (0.2 s), the save, the exit
    summary = _summary(out)
    assert summary["status"] == "failed" and summary["failure"]["cause"] == "interrupted"
    assert summary["failure"]["signal"] == name
    times, data = _snapshots(out)
    assert times[0] == 0.0 and 0.0 < times[-1] < 50.0  # the state reached, not t = 0
    assert abs(data[-1].sum() * 6.0 / 600 - 1.0) < 1e-10  # round-off over ~1e5 steps (seen 1.1e-12)
    assert (out / "checkpoint.npz").exists()


def test_a_second_run_into_a_busy_directory_is_refused(tmp_path):
    text = CURIE_WEISS.format(cells=400, scheme=SCHEMES["explicit"], t_final=20.0, save_every=1.0,
                              checkpoint_every="inf")
    config = _config(tmp_path, text)
    out = tmp_path / "out"
    first = _start(config, out)
    _wait_for(out, first)
    second = _start(config, out, "--overwrite")
    assert second.wait(timeout=60) == 2
    err = second.communicate()[1].strip().splitlines()[-1]
    assert err.startswith("ddsolve: error: run.out:") and f"pid {first.pid}, ddsolve run" in err
    assert first.wait(timeout=120) == 0
    summary = _summary(out)
    assert summary["status"] == "ok" and summary["saved_times"] == save_times(20.0, 1.0).tolist()
