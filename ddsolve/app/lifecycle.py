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
Ctrl-C                      130          ``interrupted``
any other exception         (traceback)  ``error``
=========================== ============ =================================================

:class:`RunRecord` is the record; :func:`exit_status` is the one mapping from an
exception to the exit status and the one-line message, used by every subcommand.
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ddsolve.app.io import SUMMARY_FILE, package_versions, write_json
from ddsolve.failures import NumericalFailure, RunInterrupted
from ddsolve.schema import ConfigError

__all__ = ["RunRecord", "exit_status", "EXIT_OK", "EXIT_CONFIG", "EXIT_FAILURE", "EXIT_INTERRUPTED",
           "NumericalFailure", "RunInterrupted"]

EXIT_OK, EXIT_CONFIG, EXIT_FAILURE, EXIT_INTERRUPTED = 0, 2, 3, 130


class RunRecord:
    """The output directory and ``summary.json`` of one run.

    Parameters
    ----------
    out_dir : path-like
        Created if needed; a directory that cannot be created is a :class:`ConfigError`
        on ``key``.
    key : str
        The config key that names the directory (``run.out``, ``particles.out``).
    config : mapping
        The resolved config, stored in the summary.
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

    def __init__(self, out_dir: str | Path, key: str, config: Mapping[str, Any], **info: Any) -> None:
        self.path = Path(out_dir)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(key, f"cannot write the output directory: {err}") from None
        self.summary: dict[str, Any] = {
            "status": "running",
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "config": config,
            "versions": package_versions(),
            **info,
        }
        self.failure: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.wall_time = 0.0
        self._closers: list[Callable[[], Any]] = []
        self.write()

    def write(self) -> None:
        write_json(self.path / SUMMARY_FILE, self.summary)

    def close_with(self, closer: Callable[[], Any]) -> None:
        """Call ``closer`` (close a file, a progress bar) when the run ends, however it ends."""
        self._closers.append(closer)

    def close(self) -> None:
        """Run the closers, once."""
        while self._closers:
            self._closers.pop(0)()

    def interrupt(self, t: float) -> None:
        """Record a Ctrl-C that a driver caught itself (py-pde's ``Controller`` does)."""
        self.error = RunInterrupted(t)
        self.failure = {"message": str(self.error), "t": float(t), "cause": "interrupted"}

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
            yield self
        except NumericalFailure as err:
            if on_failure is not None:
                on_failure(err)
            self.error = err
            self.failure = {"message": str(err), "t": err.t, "cause": err.cause}
        except KeyboardInterrupt:
            self.interrupt(now() or 0.0)
        except BaseException as err:
            self.wall_time = time.perf_counter() - start
            self.failure = {"message": f"{type(err).__name__}: {err}", "t": now(), "cause": "error"}
            self.close()
            self.summary.update(status="failed", failure=self.failure, wall_time=self.wall_time)
            self.write()
            raise
        finally:
            self.wall_time = time.perf_counter() - start

    def finish(self, **fields: Any) -> dict[str, Any]:
        """Close, write the final summary (``fields`` added) and raise what stopped the run."""
        self.close()
        self.summary.update(status="ok" if self.failure is None else "failed", failure=self.failure,
                            wall_time=self.wall_time, **fields)
        self.write()
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
        print(f"{program}: {str(err) or 'interrupted by the user'}{where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    raise err
