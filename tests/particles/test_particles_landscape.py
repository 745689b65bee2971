"""SGD, Nesterov and MaSS on a loss landscape (particles.landscape): plain SGD is the
Euler-Maruyama step of the overdamped Langevin equation, so on V = a x^2/2 its stationary
variance is exact, (1/(beta a)) / (1 - a eps/2); the momentum methods run and keep their
PDE time; bad keys are config errors."""

import numpy as np
import pytest

from ddsolve.app.cli import main
from particles.runner import build_dynamics, run_particles

CONFIG = {
    "model": {"problem": "fokker-planck", "potential": "quadratic", "stiffness": 2.0, "beta": 4.0},
    "grid": {"bounds": [-3.0, 3.0], "cells": 60},
    "initial": {"kind": "gaussian", "mean": 0.0, "std": 0.3},
    "particles": {"method": "sgd", "n": 4000, "eps": 0.01, "t_final": 8.0, "snapshots": 9, "seed": 3},
}


def test_sgd_on_a_quadratic_has_the_euler_maruyama_stationary_variance(tmp_path):
    res = run_particles(CONFIG, tmp_path / "sgd")
    a, beta, eps = 2.0, 4.0, 0.01
    exact = (1 / (beta * a)) / (1 - a * eps / 2)
    from particles.storage import load_particles

    x = load_particles(tmp_path / "sgd").coordinates[4:, :, 0]  # t = 4..8: stationary (rate 2a)
    var = x.var(axis=1)
    se = exact * np.sqrt(2 / x.shape[1]) / np.sqrt(var.size)
    assert abs(var.mean() - exact) < 4 * se
    assert abs(var.mean() - 1 / (beta * a)) > 0.5 * (exact - 1 / (beta * a))  # the eps bias is resolved
    assert res.summary["dynamics"]["method"] == "sgd"
    assert "loss" in res.rows[-1]


def test_nesterov_and_mass_run_in_pde_time(tmp_path):
    for method, extra in (("nesterov", {"momentum": 0.5}), ("mass", {"kappa_tilde": 10.0})):
        cfg = {**CONFIG, "particles": {**CONFIG["particles"], "method": method, "n": 200, "t_final": 1.0,
                                       **extra}}
        resolved, dyn = build_dynamics(cfg)
        assert dyn.method == method
        # PDE time per step eps * time_scale; t_final is rounded to whole steps
        assert abs(resolved["particles"]["steps"] * dyn.dt - 1.0) <= dyn.dt / 2
        assert dyn.dt > 0.01  # the momentum methods move faster than SGD's eps per step
        res = run_particles(cfg, tmp_path / method)
        assert res.rows[-1]["t"] == pytest.approx(resolved["particles"]["t_final"], rel=1e-12)
        assert np.isfinite(res.rows[-1]["loss"])


TOML = """
[model]
problem = "fokker-planck"
potential = "quadratic"
stiffness = 2.0
beta = 4.0
[grid]
bounds = [-3.0, 3.0]
cells = 60
[initial]
kind = "gaussian"
std = 0.3
[particles]
method = "sgd"
n = 100
eps = 0.01
t_final = 0.1
"""


@pytest.mark.parametrize("sets, key", [
    (["particles.method=mass"], "particles.kappa_tilde"),
    (["particles.batch=4"], "particles.batch"),
    (["grid.periodic=true"], "particles.method"),
])
def test_bad_landscape_keys_exit_2(tmp_path, capsys, sets, key):
    cfg = tmp_path / "c.toml"
    cfg.write_text(TOML)
    args = [a for s in sets for a in ("--set", s)]
    assert main(["particles", str(cfg), "--out", str(tmp_path / "o"), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0], err
