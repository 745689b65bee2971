"""The ``ddsolve`` command (DESIGN.md §4).

::

    ddsolve run CONFIG.toml [--out DIR] [--set key=value ...] [--quiet]
    ddsolve particles CONFIG.toml [--out DIR] [--set key=value ...] [--quiet]
    ddsolve problems [NAME]

``ddsolve particles`` runs the finite-N dynamics of the top-level :mod:`particles`
package on the same config (the one place where ddsolve reaches into ``particles``: a
lazy import in the command, so the core never depends on it).

Exit status: 0 success; 2 invalid config or arguments (one line on stderr,
``ddsolve: error: <key>: <message>``); 3 numerical failure (what and when; the partial
output stays on disk); 130 interrupted by the user.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import warnings
from collections.abc import Sequence

from . import __version__

__all__ = ["main", "EXIT_OK", "EXIT_CONFIG", "EXIT_FAILURE", "EXIT_INTERRUPTED"]

EXIT_OK, EXIT_CONFIG, EXIT_FAILURE, EXIT_INTERRUPTED = 0, 2, 3, 130


class _UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D102 - argparse hook
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ddsolve", description="Finite-volume solver for distributional "
                                                 "dynamics / McKean-Vlasov equations.")
    parser.add_argument("--version", action="version", version=f"ddsolve {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser("run", help="run one PDE from a TOML config")
    run.add_argument("config", metavar="CONFIG.toml", help="config file")
    run.add_argument("--out", metavar="DIR", help="output directory (overrides [run] out)")
    run.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                     help="override a config key, e.g. --set model.beta=inf --set grid.cells=[100] "
                          "(values are TOML; bare words are strings)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    part = sub.add_parser("particles", help="run finite-N particle dynamics (SGD, Langevin, agents) "
                                           "from a TOML config with a [particles] section")
    part.add_argument("config", metavar="CONFIG.toml", help="config file")
    part.add_argument("--out", metavar="DIR", help="output directory (overrides [particles] out)")
    part.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                      help="override a config key, e.g. --set particles.n=2000")
    part.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    problems = sub.add_parser("problems", help="list problems, their parameters and the config keys")
    problems.add_argument("name", nargs="?", help="show one problem only")
    return parser


def _error(message: str) -> int:
    print(f"ddsolve: error: {message}", file=sys.stderr)
    return EXIT_CONFIG


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import apply_overrides, read_toml, resolve
    from .problems.base import ConfigError
    from .runner import RunInterrupted, run
    from .solvers import SolverFailure

    out_dir = None
    try:
        raw = apply_overrides(read_toml(args.config), args.overrides)
        if args.out is not None:
            raw.setdefault("run", {})["out"] = args.out
        config = resolve(raw)
        out_dir = config["run"]["out"]
        result = run(config, progress=not args.quiet)
    except ConfigError as err:
        return _error(str(err))
    except SolverFailure as err:
        print(f"ddsolve: numerical failure at t={err.t:.6g}: {err}; partial output in {out_dir}",
              file=sys.stderr)
        return EXIT_FAILURE
    except RunInterrupted as err:
        print(f"ddsolve: {err}; partial output in {out_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        final = result.summary["final"]
        print(f"ddsolve: t={final['t']:.6g} reached in {result.summary['steps']} steps "
              f"({result.summary['wall_time']:.2f} s); free energy {final['free_energy']:.8g}, "
              f"mass {final['mass']:.15g}; output in {result.out_dir}")
    return EXIT_OK


def _cmd_particles(args: argparse.Namespace) -> int:
    from .config import apply_overrides, read_toml
    from .problems.base import ConfigError

    try:
        from particles.base import ParticleFailure
        from particles.runner import ParticleRunInterrupted, run_particles
    except ImportError as err:  # pragma: no cover - the package ships both
        print(f"ddsolve: the particles package is not importable: {err}", file=sys.stderr)
        return EXIT_FAILURE
    out_dir = None
    try:
        raw = apply_overrides(read_toml(args.config), args.overrides)
        if args.out is not None:
            raw.setdefault("particles", {})["out"] = args.out
        out_dir = raw.get("particles", {}).get("out", "out-particles") if isinstance(raw.get("particles"), dict) else None
        result = run_particles(raw, progress=not args.quiet)
    except ConfigError as err:
        return _error(str(err))
    except ParticleFailure as err:
        print(f"ddsolve: numerical failure at t={err.t:.6g}: {err}; partial output in {out_dir}",
              file=sys.stderr)
        return EXIT_FAILURE
    except ParticleRunInterrupted as err:
        print(f"ddsolve: {err}; partial output in {out_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        s = result.summary
        final = s["final"]
        extra = "".join(f", {k} {final[k]:.8g}" for k in ("risk", "loss", "energy") if k in final)
        print(f"ddsolve: {s['dynamics']['method']}: t={final['t']:.6g} reached in {s['steps']} steps "
              f"({s['wall_time']:.2f} s){extra}; output in {result.out_dir}")
    return EXIT_OK


def _cmd_problems(args: argparse.Namespace) -> int:
    from .config import describe_schema
    from .expressions import describe_grammar
    from .initial import describe_kinds
    from .problems import PROBLEMS, get_problem
    from .problems.base import COMMON_PARAMS, ConfigError, format_table

    if args.name is not None:
        try:
            print(get_problem(args.name).describe())
        except ConfigError as err:
            return _error(str(err))
        return EXIT_OK
    print('Problems: [model] problem = "<name>" and that problem\'s parameters.\n')
    print("Every problem takes (unless it says otherwise):\n" + format_table(COMMON_PARAMS, "    ") + "\n")
    print("\n\n".join(p.describe(common=False) for p in PROBLEMS.values()))
    print("\nInitial laws ([initial] kind = ..., default gaussian):\n")
    print(describe_kinds())
    print("\nOther sections:\n")
    print(describe_schema())
    print("\nExpressions (model.potential, model.interaction, initial.expression):\n")
    print(textwrap.fill(describe_grammar(), width=92, initial_indent="    ", subsequent_indent="    "))
    try:
        from particles.config import describe_particles
    except ImportError:  # pragma: no cover
        return EXIT_OK
    print("\nParticle runs (ddsolve particles):\n")
    print(describe_particles())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ddsolve`` command; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as err:
        return _error(str(err))
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    commands = {"run": _cmd_run, "particles": _cmd_particles, "problems": _cmd_problems}
    if args.command not in commands:
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return commands[args.command](args)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr, without source location."""
    print(f"ddsolve: warning: {message}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
