"""Jobs on the real one-node SLURM cluster of launch/slurm_up.sh, seen through sacct.

Run with ``pytest -m slurm tests/test_slurm_cluster.py`` (needs root, or a cluster that is
already up). The multirun test submits a Hydra sweep of tests/slurm_app through the
stitchwork ``slurm_cpu`` preset (on ``submitit_slurm``) and checks that it ran as one
job array whose tasks each wrote their own result.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import slurm_fixtures
from tests.slurm_fixtures import SlurmCluster, run_multirun, sbatch, wait_for_array_states, wait_for_state

slurm_cluster = slurm_fixtures.slurm_cluster  # the session fixture, visible to this module

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]

APP = Path(__file__).resolve().parent / "slurm_app" / "app.py"


def test_sbatch_job_completes(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    out = tmp_path / "hello.txt"
    job = sbatch(
        slurm_cluster, f"echo hello from $SLURM_JOB_ID > {out}", f"--output={tmp_path}/%j.log"
    )
    assert wait_for_state(job, ["COMPLETED"]) == "COMPLETED"
    assert out.read_text().strip() == f"hello from {job}"


def test_failing_job_is_failed(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job = sbatch(slurm_cluster, "exit 3", f"--output={tmp_path}/%j.log")
    assert wait_for_state(job, ["FAILED"]) == "FAILED"


def test_cancelled_job_is_cancelled(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job = sbatch(slurm_cluster, "sleep 600", f"--output={tmp_path}/%j.log")
    wait_for_state(job, ["RUNNING"])
    subprocess.run(["scancel", job], check=True, timeout=30)
    assert wait_for_state(job, ["CANCELLED"]) == "CANCELLED"


def test_hydra_multirun_runs_as_one_array(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    argv = [
        sys.executable, str(APP), "-m", "x=1,2,3",
        "hydra/launcher=slurm_cpu",
        f"hydra.launcher.partition={slurm_cluster.partition}",
        # one CPU and 1 GB each, so that the 3 jobs share a 2-core test machine
        "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=5",
        f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    done = run_multirun(argv, cwd=tmp_path, timeout_s=240)
    assert done.returncode == 0, done.stderr[-3000:]

    records = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/result.json"))]
    assert sorted(r["x"] for r in records) == [1, 2, 3]
    assert all(r["y"] == r["x"] ** 2 for r in records)
    # one job array: a single array job id, one task per sweep job, distinct processes
    array_ids = {r["slurm_array_job_id"] for r in records}
    assert len(array_ids) == 1 and None not in array_ids
    assert sorted(r["slurm_array_task_id"] for r in records) == ["0", "1", "2"]
    assert len({r["pid"] for r in records}) == 3

    array_id = array_ids.pop()
    states = wait_for_array_states(array_id, tasks=3)
    assert states == {f"{array_id}_{i}": "COMPLETED" for i in range(3)}
