"""Memory a run will need, estimated from its config before anything is allocated.

A config whose arrays cannot fit (``grid.cells = 1e9``, a dense interaction matrix on
``[1e5, 1e5]`` cells, ``particles.n = 1e11``) is refused with a :class:`ConfigError` that
names the key responsible for most of the memory and compares the estimate with what is
available, instead of failing with a ``MemoryError`` half-way through building the run
(or being killed by the operating system).

The estimate is a sum of :class:`Demand` items, each the bytes of the arrays one config
key scales (the grid's cell arrays, the dense interaction matrix, the particles' state).
The factors are rounded up from measured peaks, so an estimate is an upper bound of the
right order, not an exact figure. The memory available is the smallest of

* ``MemAvailable`` of ``/proc/meminfo`` (else the physical memory, ``os.sysconf``);
* the cgroup limit (``memory.max`` minus ``memory.current``) of a container;
* the address-space limit ``RLIMIT_AS`` minus the address space in use, less
  :data:`ADDRESS_SPACE_RESERVE` for threads and compiled code.

Examples
--------
>>> from ddsolve.app.resources import Demand, check_memory
>>> check_memory([Demand("grid.cells", 8e6, "the grid's cell arrays")])   # fits: the estimate
8000000.0
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddsolve.schema import ConfigError

__all__ = [
    "GIB",
    "BYTES_PER_CELL",
    "ADDRESS_SPACE_RESERVE",
    "DIAGNOSTICS_ROW_BYTES",
    "Demand",
    "available_memory",
    "check_memory",
    "grid_cells",
    "grid_demands",
    "interaction_demand",
]

GIB = 2**30
BYTES_PER_CELL = 160 * 8
"""Bytes per grid cell of a PDE run: the state, the stages of the time integrator, face
fluxes, values of V, cell averages of U, quadrature nodes and Krylov vectors (measured: about
1000 bytes per cell in 1D and 2D, explicit and implicit)."""
ADDRESS_SPACE_RESERVE = 512 * 2**20
"""Address space kept free under ``RLIMIT_AS`` for thread stacks, allocator arenas and
compiled code."""
DIAGNOSTICS_ROW_BYTES = 2048
"""Bytes of one diagnostics row kept in memory."""


@dataclass(frozen=True)
class Demand:
    """Bytes of the arrays that one config key scales.

    Parameters
    ----------
    key : str
        The dotted config key to blame (``grid.cells``).
    bytes : float
        Estimated peak bytes.
    what : str
        What the memory is for, for the message (``"1e9 cells x 1280 bytes"``).
    advice : str
        How to need less (default ``"reduce <key>"``).
    """

    key: str
    bytes: float
    what: str
    advice: str = ""


def _meminfo(field: str) -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name == field:
                    return float(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _vm_size() -> float:
    """Address space this process uses (``VmSize``), 0 if unknown."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _cgroup_free() -> float | None:
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = float((base / "memory.current").read_text().strip())
        return max(float(limit) - used, 0.0)
    except (OSError, ValueError):
        return None


def available_memory() -> tuple[float, str]:
    """The bytes a run may allocate, and where that figure comes from (module docstring)."""
    options: list[tuple[float, str]] = []
    free = _meminfo("MemAvailable")
    if free is not None:
        options.append((free, "available memory"))
    else:
        try:
            options.append((float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")),
                            "physical memory"))
        except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
            pass
    group = _cgroup_free()
    if group is not None:
        options.append((group, "the container's memory limit"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        options.append((max(float(soft) - _vm_size() - ADDRESS_SPACE_RESERVE, 0.0),
                        "the address-space limit (ulimit -v)"))
    if not options:  # pragma: no cover - nothing known: do not refuse
        return math.inf, "unknown"
    return min(options)


def _gib(x: float) -> str:
    return f"{x / GIB:.3g} GiB"


def check_memory(demands: Iterable[Demand | None], what: str = "the run") -> float:
    """Refuse a config whose estimated memory exceeds what is available.

    Parameters
    ----------
    demands : iterable of Demand or None
        The parts of the estimate (``None`` entries are skipped).
    what : str
        What needs the memory, for the message.

    Returns
    -------
    float
        The estimate in bytes.

    Raises
    ------
    ConfigError
        Naming the key of the largest demand, with the estimate and the memory available.
    """
    items = [d for d in demands if d is not None]
    total = math.fsum(d.bytes for d in items)
    if not items or total <= 0:
        return 0.0
    available, source = available_memory()
    if total <= available:
        return total
    top = max(items, key=lambda d: d.bytes)
    raise ConfigError(top.key, f"{what} would need about {_gib(total)} of memory, mostly for "
                               f"{top.what} ({_gib(top.bytes)}), more than the {_gib(available)} of "
                               f"{source}; {top.advice or 'reduce ' + top.key}")


def grid_cells(grid: Mapping[str, Any]) -> int:
    """Number of cells of a resolved ``[grid]`` section (charge axis included)."""
    return math.prod(int(n) for n in grid["cells"]) * int(grid.get("charge_cells", 1)
                                                          if "charge_bounds" in grid else 1)


def grid_demands(grid: Mapping[str, Any], snapshots: int = 0) -> list[Demand]:
    """The cell arrays of a resolved ``[grid]`` section and, for a PDE run saving
    ``snapshots`` times, the snapshots and diagnostics rows kept in memory (the figures
    read every snapshot back)."""
    cells = grid_cells(grid)
    key = "grid.charge_cells" if "charge_bounds" in grid and grid["charge_cells"] > math.prod(
        grid["cells"]) else "grid.cells"
    out = [Demand(key, float(cells) * BYTES_PER_CELL, f"{cells:.3g} cells x {BYTES_PER_CELL} bytes")]
    if snapshots:
        out.append(Demand("run.save_every", float(snapshots) * (8.0 * cells + DIAGNOSTICS_ROW_BYTES),
                          f"{snapshots} saved snapshots of {cells:.3g} cells"))
    return out


def interaction_demand(method: str | None, cells: int, ndim: int, key: str) -> Demand | None:
    """The dense interaction matrix (``cells^2`` doubles, plus the temporaries of its
    assembly: the offsets of a convolution kernel, the symmetrisation); ``None`` for the
    other methods, whose memory is linear in the cells."""
    if method != "dense":
        return None
    copies = 2 + 2 * max(int(ndim), 1)
    return Demand(key, 8.0 * copies * float(cells) ** 2, f"the dense {cells}x{cells} interaction matrix",
                  "use fewer cells or scheme.interaction = 'fft' (convolution kernels) or 'separable'")
