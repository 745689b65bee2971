"""Reading a finished (or failed) run back from its output directory.

>>> run = load_run("runs/curie_weiss")            # doctest: +SKIP
>>> run.times, run.density(-1), run.diagnostics["free_energy"]   # doctest: +SKIP
>>> run.grid_model().gibbs()                       # doctest: +SKIP

The model, grid and initial law are rebuilt from the resolved config stored in
``summary.json``, so everything a study needs (discrete free energy, Gibbs state,
exact solutions on the same cells) is available without re-reading the TOML file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pde

from ddsolve.app.config import Setup, build
from ddsolve.app.io import read_diagnostics
from ddsolve.grid.grid_model import GridModel

__all__ = ["RunOutput", "load_run", "run_example", "example_out", "run_or_exit", "single_blas_thread"]


@dataclass
class RunOutput:
    """The files of one output directory (the output contract of :mod:`ddsolve.app.io`)."""

    path: Path
    summary: dict[str, Any]
    diagnostics: dict[str, np.ndarray] = field(repr=False)

    @property
    def status(self) -> str:
        return self.summary.get("status", "unknown")

    @cached_property
    def setup(self) -> Setup:
        """Coordinates, problem, model and initial law rebuilt from the stored config."""
        return build(self.summary["config"])

    def grid_model(self) -> GridModel:
        """The :class:`GridModel` of the run (same interaction method and cell values of the
        potential as the run; a summary without ``scheme.potential_values`` was written
        before the key existed, when the values were cell averages)."""
        scheme = self.summary["config"].get("scheme", {})
        return GridModel(self.setup.model, self.setup.coords,
                         interaction=scheme.get("interaction", "auto"),
                         potential_values=scheme.get("potential_values", "average"))

    @cached_property
    def _storage(self) -> pde.FileStorage:
        return pde.FileStorage(self.path / "density.h5", write_mode="readonly")

    @property
    def times(self) -> np.ndarray:
        """Times of the stored snapshots."""
        return np.asarray(self._storage.times, dtype=float)

    def density(self, index: int) -> np.ndarray:
        """Cell averages of snapshot ``index`` (negative indices count from the end)."""
        return np.array(self._storage[int(index)].data, dtype=float)

    def densities(self) -> np.ndarray:
        """All snapshots, shape ``(n_times, *grid_shape)``."""
        return np.array(self._storage.data, dtype=float)


def load_run(path: str | Path) -> RunOutput:
    """Open an output directory written by ``ddsolve run``."""
    path = Path(path)
    summary_file = path / "summary.json"
    if not summary_file.exists():
        raise FileNotFoundError(f"{path} has no summary.json: not a ddsolve output directory")
    summary = json.loads(summary_file.read_text())
    diag_file = path / "diagnostics.csv"
    diagnostics = read_diagnostics(diag_file) if diag_file.exists() else {}
    return RunOutput(path, summary, diagnostics)


def example_out(description: str | None, default: str | Path,
                argv: list[str] | None = None) -> Path:
    """The ``--out DIR`` option of an example script (default ``default``)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=str(default))
    return Path(parser.parse_args(argv).out)


def run_or_exit(*args: str | Path) -> None:
    """Run ``ddsolve ARGS... --quiet --overwrite`` in process (an example script writes its
    directories afresh each time); on failure exit with its status (the command has printed
    why)."""
    from ddsolve.app.cli import main

    status = main([str(a) for a in args] + ["--quiet", "--overwrite"])
    if status != 0:
        raise SystemExit(status)


def run_example(config: str | Path, description: str | None = None,
                argv: list[str] | None = None) -> RunOutput:
    """Run ``ddsolve run CONFIG --out OUT`` and open the output: the start of the example
    scripts. ``--out`` is read from ``argv`` (default: the command line), with default
    ``runs/<config stem>``."""
    config = Path(config)
    out = example_out(description, f"runs/{config.stem}", argv)
    run_or_exit("run", config, "--out", out)
    return load_run(out)


def single_blas_thread() -> bool:
    """Limit BLAS to one thread in this process (through ``threadpoolctl``, if installed).

    Small dense products, as in the particle scripts' SGD steps, lose to thread start-up
    and to other processes on a busy machine: 20000 anisotropic SGD steps took 41 s with 2
    OpenBLAS threads and 1.4 s with 1 on a loaded 2-core machine. Returns whether the limit
    was applied.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(limits=1, user_api="blas")
    return True
