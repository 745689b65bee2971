"""``ddsolve particles``: output contract, determinism, config errors, failures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ddsolve.app.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, main
from ddsolve.app.io import read_diagnostics
from particles.config import record_steps, resolve_particles
from particles.runner import run_particles, sample_cells
from particles.storage import load_particles

OU = """
[model]
problem = "fokker-planck"
potential = "quadratic"
stiffness = 1.0
beta = 2.0

[grid]
bounds = [-6.0, 6.0]
cells = 240

[initial]
kind = "gaussian"
mean = 1.5
std = 0.4

[run]
t_final = 1.0

[particles]
n = 4000
t_final = 1.0
dt = 0.01
snapshots = 5
seed = 3
"""


@pytest.fixture
def ou_file(tmp_path):
    path = tmp_path / "ou.toml"
    path.write_text(OU)
    return path


def test_output_contract_and_exact_moments(ou_file, tmp_path):
    out = tmp_path / "p"
    assert main(["particles", str(ou_file), "--out", str(out), "--quiet"]) == EXIT_OK
    for name in ("particles.h5", "diagnostics.csv", "summary.json", "particles.png", "diagnostics.png"):
        assert (out / name).is_file(), name
    d = read_diagnostics(out / "diagnostics.csv")
    assert list(d) == ["t", "energy", "mean_x", "m2_x"]
    assert np.allclose(d["t"], [0, 0.25, 0.5, 0.75, 1.0])
    snaps = load_particles(out)
    assert snaps.coordinates.shape == (5, 4000, 1) and snaps.names == ("x",)
    assert np.allclose(snaps.t, d["t"]) and snaps.vectors is None
    # the mean decays like the EM recursion (1 - dt)^k * 1.5 within 5 standard errors
    var = 0.25 * 0.4**2 + 0.5
    assert abs(d["mean_x"][-1] - 0.99**100 * 1.5) < 5 * math.sqrt(var / 4000) + 0.01
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["steps"] == 100
    assert summary["config"]["particles"]["n"] == 4000
    assert summary["dynamics"]["interaction"] == "none"


def test_runs_are_deterministic_given_the_seed(ou_file, tmp_path):
    a = run_particles(_read(ou_file), tmp_path / "a")
    b = run_particles(_read(ou_file), tmp_path / "b")
    c = run_particles({**_read(ou_file), "particles": {**_read(ou_file)["particles"], "seed": 4}},
                      tmp_path / "c")
    assert np.array_equal(a.state.x, b.state.x)
    assert (tmp_path / "a" / "diagnostics.csv").read_text() == (tmp_path / "b" / "diagnostics.csv").read_text()
    assert not np.array_equal(a.state.x, c.state.x)


def test_the_same_file_runs_the_pde(ou_file, tmp_path):
    assert main(["run", str(ou_file), "--out", str(tmp_path / "pde"), "--quiet"]) == EXIT_OK


def _read(path):
    import tomllib

    return tomllib.loads(path.read_text())


@pytest.mark.parametrize("override, key", [
    ("particles.nn=3", "particles.nn"),
    ("particles.method=\"mass\"", "particles.kappa_tilde"),  # MaSS on a potential needs it
    ("particles.steps=10", "particles.t_final"),
    ("particles.t_final=0.015", "particles.t_final"),
    ("particles.integrator=\"rk4\"", "particles.integrator"),
    ("particles.snapshots=[0.5, 2.0]", "particles.snapshots"),
    ("particles.snapshots=1", "particles.snapshots"),
])
def test_config_errors_name_the_key(ou_file, tmp_path, capsys, override, key):
    code = main(["particles", str(ou_file), "--out", str(tmp_path / "x"), "--set", override, "--quiet"])
    assert code == EXIT_CONFIG
    assert f"ddsolve: error: {key}" in capsys.readouterr().err


def test_sgd_methods_on_a_potential_are_landscape_optimisers(tmp_path, capsys):
    # without a network, sgd runs independent agents on V (particles.landscape)
    raw = _read_text(OU)
    raw["particles"] = {"method": "sgd", "n": 10, "steps": 2, "eps": 0.1}
    res = run_particles(raw, tmp_path / "sgd")
    assert res.summary["dynamics"]["landscape"] == "QuadraticPotential" and "loss" in res.rows[-1]


def _read_text(text):
    import tomllib

    return tomllib.loads(text)


def test_blow_up_exits_3_and_keeps_the_partial_output(tmp_path, capsys):
    # V = sqrt(x) drives the particles through 0, where grad V is NaN
    cfg = tmp_path / "dw.toml"
    cfg.write_text("""
[model]
problem = "fokker-planck"
potential = "sqrt(x)"
beta = inf
[grid]
bounds = [-1.0, 1.0]
cells = 10
[initial]
kind = "uniform"
bounds = [0.5, 1.0]
[particles]
n = 10
steps = 40
dt = 0.3
snapshots = [0.0, 0.3, 12.0]
""")
    out = tmp_path / "dw"
    assert main(["particles", str(cfg), "--out", str(out), "--quiet"]) == EXIT_FAILURE
    assert "numerical failure" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure"]["cause"] == "non-finite"
    assert load_particles(out).t.tolist() == [0.0, pytest.approx(0.3)]


def test_radial_and_periodic_problems(tmp_path):
    radial = {
        "model": {"problem": "fokker-planck", "potential": "quadratic", "beta": 1.0},
        "grid": {"coordinates": "radial", "dim": [4], "r_max": 6.0, "cells": 120},
        "initial": {"kind": "gaussian", "std": 0.5},
        "particles": {"n": 500, "steps": 5, "dt": 0.01, "snapshots": 2},
    }
    res = run_particles(radial, tmp_path / "radial")
    assert res.dynamics.names == ("r",)
    assert load_particles(tmp_path / "radial").vectors.shape == (2, 500, 4)
    kuramoto = {
        "model": {"problem": "kuramoto", "kappa": 3.0, "beta": 1.0},
        "grid": {"bounds": [0.0, 6.283185307179586], "cells": 64, "periodic": True},
        "initial": {"kind": "uniform"},
        "particles": {"n": 300, "steps": 20, "dt": 0.01, "interaction": "pairwise"},
    }
    res = run_particles(kuramoto, tmp_path / "kur")
    x = res.state.x
    assert np.all((x >= 0) & (x < 2 * math.pi)) and res.dynamics.force.method == "pairwise"


def test_sample_cells_reproduces_cell_masses():
    from ddsolve.grid.coordinates import cartesian

    coords = cartesian([[0.0, 1.0]], [4])
    values = np.array([0.4, 0.0, 1.6, 2.0])
    x = sample_cells(coords, values, 200_000, np.random.default_rng(0))
    counts = np.histogram(x[:, 0], bins=4, range=(0, 1))[0] / 200_000
    assert np.allclose(counts, values / values.sum(), atol=5 * math.sqrt(0.25 / 200_000))
    assert counts[1] == 0


def test_record_steps_include_snapshots_and_every():
    p = resolve_particles({"n": 2, "steps": 10, "dt": 0.1, "snapshots": 3, "diagnostics_every": 4})
    rows, snaps = record_steps(p)
    assert snaps == {0, 5, 10} and rows == [0, 4, 5, 8, 10]
    assert p["t_final"] == pytest.approx(1.0)


def test_keys_of_another_method_are_ignored_with_a_warning():
    with pytest.warns(UserWarning) as record:
        p = resolve_particles({"n": 2, "steps": 3, "dt": 0.1, "eps": 1e-3, "batch": 4})
    assert sorted(str(w.message) for w in record) == [
        "particles.batch is not used by method 'mean-field' (ignored)",
        "particles.eps is not used by method 'mean-field' (ignored)"]
    assert "eps" not in p and "batch" not in p and p["dt"] == 0.1
