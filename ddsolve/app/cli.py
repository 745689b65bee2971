"""The ``ddsolve`` command.

::

    ddsolve run CONFIG.toml [--out DIR] [--set key=value ...] [--quiet]
    ddsolve problems [NAME]
    ddsolve <command> ...        every command registered in the ddsolve.commands group

The subcommands come from :mod:`ddsolve.app.commands` (``ddsolve particles`` is
registered by the top-level :mod:`particles` package through an entry point, so this
module imports neither ``particles`` nor ``validation``).

Exit status: 0 success; 2 invalid config or arguments (one line on stderr,
``ddsolve: error: <key>: <message>``); 3 numerical failure (what and when; the partial
output stays on disk); 130 interrupted by the user (:mod:`ddsolve.app.lifecycle`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from ddsolve import __version__
from ddsolve.app.commands import commands
from ddsolve.app.lifecycle import EXIT_CONFIG, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, exit_status

__all__ = ["main", "EXIT_OK", "EXIT_CONFIG", "EXIT_FAILURE", "EXIT_INTERRUPTED"]


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
    for name, command in commands().items():
        command.add_arguments(sub.add_parser(name, help=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ddsolve`` command; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as err:
        print(f"ddsolve: error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    if args.command not in commands():
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return commands()[args.command].run(args)
        except Exception as err:  # noqa: BLE001 - exit_status re-raises what it does not know
            return exit_status(err)
        except KeyboardInterrupt as err:
            return exit_status(err)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr, without source location."""
    print(f"ddsolve: warning: {message}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
