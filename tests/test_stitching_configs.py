"""Every conf/stitch and conf/matching file instantiates to a working factory / method."""

import inspect
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stitchwork.stitching import StitchLayer
from stitchwork.stitching import matching as methods
from stitchwork.stitching.api import method_name

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("path", sorted((CONF / "stitch").glob("*.yaml")), ids=lambda p: p.stem)
def test_stitch_config_builds_its_layer(path):
    factory = instantiate(OmegaConf.load(path))
    shape = (5, 16) if factory.func.tokens else (16, 4, 4)  # token stitches take (tokens, d)
    layer = factory(shape, shape)
    assert isinstance(layer, StitchLayer) and layer.kind == path.stem


@pytest.mark.parametrize("path", sorted((CONF / "matching").glob("*.yaml")), ids=lambda p: p.stem)
def test_matching_config_binds_known_hyper_parameters(path):
    method = instantiate(OmegaConf.load(path))
    assert method_name(method) == path.stem
    accepted = set(inspect.signature(method.func).parameters) | set(inspect.signature(methods.task_loss).parameters)
    assert set(method.keywords) <= accepted


def test_layer_pair_presets_leave_the_front_mandatory():
    default = OmegaConf.load(CONF / "layer_pair" / "default.yaml")
    assert OmegaConf.is_missing(default, "front") and OmegaConf.is_missing(default, "back")
    same = OmegaConf.load(CONF / "layer_pair" / "same.yaml")
    same.front = "conv3"
    assert same.back == "conv3"
