"""One config names one model and one result: the identity defects of issue 11, through the CLI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from stitchwork.apps.failures import USER_ERROR_EXIT

FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
MLP = ["model=mlp", "recipe.epochs=10", *FAST]
#: Test accuracy of that MLP on digits, measured over seeds 0-3 (the same with 1 and 2 torch
#: threads): 0.86-0.95 trained normally, 0.12-0.21 with one training batch per epoch.
FULL, CRIPPLED = 0.75, 0.4
#: A user's shell: no HYDRA_FULL_ERROR, so user errors print one paragraph without a traceback.
USER_SHELL = {"HYDRA_FULL_ERROR": "0"}


def _record(root: Path) -> dict:
    (path,) = sorted(root.rglob("results.json"))
    return json.loads(path.read_text())


def _out(proc) -> str:
    return proc.stdout + proc.stderr


def _metadata(zoo: Path, key: str) -> dict:
    return json.loads((zoo / key / "metadata.json").read_text())


def test_debug_trainer_options_never_poison_the_zoo(run_cli, tmp_path):
    zoo = tmp_path / "zoo"
    debug = run_cli("train", "seed=3", "+trainer.limit_train_batches=1", *MLP, f"zoo.root={zoo}",
                    "hydra.run.dir=debug")  # fmt: skip
    assert "debug trainer options {'limit_train_batches': 1}" in _out(debug)
    crippled = _record(tmp_path / "debug")["metrics"]
    normal = run_cli("train", "seed=3", *MLP, f"zoo.root={zoo}", "hydra.run.dir=normal")
    assert "training base model" in _out(normal)  # a fresh model, not the crippled one
    full = _record(tmp_path / "normal")["metrics"]
    assert full["zoo_key"] != crippled["zoo_key"]
    assert _record(tmp_path / "debug")["identity"] != _record(tmp_path / "normal")["identity"]  # two jobs too
    assert crippled["test_acc"] < CRIPPLED and full["test_acc"] >= FULL  # seed 3: 0.14 and 0.95
    meta_debug, meta_full = _metadata(zoo, crippled["zoo_key"]), _metadata(zoo, full["zoo_key"])
    assert meta_debug["debug"] is True and meta_debug["trainer"]["limit_train_batches"] == 1
    assert meta_debug["identity"]["trainer"] == {"limit_train_batches": 1}
    assert meta_full["debug"] is False and "trainer" not in meta_full["identity"]
    assert meta_full["trainer"] == {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                                    "log_every_n_steps": 10, "deterministic": False}  # fmt: skip
    assert not (zoo / ".partial" / full["zoo_key"]).exists()  # nothing left once stored
    assert not (zoo / ".partial" / crippled["zoo_key"]).exists()


def test_trainer_max_epochs_is_refused_with_the_key_to_use(run_cli, tmp_path):
    proc = run_cli("train", "+trainer.max_epochs=5", *MLP, f"zoo.root={tmp_path / 'zoo'}", check=False, env=USER_SHELL)
    assert proc.returncode == USER_ERROR_EXIT and "Traceback" not in _out(proc)  # one paragraph
    assert "trainer.max_epochs=5 is not used" in _out(proc) and "Set recipe.epochs instead" in _out(proc)
    assert not (tmp_path / "zoo").exists() or not any((tmp_path / "zoo").glob("*/model.pt"))


def test_one_example_is_refused_and_the_whole_split_is_all(run_cli, tmp_path):
    zoo = tmp_path / "zoo"
    one = run_cli("train", "data.train_subset=1", *MLP, f"zoo.root={zoo}", "hydra.run.dir=one", check=False,
                  env=USER_SHELL)  # fmt: skip
    assert one.returncode == USER_ERROR_EXIT and "Traceback" not in _out(one)  # one paragraph
    assert "train_subset=1 leaves 1 training example(s), fewer than the 10 classes of Digits" in _out(one)
    assert not list(zoo.glob("*/model.pt"))
    run_cli("train", "data.train_subset=1.0", *MLP, f"zoo.root={zoo}", "hydra.run.dir=whole")
    whole = _record(tmp_path / "whole")
    assert whole["status"] == "ok" and whole["metrics"]["test_acc"] >= FULL  # seed 0: 0.86, the whole split
    again = run_cli("train", "data.train_subset=null", *MLP, f"zoo.root={zoo}", "hydra.run.dir=all")
    assert "training base model" not in _out(again)  # 1.0 and null are one model
    assert _record(tmp_path / "all")["metrics"]["zoo_key"] == whole["metrics"]["zoo_key"]
    assert _record(tmp_path / "all")["identity"] == whole["identity"]  # and one job


@pytest.mark.parametrize("content", [b"", b"this is no checkpoint\x00\x01" * 50], ids=["zero-byte", "garbage"])
def test_a_partial_checkpoint_that_does_not_load_is_moved_aside(run_cli, tmp_path, content):
    zoo = tmp_path / "zoo"
    first = run_cli("train", "recipe.epochs=2", "model=mlp", *FAST, f"zoo.root={zoo}", "hydra.run.dir=first")
    key = _record(tmp_path / "first")["metrics"]["zoo_key"]
    assert "training base model" in _out(first)
    for path in sorted((zoo / key).iterdir()):
        path.unlink()
    (zoo / key).rmdir()
    (zoo / ".partial" / key).mkdir(parents=True)
    (zoo / ".partial" / key / "last.ckpt").write_bytes(content)
    rerun = run_cli("train", "recipe.epochs=2", "model=mlp", *FAST, f"zoo.root={zoo}", "hydra.run.dir=rerun")
    assert f"partial checkpoint {zoo / '.partial' / key / 'last.ckpt'} does not load" in _out(rerun)
    record = _record(tmp_path / "rerun")
    assert record["status"] == "ok" and record["metrics"]["zoo_key"] == key and not record["metrics"]["resumed"]
    (aside,) = (zoo / ".corrupt").glob(f"{key}-partial-*")
    assert (aside / "last.ckpt").read_bytes() == content  # kept, never deleted
    assert (zoo / key / "model.pt").is_file() and not (zoo / ".partial" / key).exists()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_results_zoo_and_report_files_follow_the_umask(run_cli, tmp_path, umask, mode):
    zoo = tmp_path / "zoo"
    old = os.umask(umask)  # inherited by the apps' processes
    try:
        run_cli("train", "-m", "recipe.epochs=1", "model=mlp", *FAST, f"zoo.root={zoo}", "sweep_name=perm")
        run_cli("report", f"dirs=[{tmp_path / 'multirun' / 'train' / 'perm'}]")
    finally:
        os.umask(old)
    record = next((tmp_path / "multirun" / "train" / "perm").rglob("results.json"))
    key = json.loads(record.read_text())["metrics"]["zoo_key"]
    report = tmp_path / "multirun" / "train" / "perm" / "report"
    files = [record, zoo / key / "metadata.json", zoo / key / "model.pt", *sorted(report.iterdir())]
    assert len(files) >= 5
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
