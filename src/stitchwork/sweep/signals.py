"""Signals that end a job (SIGTERM, SIGINT, SIGUSR2) become one exception the job can record.

Left alone, SIGTERM is swallowed by Lightning (its ``SIGTERMException`` is a ``SystemExit``
with code 0) and SIGINT becomes ``sys.exit(1)`` inside a fit, so a job's record says
``running`` and the process can exit 0. Inside :func:`interruptible` each of these signals
raises :class:`JobInterrupted` instead, which Lightning re-raises after its own tear-down
and which no ``except Exception`` swallows.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: The signals a job records: a scheduler's or user's stop, Ctrl-C, SLURM's preemption warning.
JOB_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


class JobInterrupted(BaseException):
    """A job was stopped by ``signum``; ``previous`` is the handler that was there before ours."""

    def __init__(self, signum: int, previous: Any = None):
        self.signum = int(signum)
        self.previous = previous
        super().__init__(f"interrupted by {self.name}")

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + signal number."""
        return 128 + self.signum

    @property
    def will_requeue(self) -> bool:
        """True for SIGUSR2 when someone else (submitit) listened for it: they requeue the job."""
        return self.signum == signal.SIGUSR2 and callable(self.previous)

    def hand_on(self) -> None:
        """Call the handler that was there before ours (submitit's requeue), if there was one."""
        if callable(self.previous):
            self.previous(self.signum, None)


@contextmanager
def interruptible(signals: tuple[int, ...] = JOB_SIGNALS) -> Iterator[None]:
    """Within the block, ``signals`` raise :class:`JobInterrupted`; old handlers come back after.

    Only the main thread can own signal handlers; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in signals}

    def raise_interrupted(signum: int, frame: Any) -> None:
        for signum_ in signals:  # a second signal during clean-up must not interrupt the record
            signal.signal(signum_, signal.SIG_IGN)
        raise JobInterrupted(signum, previous.get(signum))

    for signum in signals:
        signal.signal(signum, raise_interrupted)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
