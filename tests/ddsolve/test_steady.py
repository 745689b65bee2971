r"""Stationary states: self-consistency Newton, deflation, continuation, stability.

Exact answers used here:

* Curie–Weiss, :math:`V = x^4/4 - x^2/2`, :math:`U = \theta(x-y)^2/2`. Stationary states
  are :math:`\rho \propto e^{-\beta(V(x) + \theta(x-m)^2/2)}` with
  :math:`m = \int x\rho`. Linearising at the symmetric state :math:`m = 0`, where
  :math:`V + \theta x^2/2 = x^4/4` for :math:`\theta = 1`, the pitchfork is at
  :math:`\beta\theta\langle x^2\rangle_\beta = 1`, :math:`\langle x^2\rangle_\beta =
  \int x^2e^{-\beta x^4/4}/\int e^{-\beta x^4/4} = (4/\beta)^{1/2}\Gamma(3/4)/\Gamma(1/4)`,
  so :math:`\beta_c = (\Gamma(1/4)/(2\Gamma(3/4)))^2 = 2.188439615\ldots` (the tails
  beyond :math:`|x| = 3` change it by less than :math:`e^{-40}`).
* Noisy Kuramoto, :math:`W(z) = -\cos(2\pi z/L)`, :math:`V = 0`: states
  :math:`\rho\propto e^{\kappa\beta r\cos(2\pi x/L)}` with :math:`r = I_1(\kappa\beta r)/
  I_0(\kappa\beta r)`; the uniform state has :math:`\Psi`-Hessian eigenvalue
  :math:`1 - \kappa\beta/2` on the first Fourier pair, so it loses stability at
  :math:`\kappa\beta = 2`.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pde
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq
from scipy.special import gamma, i0, i1

from ddsolve.grid import GridModel, cartesian
from ddsolve.model import CosineKernel, DoubleWellPotential, Model, QuadraticKernel, QuadraticPotential
from ddsolve.schemes.evolve import evolve
from ddsolve.steady.continuation import BetaFamily, continue_states
from ddsolve.steady.deflation import find_states
from ddsolve.steady.selfconsistency import SelfConsistency, gibbs_residual, newton
from ddsolve.steady.stability import decay_rates, stability

BETA_C = (gamma(0.25) / (2 * gamma(0.75))) ** 2
L = 2 * np.pi


def curie_weiss(beta, cells=200, interaction="auto", potential_values="point"):
    return GridModel(Model(DoubleWellPotential(), QuadraticKernel(1.0), beta=beta),
                     cartesian([-3.0, 3.0], cells), interaction=interaction,
                     potential_values=potential_values)


def kuramoto(beta, cells=128, interaction="auto"):
    return GridModel(Model(None, CosineKernel(1.0, length=L), beta=beta),
                     cartesian([0.0, L], cells, periodic=True), interaction=interaction)


def magnetisation_exact(beta, theta=1.0):
    """Independent 1D quadrature of the Curie–Weiss self-consistency on [-3, 3]."""
    def g(m):
        w = lambda x: np.exp(-beta * (x**4 / 4 - x**2 / 2 + theta * (x - m) ** 2 / 2))
        num = quad(lambda x: x * w(x), -3, 3, epsabs=1e-14, limit=200)[0]
        return num / quad(w, -3, 3, epsabs=1e-14, limit=200)[0] - m
    return brentq(g, 0.05, 1.5, xtol=1e-15)


def discrete_gain(cells):
    r"""The cell-averaged cosine kernel with 2-point Gauss-Legendre quadrature per axis is
    :math:`K_{ij} = -g\cos(x_i - x_j)`, :math:`g = \cos^2(h/(2\sqrt3))` (the average of
    :math:`\cos(x + s)` over the nodes :math:`s = \pm h/(2\sqrt3)` is
    :math:`\cos(h/(2\sqrt3))\cos x`), and the midpoint sums of :math:`\cos^2` are exactly
    :math:`L/2`; so the uniform state's Jacobian eigenvalue on the first Fourier pair is
    :math:`1 - (\kappa\beta/2) g`."""
    h = L / cells
    return math.cos(h / (2 * math.sqrt(3))) ** 2


def order_parameter(gm, rho):
    x = gm.coords.cell_centers()[..., 0]
    return abs(np.sum(rho * np.exp(2j * np.pi * x / L)) * gm.coords.cell_volume)


# ------------------------------------------------------------------ Newton and Jacobian
@pytest.mark.parametrize("rep,interaction", [("separable", "auto"), ("dense", "dense"), ("matrix-free", "fft")])
@pytest.mark.parametrize("which", ["curie-weiss", "kuramoto"])
def test_jacobian_matches_finite_differences(rep, interaction, which):
    gm = curie_weiss(2.5, 60, interaction) if which == "curie-weiss" else kuramoto(3.0, 48, interaction)
    sc = SelfConsistency(gm, representation=rep, symmetry="none")
    rng = np.random.default_rng(1)
    z = sc.initial_guess(bias=0.4) + 0.1 * rng.standard_normal(sc.n)
    J = sc.jacobian(z)
    eps = 1e-6
    for v in (rng.standard_normal(sc.n) for _ in range(3)):
        fd = (sc.residual(z + eps * v) - sc.residual(z - eps * v)) / (2 * eps)
        Jv = J @ v
        assert np.max(np.abs(Jv - fd)) < 1e-7 * (1 + np.max(np.abs(fd)))
    fd_beta = (sc.residual(z, beta=2.5 + eps) - sc.residual(z, beta=2.5 - eps)) / (2 * eps) \
        if which == "curie-weiss" else (sc.residual(z, beta=3 + eps) - sc.residual(z, beta=3 - eps)) / (2 * eps)
    assert np.max(np.abs(sc.d_beta(z) - fd_beta)) < 1e-7 * (1 + np.max(np.abs(fd_beta)))


def test_representations_agree_and_conserve_mass():
    states = []
    for rep, inter in (("separable", "auto"), ("dense", "dense"), ("matrix-free", "dense")):
        sc = SelfConsistency(curie_weiss(3.0, 150, inter), mass=2.0, representation=rep)
        st = newton(sc, sc.initial_guess(bias=1.0))
        assert st.residual < 1e-13 and abs(st.mass - 2.0) < 1e-13 and st.rho.min() > 0
        states.append(st.rho)
    assert np.max(np.abs(states[0] - states[1])) < 1e-11
    assert np.max(np.abs(states[0] - states[2])) < 1e-10


def test_linear_fokker_planck_has_exactly_the_discrete_gibbs_state():
    gm = GridModel(Model(QuadraticPotential(1.0, 0.3), None, beta=2.0), cartesian([-4.0, 4.0], 120))
    sc = SelfConsistency(gm)
    result = find_states(sc, seed=0)
    assert len(result.states) == 1
    assert np.max(np.abs(result.states[0].rho - gm.gibbs())) < 1e-15
    assert gibbs_residual(gm, result.states[0].rho) < 1e-15


# ------------------------------------------------------------------ Curie–Weiss
@pytest.mark.parametrize("beta", [2.5, 3.0, 4.0])
def test_curie_weiss_three_states_above_beta_c(beta):
    sc = SelfConsistency(curie_weiss(beta, 200))
    result = find_states(sc, seed=0)
    m = sorted(s.moments["mean_x"] for s in result.states)
    assert len(result.states) == 3 and result.guesses_tried > 3
    assert abs(m[1]) < 1e-12 and abs(m[0] + m[2]) < 1e-12 and m[2] > 0.3
    by_m = {round(s.moments["mean_x"], 6): stability(sc, s) for s in result.states}
    assert [by_m[round(v, 6)]["n_unstable"] for v in m] == [0, 1, 0]
    assert all(s.residual < 1e-13 for s in result.states)
    # the ordered states have the lower free energy
    F = {round(s.moments["mean_x"], 6): s.free_energy for s in result.states}
    assert F[round(m[0], 6)] < F[round(m[1], 6)] - 1e-4


def test_curie_weiss_one_state_below_beta_c():
    sc = SelfConsistency(curie_weiss(2.0, 200))
    result = find_states(sc, seed=0)
    assert len(result.states) == 1
    assert abs(result.states[0].moments["mean_x"]) < 1e-12
    assert stability(sc, result.states[0])["stable"]


@pytest.mark.parametrize("beta", [2.5, 3.0, 4.0])
def test_curie_weiss_magnetisation_against_quadrature(beta):
    """With the cell-centre potential (the default) the discrete self-consistency
    m = sum_i x_i e^{-beta q(x_i)} / sum_i e^{-beta q(x_i)} is the midpoint rule of the exact
    one, whose integrand is smooth and negligible at the walls: spectrally accurate, m* to
    round-off on 50 cells (measured 3.3e-12 at beta = 2.5, 1e-15 at 3 and 4, the accuracy of
    the quadrature answer). With cell averages of V, second order; Richardson to 1e-8."""
    exact = magnetisation_exact(beta)
    for cells in (50, 100):
        sc = SelfConsistency(curie_weiss(beta, cells))
        assert abs(newton(sc, sc.initial_guess(bias=1.0)).moments["mean_x"] - exact) < 1e-11
    m = []
    for cells in (200, 400, 800):
        sc = SelfConsistency(curie_weiss(beta, cells, potential_values="average"))
        m.append(newton(sc, sc.initial_guess(bias=1.0)).moments["mean_x"])
    err = np.abs(np.array(m) - exact)
    orders = np.log2(err[:-1] / err[1:])
    assert np.all(np.abs(orders - 2) < 0.05), orders
    assert abs(m[-1] + (m[-1] - m[-2]) / 3 - exact) < 1e-8


def test_pitchfork_located_by_continuation_to_its_bracket_with_centre_values():
    """The pitchfork beta_c = (Gamma(1/4) / (2 Gamma(3/4)))^2 of the symmetric state: with the
    cell-centre potential the discrete condition beta <x^2> = 1 is the midpoint rule of the
    exact one (spectral), so continuation finds it to its bracket on 50 cells (measured
    1.2e-9 on 50-400 cells, against 1.5e-4 on 400 cells with cell averages of V)."""
    for cells in (50, 100):
        d = continue_states(BetaFamily(SelfConsistency(curie_weiss(1.0, cells))), (1.0, 4.0))
        [bp] = [s for s in d.special if s.kind == "branch-point"]
        lo, hi = sorted(bp.bracket)
        assert hi - lo < 1e-8 and lo <= bp.parameter <= hi
        assert len(d.branches) == 3
        assert abs(bp.parameter - BETA_C) < 5e-9


def test_pitchfork_located_by_continuation_converges_at_second_order():
    """With cell averages of V the located pitchfork converges at second order."""
    bps = []
    for cells in (100, 200, 400):
        d = continue_states(BetaFamily(SelfConsistency(curie_weiss(1.0, cells, potential_values="average"))),
                            (1.0, 4.0))
        [bp] = [s for s in d.special if s.kind == "branch-point"]
        lo, hi = sorted(bp.bracket)
        assert hi - lo < 1e-8 and lo <= bp.parameter <= hi
        bps.append(bp.parameter)
        assert len(d.branches) == 3  # symmetric + the two ordered branches switched onto
    err = np.abs(np.array(bps) - BETA_C)
    assert err[-1] < 2e-4  # >= 4 significant digits at 400 cells
    orders = np.log2(err[:-1] / err[1:])
    assert np.all(np.abs(orders - 2) < 0.05), orders
    assert abs(bps[-1] + (bps[-1] - bps[-2]) / 3 - BETA_C) < 1e-6


def test_pitchfork_detected_from_the_side_branch():
    """Starting only from an ordered state at beta = 4 and going down, the branch point is
    found on the ordered branch (where the parameter also turns)."""
    sc = SelfConsistency(curie_weiss(4.0, 200))
    ordered = newton(sc, sc.initial_guess(bias=2.0))
    assert ordered.moments["mean_x"] > 0.5
    d = continue_states(BetaFamily(sc), (4.0, 1.0), [(ordered.z, 4.0)])
    bps = [s for s in d.special if s.kind == "branch-point"]
    assert len(bps) == 1 and bps[0].branch == 0
    # the same discrete value as from the symmetric branch
    d_sym = continue_states(BetaFamily(SelfConsistency(curie_weiss(1.0, 200))), (1.0, 4.0))
    assert abs(bps[0].parameter - d_sym.special[0].parameter) < 1e-7
    # stability along the ordered branch: stable; the symmetric branch switched onto is
    # unstable above beta_c and stable below
    br0 = d.branches[0].points
    assert all(p.stability["stable"] for p in br0 if p.parameter > bps[0].parameter + 1e-3)


def test_both_sides_give_one_diagram():
    sc = SelfConsistency(curie_weiss(4.0, 150))
    states = find_states(sc, seed=0).states
    d = continue_states(BetaFamily(sc), (4.0, 1.0), [(s.z, 4.0) for s in states])
    assert len([s for s in d.special if s.kind == "branch-point"]) == 1
    assert sorted(len(s.joined) for s in d.special) == [2]  # both ordered branches joined it
    assert len(d.branches) == 3 and not d.failures


# ------------------------------------------------------------------ Kuramoto
def test_kuramoto_uniform_state_loses_stability_at_two():
    for kb, n_unstable in ((1.5, 0), (2.5, 2)):
        sc = SelfConsistency(kuramoto(kb))
        uniform = newton(sc, sc.initial_guess())
        assert order_parameter(sc.grid_model, uniform.rho) < 1e-12
        st = stability(sc, uniform)
        assert st["n_unstable"] == n_unstable
        # the discrete eigenvalue 1 - (kappa beta / 2) g^2 (see discrete_gain)
        assert abs(st["eigenvalues"][0] - (1 - kb / 2 * discrete_gain(128))) < 1e-12
    bps = []
    for cells in (64, 128, 256):
        d = continue_states(BetaFamily(SelfConsistency(kuramoto(1.0, cells))), (1.0, 4.0))
        [bp] = [s for s in d.special if s.kind == "branch-point"]
        bps.append(bp.parameter)
        assert len(d.branches) == 2  # uniform, and one synchronised branch (mod translation)
    # the discrete threshold, exactly: 1 = (kappa beta / 2) g^2
    for cells, bp in zip((64, 128, 256), bps):
        assert abs(bp - 2 / discrete_gain(cells)) < 1e-8


@pytest.mark.parametrize("kb", [2.5, 3.0, 4.0])
def test_kuramoto_synchronised_branch_against_bessel(kb):
    exact = brentq(lambda r: r - i1(kb * r) / i0(kb * r), 1e-3, 1.0, xtol=1e-15)
    r = []
    for cells in (64, 128, 256):
        sc = SelfConsistency(kuramoto(kb, cells))
        x = sc.grid_model.coords.cell_centers()[..., 0]
        st = newton(sc, sc.initial_guess(rho=1 + 0.5 * np.cos(x)))
        r.append(order_parameter(sc.grid_model, st.rho))
        stab = stability(sc, st)
        assert stab["n_unstable"] == 0 and stab["n_neutral"] == 1  # the translation mode
    assert abs(r[-1] + (r[-1] - r[-2]) / 3 - exact) < 1e-6


def test_deflation_counts_kuramoto_states_modulo_translation():
    result = find_states(SelfConsistency(kuramoto(3.0)), seed=0)
    assert len(result.states) == 2
    assert sorted(round(order_parameter(kuramoto(3.0), s.rho), 3) for s in result.states) == [0.0, 0.724]


# ------------------------------------------------------------------ stability vs dynamics
def test_decay_rate_matches_linear_response_of_the_fv_solver():
    """Perturb the stable symmetric state at beta = 1.5 by an odd mode and measure the
    decay rate of the mean from time stepping: the slowest odd rate of decay_rates."""
    gm = curie_weiss(1.5, 200)
    sc = SelfConsistency(gm)
    st = newton(sc, sc.initial_guess())
    rate = decay_rates(sc, st, 1)[0]
    x = gm.coords.cell_centers()[..., 0]
    rho = st.rho * (1 + 1e-4 * x)
    rho /= gm.mass(rho)
    rho, _ = evolve(gm, rho, 2.0)
    m2 = gm.moments(rho)["mean_x"]
    rho, _ = evolve(gm, rho, 4.0, t_start=2.0)
    m4 = gm.moments(rho)["mean_x"]
    measured = math.log(m2 / m4) / 2.0
    assert abs(measured - rate) < 5e-4 * rate, (measured, rate)
    assert rate > 0 and stability(sc, st)["stable"]


def test_unstable_state_has_a_negative_rate():
    sc = SelfConsistency(curie_weiss(3.0, 150))
    sym = newton(sc, sc.initial_guess())
    assert decay_rates(sc, sym, 1)[0] < 0 and stability(sc, sym)["n_unstable"] == 1


# ------------------------------------------------------------------ command line
CW_CONFIG = """
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


def _ddsolve(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ddsolve", *args], capture_output=True, text=True, cwd=cwd)


def test_steady_command_outputs(tmp_path):
    cfg = tmp_path / "cw.toml"
    cfg.write_text(CW_CONFIG)
    out = tmp_path / "out"
    proc = _ddsolve("steady", str(cfg), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import csv

    states = list(csv.DictReader(open(out / "states.csv")))
    assert len(states) == 3
    for col in ("id", "mass", "free_energy", "residual", "stable", "n_unstable", "mean_x"):
        assert col in states[0]
    assert sorted(s["stable"] for s in states) == ["false", "true", "true"]
    reader = pde.FileStorage(out / "state_0.h5", write_mode="readonly")
    rho = np.array(reader.data[0])
    assert rho.shape == (120,) and abs(rho.sum() * 6 / 120 - 1) < 1e-12
    reader.close()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["states_found"] == 3
    # continuation from the single state at beta = 1.5
    out = tmp_path / "cont"
    proc = _ddsolve("steady", str(cfg), "--out", str(out), "--continue", "model.beta=1.5:3.5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list(csv.DictReader(open(out / "states.csv")))) == 1
    rows = list(csv.DictReader(open(out / "branches.csv")))
    assert list(rows[0])[:7] == ["branch", "point", "model.beta", "free_energy", "stable", "n_unstable", "kind"]
    assert {r["kind"] for r in rows} >= {"regular", "branch-point"}
    assert (out / "bifurcation.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and len(summary["continuation"]["branches"]) == 3
    assert "branch-point at model.beta" in proc.stdout


@pytest.mark.parametrize("args,key", [
    (["--continue", "model.beta=1"], "--continue"),
    (["--continue", "grid.cells=1:2"], "--continue"),
    (["--set", "steady.tol=-1"], "steady.tol"),
    (["--set", "steady.representation=fast"], "steady.representation"),
    (["--set", "steady.nope=1"], "steady.nope"),
    (["--guesses", "-2"], "--guesses"),
])
def test_steady_bad_input_is_one_line(tmp_path, args, key):
    cfg = tmp_path / "cw.toml"
    cfg.write_text(CW_CONFIG)
    proc = _ddsolve("steady", str(cfg), "--out", str(tmp_path / "o"), *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"ddsolve: error: {key}") and proc.stderr.count("\n") == 1, proc.stderr


def test_steady_newton_failure_exits_3_and_keeps_output(tmp_path):
    cfg = tmp_path / "cw.toml"
    cfg.write_text(CW_CONFIG)
    out = tmp_path / "o"
    proc = _ddsolve("steady", str(cfg), "--out", str(out), "--set", "steady.max_iter=3", "--set", "steady.tol=1e-300",
                    "--guesses", "0", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "no stationary state found" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["guesses_tried"] > 0


def test_steady_noiseless_command(tmp_path):
    """beta = inf (aggregation, W = |z|^2/2 - |z|): the limit of time stepping and the
    minimum of the energy over all measures on the grid agree (the known steady state is
    uniform on an interval of length 2), and both are certified (supp in argmin Psi)."""
    cfg = tmp_path / "agg.toml"
    cfg.write_text('[model]\nproblem = "aggregation"\n[grid]\nbounds = [-2.0, 2.0]\ncells = 80\n'
                   '[initial]\nstd = 0.5\n')
    out = tmp_path / "o"
    proc = _ddsolve("steady", str(cfg), "--out", str(out), "--set", "steady.t_max=50", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import csv

    rows = list(csv.DictReader(open(out / "states.csv")))
    assert [r["kind"] for r in rows] == ["time-stepping limit", "global minimum"]
    e0, e1 = float(rows[0]["energy"]), float(rows[1]["energy"])
    assert e1 <= e0 + 1e-12 and e0 - e1 < 1e-9
    assert float(rows[1]["certificate_gap"]) < 1e-12
    # uniform on an interval of length 2 (any translate: V = 0): variance 1/3 up to the grid
    assert abs(float(rows[1]["m2_x"]) - float(rows[1]["mean_x"]) ** 2 - 1 / 3) < 2e-3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["relaxation"]["converged"]
    proc = _ddsolve("steady", str(cfg), "--out", str(out), "--continue", "model.a=1.5:2.5", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("ddsolve: error: --continue")


def test_continuation_in_theta_rebuilds_the_model(tmp_path):
    """Continuation in model.theta (the model is rebuilt per value) at beta = 3: the
    pitchfork of the symmetric state is at beta theta <x^2>_theta = 1, <.> under
    exp(-beta (x^4/4 - x^2/2 + theta x^2/2)) on [-3, 3] (quadrature: theta_c = 0.67354259).
    With the cell-centre potential the discrete condition is the midpoint rule of that one,
    so theta_c is found to its bracket (1.5e-9) on 50 and 100 cells (measured errors 5.9e-10,
    4.0e-10)."""
    from ddsolve.steady.runner import steady

    def f(t, b=3.0):
        w = lambda x: np.exp(-b * (x**4 / 4 - x**2 / 2 + t * x**2 / 2))
        return b * t * quad(lambda x: x * x * w(x), -3, 3, epsabs=1e-14)[0] / quad(w, -3, 3, epsabs=1e-14)[0] - 1
    exact = brentq(f, 0.2, 1.5, xtol=1e-14)
    values = []
    for cells in (50, 100):
        raw = {"model": {"problem": "curie-weiss", "beta": 3.0}, "grid": {"bounds": [-3.0, 3.0], "cells": cells},
               "initial": {"std": 0.5}}
        res = steady(raw, tmp_path / str(cells), continuation=("model.theta", 0.2, 1.5))
        [bp] = [s for s in res.special if s["kind"] == "branch-point"]
        assert bp["bracket_high"] - bp["bracket_low"] < 1e-8
        values.append(bp["model.theta"])
    err = np.abs(np.array(values) - exact)
    assert np.all(err < 3e-9), err


@pytest.mark.parametrize("module", ["selfconsistency", "deflation", "stability", "continuation", "noiseless"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"ddsolve.steady.{module}"))
    assert result.failed == 0 and (result.attempted > 0 or module == "noiseless")
