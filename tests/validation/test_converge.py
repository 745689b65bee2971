"""``ddsolve converge``: order tables against exact solutions and by self-convergence, in
space and in time, for PDE runs and for ``steady``; and its argument errors."""

import csv
import json
import math
from pathlib import Path

import pytest

from ddsolve.app.cli import main
from tests.helpers import OU_CONFIG, write_config

OU = OU_CONFIG


@pytest.fixture
def ou(tmp_path):
    return write_config(tmp_path, OU, "ou.toml")


def rows(path: Path, quantity: str) -> list[dict]:
    with open(path / "convergence.csv") as f:
        return [r for r in csv.DictReader(f) if r["quantity"] == quantity]


def orders(rs) -> list[float]:
    return [float(r["order"]) for r in rs if r["order"] and r[next(iter(r.keys() - {"quantity", "h", "value", "error", "error_kind", "order"}))] != "richardson"]


def test_fv_is_second_order_in_space_on_ou_against_the_exact_solution(ou, tmp_path):
    out = tmp_path / "space"
    assert main(["converge", str(ou), "--param", "grid.cells=50,100,200", "--out", str(out), "--quiet"]) == 0
    dens = rows(out, "density")
    assert [r["error_kind"] for r in dens] == ["exact"] * 3
    assert [float(r["h"]) for r in dens] == pytest.approx([0.24, 0.12, 0.06])
    p = orders(dens)
    assert len(p) == 2 and min(p) >= 1.9
    assert float(dens[-1]["error"]) < 5e-4
    # the moments are checked against the exact Gaussian too
    assert orders(rows(out, "m2_x"))[-1] > 1.8
    md = (out / "convergence.md").read_text()
    assert "exact Gaussian (Ornstein-Uhlenbeck)" in md and "least-squares order" in md
    assert (out / "convergence.png").stat().st_size > 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "grid.cells=100", "grid.cells=200", "grid.cells=50"]


def test_time_orders_by_self_convergence_bdf2_and_backward_euler(ou, tmp_path):
    common = ["--set", "scheme.implicit=true", "--set", "grid.cells=200", "--error", "difference",
              "--quantity", "density", "--quantity", "mean_x", "--quiet"]
    assert main(["converge", str(ou), "--param", "scheme.dt=0.1,0.05,0.025", "--set", "scheme.time_order=2",
                 "--set", "scheme.flux=logmean", "--out", str(tmp_path / "bdf2"), *common]) == 0
    assert main(["converge", str(ou), "--param", "scheme.dt=0.1,0.05,0.025",
                 "--out", str(tmp_path / "be"), *common]) == 0
    p2 = orders(rows(tmp_path / "bdf2", "mean_x"))
    p1 = orders(rows(tmp_path / "be", "density"))
    assert len(p2) == 1 and 1.8 < p2[0] < 2.5
    assert len(p1) == 1 and 0.85 < p1[0] < 1.15
    # the Richardson value of the BDF2 mean is closer to the exact mean than the finest run
    exact = 1.0 * math.exp(-0.5)
    mean = rows(tmp_path / "bdf2", "mean_x")
    rich = next(r for r in mean if r["scheme.dt"] == "richardson")
    assert abs(float(rich["value"]) - exact) < abs(float(mean[2]["value"]) - exact)


def test_self_convergence_without_an_exact_solution(tmp_path):
    cfg = tmp_path / "cw.toml"
    cfg.write_text(OU.replace('problem = "fokker-planck"\npotential = "quadratic"\nstiffness = 1.0',
                              'problem = "curie-weiss"\npotential = "double-well"\ntheta = 1.0'))
    out = tmp_path / "cw"
    assert main(["converge", str(cfg), "--param", "grid.cells=40,80,160,320", "--out", str(out),
                 "--quantity", "density", "--quantity", "free_energy", "--quiet"]) == 0
    dens = rows(out, "density")
    assert {r["error_kind"] for r in dens} == {"difference"}
    # measured 2.01, 1.97; mixing the explicit (minmod) runs of the coarse grids with the
    # implicit (log-mean) runs of the fine ones gave 1.74, 2.74
    assert 1.9 < min(orders(dens)) and max(orders(dens)) < 2.1
    report = (out / "convergence.md").read_text()
    assert "successive differences" in report
    # scheme.time = auto picks explicit for the short runs on coarse grids and the
    # semi-implicit IMEX pair (interaction) for the others: the study pins one mode, and says so
    assert "explicit, explicit, imex, imex" in report and "all runs use imex" in report
    methods = {json.loads((d / "summary.json").read_text())["solver"]["time"] for d in (out / "runs").iterdir()}
    assert methods == {"imex"}


def test_steady_quantities_converge(tmp_path):
    cfg = tmp_path / "cw.toml"
    cfg.write_text(OU.replace('problem = "fokker-planck"\npotential = "quadratic"\nstiffness = 1.0',
                              'problem = "curie-weiss"\npotential = "double-well"\ntheta = 1.0')
                   .replace("beta = 1.0", "beta = 3.0").replace("[-6.0, 6.0]", "[-3.0, 3.0]")
                   + "[steady]\nguesses = 0\n")
    out = tmp_path / "steady"
    assert main(["converge", str(cfg), "--command", "steady", "--param", "grid.cells=50,100,200,400",
                 "--out", str(out), "--quiet"]) == 0
    fe = rows(out, "free_energy_0")
    assert fe and min(orders(fe)) > 1.8


@pytest.mark.parametrize("args, key", [
    (["--param", "grid.cells=50"], "--param"),
    (["--param", "grid.cells"], "--param"),
    (["--param", "grid.cells=50,100", "--quantity", "nope"], "--quantity"),
    (["--param", "grid.cells=50,100", "--set", "model.beta=inf", "--error", "exact"], "--error"),
    (["--param", "grid.cellz=50,100"], "grid.cellz"),
])
def test_bad_arguments_exit_2_naming_them(ou, tmp_path, capsys, args, key):
    assert main(["converge", str(ou), "--out", str(tmp_path / "bad"), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0]
