"""``ddsolve sweep``: parameter parsing, the Dask path on a two-worker LocalCluster, resume
(also after a sweep killed with SIGKILL), failed runs, seeds, and argument errors.

One LocalCluster serves the module (``--scheduler`` its address); the killed sweep (marked
slow) starts its own cluster in a subprocess, as a user would.
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

import pytest

from ddsolve.app.cli import main
from ddsolve.app.config import split_values
from ddsolve.schema import ConfigError
from validation.sweep.params import parameter_points, parse_param, resume_key, run_name
from validation.sweep.study import SweepSettings, dask_client, plan
from validation.sweep.worker import MARKER_FILE, failure_message

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

CURIE_WEISS_PARTICLES = """\
[model]
problem = "curie-weiss"
potential = "double-well"
theta = 1.0
beta = 3.0

[grid]
bounds = [-3.0, 3.0]
cells = 40

[initial]
kind = "gaussian"
mean = 0.2
std = 0.5

[particles]
method = "mean-field"
n = 200
t_final = 0.2
dt = 0.01
snapshots = 3
seed = 5
out = "unused"
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def sweep_json(out: Path) -> dict:
    return json.loads((out / "sweep.json").read_text())


@pytest.fixture(scope="module")
def scheduler():
    """The address of the sweep's own local cluster (``dask_client``, as without
    ``--scheduler``): two single-threaded worker processes."""
    with dask_client(None, 2) as client:
        yield client.scheduler.address


@pytest.fixture(scope="module")
def ou_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep-config") / "ou.toml"
    path.write_text(OU)
    return path


@pytest.fixture(scope="module")
def beta_sweep(scheduler, ou_config, tmp_path_factory):
    """A finished 3-run sweep over model.beta: (out dir, exit status)."""
    out = tmp_path_factory.mktemp("sweep") / "beta"
    code = main(["sweep", str(ou_config), "--param", "model.beta=1,2,3.5", "--scheduler", scheduler,
                 "--out", str(out), "--quiet"])
    return out, code


# --- parsing, planning (no cluster) ------------------------------------------------------
def test_values_split_at_top_level_commas_and_parse_as_toml():
    assert split_values('[100,100], [200,200]') == ["[100,100]", "[200,200]"]
    assert split_values('"a,b",\'c,d\',{k = [1,2]}') == ['"a,b"', "'c,d'", "{k = [1,2]}"]
    p = parse_param("grid.cells=[100,100],[200,200]")
    assert p.key == "grid.cells" and p.values == ([100, 100], [200, 200])
    p = parse_param("model.beta=2, 3.5,inf,double-well")
    assert p.values[0] == 2 and isinstance(p.values[0], int)
    assert p.values[1] == 3.5 and p.values[2] == float("inf") and p.values[3] == "double-well"
    assert p.texts == ("2", "3.5", "inf", "double-well")


def test_product_zip_and_seeds_order():
    a, b = parse_param("model.beta=1,2"), parse_param("grid.cells=10,20,30")
    product = parameter_points([a, b])
    assert [[t for _, t, _ in pt] for pt in product] == [
        ["1", "10"], ["1", "20"], ["1", "30"], ["2", "10"], ["2", "20"], ["2", "30"]]
    with pytest.raises(ConfigError, match="--zip"):
        parameter_points([a, b], zip_params=True)
    zipped = parameter_points([a, parse_param("grid.cells=10,20")], zip_params=True)
    assert [[v for _, _, v in pt] for pt in zipped] == [[1, 10], [2, 20]]
    seeded = parameter_points([a], seeds=3, seed_key="run.seed", seed0=7)
    assert [[v for _, _, v in pt] for pt in seeded] == [[1, 7], [1, 8], [1, 9], [2, 7], [2, 8], [2, 9]]


def test_plan_names_keys_and_overrides(ou_config, tmp_path):
    settings = SweepSettings(ou_config, tmp_path, "run", [parse_param("model.beta=2,3"),
                             parse_param("grid.cells=[40],[80]")], overrides=["run.t_final=0.25"])
    specs = plan(settings)
    assert len(specs) == 4
    assert specs[1].overrides == ["run.t_final=0.25", "model.beta=2", "grid.cells=[80]"]
    assert specs[1].config["grid"]["cells"] == [80] and specs[1].config["run"]["t_final"] == 0.25
    assert specs[1].name.startswith("beta=2_cells=80-") and len(specs[1].name.split("-")[-1]) == 8
    assert len({s.name for s in specs}) == 4 and len({s.key for s in specs}) == 4
    # the key: config (without out) + command + version
    assert specs[0].key == resume_key("run", {**specs[0].config, "run": {**specs[0].config["run"], "out": "x"}})
    assert specs[0].key != resume_key("particles", specs[0].config)
    assert specs[0].key != resume_key("run", specs[0].config, version="0.0.0")
    assert run_name([("model.beta", "2"), ("initial.beta", "3")], "ab" * 8) == \
        "model.beta=2_initial.beta=3-abababab"


def test_failure_message_is_the_last_error_line():
    err = "ddsolve: warning: something\nddsolve: error: model.beta: must be positive\n"
    assert failure_message(err) == "ddsolve: error: model.beta: must be positive"
    assert failure_message("Traceback ...\n  File x\nValueError: boom\n") == "ValueError: boom"


@pytest.mark.parametrize("arg, needle", [
    ("model.beta", "expected KEY=V1,V2"),
    ("beta=1,2", "not a dotted config key"),
    ("model.beta=1,,2", "empty value"),
    ("model.beta=[1,2", "missing ']'"),
    ("model.beta=1,1", "given twice"),
    ("model.betta=1,2", "model.betta"),      # a key the config rejects: the pre-check
    ("model.beta=1,-2", "model.beta=-2"),    # a value the config rejects, not the first one
])
def test_bad_param_exits_2_naming_it(ou_config, tmp_path, capsys, arg, needle):
    out = tmp_path / "bad"
    assert main(["sweep", str(ou_config), "--param", arg, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ddsolve: error: --param: ") and needle in err and "\n" not in err
    assert not out.exists()  # nothing submitted, nothing written


def test_bad_command_and_seeds_conflict_exit_2(ou_config, tmp_path, capsys):
    assert main(["sweep", str(ou_config), "--command", "nope", "--out", str(tmp_path / "a")]) == 2
    assert "--command" in capsys.readouterr().err
    assert main(["sweep", str(ou_config), "--param", "run.seed=1,2", "--seeds", "2",
                 "--out", str(tmp_path / "b")]) == 2
    assert "--seeds: run.seed is also swept" in capsys.readouterr().err


# --- the Dask path ------------------------------------------------------------------------
def test_sweep_rows_equal_direct_runs(beta_sweep, ou_config, tmp_path):
    out, code = beta_sweep
    assert code == 0
    rows = read_csv(out / "sweep.csv")
    assert [r["model.beta"] for r in rows] == ["1", "2", "3.5"]
    assert all(r["status"] == "ok" and r["exit_code"] == "0" and r["message"] == "" for r in rows)
    assert all(float(r["wall_time"]) > 0 and (out / r["dir"] / "summary.json").is_file() for r in rows)
    assert rows[1]["dir"].startswith("beta=2-")
    finals = [k for k in rows[0] if k.startswith("final.")]
    assert {"final.t", "final.mass", "final.free_energy", "final.mean_x"} <= set(finals)
    # the same run, directly: identical final diagnostics
    assert main(["run", str(ou_config), "--set", "model.beta=2", "--out", str(tmp_path / "direct"),
                 "--quiet"]) == 0
    direct = json.loads((tmp_path / "direct" / "summary.json").read_text())["final"]
    assert {f"final.{k}" for k in direct} == set(finals)
    for k, v in direct.items():
        assert float(rows[1][f"final.{k}"]) == v, k
    assert float(rows[0]["final.free_energy"]) != float(rows[1]["final.free_energy"])
    meta = sweep_json(out)
    assert meta["command"] == "run" and meta["params"] == {"model.beta": ["1", "2", "3.5"]}
    assert meta["status"] == "done" and meta["runs"] == 3 and meta["submitted"] == 3 and meta["ok"] == 3
    assert meta["scheduler"].startswith("tcp://") and "distributed" in meta["versions"]


def test_rerun_skips_finished_runs(beta_sweep, ou_config, scheduler):
    out, code = beta_sweep
    assert code == 0
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/*") if p.is_file()}
    rows_before = read_csv(out / "sweep.csv")
    assert main(["sweep", str(ou_config), "--param", "model.beta=1,2,3.5", "--scheduler", scheduler,
                 "--out", str(out), "--quiet"]) == 0
    assert sweep_json(out)["submitted"] == 0 and sweep_json(out)["skipped"] == 3
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*") if p.is_file()} == before
    assert read_csv(out / "sweep.csv") == rows_before
    # one more value: only that run is submitted
    assert main(["sweep", str(ou_config), "--param", "model.beta=1,2,3.5,4", "--scheduler", scheduler,
                 "--out", str(out), "--quiet"]) == 0
    assert sweep_json(out)["submitted"] == 1
    rows = read_csv(out / "sweep.csv")
    assert [r["model.beta"] for r in rows] == ["1", "2", "3.5", "4"] and rows[:3] == rows_before[:3]
    assert all(before[p] == p.stat().st_mtime_ns for p in before)


def test_failed_run_is_recorded_and_redone(ou_config, scheduler, tmp_path, capsys):
    out = tmp_path / "fail"
    # initial.mean = 40 passes the resolve-time pre-check; the worker's build finds no mass on the grid
    args = ["sweep", str(ou_config), "--param", "initial.mean=0,40,1", "--scheduler", scheduler,
            "--out", str(out), "--quiet"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "1 of 3 runs failed (exit 2: 1), 2 ok" in err
    rows = read_csv(out / "sweep.csv")
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]
    bad = rows[1]
    assert bad["exit_code"] == "2" and bad["final.mass"] == ""
    assert bad["message"].startswith("ddsolve: error: initial.mean:") and "grid" in bad["message"]
    assert not (out / bad["dir"] / MARKER_FILE).exists()
    assert "initial.mean" in (out / bad["dir"] / "sweep-stderr.txt").read_text()
    assert all((out / r["dir"] / MARKER_FILE).is_file() for r in (rows[0], rows[2]))
    assert main(args) == 3  # the failed run is tried again, the others are not
    meta = sweep_json(out)
    assert meta["submitted"] == 1 and meta["skipped"] == 2 and meta["failed"] == 1


def test_seeds_give_distinct_particle_runs(scheduler, tmp_path):
    config = tmp_path / "cw.toml"
    config.write_text(CURIE_WEISS_PARTICLES)
    out = tmp_path / "seeds"
    assert main(["sweep", str(config), "--command", "particles", "--param", "model.beta=2,3",
                 "--seeds", "2", "--scheduler", scheduler, "--out", str(out), "--quiet"]) == 0
    rows = read_csv(out / "sweep.csv")
    assert [(r["model.beta"], r["particles.seed"]) for r in rows] == [("2", "5"), ("2", "6"),
                                                                      ("3", "5"), ("3", "6")]
    assert all(r["status"] == "ok" for r in rows) and len({r["dir"] for r in rows}) == 4
    for a, b in ((rows[0], rows[1]), (rows[2], rows[3])):
        assert a["final.mean_x"] != b["final.mean_x"] and a["final.energy"] != b["final.energy"]
    for r in rows:
        summary = json.loads((out / r["dir"] / "summary.json").read_text())
        assert summary["config"]["particles"]["seed"] == int(r["particles.seed"])
    meta = sweep_json(out)
    assert meta["seeds"] == 2 and meta["seed_key"] == "particles.seed" and meta["command"] == "particles"


def _children(pid: int) -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def _wait_gone(pids: list[int], timeout: float) -> None:
    import psutil

    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:  # our own sweep's workers, if they outlive it
        p.kill()
    psutil.wait_procs(alive, timeout=10)


@pytest.mark.slow  # its own interpreter and cluster: ~25 s of CPU
def test_resume_after_killed_sweep(ou_config, scheduler, tmp_path):
    out = tmp_path / "killed"
    # runs of about 2-3 s each: 5 of them on 2 workers
    args = [str(ou_config), "--param", "model.beta=1,2,3,4,5", "--set", "grid.cells=1000",
            "--set", "run.t_final=1.5", "--out", str(out), "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "ddsolve", "sweep", *args, "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            children = sorted(set(children) | set(_children(proc.pid)))
            csv_path = out / "sweep.csv"
            if csv_path.exists() and any(r["status"] == "ok" for r in read_csv(csv_path)):
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stderr.read()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()
        _wait_gone(children, timeout=30)
    rows = read_csv(out / "sweep.csv")
    assert len(rows) == 5 and "pending" in {r["status"] for r in rows}
    done = {p.parent.name: (p.stat().st_mtime_ns, (p.parent / "summary.json").stat().st_mtime_ns)
            for p in out.glob(f"*/{MARKER_FILE}")}
    assert 1 <= len(done) < 5
    assert main(["sweep", *args, "--scheduler", scheduler]) == 0
    meta = sweep_json(out)
    assert meta["skipped"] == len(done) and meta["submitted"] == 5 - len(done)
    rows = read_csv(out / "sweep.csv")
    assert len(rows) == 5 and all(r["status"] == "ok" for r in rows)
    assert [r["model.beta"] for r in rows] == ["1", "2", "3", "4", "5"]
    for name, (marker, summary) in done.items():  # finished runs were not redone
        assert (out / name / MARKER_FILE).stat().st_mtime_ns == marker
        assert (out / name / "summary.json").stat().st_mtime_ns == summary
    assert len(list(out.glob(f"*/{MARKER_FILE}"))) == 5


@pytest.mark.slow  # its own interpreter and cluster
def test_ctrl_c_cancels_and_leaves_a_consistent_csv(ou_config, tmp_path):
    out = tmp_path / "interrupted"
    args = [str(ou_config), "--param", "model.beta=1,2,3,4,5", "--set", "grid.cells=1000",
            "--set", "run.t_final=1.5", "--out", str(out), "--workers", "2"]
    # a new session, as a terminal's foreground job: SIGINT goes to the whole group
    proc = subprocess.Popen([sys.executable, "-m", "ddsolve", "sweep", *args], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "sweep.csv").exists() and any(r["status"] == "ok" for r in read_csv(out / "sweep.csv")):
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 130
    assert stderr.strip().startswith("ddsolve: sweep interrupted by the user:")
    assert "Traceback" not in stderr  # the workers ignore the group's SIGINT
    rows = read_csv(out / "sweep.csv")
    assert len(rows) == 5 and {r["status"] for r in rows} <= {"ok", "cancelled"}
    assert "cancelled" in {r["status"] for r in rows}
    for r in rows:  # the csv says ok exactly where a marker is
        assert (r["status"] == "ok") == (out / r["dir"] / MARKER_FILE).is_file(), r
    meta = sweep_json(out)
    assert meta["status"] == "interrupted" and meta["ok"] + meta["cancelled"] == 5


def test_converge_and_validate_runs_in_a_sweep(scheduler, ou_config, tmp_path):
    # converge takes its own --param through --command-args; every point is an order table
    out = tmp_path / "conv"
    assert main(["sweep", str(ou_config), "--command", "converge", "--param", "model.beta=1,2",
                 "--command-args=--param grid.cells=40,80,160 --quantity density",
                 "--scheduler", scheduler, "--out", str(out), "--quiet"]) == 0
    rows = read_csv(out / "sweep.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(float(r["final.order_density"]) > 1.8 for r in rows)
    assert sweep_json(out)["command_args"] == ["--param", "grid.cells=40,80,160", "--quantity", "density"]
    # validate with --seeds sets validate.seed (the first particle seed of each report)
    cfg = tmp_path / "cw.toml"
    cfg.write_text(CURIE_WEISS_PARTICLES.replace('out = "unused"\n', "")
                   + "[run]\nt_final = 0.2\nsave_every = 0.1\n[validate]\nn = [100]\nseeds = 1\n")
    out = tmp_path / "val"
    assert main(["sweep", str(cfg), "--command", "validate", "--param", "model.beta=3", "--seeds", "2",
                 "--scheduler", scheduler, "--out", str(out), "--quiet"]) == 0
    rows = read_csv(out / "sweep.csv")
    assert [r["validate.seed"] for r in rows] == ["0", "1"]
    assert all(r["final.passed"].lower() == "true" for r in rows)
    assert rows[0]["final.w1"] != rows[1]["final.w1"]
    dirs = [out / r["dir"] for r in rows]
    assert [json.loads((d / "summary.json").read_text())["config"]["validate"]["seed"] for d in dirs] == [0, 1]


def test_zipped_keys_may_repeat_values_but_not_points():
    method = parse_param("particles.method=hmm,sgd,nesterov")
    dt = parse_param("particles.dt=0.01,1e-5,1e-5")
    points = parameter_points([method, dt], zip_params=True)
    assert [[t for _, t, _ in p] for p in points] == [["hmm", "0.01"], ["sgd", "1e-5"], ["nesterov", "1e-5"]]
    with pytest.raises(ConfigError, match="--zip"):
        parameter_points([parse_param("model.beta=1,1"), parse_param("grid.cells=5,5")], zip_params=True)
    with pytest.raises(ConfigError, match="given twice"):
        parameter_points([dt])
