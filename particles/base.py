r"""The interface every finite-N dynamics in :mod:`particles` implements.

A *dynamics* advances N particles by a fixed number of steps; step ``k`` ends at PDE
time :math:`t_k = k\,\Delta t` in ddsolve's time convention
(:math:`\partial_t\rho = \xi(t)\nabla\cdot(\rho\nabla(\Psi + \beta^{-1}\log(\rho/m)))`,
:mod:`ddsolve.model.base`). For SGD on a two-layer net with step :math:`s_k`, ``dt`` is
:math:`\varepsilon` and :math:`s_k = \varepsilon\,\xi(k\varepsilon)/2` (Mei, Montanari &
Nguyen, PNAS 2018; :mod:`ddsolve.problems.two_layer`).

The runner (:mod:`particles.runner`) only talks to this interface: it asks for the
initial state, advances it between snapshot times, and records

* :meth:`Dynamics.coordinates` — the particles in the coordinates of the PDE model
  (e.g. :math:`r_i = |w_i|` for an isotropic two-layer problem), which is what
  :mod:`validation` compares with the density;
* :meth:`Dynamics.vectors` — the full state (e.g. :math:`w_i\in\mathbb{R}^d`), if it
  differs from the coordinates;
* :meth:`Dynamics.diagnostics` — numbers for ``diagnostics.csv`` (``energy``, ``risk``,
  ...); the runner adds ``t`` and the moments ``mean_<name>``, ``m2_<name>``.

Two more methods let the runner pause and resume a run without changing it:

* :meth:`Dynamics.split_point` — where a call ``advance(state, stop - start, rng)`` may be
  cut into two consecutive calls that take *bit for bit* the same steps and random draws
  (the runner advances in chunks of about 0.2 s so that Ctrl-C acts promptly; every
  dynamics here is composable at its split points, see each ``split_point``);
* :meth:`Dynamics.checkpoint_state` / :meth:`Dynamics.restore_state` — the state as
  arrays and JSON data (``checkpoint.npz``), and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ddsolve.failures import NumericalFailure

__all__ = ["ParticleState", "Dynamics", "ParticleFailure"]


class ParticleFailure(NumericalFailure):
    """A particle run produced non-finite values; ``t`` is the PDE time of the last good
    state (what was written before stays on disk)."""

    def __init__(self, message: str, t: float) -> None:
        super().__init__(message, t, cause="non-finite")


@dataclass
class ParticleState:
    """Positions of N particles and whatever else a method carries between steps.

    Attributes
    ----------
    x : ndarray, shape (N, D)
        The particles (full vectors; for a two-layer net the rows are
        :math:`(w_i, a_i)` or :math:`w_i`).
    step : int
        Number of steps taken; the PDE time is ``step * dt``.
    extra : dict
        Method-specific arrays (velocities of momentum methods, fast variables of HMM, ...).
    """

    x: np.ndarray
    step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Dynamics:
    """Base class of finite-N dynamics.

    Attributes
    ----------
    n : int
        Number of particles.
    dt : float
        PDE time per step.
    names : tuple of str
        Names of the PDE coordinates returned by :meth:`coordinates` (``x``, ``y``,
        ``r``, ``r1``, ``a``, ...), used for the ``mean_<name>`` columns.
    """

    n: int
    dt: float
    names: tuple[str, ...] = ("x",)
    method: str = ""

    def initial_state(self, rng: np.random.Generator) -> ParticleState:
        raise NotImplementedError

    def advance(self, state: ParticleState, steps: int, rng: np.random.Generator) -> None:
        """Take ``steps`` steps in place (``state.step`` increases by ``steps``)."""
        raise NotImplementedError

    def coordinates(self, state: ParticleState) -> np.ndarray:
        """The particles in the PDE model's coordinates, shape ``(N, len(names))``."""
        return state.x

    def vectors(self, state: ParticleState) -> np.ndarray | None:
        """The full state if it is not the coordinates themselves, else ``None``."""
        return None

    def diagnostics(self, state: ParticleState) -> dict[str, float]:
        """Numbers for ``diagnostics.csv`` besides ``t`` and the moments."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Settings for ``summary.json``."""
        return {"method": self.method, "n": self.n, "dt": self.dt}

    # pausing and resuming ------------------------------------------------------------
    composable: bool = True
    """Whether ``advance(s, a)`` then ``advance(s, b)`` equals ``advance(s, a + b)`` bit for
    bit (states and random draws) at the points :meth:`split_point` returns. A dynamics
    that is not sets it to ``False``: its calls are never cut."""

    def split_point(self, start: int, stop: int, target: int) -> int:
        """A step ``p`` with ``start < p <= stop``, at or after ``target`` where possible,
        such that ``advance(state, p - start)`` followed by ``advance(state, stop - p)``
        (from ``state.step == start``) takes exactly the steps and draws of
        ``advance(state, stop - start)``; ``stop`` if there is none.

        The default, for dynamics that step one at a time with all their memory in the
        state: any step.
        """
        if not self.composable:
            return stop
        return int(min(max(target, start + 1), stop))

    def checkpoint_state(self, state: ParticleState) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(meta, arrays)``: ``state`` as JSON data and arrays, for ``checkpoint.npz``;
        :meth:`restore_state` inverts it exactly.

        The default stores ``x``, ``step`` and the entries of ``extra`` that are arrays or
        JSON scalars; a dynamics carrying other objects overrides both methods.
        """
        meta: dict[str, Any] = {"step": int(state.step), "extra": {}}
        arrays = {"x": np.asarray(state.x)}
        for key, value in state.extra.items():
            if isinstance(value, np.ndarray):
                arrays[f"extra.{key}"] = value
            elif isinstance(value, (bool, int, float, str, np.integer, np.floating)) and not (
                    isinstance(value, (float, np.floating)) and not np.isfinite(value)):
                meta["extra"][key] = value.item() if isinstance(value, np.generic) else value
            else:
                raise TypeError(f"{type(self).__name__}: cannot checkpoint state.extra[{key!r}] of type "
                                f"{type(value).__name__}; override checkpoint_state")
        return meta, arrays

    def restore_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> ParticleState:
        """The state that :meth:`checkpoint_state` returned ``(meta, arrays)`` for."""
        extra: dict[str, Any] = dict(meta.get("extra", {}))
        for key, value in arrays.items():
            if key.startswith("extra."):
                extra[key.removeprefix("extra.")] = np.array(value, order="C")
        return ParticleState(x=np.array(arrays["x"], order="C"), step=int(meta["step"]), extra=extra)
