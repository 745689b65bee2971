"""What a Dask worker does for one run of a sweep.

:func:`execute` runs ``ddsolve <command> CONFIG --out DIR --set ... --quiet`` and returns
how it ended: the exit status, the one-line message of a failure (the last ``ddsolve:``
line the run wrote on stderr), the wall time and the final diagnostics of the run's
``summary.json``. By default the command runs in the worker's own process through
:func:`ddsolve.app.cli.main`, with stdout and stderr captured, so the interpreter start,
the imports and the numba cache loads are paid once per worker, not once per run; with
``subprocess=True`` it runs as ``python -m ddsolve ...`` (slower, but a crash of the run
cannot take the worker down).

A run that ends with status 0 gets a completion marker, ``sweep-done.json`` in its
directory, holding the resume key and the result; it is written atomically (temporary
file, then ``os.replace``) after everything else, so a run killed at any moment has
either a complete output and a marker or no marker. Any older marker is removed before
the run starts. A failed run leaves its captured stderr in ``sweep-stderr.txt``.

A run that is redone (after a failure, a kill, a Ctrl-C of the sweep) meets a directory
holding an earlier run's files, which every command refuses by default
(:mod:`ddsolve.app.outdir`). The worker therefore passes ``--resume`` to the commands that
checkpoint (``run``, ``particles``: the run continues from its checkpoint, or starts
afresh if there is none) and ``--overwrite`` to the others (``steady``, ``converge``,
``validate``), :data:`EXISTS_FLAGS`. A directory held by a run still going on (another
sweep into the same ``--out``) is left alone: that run fails with exit status 2.

In-process runs change process-wide state (``sys.stdout``/``sys.stderr``, warning
filters), so a worker process runs one of them at a time (a lock); give workers one
thread each, or use ``subprocess=True`` for workers with several threads.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess as _subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MARKER_FILE", "STDERR_FILE", "EXISTS_FLAGS", "RunTask", "command_argv", "execute",
           "read_marker", "final_diagnostics", "failure_message"]

MARKER_FILE = "sweep-done.json"
STDERR_FILE = "sweep-stderr.txt"
EXISTS_FLAGS = {"run": "--resume", "particles": "--resume", "steady": "--overwrite",
                "converge": "--overwrite", "validate": "--overwrite"}
"""What a redone run does with its directory's earlier files, by command (other commands
get no flag)."""

_LOCK = threading.Lock()


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs for one run (plain data, cheap to send).

    Attributes
    ----------
    command : str
        The ddsolve subcommand (``run``, ``particles``, ...).
    config : str
        Absolute path of the config file (workers must see the same file system).
    overrides : tuple of str
        ``--set`` strings, applied in order.
    out_dir : str
        Absolute path of the run's output directory.
    key : str
        Resume key, stored in the completion marker.
    subprocess : bool
        Run as ``python -m ddsolve`` instead of in the worker's process.
    args : tuple of str
        The command's own arguments, placed after the config.
    """

    command: str
    config: str
    overrides: tuple[str, ...]
    out_dir: str
    key: str
    subprocess: bool = False
    args: tuple[str, ...] = ()


def command_argv(task: RunTask) -> list[str]:
    """The ``ddsolve`` arguments of ``task`` (without the program name), with the
    command's :data:`EXISTS_FLAGS` entry."""
    flag = EXISTS_FLAGS.get(task.command)
    argv = [task.command, task.config, *task.args, "--out", task.out_dir, "--quiet",
            *([flag] if flag else [])]
    for item in task.overrides:
        argv += ["--set", item]
    return argv


def failure_message(stderr: str) -> str:
    """The one-line message of a failed run: the last ``ddsolve:`` line of its stderr that
    is not a warning, else its last non-empty line (e.g. a traceback's last line)."""
    lines = [" ".join(line.split()) for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("ddsolve:") and not line.startswith("ddsolve: warning:"):
            return line
    return lines[-1] if lines else ""


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif value is None or isinstance(value, (bool, int, float, str)):
        out[prefix] = value


def final_diagnostics(out_dir: str | Path) -> dict[str, Any]:
    """The ``final`` dict of ``out_dir/summary.json`` flattened to scalars (nested keys
    joined by dots, lists left out); empty when there is no summary or no final row."""
    path = Path(out_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    final = summary.get("final") if isinstance(summary, dict) else None
    out: dict[str, Any] = {}
    if isinstance(final, dict):
        _flatten("", final, out)
    return out


def read_marker(out_dir: str | Path) -> dict[str, Any] | None:
    """The completion marker of a run directory, or None if absent or unreadable."""
    try:
        data = json.loads((Path(out_dir) / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _in_use(out_dir: Path) -> str:
    """The message of the lock refusal if a run holds ``out_dir``, else ``""``."""
    from ddsolve.app.outdir import DirectoryLock
    from ddsolve.schema import ConfigError

    try:
        DirectoryLock(out_dir, "--out").release()
    except ConfigError as err:
        return str(err)
    return ""


def _in_process(task: RunTask) -> tuple[int, str, str]:
    """Exit status, captured stderr and (for an exception) its traceback."""
    from ddsolve.app.cli import main

    err, out = io.StringIO(), io.StringIO()
    with _LOCK:
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                code = int(main(command_argv(task)))
        except Exception as exc:  # noqa: BLE001 - a bug in the run is its result, not the worker's
            text = err.getvalue() + "".join(traceback.format_exception(exc))
            return 1, text, f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return code, err.getvalue(), ""


def _as_subprocess(task: RunTask) -> tuple[int, str, str]:
    proc = _subprocess.run([sys.executable, "-m", "ddsolve", *command_argv(task)],
                           stdout=_subprocess.DEVNULL, stderr=_subprocess.PIPE, text=True)
    return proc.returncode, proc.stderr, ""


def execute(task: RunTask) -> dict[str, Any]:
    """Run one task and report how it ended (see the module docstring).

    Parameters
    ----------
    task : RunTask

    Returns
    -------
    dict
        ``status`` (``"ok"`` or ``"failed"``), ``exit_code`` (the command's exit status;
        1 for an exception escaping it), ``wall_time`` (seconds, the whole command),
        ``message`` (empty for ``ok``) and ``final`` (flattened final diagnostics).
    """
    from ddsolve.app.io import write_json

    out_dir = Path(task.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    busy = _in_use(out_dir)
    if busy:  # another run holds it: touch nothing, not even its summary
        return {"status": "failed", "exit_code": 2, "wall_time": time.perf_counter() - start,
                "message": f"ddsolve: error: {busy}", "final": {}}
    # never report an older run: the summary goes too (a checkpoint, if any, stays for --resume)
    for stale in (MARKER_FILE, STDERR_FILE, "summary.json"):
        (out_dir / stale).unlink(missing_ok=True)
    code, stderr, message = (_as_subprocess if task.subprocess else _in_process)(task)
    wall = time.perf_counter() - start
    result = {"status": "ok" if code == 0 else "failed", "exit_code": code, "wall_time": wall,
              "message": "" if code == 0 else (message or failure_message(stderr)),
              "final": final_diagnostics(out_dir)}
    if code == 0:
        write_json(out_dir / MARKER_FILE, {"key": task.key, "command": task.command, "result": result})
    else:
        (out_dir / STDERR_FILE).write_text(stderr)
    return result
