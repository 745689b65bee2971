"""``scheme.name = "jko"`` through ``ddsolve run``: the same output contract as FV runs,
plus ``quantiles.h5`` for the Lagrangian method, and clear errors for its keys."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pde
import pytest

from ddsolve.app.cli import main
from ddsolve.app.io import read_diagnostics
from tests.helpers import OU_CONFIG, write_config

JKO = "\n[scheme]\nname = \"jko\"\ndt = 0.05\n"

GRID_2D = OU_CONFIG[:OU_CONFIG.index("[grid]")] + """[grid]
bounds = [[-4.0, 4.0], [-4.0, 4.0]]
cells = [24, 24]
[initial]
kind = "gaussian"
mean = [1.0, 0.5]
std = 0.5
[scheme]
name = "jko"
dt = 0.1
[run]
t_final = 0.5
save_every = 0.25
"""


def _run(tmp_path, text, *extra):
    out = tmp_path / "out"
    assert main(["run", str(write_config(tmp_path, text)), "--out", str(out), *extra]) == 0
    return out, json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("time_order", [1, 2])
def test_lagrangian_run_writes_the_contract_and_the_quantiles(tmp_path, time_order):
    text = OU_CONFIG.replace("save_every = 0.5", "save_every = 0.25") + JKO
    out, summary = _run(tmp_path, text, "--set", f"scheme.time_order={time_order}")
    for name in ("density.h5", "diagnostics.csv", "summary.json", "density.png", "diagnostics.png",
                 "quantiles.h5"):
        assert (out / name).is_file(), name
    assert summary["status"] == "ok" and summary["saved_times"] == [0.0, 0.25, 0.5]
    solver = summary["solver"]
    assert solver["method"] == "lagrangian" and solver["time_order"] == time_order
    assert solver["steps"] == 10 and solver["jko_violations"] == 0 and solver["energy_increases"] == 0
    storage = pde.FileStorage(out / "density.h5", write_mode="readonly")
    assert list(storage.times) == [0.0, 0.25, 0.5]
    rows = read_diagnostics(out / "diagnostics.csv")
    assert np.max(np.abs(rows["mass"] - 1.0)) < 1e-13 and np.all(rows["min_density"] >= 0)
    assert np.all(np.diff(rows["free_energy"]) < 0)
    with h5py.File(out / "quantiles.h5", "r") as f:
        assert list(f["t"][:]) == [0.0, 0.25, 0.5]
        atoms, masses = f["atoms"][:], f["masses"][:]
        assert atoms.shape == (3, 60) and np.all(np.diff(atoms, axis=1) > 0)
        assert masses.sum() == pytest.approx(1.0, abs=1e-12)
        # the stored atoms are the law: their mean is the density's mean
        assert masses @ atoms[-1] == pytest.approx(rows["mean_x"][-1], abs=2e-3)
        assert np.all(np.diff(f["free_energy"][:]) < 0)
    storage.close()


def test_fv_jko_run_on_a_2d_grid(tmp_path):
    out, summary = _run(tmp_path, GRID_2D)
    assert summary["solver"]["method"] == "fv" and summary["solver"]["jko_violations"] == 0
    assert not (out / "quantiles.h5").exists()
    rows = read_diagnostics(out / "diagnostics.csv")
    assert np.max(np.abs(rows["mass"] - 1.0)) < 1e-13 and np.all(rows["min_density"] > 0)
    assert np.all(np.diff(rows["free_energy"]) < 0)
    # the 2D OU mean relaxes like e^{-t}, up to the first-order error in tau = 0.1
    assert rows["mean_x"][-1] == pytest.approx(np.exp(-0.5), abs=0.03)


def test_inner_failure_at_dt_min_fails_the_run_with_exit_3_and_keeps_the_output(tmp_path):
    """A JKO step that cannot be solved even at dt_min stops the run (exit 3) with the
    snapshots so far and summary status 'failed'."""
    text = OU_CONFIG + JKO
    out = tmp_path / "out"
    code = main(["run", str(write_config(tmp_path, text)), "--out", str(out), "--set", "scheme.max_inner=1",
                 "--set", "scheme.dt_min=0.01", "--set", "scheme.inner_tol=1e-15"])
    assert code == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "inner solver" in summary["failure"]["cause"]
    assert read_diagnostics(out / "diagnostics.csv")["t"][0] == 0.0
