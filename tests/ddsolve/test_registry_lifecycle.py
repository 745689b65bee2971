"""The scheme registry and the run lifecycle that every command shares."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ddsolve import GridModel, Model, cartesian, evolve
from ddsolve.app.lifecycle import RunRecord, exit_status
from ddsolve.failures import NumericalFailure, RunInterrupted
from ddsolve.model import DoubleWellPotential
from ddsolve.schema import ConfigError
from ddsolve.schemes.registry import STEPPERS, get_stepper, register_stepper, scheme_names


def _grid_model():
    coords = cartesian([-2.5, 2.5], 60)
    gm = GridModel(Model(potential=DoubleWellPotential(), beta=4.0), coords)
    x = coords.cell_centers()[..., 0]
    rho = np.exp(-(x - 0.3) ** 2 / 0.3)
    return gm, rho / gm.mass(rho)


def test_builtin_steppers_and_unknown_names():
    assert {("fv", False), ("fv", True), ("jko", True)} <= set(STEPPERS)
    assert scheme_names()[:2] == ("fv", "jko")
    assert get_stepper("jko", implicit=None) is STEPPERS[("jko", True)]  # its only registration
    with pytest.raises(ValueError, match=r"no explicit scheme 'jko'; registered: .*fv \(explicit\)"):
        get_stepper("jko", implicit=False)
    with pytest.raises(ValueError, match=r"registered: .*jko \(implicit\)"):
        get_stepper("bdf", implicit=True)


def test_a_registered_stepper_is_what_evolve_runs():
    gm, rho0 = _grid_model()
    explicit = STEPPERS[("fv", False)].build

    @register_stepper("fv-euler", implicit=False, doc="test: forward Euler through the registry")
    def euler(grid_model, options):
        return explicit(grid_model, {**options, "rk_order": 1})

    try:
        via_registry, info = evolve(gm, rho0, 0.2, scheme="fv-euler")
        direct, _ = evolve(gm, rho0, 0.2, rk_order=1)
        np.testing.assert_array_equal(via_registry, direct)
        assert info["steps"] > 0
    finally:
        del STEPPERS[("fv-euler", False)]


def test_exit_status_is_one_mapping(capsys, tmp_path):
    assert exit_status(ConfigError("scheme.cfl", "must be in (0, 1]")) == 2
    assert capsys.readouterr().err == "ddsolve: error: scheme.cfl: must be in (0, 1]\n"
    failure = NumericalFailure("negative density", 0.25, "negative")
    failure.out_dir = tmp_path
    assert exit_status(failure) == 3
    assert capsys.readouterr().err == (f"ddsolve: numerical failure at t=0.25: negative density; "
                                       f"partial output in {tmp_path}\n")
    assert exit_status(RunInterrupted(1.5)) == 130
    assert "interrupted by the user at t=1.5" in capsys.readouterr().err
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        exit_status(ZeroDivisionError("x"))


def _summary(path):
    return json.loads((path / "summary.json").read_text())


def test_run_record_ok_failure_and_interrupt(tmp_path):
    closed = []
    rec = RunRecord(tmp_path / "ok", "run.out", {"a": 1}, problem="p")
    assert _summary(rec.path)["status"] == "running"
    rec.close_with(lambda: closed.append("ok"))
    with rec.running(now=lambda: 1.0):
        pass
    summary = rec.finish(steps=3)
    assert summary["status"] == "ok" and summary["failure"] is None and summary["steps"] == 3
    assert closed == ["ok"] and _summary(rec.path)["problem"] == "p"

    rec = RunRecord(tmp_path / "bad", "run.out", {})
    saved = []
    with rec.running(now=lambda: 0.5, on_failure=lambda err: saved.append(err.t)):
        raise NumericalFailure("non-finite density", 0.5, "nan")
    with pytest.raises(NumericalFailure) as info:
        rec.finish()
    assert saved == [0.5] and info.value.out_dir == rec.path
    assert _summary(rec.path)["failure"] == {"message": "non-finite density", "t": 0.5, "cause": "nan"}

    rec = RunRecord(tmp_path / "int", "run.out", {})
    with rec.running(now=lambda: 2.0):
        raise KeyboardInterrupt
    with pytest.raises(RunInterrupted):
        rec.finish()
    assert _summary(rec.path)["failure"]["cause"] == "interrupted"


def test_run_record_keeps_an_unexpected_error_in_the_summary(tmp_path):
    closed = []
    rec = RunRecord(tmp_path / "err", "run.out", {})
    rec.close_with(lambda: closed.append(True))
    with pytest.raises(RuntimeError, match="boom"), rec.running(now=lambda: 0.1):
        raise RuntimeError("boom")
    s = _summary(rec.path)
    assert s["status"] == "failed" and s["failure"]["cause"] == "error" and closed == [True]


def test_run_record_names_the_key_of_an_unwritable_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as info:
        RunRecord(blocker / "sub", "particles.out", {})
    assert info.value.key == "particles.out"
