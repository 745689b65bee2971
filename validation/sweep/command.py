"""``ddsolve sweep CONFIG.toml --param KEY=V1,V2,... [...]``: a study on Dask.

Registered with ddsolve through the entry-point group ``ddsolve.commands``; the core
never imports it. Exit status: 0 when every run ended with status 0, 3 when some did not
(the count is on stderr), 2 for invalid arguments or a config that rejects a swept
value (checked before anything is submitted), 130 on Ctrl-C (futures cancelled,
``sweep.csv`` consistent).
"""

from __future__ import annotations

import argparse
import sys

from ddsolve.app.commands import Command

__all__ = ["SweepCommand"]


def _split_args(text: str) -> list[str]:
    import shlex

    from ddsolve.schema import ConfigError

    try:
        items = shlex.split(text)
    except ValueError as err:
        raise ConfigError("--command-args", f"cannot split {text!r}: {err}") from None
    if any(a in ("--out", "--set", "--quiet") for a in items):
        raise ConfigError("--command-args", "--out, --set and --quiet are the sweep's own; give --set to the sweep")
    if any(a in ("--resume", "--overwrite") for a in items):
        raise ConfigError("--command-args", "--resume and --overwrite are the sweep's own: a redone run "
                                            "resumes from its checkpoint (run, particles) or overwrites")
    return items


class SweepCommand(Command):
    """Run a config for every point of a parameter grid, on a Dask cluster (:mod:`validation.sweep`)."""

    name = "sweep"
    help = "run a config over a parameter grid (and seeds) on a Dask cluster, with resume"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", metavar="CONFIG.toml", help="config file")
        parser.add_argument("--param", metavar="KEY=V1,V2,...", action="append", default=[], dest="params",
                            help="a swept key and its values (TOML, split at top-level commas), e.g. "
                                 "--param model.beta=2,3,4 --param grid.cells=[100],[200]; several "
                                 "--param form the Cartesian product")
        parser.add_argument("--zip", action="store_true", dest="zip_params",
                            help="take the i-th value of every --param together instead of the product")
        parser.add_argument("--seeds", type=int, metavar="K",
                            help="run every point K times with the seed key set to seed0, seed0+1, ... "
                                 "(seed0: the config's value, default 0)")
        parser.add_argument("--seed-key", metavar="KEY",
                            help="the config key --seeds sets (default: run.seed for run, steady.seed "
                                 "for steady, particles.seed for particles, validate and converge)")
        parser.add_argument("--command", default="run", dest="run_command", metavar="NAME",
                            help="the ddsolve command each run executes: run (default), particles, "
                                 "validate, converge, steady")
        parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                            help="override a config key in every run (values are TOML)")
        parser.add_argument("--out", metavar="DIR",
                            help="output directory: sweep.csv, sweep.json and one directory per run "
                                 "(default sweep-<config name>)")
        parser.add_argument("--scheduler", metavar="ADDRESS",
                            help="an existing Dask scheduler, e.g. tcp://HOST:8786 (default: a local "
                                 "cluster of --workers processes)")
        parser.add_argument("--workers", type=int, metavar="N",
                            help="worker processes of the local cluster, one thread each (default 2)")
        parser.add_argument("--subprocess", action="store_true",
                            help="run each command as 'python -m ddsolve' in its worker instead of "
                                 "in the worker's process (isolates crashes; slower)")
        parser.add_argument("--command-args", metavar="'ARGS'", default="",
                            help="the command's own arguments, one string, given with '=': "
                                 "--command-args='--param grid.cells=50,100,200' for converge")
        parser.add_argument("--quiet", action="store_true", help="no progress bar or summary line")

    def run(self, args: argparse.Namespace) -> int:
        from pathlib import Path

        from ddsolve.app.commands import commands
        from ddsolve.app.lifecycle import EXIT_FAILURE, EXIT_OK
        from ddsolve.schema import ConfigError
        from validation.sweep.params import parse_param
        from validation.sweep.study import Study, SweepSettings, dask_client, plan, precheck

        if args.run_command in ("sweep", "problems") or args.run_command not in commands():
            allowed = ", ".join(c for c in commands() if c not in ("sweep", "problems"))
            raise ConfigError("--command", f"unknown command {args.run_command!r}; allowed: {allowed}")
        if args.scheduler is not None and args.workers is not None:
            raise ConfigError("--workers", "sets the size of the local cluster; not with --scheduler")
        workers = 2 if args.workers is None else args.workers
        if workers < 1:
            raise ConfigError("--workers", f"must be a positive integer, got {workers}")
        params = [parse_param(text) for text in args.params]
        out = args.out if args.out is not None else f"sweep-{Path(args.config).stem}"
        settings = SweepSettings(Path(args.config), Path(out), args.run_command, params,
                                 args.zip_params, args.seeds, args.seed_key, list(args.overrides),
                                 args.subprocess, tuple(_split_args(args.command_args)))
        specs = plan(settings)
        precheck(settings, specs)
        scheduler = args.scheduler or f"LocalCluster({workers} workers x 1 thread)"
        study = Study(settings, specs, scheduler)
        try:
            with dask_client(args.scheduler, workers) as client:
                outcome = study.run(client, progress=not args.quiet)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(study.interrupted()) from None
        failed = outcome.failed
        done = (f"{outcome.submitted} ran, {outcome.skipped} done earlier, {outcome.wall_time:.1f} s")
        if failed:
            by_code: dict[str, int] = {}
            for row in failed:
                code = "?" if row["exit_code"] is None else str(row["exit_code"])
                by_code[code] = by_code.get(code, 0) + 1
            codes = ", ".join(f"exit {c}: {n}" for c, n in sorted(by_code.items()))
            print(f"ddsolve: sweep: {len(failed)} of {len(outcome.rows)} runs failed ({codes}), "
                  f"{outcome.ok} ok ({done}); see {outcome.csv_path}", file=sys.stderr)
            return EXIT_FAILURE
        if not args.quiet:
            print(f"ddsolve: sweep: all {len(outcome.rows)} runs ok ({done}); results in {outcome.csv_path}")
        return EXIT_OK

