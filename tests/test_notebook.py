"""The notebook API: get_model names the app's zoo entry; README's "From a notebook" runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import stitchwork.apps.common as common
from stitchwork.zoo import get_model

ROOT = Path(__file__).resolve().parents[1]
FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]


def test_get_model_loads_what_the_train_app_trained(run_cli, tmp_path, monkeypatch):
    run_cli("train", "model=mlp", "seed=3", "recipe.epochs=1", *FAST)
    (path,) = (tmp_path / "outputs" / "train").rglob("results.json")
    record = json.loads(path.read_text())

    def no_training(*args, **kwargs):
        raise AssertionError("get_model trained a model the app had already stored")

    monkeypatch.setattr(common, "fit_classifier", no_training)
    net = get_model(model="mlp", data="digits", seed=3, recipe="sgd", recipe__epochs=1)
    assert net.zoo_entry.key == record["metrics"]["zoo_key"]
    with pytest.raises(AssertionError, match="already stored"):  # another seed is not in the zoo
        get_model(model="mlp", seed=4, **{"recipe.epochs": 1})


def test_readme_notebook_block_runs():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## From a notebook") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md#from-a-notebook", "exec"), scope)
    values = scope["cka"].values["linear_cka"]
    assert values.shape == (len(scope["cka"].rows), len(scope["cka"].cols))
    assert float(values.max()) <= 1.0 + 1e-9 and float(values.min()) >= 0.0
    assert scope["a"].zoo_entry.key != scope["b"].zoo_entry.key
    assert type(scope["merged"]) is type(scope["a"])
