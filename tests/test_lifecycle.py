"""Every job ends ok, failed, interrupted or preempted, on disk and in its exit code; never two at once.

Real processes and real signals: a training app is started, signalled while it trains, and
its record, exit code and the sweep's closing summary are read back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stitchwork.sweep.collisions import colliding_jobs, collision_message, differing_keys
from stitchwork.sweep.lock import JobLock, is_locked, read_holder
from stitchwork.sweep.signals import JobInterrupted, interruptible

FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "model=mlp", "model.width=16"]
LONG = [*FAST, "recipe.epochs=100000"]  # trains until signalled


def _start(app: str, tmp_path: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "STITCHWORK_ZOO": str(tmp_path / "zoo")}
    return subprocess.Popen([sys.executable, "-m", f"stitchwork.apps.{app}", *overrides], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


def _wait_training(tmp_path: Path, proc: subprocess.Popen, timeout_s: float = 240) -> None:
    """Until the zoo's partial checkpoint exists: the job is inside its Lightning fit."""
    deadline = time.monotonic() + timeout_s
    while not list((tmp_path / "zoo").glob(".partial/*/last.ckpt")):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR2])
def test_a_signal_during_training_is_recorded_and_exits_nonzero(tmp_path, signum):
    proc = _start("train", tmp_path, *LONG)
    _wait_training(tmp_path, proc)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, out
    (record,) = _records(tmp_path / "outputs")
    name = signal.Signals(signum).name
    assert record["status"] == "interrupted" and record["signal"] == name  # no submitit: not requeued
    assert record["finished"] is not None and f"interrupted by {name}" in out
    assert "Traceback" not in out


def test_multirun_interrupted_by_sigterm_stops_with_summary_and_nonzero_exit(tmp_path):
    proc = _start("train", tmp_path, "-m", *LONG, "seed=0,1,2", "sweep_name=term")
    _wait_training(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert [r["status"] for r in _records(tmp_path / "multirun")] == ["interrupted"]
    assert "3 jobs: 0 ok, 0 skipped as done, 0 failed, 1 interrupted, 2 never started" in out
    assert out.count("never started") == 3 and "interrupted: stopped by SIGTERM" in out


def test_a_second_identical_job_waits_for_the_first_and_never_runs_beside_it(tmp_path):
    first = _start("train", tmp_path, *LONG)
    _wait_training(tmp_path, first)
    (folder,) = [p.parent for p in (tmp_path / "outputs").rglob("results.json")]
    second = _start("train", tmp_path, *LONG)
    deadline = time.monotonic() + 240
    seen = ""
    while "waiting for it to end" not in seen:  # the second process names the holder and waits
        line = second.stdout.readline()
        assert line or second.poll() is None, seen
        assert time.monotonic() < deadline, seen
        seen += line
    assert f"pid {first.pid} on host" in seen
    assert json.loads((folder / "results.json").read_text())["process"]["pid"] == first.pid
    assert is_locked(folder) and read_holder(folder)["pid"] == first.pid
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    # The first ended interrupted, so the waiting one takes the folder and redoes the job.
    deadline = time.monotonic() + 120
    while json.loads((folder / "results.json").read_text())["process"]["pid"] != second.pid:
        assert second.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    second.send_signal(signal.SIGTERM)
    second.communicate(timeout=120)
    assert second.returncode == 128 + signal.SIGTERM


def test_a_waiting_job_skips_what_the_holder_finished(tmp_path):
    folder = tmp_path / "job"
    holder = JobLock(folder).__enter__()
    (folder / "results.json").write_text(json.dumps({"status": "ok", "identity": "x"}))
    script = (f"from stitchwork.sweep.lock import JobLock\nimport json\n"
              f"with JobLock({str(folder)!r}, on_wait=lambda h: print('WAIT', h['pid'], flush=True)):\n"
              f"    print('GOT', json.load(open({str(folder / 'results.json')!r}))['status'], flush=True)\n")
    waiter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert waiter.stdout.readline().split() == ["WAIT", str(os.getpid())]
    time.sleep(0.5)
    assert waiter.poll() is None  # still blocked on the lock
    holder.__exit__(None, None, None)
    assert waiter.communicate(timeout=60)[0].split() == ["GOT", "ok"]


def test_a_stale_running_record_is_recognised_and_redone(run_cli, tmp_path):
    run_cli("train", *FAST, "recipe.epochs=1")
    (path,) = (tmp_path / "outputs").rglob("results.json")
    record = json.loads(path.read_text())
    record.update(status="running", process={"pid": 999999, "host": "gone-node"})
    path.write_text(json.dumps(record))
    again = run_cli("train", *FAST, "recipe.epochs=1")
    assert "the earlier run (pid 999999 on host gone-node" in again.stderr + again.stdout
    redone = json.loads(path.read_text())
    assert redone["status"] == "ok" and redone["started"] > record["started"]


@pytest.mark.parametrize(("app", "overrides", "key"), [
    ("train", [*FAST, "logger=none,csv"], "logger"),
    ("stitch", ["layer_pair.front=conv2", "device=cpu,auto"], "device"),
    ("stitch", ["layer_pair.front=conv2", "matching=direct", "+matching_overrides.task_loss.epochs=3,5"],
     "+matching_overrides.task_loss.epochs"),
])
def test_a_sweep_whose_jobs_share_an_identity_is_refused_before_anything_runs(run_cli, tmp_path, app,
                                                                             overrides, key):
    proc = run_cli(app, "-m", *overrides, check=False)
    assert proc.returncode == 2
    assert "Refusing this sweep: its 2 jobs have only 1 distinct job identity" in proc.stderr
    assert f"{key} does not enter the job identity" in proc.stderr
    assert not (tmp_path / "multirun").exists() and not list(tmp_path.rglob("results.json"))
    assert "Traceback" not in proc.stderr + proc.stdout


def test_collisions_name_the_keys_that_differ():
    jobs = [(["seed=0", "logger=none"], "a"), (["seed=0", "logger=csv"], "a"), (["seed=1", "logger=none"], "b")]
    assert colliding_jobs(jobs) == {"a": [["seed=0", "logger=none"], ["seed=0", "logger=csv"]]}
    assert differing_keys([["seed=0", "logger=none"], ["seed=0", "logger=csv"]]) == ["logger"]
    assert differing_keys([["seed=0"], ["seed=0", "+x=1"]]) == ["+x"]
    text = collision_message(colliding_jobs(jobs), 3, 2, ["logger", "zoo"])
    assert "3 jobs have only 2 distinct job identities" in text and "[logger=none] and [logger=csv]" in text


def test_interruptible_raises_the_signal_and_restores_handlers():
    before = signal.getsignal(signal.SIGUSR2)
    with pytest.raises(JobInterrupted) as caught, interruptible():
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(5)  # the handler raises at once
    assert caught.value.name == "SIGUSR2" and caught.value.exit_code == 140
    assert not caught.value.will_requeue  # the default handler was there: nobody requeues
    assert signal.getsignal(signal.SIGUSR2) == before
