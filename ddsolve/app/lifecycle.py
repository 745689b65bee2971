"""One run lifecycle for every command that writes an output directory.

A run's ``summary.json`` goes from ``status = "running"`` (written before the first step,
with the resolved config and the package versions) to ``"ok"`` or ``"failed"`` (with the
wall time, the steps, the final diagnostics and, on failure, what happened and when).
Whatever stops a run, what it wrote so far stays on disk and the summary says so:

=========================== ============ =================================================
what stopped it             exit status  summary ``failure.cause``
=========================== ============ =================================================
nothing                     0            (``failure = null``)
invalid config or arguments 2            (nothing written: raised before the directory)
:class:`NumericalFailure`   3            the failure's ``cause`` (``negative``, ...)
Ctrl-C or SIGTERM           130          ``interrupted`` (``signal`` names it)
any other exception         (traceback)  ``error``
=========================== ============ =================================================

A run holds its directory (:mod:`ddsolve.app.outdir`): a second run into it is refused
(exit 2, naming the holder), and a directory with an earlier run's files is refused unless
``exists="overwrite"`` or ``"resume"`` (``--overwrite``, ``--resume``).

SIGINT and SIGTERM are handled alike while a run is :meth:`RunRecord.running`: outside a
:meth:`StopRequest.deferred` block they raise :class:`KeyboardInterrupt` at once; inside
one (a time loop's compiled stepping) they only set a flag, which the loop checks when the
call returns, so it can save the state it reached before stopping. A second signal always
stops at once.

:class:`RunRecord` is the record; :func:`exit_status` is the one mapping from an
exception to the exit status and the one-line message, used by every subcommand.
"""

from __future__ import annotations

import datetime
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ddsolve.app.io import SUMMARY_FILE, package_versions, write_json
from ddsolve.app.outdir import prepare_directory
from ddsolve.failures import NumericalFailure, RunInterrupted
from ddsolve.schema import ConfigError

__all__ = ["RunRecord", "StopRequest", "exit_status", "EXIT_OK", "EXIT_CONFIG", "EXIT_FAILURE",
           "EXIT_INTERRUPTED", "NumericalFailure", "RunInterrupted"]

EXIT_OK, EXIT_CONFIG, EXIT_FAILURE, EXIT_INTERRUPTED = 0, 2, 3, 130

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """SIGINT and SIGTERM for the duration of a run (module docstring).

    Examples
    --------
    >>> stop = StopRequest()
    >>> with stop.installed():
    ...     with stop.deferred():
    ...         pass                    # a signal here only sets stop.signal
    ...     stop.requested
    False
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._defer = 0

    @property
    def requested(self) -> bool:
        """A signal arrived (and was deferred)."""
        return self.signal is not None

    def _handle(self, signum, frame) -> None:
        first = self.signal is None
        if first:
            self.signal = signal.Signals(signum).name
        if not (first and self._defer):
            raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle the signals in this block (only in the main thread: elsewhere Python
        cannot install handlers, and the defaults stay)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, self._handle) for s in _SIGNALS}
        try:
            yield self
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Signals in this block set :attr:`signal` instead of raising."""
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1


class RunRecord:
    """The output directory and ``summary.json`` of one run.

    Parameters
    ----------
    out_dir : path-like
        Created if needed and locked until :meth:`finish`; a directory that cannot be
        created, is held by another run, or holds an earlier run's output (with
        ``exists="error"``) is a :class:`ConfigError` on ``key``.
    key : str
        The config key that names the directory (``run.out``, ``particles.out``).
    config : mapping
        The resolved config, stored in the summary.
    exists : {"error", "overwrite", "resume"}
        What to do with an earlier run's files (:func:`ddsolve.app.outdir.prepare_directory`).
    command : str
        The command, for the lock's holder record and the summary.
    check : callable, optional
        ``check(record)``, called with the directory locked and before this run's summary
        replaces the one found there (:attr:`previous`); its result is :attr:`checked`.
        It may raise (a resume that does not match) and nothing has been written.
    **info
        More summary fields known before the run starts.

    Examples
    --------
    >>> record = RunRecord(tmp, "run.out", config)              # doctest: +SKIP
    >>> with record.running(now=lambda: t):                     # doctest: +SKIP
    ...     step_until_done()
    >>> record.close()                                          # doctest: +SKIP
    >>> summary = record.finish(steps=n, final=rows[-1])        # doctest: +SKIP
    """

    def __init__(self, out_dir: str | Path, key: str, config: Mapping[str, Any], *,
                 exists: str = "error", command: str | None = None,
                 check: Callable[[RunRecord], Any] | None = None, **info: Any) -> None:
        self.path = Path(out_dir)
        self.lock = prepare_directory(self.path, key, exists, holder={"command": command})
        self.stop = StopRequest()
        self.previous: dict[str, Any] | None = None
        """The summary found in the directory (``exists="resume"``), before this run's."""
        if exists == "resume":
            try:
                self.previous = json.loads((self.path / SUMMARY_FILE).read_text())
            except (OSError, ValueError):
                self.previous = None
        self.summary: dict[str, Any] = {
            "status": "running",
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "config": config,
            "versions": package_versions(),
            **({"command": command} if command else {}),
            **info,
        }
        self.failure: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.wall_time = 0.0
        self._closers: list[Callable[[], Any]] = []
        self.checked: Any = None
        try:
            if check is not None:  # e.g. a resume point, judged against the directory as found
                self.checked = check(self)
            self.write()
        except BaseException:
            self.lock.release()
            raise

    def write(self) -> None:
        write_json(self.path / SUMMARY_FILE, self.summary)

    def release(self) -> None:
        """Release the directory without finishing (a run abandoned before it started)."""
        self.lock.release()

    def __del__(self) -> None:
        lock = getattr(self, "lock", None)
        if lock is not None:
            lock.release()

    def close_with(self, closer: Callable[[], Any]) -> None:
        """Call ``closer`` (close a file, a progress bar) when the run ends, however it ends."""
        self._closers.append(closer)

    def close(self) -> None:
        """Run the closers, once."""
        while self._closers:
            self._closers.pop(0)()

    def interrupt(self, t: float, signal_name: str | None = None) -> None:
        """Record an interrupt (Ctrl-C, SIGTERM) that stopped the run at time ``t``."""
        self.error = RunInterrupted(t, signal_name or self.stop.signal or "SIGINT")
        self.failure = {"message": str(self.error), "t": float(t), "cause": "interrupted",
                        "signal": self.error.signal}

    @contextmanager
    def running(self, now: Callable[[], float | None],
                on_failure: Callable[[NumericalFailure], Any] | None = None) -> Iterator[RunRecord]:
        """Time the block and record how it ended.

        A :class:`NumericalFailure` (after ``on_failure``, which may save the last good
        state) and a Ctrl-C are kept and raised by :meth:`finish`, once the output is
        complete; ``now()`` gives the time reached, for the interrupt. Any other exception
        closes the output, marks the summary failed and propagates at once.
        """
        start = time.perf_counter()
        try:
            with self.stop.installed():
                yield self
        except NumericalFailure as err:
            if on_failure is not None:
                on_failure(err)
            self.error = err
            self.failure = {"message": str(err), "t": err.t, "cause": err.cause}
        except RunInterrupted as err:
            self.interrupt(err.t, err.signal)
        except KeyboardInterrupt:
            self.interrupt(now() or 0.0)
        except BaseException as err:
            self.wall_time = time.perf_counter() - start
            self.failure = {"message": f"{type(err).__name__}: {err}", "t": now(), "cause": "error"}
            self.close()
            self.summary.update(status="failed", failure=self.failure, wall_time=self.wall_time)
            self.write()
            self.lock.release()
            raise
        finally:
            self.wall_time = time.perf_counter() - start

    def finish(self, *, t_final: float | None = None, t_reached: float | None = None,
               **fields: Any) -> dict[str, Any]:
        """Close, write the final summary (``fields`` added), release the directory and
        raise what stopped the run.

        With ``t_final``, a run that ended without failure must have saved exactly
        ``t_reached == t_final``; otherwise it is not reported ``ok`` but failed with cause
        ``incomplete`` (exit status 3): a run that did not reach its end never says it did.
        """
        self.close()
        if self.failure is None and t_final is not None and t_reached != t_final:
            self.error = NumericalFailure(f"the run ended at t={t_reached!r} instead of t_final="
                                          f"{t_final!r}", t=t_reached if t_reached is not None else 0.0,
                                          cause="incomplete")
            self.failure = {"message": str(self.error), "t": t_reached, "cause": "incomplete"}
        self.summary.update(status="ok" if self.failure is None else "failed", failure=self.failure,
                            wall_time=self.wall_time, **fields)
        try:
            self.write()
        finally:
            self.lock.release()
        if self.error is not None:
            self.error.out_dir = self.path
            raise self.error
        return self.summary


def exit_status(err: BaseException, program: str = "ddsolve") -> int:
    """Print the one-line message for ``err`` on stderr and return the exit status.

    Exceptions that are not a config error, a numerical failure or an interrupt are
    re-raised: they are bugs, and their traceback is the useful report.
    """
    if isinstance(err, ConfigError):
        print(f"{program}: error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    where = f"; partial output in {err.out_dir}" if getattr(err, "out_dir", None) else ""
    if isinstance(err, NumericalFailure):
        print(f"{program}: numerical failure at t={err.t:.6g}: {err}{where}", file=sys.stderr)
        return EXIT_FAILURE
    if isinstance(err, KeyboardInterrupt):
        text = str(err).strip("'\"") or "interrupted by the user"
        print(f"{program}: {text}{where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    raise err
