"""The example scripts run and exit cleanly (the two quick ones by default, the rest
with ``pytest -m slow``); each saves its figure."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"
QUICK = ["ou_relaxation", "aggregation_compact", "noisy_relu", "mmn_nonmonotone"]
SLOW = ["curie_weiss_double_well", "kuramoto_synchronisation", "muller_brown_2d",
        "mmn_isotropic_ramp", "mmn_anisotropic", "teacher_student",
        "particles_curie_weiss", "agents_muller_brown", "rve_three_spin", "sgd_vs_pde",
        "digits_histogram", "steady_mmn_certificate", "validate_curie_weiss",
        "rve_three_spin_scaling", "mmn_sgd_anisotropic", "mmn_sgd_isotropic",
        "sweep_muller_brown", "jko_near_delta"]


def _run(name, tmp_path, table="diagnostics.csv"):
    """Run the example; check its figure and that it wrote ``table``; return its stdout."""
    out = tmp_path / name
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / f"{name}.png").stat().st_size > 10_000
    assert (out / table).exists() or any(out.rglob(table))
    return proc.stdout


@pytest.mark.parametrize("name", QUICK)
def test_quick_examples(name, tmp_path):
    _run(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_slow_examples(name, tmp_path):
    _run(name, tmp_path)


STEADY = ["steady_curie_weiss", "steady_kuramoto", "steady_mmn_finite_beta"]


@pytest.mark.parametrize("name", STEADY)
def test_steady_examples(name, tmp_path):
    """The ``ddsolve steady`` examples: a figure and the tables (continuation ones show
    their branch point)."""
    stdout = _run(name, tmp_path, "states.csv")
    assert name == "steady_mmn_finite_beta" or "branch-point" in stdout
