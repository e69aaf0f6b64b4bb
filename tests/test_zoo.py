"""The model zoo: content addressing, reuse, one training under concurrency, corruption."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from stitchwork.models import MLP
from stitchwork.zoo import CorruptCheckpointError, ModelZoo, model_identity

IDENTITY = model_identity({"_target_": "stitchwork.models.MLP", "width": 8}, {"_target_": "x", "num_workers": 4},
                          {"lr": 0.1}, seed=0)


def _build():
    return MLP((4,), 3, depth=1, width=8)


class CountingTrainer:
    def __init__(self):
        self.calls = 0

    def __call__(self, model):
        self.calls += 1
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(0.5)
        return {"test_acc": 0.75}


def test_second_request_loads_instead_of_training(tmp_path):
    zoo, train = ModelZoo(tmp_path), CountingTrainer()
    first, entry = zoo.get_or_train(IDENTITY, _build, train)
    second, again = zoo.get_or_train(IDENTITY, _build, train)
    assert train.calls == 1
    assert entry.key == again.key == ModelZoo.key(IDENTITY)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    meta = json.loads((entry.path / "metadata.json").read_text())
    assert meta["metrics"] == {"test_acc": 0.75}
    assert meta["identity"]["seed"] == 0 and "git" in meta and meta["wall_time_s"] >= 0
    assert [e.key for e in zoo.entries()] == [entry.key]


def test_identity_ignores_runtime_settings_but_not_the_recipe():
    base = model_identity({"w": 1}, {"name": "digits", "num_workers": 0, "root": "a", "batch_size": 64}, {"lr": 0.1}, 0)
    runtime = model_identity({"w": 1}, {"name": "digits", "num_workers": 8, "root": "b", "batch_size": 512}, {"lr": 0.1}, 0)
    assert ModelZoo.key(base) == ModelZoo.key(runtime)
    assert ModelZoo.key(base) != ModelZoo.key(model_identity({"w": 1}, {"name": "digits"}, {"lr": 0.2}, 0))
    assert ModelZoo.key(base) != ModelZoo.key(model_identity({"w": 1}, {"name": "digits"}, {"lr": 0.1}, 1))
    assert ModelZoo.key(base) != ModelZoo.key(
        model_identity({"w": 1}, {"name": "digits", "train_subset": 100}, {"lr": 0.1}, 0))


@pytest.mark.parametrize("damage", ["truncate", "garbage_metadata", "delete_checkpoint"])
def test_corrupt_entry_is_moved_aside_and_retrained(tmp_path, damage):
    zoo, train = ModelZoo(tmp_path), CountingTrainer()
    _, entry = zoo.get_or_train(IDENTITY, _build, train)
    ckpt = entry.checkpoint
    if damage == "truncate":
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    elif damage == "garbage_metadata":
        (entry.path / "metadata.json").write_text("{not json")
    else:
        ckpt.unlink()
    _, again = zoo.get_or_train(IDENTITY, _build, train)
    assert train.calls == 2
    assert again.checkpoint.is_file()
    moved = list((tmp_path / ".corrupt").iterdir())
    assert len(moved) == 1 and moved[0].name.startswith(entry.key)  # kept, not deleted


def test_corrupt_entry_with_on_corrupt_error_is_reported(tmp_path):
    zoo, train = ModelZoo(tmp_path), CountingTrainer()
    _, entry = zoo.get_or_train(IDENTITY, _build, train)
    entry.checkpoint.write_bytes(b"\0" * 64)
    with pytest.raises(CorruptCheckpointError, match="does not match the checksum"):
        zoo.get_or_train(IDENTITY, _build, train, on_corrupt="error")
    assert train.calls == 1 and entry.checkpoint.exists()


def test_checkpoint_of_another_architecture_is_reported(tmp_path):
    zoo, train = ModelZoo(tmp_path), CountingTrainer()
    _, entry = zoo.get_or_train(IDENTITY, _build, train)
    with pytest.raises(CorruptCheckpointError, match="cannot be loaded"):
        zoo.load(entry.key, lambda: MLP((4,), 3, depth=2, width=8))


def test_two_processes_train_one_model_once(tmp_path):
    log = tmp_path / "trainings.log"
    script = textwrap.dedent(f"""
        import time, torch
        from stitchwork.models import MLP
        from stitchwork.zoo import ModelZoo
        def train(model):
            with open({str(log)!r}, "a") as f:
                f.write("trained\\n")
            time.sleep(2.0)
            return {{"test_acc": 1.0}}
        model, entry = ModelZoo({str(tmp_path / "zoo")!r}).get_or_train(
            {{"model": "mlp"}}, lambda: MLP((4,), 3, depth=1, width=8), train)
        print(entry.key)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    keys = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert keys[0] == keys[1]
    assert log.read_text().count("trained") == 1
