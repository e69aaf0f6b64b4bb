"""Keep known-harmless library chatter off the apps' consoles.

Lightning and torch print hints that say nothing about a stitchwork job: the ``srun`` hint
on any machine with SLURM installed (stitchwork's launchers start jobs themselves), the
LitLogger tip, the ``LeafSpec`` deprecation inside Lightning, torch's ``weights_only``
notice when Lightning resumes our own checkpoints, the device banner (the job logs the
device it runs on) and routine progress notes. :func:`quiet_console` filters exactly
these, by message, and nothing else, so a real warning still shows. It is applied at app
entry and again at the start of each job (a launcher may run jobs in fresh processes).
``python -W ...`` or ``PYTHONWARNINGS`` keeps Python's warnings as the user set them.
:func:`without_hydra_failure_line` drops Hydra's "Error executing job with overrides" line,
which would precede the one paragraph a failed job prints (``HYDRA_FULL_ERROR=1`` keeps it).
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

#: ``warnings`` messages (regular expressions, matched at the start) that are noise for us.
HARMLESS_WARNINGS = (
    r"The `srun` command is available on your system but is not used",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"You are using `torch\.load` with `weights_only=False`",  # torch 2.4-2.5 on Lightning resumes
    r"The '\w+' does not have many workers",  # digits and mnist1d are in memory: no workers needed
)

#: Lightning's ``rank_zero_info`` lines that are noise for us, and the loggers they come from.
HARMLESS_INFO = (
    r"(GPU|TPU|HPU) available: ",
    r"💡 Tip: For seamless cloud logging",
    r"Loading `\w+_dataloader` to estimate number of stepping batches",
    r"`Trainer\.fit` stopped: `max_epochs=\d+` reached",
    r"`weights_only` was not set, defaulting to `False`",
)
LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.trainer.connectors.checkpoint_connector",
)


class DropMessages(logging.Filter):
    """A logging filter that drops records whose message starts with one of ``patterns``."""

    def __init__(self, patterns: tuple[str, ...]):
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return self.pattern.match(record.getMessage()) is None


def quiet_console() -> None:
    """Filter :data:`HARMLESS_WARNINGS` and :data:`HARMLESS_INFO`; idempotent."""
    if not sys.warnoptions:  # -W / PYTHONWARNINGS: the user's own choice wins
        for message in HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) for f in logger.filters):
            logger.addFilter(DropMessages(HARMLESS_INFO))


#: The line Hydra writes to stderr when a single run's job raised (``JobReturn.return_value``).
HYDRA_FAILURE_LINE = "Error executing job with overrides: "


class _DropLines:
    """A text stream that forwards everything to ``stream`` except writes starting with ``prefix``."""

    def __init__(self, stream: TextIO, prefix: str) -> None:
        self._stream, self._prefix = stream, prefix

    def write(self, text: str) -> int:
        return len(text) if text.startswith(self._prefix) else self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextmanager
def without_hydra_failure_line() -> Iterator[None]:
    """While Hydra runs: stderr without :data:`HYDRA_FAILURE_LINE` (the app prints the failure itself)."""
    before = sys.stderr
    sys.stderr = _DropLines(before, HYDRA_FAILURE_LINE)
    try:
        yield
    finally:
        sys.stderr = before
