"""What identifies a model and a job: the rules of zoo/identity.py and sweep/identity.py."""

from __future__ import annotations

import os
import stat

import pytest

from stitchwork.data import Digits
from stitchwork.sweep.heatmaps import group_keys
from stitchwork.sweep.identity import identity_config, is_runtime_key, job_id
from stitchwork.training import check_trainer_options
from stitchwork.utils.atomic import atomic_torch_save, atomic_write_json, current_umask
from stitchwork.zoo import ModelZoo, debug_options, model_identity, trainer_identity

MODEL, RECIPE = {"_target_": "stitchwork.models.MLP", "width": 8}, {"lr": 0.1, "epochs": 3}


def key(data=None, trainer=None, seed=0) -> str:
    return ModelZoo.key(model_identity(MODEL, {"_target_": "d", **(data or {})}, RECIPE, seed, trainer))


def test_a_count_and_a_fraction_never_share_a_model_key():
    assert key({"train_subset": 1}) != key({"train_subset": 1.0})  # one example vs the whole split
    assert key({"train_subset": 1.0}) == key({"train_subset": None})  # the whole split is "all"
    assert key({"train_subset": 0.5}) != key({"train_subset": 1}) != key({"train_subset": 2})
    assert key({"val_size": 0}) == key({"val_size": 0.0})  # no validation examples either way
    assert key({"val_size": 1}) != key({"val_size": 0.1})


def test_default_config_keys_are_unchanged_by_the_trainer_part():
    # the key of the default digits/tiny10 config before issue 11 (trainer not in the identity)
    default_trainer = {"accelerator": "auto", "devices": 1, "enable_progress_bar": True,
                       "log_every_n_steps": 10, "deterministic": False}  # fmt: skip
    assert key(trainer=default_trainer) == key() == key(trainer={"accelerator": "cpu", "devices": [3]})
    assert trainer_identity(default_trainer) == {}


@pytest.mark.parametrize(
    "option",
    [{"limit_train_batches": 1}, {"limit_train_batches": 0.5}, {"overfit_batches": 1.0}, {"fast_dev_run": True},
     {"max_steps": 5}, {"devices": 2}, {"strategy": "ddp"}, {"deterministic": True},
     {"accumulate_grad_batches": 4}, {"gradient_clip_val": 1.0}, {"some_future_option": "x"}],
)  # fmt: skip
def test_every_trainer_option_that_can_change_weights_is_in_the_model_key(option):
    assert key(trainer=option) != key()
    assert model_identity(MODEL, {}, RECIPE, 0, option)["trainer"] == trainer_identity(option)


def test_limit_batches_one_batch_is_not_all_batches():
    assert key(trainer={"limit_train_batches": 1}) != key(trainer={"limit_train_batches": 1.0})
    assert key(trainer={"limit_train_batches": 1.0}) == key()  # 1.0 is Lightning's default: all
    assert key(trainer={"overfit_batches": 1}) != key(trainer={"overfit_batches": 1.0})


def test_debug_options_are_named():
    assert debug_options({"limit_train_batches": 1, "devices": 2, "enable_progress_bar": False}) == {
        "limit_train_batches": 1}
    assert debug_options({"limit_train_batches": 1.0, "max_steps": -1, "fast_dev_run": False}) == {}


def test_recipe_owned_trainer_options_are_refused_by_name():
    with pytest.raises(ValueError, match=r"trainer\.max_epochs=5 is not used.*Set recipe\.epochs instead"):
        check_trainer_options({"max_epochs": 5})
    with pytest.raises(ValueError, match=r"trainer\.precision='16-mixed' is not used.*recipe\.precision"):
        check_trainer_options({"precision": "16-mixed"})
    check_trainer_options({"devices": 1})


def test_job_identity_uses_the_same_rules():
    job = {"app": "stitch", "seed_a": 0, "data": {"_target_": "d", "train_subset": None, "num_workers": 0},
           "trainer": {"accelerator": "auto", "devices": 1, "enable_progress_bar": True},
           "similarity": {"svcca": {"keep": 0.99}}}  # fmt: skip
    same = {**job, "data": {**job["data"], "train_subset": 1.0, "num_workers": 8, "root": "/x"}, "device": "cuda",
            "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False}, "sweep_name": "s"}
    assert job_id(same) == job_id(job) and "trainer" not in identity_config(job)
    assert job_id({**job, "data": {**job["data"], "train_subset": 1}}) != job_id(same)
    assert job_id({**job, "data_b": {"train_subset": 1}}) != job_id({**job, "data_b": {"train_subset": 1.0}})
    assert job_id({**job, "trainer": {"limit_train_batches": 1}}) != job_id(job)
    assert job_id({**job, "similarity": {"svcca": {"keep": 1}}}) != job_id({**job, "similarity": {"svcca": {"keep": 1.0}}})


def test_runtime_keys_are_named_and_left_out_of_report_groups():
    for path in ("device", "logger.kind", "zoo.root", "trainer.enable_progress_bar", "trainer.accelerator",
                 "data.num_workers", "data_b.root", "sweep_name", "force"):  # fmt: skip
        assert is_runtime_key(path), path
    for path in ("trainer.devices", "trainer.limit_train_batches", "data.train_subset", "seed_b", "matching.lr"):
        assert not is_runtime_key(path), path
    rows = [{"config.device": d, "config.trainer.enable_progress_bar": d == "cpu", "config.trainer.devices": n,
             "config.seed_b": 1, "config.layer_pair.front": "conv1"} for d in ("cpu", "cuda") for n in (1, 2)]
    assert group_keys(rows) == ["config.trainer.devices"]


def test_a_subset_smaller_than_the_class_count_is_refused():
    for subset, n in ((1, 1), (9, 9), (0.0001, 1)):
        with pytest.raises(ValueError, match=rf"train_subset={subset!r} leaves {n} training example\(s\), fewer "
                           r"than the 10 classes of Digits.*at least 10"):  # fmt: skip
            Digits(train_subset=subset).setup()
    Digits(train_subset=10).setup()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        atomic_write_json(tmp_path / "results.json", {"a": 1})
        atomic_torch_save(tmp_path / "model.pt", {"w": 1})
    finally:
        os.umask(old)
    for name in ("results.json", "model.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_an_image_folder_root_is_its_data_a_torchvision_root_only_its_place():
    def data_key(target, root):
        return ModelZoo.key(model_identity(MODEL, {"_target_": target, "root": root, "num_workers": 2}, RECIPE, 0))

    folder, cifar = "stitchwork.data.ImageFolderData", "stitchwork.data.VisionData"
    assert data_key(folder, "/data/a") != data_key(folder, "/data/b")
    assert data_key(cifar, "/data/a") == data_key(cifar, "/data/b")
    job = {"data": {"_target_": folder, "root": "/data/a"}, "data_b": {"root": "/data/b"}}
    assert job_id(job) != job_id({**job, "data_b": {"root": "/data/c"}})  # side overrides too
