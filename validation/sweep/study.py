"""A study on Dask: plan the runs, check one config per swept value, submit, stream the
results into ``sweep.csv``, resume.

:func:`plan` turns the sweep's settings into :class:`~validation.sweep.params.RunSpec`
(one per run, with its directory and resume key); :func:`precheck` resolves, in this
process, the config of the first point and of every point that differs from it in one
swept value, so that a key or value the config rejects fails at once with exit status 2
instead of once per run; :class:`Study` submits the runs that are not finished yet to a
``distributed.Client`` and writes the results as they complete.

The output directory::

    OUT/sweep.json        the sweep's settings, versions, scheduler and counts
    OUT/sweep.csv         one row per run, in study order (rewritten atomically)
    OUT/<name>-<hash8>/   one directory per run (the command's usual output, plus
                          sweep-done.json once it ended with status 0)

``sweep.csv`` columns: the swept keys (values as written), ``status`` (``ok``,
``failed``, ``pending`` while it has not finished, ``cancelled`` after Ctrl-C),
``exit_code``, ``wall_time`` (seconds of the whole command, in the worker), the final
diagnostics of the run's ``summary.json`` as ``final.<name>``, ``message`` (the failure's
one-line message) and ``dir`` (the run's directory, relative to OUT).
"""

from __future__ import annotations

import csv
import datetime
import logging
import os
import sys
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from ddsolve.schema import ConfigError
from validation.sweep.params import (
    SEED_KEYS,
    RunSpec,
    SweepParam,
    config_hash,
    parameter_points,
    resume_key,
    run_name,
)
from validation.sweep.worker import RunTask, execute, read_marker

__all__ = ["SweepSettings", "SweepOutcome", "plan", "precheck", "check_config", "Study",
           "dask_client", "write_csv", "CSV_FILE", "JSON_FILE", "STATUS_COLUMNS"]

CSV_FILE = "sweep.csv"
JSON_FILE = "sweep.json"
STATUS_COLUMNS = ("status", "exit_code", "wall_time")


@dataclass
class SweepSettings:
    """What ``ddsolve sweep`` was asked for.

    Attributes
    ----------
    config : Path
        The config file (made absolute).
    out : Path
        The sweep's output directory (made absolute).
    command : str
        The ddsolve subcommand each run executes.
    params : list of SweepParam
        The swept keys.
    zip_params : bool
        Zip the values instead of taking the Cartesian product.
    seeds : int, optional
        Replicas of each point with distinct seeds.
    seed_key : str, optional
        The config key the seeds go to (default by command, :data:`SEED_KEYS`).
    overrides : list of str
        ``--set`` strings applied to every run before the swept values.
    subprocess : bool
        Run each command as ``python -m ddsolve`` in the worker instead of in-process.
    command_args : tuple of str
        Arguments of the command itself, after the config (``converge --param ...``,
        ``steady --continue ...``); part of every run's identity.
    """

    config: Path
    out: Path
    command: str = "run"
    params: list[SweepParam] = field(default_factory=list)
    zip_params: bool = False
    seeds: int | None = None
    seed_key: str | None = None
    overrides: list[str] = field(default_factory=list)
    subprocess: bool = False
    command_args: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        """The command and its own arguments, as the resume keys see them."""
        return " ".join((self.command, *self.command_args))

    def __post_init__(self) -> None:
        self.config = Path(self.config).absolute()
        self.out = Path(self.out).absolute()
        if self.seeds is not None and self.seed_key is None:
            self.seed_key = SEED_KEYS.get(self.command)


@dataclass
class SweepOutcome:
    """How a study ended: its rows (one per run, in study order) and counts."""

    rows: list[dict[str, Any]]
    skipped: int
    submitted: int
    wall_time: float
    csv_path: Path

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "ok"]

    @property
    def ok(self) -> int:
        return sum(r["status"] == "ok" for r in self.rows)


# ---------------------------------------------------------------------------------------
# planning and checking
# ---------------------------------------------------------------------------------------
def _lookup(config: Mapping[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _base_config(settings: SweepSettings) -> dict[str, Any]:
    from ddsolve.app.config import apply_overrides, read_toml

    return apply_overrides(read_toml(settings.config), settings.overrides)


def plan(settings: SweepSettings) -> list[RunSpec]:
    """The runs of the study, in order (the first ``--param`` varies slowest, seeds fastest).

    Parameters
    ----------
    settings : SweepSettings

    Returns
    -------
    list of RunSpec

    Raises
    ------
    ConfigError
        For an unreadable config, a bad ``--set``, conflicting ``--param``/``--seeds``
        keys or two runs with the same config.
    """
    from ddsolve.app.config import apply_overrides

    base = _base_config(settings)
    seed0 = 0
    if settings.seeds is not None:
        if settings.seeds < 1:
            raise ConfigError("--seeds", f"must be a positive integer, got {settings.seeds}")
        if settings.seed_key is None:
            raise ConfigError("--seed-key", f"give the seed's config key for command {settings.command!r}")
        if any(p.key == settings.seed_key for p in settings.params):
            raise ConfigError("--seeds", f"{settings.seed_key} is also swept with --param; use one of the two")
        current = _lookup(base, settings.seed_key)
        if isinstance(current, int) and not isinstance(current, bool) and current >= 0:
            seed0 = current
    points = parameter_points(settings.params, settings.zip_params, settings.seeds,
                              settings.seed_key, seed0)
    specs: list[RunSpec] = []
    seen: dict[str, str] = {}
    for index, point in enumerate(points):
        pairs = [(key, text) for key, text, _ in point]
        config = apply_overrides(base, [(key, value) for key, _, value in point])
        digest = config_hash(settings.identity, config)
        name = run_name(pairs, digest)
        if digest in seen:
            raise ConfigError("--param", f"runs {seen[digest]} and {name} have the same config")
        seen[digest] = name
        overrides = list(settings.overrides) + [f"{key}={text}" for key, text in pairs]
        specs.append(RunSpec(index, pairs, overrides, config, name, resume_key(settings.identity, config)))
    return specs


def check_config(command: str, raw: Mapping[str, Any]) -> bool:
    """Resolve ``raw`` as ``command`` would, without running anything.

    The command's own :meth:`~ddsolve.app.commands.Command.check_config` does it; a
    command without one is not checked (its runs report their own errors).

    Returns
    -------
    bool
        Whether a check was made.

    Raises
    ------
    ConfigError
        If the config is invalid.
    """
    from ddsolve.app.commands import commands

    with warnings.catch_warnings():  # the runs themselves report their warnings
        warnings.simplefilter("ignore")
        return bool(commands()[command].check_config(raw))


def _relates(err_key: str, key: str) -> bool:
    return err_key == key or err_key.startswith(key + ".") or key.startswith(err_key + ".")


def precheck(settings: SweepSettings, specs: Sequence[RunSpec]) -> int:
    """Resolve the config of the first run and of every run that differs from it in one
    swept value (with ``--zip``: every point); returns how many configs were checked
    (0 for a command :func:`check_config` cannot check).

    Raises
    ------
    ConfigError
        On ``--param`` (or ``--seeds``) naming the swept value that the config rejects,
        or with the config's own key when the file or ``--set`` is at fault.
    """
    if not specs:
        return 0
    seed_key = settings.seed_key if settings.seeds is not None else None
    first = specs[0]
    base = dict(first.settings)
    if settings.zip_params:
        chosen = list(specs[::settings.seeds or 1])
    else:
        chosen, covered = [first], set(first.settings)
        for spec in specs[1:]:
            diff = [(k, t) for k, t in spec.settings if base[k] != t]
            if len(diff) == 1 and diff[0][0] != seed_key and diff[0] not in covered:
                covered.add(diff[0])
                chosen.append(spec)
    for spec in chosen:
        try:
            if not check_config(settings.command, spec.config):
                return 0
        except ConfigError as err:
            if spec is first:
                culprits = [(k, t) for k, t in first.settings if _relates(err.key, k)]
                if not culprits:
                    raise
                flag = "--seeds" if all(k == seed_key for k, _ in culprits) else "--param"
            else:
                culprits = [(k, t) for k, t in spec.settings if base[k] != t]
                flag = "--param"
            where = ", ".join(f"{k}={t}" for k, t in culprits)
            raise ConfigError(flag, f"{where}: {err}") from None
    return len(chosen)


# ---------------------------------------------------------------------------------------
# the client
# ---------------------------------------------------------------------------------------
def _ignore_sigint() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class _IgnoreInterrupt(WorkerPlugin):
    """Worker plugin: the local workers ignore SIGINT. A Ctrl-C in the terminal reaches
    the whole process group; the sweep (the client) handles it and closes the cluster,
    which stops the workers, instead of each worker dying with a traceback."""

    def setup(self, worker: Any) -> None:
        loop = getattr(worker, "loop", None)
        if loop is not None:  # the worker's event loop runs in the process's main thread
            loop.add_callback(_ignore_sigint)
        else:  # pragma: no cover
            _ignore_sigint()


@contextmanager
def dask_client(scheduler: str | None = None, workers: int = 2) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler`` (``tcp://HOST:PORT``) if given,
    else to a new ``LocalCluster`` of ``workers`` processes with one thread each (and
    ``NUMBA_NUM_THREADS=1`` unless set, and Dask's sampling profiler off), closed on
    exit. The local cluster's own log messages are silenced (a failing run is reported
    in its row of ``sweep.csv``, an error of Dask itself as the failure of the run it
    hit), so that stopping it with runs in progress prints nothing. For workers of an
    existing scheduler, ``distributed.worker.profile.enabled: false`` in their Dask
    config avoids the profiler's cost.

    Raises
    ------
    ConfigError
        On ``--scheduler`` if it cannot be reached, on ``--workers`` if not positive.
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as err:
            raise ConfigError("--scheduler", f"cannot connect to {scheduler}: {err}") from None
        try:
            yield client
        finally:
            client.close()
        return
    if workers < 1:
        raise ConfigError("--workers", f"must be a positive integer, got {workers}")
    env = {"NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS", "1")}
    # no dashboard; the scheduler's HTTP endpoint on a free port (not 8787, maybe taken);
    # no statistical profiler in the workers: sampling the run's stack every 10 ms made
    # runs about 10% slower than outside Dask (benchmarks/bench_sweep.py)
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                               silence_logs=logging.CRITICAL, env=env)
    client = Client(cluster)
    client.register_plugin(_IgnoreInterrupt(), name="ddsolve-sweep-ignore-sigint")
    try:
        yield client
    finally:
        client.close()
        cluster.close()


# ---------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], params: Sequence[str]) -> None:
    """Write ``rows`` to ``path`` atomically (a temporary file in the same directory,
    then ``os.replace``); columns as in the module docstring."""
    finals: dict[str, None] = {}
    for row in rows:
        for k in row.get("final", {}):
            finals.setdefault(k, None)
    columns = [*params, *STATUS_COLUMNS, *(f"final.{k}" for k in finals), "message", "dir"]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            final = row.get("final", {})
            writer.writerow([*(row["params"].get(k, "") for k in params),
                             *(_cell(row.get(k)) for k in STATUS_COLUMNS),
                             *(_cell(final.get(k)) for k in finals),
                             _cell(row.get("message")), row["dir"]])
    os.replace(tmp, path)


def _versions() -> dict[str, str]:
    from importlib import metadata

    from ddsolve.app.io import package_versions

    out = dict(package_versions())
    for name in ("dask", "distributed"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[name] = "unknown"
    out["python"] = sys.version.split()[0]
    return out


def _settings_record(settings: SweepSettings, scheduler: str) -> dict[str, Any]:
    return {"config": str(settings.config), "command": settings.command,
            "params": {p.key: list(p.texts) for p in settings.params},
            "zip": settings.zip_params, "seeds": settings.seeds,
            "seed_key": settings.seed_key if settings.seeds is not None else None,
            "overrides": list(settings.overrides), "command_args": list(settings.command_args),
            "out": str(settings.out),
            "subprocess": settings.subprocess, "scheduler": scheduler}


def _result_fields(result: Mapping[str, Any]) -> dict[str, Any]:
    fields = {k: result.get(k) for k in ("status", "exit_code", "wall_time", "message")}
    fields["final"] = dict(result.get("final") or {})
    return fields


def _marker_result(out_dir: Path, key: str) -> dict[str, Any] | None:
    """The result in ``out_dir``'s completion marker if it has resume key ``key``."""
    marker = read_marker(out_dir)
    result = marker.get("result") if marker and marker.get("key") == key else None
    return result if isinstance(result, dict) and result.get("status") == "ok" else None


class Study:
    """The runs of one sweep, their rows and the files ``sweep.csv`` / ``sweep.json``.

    Parameters
    ----------
    settings : SweepSettings
    specs : sequence of RunSpec
        From :func:`plan`.
    scheduler : str
        Description of the scheduler for ``sweep.json``.

    Examples
    --------
    >>> study = Study(settings, plan(settings))                  # doctest: +SKIP
    >>> with dask_client() as client:                            # doctest: +SKIP
    ...     outcome = study.run(client)
    """

    def __init__(self, settings: SweepSettings, specs: Sequence[RunSpec], scheduler: str = "") -> None:
        self.settings = settings
        self.specs = list(specs)
        self.params = [k for k, _ in self.specs[0].settings] if self.specs else []
        self.csv_path = settings.out / CSV_FILE
        self.rows: list[dict[str, Any]] = [
            {"params": dict(spec.settings), "status": "pending", "exit_code": None, "wall_time": None,
             "final": {}, "message": "", "dir": spec.name} for spec in self.specs]
        self.record: dict[str, Any] = {**_settings_record(settings, scheduler), "runs": len(self.specs)}
        self.skipped = self.submitted = 0
        self._start = time.perf_counter()

    def save(self, status: str | None = None) -> None:
        """Write ``sweep.csv``; with ``status``, also ``sweep.json`` with the counts."""
        self.settings.out.mkdir(parents=True, exist_ok=True)
        write_csv(self.csv_path, self.rows, self.params)
        if status is not None:
            from ddsolve.app.io import write_json

            self.record.update(status=status, finished=_now(),
                               wall_time=time.perf_counter() - self._start,
                               **{s: sum(r["status"] == s for r in self.rows) for s in ("ok", "failed",
                                                                                          "cancelled")})
            write_json(self.settings.out / JSON_FILE, self.record)

    def run(self, client: Any, *, progress: bool = False) -> SweepOutcome:
        """Run the unfinished runs on ``client``; write the results as they complete.

        A run whose directory holds a completion marker with its resume key is not
        submitted (its row comes from the marker). The others are submitted with distinct
        keys (``pure=False``) and their results taken as they complete
        (``distributed.as_completed``); ``sweep.csv`` is rewritten atomically after each
        one (a burst of results already waiting is written once, at most a second late).
        An error of Dask itself (a worker that died, ...) is that run's failure, with the
        error as its message.

        Parameters
        ----------
        client : distributed.Client
        progress : bool
            A tqdm bar over the runs on stderr (only if stderr is a terminal).

        Returns
        -------
        SweepOutcome

        Raises
        ------
        KeyboardInterrupt
            After cancelling the futures and writing ``sweep.csv`` (unfinished runs
            ``cancelled``); call :meth:`interrupted` once the workers are stopped.
        """
        from distributed import as_completed

        from ddsolve.app.io import show_progress, write_json

        self._start = time.perf_counter()
        out = self.settings.out
        out.mkdir(parents=True, exist_ok=True)
        todo: list[RunSpec] = []
        for spec, row in zip(self.specs, self.rows):
            result = _marker_result(out / spec.name, spec.key)
            if result is not None:
                row.update(_result_fields(result))
            else:
                todo.append(spec)
        self.skipped, self.submitted = len(self.specs) - len(todo), len(todo)
        self.record.update(skipped=self.skipped, submitted=self.submitted, status="running",
                           started=_now(), versions=_versions())
        write_json(out / JSON_FILE, self.record)
        self.save()
        bar = None
        if show_progress(progress) and todo:
            from tqdm import tqdm

            bar = tqdm(total=len(self.specs), initial=self.skipped, unit="run", desc="sweep",
                       file=sys.stderr, leave=False)
        futures: dict[Any, int] = {}
        try:
            for spec in todo:
                task = RunTask(self.settings.command, str(self.settings.config), tuple(spec.overrides),
                               str(out / spec.name), spec.key, self.settings.subprocess,
                               tuple(self.settings.command_args))
                key = f"ddsolve-{self.settings.command}-{spec.name}-{uuid.uuid4().hex[:8]}"
                futures[client.submit(execute, task, pure=False, key=key)] = spec.index
            stream = as_completed(list(futures))
            last_write, failures = time.perf_counter(), 0
            for future in stream:
                row = self.rows[futures[future]]
                try:
                    result = future.result()
                except Exception as err:  # noqa: BLE001 - Dask's own errors fail the run, not the sweep
                    result = {"status": "failed", "exit_code": None,
                              "message": f"{type(err).__name__}: {' '.join(str(err).split())}"}
                row.update(_result_fields(result))
                failures += row["status"] != "ok"
                if bar is not None:
                    bar.set_postfix_str(f"{failures} failed" if failures else "", refresh=False)
                    bar.update()
                if not stream.has_ready() or time.perf_counter() - last_write > 1.0:
                    self.save()
                    last_write = time.perf_counter()
                future.release()
        except KeyboardInterrupt:
            client.cancel(list(futures))
            for row in self.rows:
                if row["status"] == "pending":
                    row["status"] = "cancelled"
            self.save("interrupted")
            raise
        finally:
            if bar is not None:
                bar.close()
        self.save("done")
        return SweepOutcome(self.rows, self.skipped, self.submitted, time.perf_counter() - self._start,
                            self.csv_path)

    def interrupted(self) -> str:
        """After Ctrl-C, once the workers stopped: take the rows of runs that finished
        while the sweep was stopping from their markers, write the files and return the
        one-line message."""
        for spec, row in zip(self.specs, self.rows):
            if row["status"] == "cancelled":
                result = _marker_result(self.settings.out / spec.name, spec.key)
                if result is not None:
                    row.update(_result_fields(result))
        self.save("interrupted")
        done = sum(r["status"] in ("ok", "failed") for r in self.rows)
        return (f"sweep interrupted by the user: {done} of {len(self.rows)} runs finished; "
                f"see {self.csv_path}")
