"""Debug presets (conf/debug/): their models get their own zoo keys, flagged debug."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stitchwork.zoo import get_model

FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]


@pytest.mark.parametrize("preset", ["fast", "overfit"])
def test_a_debug_run_leaves_no_model_a_normal_run_would_load(run_cli, tmp_path, preset):
    run_cli("train", f"debug={preset}", "model=mlp", "seed=7", "recipe.epochs=1", *FAST)
    (path,) = (tmp_path / "outputs" / "train").rglob("results.json")
    debug_key = json.loads(path.read_text())["metrics"]["zoo_key"]
    zoo = Path(json.loads(path.read_text())["metrics"]["zoo_path"]).parent
    assert json.loads((zoo / debug_key / "metadata.json").read_text())["debug"] is True
    normal = get_model(model="mlp", seed=7, recipe__epochs=1)  # trains its own model
    assert normal.zoo_entry.key != debug_key
    assert normal.zoo_entry.metadata["debug"] is False
