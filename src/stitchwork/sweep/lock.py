"""An exclusive lock on a job folder: never two processes computing one job at once.

The lock is an ``flock`` on ``<folder>/.job.lock``, so the kernel releases it when its
holder exits for any reason (SIGKILL included): a ``running`` record whose lock is free
belongs to a process that is gone. The holder writes who it is (pid, host, SLURM job,
start time) into ``<folder>/.job.lock.holder`` so that a waiting process, or a sweep
summary, can name it. Works on local disks and on NFS (Linux maps ``flock`` to POSIX
locks there).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOCK_FILE = ".job.lock"
HOLDER_FILE = ".job.lock.holder"


def whoami() -> dict[str, Any]:
    """This process as a lock holder: pid, host, SLURM job (``array_task`` form) and time."""
    slurm = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        slurm = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return {"pid": os.getpid(), "host": socket.gethostname(), "slurm_job": slurm, "since": time.time()}


def describe(holder: dict[str, Any] | None) -> str:
    """``pid 123 on host n1 (SLURM job 77_2), since 12:03:04`` for messages."""
    if not holder:
        return "another process (unknown holder)"
    slurm = f" (SLURM job {holder['slurm_job']})" if holder.get("slurm_job") else ""
    since = time.strftime("%H:%M:%S", time.localtime(holder["since"])) if holder.get("since") else "?"
    return f"pid {holder.get('pid')} on host {holder.get('host')}{slurm}, since {since}"


def read_holder(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The last holder recorded for ``directory`` (None when there is no readable note)."""
    try:
        return json.loads((Path(directory) / HOLDER_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_locked(directory: str | os.PathLike) -> bool:
    """True when some live process holds the lock of ``directory`` right now."""
    path = Path(directory) / LOCK_FILE
    if not path.exists():
        return False
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


class JobLock:
    """Hold the exclusive lock of a job folder for the life of a ``with`` block.

    Entering waits while another process holds it, calling ``on_wait(holder)`` once first
    (a signal handler that raises still interrupts the wait). ``waited`` says whether it
    had to wait, so the caller can re-read the folder: the other process may have finished
    the job meanwhile.
    """

    def __init__(self, directory: str | os.PathLike, on_wait: Callable[[dict | None], None] | None = None):
        self.directory = Path(directory)
        self.on_wait = on_wait
        self.waited = False
        self._handle = None

    def __enter__(self) -> JobLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.directory / LOCK_FILE, "a")  # noqa: SIM115 - held until __exit__
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.waited = True
            if self.on_wait is not None:
                self.on_wait(read_holder(self.directory))
            try:
                fcntl.flock(self._handle, fcntl.LOCK_EX)
            except BaseException:
                self._handle.close()
                raise
        (self.directory / HOLDER_FILE).write_text(json.dumps(whoami()) + "\n")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
