"""Checkpoints that survive preemption: saved every epoch and when the scheduler signals.

SLURM (through submitit) warns a job with SIGUSR2 before preempting it or hitting its
time limit; submitit then requeues the job, which reruns in the same folder. This
callback saves ``last.ckpt`` atomically at every epoch end and, on the signal, at the
next batch boundary before handing the signal on (to submitit's requeue handler, or
the default action). A rerun passes the same folder and resumes from the checkpoint.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L

LAST = "last.ckpt"


class PreemptionCheckpoint(L.Callback):
    """Keep ``<directory>/last.ckpt`` current; on ``signum`` save it and pass the signal on."""

    def __init__(self, directory: str | os.PathLike, signum: int = signal.SIGUSR2):
        self.directory = Path(directory)
        self.signum = signum
        self._signalled = False
        self._previous = None

    @property
    def path(self) -> Path:
        return self.directory / LAST

    def resume_path(self) -> str | None:
        """The checkpoint to resume from, if an earlier run left one."""
        return str(self.path) if self.path.is_file() else None

    def _save(self, trainer: L.Trainer) -> None:
        # Every rank calls save_checkpoint (a collective); only rank 0 writes the file.
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{LAST}.tmp"
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)

    def _on_signal(self, signum, frame) -> None:
        self._signalled = True

    def on_fit_start(self, trainer, pl_module) -> None:
        self._previous = signal.signal(self.signum, self._on_signal)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._signalled:
            self._save(trainer)
            self._hand_on()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None

    def _hand_on(self) -> None:
        """Give the signal to whoever listened before us (submitit requeues and exits)."""
        previous = self._previous
        self._restore()
        if callable(previous):
            previous(self.signum, None)
        elif previous != signal.SIG_IGN:
            os.kill(os.getpid(), self.signum)  # default action: terminate
        raise SystemExit(f"preempted by signal {self.signum}; checkpoint at {self.path}")

    def discard(self) -> None:
        """Remove the checkpoint once the training it belongs to is complete."""
        self.path.unlink(missing_ok=True)
