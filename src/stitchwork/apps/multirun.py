"""A multirun's guard and its closing summary.

:class:`SweepGuard` (a Hydra callback, ``conf/hydra/stitchwork.yaml``) expands the sweep
before anything is launched, exactly as the basic sweeper will, computes every job's
identity and refuses a sweep whose jobs collapse to one identity. It remembers the
expected jobs, so :func:`summarise_sweep` can account for each one at the end, on success
too: ok (and how many were already done), failed, interrupted, preempted, still running
elsewhere, ended without a result, or never started. The expected jobs also go to
``<sweep>/.sweep_jobs.json``, so jobs that a launcher runs in other processes (submitit,
SLURM) name their W&B runs by what varies, as jobs of the basic launcher do. Under a sweeper that
proposes its jobs as it goes (Optuna) the summary counts the jobs launched since the start.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..sweep.collisions import colliding_jobs, collision_message
from ..sweep.lock import describe, is_locked
from ..sweep.records import RESULTS_FILE, ResultsError, read_results
from ..utils.atomic import atomic_write_json
from ..utils.text import count
from .config import RUNTIME_KEYS, job_id

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
#: The expected jobs' overrides, for jobs that run in other processes (:func:`sweep_run_name`).
SWEEP_JOBS_FILE = ".sweep_jobs.json"


class SweepGuard(Callback):
    """Refuse colliding sweeps; note the sweep folder, start time and expected jobs."""

    sweep_dir: str | None = None
    started: float | None = None
    expected: list[tuple[list[str], str]] | None = None  # (overrides, job id) per job

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        SweepGuard.sweep_dir, SweepGuard.started = str(config.hydra.sweep.dir), time.time()
        SweepGuard.expected = None
        if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
            # another sweeper (e.g. Optuna) proposes its jobs as it goes: no earlier sweep's list
            (Path(SweepGuard.sweep_dir) / SWEEP_JOBS_FILE).unlink(missing_ok=True)
            return
        jobs = expected_jobs(config)
        collisions = colliding_jobs(jobs)
        if collisions:
            SweepGuard.sweep_dir = None  # nothing ran: nothing to summarise
            n_identities = len({identity for _, identity in jobs})
            print(
                collision_message(collisions, len(jobs), n_identities, RUNTIME_KEYS),
                file=sys.stderr,
            )
            raise SystemExit(2)  # a callback's Exception would only be a warning
        SweepGuard.expected = jobs
        atomic_write_json(Path(SweepGuard.sweep_dir) / SWEEP_JOBS_FILE, [list(o) for o, _ in jobs])


def expected_jobs(config: DictConfig) -> list[tuple[list[str], str]]:
    """Every job of a basic-sweeper multirun: its overrides and its identity.

    The same expansion as Hydra's ``BasicSweeper.sweep`` (``hydra.sweeper.params``, then the
    command line), each job's config loaded as the launcher loads it.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    loader = GlobalHydra.instance().config_loader()
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    arguments = params + list(config.hydra.overrides.task)
    overrides = OverridesParser.create(config_loader=loader).parse_overrides(arguments)
    jobs = BasicSweeper.split_arguments(overrides, None)[0]
    return [(job, job_id(loader.load_sweep_config(config, list(job)))) for job in jobs]


def sweep_run_name(job_overrides: list[str], sweep_dir: str | Path | None = None) -> str | None:
    """A job's W&B run name: its overrides whose values vary within this sweep.

    The sweep's jobs are this process's basic-sweeper multirun, else the ones its launching
    process wrote to ``sweep_dir`` (submitit, SLURM). None when neither is known (the caller
    falls back to the whole override string). A key that only some jobs set varies too.
    """
    jobs = [o for o, _ in SweepGuard.expected] if SweepGuard.expected else _launched_jobs(sweep_dir)
    if not jobs:
        return None
    values: dict[str, set[str]] = {}
    for overrides in jobs:
        for override in overrides:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    counts = {k: sum(any(o.partition("=")[0] == k for o in job) for job in jobs) for k in values}
    varying = [o for o in job_overrides
               if len(values.get(o.partition("=")[0], ())) > 1 or counts.get(o.partition("=")[0], 0) < len(jobs)]  # fmt: skip
    return ",".join(varying) or None


def _launched_jobs(sweep_dir: str | Path | None) -> list[list[str]] | None:
    """The jobs' overrides the launching process wrote into ``sweep_dir`` (None: none readable)."""
    if sweep_dir is None:
        return None
    try:
        jobs = json.loads((Path(sweep_dir) / SWEEP_JOBS_FILE).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(jobs, list) and all(isinstance(j, list) and all(isinstance(o, str) for o in j) for j in jobs)
    return jobs if ok else None


def summarise_sweep(exit_code: int) -> int:
    """Print the per-job summary of the sweep that just ran; return the exit code to use.

    Non-zero (``exit_code`` if it already was) when any expected job is not ``ok``.
    """
    if SweepGuard.sweep_dir is None:
        return exit_code
    sweep = Path(SweepGuard.sweep_dir)
    records = job_records(sweep)
    expected = SweepGuard.expected
    if expected is not None:
        wanted = {identity: " ".join(o) for o, identity in expected}
        missing = [(ident, label) for ident, label in wanted.items() if ident not in records]
        records = {ident: rec for ident, rec in records.items() if ident in wanted}
    else:  # another sweeper (Optuna): the jobs it launched are those Hydra set up since the start
        missing = []
        records = {ident: (path, rec) for ident, (path, rec) in records.items()
                   if launched_since(path, SweepGuard.started or 0)}  # fmt: skip
    counts: dict[str, int] = {}
    lines = []
    for _identity, (path, record) in sorted(records.items()):
        status = record.get("status", "unreadable")
        counts[status] = counts.get(status, 0) + 1
        if status != "ok":
            lines.append(f"  {path}: {_explain(path, record)}")
    for identity, label in missing:
        lines.append(f"  job {identity} [{label}]: never started")
    done_before = sum(
        1
        for _, r in records.values()
        if r.get("status") == "ok" and (r.get("started") or 0) < (SweepGuard.started or 0)
    )
    bad = len(lines)
    total = len(records) + len(missing)
    parts = [f"{counts.get('ok', 0) - done_before} ok", f"{done_before} skipped as done",
             f"{counts.get('failed', 0)} failed", f"{counts.get('interrupted', 0)} interrupted"]  # fmt: skip
    parts += [
        f"{n} {s}" for s, n in sorted(counts.items()) if s not in ("ok", "failed", "interrupted")
    ]
    if missing:
        parts.append(f"{len(missing)} never started")
    print(f"\nSweep {sweep}: {count(total, 'job')}: {', '.join(parts)}.", file=sys.stderr)
    if lines:
        print("Jobs that are not ok:", *lines, sep="\n", file=sys.stderr)
        print(
            "Finished jobs are kept; rerunning the same command runs only the others.",
            file=sys.stderr,
        )
    report = sweep / "report"
    where = (
        f"{report}/" if report.is_dir() else f"stitchwork-report 'dirs=[{sweep}]' writes {report}/"
    )
    print(
        f"Results: {sweep}/<job id>/{RESULTS_FILE}; report (tables, figures): {where}",
        file=sys.stderr,
    )
    return exit_code or (1 if bad else 0)


def launched_since(job_dir: Path, started: float) -> bool:
    """Whether Hydra set up ``job_dir`` for a job at or after ``started`` (a Unix time).

    Hydra writes ``.hydra/overrides.yaml`` into a job's folder each time it launches the job,
    even one that then skips as done; a folder without it counts as launched. One second of
    slack allows for file systems whose clock is coarser than ``time.time()``.
    """
    marker = job_dir / ".hydra" / "overrides.yaml"
    try:
        return marker.stat().st_mtime >= started - 1.0
    except FileNotFoundError:
        return True


def job_records(sweep: Path) -> dict[str, tuple[Path, dict]]:
    """Per job identity under ``sweep``: its folder and results record (``unreadable`` if so)."""
    found: dict[str, tuple[Path, dict]] = {}
    for path in sorted(sweep.rglob(RESULTS_FILE)) if sweep.exists() else []:
        try:
            record = read_results(path)
        except ResultsError as err:
            record = {"status": "unreadable", "error": str(err), "identity": path.parent.name}
        found[record.get("identity") or path.parent.name] = (path.parent, record)
    return found


def _explain(path: Path, record: dict) -> str:
    """What a job that is not ok is doing: its status, error or signal, or whether it still runs."""
    status = record.get("status")
    if status != "running":
        return f"{status}: {record.get('error')}" if record.get("error") else str(status)
    process = record.get("process") or {}
    if is_locked(path):
        return f"still running ({describe(process)})"
    state = _slurm_state(process.get("slurm_job"))
    if state in ("RUNNING", "PENDING", "COMPLETING", "REQUEUED", "SUSPENDED"):
        return f"still running (SLURM job {process['slurm_job']} is {state})"
    if state:
        return (
            f"ended without a result (SLURM job {process['slurm_job']}: {state}); a rerun redoes it"
        )
    return f"ended without a result: its process ({describe(process)}) is gone; a rerun redoes it"


def _slurm_state(slurm_job: str | None) -> str | None:
    """The job's SLURM state from squeue (live) or sacct (ended); None without SLURM."""
    if not slurm_job:
        return None
    for cmd in (
        ["squeue", "-h", "-j", slurm_job, "-o", "%T"],
        ["sacct", "-n", "-X", "-P", "-j", slurm_job, "-o", "State"],
    ):
        if shutil.which(cmd[0]) is None:
            continue
        try:
            out = subprocess.run(
                cmd, capture_output=True, text=True, timeout=20, check=False
            ).stdout.split()
        except subprocess.TimeoutExpired:
            continue
        if out:
            return out[0].split()[0]
    return None
