"""stitchwork apps as real SLURM sweeps (submitit job arrays) on the local one-node cluster.

Run with ``python -m pytest -m slurm`` (CI does). Each sweep is a stitchwork console
script with ``hydra/launcher=slurm_cpu``; the zoo lives in the test's temp folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import slurm_fixtures
from tests.slurm_fixtures import SlurmCluster, run_multirun

slurm_cluster = slurm_fixtures.slurm_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(420)]


def _sweep(cluster: SlurmCluster, tmp_path: Path, *overrides: str) -> list[str]:
    return [
        sys.executable, "-m", "stitchwork.apps.train", "-m", "model=mlp", "model.width=16",
        "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
        "hydra/launcher=slurm_cpu", f"hydra.launcher.partition={cluster.partition}",
        "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=10",
        f"zoo.root={tmp_path / 'zoo'}", *overrides,
    ]  # fmt: skip


def _records(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/results.json")}


def test_sweep_records_a_failed_job_reports_and_reruns_nothing(slurm_cluster, tmp_path):
    sweep = tmp_path / "multirun" / "train" / "slurm"
    argv = _sweep(slurm_cluster, tmp_path, "recipe.epochs=1", "recipe.lr=0.05,1e30", "sweep_name=slurm")
    done = run_multirun(argv, cwd=tmp_path, timeout_s=300, add_conf_searchpath=False)
    assert done.returncode != 0  # one job failed; Hydra reports it once the array is done
    assert "2 jobs: 1 ok, 0 skipped as done, 1 failed, 0 interrupted." in done.stderr
    records = _records(sweep)
    assert sorted(r["status"] for r in records.values()) == ["failed", "ok"]
    assert "NonFiniteLossError" in next(r for r in records.values() if r["status"] == "failed")["error"]

    report = subprocess.run([sys.executable, "-m", "stitchwork.apps.report", f"dirs=[{sweep}]"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "2 jobs (1 ok, 1 failed, 0 interrupted, 0 unfinished)" in report.stdout, report.stderr

    ok_id = next(k for k, r in records.items() if r["status"] == "ok")
    again = run_multirun(argv, cwd=tmp_path, timeout_s=300, add_conf_searchpath=False)
    assert again.returncode != 0
    assert _records(sweep)[ok_id]["started"] == records[ok_id]["started"]  # skipped, not rerun


def test_killed_job_ends_the_sweep_with_a_report_not_a_hang(slurm_cluster, tmp_path):
    sweep = tmp_path / "multirun" / "train" / "killed"
    argv = _sweep(slurm_cluster, tmp_path, "recipe.epochs=1,5000", "sweep_name=killed")
    launcher = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not any(r["status"] == "ok" for r in _records(sweep).values()):  # the short job finishes
        assert launcher.poll() is None and time.monotonic() < deadline, "short job did not finish"
        time.sleep(1)
    running = subprocess.run(["squeue", "-h", "-u", str(os.getuid()), "-n", "train", "-o", "%i"],
                             capture_output=True, text=True, timeout=30).stdout.split()
    assert running, "the long job is not in the queue"
    subprocess.run(["scancel", *running], check=True, timeout=30)
    try:
        out, err = launcher.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        launcher.kill()
        pytest.fail("the launcher hung after a job was cancelled")
    assert launcher.returncode != 0
    assert "2 jobs: 1 ok, 0 skipped as done, 0 failed, 1 interrupted." in err  # scancel sends SIGTERM
    assert "interrupted: stopped by SIGTERM" in err
    statuses = sorted(r["status"] for r in _records(sweep).values())
    assert statuses == ["interrupted", "ok"]  # the sibling's result is kept


def test_cancelled_task_is_told_apart_from_a_sibling_that_still_runs(slurm_cluster, tmp_path):
    sweep = tmp_path / "multirun" / "train" / "apart"
    argv = _sweep(slurm_cluster, tmp_path, "recipe.epochs=5000", "seed=0,1", "sweep_name=apart")
    launcher = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while len(_records(sweep)) < 2:  # both array tasks are inside their jobs
        assert launcher.poll() is None and time.monotonic() < deadline, "the tasks did not start"
        time.sleep(1)
    tasks = sorted(subprocess.run(["squeue", "-h", "-u", str(os.getuid()), "-n", "train", "-o", "%i"],
                                  capture_output=True, text=True, timeout=30).stdout.split())
    assert len(tasks) == 2 and tasks[0].endswith("_0"), tasks
    try:
        subprocess.run(["scancel", tasks[0]], check=True, timeout=30)  # the launcher waits on task 0 first
        try:
            _, err = launcher.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            launcher.kill()
            pytest.fail("the launcher hung after a task was cancelled")
        assert launcher.returncode != 0
        assert "interrupted: stopped by SIGTERM" in err
        assert "still running (pid" in err and f"SLURM job {tasks[1]}" in err, err
        assert "2 jobs: 0 ok, 0 skipped as done, 0 failed, 1 interrupted, 1 running." in err
    finally:
        subprocess.run(["scancel", *tasks], timeout=30, check=False)
