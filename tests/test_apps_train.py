"""The train, layers and report apps end to end, as a user runs them (subprocesses)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from stitchwork.apps.logging import run_id

FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]


def _results(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


def test_train_app_trains_reports_and_skips_when_done(run_cli, tmp_path):
    first = run_cli("train", *FAST)
    records = _results(tmp_path / "outputs" / "train")
    assert len(records) == 1
    record = records[0]
    # The README's promise: tiny10 on digits with the default recipe reaches >= 90%.
    assert record["status"] == "ok" and record["metrics"]["test_acc"] >= 0.9
    assert Path(record["metrics"]["zoo_path"], "model.pt").is_file()
    assert Path(record["metrics"]["zoo_path"]).parent == Path(os.environ["STITCHWORK_ZOO"])
    job_dir = next((tmp_path / "outputs" / "train").rglob("results.json")).parent
    assert job_dir.name == record["identity"]  # folder named by the identity hash
    assert "conv8" in first.stdout and "64×2×2" in first.stdout and "test" in first.stdout
    assert record["config"]["model"]["_target_"] == "stitchwork.models.Tiny10"
    assert record["git"]["commit"] is None or len(record["git"]["commit"]) == 40

    second = run_cli("train", *FAST)
    assert "skipping train job" in second.stderr + second.stdout
    assert _results(tmp_path / "outputs" / "train")[0]["started"] == record["started"]

    third = run_cli("train", *FAST, "force=true")
    assert "training base model" not in third.stderr + third.stdout  # the zoo still has it
    assert _results(tmp_path / "outputs" / "train")[0]["started"] > record["started"]


def test_multirun_records_a_failed_job_and_runs_its_siblings(run_cli, tmp_path):
    proc = run_cli("train", "--multirun", "model=mlp", "recipe.epochs=2", "recipe.lr=0.05,1e30", *FAST,
                   "sweep_name=lr", check=False)
    assert proc.returncode != 0  # Hydra reports the failure after the sweep
    assert "2 jobs: 1 ok, 0 skipped as done, 1 failed, 0 interrupted." in proc.stderr  # the closing summary
    assert "failed: NonFiniteLossError" in proc.stderr
    records = _results(tmp_path / "multirun" / "train" / "lr")
    assert sorted(r["status"] for r in records) == ["failed", "ok"]
    failed = next(r for r in records if r["status"] == "failed")
    assert "NonFiniteLossError" in failed["error"] and failed["config"]["recipe"]["lr"] == 1e30

    report = run_cli("report", f"dirs=[{tmp_path / 'multirun' / 'train' / 'lr'}]")
    assert "2 jobs (1 ok, 1 failed, 0 interrupted, 0 unfinished)" in report.stdout
    lines = (tmp_path / "multirun" / "train" / "lr" / "report" / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["status"] for line in lines) == ["failed", "ok"]
    with (tmp_path / "multirun" / "train" / "lr" / "report" / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["status"] for r in rows) == ["failed", "ok"]
    assert {r["config.recipe.lr"] for r in rows} == {"0.05", "1e+30"}


def test_layers_app_lists_cut_points_with_shapes(run_cli):
    proc = run_cli("layers", "model=resnet20", "model.width=2")
    for name, shape in [("stem", "32×8×8"), ("layer2_0", "64×4×4"), ("layer3_2", "128×2×2"), ("pool", "128")]:
        line = next(line for line in proc.stdout.splitlines() if f" {name} " in line)
        assert shape in line


def test_bad_model_option_fails_with_a_clear_message(run_cli, tmp_path):
    proc = run_cli("train", "model.width=0", *FAST, check=False)
    assert proc.returncode != 0
    assert "model.width must be a positive finite number, got 0" in proc.stderr  # names the key typed
    record = _results(tmp_path / "outputs")[0]
    assert record["status"] == "failed" and "model.width must be a positive finite number" in record["error"]


def test_wandb_offline_sweep_writes_one_run_per_job_with_the_logged_keys(run_cli, tmp_path):
    # a zoo of its own, so that both models are trained here and their curves logged
    run_cli("train", "--multirun", "model=mlp", "recipe.epochs=1", "seed=0,1", "logger=wandb", "sweep_name=wb",
            f"zoo.root={tmp_path / 'zoo'}", *FAST, env={"WANDB_MODE": "offline"})
    job_dirs = [p.parent for p in (tmp_path / "multirun" / "train" / "wb").rglob("results.json")]
    assert len(job_dirs) == 2
    for job_dir in job_dirs:
        runs = list((job_dir / "wandb").glob("offline-run-*"))
        assert len(runs) == 1  # one run per job, finished before the next job starts
        (run_file,) = runs[0].glob("run-*.wandb")
        assert run_file.name == f"run-{run_id('train', job_dir.name, 'stitchwork', 'wb')}.wandb"  # job + sweep
        content = run_file.read_bytes()
        for key in (b"train/loss", b"val/acc", b"test_acc", b'"wb"'):  # curves, metrics, group
            assert key in content, key
