"""``ddsolve validate CONFIG.toml [--n 200,800,3200] [--seeds 5] [--out DIR] [--set ...] [--quiet]``.

Runs the PDE and the particle method of one config and writes the report directory of
:mod:`validation.validate.report`. Exit status 0 when every check of
``[validate.tolerance]`` / ``[validate.slope]`` passes (or none is given), 1 when a check
fails (the report says which), and the usual 2 / 3 / 130 otherwise. Registered through
the ``ddsolve.commands`` entry points; owns the ``[validate]`` section.
"""

from __future__ import annotations

import argparse

from ddsolve.app.builtin_commands import add_run_arguments, read_raw_config
from ddsolve.app.commands import Command

__all__ = ["ValidateCommand", "EXIT_CHECK_FAILED"]

EXIT_CHECK_FAILED = 1


def final_numbers(result) -> dict:
    """The numbers ``summary.json`` keeps (and a sweep tabulates): whether every check
    passed and the seed means of each distance and gap at the largest N and last time."""
    n, t = max(result.ns), max(result.times)
    out = {"passed": result.passed, "checks_failed": sum(not r["passed"] for r in result.results)}
    for s in result.summary:
        if s["n"] == n and s["t"] == t and not s["metric"].endswith(("_pde", "_particles")):
            out[s["metric"]] = s["mean"]
    return out


class ValidateCommand(Command):
    """Particles vs PDE report."""

    name = "validate"
    help = "run the PDE and the particles of one config and write a comparison report"
    sections = ("validate",)
    outputs = ("report.md", "metrics.csv", "summary.csv", "density_particles.png", "curves.png", "summary.json")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser, "validate", "validate.seeds=5")
        parser.add_argument("--n", metavar="N1,N2,...", help="particle numbers (overrides [validate] n)")
        parser.add_argument("--seeds", type=int, metavar="K", help="runs per N (overrides [validate] seeds)")

    def run(self, args: argparse.Namespace) -> int:
        from ddsolve.schema import ConfigError

        from .report import write_report
        from .study import validate

        ns = None
        if args.n is not None:
            try:
                ns = [int(v) for v in args.n.split(",") if v.strip()]
                if not ns or min(ns) < 1:
                    raise ValueError
            except ValueError:
                raise ConfigError("--n", f"must be positive integers separated by commas, got {args.n!r}") from None
        if args.seeds is not None and args.seeds < 1:
            raise ConfigError("--seeds", f"must be a positive integer, got {args.seeds}")
        raw = read_raw_config(args, "validate")
        say = None if args.quiet else (lambda msg: print(f"  {msg}", flush=True))
        from ddsolve.app.lifecycle import RunRecord

        from .config import resolve_validate

        if "particles" not in raw:  # before the directory is touched: nothing is written
            raise ConfigError("particles", "validate needs a [particles] section")
        out = resolve_validate(raw.get("validate")).get("out")
        # no checkpoint: --resume starts the study again, like --overwrite
        exists = "overwrite" if args.exists == "resume" else args.exists
        record = RunRecord(out, "validate.out", raw, exists=exists, command="validate")
        with record.running(now=lambda: None):
            result = validate(raw, ns=ns, seeds=args.seeds, progress=say)
            paths = write_report(result)
        record.finish(final=final_numbers(result), checks=result.results)
        if not args.quiet:
            for r in result.results:
                print(f"  {'PASS' if r['passed'] else 'FAIL'} {r['check']}: {r['value']:.4g} ({r['where']})")
            print(f"ddsolve: validate: {len(result.ns)} N x {len(result.seeds)} seeds against the PDE; "
                  f"{'all checks passed' if result.passed else 'SOME CHECKS FAILED'}; report {paths['report']}")
        return 0 if result.passed else EXIT_CHECK_FAILED

    def check_config(self, raw) -> bool:
        from ddsolve.app.commands import commands
        from ddsolve.app.config import resolve
        from ddsolve.schema import ConfigError

        from .config import resolve_validate

        if "particles" not in raw:
            raise ConfigError("particles", "validate needs a [particles] section")
        resolve_validate(raw.get("validate"))
        resolve({k: v for k, v in raw.items() if k != "validate"})
        return commands()["particles"].check_config(raw)

    def describe(self) -> str:
        from .config import describe_validate

        return f"Particles vs PDE (ddsolve validate):\n\n{describe_validate()}"
