"""Training recipes: schedules, validation, and a loss that goes NaN."""

from __future__ import annotations

import math

import pytest
import torch

from stitchwork.data import Digits
from stitchwork.models import MLP
from stitchwork.training import NonFiniteLossError, TrainRecipe, evaluate, fit_classifier, lr_factor

QUIET = {"enable_progress_bar": False, "accelerator": "cpu", "logger": False}


def test_step_schedule_drops_tenfold_at_one_and_two_thirds():
    recipe = TrainRecipe(schedule="step", epochs=3)
    factors = [lr_factor(s, 300, recipe, 100) for s in (0, 99, 100, 199, 200, 299)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_cosine_schedule_with_warmup():
    recipe = TrainRecipe(schedule="cosine", epochs=10, warmup_epochs=1)
    assert lr_factor(0, 100, recipe, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, recipe, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, recipe, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, recipe, 10) == pytest.approx(0.5)
    assert lr_factor(100, 100, recipe, 10) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("values, match", [
    ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'; valid: sgd, adam, adamw"),
    ({"schedule": "poly"}, "unknown schedule 'poly'; valid: constant, cosine, step"),
    ({"lr": 0}, r"recipe.lr must be positive, got 0"),
    ({"epochs": -1}, r"recipe.epochs must be >= 0"),
    ({"momentun": 0.9}, r"unknown recipe keys \['momentun'\]"),
])
def test_bad_recipes_name_the_value(values, match):
    with pytest.raises(ValueError, match=match):
        TrainRecipe.from_dict(values)


def test_fit_reaches_high_accuracy_on_digits_and_evaluate_agrees():
    torch.manual_seed(0)
    data = Digits()
    model = MLP(data.input_shape, 10, depth=2, width=64)
    metrics = fit_classifier(model, data, TrainRecipe(optimizer="adam", lr=3e-3, epochs=10, schedule="cosine"), seed=0, trainer_options=QUIET)
    assert metrics["test_acc"] > 0.9
    again = evaluate(model, data.loader("test", shuffle=False))
    assert again["acc"] == metrics["test_acc"] and again["n"] == 359
    with torch.no_grad():
        logits = model.eval()(torch.stack([x for x, _ in data.test_set]))
    correct = (logits.argmax(1) == torch.stack([y for _, y in data.test_set])).sum().item()
    assert math.isclose(correct / 359, metrics["test_acc"])


def test_nan_loss_raises_a_clear_error():
    data = Digits()
    model = MLP(data.input_shape, 10, depth=1, width=16)
    with pytest.raises(NonFiniteLossError, match="training loss is (nan|inf).*lower recipe.lr"):
        fit_classifier(model, data, TrainRecipe(epochs=2, lr=1e30, optimizer="sgd"), trainer_options=QUIET)
