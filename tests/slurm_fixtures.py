"""A session fixture that provides the one-node SLURM cluster of launch/slurm_up.sh.

Make it visible to a test module with ``slurm_cluster = slurm_fixtures.slurm_cluster``
(after ``from tests import slurm_fixtures``) and mark the module ``pytest.mark.slurm``. The fixture reuses a cluster that is already
up, otherwise installs the Debian packages when they are missing (launch/install_slurm.sh)
and starts the cluster, stopping it again at the end of the session. It skips only when
the packages are missing and cannot be installed, or when the cluster is down and this
process is not root; a cluster that fails to start fails the tests.

The helpers (:func:`sbatch`, :func:`wait_for_state`, :func:`run_multirun`) are shared by
every SLURM test, including the ones that sweep the real stitchwork apps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
CONF_DIR = REPO / "conf"
#: sacct states after which a job never changes again.
FINAL_STATES = (
    "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
    "PREEMPTED", "BOOT_FAIL", "DEADLINE",
)  # fmt: skip


@dataclass(frozen=True)
class SlurmCluster:
    """The running test cluster: its partition and state directory."""

    partition: str
    state_dir: Path


def _run(cmd: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout_s, check=False)


def _cluster_answers() -> bool:
    if shutil.which("squeue") is None or shutil.which("sacct") is None:
        return False
    ok = _run(["squeue", "--noheader"], 20).returncode == 0
    return ok and _run(["sacct", "--noheader", "-X", "-S", "now-1minutes"], 20).returncode == 0


def _start_cluster() -> bool:
    """Install and start the cluster; return True when this call started it."""
    if _cluster_answers():
        return False
    if shutil.which("slurmctld") is None:
        install = _run(["bash", str(LAUNCH / "install_slurm.sh")], 900)
        if install.returncode != 0:
            reason = (install.stderr or install.stdout).strip().splitlines()[-1:]
            pytest.skip(f"SLURM packages are not installed and cannot be installed: {reason}")
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster is down and starting it needs root")
    up = _run(["bash", str(LAUNCH / "slurm_up.sh")], 300)
    if up.returncode != 0:
        pytest.fail(f"launch/slurm_up.sh failed:\n{up.stdout}\n{up.stderr}")
    return True


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """Yield the running one-node cluster; stop it afterwards if this session started it."""
    started = _start_cluster()
    state_dir = Path(os.environ.get("STITCHWORK_SLURM_DIR", "/tmp/stitchwork-slurm"))
    partition = os.environ.get("STITCHWORK_SLURM_PARTITION", "debug")
    yield SlurmCluster(partition=partition, state_dir=state_dir)
    if started:
        _run(["bash", str(LAUNCH / "slurm_down.sh")], 120)


def sbatch(cluster: SlurmCluster, script: str, *args: str) -> str:
    """Submit ``script`` (a shell command line) with ``sbatch --wrap``; return the job id."""
    cmd = ["sbatch", "--parsable", f"--partition={cluster.partition}", *args, "--wrap", script]
    done = _run(cmd, 60)
    assert done.returncode == 0, f"sbatch failed: {done.stderr}"
    return done.stdout.strip().split(";")[0]


def sacct_states(job_id: str) -> dict[str, str]:
    """Map each allocation of ``job_id`` (array tasks included) to its sacct state word."""
    done = _run(["sacct", "--noheader", "--parsable2", "-X", "-j", job_id, "-o", "JobID,State"], 30)
    assert done.returncode == 0, f"sacct failed: {done.stderr}"
    rows = (line.split("|") for line in done.stdout.splitlines() if line)
    # "CANCELLED by 0" -> "CANCELLED"
    return {jid: state.split()[0] for jid, state in rows}


def wait_for_array_states(array_id: str, tasks: int, timeout_s: float = 60) -> dict[str, str]:
    """Poll sacct until every task ``<array_id>_<i>`` of a finished array is listed; return the map.

    Right after an array ends, slurmdbd may still list it as one row (``<array_id>``) until the
    per-task records are written, so a single read can miss the tasks.
    """
    expected = {f"{array_id}_{i}" for i in range(tasks)}
    deadline = time.monotonic() + timeout_s
    states = sacct_states(array_id)
    while not expected <= states.keys() and time.monotonic() < deadline:
        time.sleep(0.5)
        states = sacct_states(array_id)
    return states


def wait_for_state(job_id: str, states: Sequence[str], timeout_s: float = 120) -> str:
    """Poll sacct until job ``job_id`` reaches one of ``states``; return that state.

    Fails the test when the job ends in another final state or the time runs out.
    """
    deadline = time.monotonic() + timeout_s
    state = "unknown"
    while time.monotonic() < deadline:
        state = sacct_states(job_id).get(job_id, "unknown")
        if state in states:
            return state
        if state in FINAL_STATES:
            pytest.fail(f"job {job_id} ended {state}, expected one of {list(states)}")
        time.sleep(0.5)
    pytest.fail(f"job {job_id} still {state} after {timeout_s} s; expected {list(states)}")


def run_multirun(
    argv: Sequence[str], cwd: Path, timeout_s: float = 240, add_conf_searchpath: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a Hydra app command line (e.g. ``[python, app.py, -m, ...]``) to completion.

    With ``add_conf_searchpath`` the repository's ``conf/`` goes on Hydra's search path, so
    that apps whose primary config lives elsewhere find the presets in
    ``conf/hydra/launcher/``. A run longer than ``timeout_s`` fails the test.
    """
    cmd = list(argv)
    if add_conf_searchpath:
        cmd.append(f"hydra.searchpath=[file://{CONF_DIR}]")
    try:
        return subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"multirun did not finish within {timeout_s} s: {' '.join(cmd)}\n{err.stdout}")
