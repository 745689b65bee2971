"""The subcommands of ``ddsolve``, registered by name.

A :class:`Command` adds its arguments to the parser, runs, and may own config sections
(``[particles]``) and a part of ``ddsolve problems``. ddsolve's own commands (``run``,
``problems``, ``steady``) are registered here; other packages register theirs through the
entry-point group ``ddsolve.commands`` in their ``pyproject.toml``::

    [project.entry-points."ddsolve.commands"]
    particles = "particles.command:ParticlesCommand"

so the core never imports the packages that validate it. This module imports nothing
from ddsolve: the config layer asks it which sections other commands own. The built-in
commands and the helpers for commands that run a config are in
:mod:`ddsolve.app.builtin_commands`. A command's ``run`` raises
:class:`~ddsolve.schema.ConfigError`, :class:`~ddsolve.failures.NumericalFailure` or
:class:`~ddsolve.failures.RunInterrupted`; :func:`ddsolve.app.lifecycle.exit_status`
turns each into the exit status and its one-line message.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from functools import lru_cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

__all__ = ["Command", "ENTRY_POINT_GROUP", "BUILTIN", "commands", "extension_sections"]

ENTRY_POINT_GROUP = "ddsolve.commands"

BUILTIN = {"run": "ddsolve.app.builtin_commands:RunCommand",
           "problems": "ddsolve.app.builtin_commands:ProblemsCommand",
           "steady": "ddsolve.steady.command:SteadyCommand"}
"""ddsolve's own commands, in the form of entry points (``module:Class``)."""


class Command:
    """A ``ddsolve`` subcommand. Subclasses set :attr:`name` and :attr:`help` and
    implement :meth:`add_arguments` and :meth:`run`."""

    name: str = ""
    help: str = ""
    sections: tuple[str, ...] = ()
    """Config sections this command reads; ``ddsolve run`` passes them through unchecked."""
    outputs: tuple[str, ...] = ()
    """File names the command writes into its output directory: their presence marks a
    directory as holding a run, and ``--overwrite`` removes them, whichever command asks
    (:mod:`ddsolve.app.outdir`)."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's arguments."""

    def run(self, args: argparse.Namespace) -> int:
        """Run; return the exit status (0) or raise (see the module docstring)."""
        raise NotImplementedError

    def describe(self) -> str | None:
        """Text for ``ddsolve problems`` (the keys of the sections it owns), or None."""
        return None

    def check_config(self, raw: Mapping[str, Any]) -> bool:
        """Validate a raw config as :meth:`run` would, without running anything (a sweep
        checks its points before submitting them). Raise
        :class:`~ddsolve.schema.ConfigError` for an invalid one; return False when the
        command has no such check."""
        return False


@lru_cache(maxsize=1)
def commands() -> dict[str, Command]:
    """Every subcommand: ddsolve's own, then those of the ``ddsolve.commands`` entry points."""
    found: dict[str, Command] = {}
    for name, target in BUILTIN.items():  # declared like entry points, loaded the same way
        found[name] = _load(target)()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in found:
            continue
        try:
            found[ep.name] = ep.load()()
        except ImportError:  # pragma: no cover - a package that cannot import adds no command
            continue
    return found


def _load(target: str) -> type[Command]:
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def extension_sections() -> tuple[str, ...]:
    """The config sections owned by registered commands (e.g. ``particles``)."""
    return tuple(s for c in commands().values() for s in c.sections)
