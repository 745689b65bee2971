"""Time discretisations of the density equation, registered by name.

A *stepper* turns a :class:`~ddsolve.grid.GridModel` and the options of the ``[scheme]``
section into a py-pde PDE and the py-pde solver that advances it. Steppers are registered
under ``(name, implicit)`` — ``scheme.name`` and ``scheme.implicit`` in a config — the way
py-pde's solvers register themselves by ``name``: ``ddsolve run``, :func:`ddsolve.evolve`
and every later command look them up here, so a new scheme (JKO) is one more
registration, not a new branch in each caller.

Examples
--------
>>> from ddsolve.schemes.registry import STEPPERS, make_stepper
>>> sorted(STEPPERS)
[('fv', False), ('fv', True), ('jko', True)]
>>> eq, solver = make_stepper(gm, {"name": "fv", "implicit": False})   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Stepper", "STEPPERS", "register_stepper", "get_stepper", "make_stepper", "scheme_names"]


@dataclass(frozen=True)
class Stepper:
    """A registered time discretisation.

    ``build(grid_model, options) -> (pde, solver)``; ``options`` are ``[scheme]`` keys,
    and a key that is absent takes the stepper's default.
    """

    name: str
    implicit: bool
    doc: str
    build: Callable[[Any, Mapping[str, Any]], tuple[Any, Any]]


STEPPERS: dict[tuple[str, bool], Stepper] = {}
"""Every registered stepper, by ``(name, implicit)``."""


def register_stepper(name: str, implicit: bool, doc: str) -> Callable:
    """Class-free registration, as a decorator of the ``build`` function."""

    def decorate(build: Callable) -> Callable:
        STEPPERS[(name, bool(implicit))] = Stepper(name, bool(implicit), doc, build)
        return build

    return decorate


def scheme_names() -> tuple[str, ...]:
    """The registered scheme names, sorted (``fv``, ``jko``, ...)."""
    return tuple(sorted(dict.fromkeys(name for name, _ in STEPPERS)))


def get_stepper(name: str, implicit: bool | None = False) -> Stepper:
    """The stepper registered under ``(name, implicit)`` (``implicit=None``: the only one
    of that name, or its explicit one); a ``ValueError`` names the others."""
    if implicit is None:
        kinds = [i for n, i in STEPPERS if n == name]
        implicit = kinds[0] if len(kinds) == 1 else False
    try:
        return STEPPERS[(name, bool(implicit))]
    except KeyError:
        have = ", ".join(f"{n} ({'implicit' if i else 'explicit'})" for n, i in STEPPERS)
        raise ValueError(f"no {'implicit' if implicit else 'explicit'} scheme {name!r}; "
                         f"registered: {have}") from None


def make_stepper(grid_model: Any, options: Mapping[str, Any]) -> tuple[Any, Any]:
    """``(pde, solver)`` for ``options["name"]`` (default ``"fv"``) and ``options["implicit"]``
    (absent: the scheme's only registration, or its explicit one)."""
    stepper = get_stepper(options.get("name", "fv"), options.get("implicit"))
    return stepper.build(grid_model, options)
