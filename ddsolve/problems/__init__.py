"""Problem registry.

A *problem* (see :class:`~ddsolve.problems.base.Problem`) is a named family of models
with a declared parameter table; ``[model] problem = "<name>"`` selects one and the
other ``[model]`` keys are its parameters. Built-in problems live in
:mod:`~ddsolve.problems.mckean_vlasov` and :mod:`~ddsolve.problems.two_layer`; new ones are added with :func:`register`
(usable as a class decorator)::

    @register
    class TwoLayer(Problem):
        name = "two-layer"
        ...
"""

from __future__ import annotations

from ddsolve.problems.base import Problem
from ddsolve.problems.mckean_vlasov import BUILTIN_PROBLEMS
from ddsolve.problems.two_layer import TwoLayer
from ddsolve.schema import ConfigError, Param

__all__ = ["PROBLEMS", "register", "unregister", "get_problem", "problem_names",
           "Problem", "Param", "ConfigError"]

PROBLEMS: dict[str, Problem] = {}
"""Registered problems by name, in registration order."""


def register(problem: Problem | type[Problem]) -> Problem | type[Problem]:
    """Register a problem (instance or class; a class is instantiated) under its name.

    Returns its argument, so it can decorate a class.
    """
    instance = problem() if isinstance(problem, type) else problem
    if not instance.name:
        raise ValueError(f"{type(instance).__name__} has no name")
    if instance.name in PROBLEMS:
        raise ValueError(f"a problem named {instance.name!r} is already registered")
    PROBLEMS[instance.name] = instance
    return problem


def unregister(name: str) -> None:
    """Remove a registered problem (for tests and plug-ins)."""
    PROBLEMS.pop(name, None)


def problem_names() -> tuple[str, ...]:
    return tuple(PROBLEMS)


def get_problem(name: str) -> Problem:
    """The registered problem ``name``; :class:`ConfigError` on ``model.problem`` if unknown."""
    try:
        return PROBLEMS[name]
    except (KeyError, TypeError):
        shown = repr(name) if isinstance(name, str) else str(name)
        raise ConfigError("model.problem",
                          f"unknown problem {shown}; one of {', '.join(PROBLEMS)}") from None


for _cls in BUILTIN_PROBLEMS + (TwoLayer,):
    register(_cls)
del _cls
