"""Checkpoints that survive preemption: saved every epoch and when the scheduler signals.

SLURM (through submitit) warns a job with SIGUSR2 before preempting it or hitting its
time limit; submitit then requeues the job, which reruns in the same folder. This
callback saves ``last.ckpt`` atomically at every epoch end and, on the signal, at the
next batch boundary before handing the signal on (to submitit's requeue handler, or
the default action). A rerun passes the same folder and resumes from the checkpoint; a
checkpoint that does not load (zero bytes, truncated, garbage) is moved aside with a
one-line warning and training starts afresh, so it never blocks the model for good.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import lightning as L
import torch

LAST = "last.ckpt"

log = logging.getLogger(__name__)


class PreemptionCheckpoint(L.Callback):
    """Keep ``<directory>/last.ckpt`` current; on ``signum`` save it and pass the signal on.

    ``corrupt_dir`` receives a checkpoint folder whose ``last.ckpt`` does not load (default:
    ``.corrupt`` beside ``directory``; the zoo passes ``<zoo>/.corrupt``).
    """

    def __init__(
        self, directory: str | os.PathLike, signum: int = signal.SIGUSR2, corrupt_dir: str | os.PathLike | None = None
    ):
        self.directory = Path(directory)
        self.corrupt_dir = Path(corrupt_dir) if corrupt_dir is not None else self.directory.parent / ".corrupt"
        self.signum = signum
        self._signalled = False
        self._previous = None

    @property
    def path(self) -> Path:
        return self.directory / LAST

    def resume_path(self) -> str | None:
        """The checkpoint to resume from, if an earlier run left one that loads.

        One that does not load is moved into :attr:`corrupt_dir` (see :func:`load_or_move_aside`)
        and None returned.
        """
        state = load_or_move_aside(self.path, self.directory, self.corrupt_dir, "state_dict", "a Lightning checkpoint")
        return None if state is None else str(self.path)

    def _save(self, trainer: L.Trainer) -> None:
        # Every rank calls save_checkpoint (a collective); only rank 0 writes the file.
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{LAST}.tmp"
        trainer.save_checkpoint(tmp, weights_only=False)  # full state, to resume from; says so
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
        hand_on_signal(self.signum, previous, self.path)

    def discard(self) -> None:
        """Remove the checkpoint (and its folder) once the training it belongs to is complete."""
        self.path.unlink(missing_ok=True)
        (self.directory / f".{LAST}.tmp").unlink(missing_ok=True)
        try:
            self.directory.rmdir()  # only when empty
        except OSError:
            pass


def move_aside(directory: Path, corrupt_dir: Path) -> Path:
    """Move a checkpoint folder into ``corrupt_dir`` (never deleted) and return where."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = corrupt_dir / f"{directory.name}-partial-{stamp}-{os.getpid()}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(directory, aside)
    except FileNotFoundError:  # another rank of a data-parallel job moved it first
        pass
    return aside


def load_or_move_aside(path: Path, directory: Path, corrupt_dir: Path, key: str, kind: str,
                       device: torch.device | str = "cpu") -> dict | None:  # fmt: skip
    """The checkpoint at ``path`` (a dict holding ``key``), or None when there is none or it
    does not load: then ``directory`` is moved into ``corrupt_dir`` with a one-line warning."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(state, dict) or key not in state:
            raise ValueError(f"not {kind} (no {key})")
    except Exception as err:  # noqa: BLE001 - EOFError, UnpicklingError, RuntimeError alike
        aside = move_aside(directory, corrupt_dir)
        log.warning("partial checkpoint %s does not load (%s: %s); moved it to %s and training afresh",
                    path, type(err).__name__, err, aside)  # fmt: skip
        return None
    return state


def hand_on_signal(signum: int, previous, checkpoint: Path) -> None:
    """Pass ``signum`` to the handler that was there before ours, then stop the job.

    submitit's handler requeues and exits; with none (the default action) the process
    terminates by the signal; an ignored signal still ends the job with ``SystemExit``.
    """
    if callable(previous):
        previous(signum, None)
    elif previous != signal.SIG_IGN:
        os.kill(os.getpid(), signum)  # default action: terminate
    raise SystemExit(f"preempted by signal {signum}; checkpoint at {checkpoint}")


class EpochCheckpoint:
    """Preemption safety for a hand-written training loop (the SSL donors' contrastive phase).

    The loop saves its whole state (weights, optimiser, schedule, generators, curve) with
    :meth:`save` at every epoch end; on ``signum`` it stops at the next batch boundary
    (:meth:`stop_if_signalled`) and passes the signal on, keeping the last epoch's state.
    A rerun loads it (:meth:`load`) and redoes the interrupted epoch from there, so a resumed
    run computes exactly what an uninterrupted one would. A file that does not load is
    moved into ``corrupt_dir`` with a warning and the loop starts afresh.
    """

    def __init__(self, directory: str | os.PathLike, name: str = "last_epoch.pt", signum: int = signal.SIGUSR2,
                 corrupt_dir: str | os.PathLike | None = None):  # fmt: skip
        self.directory, self.signum = Path(directory), signum
        self.path = self.directory / name
        self.corrupt_dir = Path(corrupt_dir) if corrupt_dir is not None else self.directory.parent / ".corrupt"
        self._signalled = False
        self._previous = None
        self.resumed = False  # whether load() returned a state

    def __enter__(self) -> EpochCheckpoint:
        self._previous = signal.signal(self.signum, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None

    def _on_signal(self, signum, frame) -> None:
        self._signalled = True

    def load(self, device: torch.device | str = "cpu") -> dict | None:
        """The state an earlier run saved, or None (none, or it did not load: moved aside)."""
        state = load_or_move_aside(self.path, self.directory, self.corrupt_dir, "epoch", "an epoch checkpoint", device)
        self.resumed = state is not None
        return state

    def save(self, state: dict) -> None:
        """Write ``state`` atomically (a killed write leaves the previous epoch's file)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)

    def stop_if_signalled(self) -> None:
        """At a batch boundary: when the scheduler has signalled, hand the signal on and stop."""
        if self._signalled:
            previous, self._previous = self._previous, None
            signal.signal(self.signum, previous if previous is not None else signal.SIG_DFL)
            hand_on_signal(self.signum, previous, self.path)

    def discard(self) -> None:
        """Remove the file (and its folder when empty) once the loop is complete."""
        self.path.unlink(missing_ok=True)
        try:
            self.directory.rmdir()
        except OSError:
            pass
