"""The clear error for a SLURM launcher on a machine without a working SLURM (no cluster needed).

Fake ``sbatch``/``srun``/``squeue`` scripts on a private PATH stand in for SLURM, so these
tests run anywhere and fast.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stitchwork.apps.slurm_check import (
    is_slurm_launcher,
    launcher_choice,
    require_slurm,
    require_slurm_for_argv,
)

APP = Path(__file__).resolve().parent / "slurm_app" / "app.py"
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def _fake_slurm(bin_dir: Path, squeue_body: str, commands=("sbatch", "srun", "squeue")) -> str:
    """Write fake SLURM commands into ``bin_dir``; return it as a PATH."""
    bin_dir.mkdir(exist_ok=True)
    for name in commands:
        script = bin_dir / name
        script.write_text("#!/bin/sh\n" + (squeue_body if name == "squeue" else "exit 0\n"))
        script.chmod(0o755)
    return str(bin_dir)


def test_missing_commands_name_launcher_and_how_to_start(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_slurm(tmp_path / "bin", "exit 0\n", commands=("srun",)))
    with pytest.raises(RuntimeError) as err:
        require_slurm("hydra/launcher=slurm_cpu")
    message = str(err.value)
    assert "'hydra/launcher=slurm_cpu'" in message
    assert "sbatch, squeue are not on PATH" in message
    assert "bash launch/slurm_up.sh" in message


def test_failing_squeue_is_reported_with_its_message(tmp_path, monkeypatch):
    body = 'echo "squeue: error: Unable to contact slurm controller" >&2\nexit 1\n'
    monkeypatch.setenv("PATH", _fake_slurm(tmp_path / "bin", body))
    with pytest.raises(RuntimeError) as err:
        require_slurm("hydra/launcher=slurm_gpu")
    message = str(err.value)
    assert "'hydra/launcher=slurm_gpu'" in message
    assert "exit 1: squeue: error: Unable to contact slurm controller" in message
    assert "bash launch/slurm_up.sh" in message


def test_hanging_squeue_times_out(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_slurm(tmp_path / "bin", "exec /bin/sleep 30\n"))
    with pytest.raises(RuntimeError, match="did not answer within 0.5 s"):
        require_slurm("submitit_slurm", timeout_s=0.5)


def test_working_squeue_passes(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_slurm(tmp_path / "bin", "exit 0\n"))
    require_slurm("hydra/launcher=slurm_cpu")  # no error


@pytest.mark.parametrize(
    ("argv", "choice"),
    [
        (["-m", "x=1,2"], None),
        (["-m", "hydra/launcher=slurm_cpu", "x=1"], "slurm_cpu"),
        (["hydra/launcher=local", "+hydra/launcher=submitit_slurm"], "submitit_slurm"),
        (["hydra.launcher.partition=gpu"], None),
    ],
)
def test_launcher_choice(argv, choice):
    assert launcher_choice(argv) == choice


def test_which_launchers_count_as_slurm():
    assert is_slurm_launcher("submitit_slurm") and is_slurm_launcher("slurm_multigpu")
    assert not is_slurm_launcher("local") and not is_slurm_launcher("submitit_local")


def test_argv_check_only_for_slurm_multiruns(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no SLURM at all
    require_slurm_for_argv(["hydra/launcher=slurm_cpu"])  # single run: launcher unused
    require_slurm_for_argv(["-m", "hydra/launcher=local", "x=1,2"])
    require_slurm_for_argv(["-m", "x=1,2"])
    with pytest.raises(RuntimeError, match="'hydra/launcher=slurm_cpu'"):
        require_slurm_for_argv(["--multirun", "hydra/launcher=slurm_cpu", "x=1,2"])


def test_app_multirun_without_slurm_fails_before_submitting(tmp_path):
    """The test app, like every entry point, checks before Hydra builds the launcher."""
    env = {**os.environ, "PATH": str(tmp_path)}  # sys.executable is absolute
    sweep_dir = tmp_path / "sweep"
    done = subprocess.run(
        [sys.executable, str(APP), "-m", "x=1,2", "hydra/launcher=slurm_cpu",
         f"hydra.searchpath=[file://{CONF_DIR}]", f"hydra.sweep.dir={sweep_dir}"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "RuntimeError: The Hydra launcher 'hydra/launcher=slurm_cpu'" in done.stderr
    assert "bash launch/slurm_up.sh" in done.stderr
    assert not sweep_dir.exists()  # nothing was submitted
