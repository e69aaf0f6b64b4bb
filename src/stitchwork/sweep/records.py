"""``results.json``: the one record of a job, written atomically, read defensively."""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_write_json
from ..utils.provenance import git_info
from .lock import whoami

RESULTS_FILE = "results.json"
#: ``running`` until the job ends ``ok``, ``failed`` (an error), ``interrupted`` (a signal) or
#: ``preempted`` (SLURM's warning signal; submitit requeues the job, which reruns here).
STATUSES = ("running", "ok", "failed", "interrupted", "preempted")
ENDED = ("ok", "failed", "interrupted", "preempted")


class ResultsError(ValueError):
    """A results.json that is missing fields, unreadable or truncated."""


@dataclass
class JobRecord:
    """Everything a job reports: status, config, identity, metrics, timings, provenance."""

    app: str
    identity: str
    config: dict
    status: str = "running"
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    timings: dict = field(default_factory=dict)
    git: dict = field(default_factory=git_info)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    signal: str | None = None
    process: dict = field(default_factory=whoami)

    def succeed(self, metrics: dict[str, Any]) -> JobRecord:
        self.metrics.update(metrics)
        return self._finish("ok")

    def fail(self, error: BaseException) -> JobRecord:
        self.error = f"{type(error).__name__}: {error}"
        self.traceback = "".join(traceback.format_exception(error))
        return self._finish("failed")

    def interrupt(self, signal_name: str, requeued: bool = False) -> JobRecord:
        """A signal stopped the job: ``preempted`` when it will be requeued, else ``interrupted``."""
        self.signal = signal_name
        self.error = f"stopped by {signal_name}" + (" (requeued)" if requeued else "")
        return self._finish("preempted" if requeued else "interrupted")

    def _finish(self, status: str) -> JobRecord:
        self.status, self.finished = status, time.time()
        self.timings["wall_time_s"] = self.finished - self.started
        return self


def write_results(directory: str | Path, record: JobRecord) -> Path:
    """Atomically write ``record`` to ``directory/results.json``."""
    return atomic_write_json(Path(directory) / RESULTS_FILE, asdict(record))


def read_results(path: str | Path) -> dict:
    """Read a results.json (or the one in a directory), raising ResultsError if unusable."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ResultsError(f"cannot read {path}: {err}") from None
    if not isinstance(record, dict) or record.get("status") not in STATUSES:
        raise ResultsError(f"{path} is not a stitchwork results record (status must be one of {STATUSES})")
    return record


def is_done(directory: str | Path) -> bool:
    """True only when ``directory`` holds a readable results.json with status ``ok``."""
    try:
        return read_results(Path(directory) / RESULTS_FILE)["status"] == "ok"
    except ResultsError:
        return False
