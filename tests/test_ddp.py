"""Data-parallel base training with two CPU processes (gloo): one record, one zoo entry."""

from __future__ import annotations

import json
import os
from pathlib import Path


def test_ddp_training_on_two_cpu_processes(run_cli, tmp_path):
    proc = run_cli("train", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "model=mlp",
                   "recipe.epochs=2", "trainer.enable_progress_bar=false", timeout=600)
    output = proc.stdout + proc.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    records = list((tmp_path / "outputs").rglob("results.json"))
    assert len(records) == 1  # rank 1 computes but never records
    record = json.loads(records[0].read_text())
    assert record["status"] == "ok"
    # both ranks end with the same weights, so both print the same test accuracy
    test_lines = [line for line in proc.stdout.splitlines() if line.startswith("│ test")]
    assert len(test_lines) == 2 and test_lines[0] == test_lines[1]
    zoo = Path(os.environ["STITCHWORK_ZOO"])
    assert (zoo / Path(record["metrics"]["zoo_path"]).name / "model.pt").is_file()
    assert not any((zoo / ".partial").glob("*/last.ckpt"))  # resumable state removed when done
