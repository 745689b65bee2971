"""``ddsolve sweep`` and directories that already hold a run: nothing is lost on two
workers, a directory left half-written (a run killed with its checkpoint, a finished run
without its marker) is resumed or redone, a directory in use is left alone.

One LocalCluster of two single-threaded workers serves the module (``--scheduler`` its
address).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tomllib

from ddsolve.app.checkpoint import read_checkpoint
from ddsolve.app.cli import main
from ddsolve.app.outdir import DirectoryLock
from particles.runner import run_particles
from particles.storage import load_particles
from validation.sweep.params import parse_param
from validation.sweep.study import SweepSettings, dask_client, plan
from validation.sweep.worker import EXISTS_FLAGS, MARKER_FILE, RunTask, command_argv, read_marker

OU = """\
[model]
problem = "fokker-planck"
potential = "quadratic"
stiffness = 1.0
beta = 1.0

[grid]
bounds = [-7.0, 7.0]
cells = 40

[initial]
kind = "gaussian"
mean = 2.0
std = 0.5

[run]
t_final = 0.5
save_every = 0.25
out = "unused"
"""

LANGEVIN = """\
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
n = 20000
steps = 600
dt = 0.001
snapshots = 5
seed = 1
checkpoint_every = 0.05
out = "unused"
"""

CURIE_WEISS = """\
[model]
problem = "curie-weiss"
beta = 3.0
[grid]
bounds = [-3.0, 3.0]
cells = 120
[initial]
mean = 0.1
std = 0.5
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def sweep_json(out: Path) -> dict:
    return json.loads((out / "sweep.json").read_text())


def summary(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())


@pytest.fixture(scope="module")
def scheduler():
    with dask_client(None, 2) as client:
        yield client.scheduler.address


def _write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_command_gets_the_flag_for_an_earlier_run():
    def argv(command):
        return command_argv(RunTask(command, "/c.toml", ("a=1",), "/o", "k"))

    assert argv("run")[-3:] == ["--resume", "--set", "a=1"]
    assert "--resume" in argv("particles")
    for command in ("steady", "converge", "validate"):
        assert "--overwrite" in argv(command) and "--resume" not in argv(command)
    assert EXISTS_FLAGS.get("sweep") is None


def test_eight_runs_on_two_workers_lose_nothing(scheduler, tmp_path):
    config = _write(tmp_path, OU, "ou.toml")
    out = tmp_path / "eight"
    betas = "1,1.5,2,2.5,3,3.5,4,4.5"
    args = ["sweep", str(config), "--param", f"model.beta={betas}", "--scheduler", scheduler,
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    rows = read_csv(out / "sweep.csv")
    assert [r["model.beta"] for r in rows] == betas.split(",")
    assert all(r["status"] == "ok" and r["exit_code"] == "0" for r in rows)
    assert len({r["dir"] for r in rows}) == 8
    for r in rows:
        run_dir = out / r["dir"]
        for name in ("density.h5", "diagnostics.csv", "summary.json", MARKER_FILE):
            assert (run_dir / name).is_file(), (r["dir"], name)
        s = summary(run_dir)
        assert s["status"] == "ok" and s["config"]["model"]["beta"] == float(r["model.beta"])
        assert read_marker(run_dir)["result"]["final"]["free_energy"] == s["final"]["free_energy"]
        assert float(r["final.free_energy"]) == s["final"]["free_energy"]
    assert main(args) == 0                                   # a rerun has nothing to do
    assert sweep_json(out)["skipped"] == 8 and sweep_json(out)["submitted"] == 0


def _kill_with_a_checkpoint(config: Path, run_dir: Path, overrides: list[str]) -> None:
    """``ddsolve particles`` into ``run_dir``, killed with SIGKILL once it wrote a checkpoint."""
    argv = [sys.executable, "-m", "ddsolve", "particles", str(config), "--out", str(run_dir), "--quiet"]
    for item in overrides:
        argv += ["--set", item]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CI": "true"})
    deadline = time.monotonic() + 60
    while not (run_dir / "checkpoint.npz").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_half_written_directories_are_resumed_or_redone(scheduler, tmp_path):
    config = _write(tmp_path, LANGEVIN, "langevin.toml")
    out = tmp_path / "half"
    settings = SweepSettings(config, out, "particles", [parse_param("particles.seed=1,2")])
    specs = plan(settings)
    killed, finished = out / specs[0].name, out / specs[1].name
    _kill_with_a_checkpoint(config, killed, specs[0].overrides)       # killed on the way
    assert not (killed / MARKER_FILE).exists() and summary(killed)["status"] == "running"
    checkpoint_step = read_checkpoint(killed / "checkpoint.npz")[0]["step"]
    raw = tomllib.loads(LANGEVIN)
    raw["particles"]["seed"] = 2
    run_particles(raw, finished)                                      # finished, but no marker
    args = ["sweep", str(config), "--command", "particles", "--param", "particles.seed=1,2",
            "--scheduler", scheduler, "--out", str(out), "--quiet"]
    assert main(args) == 0
    rows = read_csv(out / "sweep.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    s = summary(killed)
    assert s["status"] == "ok" and s["resumed"]["step"] == checkpoint_step > 0
    assert "resumed" not in summary(finished)                           # no checkpoint: again
    raw["particles"]["seed"] = 1
    reference = run_particles(raw, tmp_path / "reference")
    got, ref = load_particles(killed), load_particles(tmp_path / "reference")
    np.testing.assert_array_equal(got.t, ref.t)
    np.testing.assert_array_equal(got.coordinates, ref.coordinates)
    assert s["final"] == reference.summary["final"]
    assert (killed / "diagnostics.csv").read_text() == (tmp_path / "reference/diagnostics.csv").read_text()
    for spec in specs:
        assert read_marker(out / spec.name)["key"] == spec.key
        assert not (out / spec.name / "checkpoint.npz").exists()


def test_a_command_without_checkpoints_overwrites_an_earlier_run(scheduler, tmp_path):
    config = _write(tmp_path, CURIE_WEISS, "cw.toml")
    out = tmp_path / "steady"
    args = ["sweep", str(config), "--command", "steady", "--param", "model.beta=3", "--scheduler", scheduler,
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    run_dir = out / read_csv(out / "sweep.csv")[0]["dir"]
    first = (run_dir / "states.csv").read_text()
    (run_dir / MARKER_FILE).unlink()                           # as if killed before the marker
    (run_dir / "states.csv").write_text("half-written")
    assert main(args) == 0
    assert read_csv(out / "sweep.csv")[0]["status"] == "ok"
    assert (run_dir / "states.csv").read_text() == first and (run_dir / MARKER_FILE).exists()


def test_a_directory_in_use_is_left_alone(scheduler, tmp_path, capsys):
    config = _write(tmp_path, OU, "ou.toml")
    out = tmp_path / "busy"
    settings = SweepSettings(config, out, "run", [parse_param("model.beta=1")])
    run_dir = out / plan(settings)[0].name
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text('{"status": "running"}')
    lock = DirectoryLock(run_dir, "run.out", {"command": "run"})
    try:
        code = main(["sweep", str(config), "--param", "model.beta=1", "--scheduler", scheduler,
                     "--out", str(out), "--quiet"])
    finally:
        lock.release()
    assert code == 3
    row = read_csv(out / "sweep.csv")[0]
    assert row["status"] == "failed" and row["exit_code"] == "2" and "in use by another run" in row["message"]
    assert (run_dir / "summary.json").read_text() == '{"status": "running"}'   # not touched
    capsys.readouterr()
