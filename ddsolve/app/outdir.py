"""Who may write an output directory: one run at a time, and never over another run's files
by accident.

A run takes an exclusive lock on its directory for its whole duration: an advisory
``flock`` on ``.ddsolve.lock`` inside it, which the kernel releases when the process ends
however it ends (``kill -9`` included), so a lock is never stale. The file holds the
holder's pid, command and start time, which a second run quotes when it is refused.

What a run does with a directory that already holds run output (any file a command
declares in :attr:`~ddsolve.app.commands.Command.outputs`, e.g. ``summary.json``,
``density.h5``, ``particles.h5``) is chosen by ``exists``:

============ ===============================================================
``"error"``  refuse (:class:`~ddsolve.schema.ConfigError` on the directory's key,
             exit 2), naming the files and the two options below; the default
``"overwrite"`` delete every registered output file first (of every command, so a
             ``particles`` run into a PDE directory leaves no stale PDE files)
``"resume"`` keep them: the command continues from its checkpoint
============ ===============================================================

Files that are not run output (a config, notes, subdirectories) are never touched.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from ddsolve.schema import ConfigError

__all__ = ["LOCK_FILE", "EXISTS_MODES", "output_files", "existing_output", "DirectoryLock",
           "prepare_directory"]

LOCK_FILE = ".ddsolve.lock"
EXISTS_MODES = ("error", "overwrite", "resume")

_OUTPUT_FILES = frozenset({"summary.json", "summary.json.tmp"})
"""The run lifecycle's own files (every command writes a summary)."""


def output_files() -> tuple[str, ...]:
    """Every output file name: the summary, and those declared by the commands
    (:attr:`ddsolve.app.commands.Command.outputs`, known before a command's modules are
    imported), sorted."""
    from ddsolve.app.commands import commands

    names = set(_OUTPUT_FILES)
    for command in commands().values():
        names.update(command.outputs)
    return tuple(sorted(names))


def existing_output(path: str | Path) -> list[str]:
    """The registered output files present in ``path``."""
    path = Path(path)
    return [name for name in output_files() if (path / name).exists()]


class DirectoryLock:
    """An exclusive advisory lock on an output directory, held until :meth:`release`.

    Raises :class:`~ddsolve.schema.ConfigError` on ``key`` if another process (or another
    open run in this process) holds it.
    """

    def __init__(self, path: str | Path, key: str, holder: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        lock = self.path / LOCK_FILE
        try:
            self._fd: int | None = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ConfigError(key, f"cannot lock the output directory {self.path}: {err.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = _read_holder(self._fd)
            os.close(self._fd)
            self._fd = None
            raise ConfigError(key, f"{self.path} is in use by another run ({other}); wait for it to "
                                   "end or choose another directory") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                **(holder or {})}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(info).encode(), 0)

    def release(self) -> None:
        """Release the lock (idempotent). The lock file stays: removing it would let a
        process that opened it before the removal lock a file nobody else sees."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    parts = [f"pid {info['pid']}" if "pid" in info else "pid unknown"]
    if info.get("command"):
        parts.append(f"ddsolve {info['command']}")
    if info.get("started"):
        parts.append(f"started {info['started']}")
    return ", ".join(parts)


def prepare_directory(path: str | Path, key: str, exists: str = "error",
                      holder: dict[str, Any] | None = None) -> DirectoryLock:
    """Create ``path``, lock it and apply the ``exists`` policy (module docstring).

    Returns the lock; the caller releases it when the run ends.
    """
    if exists not in EXISTS_MODES:
        raise ConfigError("exists", f"must be one of {', '.join(EXISTS_MODES)}, got {exists!r}")
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(key, f"cannot write the output directory: {err}") from None
    lock = DirectoryLock(path, key, holder)
    try:
        found = existing_output(path)
        if found and exists == "error":
            raise ConfigError(key, f"{path} holds the output of an earlier run ({', '.join(found)}); "
                                   "pass --overwrite to replace it or --resume to continue it")
        if exists == "overwrite":
            for name in found:
                (path / name).unlink()
    except BaseException:
        lock.release()
        raise
    return lock
