"""SimCLR-style donors: NT-Xent against a numpy loop, seeded augmentations, identity, tiny training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from stitchwork.data import Digits
from stitchwork.models import MLP, Tiny10
from stitchwork.training import TrainRecipe, fit_classifier
from stitchwork.training.ssl import SSLOptions, augment, nt_xent
from stitchwork.zoo import ModelZoo, model_identity

CONF = "conf/recipe/simclr.yaml"


def _load(path: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path))


def numpy_nt_xent(z1: np.ndarray, z2: np.ndarray, t: float) -> float:
    """SimCLR eq. 1, one anchor at a time, in float64."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2, total = len(z), 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        others = [math.exp(z[i] @ z[k] / t) for k in range(n2) if k != i]
        total += -math.log(math.exp(z[i] @ z[j] / t) / sum(others))
    return total / n2


@pytest.mark.parametrize("t", [0.1, 0.5, 2.0])
def test_nt_xent_matches_a_loop_over_anchors(t):
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 5, generator=g, dtype=torch.float64)
    assert nt_xent(z1, z2, t).item() == pytest.approx(numpy_nt_xent(z1.numpy(), z2.numpy(), t), rel=1e-10)


def test_nt_xent_is_lowest_when_views_agree():
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    assert nt_xent(z, z, 0.1) < nt_xent(z, torch.randn(16, 8), 0.1)


@pytest.mark.parametrize("shape", [(6, 1, 8, 8), (6, 1, 40), (6, 40)])
def test_augment_is_seeded_and_shift_is_a_zero_filled_translation(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    opts = SSLOptions()
    a = augment(x, opts, torch.Generator().manual_seed(5))
    assert torch.equal(a, augment(x, opts, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, augment(x, opts, torch.Generator().manual_seed(6)))
    only_shift = SSLOptions(noise=0.0, scale=0.0, drop=0.0, shift=2)
    s = augment(x, only_shift, torch.Generator().manual_seed(5))
    for i in range(shape[0]):  # each example equals x[i] moved by some offset within ±2, zeros in
        assert any(torch.equal(s[i], _moved(x[i], o)) for o in _offsets(x.dim() - 1 if x.dim() < 4 else 2))


def _offsets(dims):
    grid = [(a,) for a in range(-2, 3)]
    return grid if dims == 1 else [(a, b) for a in range(-2, 3) for b in range(-2, 3)]


def _moved(x, offset):
    out = torch.zeros_like(x)
    src, dst = [slice(None)] * x.dim(), [slice(None)] * x.dim()
    for k, o in enumerate(offset):
        axis = x.dim() - len(offset) + k
        size = x.shape[axis]
        src[axis] = slice(max(0, o), size + min(0, o))
        dst[axis] = slice(max(0, -o), size - max(0, o))
    out[tuple(dst)] = x[tuple(src)]
    return out


def _recipe(**ssl) -> dict:
    cfg = _load(CONF)
    cfg["ssl"].update(ssl)
    return TrainRecipe.from_dict(cfg).to_dict()


def _key(recipe: dict) -> str:
    return ModelZoo.key(model_identity({"_target_": "m"}, {"_target_": "d"}, recipe, 0))


@pytest.mark.parametrize("key,value", [
    ("temperature", 0.2), ("proj_hidden", 32), ("proj_dim", 16), ("noise", 0.3), ("shift", 2),
    ("scale", 0.4), ("drop", 0.2), ("probe_epochs", 5), ("probe_lr", 1e-3),
])  # fmt: skip
def test_every_ssl_option_changes_the_zoo_key(key, value):
    assert _key(_recipe(**{key: value})) != _key(_recipe())


def test_ssl_epochs_change_the_key_and_supervised_keys_are_untouched():
    base = _recipe()
    assert _key({**base, "epochs": 3}) != _key(base)
    sgd = _load("conf/recipe/sgd.yaml")
    assert "ssl" not in TrainRecipe.from_dict(sgd).to_dict()
    assert TrainRecipe.from_dict(sgd).to_dict() == {**sgd}  # same dict as before the ssl field
    assert _key(TrainRecipe.from_dict({**sgd, "ssl": {}}).to_dict()) != _key(sgd)


@pytest.mark.parametrize("bad,needle", [
    ({"temperature": 0}, "recipe.ssl.temperature"), ({"drop": 1.0}, "recipe.ssl.drop"),
    ({"tau": 1}, "unknown recipe.ssl keys ['tau']"),
])  # fmt: skip
def test_bad_ssl_options_name_the_key(bad, needle):
    with pytest.raises(ValueError, match=None) as err:
        TrainRecipe.from_dict({"ssl": bad})
    assert needle in str(err.value)


def _tiny_recipe(epochs=6):
    cfg = _load(CONF)
    cfg.update(epochs=epochs, batch_size=128)
    cfg["ssl"].update(probe_epochs=30)
    return TrainRecipe.from_dict(cfg)


@pytest.mark.parametrize("build", [lambda: MLP(input_shape=(1, 8, 8), num_classes=10, depth=2, width=64),
                                   lambda: Tiny10(input_shape=(1, 8, 8), num_classes=10, width=0.5)])
def test_ssl_loss_falls_and_the_probe_beats_chance(build):
    torch.manual_seed(0)
    data = Digits(train_subset=600)
    net = build()
    metrics = fit_classifier(net, data, _tiny_recipe(), seed=0)
    curve = metrics["ssl_loss"]
    assert curve[-1] < curve[0] - MARGIN_LOSS, curve
    assert metrics["test_acc"] > 0.1 + MARGIN_ACC, metrics["test_acc"]
    head = list(net.stages.values())[-1]
    torch.manual_seed(0)
    again = build()
    fit_classifier(again, Digits(train_subset=600), _tiny_recipe(), seed=0)
    assert torch.equal(list(again.stages.values())[-1].weight, head.weight)  # seeded: reproducible


#: Measured over seeds 0-2 with 1 and 2 threads (loaded 2-core box): the NT-Xent loss falls
#: 0.21-0.42 in 6 epochs; probe test accuracy 0.84-0.90 (MLP), 0.61-0.68 (tiny10 x0.5), chance 0.1.
MARGIN_LOSS = 0.05
MARGIN_ACC = 0.3


def test_trainer_options_the_ssl_loop_would_ignore_are_refused():
    recipe = _tiny_recipe(epochs=1)
    with pytest.raises(ValueError, match="trainer.limit_train_batches=1 is not supported with recipe.ssl"):
        fit_classifier(MLP((1, 8, 8), 10, depth=1, width=8), Digits(train_subset=50), recipe,
                       trainer_options={"limit_train_batches": 1})


def test_ssl_recipe_trains_a_torchvision_resnet18():
    from stitchwork.models.outside import torchvision_model

    cfg = _load(CONF)
    cfg.update(epochs=2, batch_size=64)
    cfg["ssl"]["probe_epochs"] = 5
    data = Digits(image_size=16, train_subset=200)
    data.setup()
    torch.manual_seed(0)
    net = torchvision_model(data.input_shape, 10, "resnet18")  # encoder: conv1..avgpool, probe: fc
    metrics = fit_classifier(net, data, TrainRecipe.from_dict(cfg), seed=0)
    # measured (seed 0, 1 thread): NT-Xent 4.20 -> 3.89, probe test accuracy 0.61
    assert metrics["ssl_loss"][-1] < metrics["ssl_loss"][0] - MARGIN_LOSS, metrics["ssl_loss"]
    assert metrics["test_acc"] > 0.1 + 0.15, metrics["test_acc"]
