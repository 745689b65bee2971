"""Why a run stops early: the exceptions every command maps to its exit status.

:class:`NumericalFailure` (exit status 3) is raised by a time stepper or a particle
dynamics that cannot go on (non-finite or negative density, time-step collapse,
non-finite particles); ``t`` is the time of the last good state. :class:`RunInterrupted`
(exit status 130) is the user's Ctrl-C, caught and re-raised once the output is closed.
Both carry ``out_dir`` once the run lifecycle (:mod:`ddsolve.app.lifecycle`) has kept
the partial output there. Invalid input is :class:`ddsolve.schema.ConfigError` (status 2).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["NumericalFailure", "RunInterrupted"]


class NumericalFailure(RuntimeError):
    """A run stopped on a numerical failure at time ``t`` (the last good state)."""

    def __init__(self, message: str, t: float, cause: str = "numerical") -> None:
        super().__init__(message)
        self.t = float(t)
        self.cause = cause
        self.out_dir: Path | None = None


class RunInterrupted(KeyboardInterrupt):
    """The user interrupted a run (``signal`` ``"SIGINT"``, Ctrl-C) or it was terminated
    (``"SIGTERM"``); its output directory is complete up to ``t``."""

    def __init__(self, t: float, signal: str = "SIGINT") -> None:
        what = "interrupted by the user" if signal == "SIGINT" else f"stopped by {signal}"
        super().__init__(f"{what} at t={t:.6g}")
        self.t = float(t)
        self.signal = signal
        self.out_dir: Path | None = None
