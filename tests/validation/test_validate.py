r"""``ddsolve validate``: particles against the PDE, end to end, and the exact finite-N law.

Quadratic Curie–Weiss particles, :math:`dX_i = -(aX_i + \theta(X_i - \bar X))dt +
\sqrt{2/\beta}\,dW_i`: the mean and the deviations decouple. :math:`\bar X` is an OU process
with rate :math:`a` and noise :math:`\sqrt{2/(\beta N)}`, so :math:`E\bar X^2 = 1/(\beta N a)`
at stationarity; the deviations have rate :math:`a + \theta` and noise covariance
:math:`(2/\beta)(I - \mathbf 1\mathbf 1^\top/N)`, so :math:`E\,\tfrac1N\sum(X_i - \bar X)^2 =
(1 - 1/N)\sigma^2`, :math:`\sigma^2 = 1/(\beta(a + \theta))` (the PDE's stationary variance).
The one-particle second moment is therefore

.. math:: E X_1^2 = \sigma^2 + \frac1N\Big(\frac{1}{\beta a} - \sigma^2\Big),

an explicit :math:`O(1/N)` bias of the variance, :math:`0.8/N` for :math:`a = \beta = 1`,
:math:`\theta = 4`. Stochastic Heun (same increment in predictor and corrector) maps each
mode of rate :math:`\lambda` to itself with stationary variance
:math:`\frac{D}{\lambda}\,r(\lambda h)`, :math:`r(x) = (2 - x)/(2 - x + x^2/2)`, so the
expected gap at step :math:`h` is known exactly too.
"""

import csv
import math

import numpy as np
import pytest

from ddsolve.app.cli import main
from ddsolve.app.config import read_toml
from validation.validate.study import validate

CW = """
[model]
problem = "curie-weiss"
potential = "quadratic"
stiffness = 1.0
theta = 4.0
beta = 1.0
[grid]
bounds = [-2.5, 2.5]
cells = 200
[initial]
kind = "gaussian"
mean = {mean}
std = {std}
[run]
t_final = {t_final}
save_every = {save}
[particles]
method = "mean-field"
dt = 0.01
integrator = "heun"
"""


def heun_ratio(x: float) -> float:
    return (2 - x) / (2 - x + x * x / 2)


def expected_m2(n: int, a=1.0, theta=4.0, beta=1.0, h=0.01) -> float:
    sigma2 = 1 / (beta * (a + theta))
    return heun_ratio(a * h) / (beta * a * n) + (1 - 1 / n) * sigma2 * heun_ratio((a + theta) * h)


def stationary_config(tmp_path, ns, seeds, t_final, every=1.0):
    path = tmp_path / "cw_stationary.toml"
    path.write_text(CW.format(mean=0.0, std=math.sqrt(0.2), t_final=t_final, save=every)
                    + "[scheme]\nimplicit = true\ndt = 0.5\n"
                    + f"[validate]\nn = {list(ns)}\nseeds = {seeds}\nstationary_after = 5.0\nfloor_repeats = 1\n"
                    + f"times = {[float(t) for t in np.arange(0.0, t_final + 1e-9, every)]}\n")
    return path


def pooled(result, metric):
    return {s["n"]: s for s in result.summary if s["metric"] == metric and s["t"] == "stationary"}


def test_finite_n_variance_bias_is_recovered(tmp_path):
    v = validate(read_toml(stationary_config(tmp_path, [50, 200], 4, 30.0)), tmp_path / "out")
    gap = pooled(v, "m2_x_gap")
    m2_pde = pooled(v, "m2_x_pde")
    for n in (50, 200):
        want = expected_m2(n) - m2_pde[n]["mean"]
        # the seed-and-time pooled standard error understates the error of correlated
        # draws (the mean mode decorrelates in time 1/a = 1, the snapshot spacing)
        assert abs(gap[n]["mean"] - want) < 4 * gap[n]["se"], (n, gap[n], want)
    assert gap[50]["mean"] > 0.5 * 0.8 / 50  # the bias is there, of the predicted size
    # the empirical variance is unbiased only up to the factor (1 - 1/N): the PDE law is not
    # recovered better than the sampling floor allows
    w1, floor = pooled(v, "w1"), pooled(v, "w1_floor")
    assert w1[200]["mean"] < 2.5 * floor[200]["mean"]


@pytest.mark.slow
def test_finite_n_variance_bias_scales_as_one_over_n(tmp_path):
    v = validate(read_toml(stationary_config(tmp_path, [50, 100, 200, 400], 6, 60.0, 0.5)), tmp_path / "out")
    gap, m2_pde = pooled(v, "m2_x_gap"), pooled(v, "m2_x_pde")
    for n, s in gap.items():
        assert abs(s["mean"] - (expected_m2(n) - m2_pde[n]["mean"])) < 4 * s["se"]
    fit = next(s for s in v.slopes if s["metric"] == "m2_x_gap" and s["t"] == "stationary")
    assert fit["ci_low"] < -1.0 < fit["ci_high"]
    assert -1.35 < fit["slope"] < -0.65
    assert fit["prefactor"] == pytest.approx(0.8, rel=0.35)


def small_config(tmp_path, extra=""):
    path = tmp_path / "cw.toml"
    path.write_text(CW.format(mean=0.5, std=0.6, t_final=1.0, save=0.25) + extra)
    return path


def test_validate_end_to_end_passes_at_n_2000(tmp_path, capsys):
    cfg = small_config(tmp_path, "[validate]\nn = [2000]\nseeds = 2\n[validate.tolerance]\nw1 = 0.05\nks = 0.06\n")
    out = tmp_path / "report"
    assert main(["validate", str(cfg), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "PASS w1 <= 0.05" in text and "all checks passed" in text
    for name in ("report.md", "metrics.csv", "summary.csv", "density_particles.png", "curves.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "pde" / "density.h5").exists()
    assert (out / "particles" / "n2000-seed1" / "particles.h5").exists()
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["n", "seed", "t", "metric", "value"]
    names = {r["metric"] for r in rows}
    assert {"w1", "w2", "ks", "w1_floor", "mean_x_pde", "mean_x_particles", "mean_x_gap",
            "energy_pde", "energy_particles"} <= names
    assert sorted({float(r["t"]) for r in rows}) == [0.0, 0.25, 0.5, 0.75, 1.0]
    # the particles' distance is of the size of the sampling floor at every time
    w1 = np.array([float(r["value"]) for r in rows if r["metric"] == "w1"])
    floor = np.array([float(r["value"]) for r in rows if r["metric"] == "w1_floor"])
    assert w1.mean() < 2.5 * floor.mean()
    report = (out / "report.md").read_text()
    assert "**PASS** w1 <= 0.05" in report and "## Gaps" in report
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["final"]["passed"] is True
    assert summary["final"]["w1"] < 0.05


def test_a_failing_tolerance_exits_1_and_says_so(tmp_path, capsys):
    cfg = small_config(tmp_path, "[validate]\nn = [300]\nseeds = 1\ntimes = [1.0]\n[validate.tolerance]\nw1 = 1e-5\n")
    assert main(["validate", str(cfg), "--out", str(tmp_path / "r")]) == 1
    assert "FAIL w1 <= 1e-05" in capsys.readouterr().out
    assert "**FAIL**" in (tmp_path / "r" / "report.md").read_text()


def test_distances_decay_with_n_and_slopes_are_reported(tmp_path):
    cfg = small_config(tmp_path, "[validate]\nn = [100, 400, 1600, 6400]\nseeds = 3\ntimes = [0.0]\n"
                                 "[validate.slope]\nw1 = [-0.75, -0.25]\n")
    v = validate(read_toml(cfg), tmp_path / "out")
    fit = next(s for s in v.slopes if s["metric"] == "w1" and s["t"] == 0.0)
    # at t = 0 the particles are i.i.d. draws of the PDE's initial law: W1 ~ N^-1/2
    assert -0.75 < fit["slope"] < -0.25 and fit["ci_low"] < fit["slope"] < fit["ci_high"]
    assert v.passed


@pytest.mark.parametrize("extra, args, key", [
    ("", ["--n", "0,5"], "--n"),
    ("[validate]\ntimes = [0.3]\n", [], "validate.times"),
    ("[validate]\nn = [10]\n[validate.tolerance]\nnope = 1.0\n", [], "validate.tolerance.nope"),
    ("[validate]\nbogus = 1\n", [], "validate.bogus"),
    ("[validate]\n[validate.slope]\nw1 = [1.0, 0.0]\n", [], "validate.slope.w1"),
])
def test_bad_input_exits_2_naming_the_key(tmp_path, capsys, extra, args, key):
    cfg = small_config(tmp_path, extra)
    assert main(["validate", str(cfg), "--out", str(tmp_path / "bad"), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0], err


def test_a_config_without_particles_is_refused(tmp_path, capsys):
    cfg = tmp_path / "pde_only.toml"
    cfg.write_text(CW.format(mean=0.5, std=0.6, t_final=1.0, save=0.25).split("[particles]")[0])
    assert main(["validate", str(cfg), "--quiet"]) == 2
    assert "particles" in capsys.readouterr().err


TWO_LAYER = """
[model]
problem = "two-layer"
activation = "mmn-nonmonotone"
dim = 20
delta = 0.5
kappa = 0.8
[grid]
r_max = 3.0
cells = 600
[run]
t_final = 0.001
save_every = 0.001
[particles]
method = "sgd"
eps = 0.001
[validate]
times = [0.0]
"""


def test_radial_two_layer_comparison_has_risks_and_radial_distances(tmp_path):
    cfg = tmp_path / "mmn.toml"
    cfg.write_text(TWO_LAYER.replace("times = [0.0]", "n = [100]\nseeds = 1\ntimes = [0.0, 0.001]"))
    v = validate(read_toml(cfg), tmp_path / "out")
    names = {r["metric"] for r in v.rows}
    assert {"risk_pde", "risk_particles", "risk_gap", "w1", "w2", "mean_r_gap"} <= names
    gap = [r["value"] for r in v.rows if r["metric"] == "risk_gap" and r["t"] == 0.0]
    assert gap[0] > 0  # the i = j terms of the finite-N risk: R_N > R at initialisation
    assert v.kind == "line"


@pytest.mark.slow
def test_risk_gap_of_iid_neurons_scales_as_one_over_n(tmp_path):
    # at t = 0 the N neurons are i.i.d. from rho_0: E R_N - R(rho_0) = (E U(w, w) - <U rho, rho>)/N
    cfg = tmp_path / "mmn.toml"
    cfg.write_text(TWO_LAYER.replace("times = [0.0]", "n = [50, 100, 200, 400]\nseeds = 6\ntimes = [0.0]"))
    v = validate(read_toml(cfg), tmp_path / "out")
    fit = next(s for s in v.slopes if s["metric"] == "risk_gap" and s["t"] == 0.0)
    assert fit["ci_low"] < -1.0 < fit["ci_high"] and -1.35 < fit["slope"] < -0.65
    w1 = next(s for s in v.slopes if s["metric"] == "w1" and s["t"] == 0.0)
    assert w1["ci_low"] < -0.5 < w1["ci_high"]
