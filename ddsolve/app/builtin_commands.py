"""ddsolve's own subcommands, ``run`` and ``problems``, and the helpers every command
that runs a config shares (its arguments, and reading the file with ``--set`` and
``--out`` applied)."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Mapping
from typing import Any

from ddsolve.app.commands import Command, commands

__all__ = ["RunCommand", "ProblemsCommand", "add_run_arguments", "read_raw_config"]


def add_run_arguments(parser: argparse.ArgumentParser, section: str, example: str) -> None:
    """``CONFIG.toml [--out DIR] [--set KEY=VALUE ...] [--quiet] [--resume | --overwrite]``,
    shared by every command that runs a config; ``--out`` overrides ``[section] out``."""
    parser.add_argument("config", metavar="CONFIG.toml", help="config file")
    parser.add_argument("--out", metavar="DIR", help=f"output directory (overrides [{section}] out)")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                        help=f"override a config key, e.g. --set {example} "
                             "(values are TOML; bare words are strings)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_const", const="resume", dest="exists",
                          help="continue the run in the output directory from its last checkpoint "
                               "(same config; starts afresh if there is none)")
    existing.add_argument("--overwrite", action="store_const", const="overwrite", dest="exists",
                          help="replace the output of an earlier run in the directory")
    parser.set_defaults(exists="error")


def read_raw_config(args: argparse.Namespace, section: str) -> dict[str, Any]:
    """The config file with the ``--set`` overrides and ``--out`` applied (not resolved)."""
    from ddsolve.app.config import apply_overrides, read_toml

    raw = apply_overrides(read_toml(args.config), args.overrides)
    if args.out is not None:
        if not isinstance(raw.get(section, {}), Mapping):
            from ddsolve.schema import ConfigError

            raise ConfigError(section, f"must be a table of keys, got {raw[section]!r}")
        raw.setdefault(section, {})["out"] = args.out
    return raw


class RunCommand(Command):
    name = "run"
    help = "run one PDE from a TOML config"
    outputs = ("density.h5", "diagnostics.csv", "summary.json", "density.png", "diagnostics.png",
               "checkpoint.npz", "checkpoint.npz.tmp", "quantiles.h5")

    def add_arguments(self, parser):
        add_run_arguments(parser, "run", "model.beta=inf --set grid.cells=[100]")

    def run(self, args):
        from ddsolve.app.runner import run

        result = run(read_raw_config(args, "run"), progress=not args.quiet, exists=args.exists)
        if not args.quiet:
            s, final = result.summary, result.summary["final"]
            if result.status == "complete":
                print(f"ddsolve: the run in {result.out_dir} had completed; nothing to resume")
            elif s.get("resumed"):
                print(f"ddsolve: resumed at t={s['resumed']['t']:.6g} from the checkpoint in {result.out_dir}")
            solver = s.get("solver") or {}
            if solver.get("time"):
                method = solver.get("method")
                how = solver["time"] + (f" {method}" if solver["time"] not in ("explicit", method) else "")
                print(f"ddsolve: time stepping {how}: {solver.get('time_reason', '')}")
                if solver.get("tolerance_reason"):
                    print(f"ddsolve: tolerances {solver['tolerance_reason']}")
            print(f"ddsolve: t={final['t']:.6g} reached in {s['steps']} steps "
                  f"({s['wall_time']:.2f} s); free energy {final['free_energy']:.8g}, "
                  f"mass {final['mass']:.15g}; output in {result.out_dir}")
        return 0

    def check_config(self, raw):
        from ddsolve.app.config import resolve

        resolve(raw)
        return True


class ProblemsCommand(Command):
    name = "problems"
    help = "list problems, their parameters and the config keys"

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="show one problem only")

    def run(self, args):
        from ddsolve.app.config import describe_schema
        from ddsolve.laws.initial import describe_kinds
        from ddsolve.model.expressions import describe_grammar
        from ddsolve.problems import PROBLEMS, get_problem
        from ddsolve.problems.base import COMMON_PARAMS
        from ddsolve.schema import format_table

        if args.name is not None:
            print(get_problem(args.name).describe())
            return 0
        print('Problems: [model] problem = "<name>" and that problem\'s parameters.\n')
        print("Every problem takes (unless it says otherwise):\n" + format_table(COMMON_PARAMS, "    ") + "\n")
        print("\n\n".join(p.describe(common=False) for p in PROBLEMS.values()))
        print("\nInitial laws ([initial] kind = ..., default gaussian):\n")
        print(describe_kinds())
        print("\nOther sections:\n")
        print(describe_schema())
        print("\nExpressions (model.potential, model.interaction, initial.expression):\n")
        print(textwrap.fill(describe_grammar(), width=92, initial_indent="    ", subsequent_indent="    "))
        for command in commands().values():
            text = command.describe()
            if text:
                print(f"\n{text}")
        return 0
