"""End-to-end tests of ``ddsolve run`` / ``ddsolve problems`` through ``main([...])``:
config file → output directory → values read back."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pde
import pytest

from ddsolve import GridModel
from ddsolve.app.cli import main
from ddsolve.app.config import build, load_config, resolve
from ddsolve.app.io import read_diagnostics, save_times

FOKKER_PLANCK = """
[model]
problem = "fokker-planck"
potential = "quadratic"
stiffness = 1.0
beta = 1.0

[grid]
bounds = [-5, 5]
cells = 64

[initial]
kind = "gaussian"
mean = 1.5
std = 0.5

[run]
t_final = 0.5
save_every = 0.1
"""

CURIE_WEISS_2D = """
[model]
problem = "curie-weiss"
theta = 0.5

[grid]
bounds = [[-2.5, 2.5], [-2.5, 2.5]]
cells = [20, 16]

[initial]
kind = "mixture"
means = [[-1, 0], [1, 0.5]]
std = 0.4

[run]
t_final = 0.05
save_every = 0.02
"""

RADIAL = """
[model]
problem = "fokker-planck"
potential = "r**2/2"

[grid]
coordinates = "radial"
dim = 320
r_max = 24
cells = 120

[initial]
std = 0.9

[run]
t_final = 0.1
save_every = 0.05
"""

# xi jumps from 1 to 1e12 between t = 0.1 and 0.2: the step bound collapses below dt_min
FAILING = """
[model]
problem = "fokker-planck"
xi = {kind = "table", times = [0.0, 0.1, 0.2], values = [1.0, 1.0, 1e12]}

[grid]
bounds = [-5, 5]
cells = 48

[scheme]
time = "explicit"  # the exponential (auto's choice here) is exact for any xi: no failure
dt_min = 1e-8

[run]
t_final = 0.3
save_every = 0.05
"""

CONTRACT_COLUMNS = ["t", "mass", "energy", "free_energy", "min_density"]


def _write(directory: Path, text: str, name: str = "config.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def _storage(out: Path) -> tuple[np.ndarray, list[pde.ScalarField]]:
    storage = pde.FileStorage(out / "density.h5")
    try:
        times = np.array(storage.times)
        fields = [storage[i].copy() for i in range(len(storage))]
    finally:
        storage.close()
    return times, fields


@pytest.fixture(scope="module")
def fp_run(tmp_path_factory):
    """One Fokker–Planck run shared by the output-contract tests."""
    base = tmp_path_factory.mktemp("fp")
    config = _write(base, FOKKER_PLANCK)
    rc = main(["run", str(config), "--out", str(base / "out"), "--quiet"])
    return rc, config, base / "out"


def test_run_succeeds_and_writes_every_file(fp_run):
    rc, _, out = fp_run
    assert rc == 0
    for name in ("density.h5", "diagnostics.csv", "summary.json", "density.png", "diagnostics.png"):
        assert (out / name).stat().st_size > 0, name
    for name in ("density.png", "diagnostics.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_density_h5_has_the_saved_times_and_unit_mass(fp_run):
    _, _, out = fp_run
    times, fields = _storage(out)
    assert times == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], abs=1e-14)
    for field in fields:
        assert field.grid.shape == (64,)
        assert field.integral == pytest.approx(1.0, abs=1e-12)
        assert np.all(field.data >= 0)
    # the density relaxes towards the Gibbs state N(0, 1): the mean moves from 1.5 to 1.5 e^-t
    x = fields[-1].grid.axes_coords[0]
    assert float(np.sum(x * fields[-1].data) * (10 / 64)) == pytest.approx(1.5 * math.exp(-0.5), rel=2e-2)


def test_diagnostics_csv_columns_and_values(fp_run):
    _, config, out = fp_run
    header = (out / "diagnostics.csv").read_text().splitlines()[0].split(",")
    assert header == CONTRACT_COLUMNS + ["mean_x", "m2_x"]
    cols = read_diagnostics(out / "diagnostics.csv")
    times, fields = _storage(out)
    assert cols["t"] == pytest.approx(times, abs=0)
    assert np.all(np.diff(cols["free_energy"]) < 0)  # free energy decays (Fokker–Planck)
    assert np.all(np.abs(cols["mass"] - 1.0) < 1e-12)
    # the rows are the diagnostics of the stored snapshots
    setup = build(load_config(config))
    gm = GridModel(setup.model, setup.coords)
    for i, field in enumerate(fields):
        expected = gm.diagnostics(field.data, times[i])
        for key in header:
            assert cols[key][i] == pytest.approx(expected[key], rel=1e-12, abs=1e-300), (key, i)


def test_summary_json(fp_run):
    _, config, out = fp_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["failure"] is None
    resolved = load_config(config, [f"run.out={json.dumps(str(out))}"])
    assert resolve(summary["config"]) == resolved == summary["config"] | {"model": resolved["model"]}
    assert set(summary["versions"]) == {"ddsolve", "numpy", "scipy", "numba", "py-pde"}
    assert summary["steps"] > 0 and summary["steps"] == summary["solver"]["steps"]
    assert summary["wall_time"] > 0
    assert summary["saved_times"] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    final = summary["final"]
    last = {k: v[-1] for k, v in read_diagnostics(out / "diagnostics.csv").items()}
    assert final == pytest.approx(last, rel=1e-15)
    assert final["t"] == 0.5
    assert summary["problem"] == "fokker-planck" and summary["interaction_method"] == "none"


def test_save_times():
    assert save_times(0.25, 0.1).tolist() == [0.0, 0.1, 0.2, 0.25]
    assert save_times(0.3, 0.1).tolist() == [0.0, 0.1, 0.2, 0.3]
    assert save_times(1.0, 0.25).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert save_times(0.5, 2.0).tolist() == [0.0, 0.5]


def test_2d_run_with_overrides(tmp_path, capsys):
    config = _write(tmp_path, CURIE_WEISS_2D)
    rc = main(["run", str(config), "--out", str(tmp_path / "cw"), "--set", "model.beta=3",
               "--set", "scheme.interaction=dense"])
    assert rc == 0
    assert "output in" in capsys.readouterr().out
    summary = json.loads((tmp_path / "cw" / "summary.json").read_text())
    assert summary["config"]["model"]["beta"] == 3.0
    assert summary["interaction_method"] == "dense"
    times, fields = _storage(tmp_path / "cw")
    assert times == pytest.approx([0.0, 0.02, 0.04, 0.05])
    assert all(f.integral == pytest.approx(1.0, abs=1e-12) for f in fields)
    header = (tmp_path / "cw" / "diagnostics.csv").read_text().splitlines()[0].split(",")
    assert header == CONTRACT_COLUMNS + ["mean_x", "m2_x", "mean_y", "m2_y"]
    assert (tmp_path / "cw" / "density.png").exists()


def test_radial_run_in_high_dimension(tmp_path):
    config = _write(tmp_path, RADIAL)
    assert main(["run", str(config), "--out", str(tmp_path / "rad"), "--quiet"]) == 0
    cols = read_diagnostics(tmp_path / "rad" / "diagnostics.csv")
    assert list(cols) == CONTRACT_COLUMNS + ["mean_r", "m2_r"]
    assert np.all(np.abs(cols["mass"] - 1.0) < 1e-12)
    assert np.all(np.diff(cols["free_energy"]) < 0)
    assert cols["mean_r"][0] == pytest.approx(0.9 * math.sqrt(319.5), rel=1e-3)  # chi_320 mean


def test_numerical_failure_exits_3_and_keeps_partial_output(tmp_path, capsys):
    config = _write(tmp_path, FAILING)
    out = tmp_path / "fail"
    rc = main(["run", str(config), "--out", str(out), "--quiet"])
    assert rc == 3
    err = capsys.readouterr().err
    assert "numerical failure at t=" in err and "dt_min" in err and "Traceback" not in err
    cols = read_diagnostics(out / "diagnostics.csv")
    t = cols["t"]
    assert t[:3] == pytest.approx([0.0, 0.05, 0.1], abs=1e-14)  # rows written before the failure
    assert len(t) == 4 and 0.1 < t[3] < 0.2  # plus the last good state
    assert np.all(np.abs(cols["mass"] - 1.0) < 1e-12)
    times, fields = _storage(out)
    assert times == pytest.approx(t, abs=0)
    assert all(f.integral == pytest.approx(1.0, abs=1e-12) for f in fields)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["failure"]["t"] == pytest.approx(t[3], abs=0)
    assert "dt_min" in summary["failure"]["cause"]
    assert summary["final"]["t"] == pytest.approx(t[3], abs=0)


def test_user_interrupt_keeps_output(tmp_path, capsys, monkeypatch):
    """Ctrl-C during stepping: exit 130, output complete up to the interrupt."""
    import ddsolve.app.runner as runner

    make = runner.make_stepper

    def interrupting_solver(grid_model, scheme):
        eq, solver = make(grid_model, scheme)
        make_stepper = solver.make_stepper

        def patched(state, dt=None):
            stepper = make_stepper(state, dt)

            def step(state, t_start, t_end):
                if t_start >= 0.25:
                    raise KeyboardInterrupt
                return stepper(state, t_start, t_end)

            return step

        solver.make_stepper = patched
        return eq, solver

    monkeypatch.setattr(runner, "make_stepper", interrupting_solver)
    config = _write(tmp_path, FOKKER_PLANCK.replace("t_final = 0.5", "t_final = 0.6").replace(
        "save_every = 0.1", "save_every = 0.2"))
    assert main(["run", str(config), "--out", str(tmp_path / "int"), "--quiet", "--set", "scheme.dt=0.05"]) == 130
    assert "interrupted by the user at t=" in capsys.readouterr().err
    cols = read_diagnostics(tmp_path / "int" / "diagnostics.csv")
    times, fields = _storage(tmp_path / "int")
    # saved at 0, 0.2 and 0.4, then interrupted when stepping on from t = 0.4
    assert cols["t"] == pytest.approx(times, abs=0)
    assert cols["t"] == pytest.approx([0.0, 0.2, 0.4])
    assert all(f.integral == pytest.approx(1.0, abs=1e-12) for f in fields)
    summary = json.loads((tmp_path / "int" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure"]["cause"] == "interrupted"
    assert summary["final"]["t"] == pytest.approx(cols["t"][-1], abs=0)


@pytest.mark.parametrize("overrides, key", [
    (["scheme.cfl=1.5"], "scheme.cfl"),
    (["scheme.cfl=0"], "scheme.cfl"),
    (["grid.cells=1"], "grid.cells"),
    (["grid.cells=10.5"], "grid.cells"),
    (["run.t_final=0"], "run.t_final"),
    (["run.t_final=-1"], "run.t_final"),
    (["grid.bounds=[5, -5]"], "grid.bounds"),
    (["model.bogus=1"], "model.bogus"),
    (["model.problem=kuramoto"], "grid.periodic"),
    (["scheme.name=jko"], "scheme.dt"),
    (["scheme.name=bdf"], "scheme.name"),
    (["scheme.name=jko", "scheme.dt=0.1", "scheme.cfl=0.5"], "scheme.cfl"),
    (["scheme.name=jko", "scheme.dt=0.1", "scheme.method=exact"], "scheme.method"),
    (["scheme.name=jko", "scheme.dt=0.1", "scheme.method=lagrangian", "grid.periodic=true"], "scheme.method"),
    (["scheme.name=jko", "scheme.dt=0.1", "scheme.method=fv", "scheme.time_order=2"], "scheme.time_order"),
    (["scheme.name=jko", "scheme.dt=0.1", "scheme.method=fv", "scheme.atoms=10"], "scheme.atoms"),
    (["scheme.name=jko", "scheme.dt=0.1", "scheme.inner_tol=0"], "scheme.inner_tol"),
    (["scheme.name=jko", "scheme.dt=0.1", "scheme.max_inner=0"], "scheme.max_inner"),
    (["scheme.name=jko", "scheme.dt=0.1", "scheme.growth=0.5"], "scheme.growth"),
    (["scheme.name=jko", "scheme.dt=0.1", "scheme.dt_max=0.01"], "scheme.dt_max"),
    (["scheme.name=jko", "scheme.dt=0.1", "scheme.rk_order=2"], "scheme.rk_order"),
    (["scheme.order=3"], "scheme.order"),
    (["scheme.time=fast"], "scheme.time"),
    (["scheme.time=implicit", "scheme.cfl=0.5"], "scheme.cfl"),
    (["scheme.time=implicit", "scheme.integrator=ark3"], "scheme.integrator"),
    (["scheme.time=imex", "scheme.integrator=esdirk3"], "scheme.integrator"),
    (["scheme.time=implicit", "scheme.integrator=rk4"], "scheme.integrator"),
    (["scheme.time=implicit", "scheme.rtol=-1"], "scheme.rtol"),
    (["scheme.time=explicit", "scheme.rtol=1e-3"], "scheme.rtol"),
    (["scheme.implicit=true", "scheme.dt=0.1", "scheme.time=imex"], "scheme.time"),
    (["scheme.time=implicit", "scheme.flux=logmean", "model.beta=inf"], "scheme.flux"),
    (["scheme.time=implicit", "scheme.flux=sg", "model.beta=inf"], "scheme.flux"),
    (["scheme.time=implicit", "scheme.flux=centered"], "scheme.flux"),
    (["initial.kind=expression", "initial.mean=0", "initial.std=1"], "initial.mean"),
    (["initial.mean=40"], "initial.mean"),
    (["model.beta=-1"], "model.beta"),
    (["model.center=[0, 1]"], "model.center"),
    (["model.stiffness=[[1, 0], [0, 1]]"], "model.stiffness"),
    (["bogus.key=1"], "bogus"),
    (["model.beta"], "--set"),
])
def test_invalid_config_exits_2_naming_the_key(tmp_path, capsys, overrides, key):
    config = _write(tmp_path, FOKKER_PLANCK)
    args = ["run", str(config), "--out", str(tmp_path / "never")]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"ddsolve: error: {key}: ")
    assert not (tmp_path / "never").exists()  # nothing is written for an invalid config


@pytest.mark.parametrize("text, key", [
    ("[initial]\nkind = \"expression\"\nexpression = \"x\"\n", "initial.expression"),
    ("[initial]\nkind = \"expression\"\nexpression = \"0*x\"\n", "initial.expression"),
    ("[initial]\nkind = \"uniform\"\nbounds = [7, 8]\n", "initial.bounds"),
    ("[scheme]\ncfl = 2\n", "scheme.cfl"),
    ("[scheme]\ninteraction = \"fft\"\n", None),
])
def test_invalid_sections_in_the_file(tmp_path, capsys, text, key):
    base = FOKKER_PLANCK.split("[initial]")[0] + "[run]\nt_final = 0.01\n"
    config = _write(tmp_path, base + text)
    rc = main(["run", str(config), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    if key is None:  # fft on a zero interaction is fine: there is nothing to apply
        assert rc == 0, err
    else:
        assert rc == 2 and err.startswith(f"ddsolve: error: {key}: ")


def test_file_errors_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert capsys.readouterr().err.startswith("ddsolve: error: config: no such file")
    bad = _write(tmp_path, "[model\n")
    assert main(["run", str(bad)]) == 2
    assert "invalid TOML" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["run"], ["bogus"], ["run", "a.toml", "--bogus"]])
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error" in err or argv == []


@pytest.mark.parametrize("extra", [[], ["--set", "scheme.time_order=2", "--set", "scheme.flux=logmean"]])
def test_implicit_scheme(tmp_path, capsys, extra):
    config = _write(tmp_path, FOKKER_PLANCK)
    rc = main(["run", str(config), "--out", str(tmp_path / "imp"), "--quiet", "--set", "scheme.implicit=true",
               "--set", "scheme.dt=0.05"] + extra)
    err = capsys.readouterr().err
    assert rc == 0, err
    summary = json.loads((tmp_path / "imp" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["solver"]["class"] == "ImplicitEulerSolver"
    assert summary["config"]["scheme"]["order"] == 1
    cols = read_diagnostics(tmp_path / "imp" / "diagnostics.csv")
    assert cols["t"] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert np.all(np.abs(cols["mass"] - 1.0) < 1e-12)
    assert np.all(np.diff(cols["free_energy"]) < 0)  # the implicit runs dissipate F here


def test_logmean_flux_without_diffusion_is_a_config_error(tmp_path, capsys):
    config = _write(tmp_path, FOKKER_PLANCK)
    rc = main(["run", str(config), "--out", str(tmp_path / "x"), "--quiet", "--set", "scheme.implicit=true",
               "--set", "scheme.dt=0.05", "--set", "scheme.flux=logmean", "--set", "model.beta=inf"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("ddsolve: error: scheme.flux: ") and "beta" in err


def test_problems_command(capsys):
    assert main(["problems"]) == 0
    text = capsys.readouterr().out
    for name in ("fokker-planck", "curie-weiss", "kuramoto", "aggregation", "custom"):
        assert f"\n{name}\n" in text
    for param in ("beta =", "xi =", "theta =", "kappa =", "stiffness =", "sigma =", "interaction ="):
        assert param in text
    assert "[scheme]" in text and "cfl = 0.9" in text and "t_final = required" in text
    assert main(["problems", "kuramoto"]) == 0
    assert "kappa = 1.0" in capsys.readouterr().out
    assert main(["problems", "nope"]) == 2
    assert capsys.readouterr().err.startswith("ddsolve: error: model.problem: ")


def test_python_dash_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ddsolve", "problems", "aggregation"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "attractive-repulsive" in proc.stdout
    config = _write(tmp_path, FOKKER_PLANCK)
    proc = subprocess.run([sys.executable, "-m", "ddsolve", "run", str(config), "--set", "scheme.cfl=7"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "ddsolve: error: scheme.cfl: must be a number in (0, 1], got 7\n"


def test_load_run_reads_outputs_back(tmp_path):
    from ddsolve.app.results import load_run

    config = _write(tmp_path, FOKKER_PLANCK)
    assert main(["run", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    run = load_run(tmp_path / "r")
    assert run.status == "ok"
    assert run.times == pytest.approx(run.diagnostics["t"])
    gm = run.grid_model()
    for k in (0, -1):
        rho = run.density(k)
        assert gm.mass(rho) == pytest.approx(1.0, abs=1e-12)
        assert gm.free_energy(rho) == pytest.approx(run.diagnostics["free_energy"][k], rel=1e-12)
    assert run.densities().shape == (len(run.times),) + gm.coords.shape
    with pytest.raises(FileNotFoundError, match="summary.json"):
        load_run(tmp_path)


def test_load_run_rebuilds_the_potential_values_of_the_run(tmp_path, capsys):
    """``scheme.potential_values`` is stored with the run and rebuilt by ``load_run``; a
    summary without it (written before the key existed) is rebuilt with cell averages. The
    free energy tells the two apart: for V = x^2/2 the averages are the centre values plus
    h^2/24, about 1e-3 on 64 cells."""
    import json

    from ddsolve.app.results import load_run

    config = _write(tmp_path, FOKKER_PLANCK)
    runs = {}
    for values in ("point", "average"):
        out = tmp_path / values
        assert main(["run", str(config), "--out", str(out), "--quiet", "--set",
                     f"scheme.potential_values={values}"]) == 0
        runs[values] = load_run(out)
        assert runs[values].summary["config"]["scheme"]["potential_values"] == values
        gm = runs[values].grid_model()
        assert gm.potential_values == values
        assert gm.free_energy(runs[values].density(-1)) == pytest.approx(
            runs[values].diagnostics["free_energy"][-1], rel=1e-12)
    F = {k: r.diagnostics["free_energy"][-1] for k, r in runs.items()}
    assert 5e-4 < F["average"] - F["point"] < 2e-3  # h^2/24 = 1.0e-3 times the mass
    summary_file = tmp_path / "point" / "summary.json"
    summary = json.loads(summary_file.read_text())
    del summary["config"]["scheme"]["potential_values"]
    summary_file.write_text(json.dumps(summary))
    old = load_run(tmp_path / "point").grid_model()
    assert old.potential_values == "average"
    capsys.readouterr()
    assert main(["run", str(config), "--quiet", "--set", "scheme.potential_values=centre"]) == 2
    assert capsys.readouterr().err == ("ddsolve: error: scheme.potential_values: must be one of "
                                       "'point', 'average', got 'centre'\n")
