"""``ddsolve steady CONFIG.toml [--out DIR] [--set KEY=VALUE ...] [--continue KEY=START:STOP]
[--guesses N] [--param KEY=V1,V2,...] [--quiet]``: the stationary states of a config
(:mod:`ddsolve.steady.runner`), owning the ``[steady]`` section."""

from __future__ import annotations

import argparse
from pathlib import Path

from ddsolve.app.builtin_commands import add_run_arguments, read_raw_config
from ddsolve.app.commands import Command

__all__ = ["SteadyCommand"]


class SteadyCommand(Command):
    name = "steady"
    help = "find, classify and continue the stationary states of a config"
    sections = ("steady",)
    outputs = ("states.csv", "branches.csv", "special_points.csv", "convergence.csv", "bifurcation.png",
               "summary.json")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser, "steady", "model.beta=3.0")
        parser.add_argument("--continue", dest="continuation", metavar="KEY=START:STOP",
                            help="pseudo-arclength continuation in a numeric [model] key, "
                                 "e.g. model.beta=1.0:4.0")
        parser.add_argument("--guesses", type=int, metavar="N",
                            help="randomised deflation restarts (overrides [steady] guesses)")
        parser.add_argument("--param", metavar="KEY=V1,V2,...",
                            help="repeat for each value and print the order table of the answers, "
                                 "e.g. grid.cells=100,200,400,800")

    def run(self, args: argparse.Namespace) -> int:
        from ddsolve.app.config import parse_param
        from ddsolve.schema import ConfigError
        from ddsolve.steady.config import parse_continue
        from ddsolve.steady.runner import steady

        raw = read_raw_config(args, "steady")
        cont = parse_continue(args.continuation) if args.continuation else None
        if args.guesses is not None and args.guesses < 0:
            raise ConfigError("--guesses", f"must be a non-negative integer, got {args.guesses}")
        if args.param:
            return self._converge(raw, args, cont, parse_param(args.param))
        result = steady(raw, continuation=cont, guesses=args.guesses, progress=not args.quiet,
                        exists=args.exists)
        if not args.quiet:
            self._report(result, cont)
        return 0

    @staticmethod
    def _report(result, cont) -> None:
        s = result.summary
        print(f"ddsolve: {len(result.states)} stationary state(s) from {s.get('guesses_tried', 0)} guesses "
              f"({s['wall_time']:.2f} s); output in {result.out_dir}")
        if "classification" in s:  # beta = inf
            for row in result.states:
                risk = f", risk {row['risk']:.10g}" if "risk" in row else ""
                print(f"  state {row['id']} ({row['kind']}): energy {row['energy']:.10g}{risk}, "
                      f"certificate gap {row['certificate_gap']:.3g}")
            print(f"  {s['classification']}")
            return
        for row in result.states:
            tag = "stable" if row["stable"] else f"unstable ({row['n_unstable']} direction(s))"
            print(f"  state {row['id']}: free energy {row['free_energy']:.10g}, residual {row['residual']:.2g}, "
                  f"{tag}")
        for sp in result.special:
            print(f"  {sp['description']}")

    def _converge(self, raw, args, cont, param) -> int:
        from ddsolve.app.config import apply_overrides
        from ddsolve.steady.convergence import format_table, order_table, quantities, write_convergence
        from ddsolve.steady.runner import steady

        key, values = param
        base = Path(raw.get("steady", {}).get("out", "runs/steady"))
        answers = []
        for v in values:
            sub = base / f"{key}={v}".replace("/", "_").replace(" ", "")
            res = steady(apply_overrides(raw, [(key, v)]), sub, continuation=cont, guesses=args.guesses,
                         exists=args.exists)
            answers.append(quantities(res, cont[0] if cont else None))
        rows = order_table(key, values, answers)
        path = write_convergence(base, rows, key)
        if not args.quiet:
            print(format_table(key, rows))
            print(f"ddsolve: order table in {path}")
        return 0

    def check_config(self, raw) -> bool:
        from ddsolve.app.config import _resolve_scheme, resolve
        from ddsolve.steady.config import resolve_steady

        resolve(raw, solver=False)
        _resolve_scheme(raw.get("scheme", {}))
        resolve_steady(raw.get("steady"))
        return True

    def describe(self) -> str:
        from ddsolve.steady.config import describe_steady

        return f"Stationary states (ddsolve steady):\n\n{describe_steady()}"
