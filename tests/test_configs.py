"""Every primary config composes, and every data, model and recipe config instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stitchwork.apps.config import conf_dir, register_resolvers
from stitchwork.models.base import CutModel
from stitchwork.training import TrainRecipe

from .real_format_files import write_imagefolder

CONF = conf_dir()
PRIMARY = sorted(p.stem for p in CONF.glob("*.yaml"))


def _names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture(autouse=True)
def _resolvers():
    register_resolvers()


@pytest.mark.parametrize("name", PRIMARY)
def test_primary_config_composes(name):
    required = {"report": ["dirs=[x]"], "stitch": ["layer_pair.front=conv4"]}  # the ??? values
    overrides = required.get(name, [])
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    assert OmegaConf.select(cfg, "hydra.run.dir") is not None


@pytest.mark.parametrize("data", _names("data"))
@pytest.mark.parametrize("model", _names("model"))
def test_every_model_builds_on_every_data_shape(data, model, tmp_path):
    overrides = [f"data={data}", f"model={model}"]
    if model == "module":  # a user's own network: an MLP on flat data, a ResNet-18 on images
        net = ("{_target_:torchvision.ops.MLP,in_channels:40,hidden_channels:[16,10]}" if data == "mnist1d"
               else "{_target_:torchvision.models.resnet18,num_classes:10}")  # fmt: skip
        overrides.append(f"model.module={net}")
    if data == "imagefolder":
        write_imagefolder(tmp_path, size=8)
        overrides += [f"data.root={tmp_path}", "data.image_size=32"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="layers", overrides=overrides)
    dm = instantiate(cfg.data)
    if data == "mnist1d" and model not in ("mlp", "module"):
        with pytest.raises(Exception, match="needs image input"):  # Hydra wraps the ValueError
            instantiate(cfg.model, input_shape=list(dm.input_shape), num_classes=dm.num_classes)
        return
    net = instantiate(cfg.model, input_shape=list(dm.input_shape), num_classes=dm.num_classes)
    assert isinstance(net, CutModel) and net.input_shape == tuple(dm.input_shape)


@pytest.mark.parametrize("recipe", _names("recipe"))
def test_every_recipe_is_valid(recipe):
    values = OmegaConf.to_container(OmegaConf.load(CONF / "recipe" / f"{recipe}.yaml"))
    assert TrainRecipe.from_dict(values).epochs > 0 or recipe == "pretrained"


def test_conf_dir_is_the_repository_conf():
    assert CONF == Path(__file__).resolve().parents[1] / "conf"


#: Apps whose work runs on the top-level ``device`` (train, layers and report have none).
DEVICE_APPS = ["combine", "compare", "rebasin", "stitch", "visualize"]


@pytest.mark.parametrize("name", DEVICE_APPS)
def test_device_defaults_to_auto_and_is_not_part_of_the_job_identity(name):
    from stitchwork.apps.config import job_id

    required = ["layer_pair.front=conv4"] if name == "stitch" else []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        default = compose(config_name=name, overrides=required)
        on_gpu = compose(config_name=name, overrides=[*required, "device=cuda:1"])
        other_seed = compose(config_name=name, overrides=[*required, "seed_b=7", "device=cuda:1"])
    assert default.device == "auto" and on_gpu.device == "cuda:1"
    assert job_id(on_gpu) == job_id(default)  # a job done on a GPU node is done
    assert job_id(other_seed) != job_id(on_gpu)


#: tiny option -> the apps it serves (conf/tiny/ headers say which)
TINY_APPS = {"two_models": ["stitch", "compare"], "one_model": ["train", "rebasin", "combine", "visualize"],
             "mlp": ["rebasin", "combine"], "cnn": ["rebasin", "combine", "visualize"]}  # fmt: skip


def test_every_tiny_option_shrinks_training_after_the_presets():
    assert set(TINY_APPS) == set(_names("tiny"))
    for option, apps in TINY_APPS.items():
        for app in apps:
            required = ["layer_pair.front=conv4"] if app == "stitch" else []
            with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                cfg = compose(config_name=app, overrides=[*required, f"tiny={option}"])
            recipes = [cfg.recipe_a, cfg.recipe_b] if "recipe_a" in cfg else [cfg.recipe]
            assert [r.epochs for r in recipes] == [1] * len(recipes), (option, app)
            assert cfg.trainer.accelerator == "cpu" and cfg.trainer.enable_progress_bar is False
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):  # applied after the preset
        cfg = compose(config_name="stitch", overrides=["experiment=more_is_better", "tiny=two_models"])
    assert (cfg.recipe_a.epochs, cfg.recipe_b.epochs, cfg.model_a.width) == (1, 1, 0.5)
