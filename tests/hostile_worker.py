"""Run many CLI cases in one process: the worker of ``tests/test_hostile_input.py``.

::

    python tests/hostile_worker.py CASES.json RESULTS.jsonl

``CASES.json`` is a list of cases ``{"name", "argv", "cwd", "seconds"}``. Each runs through
:func:`ddsolve.app.cli.main` in this process (one interpreter start for the whole corpus),
in its own working directory, with ``sys.stdout``/``sys.stderr`` and file descriptor 2
captured. After ``seconds`` of wall time the case gets SIGINT (then one more every second),
as Ctrl-C would, so a case that runs long ends with exit status 130 instead of stalling
the corpus. One JSON line per case is appended to ``RESULTS.jsonl`` as soon as the case
ends: ``{"name", "status", "stderr", "escaped", "seconds"}`` where ``escaped`` is the
traceback of an exception that escaped ``main`` (``None`` if none did).

The test starts this worker with a memory cap (``RLIMIT_AS``), so a ``MemoryError`` that
a config provokes is an escaped exception here rather than a machine that swaps.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import tempfile
import time
import traceback


def _interrupt(signum, frame) -> None:
    os.kill(os.getpid(), signal.SIGINT)


def run_case(main, case: dict) -> dict:
    """Run one case; the result record (module docstring)."""
    home = os.getcwd()
    os.makedirs(case["cwd"], exist_ok=True)
    os.chdir(case["cwd"])
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    fd_copy = os.dup(2)
    raw = tempfile.TemporaryFile(mode="w+b")
    status, escaped = None, None
    start = time.perf_counter()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(raw.fileno(), 2)  # what C code writes to stderr (HDF5, numba)
        sys.stdout, sys.stderr = out, err
        signal.signal(signal.SIGALRM, _interrupt)
        signal.setitimer(signal.ITIMER_REAL, float(case.get("seconds", 30)), 1.0)
        try:
            status = main(list(case["argv"]))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except KeyboardInterrupt:
        if status is None:  # else the timer fired after main returned
            escaped = traceback.format_exc()
    except BaseException:  # noqa: BLE001 - recorded: an exception escaping main is the defect
        escaped = traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        sys.stdout, sys.stderr = saved
        os.dup2(fd_copy, 2)
        os.close(fd_copy)
        os.chdir(home)
    raw.seek(0)
    c_stderr = raw.read().decode("utf-8", "replace")
    raw.close()
    return {"name": case["name"], "status": status, "stderr": err.getvalue() + c_stderr,
            "escaped": escaped, "seconds": time.perf_counter() - start}


def main(argv: list[str]) -> int:
    cases_file, results_file = argv
    here = os.path.dirname(os.path.abspath(__file__))
    # run as a script, this directory comes first on sys.path, and tests/ddsolve would
    # shadow the ddsolve package
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    with open(cases_file) as fh:
        cases = json.load(fh)
    from ddsolve.app.cli import main as cli

    with open(results_file, "a") as out:
        for case in cases:
            try:
                result = run_case(cli, case)
            except KeyboardInterrupt:  # a late SIGINT of the case's timer
                result = {"name": case["name"], "status": None, "stderr": "",
                          "escaped": "KeyboardInterrupt outside main", "seconds": 0.0}
            out.write(json.dumps(result) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
