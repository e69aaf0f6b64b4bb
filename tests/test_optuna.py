"""Optuna searches: ``objective`` turns a job's record into the float a sweeper optimises.

The three-trial search runs the real console script with the preset of
``conf/hparams_search/`` on one-epoch base models; the rest checks the pieces in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from stitchwork.apps import sweeper_check
from stitchwork.apps.config import conf_dir, job_id, register_resolvers
from stitchwork.apps.config_check import check_config
from stitchwork.apps.objective import check_objective, sweeper_return
from stitchwork.apps.stitch import OBJECTIVES
from stitchwork.apps.validate import UserError

REPO = Path(__file__).resolve().parents[1]
PRESET = "digits_task_loss_optuna"
TINY = ["tiny=two_models"]  # one-epoch base models on the CPU (shared with the other stitch tests)


def _compose(app: str, overrides: list[str], hydra: bool = False):
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name=app, overrides=overrides, return_hydra_config=hydra)


def test_objective_is_outside_the_job_identity():
    plain = _compose("stitch", ["layer_pair.front=conv4"])
    chosen = _compose("stitch", ["layer_pair.front=conv4", "objective=relative_acc"])
    assert plain.objective is None and chosen.objective == "relative_acc"
    assert job_id(plain) == job_id(chosen)


def test_the_app_returns_its_record_or_the_objective_metric_as_a_float():
    record = {"status": "ok", "metrics": {"relative_acc": 0.875, "epochs": 3, "cached": True, "stitch": "affine"}}
    assert sweeper_return(OmegaConf.create({"objective": None}), record) is record
    value = sweeper_return(OmegaConf.create({"objective": "relative_acc"}), record)
    assert value == 0.875 and type(value) is float
    assert sweeper_return(OmegaConf.create({"objective": "epochs"}), record) == 3.0
    with pytest.raises(UserError, match=r"^objective=cached is not a scalar metric of this job; valid: epochs, relative_acc$"):
        sweeper_return(OmegaConf.create({"objective": "cached"}), record)  # a bool is no objective


def test_a_bad_objective_is_refused_at_config_time_listing_the_valid_names():
    cfg = _compose("stitch", ["layer_pair.front=conv4", "objective=relative_accuracy"])
    with pytest.raises(UserError) as err:
        check_objective(cfg, OBJECTIVES)
    assert str(err.value).startswith("objective=relative_accuracy is not a scalar metric of this job; valid: ")
    assert {"relative_acc", "stitched_acc", "dm_residual_test", "penalty"} <= set(str(err.value).split(": ")[1].split(", "))
    with pytest.raises(UserError, match="objective must be null or the name of a metric, got 3"):
        check_config(_compose("train", ["objective=3"]))
    check_config(_compose("train", ["objective=test_acc"]))  # names are checked where the app knows them


def test_a_stitch_job_with_an_unknown_objective_fails_before_any_training(tmp_path):
    cases = [["layer_pair.front=conv4", "objective=relative_accuracy"], ["layer_pair=matrix", "objective=relative_acc"]]
    batch = [{"app": "stitch", "args": [*args, *TINY], "cwd": str(tmp_path / f"case{i}")} for i, args in enumerate(cases)]
    (tmp_path / "cases.json").write_text(json.dumps(batch))
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}  # as a user's shell has it
    subprocess.run([sys.executable, str(REPO / "tests" / "cli_batch.py"), str(tmp_path / "cases.json"),
                    str(tmp_path / "out.json")], env=env, check=True, timeout=600)  # one process for both
    single, matrix = json.loads((tmp_path / "out.json").read_text())
    assert single["code"] == matrix["code"] == 2, (single, matrix)
    assert "objective=relative_accuracy is not a scalar metric of this job; valid: acc_a, acc_b" in single["output"]
    assert "a stitching matrix records matrices" in matrix["output"]
    for case in (single, matrix):
        assert "Traceback" not in case["output"] and "training base model" not in case["output"]


def test_asking_for_optuna_without_the_plugin_names_the_extra(monkeypatch):
    assert sweeper_check.wants_optuna(["--multirun", f"hparams_search={PRESET}"])
    assert sweeper_check.wants_optuna(["-m", "hydra/sweeper=optuna"])
    assert not sweeper_check.wants_optuna(["-m", "experiment=demo", "hparams_search=nope"])
    monkeypatch.setattr(sweeper_check.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"pip install -e '\.\[optuna\]'"):
        sweeper_check.require_optuna_for_argv(["-m", f"hparams_search={PRESET}"])


def test_the_preset_is_a_seeded_tpe_search_of_task_loss_lr_and_epochs():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = _compose("stitch", [f"hparams_search={PRESET}"], hydra=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 0
    assert set(sweeper.params) == {"matching.lr", "matching.epochs"} and "log" in sweeper.params["matching.lr"]
    assert cfg.objective == "relative_acc" and cfg.matching._target_.endswith("task_loss")
    assert cfg.sweep_name == PRESET
    header = (conf_dir() / "hparams_search" / f"{PRESET}.yaml").read_text().splitlines()
    assert header[0] == "# @package _global_"
    assert any(f"stitchwork-stitch --multirun hparams_search={PRESET}" in line for line in header)


def _records(sweep: Path) -> list[dict]:
    """The sweep's job records, each checked to lie in the folder its identity names."""
    records = {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))}
    assert all(folder == r["identity"] for folder, r in records.items())
    return list(records.values())


def test_three_optuna_trials_are_three_jobs_and_the_best_is_the_best_metric(run_cli, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    search = ["--multirun", f"hparams_search={PRESET}", *TINY, "matching.epochs=choice(1,2)"]
    proc = run_cli("stitch", *search, "hydra.sweeper.n_trials=3")
    sweep = tmp_path / "multirun" / "stitch" / PRESET
    records = _records(sweep)
    assert len(records) == 3 and len({r["identity"] for r in records}) == 3
    assert all(r["status"] == "ok" and r["config"]["objective"] == "relative_acc" for r in records)
    trials = {(r["config"]["matching"]["lr"], r["config"]["matching"]["epochs"]): r["metrics"]["relative_acc"]
              for r in records}  # fmt: skip
    assert all(epochs in (1, 2) for _, epochs in trials)
    best = OmegaConf.to_container(OmegaConf.load(sweep / "optimization_results.yaml"))
    params = (best["best_params"]["matching.lr"], best["best_params"]["matching.epochs"])
    assert trials[params] == best["best_value"] == max(trials.values())  # the app returned the metric
    assert f"Sweep multirun/stitch/{PRESET}: 3 jobs: 3 ok, 0 skipped as done, 0 failed" in proc.stderr
    # The same seed proposes the same first trial: skipped as done, it returns its recorded value.
    again = run_cli("stitch", *search, "hydra.sweeper.n_trials=1")
    assert f"Sweep multirun/stitch/{PRESET}: 1 job: 0 ok, 1 skipped as done, 0 failed" in again.stderr
    first = OmegaConf.to_container(OmegaConf.load(sweep / "optimization_results.yaml"))
    assert first["best_value"] == trials[(first["best_params"]["matching.lr"], first["best_params"]["matching.epochs"])]
    assert len(_records(sweep)) == 3
